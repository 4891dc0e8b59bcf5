"""Linear-beta noise schedule with continuous-step extensions (FastDPM, arXiv 2106.00132).

Discrete: ``beta_n = beta_0 + n * dbeta`` for n = 0 .. T-1, ``dbeta = (beta_T - beta_0)/(T-1)``,
``alpha_bar_n = prod_{i=0..n} (1 - beta_i)``. Steps are 0-indexed as in the
published code: step n is the model input for noise level ``alpha_bar_n``.

Continuous steps (``method``):

- ``"lgamma"`` (exact, default): with ``c = (1 - beta_0) / dbeta``,
  ``1 - beta_i = dbeta (c - i)``, hence for real t > -1
  ``log alpha_bar(t) = (t+1) log dbeta + lgamma(c+1) - lgamma(c-t)``,
  equal to the discrete product at integer t. The inverse ``t(alpha_bar)`` is
  found by bisection in float64 (monotone).
- ``"stirling"``: FastDPM's published mapping, the same formula with Stirling's
  approximation ``log Gamma(y+1) ~ log sqrt(2 pi y) + y(log y - 1) + log(1 + 1/(12y))``.
- ``"lmnt"``: lmnt-com/diffwave's fast-sampling mapping, linear interpolation of
  ``sqrt(alpha_bar)`` between integer steps.

The function ``t -> alpha_bar(t)`` is decreasing; the trained range is
``[alpha_bar_{T-1}, alpha_bar_0]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch

from ..errors import WavefastError, check_choice

CONTINUOUS_METHODS = ("lgamma", "stirling", "lmnt")


def _as_f64(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float64)


def _stirling_log_gamma(x: torch.Tensor) -> torch.Tensor:
    """FastDPM's approximation of log Gamma(x), with y = x - 1."""
    y = x - 1.0
    return 0.5 * torch.log(2 * math.pi * y) + y * (torch.log(y) - 1.0) + torch.log(1.0 + 1.0 / (12.0 * y))


@dataclass(frozen=True)
class LinearBetaSchedule:
    """The model's noise schedule: ``beta = linspace(beta_0, beta_T, T)``; all tensors float64.

    Also the diffusion part of a :class:`~wavefast.models.spec.ModelSpec` (``DiffusionSpec``
    is this class), so a model's spec and its schedule are one object.
    """

    T: int
    beta_0: float
    beta_T: float

    def __post_init__(self):
        if isinstance(self.T, bool) or not isinstance(self.T, int) or self.T < 1:
            raise WavefastError(f"T (diffusion steps) must be a whole number >= 1, got {self.T!r}")
        for name in ("beta_0", "beta_T"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise WavefastError(f"{name} must be a number, got {value!r}")
        if not (0.0 < self.beta_0 <= self.beta_T < 1.0):
            raise WavefastError(f"need 0 < beta_0 <= beta_T < 1, got beta_0={self.beta_0}, beta_T={self.beta_T}")

    @classmethod
    def from_spec(cls, diffusion) -> "LinearBetaSchedule":
        if isinstance(diffusion, cls):
            return diffusion
        return cls(int(diffusion.T), float(diffusion.beta_0), float(diffusion.beta_T))

    # --- forward process (training) ------------------------------------------------
    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` for integer steps t (B,); x0, eps (B, ...).

        Ho et al. 2020, eq. 4 (0-indexed steps: t = 0 is the least noise). The one forward
        noising that every trainer uses.
        """
        ab = self.alpha_bar_discrete.to(device=x0.device, dtype=x0.dtype)[t.long()]
        ab = ab.view(-1, *([1] * (x0.dim() - 1)))
        return ab.sqrt() * x0 + (1.0 - ab).sqrt() * eps

    # --- discrete ------------------------------------------------------------------
    @cached_property
    def betas(self) -> torch.Tensor:
        return torch.linspace(self.beta_0, self.beta_T, self.T, dtype=torch.float64)

    @cached_property
    def alpha_bar_discrete(self) -> torch.Tensor:
        return torch.cumprod(1.0 - self.betas, dim=0)

    @property
    def trained_range(self):
        """(smallest, largest) alpha_bar the model saw in training."""
        ab = self.alpha_bar_discrete
        return float(ab[-1]), float(ab[0])

    @property
    def _dbeta(self) -> float:
        return (self.beta_T - self.beta_0) / (self.T - 1) if self.T > 1 else 0.0

    # --- continuous ----------------------------------------------------------------
    def log_alpha_bar(self, t, method: str = "lgamma") -> torch.Tensor:
        """log alpha_bar at real steps t (tensor or float), float64."""
        check_choice("continuous-step method", method, CONTINUOUS_METHODS)
        t = _as_f64(t)
        if method == "lmnt":
            return 2.0 * torch.log(self._sqrt_alpha_bar_interp(t))
        dbeta = self._dbeta
        if dbeta == 0.0:  # constant beta: alpha_bar(t) = (1 - beta)^(t+1)
            return (t + 1.0) * math.log1p(-self.beta_0)
        c = (1.0 - self.beta_0) / dbeta
        if method == "lgamma":
            return (t + 1.0) * math.log(dbeta) + math.lgamma(c + 1.0) - torch.lgamma(c - t)
        return (t + 1.0) * math.log(dbeta) + _stirling_log_gamma(_as_f64(c + 1.0)) - _stirling_log_gamma(c - t)

    def alpha_bar(self, t, method: str = "lgamma") -> torch.Tensor:
        return torch.exp(self.log_alpha_bar(t, method))

    def _sqrt_alpha_bar_interp(self, t: torch.Tensor) -> torch.Tensor:
        root = self.alpha_bar_discrete.sqrt()
        t = t.clamp(0.0, self.T - 1.0)
        low = torch.floor(t).long().clamp(max=self.T - 1)
        high = (low + 1).clamp(max=self.T - 1)
        return root[low] + (t - low.double()) * (root[high] - root[low])

    def step_for_alpha_bar(self, alpha_bar, method: str = "lgamma") -> torch.Tensor:
        """Inverse map: the real step t with ``alpha_bar(t) = alpha_bar`` (float64).

        ``alpha_bar`` must lie in ``[alpha_bar(T-1), alpha_bar(-1) = 1)`` for the
        Gamma methods and in the trained range for ``lmnt``; bisection to 1e-12.
        """
        check_choice("continuous-step method", method, CONTINUOUS_METHODS)
        target = torch.log(_as_f64(alpha_bar))
        lo = torch.full_like(target, -1.0 + 1e-9 if method != "lmnt" else 0.0)
        hi = torch.full_like(target, float(self.T - 1))
        for _ in range(100):  # interval halves each time: 2^-100 * T
            mid = 0.5 * (lo + hi)
            above = self.log_alpha_bar(mid, method) > target  # still too little noise: go later
            lo = torch.where(above, mid, lo)
            hi = torch.where(above, hi, mid)
        return 0.5 * (lo + hi)
