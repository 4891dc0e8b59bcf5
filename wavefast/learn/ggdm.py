"""GGDM: a generalised few-step sampler with learnable timesteps and coefficients.

Watson et al. 2022 (arXiv 2202.05830) train a non-Markovian S-step sampler whose
update mixes the current sample, every model output so far and fresh noise. The
family used here, for visited steps i = 0 .. S-1 (most noise first)::

    eps_i   = eps_theta(x_i, t_i)
    x_{i+1} = u_i x_i + sum_{j <= i} W_ij eps_j + c_i z_i          (x_0 = x_T, x_S = sample)

with ``z_i ~ N(0, I)`` on the stochastic steps (those with ``c_i > 0`` at
initialisation; the last step never gets noise). The coefficients are written as
the FastDPM/DDIM coefficients *of the current timesteps* plus learned offsets::

    a = alpha_bar(t_i), a' = alpha_bar(t_{i+1}) (1 after the last step)
    sigma_i = kappa sqrt((1 - a') / (1 - a) (1 - a / a'))
    u_i     = sqrt(a'/a)                                   + du_i
    W_ii    = sqrt(1 - a' - sigma_i^2) - sqrt(1 - a) sqrt(a'/a) + dW_ii
    W_ij    = dW_ij   (j < i: the non-Markovian history)
    c_i     = |sigma_i + dc_i|    (z_i is symmetric: the sign means nothing, and a plan's c_i are >= 0)

so with all offsets zero the sampler *is* :func:`wavefast.samplers.sample` with
the same plan, kappa and noise, and moving only the timesteps keeps it a
FastDPM sampler at the new steps.

Timesteps are parametrised in model time: the first and last steps stay at the
initial plan's ends (for FastDPM plans, the top and the bottom of the trained
range: x_T ~ N(0, I) only matches the top level); the S-2 interior steps are
``t_i = t_first - (t_first - t_last) sum_{k < i} softmax(w)_k`` over S-1 gap
logits w, so they stay strictly decreasing and inside ``[t_last, t_first]``.
``alpha_bar(t)`` is the schedule's closed form (lgamma by default), differentiable
in t, and the network gets the continuous step t itself, so gradients reach the
timesteps through both the coefficients and the step embedding.

Everything is shape-agnostic: audio (B, 1, L) and images (B, C, H, W).
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import torch
import torch.nn as nn

from ..errors import WavefastError
from ..samplers.ggdm import (GGDM_KEY, GGDMCoefficients, PlanCoefficients, check_kappa, fastdpm_coefficients,
                             run_coefficients)
from ..schedules.noise import LinearBetaSchedule
from ..schedules.plans import SamplingPlan

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = ["GGDM_KEY", "GGDMCoefficients", "FixedSampler", "GGDMSampler", "TimestepParam", "ggdm_sample"]


def ggdm_sample(denoiser: Denoiser, x_T: torch.Tensor, coefficients: PlanCoefficients, *, noise=None,
                clamp: Optional[float] = None, callback: Optional[Callable[[int, torch.Tensor], None]] = None,
                checkpoint: bool = False, progress: bool = False) -> torch.Tensor:
    """:func:`wavefast.samplers.run_coefficients` (kept under the name the learned-sampler code uses)."""
    return run_coefficients(denoiser, x_T, coefficients, noise=noise, clamp=clamp, callback=callback,
                            checkpoint=checkpoint, progress=progress, name="GGDM")


class _ChainMixin:
    """Shared by the learnable and the fixed sampler: noise drawing and running the chain."""

    def n_stochastic(self) -> int:
        return int(self.stochastic.sum())

    def draw_noise(self, item_shape, batch: int, generator: torch.Generator, dtype=torch.float32) -> torch.Tensor:
        """(K, B, *item_shape) standard normal for the K stochastic steps (fixed per sample in training)."""
        return torch.randn((self.n_stochastic(), batch, *item_shape), generator=generator, dtype=dtype)

    def forward(self, denoiser: Denoiser, x_T: torch.Tensor, noise=None, *, checkpoint: bool = False,
                clamp: Optional[float] = None) -> torch.Tensor:
        return ggdm_sample(denoiser, x_T, self.coefficients(), noise=noise, checkpoint=checkpoint, clamp=clamp)


class FixedSampler(_ChainMixin, nn.Module):
    """A sampler with given coefficients (a FastDPM plan with kappa, or a learned GGDM plan); nothing to learn."""

    def __init__(self, plan: SamplingPlan, kappa: float = 0.0, schedule: Optional[LinearBetaSchedule] = None):
        super().__init__()
        self._coefficients = (PlanCoefficients.learned(plan) if GGDM_KEY in plan.info
                              else PlanCoefficients.fastdpm(plan, kappa))
        self.stochastic = self._coefficients.stochastic

    def coefficients(self) -> GGDMCoefficients:
        return self._coefficients


class TimestepParam(nn.Module):
    """Strictly decreasing steps with fixed ends: ``t_i = t_first - (t_first - t_last) q_i``.

    ``q_0 = 0``, ``q_i = sum_{k<i} softmax(w)_k``, ``q_{S-1} = 1``; w (S-1,) are the
    learnable gap logits, initialised to the log of the initial plan's gaps.
    """

    def __init__(self, steps: Sequence[float]):
        super().__init__()
        steps = torch.as_tensor(list(steps), dtype=torch.float64)
        if steps.numel() < 1 or (steps.numel() > 1 and not bool((steps[1:] < steps[:-1]).all())):
            raise WavefastError(f"GGDM timesteps must decrease strictly, got {steps.tolist()}")
        self.register_buffer("t_first", steps[0].clone())
        self.register_buffer("t_last", steps[-1].clone())
        gaps = (steps[:-1] - steps[1:]) / (steps[0] - steps[-1]) if steps.numel() > 1 else steps.new_zeros(0)
        self.logits = nn.Parameter(torch.log(gaps))
        self.S = int(steps.numel())

    def forward(self) -> torch.Tensor:
        if self.S == 1:
            return self.t_first.reshape(1)
        if self.S == 2:
            return torch.stack([self.t_first, self.t_last])
        fractions = torch.softmax(self.logits, dim=0)
        q = torch.cumsum(fractions[:-1], dim=0)
        interior = self.t_first - (self.t_first - self.t_last) * q
        return torch.cat([self.t_first.reshape(1), interior, self.t_last.reshape(1)])


class GGDMSampler(_ChainMixin, nn.Module):
    """Learnable GGDM sampler initialised at a FastDPM plan (see the module docstring).

    ``schedule``: the model's :class:`LinearBetaSchedule`; ``plan``: the initial plan
    (its steps must be in ``[0, T-1]``); ``kappa``: the FastDPM kappa the base
    coefficients use (0 = DDIM). Switches: ``learn_timesteps``, ``learn_coefficients``
    (u and W_ii offsets), ``history`` (W_ij, j < i), ``learn_noise`` (c_i offsets on
    the stochastic steps, i.e. only when kappa > 0). ``method``: continuous-step map
    (default: the plan's, else lgamma).
    """

    def __init__(self, schedule: LinearBetaSchedule, plan: SamplingPlan, kappa: float = 0.0, *,
                 learn_timesteps: bool = True, learn_coefficients: bool = True, history: bool = True,
                 learn_noise: bool = True, method: Optional[str] = None):
        super().__init__()
        self.schedule = schedule
        self.kappa = check_kappa(kappa)
        self.method = method or str(plan.info.get("method", "lgamma"))
        self.init_name = plan.name
        steps = torch.tensor(plan.steps, dtype=torch.float64)
        if bool((steps < 0).any()) or bool((steps > schedule.T - 1).any()):
            raise WavefastError(f"GGDM needs the initial plan's steps inside the trained range [0, {schedule.T - 1}], "
                                f"got {steps.tolist()}")
        S = len(plan)
        self.S = S
        self.timesteps = TimestepParam(plan.steps)
        self.timesteps.logits.requires_grad_(learn_timesteps and S > 2)
        self.d_scale_x = nn.Parameter(torch.zeros(S, dtype=torch.float64), requires_grad=learn_coefficients)
        self.d_eps = nn.Parameter(torch.zeros(S, S, dtype=torch.float64), requires_grad=learn_coefficients or history)
        mask = torch.eye(S, dtype=torch.float64) * float(learn_coefficients)
        if history:
            mask = mask + torch.tril(torch.ones(S, S, dtype=torch.float64), diagonal=-1)
        self.register_buffer("eps_mask", mask)
        _, _, sigma0 = fastdpm_coefficients(torch.tensor(plan.alpha_bars, dtype=torch.float64), self.kappa)
        self.register_buffer("stochastic", sigma0 > 0)
        self.d_sigma = nn.Parameter(torch.zeros(S, dtype=torch.float64), requires_grad=learn_noise and self.kappa > 0)

    def time_parameters(self) -> List[nn.Parameter]:
        return [p for p in [self.timesteps.logits] if p.requires_grad]

    def coefficient_parameters(self) -> List[nn.Parameter]:
        return [p for p in (self.d_scale_x, self.d_eps, self.d_sigma) if p.requires_grad]

    def coefficients(self) -> GGDMCoefficients:
        """Current coefficients (float64 tensors that carry gradients to the parameters)."""
        t = self.timesteps()
        ab = self.schedule.alpha_bar(t, self.method)
        u, w, sigma = fastdpm_coefficients(ab, self.kappa)
        W = torch.diag(w) + self.d_eps * self.eps_mask
        sigmas = torch.where(self.stochastic, (sigma + self.d_sigma).abs(), torch.zeros_like(sigma))
        return GGDMCoefficients(t, ab, u + self.d_scale_x, W, sigmas, self.stochastic)

    def is_plain_plan(self, tol: float = 0.0) -> bool:
        """True when the coefficients are those of FastDPM at the current steps (no learned offsets)."""
        offsets = [self.d_scale_x, self.d_eps * self.eps_mask, self.d_sigma * self.stochastic]
        return all(float(p.detach().abs().max()) <= tol for p in offsets if p.numel())

    @torch.no_grad()
    def to_plan(self, name: str = "ggdm", info: Optional[dict] = None,
                with_coefficients: Optional[bool] = None) -> SamplingPlan:
        """The current sampler as a :class:`SamplingPlan`.

        ``info["ggdm"]`` holds the coefficients unless the sampler is a plain FastDPM
        plan (then the plan alone reproduces it with ``kappa``); force either way
        with ``with_coefficients``.
        """
        c = self.coefficients()
        info = dict(info or {}, method=self.method, kappa=self.kappa)
        if with_coefficients is None:
            with_coefficients = not self.is_plain_plan()
        if with_coefficients:
            info[GGDM_KEY] = c.to_info()
        return SamplingPlan(tuple(float(v) for v in c.steps), tuple(float(v) for v in c.alpha_bars), name, info)
