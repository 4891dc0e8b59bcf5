"""High-level calls: ``vocode`` a mel and ``generate`` unconditional audio.

Data flows one way: model + plan + seeds -> sampler -> float32 audio.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence, Union

import torch

from .audio.mel import guess_frontend
from .errors import WavefastError
from .models.diffwave import DiffWave
from .learn.artifacts import check_schedule_for_model
from .learn.ggdm import sample_with_plan
from .samplers.reverse import PerSampleNoise, check_kappa
from .schedules import LinearBetaSchedule, SamplingPlan, make_plan
from .schedules.plans import shipped_learned_plans

ScheduleArg = Union[str, SamplingPlan]


def plan_for(model: DiffWave, schedule: ScheduleArg = "var-quadratic", steps: Optional[int] = None,
             method: str = "lgamma", clip_range: bool = False, force_schedule: bool = False) -> SamplingPlan:
    """Resolve a schedule name / JSON path / plan for this model's diffusion.

    A learned schedule (``wavefast learn-sampler``) made for other weights is refused
    unless ``force_schedule``.
    """
    if isinstance(schedule, str):  # a shipped learned sampler by name -> its file (checked like any file)
        schedule = str(shipped_learned_plans().get(schedule, schedule))
    check_schedule_for_model(schedule, model, force_schedule)
    if isinstance(schedule, SamplingPlan):
        return schedule
    return make_plan(LinearBetaSchedule.from_spec(model.spec.diffusion), schedule, steps, method, clip_range)


def _seeds(seed: Union[int, Sequence[int], None], n: int) -> list:
    if seed is None:
        seed = int(torch.randint(0, 2 ** 31 - 1, ()).item())
    if isinstance(seed, int):
        return [seed + i for i in range(n)]
    seeds = [int(s) for s in seed]
    if len(seeds) != n:
        raise WavefastError(f"got {len(seeds)} seeds for {n} items; pass one seed per item or a single int")
    return seeds


def check_mel(spec, mel: torch.Tensor, name: str = "mel") -> torch.Tensor:
    """Validate a mel (n_mels, frames) or (B, n_mels, frames) against a ModelSpec; returns (B, n_mels, frames)."""
    if not spec.conditional:
        raise WavefastError("this model is unconditional (no mel input); use generate()")
    mel = torch.as_tensor(mel).float()
    if mel.dim() == 2:
        mel = mel[None]
    if mel.dim() != 3:
        raise WavefastError(f"{name} must be (n_mels, frames) or (B, n_mels, frames), got shape {tuple(mel.shape)}")
    if mel.shape[1] != spec.n_mels:
        raise WavefastError(f"{name} has {mel.shape[1]} mel bins but the checkpoint expects {spec.n_mels}")
    if mel.shape[2] == 0:
        raise WavefastError(f"{name} is empty (0 frames)")
    if not torch.isfinite(mel).all():
        raise WavefastError(f"{name} contains NaN or Inf")
    looks_like = guess_frontend(mel)
    if looks_like != spec.mel_frontend:
        raise WavefastError(
            f"{name} looks like a '{looks_like}' mel (values in [{float(mel.min()):.3g}, {float(mel.max()):.3g}]) "
            f"but the checkpoint expects the '{spec.mel_frontend}' front end; recompute it from audio with that "
            "front end (a mismatched mel gives static)")
    return mel


@torch.no_grad()
def vocode(model: DiffWave, mel, steps: Optional[int] = 6, schedule: ScheduleArg = "var-quadratic",
           kappa: float = 1.0, seed: Union[int, Sequence[int], None] = 0, method: str = "lgamma",
           clip_range: bool = False, clamp: Optional[float] = None, progress: bool = False,
           force_schedule: bool = False) -> torch.Tensor:
    """Mel (n_mels, frames) or (B, n_mels, frames) -> float32 audio (L,) or (B, L), L = frames * hop.

    Item i uses seed ``seed + i`` (or ``seed[i]``), so its audio does not depend on the batch.
    """
    squeeze = torch.as_tensor(mel).dim() == 2
    mel = check_mel(model.spec, mel)
    kappa = check_kappa(kappa)
    plan = plan_for(model, schedule, steps, method, clip_range, force_schedule)
    device = next(model.parameters()).device
    mel = mel.to(device)
    batch, length = mel.shape[0], mel.shape[2] * model.spec.hop_length
    noise = PerSampleNoise(_seeds(seed, batch), device=device)
    x_T = noise.randn((1, length))
    cond_terms = model.prepare(mel, length)
    audio = sample_with_plan(lambda x, t: model.denoise(x, t, cond_terms), x_T, plan, kappa=kappa, noise=noise,
                             clamp=clamp, progress=progress)[:, 0]
    return audio[0] if squeeze else audio


@torch.no_grad()
def generate(model: DiffWave, n: int, steps: Optional[int] = 6, schedule: ScheduleArg = "var-quadratic",
             kappa: float = 1.0, seed: Union[int, Sequence[int], None] = 0, batch_size: int = 16,
             method: str = "lgamma", clip_range: bool = False, clamp: Optional[float] = None,
             progress: bool = False, force_schedule: bool = False) -> torch.Tensor:
    """Unconditional samples: (n, segment_length) float32; sample i uses seed ``seed + i``."""
    if model.spec.conditional:
        raise WavefastError("this model is mel-conditioned; use vocode() with a mel")
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise WavefastError(f"number of samples must be a positive whole number, got {n!r}")
    if batch_size < 1:
        raise WavefastError(f"batch size must be >= 1, got {batch_size}")
    kappa = check_kappa(kappa)
    plan = plan_for(model, schedule, steps, method, clip_range, force_schedule)
    seeds = _seeds(seed, int(n))
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, len(seeds), batch_size):
        noise = PerSampleNoise(seeds[start:start + batch_size], device=device)
        x_T = noise.randn((1, model.spec.segment_length))
        x0 = sample_with_plan(lambda x, t: model.denoise(x, t, None), x_T, plan, kappa=kappa, noise=noise,
                              clamp=clamp, progress=progress)
        outputs.append(x0[:, 0].cpu())
        if progress:
            print(f"wavefast: generated {min(start + batch_size, len(seeds))}/{len(seeds)}", file=sys.stderr)
    return torch.cat(outputs)
