"""Sampling an image model into PNG files and a grid (:mod:`.png`), through the shared sampler.

Nothing here knows a schedule or a reverse step: plans come from
:func:`wavefast.schedules.resolve_plan` (FastDPM STEP/VAR, ``ddpm``, presets, learned plans,
plan files) and the chain is :func:`wavefast.samplers.run_plan`, the same function the audio
models use. Image ``i`` uses seed ``seed + i`` (noise drawn by position with
:class:`~wavefast.samplers.PositionalNoise`), so it does not depend on the batch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..errors import WavefastError
from ..samplers import PositionalNoise, item_seeds, plan_kappa, run_plan
from ..schedules import SamplingPlan, resolve_plan
from ..schedules.plans import RULE_PLANS
from .data import to_uint8
from .png import make_grid, read_png, write_png

DEFAULT_IMAGE_STEPS = 50
log = logging.getLogger("wavefast")


def image_plan(model, schedule: Union[str, SamplingPlan, None] = "var-quadratic", steps: Optional[int] = None,
               method: str = "lgamma", clip_range: bool = False, kappa: Optional[float] = None) -> SamplingPlan:
    """:func:`wavefast.schedules.resolve_plan` with S = 50 (``DEFAULT_IMAGE_STEPS``) when a rule schedule
    (var-*/step-*) gets no ``steps``: few-step image sampling needs more steps than audio's 6.

    ``schedule=None`` (no plan named) is the same rule as for audio models
    (:func:`wavefast.schedules.resolve.default_plan_name`): the shipped learned plan made for exactly
    these weights with that S when no ``kappa`` is asked for (``image-ddss-5`` / ``image-ddss-10`` for
    the shipped image model), else ``var-quadratic``."""
    if schedule is None:
        from ..schedules.resolve import default_plan_name

        schedule = default_plan_name(model, DEFAULT_IMAGE_STEPS if steps is None else steps, kappa)
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
    plan = image_plan(model, schedule, steps, method, clip_range, kappa)
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


# --- folders ----------------------------------------------------------------------------------------
def image_path(out_dir: Path, index: int) -> Path:  # the name generation_run.png_format gives
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
    plan = image_plan(model, schedule, steps, method, clip_range, kappa)
    kappa = plan_kappa(plan, kappa)
    settings = run.run_settings(model, plan, kappa, seed, int(n), batch_size)
    folder.mkdir(parents=True, exist_ok=True)
    run.check_or_write_manifest(folder, settings, 0, 1)
    crop = int(getattr(model.spec, "crop", 0))
    channels, height, width = model.spec.image_shape
    fmt = run.png_format(height - 2 * crop, width - 2 * crop, channels)
    todo = run.batches_to_do(folder, int(n), batch_size, 0, 1, fmt)
    bar = tqdm(total=sum(map(len, todo)), desc=f"images {plan.name} S={len(plan)}", unit="image", disable=not progress)
    for indices in todo:
        images = generate_images(model, len(indices), schedule=plan, kappa=kappa,
                                 seed=[seed + i for i in indices], batch_size=len(indices))
        for index, pixels in zip(indices, to_uint8(images)):
            if not fmt.ok(fmt.path(folder, index)):
                write_png(fmt.path(folder, index), pixels)
        bar.update(len(indices))
    bar.close()
    shown = np.stack([read_png(fmt.path(folder, i)) for i in range(min(int(n), grid_size))])
    write_png(grid, make_grid(shown))
    run.finish(folder, settings, int(n), 0, 1, fmt=fmt, extra={"grid": str(grid)})
    log.info(f"{n} images in {folder}, grid {grid} ({plan.name}, S={len(plan)}, kappa={kappa})")
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
                                    kappa=None if config.get("kappa") is None else float(config["kappa"]), seed=int(config.get("seed", 0)),
                                    batch_size=int(config.get("batch_size", 64)),
                                    method=config.get("method", "lgamma"),
                                    clip_range=bool(config.get("clip_range", False)))
    if config.get("evaluate"):
        from .folders import evaluate_image_folder

        summary["metrics"] = evaluate_image_folder(summary["folder"])["classifier"]
    return summary
