"""A small DDPM trainer for the shipped image model (Ho et al. 2020, Alg. 1).

Per step, batch of B images x0 (B, C, H, W) in [-1, 1]::

    t ~ Uniform{0 .. T-1},  eps ~ N(0, I)
    x_t  = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
    loss = mean_b w(t_b) * mean (eps_theta(x_t, t) - eps)^2

with ``w = 1`` (``loss_weighting="uniform"``, DDPM's L_simple) or the min-SNR-gamma weight
``w = min(SNR_t, gamma) / SNR_t``, ``SNR_t = abar_t / (1 - abar_t)`` (Hang et al. 2023,
``"min-snr-5"``): it shrinks the large, mostly irreducible eps errors of the first
steps (t < ~50) whose gradients otherwise dominate, so the rest of the chain, where
errors are amplified by ``1/sqrt(abar_t)`` at sampling time, trains faster.

then Adam (linear warm-up), gradient-norm clipping and an EMA of the weights
(:class:`wavefast.train.state.EMA`). Training stops by itself after ``steps``
optimiser steps or ``max_minutes`` of wall-clock time in this invocation,
whichever comes first, and can be resumed.

Run folder (``config.out``)::

    config.json            the resolved ImageTrainConfig and the model spec
    checkpoint.pt          full state for resume (model, EMA, optimiser, step, RNG; weights_only-loadable)
    model-ema.safetensors  EMA weights, fp16, native image format: the artifact to ship
    log.jsonl              {step, loss, lr, grad_norm, images_per_s, elapsed_s} every log_every steps;
                           {step, val_loss} (EMA weights, fixed held-out batch, fixed t and eps) at checkpoints
    samples/step_N.png     a 4x4 grid (EMA weights, 20-step DDIM) at each checkpoint
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import WavefastError
from ..schedules import LinearBetaSchedule
from ..fileio import atomic_torch_save, atomic_write_text
from ..train.state import EMA, capture_rng, restore_rng
from ..train.stop import StopRequest
from .checkpoints import get_image_preset, save_image_model
from .data import load_image_pack, load_images, to_model_range
from .mel_image import mel_layout_of
from .unet import DDPMUNet

CHECKPOINT_FORMAT = "wavefast-image-train/1"
CHECKPOINT_NAME = "checkpoint.pt"
EXPORT_NAME = "model-ema.safetensors"


@dataclass(frozen=True)
class ImageTrainConfig:
    out: str
    dataset: str = "fashion-mnist"
    preset: str = "tiny-28"
    steps: int = 100_000
    max_minutes: Optional[float] = None
    batch_size: int = 32
    lr: float = 8e-4
    warmup_steps: int = 200
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    loss_weighting: str = "uniform"  # or "min-snr-G" (e.g. "min-snr-5")
    seed: int = 0
    log_every: int = 50
    checkpoint_minutes: float = 5.0
    checkpoint_every: int = 0  # also checkpoint every N steps (0 = only by time)
    val_items: int = 256
    sample_grid: bool = True
    threads: Optional[int] = None
    data_limit: Optional[int] = None  # use only the first N training images (tests)
    init_from: Optional[str] = None  # a native image model file (same preset): start weights and EMA from it

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise WavefastError(f"steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise WavefastError(f"max_minutes must be positive, got {self.max_minutes}")
        if not (self.lr > 0 and 0 <= self.ema_decay < 1 and self.grad_clip > 0):
            raise WavefastError("need lr > 0, 0 <= ema_decay < 1 and grad_clip > 0")
        _snr_gamma(self.loss_weighting)


# Settings a resumed run may change; every other one is the run's own (from its checkpoint).
RESUMABLE_IMAGE_CHANGES = ("out", "steps", "max_minutes", "threads", "log_every", "checkpoint_minutes",
                           "checkpoint_every", "sample_grid")


def image_config_for(out, given: dict) -> ImageTrainConfig:
    """The config to run in ``out``: ``given`` (the settings the user named; absent = default) for a
    fresh folder; for a folder holding a checkpoint, the run's own saved settings with only
    :data:`RESUMABLE_IMAGE_CHANGES` taken from ``given``. Naming any other setting with a value
    that differs from the run's raises one line saying which, so a resume never silently trains
    on with other hyper-parameters."""
    checkpoint = Path(out) / CHECKPOINT_NAME
    if given.get("fresh") or not checkpoint.is_file():
        return ImageTrainConfig(out=str(out), **{k: v for k, v in given.items() if k != "fresh"})
    state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise WavefastError(f"{checkpoint} is not a wavefast image training checkpoint")
    saved = dict(state["config"])
    fields = {f.name for f in dataclasses.fields(ImageTrainConfig)}
    saved = {k: v for k, v in saved.items() if k in fields}
    clashes = [f"{k} (run: {saved.get(k)!r}, given: {v!r})" for k, v in given.items()
               if k not in RESUMABLE_IMAGE_CHANGES and k != "fresh" and k in saved and saved[k] != v]
    if clashes:
        raise WavefastError(f"{out} resumes a run whose settings differ from the ones given: {'; '.join(clashes)}; "
                            f"a resumed run may change only {', '.join(RESUMABLE_IMAGE_CHANGES[1:])} "
                            "(or pass --fresh / another --out)")
    saved.update({k: v for k, v in given.items() if k in RESUMABLE_IMAGE_CHANGES})
    saved["out"] = str(out)
    return ImageTrainConfig(**saved)


def _snr_gamma(weighting: str) -> Optional[float]:
    """None for 'uniform', gamma for 'min-snr-<gamma>'."""
    if weighting == "uniform":
        return None
    if weighting.startswith("min-snr-"):
        try:
            gamma = float(weighting[len("min-snr-"):])
        except ValueError:
            gamma = -1.0
        if gamma > 0:
            return gamma
    raise WavefastError(f"unknown loss weighting {weighting!r}; allowed: 'uniform', 'min-snr-<gamma>' (e.g. min-snr-5)")


def _training_images(config: ImageTrainConfig, spec):
    """(train images: uint8 (N, H, W) or float (N, C, H, W), validation x0 float (V, C, H, W)) of the
    config's data set: a named one (see :mod:`wavefast.images.data`) or an ``.npz`` image pack."""
    if str(config.dataset).endswith(".npz"):
        train, _ = load_image_pack(config.dataset, "train")
        test, _ = load_image_pack(config.dataset, "test")
        if config.data_limit:
            train = train[: config.data_limit]
        if tuple(train.shape[1:]) != tuple(spec.image_shape):
            raise WavefastError(f"preset {config.preset!r} generates {spec.image_shape} images but "
                                f"{config.dataset} holds {tuple(train.shape[1:])}")
        return train, test[: config.val_items]
    images, _ = load_images(config.dataset, "train")
    if config.data_limit:
        images = images[: config.data_limit]
    if (1,) + images.shape[1:] != tuple(spec.image_shape):
        raise WavefastError(f"preset {config.preset!r} generates {spec.image_shape} images but {config.dataset} "
                            f"has {images.shape[1]}x{images.shape[2]}")
    test, _ = load_images(config.dataset, "test")
    return torch.from_numpy(np.array(images)), to_model_range(test[: config.val_items])


def _lr_at(config: ImageTrainConfig, step: int) -> float:
    return config.lr * min(1.0, (step + 1) / max(config.warmup_steps, 1))


class ImageTrainer:
    """Holds the model, EMA, optimiser and data; :meth:`run` trains until a budget is spent."""

    def __init__(self, config: ImageTrainConfig, resume: bool = True, device="cpu"):
        self.config = config
        self.device = torch.device(device)
        if config.threads:
            torch.set_num_threads(int(config.threads))
        self.out = Path(config.out)
        dataset = str(config.dataset)
        self.spec = get_image_preset(config.preset).replace(
            dataset=Path(dataset).stem if dataset.endswith(".npz") else dataset)
        self.train_images, self.val_x0 = _training_images(config, self.spec)
        self.val_x0 = self.val_x0.to(self.device)
        val_gen = torch.Generator().manual_seed(1234)
        self.val_t = torch.randint(0, self.spec.diffusion.T, (len(self.val_x0),), generator=val_gen)
        self.val_eps = torch.randn(self.val_x0.shape, generator=val_gen).to(self.device)

        torch.manual_seed(config.seed)
        self.model = DDPMUNet(self.spec).to(self.device)
        if config.init_from:
            self._init_weights(config.init_from)
        self.ema = EMA(self.model, config.ema_decay)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.schedule = LinearBetaSchedule.from_spec(self.spec.diffusion)
        self.alpha_bar = self.schedule.alpha_bar_discrete.to(self.device)
        self.step = 0
        self.train_seconds = 0.0
        checkpoint = self.out / CHECKPOINT_NAME
        if resume and checkpoint.is_file():
            self._load(checkpoint)

    def _init_weights(self, path) -> None:
        """Start from the weights of an image model file with this preset's architecture and prediction."""
        from .checkpoints import load_image_model

        source = load_image_model(path)
        mine, theirs = json.loads(self.spec.to_json()), json.loads(source.spec.to_json())
        if mine["arch"] != theirs["arch"] or mine.get("prediction") != theirs.get("prediction"):
            raise WavefastError(f"--init-from {path}: its architecture or prediction target differs from preset "
                                f"{self.config.preset!r}")
        self.model.load_state_dict(source.state_dict())

    # --- state -------------------------------------------------------------------------------
    def _state(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, "config": dataclasses.asdict(self.config), "spec": self.spec.to_json(),
                "step": self.step, "train_seconds": self.train_seconds, "model": self.model.state_dict(),
                "ema": self.ema.state_dict(), "optimizer": self.optimizer.state_dict(),
                "rng": capture_rng({"data": self.generator})}

    def _load(self, path: Path) -> None:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise WavefastError(f"{path} is not a wavefast image training checkpoint")
        saved, now = json.loads(state["spec"]), json.loads(self.spec.to_json())
        if saved["arch"] != now["arch"] or saved.get("prediction", "eps") != now.get("prediction", "eps"):
            raise WavefastError(f"{path} was trained with another architecture or prediction target; use another "
                                "--out folder (or the preset it was trained with)")
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.train_seconds = int(state["step"]), float(state["train_seconds"])
        restore_rng(state["rng"], {"data": self.generator})
        print(f"wavefast: resumed {path} at step {self.step}", file=sys.stderr)

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(self._state(), self.out / CHECKPOINT_NAME)
        ema_model = self.ema.copy_to(DDPMUNet(self.spec))
        save_image_model(ema_model, self.out / EXPORT_NAME, torch.float16,
                         {"train_steps": self.step, "train_seconds": round(self.train_seconds),
                          "dataset": self.config.dataset, "batch_size": self.config.batch_size})
        val_loss = self.validation_loss(ema_model)
        self._log({"step": self.step, "val_loss": val_loss})
        if self.config.sample_grid:
            self._sample_grid(ema_model)

    # --- one step ----------------------------------------------------------------------------
    def _batch(self):
        g = self.generator
        index = torch.randint(0, len(self.train_images), (self.config.batch_size,), generator=g)
        batch = self.train_images[index]
        x0 = (to_model_range(batch) if batch.dtype == torch.uint8 else batch).to(self.device)
        t = torch.randint(0, self.spec.diffusion.T, (len(x0),), generator=g)
        eps = torch.randn(x0.shape, generator=g).to(self.device)
        return x0, t.to(self.device), eps

    def train_step(self) -> tuple:
        x0, t, eps = self._batch()
        for group in self.optimizer.param_groups:
            group["lr"] = _lr_at(self.config, self.step)
        self.model.train()
        per_item = (self.model(self.schedule.add_noise(x0, t, eps), t.float()) - eps).square().flatten(1).mean(1)
        gamma = _snr_gamma(self.config.loss_weighting)
        if gamma is None:
            loss = per_item.mean()
        else:
            snr = (self.alpha_bar[t] / (1.0 - self.alpha_bar[t])).float()
            loss = (per_item * snr.clamp(max=gamma) / snr).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.step += 1
        self.ema.update(self.model, self.step)
        return float(loss.detach()), float(grad_norm)

    @torch.no_grad()
    def validation_loss(self, model: DDPMUNet) -> float:
        model.eval()
        x_t = self.schedule.add_noise(self.val_x0, self.val_t.to(self.device), self.val_eps)
        losses = [F.mse_loss(model(x_t[i:i + 64], self.val_t[i:i + 64].float().to(self.device)),
                             self.val_eps[i:i + 64], reduction="sum") for i in range(0, len(x_t), 64)]
        return float(sum(losses) / self.val_eps.numel())

    def _sample_grid(self, model: DDPMUNet) -> None:
        from .generate import generate_images
        from .png import save_grid

        images = generate_images(model, 16, steps=20, schedule="step-quadratic", kappa=0.0, seed=0)
        layout = mel_layout_of(model.spec)
        if layout is not None:  # a mel per tile, low frequencies at the bottom
            mel = layout.to_mel(images)
            images = (2.0 * (mel - layout.floor) / (layout.ceil - layout.floor) - 1.0).flip(1)[:, None]
        save_grid(images, self.out / "samples" / f"step_{self.step:07d}.png", nrow=4)

    def _log(self, record: dict) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "log.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")

    # --- loop ----------------------------------------------------------------------------------
    def run(self) -> dict:
        cfg = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / "config.json", json.dumps(
            {"config": dataclasses.asdict(cfg), "spec": json.loads(self.spec.to_json())}, indent=2))
        start = time.monotonic()
        last_save = start
        window, window_start, window_steps = [], time.monotonic(), 0
        with StopRequest() as stop:
            while self.step < cfg.steps and not stop.requested:
                if cfg.max_minutes is not None and time.monotonic() - start >= 60.0 * cfg.max_minutes:
                    print(f"wavefast: wall-clock budget of {cfg.max_minutes} min reached", file=sys.stderr)
                    break
                t0 = time.monotonic()
                loss, grad_norm = self.train_step()
                self.train_seconds += time.monotonic() - t0
                window.append(loss)
                window_steps += 1
                if not math.isfinite(loss):
                    raise WavefastError(f"loss became {loss} at step {self.step}; lower the learning rate")
                if self.step % cfg.log_every == 0:
                    elapsed = time.monotonic() - window_start
                    self._log({"step": self.step, "loss": float(np.mean(window)), "grad_norm": grad_norm,
                               "lr": _lr_at(cfg, self.step - 1),
                               "images_per_s": window_steps * cfg.batch_size / elapsed,
                               "elapsed_s": round(time.monotonic() - start, 1)})
                    window, window_start, window_steps = [], time.monotonic(), 0
                due_time = time.monotonic() - last_save >= 60.0 * cfg.checkpoint_minutes
                due_step = cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0
                if due_time or due_step:
                    self.save()
                    last_save = time.monotonic()
        self.save()
        return {"step": self.step, "train_seconds": self.train_seconds, "out": str(self.out)}


def train_image_model(config: ImageTrainConfig, resume: bool = True, device="cpu") -> dict:
    """Train (or resume) and return ``{step, train_seconds, out}``; see the module docstring."""
    return ImageTrainer(config, resume=resume, device=device).run()
