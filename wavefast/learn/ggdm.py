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
    c_i     = sigma_i                                       + dc_i

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

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint as _checkpoint
from tqdm.auto import tqdm

from ..errors import WavefastError
from ..samplers.reverse import PerSampleNoise, check_kappa, sample
from ..schedules.noise import LinearBetaSchedule
from ..schedules.plans import SamplingPlan

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
NoiseSource = Union[PerSampleNoise, torch.Tensor, Sequence[torch.Tensor], None]

#: key of the GGDM coefficients inside ``SamplingPlan.info`` (and a plan JSON's ``info``)
GGDM_KEY = "ggdm"


@dataclass(frozen=True)
class GGDMCoefficients:
    """Everything a GGDM sampler needs, as float64 tensors (S = number of steps).

    steps (S,) model steps t_i (decreasing); alpha_bars (S,) increasing;
    scale_x (S,) u_i; eps_weights (S, S) lower-triangular W; sigmas (S,) c_i;
    stochastic (S,) bool: the steps that draw noise.
    """

    steps: torch.Tensor
    alpha_bars: torch.Tensor
    scale_x: torch.Tensor
    eps_weights: torch.Tensor
    sigmas: torch.Tensor
    stochastic: torch.Tensor

    def __len__(self) -> int:
        return int(self.steps.shape[0])

    def detach(self) -> "GGDMCoefficients":
        return GGDMCoefficients(*(getattr(self, f).detach().clone() for f in
                                  ("steps", "alpha_bars", "scale_x", "eps_weights", "sigmas", "stochastic")))

    def to_info(self) -> dict:
        """The JSON form stored under ``info["ggdm"]`` (W as ragged rows: row i has i+1 entries)."""
        W = self.eps_weights.detach().double()
        return {"scale_x": self.scale_x.detach().double().tolist(),
                "eps_weights": [W[i, : i + 1].tolist() for i in range(len(self))],
                "sigma": [float(s) if bool(m) else 0.0 for s, m in zip(self.sigmas.detach().double(), self.stochastic)]}

    @classmethod
    def from_plan(cls, plan: SamplingPlan) -> "GGDMCoefficients":
        """Read ``plan.info["ggdm"]``; raises WavefastError if it is missing or malformed."""
        data = plan.info.get(GGDM_KEY)
        if not isinstance(data, dict):
            raise WavefastError(f"plan {plan.name!r} carries no GGDM coefficients (info['{GGDM_KEY}'])")
        S = len(plan)
        try:
            scale_x = torch.tensor([float(v) for v in data["scale_x"]], dtype=torch.float64)
            rows = data["eps_weights"]
            sigma = torch.tensor([float(v) for v in data["sigma"]], dtype=torch.float64)
            W = torch.zeros(S, S, dtype=torch.float64)
            if len(rows) != S:
                raise ValueError(f"eps_weights has {len(rows)} rows")
            for i, row in enumerate(rows):
                if len(row) != i + 1:
                    raise ValueError(f"eps_weights row {i} has {len(row)} entries, expected {i + 1}")
                W[i, : i + 1] = torch.tensor([float(v) for v in row], dtype=torch.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise WavefastError(f"plan {plan.name!r}: malformed GGDM coefficients ({exc}); expected scale_x "
                                "(S numbers), eps_weights (S rows, row i with i+1 numbers), sigma (S numbers)"
                                ) from None
        if scale_x.numel() != S or sigma.numel() != S:
            raise WavefastError(f"plan {plan.name!r}: GGDM scale_x and sigma need {S} entries each (one per step)")
        if not (torch.isfinite(scale_x).all() and torch.isfinite(W).all() and torch.isfinite(sigma).all()):
            raise WavefastError(f"plan {plan.name!r}: GGDM coefficients contain NaN or Inf")
        if sigma[-1] != 0:
            raise WavefastError(f"plan {plan.name!r}: the last GGDM step must not add noise (sigma[-1] = 0)")
        return cls(torch.tensor(plan.steps, dtype=torch.float64), torch.tensor(plan.alpha_bars, dtype=torch.float64),
                   scale_x, W, sigma, sigma != 0)


def fastdpm_coefficients(alpha_bars: torch.Tensor, kappa: float):
    """Differentiable FastDPM coefficients (u, W_ii, sigma), each (S,), for increasing alpha_bars (S,).

    The formulas of :func:`wavefast.samplers.reverse.step_coefficients`, written so that
    no square root is taken at zero (the last step, a' = 1, has sigma = 0 and
    ``sqrt(1 - a' - sigma^2) = 0`` exactly).
    """
    ab = alpha_bars
    S = ab.shape[0]
    last = torch.zeros(S, dtype=torch.bool, device=ab.device)
    last[-1] = True
    nxt = torch.cat([ab[1:], ab.new_ones(1)])
    safe_nxt = torch.where(last, ab.new_full((S,), 0.5), nxt)  # any value < 1 keeps the masked branch finite
    safe_ab = torch.where(last, ab.new_full((S,), 0.25), ab)
    var = (1 - safe_nxt) / (1 - safe_ab) * (1 - safe_ab / safe_nxt)
    sigma = torch.where(last, ab.new_zeros(S), kappa * var.clamp_min(1e-300).sqrt()) if kappa > 0 else ab.new_zeros(S)
    rest = torch.where(last, ab.new_ones(S), 1 - safe_nxt - sigma ** 2).clamp_min(1e-300).sqrt()
    rest = torch.where(last, ab.new_zeros(S), rest)
    ratio = (nxt / ab).sqrt()
    return ratio, rest - (1 - ab).sqrt() * ratio, sigma


def _noise_at(noise: NoiseSource, k: int, x: torch.Tensor) -> torch.Tensor:
    if isinstance(noise, PerSampleNoise):
        return noise.randn(x.shape[1:]).to(device=x.device, dtype=x.dtype)
    if noise is None:
        raise WavefastError("this sampler has stochastic steps: pass noise (PerSampleNoise or pre-drawn tensors)")
    if k >= len(noise):
        raise WavefastError(f"got {len(noise)} pre-drawn noise tensors; the sampler needs one per stochastic step")
    return noise[k].to(device=x.device, dtype=x.dtype)


def ggdm_sample(denoiser: Denoiser, x_T: torch.Tensor, coefficients: GGDMCoefficients, *, noise: NoiseSource = None,
                clamp: Optional[float] = None, callback: Optional[Callable[[int, torch.Tensor], None]] = None,
                checkpoint: bool = False, progress: bool = False) -> torch.Tensor:
    """Run the GGDM chain (module docstring) from ``x_T`` to a sample.

    ``denoiser(x, t)`` with t a (B,) float tensor of model steps. ``noise``: a
    :class:`PerSampleNoise` (one draw per stochastic step, in order, as the FastDPM
    sampler draws) or pre-drawn tensors ``(K, B, ...)`` with K = number of stochastic
    steps (training uses these: the reparametrisation keeps them fixed).
    ``checkpoint=True`` rematerialises each denoiser call in the backward pass
    (``torch.utils.checkpoint``), so training memory is the S samples and model
    outputs plus one step's activations. Gradients flow to any coefficient tensor
    that requires them.
    """
    c = coefficients
    S = len(c)
    batch = x_T.shape[0]
    x = x_T
    eps_history: List[torch.Tensor] = []
    k = 0
    for i in tqdm(range(S), desc=f"sampling GGDM S={S}", leave=False, disable=not progress):
        t_batch = c.steps[i].to(torch.float32).to(x.device).expand(batch)
        if checkpoint and torch.is_grad_enabled():
            eps = _checkpoint(denoiser, x, t_batch, use_reentrant=False)
        else:
            eps = denoiser(x, t_batch)
        eps_history.append(eps)
        scale = lambda v: v.to(device=x.device, dtype=x.dtype)  # noqa: E731
        x = scale(c.scale_x[i]) * x + scale(c.eps_weights[i, i]) * eps
        for j in range(i):
            x = x + scale(c.eps_weights[i, j]) * eps_history[j]
        if bool(c.stochastic[i]):
            x = x + scale(c.sigmas[i]) * _noise_at(noise, k, x)
            k += 1
        if clamp is not None:
            x = x.clamp(-clamp, clamp)
        if callback is not None:
            callback(i, x)
    return x


def sample_with_plan(denoiser: Denoiser, x_T: torch.Tensor, plan: SamplingPlan, *, kappa: float = 1.0,
                     noise: Optional[PerSampleNoise] = None, clamp: Optional[float] = None,
                     callback=None, progress: bool = False) -> torch.Tensor:
    """The sampler a plan asks for: GGDM when it carries learned coefficients, else FastDPM.

    For a GGDM plan ``kappa`` is ignored: the noise scales are part of the learned
    coefficients.
    """
    if GGDM_KEY in plan.info:
        return ggdm_sample(denoiser, x_T, GGDMCoefficients.from_plan(plan), noise=noise, clamp=clamp,
                           callback=callback, progress=progress)
    return sample(denoiser, x_T, plan, kappa=kappa, noise=noise, clamp=clamp, callback=callback, progress=progress)


class _ChainMixin:
    """Shared by the learnable and the fixed sampler: noise drawing and running the chain."""

    def n_stochastic(self) -> int:
        return int(self.stochastic.sum())

    def draw_noise(self, item_shape, batch: int, generator: torch.Generator, dtype=torch.float32) -> torch.Tensor:
        """(K, B, *item_shape) standard normal for the K stochastic steps (fixed per sample in training)."""
        return torch.randn((self.n_stochastic(), batch, *item_shape), generator=generator, dtype=dtype)

    def forward(self, denoiser: Denoiser, x_T: torch.Tensor, noise: NoiseSource = None, *, checkpoint: bool = False,
                clamp: Optional[float] = None) -> torch.Tensor:
        return ggdm_sample(denoiser, x_T, self.coefficients(), noise=noise, checkpoint=checkpoint, clamp=clamp)


class FixedSampler(_ChainMixin, nn.Module):
    """A sampler with given coefficients (a FastDPM plan with kappa, or a learned GGDM plan); nothing to learn."""

    def __init__(self, plan: SamplingPlan, kappa: float = 0.0, schedule: Optional[LinearBetaSchedule] = None):
        super().__init__()
        if GGDM_KEY in plan.info:
            self._coefficients = GGDMCoefficients.from_plan(plan)
        else:
            ab = torch.tensor(plan.alpha_bars, dtype=torch.float64)
            u, w, sigma = fastdpm_coefficients(ab, check_kappa(kappa))
            self._coefficients = GGDMCoefficients(torch.tensor(plan.steps, dtype=torch.float64), ab, u, torch.diag(w),
                                                  sigma, sigma > 0)
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
        sigmas = torch.where(self.stochastic, sigma + self.d_sigma, torch.zeros_like(sigma))
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



class GGDMGraph(nn.Module):
    """A learned GGDM plan as an unrolled, ONNX-exportable module.

    Same contract as :class:`wavefast.runtime.onnx_export.SamplingGraph`:
    ``forward(mel?, x_T (B, L), noise? (K, B, L)) -> audio (B, L)`` with K =
    ``len(self.stochastic)`` noise slices (the ORT backend draws them in the torch
    sampler's order), coefficients and step embeddings baked in as constants.
    """

    def __init__(self, model, plan: SamplingPlan, folded: bool = True):
        super().__init__()
        from ..runtime.folded import make_denoiser

        c = GGDMCoefficients.from_plan(plan)
        self.conditional = model.spec.conditional
        self.folded = folded
        self.scale_x = c.scale_x.tolist()
        self.eps_weights = c.eps_weights.tolist()
        self.sigmas = c.sigmas.tolist()
        self.stochastic = [i for i in range(len(c)) if bool(c.stochastic[i])]
        self.denoiser = make_denoiser(model, c.steps.tolist(), folded)

    def forward(self, *inputs):
        from ..runtime.folded import lift, lower

        inputs = list(inputs)
        mel = inputs.pop(0) if self.conditional else None
        x = lift(inputs.pop(0), self.folded)
        noise = inputs.pop(0) if self.stochastic else None
        cond_terms = self.denoiser.prepare(mel, x.shape[-1])
        history = []
        for i in range(len(self.scale_x)):
            history.append(self.denoiser(x, i, cond_terms))
            x = self.scale_x[i] * x + self.eps_weights[i][i] * history[i]
            for j in range(i):
                if self.eps_weights[i][j] != 0.0:
                    x = x + self.eps_weights[i][j] * history[j]
            if i in self.stochastic:
                x = x + self.sigmas[i] * lift(noise[self.stochastic.index(i)], self.folded)
        return lower(x, self.folded)
