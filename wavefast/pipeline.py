"""High-level calls: ``vocode`` a mel and ``generate`` unconditional audio.

Data flows one way: model + plan + seeds -> backend -> :func:`wavefast.samplers.run_plan` ->
float32 audio. ``vocode`` is the :class:`~wavefast.vocoder.Vocoder` front door with a torch
backend, so it gives the same audio as the CLI, a ``Vocoder`` and an exported ONNX graph for the
same seed. Noise is drawn by position (:class:`~wavefast.samplers.noise.PositionalNoise`).
"""

from __future__ import annotations

import sys
from typing import Optional

import torch

from .errors import WavefastError
from .runtime.backends import TorchBackend
from .samplers.noise import PositionalNoise, SeedArg, item_seeds
from .schedules.plans import SamplingPlan
from .schedules.resolve import PlanArg, plan_keyword, resolve_plan


def plan_for(model, plan: PlanArg = "var-quadratic", steps: Optional[int] = None, method: str = "lgamma",
             clip_range: bool = False, force_schedule: bool = False, *, schedule=None) -> SamplingPlan:
    """:func:`wavefast.schedules.resolve_plan` under its first name (``schedule=`` is accepted, deprecated)."""
    return resolve_plan(model, plan_keyword(plan if schedule is None else None, schedule, "plan_for"), steps,
                        method, clip_range, force_schedule)


@torch.no_grad()
def vocode(model, mel, steps: Optional[int] = None, plan: PlanArg = None, kappa: Optional[float] = None,
           seed: SeedArg = 0, method: str = "lgamma", clip_range: bool = False, clamp: Optional[float] = None,
           progress: bool = False, force_schedule: bool = False, *, schedule=None,
           chunk_seconds: float = 4.0) -> torch.Tensor:
    """Mel (n_mels, frames) or (B, n_mels, frames) -> float32 audio (L,) or (B, L), L = frames * hop.

    ``plan``: a rule name (with ``steps``, default 6), ``ddpm``, a preset, a learned plan name,
    a plan ``.json`` or a :class:`SamplingPlan` (default var-quadratic). ``kappa``: 1 = DDPM-rev
    (default), 0 = DDIM-rev; a learned plan brings its own. Item i uses seed ``seed + i`` (or
    ``seed[i]``): its audio does not depend on the batch. ``clamp`` clips x after each step.
    """
    from .vocoder import Vocoder, _as_tensor

    plan = plan_keyword(plan, schedule, "vocode")
    if not model.spec.conditional:
        raise WavefastError("this model is unconditional (no mel input); use generate()")
    mels = _as_tensor(mel, "mel")
    squeeze = mels.dim() == 2
    mels = mels[None] if squeeze else mels
    resolved = resolve_plan(model, plan, steps, method, clip_range, force_schedule, kappa=kappa)
    voc = Vocoder(TorchBackend(model, resolved, kappa, clamp), chunk_seconds=chunk_seconds)
    audio, _ = voc(mels, seeds=item_seeds(seed, mels.shape[0]))
    return audio[0] if squeeze else audio


@torch.no_grad()
def generate(model, n: int, steps: Optional[int] = None, plan: PlanArg = None, kappa: Optional[float] = None,
             seed: SeedArg = 0, batch_size: int = 16, method: str = "lgamma", clip_range: bool = False,
             clamp: Optional[float] = None, progress: bool = False, force_schedule: bool = False, *,
             schedule=None, vocoder: Optional[dict] = None) -> torch.Tensor:
    """Unconditional samples: (n, segment_length) float32; sample i uses seed ``seed + i``.

    ``model`` is a waveform model or a two-stage generator (:class:`wavefast.digits.generator.TwoStageGenerator`:
    ``plan``/``steps``/``kappa`` are then the mel stage's (default var-quadratic, S = 20, kappa 0) and ``vocoder``
    may hold ``vocoder_plan`` / ``vocoder_steps`` / ``vocoder_kappa`` for the vocoder stage (default: the
    vocoder's own default, its shipped 6-step plan))."""
    plan = plan_keyword(plan, schedule, "generate")
    if hasattr(model, "mel_model"):
        if clamp is not None:
            raise WavefastError("clamp applies to waveform models; a two-stage generator clips its mels itself")
        _check_counts(n, batch_size)
        mel_plan = model.mel_plan(plan, steps, kappa, method, clip_range, force_schedule)
        return model.generate(n, mel_plan, kappa=kappa, seed=seed, batch_size=batch_size, **(vocoder or {}))
    if model.spec.conditional:
        raise WavefastError("this model is mel-conditioned; use vocode() with a mel")
    _check_counts(n, batch_size)
    backend = TorchBackend(model, resolve_plan(model, plan, steps, method, clip_range, force_schedule, kappa=kappa),
                           kappa, clamp)
    return generate_with(backend, n, seed, batch_size, progress)


def _check_counts(n, batch_size) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise WavefastError(f"number of samples must be a positive whole number, got {n!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise WavefastError(f"batch size must be a whole number >= 1, got {batch_size!r}")


def generate_with(backend, n: int, seed: SeedArg = 0, batch_size: int = 16, progress: bool = False) -> torch.Tensor:
    """Unconditional samples from any backend (torch or an exported ONNX graph): (n, segment_length)."""
    if backend.spec.conditional:
        raise WavefastError("this backend is a vocoder; use a Vocoder with mels")
    seeds = item_seeds(seed, n)
    length = backend.spec.segment_length
    outputs = []
    for start in range(0, len(seeds), batch_size):
        noise = PositionalNoise(seeds[start:start + batch_size])
        x_T = noise.randn((length,))
        draws = torch.stack([noise.randn((length,)) for _ in range(backend.draws)]) if backend.draws else None
        outputs.append(backend.run(None, x_T, draws))
        if progress:
            print(f"wavefast: generated {min(start + batch_size, len(seeds))}/{len(seeds)}", file=sys.stderr)
    return torch.cat(outputs)
