"""The FastDPM reverse process with kappa (arXiv 2106.00132, eq. for DDPM-rev / DDIM-rev).

For a visited level ``a = alpha_bar_i`` and the next one ``a' = alpha_bar_{i+1}``
(``a' = 1`` after the last step)::

    sigma   = kappa * sqrt((1 - a') / (1 - a) * (1 - a / a'))
    x'      = sqrt(a'/a) x + (sqrt(1 - a' - sigma^2) - sqrt(1 - a) sqrt(a'/a)) eps(x, t_i) + sigma z

kappa = 1 is DDPM-rev (the DDPM posterior, equal to the classic
``(x - beta/sqrt(1-a) eps)/sqrt(alpha) + sigma z`` update when the plan is the
full chain), kappa = 0 is DDIM-rev (deterministic). The sampler is shape-agnostic:
audio (B, 1, L) and images (B, C, H, W) share it.
"""

from __future__ import annotations

import math
from typing import Callable, List, Optional, Sequence

import torch
from tqdm.auto import tqdm

from ..errors import WavefastError
from ..schedules.plans import SamplingPlan, reverse_sigma

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_kappa(kappa: float) -> float:
    try:
        kappa = float(kappa)
    except (TypeError, ValueError):
        raise WavefastError(f"kappa must be a number in [0, 1], got {kappa!r}") from None
    if not (0.0 <= kappa <= 1.0):
        raise WavefastError(f"kappa must lie in [0, 1] (1 = DDPM-rev, 0 = DDIM-rev), got {kappa}")
    return kappa


def step_coefficients(alpha_bar: float, alpha_bar_next: float, kappa: float):
    """(scale_x, scale_eps, sigma) of one reverse step, in float64 arithmetic."""
    sigma = reverse_sigma(alpha_bar, alpha_bar_next, kappa)
    ratio = math.sqrt(alpha_bar_next / alpha_bar)
    scale_eps = math.sqrt(max(1.0 - alpha_bar_next - sigma ** 2, 0.0)) - math.sqrt(1.0 - alpha_bar) * ratio
    return ratio, scale_eps, sigma


def plan_coefficients(plan: SamplingPlan, kappa: float) -> List[tuple]:
    """Per-step (t, scale_x, scale_eps, sigma) for the whole plan."""
    kappa = check_kappa(kappa)
    return [(t, *step_coefficients(a, n, kappa))
            for t, a, n in zip(plan.steps, plan.alpha_bars, plan.next_alpha_bars())]


class PerSampleNoise:
    """Gaussian noise where item i comes from its own generator seeded with ``seeds[i]``.

    Draws happen on the CPU in a fixed order (x_T first, then one draw per
    stochastic step), so item i's noise is the same whatever batch it is in
    and whatever device runs the model.
    """

    def __init__(self, seeds: Sequence[int], device=None, dtype=torch.float32):
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.device = device
        self.dtype = dtype

    def __len__(self):
        return len(self.generators)

    def randn(self, item_shape) -> torch.Tensor:
        """(B, *item_shape) standard normal, one row per generator."""
        rows = [torch.randn(tuple(item_shape), generator=g, dtype=self.dtype) for g in self.generators]
        return torch.stack(rows).to(self.device)


def sample(denoiser: Denoiser, x_T: torch.Tensor, plan: SamplingPlan, *, kappa: float = 1.0,
           noise: Optional[PerSampleNoise] = None, clamp: Optional[float] = None,
           callback: Optional[Callable[[int, torch.Tensor], None]] = None, progress: bool = False) -> torch.Tensor:
    """Run the S-step reverse process from ``x_T`` to x_0.

    denoiser(x, t) -> eps with t a (B,) float tensor of model steps; ``noise``
    supplies z for stochastic steps (required when kappa > 0); ``clamp`` clips x to
    [-clamp, clamp] after each step (off by default); ``callback(i, x)`` after step i.
    """
    coefficients = plan_coefficients(plan, kappa)
    if noise is None and any(sigma > 0 for *_, sigma in coefficients):
        raise WavefastError("kappa > 0 needs a noise source (seeds) for the stochastic steps")
    x = x_T
    batch = x.shape[0]
    steps = tqdm(coefficients, desc=f"sampling {plan.name} S={len(plan)}", leave=False, disable=not progress)
    for i, (t, scale_x, scale_eps, sigma) in enumerate(steps):
        t_batch = torch.full((batch,), float(t), dtype=torch.float32, device=x.device)
        eps = denoiser(x, t_batch)
        x = scale_x * x + scale_eps * eps
        if sigma > 0:
            x = x + sigma * noise.randn(x.shape[1:]).to(x.dtype)
        if clamp is not None:
            x = x.clamp(-clamp, clamp)
        if callback is not None:
            callback(i, x)
    return x
