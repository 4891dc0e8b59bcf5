"""The FastDPM reverse process with kappa (arXiv 2106.00132, eq. for DDPM-rev / DDIM-rev).

For a visited level ``a = alpha_bar_i`` and the next one ``a' = alpha_bar_{i+1}``
(``a' = 1`` after the last step)::

    sigma   = kappa * sqrt((1 - a') / (1 - a) * (1 - a / a'))
    x'      = sqrt(a'/a) x + (sqrt(1 - a' - sigma^2) - sqrt(1 - a) sqrt(a'/a)) eps(x, t_i) + sigma z

kappa = 1 is DDPM-rev (the DDPM posterior, equal to the classic
``(x - beta/sqrt(1-a) eps)/sqrt(alpha) + sigma z`` update when the plan is the
full chain), kappa = 0 is DDIM-rev (deterministic). The sampler is shape-agnostic:
audio (B, 1, L) and images (B, C, H, W) share it.

The formulas live in :func:`wavefast.samplers.ggdm.fastdpm_coefficients` (this process is the
diagonal special case of the GGDM form that :func:`wavefast.samplers.run_plan` runs); this
module gives their per-step float view and :func:`sample`, :func:`run_plan` for FastDPM plans.
"""

from __future__ import annotations

from typing import Callable, List, Optional

import torch

from ..schedules.plans import SamplingPlan
from .ggdm import PlanCoefficients, check_kappa, fastdpm_coefficients, run_coefficients
from .noise import NoiseSource

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = ["check_kappa", "step_coefficients", "plan_coefficients", "sample"]


def step_coefficients(alpha_bar: float, alpha_bar_next: float, kappa: float):
    """(scale_x, scale_eps, sigma) of one reverse step, in float64 arithmetic."""
    if alpha_bar_next >= 1.0:
        ab = torch.tensor([alpha_bar], dtype=torch.float64)
    else:
        ab = torch.tensor([alpha_bar, alpha_bar_next], dtype=torch.float64)
    u, w, sigma = fastdpm_coefficients(ab, check_kappa(kappa))
    return float(u[0]), float(w[0]), float(sigma[0])


def plan_coefficients(plan: SamplingPlan, kappa: float) -> List[tuple]:
    """Per-step (t, scale_x, scale_eps, sigma) of a FastDPM plan."""
    c = PlanCoefficients.fastdpm(plan, kappa)
    return [(t, float(u), float(c.eps_weights[i, i]), float(s))
            for i, (t, u, s) in enumerate(zip(plan.steps, c.scale_x, c.sigmas))]


def sample(denoiser: Denoiser, x_T: torch.Tensor, plan: SamplingPlan, *, kappa: float = 1.0,
           noise: Optional[NoiseSource] = None, clamp: Optional[float] = None,
           callback: Optional[Callable[[int, torch.Tensor], None]] = None, progress: bool = False) -> torch.Tensor:
    """Run the S-step FastDPM reverse process from ``x_T`` to x_0 (a plan's learned coefficients
    are not used here: see :func:`wavefast.samplers.run_plan` for any plan)."""
    return run_coefficients(denoiser, x_T, PlanCoefficients.fastdpm(plan, kappa), noise=noise, clamp=clamp,
                            callback=callback, progress=progress, name=plan.name)
