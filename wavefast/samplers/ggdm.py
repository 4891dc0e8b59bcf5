"""One coefficient form for every plan, and :func:`run_plan`, the one function that samples.

Every sampler here is a member of the GGDM family (Watson et al. 2022, arXiv 2202.05830):
for visited steps i = 0 .. S-1 (most noise first)::

    eps_i   = eps_theta(x_i, t_i)
    x_{i+1} = u_i x_i + sum_{j <= i} W_ij eps_j + c_i z_i          (x_0 = x_T, x_S = sample)

with ``z_i`` a fresh draw of the noise source on the stochastic steps (``c_i > 0``; the last
step never draws). FastDPM's reverse process with kappa (arXiv 2106.00132) is the special case
``W`` diagonal with, for ``a = alpha_bar_i`` and ``a' = alpha_bar_{i+1}`` (1 after the last
step)::

    sigma_i = kappa sqrt((1 - a') / (1 - a) (1 - a / a'))
    u_i     = sqrt(a' / a)
    W_ii    = sqrt(1 - a' - sigma_i^2) - sqrt(1 - a) sqrt(a' / a)
    c_i     = sigma_i

(:func:`fastdpm_coefficients`, the only place these formulas are written; kappa = 1 is
DDPM-rev, kappa = 0 DDIM-rev). A learned plan (``plan.info["ggdm"]``) carries its own u, W and
c, and its noise scales *are* its kappa: :func:`plan_kappa` refuses a different one.
Everything is shape-agnostic: audio (B, 1, L) and images (B, C, H, W).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional

import torch
from torch.utils.checkpoint import checkpoint as _checkpoint
from tqdm.auto import tqdm

from ..errors import WavefastError
from ..schedules.plans import SamplingPlan
from .noise import NoiseSource, as_noise_source

Denoiser = Callable[..., torch.Tensor]

#: key of learned coefficients inside ``SamplingPlan.info`` (and a plan JSON's ``info``)
GGDM_KEY = "ggdm"
DEFAULT_KAPPA = 1.0


def check_kappa(kappa) -> float:
    if isinstance(kappa, bool):
        raise WavefastError(f"kappa must be a number in [0, 1], got {kappa!r}")
    try:
        kappa = float(kappa)
    except (TypeError, ValueError):
        raise WavefastError(f"kappa must be a number in [0, 1], got {kappa!r}") from None
    if not (0.0 <= kappa <= 1.0):
        raise WavefastError(f"kappa must lie in [0, 1] (1 = DDPM-rev, 0 = DDIM-rev), got {kappa}")
    return kappa


def is_learned(plan: SamplingPlan) -> bool:
    """True for a plan that carries learned GGDM coefficients."""
    return GGDM_KEY in plan.info


def learned_kappa(plan: SamplingPlan) -> Optional[float]:
    """The kappa a learned plan was trained with (its noise scales), or None if not recorded."""
    for where in (plan.info.get("learned"), plan.info):
        if isinstance(where, dict) and isinstance(where.get("kappa"), (int, float)) and not isinstance(
                where.get("kappa"), bool):
            return float(where["kappa"])
    return None


def plan_kappa(plan: SamplingPlan, kappa: Optional[float] = None) -> float:
    """The kappa a plan runs with: the user's for FastDPM plans (default 1), the plan's own for learned ones.

    A learned plan's noise scales are learned coefficients, so an explicit different kappa is
    an error rather than silently ignored.
    """
    if not is_learned(plan):
        return DEFAULT_KAPPA if kappa is None else check_kappa(kappa)
    own = learned_kappa(plan)
    if kappa is not None:
        kappa = check_kappa(kappa)
        if own is None or abs(kappa - own) > 1e-12:
            what = "a solver (deterministic by construction)" if plan.info.get("kind") == "solver" else \
                "a learned sampler whose noise scales were learned"
            raise WavefastError(f"plan {plan.name!r} is {what} (kappa={own}); it cannot run with "
                                f"kappa={kappa}: drop --kappa / kappa=")
    return own if own is not None else (1.0 if any(plan.info[GGDM_KEY].get("sigma", [])) else 0.0)


def fastdpm_coefficients(alpha_bars: torch.Tensor, kappa: float):
    """FastDPM (u, W_ii, sigma), each (S,), for increasing alpha_bars (S,); differentiable in alpha_bars.

    Written so that no square root is taken at zero (the last step, a' = 1, has sigma = 0 and
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
    flat = last | (var <= 0)  # the last step, and a repeated step (a' = a: FastDPM's no-op update)
    sigma = torch.where(flat, ab.new_zeros(S), kappa * var.clamp_min(1e-300).sqrt()) if kappa > 0 else ab.new_zeros(S)
    rest = torch.where(last, ab.new_ones(S), 1 - safe_nxt - sigma ** 2).clamp_min(1e-300).sqrt()
    rest = torch.where(last, ab.new_zeros(S), rest)
    ratio = (nxt / ab).sqrt()
    return ratio, rest - (1 - ab).sqrt() * ratio, sigma


@dataclass(frozen=True)
class PlanCoefficients:
    """Everything :func:`run_plan` needs, as float64 tensors (S = number of steps).

    steps (S,) model steps t_i (decreasing); alpha_bars (S,) increasing; scale_x (S,) u_i;
    eps_weights (S, S) lower-triangular W; sigmas (S,) c_i; stochastic (S,) bool: the steps
    that draw noise.
    """

    steps: torch.Tensor
    alpha_bars: torch.Tensor
    scale_x: torch.Tensor
    eps_weights: torch.Tensor
    sigmas: torch.Tensor
    stochastic: torch.Tensor

    def __len__(self) -> int:
        return int(self.steps.shape[0])

    @property
    def draws(self) -> int:
        """Fresh noise tensors the chain draws after x_T."""
        return int(self.stochastic.sum())

    def detach(self) -> "PlanCoefficients":
        return PlanCoefficients(*(getattr(self, f).detach().clone() for f in
                                  ("steps", "alpha_bars", "scale_x", "eps_weights", "sigmas", "stochastic")))

    def to_info(self) -> dict:
        """The JSON form stored under ``info["ggdm"]`` (W as ragged rows: row i has i+1 entries)."""
        W = self.eps_weights.detach().double()
        return {"scale_x": self.scale_x.detach().double().tolist(),
                "eps_weights": [W[i, : i + 1].tolist() for i in range(len(self))],
                "sigma": [float(s) if bool(m) else 0.0 for s, m in zip(self.sigmas.detach().double(), self.stochastic)]}

    @classmethod
    def fastdpm(cls, plan: SamplingPlan, kappa: float) -> "PlanCoefficients":
        ab = torch.tensor(plan.alpha_bars, dtype=torch.float64)
        u, w, sigma = fastdpm_coefficients(ab, check_kappa(kappa))
        return cls(torch.tensor(plan.steps, dtype=torch.float64), ab, u, torch.diag(w), sigma, sigma > 0)

    @classmethod
    def learned(cls, plan: SamplingPlan) -> "PlanCoefficients":
        """Read ``plan.info["ggdm"]``; WavefastError if it is missing or malformed."""
        data = plan.info.get(GGDM_KEY)
        if not isinstance(data, dict):
            raise WavefastError(f"plan {plan.name!r} carries no GGDM coefficients (info['{GGDM_KEY}'])")
        S = len(plan)
        try:
            scale_x = torch.tensor([_number(v) for v in data["scale_x"]], dtype=torch.float64)
            rows = data["eps_weights"]
            sigma = torch.tensor([_number(v) for v in data["sigma"]], dtype=torch.float64)
            W = torch.zeros(S, S, dtype=torch.float64)
            if not isinstance(rows, list) or len(rows) != S:
                raise ValueError(f"eps_weights has {len(rows) if isinstance(rows, list) else 'no'} rows")
            for i, row in enumerate(rows):
                if not isinstance(row, list) or len(row) != i + 1:
                    raise ValueError(f"eps_weights row {i} must hold {i + 1} numbers")
                W[i, : i + 1] = torch.tensor([_number(v) for v in row], dtype=torch.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise WavefastError(f"plan {plan.name!r}: malformed GGDM coefficients ({exc}); expected scale_x "
                                "(S numbers), eps_weights (S rows, row i with i+1 numbers), sigma (S numbers)"
                                ) from None
        if scale_x.numel() != S or sigma.numel() != S:
            raise WavefastError(f"plan {plan.name!r}: GGDM scale_x and sigma need {S} entries each (one per step)")
        if not (torch.isfinite(scale_x).all() and torch.isfinite(W).all() and torch.isfinite(sigma).all()):
            raise WavefastError(f"plan {plan.name!r}: GGDM coefficients contain NaN or Inf")
        if (sigma < 0).any():
            raise WavefastError(f"plan {plan.name!r}: GGDM noise scales (sigma) must be >= 0")
        if sigma[-1] != 0:
            raise WavefastError(f"plan {plan.name!r}: the last GGDM step must not add noise (sigma[-1] = 0)")
        return cls(torch.tensor(plan.steps, dtype=torch.float64), torch.tensor(plan.alpha_bars, dtype=torch.float64),
                   scale_x, W, sigma, sigma != 0)

    @classmethod
    def from_plan(cls, plan: SamplingPlan, kappa: Optional[float] = None) -> "PlanCoefficients":
        """The coefficients a plan runs with (see :func:`plan_kappa` for kappa)."""
        kappa = plan_kappa(plan, kappa)
        return cls.learned(plan) if is_learned(plan) else cls.fastdpm(plan, kappa)


#: the name the learned-sampler module used
GGDMCoefficients = PlanCoefficients


def _number(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def coefficients_for(plan: SamplingPlan, kappa: Optional[float] = None) -> PlanCoefficients:
    return PlanCoefficients.from_plan(plan, kappa)


def noise_draws(plan: SamplingPlan, kappa: Optional[float] = None) -> int:
    """Fresh noise tensors a plan draws after x_T (its stochastic steps): what an export takes as input."""
    return coefficients_for(plan, kappa).draws


def run_coefficients(denoiser: Denoiser, x_T: torch.Tensor, coefficients: PlanCoefficients, *,
                     noise: Optional[NoiseSource] = None, cond=None, clamp: Optional[float] = None,
                     callback: Optional[Callable[[int, torch.Tensor], None]] = None, checkpoint: bool = False,
                     progress: bool = False, name: str = "plan") -> torch.Tensor:
    """Run the chain of the module docstring from ``x_T`` with given coefficients.

    ``denoiser(x, t)`` (or ``denoiser(x, t, cond)`` when ``cond`` is given) with t a (B,)
    float tensor of model steps returns eps. ``noise`` draws one tensor per stochastic step
    (a :class:`~wavefast.samplers.noise.NoiseSource` or pre-drawn (K, B, ...) tensors).
    ``checkpoint=True`` rematerialises each denoiser call in the backward pass (training
    memory = the S samples and outputs plus one step's activations); gradients flow to any
    coefficient tensor that requires them. ``clamp`` clips x after each step (off by default);
    ``callback(i, x)`` runs after step i.
    """
    c = coefficients
    S = len(c)
    source = as_noise_source(noise)
    if source is None and c.draws:
        raise WavefastError("this plan has stochastic steps (kappa > 0): pass a noise source (seeds)")
    call = denoiser if cond is None else (lambda x, t: denoiser(x, t, cond))
    batch = x_T.shape[0]
    x = x_T
    history: List[torch.Tensor] = []
    diagonal_only = bool((c.eps_weights - torch.diag(torch.diagonal(c.eps_weights))).abs().max() == 0) if S > 1 else True
    for i in tqdm(range(S), desc=f"sampling {name} S={S}", leave=False, disable=not progress):
        t_batch = c.steps[i].to(torch.float32).to(x.device).expand(batch)
        if checkpoint and torch.is_grad_enabled():
            eps = _checkpoint(call, x, t_batch, use_reentrant=False)
        else:
            eps = call(x, t_batch)
        scale = lambda v: v.to(device=x.device, dtype=x.dtype)  # noqa: E731
        x = scale(c.scale_x[i]) * x + scale(c.eps_weights[i, i]) * eps
        if not diagonal_only:
            history.append(eps)
            for j in range(i):
                x = x + scale(c.eps_weights[i, j]) * history[j]
        if bool(c.stochastic[i]):
            z = source.randn(tuple(x.shape[1:])).to(device=x.device, dtype=x.dtype)
            x = x + scale(c.sigmas[i]) * z
        if clamp is not None:
            x = x.clamp(-clamp, clamp)
        if callback is not None:
            callback(i, x)
    return x


def run_plan(denoiser: Denoiser, x_T: torch.Tensor, plan: SamplingPlan, *, kappa: Optional[float] = None,
             noise: Optional[NoiseSource] = None, cond=None, clamp: Optional[float] = None,
             callback: Optional[Callable[[int, torch.Tensor], None]] = None, progress: bool = False) -> torch.Tensor:
    """Sample with any plan: FastDPM rule/preset/JSON plans with ``kappa`` (default 1) or a learned plan.

    See :func:`run_coefficients` for the arguments; ``x_T`` is the noise source's first draw
    (or anything else the caller wants to start from).
    """
    if clamp is not None and not (isinstance(clamp, (int, float)) and not isinstance(clamp, bool) and clamp > 0):
        raise WavefastError(f"clamp must be a positive number (x is clipped to [-clamp, clamp]), got {clamp!r}")
    return run_coefficients(denoiser, x_T, coefficients_for(plan, kappa), noise=noise, cond=cond, clamp=clamp,
                            callback=callback, progress=progress, name=plan.name)
