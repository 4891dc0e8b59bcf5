"""Sampling an image model into PNG files and a grid, through the shared sampler.

Nothing here knows a schedule or a reverse step: plans come from
:func:`wavefast.schedules.resolve_plan` (FastDPM STEP/VAR, ``ddpm``, presets, learned plans,
plan files) and the chain is :func:`wavefast.samplers.run_plan`, the same function the audio
models use. Image ``i`` uses seed ``seed + i`` (noise drawn by position with
:class:`~wavefast.samplers.PositionalNoise`), so it does not depend on the batch.
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..errors import WavefastError
from ..samplers import PositionalNoise, item_seeds, plan_kappa, run_plan
from ..schedules import SamplingPlan, resolve_plan
from ..schedules.plans import RULE_PLANS
from .data import to_uint8

DEFAULT_IMAGE_STEPS = 50


def image_plan(model, schedule: Union[str, SamplingPlan] = "var-quadratic", steps: Optional[int] = None,
               method: str = "lgamma", clip_range: bool = False) -> SamplingPlan:
    """:func:`wavefast.schedules.resolve_plan` with S = 50 (``DEFAULT_IMAGE_STEPS``) when a rule schedule
    (var-*/step-*) gets no ``steps``: few-step image sampling needs more steps than audio's 6."""
    if steps is None and isinstance(schedule, str) and schedule in RULE_PLANS:
        steps = DEFAULT_IMAGE_STEPS
    return resolve_plan(model, schedule, steps, method, clip_range)


def clip_denoised(model, plan: SamplingPlan):
    """Denoiser adapter: eps recomputed from the x0 prediction clipped to the data range [-1, 1].

    At the plan's step t with noise level a = alpha_bar(t) (taken from the plan itself)::

        x0  = clamp((x - sqrt(1 - a) eps) / sqrt(a), -1, 1)
        eps' = (x - sqrt(a) x0) / sqrt(1 - a)

    so the shared sampler's update uses the clipped x0 (DDPM's ``clip_denoised``; FastDPM's image
    sampler does not clip, so this is off by default). The sampler itself is unchanged."""
    steps = torch.tensor([float(t) for t in plan.steps], dtype=torch.float64)
    alpha_bars = list(plan.alpha_bars)

    def denoiser(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        index = int(torch.argmin((steps - float(t.reshape(-1)[0])).abs()))
        a = alpha_bars[index]
        eps = model(x, t)
        x0 = ((x - (1.0 - a) ** 0.5 * eps) / a ** 0.5).clamp(-1.0, 1.0)
        return (x - a ** 0.5 * x0) / (1.0 - a) ** 0.5

    return denoiser


@torch.no_grad()
def generate_images(model, n: int, steps: Optional[int] = None,
                    schedule: Union[str, SamplingPlan] = "var-quadratic", kappa: Optional[float] = None,
                    seed: Union[int, Sequence[int], None] = 0, batch_size: int = 64, method: str = "lgamma",
                    clip_range: bool = False, clamp: Optional[float] = None, clip_x0: bool = False,
                    progress: bool = False) -> torch.Tensor:
    """n images (n, C, H, W) float32 in model range (about [-1, 1], not clamped), on the CPU.

    ``model`` is an image model (``model(x, t) -> eps``, ``model.spec.diffusion``);
    ``steps``/``schedule``/``method``/``clip_range`` pick the plan as in
    :func:`wavefast.schedules.resolve_plan`; ``kappa`` 1 = DDPM-rev (default), 0 = DDIM-rev.
    ``steps`` defaults to 50 for rule schedules and must be None for fixed-length plans (``ddpm``).
    ``clip_x0`` samples with :func:`clip_denoised` (off by default, as in FastDPM).
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise WavefastError(f"number of images must be a positive whole number, got {n!r}")
    if batch_size < 1:
        raise WavefastError(f"batch size must be >= 1, got {batch_size}")
    plan = image_plan(model, schedule, steps, method, clip_range)
    kappa = plan_kappa(plan, kappa)
    seeds = item_seeds(seed, int(n))
    device = next(model.parameters()).device
    shape = model.spec.image_shape
    outputs = []
    for start in range(0, len(seeds), batch_size):
        noise = PositionalNoise(seeds[start:start + batch_size], device=device)
        x_T = noise.randn(shape)
        denoiser = clip_denoised(model, plan) if clip_x0 else model
        outputs.append(run_plan(denoiser, x_T, plan, kappa=kappa, noise=noise, clamp=clamp, progress=progress).cpu())
    images = torch.cat(outputs)
    crop = int(getattr(model.spec, "crop", 0))
    return images[..., crop:images.shape[-2] - crop, crop:images.shape[-1] - crop] if crop else images


# --- PNG ------------------------------------------------------------------------------------------
def encode_png(pixels: np.ndarray) -> bytes:
    """uint8 (H, W), (H, W, 1) or (H, W, 3) -> PNG bytes (8-bit grey or RGB, no filtering)."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise WavefastError(f"PNG pixels must be uint8, got {pixels.dtype}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 2:
        colour_type, height, width = 0, *pixels.shape
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        colour_type, height, width = 2, pixels.shape[0], pixels.shape[1]
    else:
        raise WavefastError(f"PNG pixels must be (H, W), (H, W, 1) or (H, W, 3), got {pixels.shape}")
    rows = np.ascontiguousarray(pixels).reshape(height, -1)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()  # filter byte 0 per row

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def _unfilter(raw: bytes, height: int, width: int, channels: int) -> np.ndarray:
    stride = width * channels
    out = np.zeros((height, stride), np.int32)
    data = np.frombuffer(raw, np.uint8).reshape(height, stride + 1)
    for y in range(height):
        kind, line = data[y, 0], data[y, 1:].astype(np.int32)
        prev = out[y - 1] if y else np.zeros(stride, np.int32)
        if kind == 0:
            out[y] = line
        elif kind == 2:
            out[y] = (line + prev) & 0xFF
        elif kind in (1, 3, 4):  # left-dependent filters: per pixel
            row = np.zeros(stride, np.int32)
            for x in range(stride):
                left = row[x - channels] if x >= channels else 0
                up_left = prev[x - channels] if x >= channels else 0
                if kind == 1:
                    predictor = left
                elif kind == 3:
                    predictor = (left + prev[x]) // 2
                else:
                    p = left + prev[x] - up_left
                    pa, pb, pc = abs(p - left), abs(p - prev[x]), abs(p - up_left)
                    predictor = left if pa <= pb and pa <= pc else (prev[x] if pb <= pc else up_left)
                row[x] = (line[x] + predictor) & 0xFF
            out[y] = row
        else:
            raise WavefastError(f"corrupt PNG: filter type {kind}")
    return out.astype(np.uint8).reshape(height, width, channels)


def read_png(path) -> np.ndarray:
    """A PNG -> uint8 (H, W, C). Uses Pillow when installed; otherwise reads 8-bit grey/RGB/RGBA
    non-interlaced files (what :func:`encode_png` writes)."""
    path = Path(path)
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is not None:
        with Image.open(path) as image:
            array = np.asarray(image.convert("L") if image.mode in ("L", "I;16", "I", "1", "P", "LA")
                               else image.convert("RGB"))
        return array[:, :, None] if array.ndim == 2 else array
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise WavefastError(f"{path} is not a PNG file")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, tag = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if tag == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif tag == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise WavefastError(f"{path}: only 8-bit non-interlaced grey/RGB PNGs can be read without Pillow")
    pixels = _unfilter(zlib.decompress(idat), height, width, channels)
    return pixels[:, :, :1] if colour == 4 else pixels[:, :, :3] if colour == 6 else pixels


def write_png(path, pixels: np.ndarray) -> Path:
    """Write uint8 pixels as a PNG, atomically."""
    from ..fileio import atomic_output

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, ".png") as tmp:
        Path(tmp).write_bytes(encode_png(pixels))
        Path(tmp).chmod(0o644)
    return path


def make_grid(pixels: np.ndarray, nrow: Optional[int] = None, padding: int = 2, fill: int = 255) -> np.ndarray:
    """uint8 (N, H, W, C) -> one (rows*(H+p)+p, nrow*(W+p)+p, C) mosaic; ``nrow`` images per row
    (default ceil(sqrt(N)))."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 4 or len(pixels) == 0:
        raise WavefastError(f"grid input must be (N, H, W, C) with N >= 1, got {pixels.shape}")
    n, h, w, c = pixels.shape
    nrow = int(nrow or math_ceil_sqrt(n))
    rows = -(-n // nrow)
    grid = np.full((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), fill, np.uint8)
    for i in range(n):
        y, x = padding + (i // nrow) * (h + padding), padding + (i % nrow) * (w + padding)
        grid[y:y + h, x:x + w] = pixels[i]
    return grid


def math_ceil_sqrt(n: int) -> int:
    root = int(np.sqrt(n))
    return root if root * root >= n else root + 1


def save_grid(images: torch.Tensor, path, nrow: Optional[int] = None) -> Path:
    """Model-range images (N, C, H, W) -> a grid PNG."""
    return write_png(path, make_grid(to_uint8(images), nrow))


# --- folders ----------------------------------------------------------------------------------------
def image_path(out_dir: Path, index: int) -> Path:
    return Path(out_dir) / f"image_{index:05d}.png"


def output_paths(output) -> tuple:
    """(folder, grid path) for ``-o``: ``x.png`` -> folder ``x/`` and grid ``x.png``;
    a folder ``d`` -> folder ``d/`` and grid ``d/grid.png``."""
    output = Path(output)
    if output.suffix.lower() == ".png":
        return output.with_suffix(""), output
    if output.suffix:
        raise WavefastError(f"-o must be a .png grid file or a folder, got {output}")
    return output, output / "grid.png"


def generate_image_folder(model, output, n: int, steps: Optional[int] = None,
                          schedule: Union[str, SamplingPlan] = "var-quadratic", kappa: Optional[float] = None,
                          seed: int = 0,
                          batch_size: int = 64, method: str = "lgamma", clip_range: bool = False,
                          grid_size: int = 64, progress: bool = True) -> dict:
    """Write ``n`` images ``image_{i:05d}.png`` (seed ``seed + i``) and a grid of the first
    ``grid_size``. Resumable: re-running the same command skips finished batches; a run with
    other settings in the same folder is refused. Returns ``{folder, grid, plan, n}``."""
    from tqdm.auto import tqdm

    from .. import generation_run as run

    if isinstance(n, bool) or int(n) != n or n < 1:
        raise WavefastError(f"-n must be a positive whole number, got {n!r}")
    if batch_size < 1:
        raise WavefastError(f"--batch-size must be >= 1, got {batch_size}")
    folder, grid = output_paths(output)
    plan = image_plan(model, schedule, steps, method, clip_range)
    kappa = plan_kappa(plan, kappa)
    settings = {"model": run.model_fingerprint(model), "plan": plan.name, "steps": list(plan.steps),
                "kappa": kappa, "seed": seed, "n": int(n), "batch_size": batch_size}
    folder.mkdir(parents=True, exist_ok=True)
    run.check_or_write_manifest(folder, settings, 0, 1)
    batches = [list(range(k, min(k + batch_size, n))) for k in range(0, n, batch_size)]
    todo = [b for b in batches if not all(image_path(folder, i).is_file() for i in b)]
    bar = tqdm(total=sum(map(len, todo)), desc=f"images {plan.name} S={len(plan)}", unit="image", disable=not progress)
    for indices in todo:
        images = generate_images(model, len(indices), schedule=plan, kappa=kappa,
                                 seed=[seed + i for i in indices], batch_size=len(indices))
        for index, pixels in zip(indices, to_uint8(images)):
            if not image_path(folder, index).is_file():
                write_png(image_path(folder, index), pixels)
        bar.update(len(indices))
    bar.close()
    shown = np.stack([read_png(image_path(folder, i)) for i in range(min(int(n), grid_size))])
    write_png(grid, make_grid(shown))
    (folder / run.MANIFEST).write_text(json.dumps({"settings": settings, "complete": True, "grid": str(grid)},
                                                  indent=2))
    print(f"wavefast: {n} images in {folder}, grid {grid} ({plan.name}, S={len(plan)}, kappa={kappa})",
          file=sys.stderr)
    return {"folder": str(folder), "grid": str(grid), "plan": plan.name, "steps": len(plan), "n": int(n)}


RECIPE_KEYS = ("checkpoint", "preset", "n", "out", "schedule", "steps", "kappa", "seed", "batch_size", "method",
               "clip_range", "device", "evaluate")


def run_generate_recipe(config: dict) -> dict:
    """The Hydra recipe's work (``recipes/generate_images.py``): load, generate, optionally score.

    ``config`` holds ``RECIPE_KEYS`` (see ``recipes/conf/images/generate.yaml``); returns the
    generation summary, with ``metrics`` (classifier FID/IS) when ``evaluate`` is true.
    """
    from .checkpoints import load_image_model

    unknown = sorted(set(config) - set(RECIPE_KEYS) - {"hydra"})
    if unknown:
        raise WavefastError(f"unknown image recipe keys {unknown}; allowed: {', '.join(RECIPE_KEYS)}")
    model = load_image_model(config["checkpoint"], config.get("preset"), device=config.get("device", "cpu"))
    summary = generate_image_folder(model, config["out"], int(config["n"]), steps=config.get("steps"),
                                    schedule=config.get("schedule", "var-quadratic"),
                                    kappa=float(config.get("kappa", 1.0)), seed=int(config.get("seed", 0)),
                                    batch_size=int(config.get("batch_size", 64)),
                                    method=config.get("method", "lgamma"),
                                    clip_range=bool(config.get("clip_range", False)))
    if config.get("evaluate"):
        from .eval import evaluate_image_folder

        summary["metrics"] = evaluate_image_folder(summary["folder"])["classifier"]
    return summary
