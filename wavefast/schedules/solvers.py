"""Training-free solver baselines as fixed-coefficient plans: DPM-Solver++ (2M).

DPM-Solver++ (Lu et al. 2022, arXiv 2211.01095, Algorithm 2) integrates the diffusion ODE in
log-SNR ``lambda = log(alpha / sigma)`` with data prediction ``x0_i = (x_i - sigma_i eps_i) / alpha_i``
(``alpha = sqrt(alpha_bar)``, ``sigma = sqrt(1 - alpha_bar)``). With ``h_i = lambda_{i+1} - lambda_i``
and ``r_i = h_{i-1} / h_i`` the multistep update is::

    D_i     = (1 + 1 / (2 r_i)) x0_i - 1 / (2 r_i) x0_{i-1}          (first step: D_0 = x0_0)
    x_{i+1} = (sigma_{i+1} / sigma_i) x_i - alpha_{i+1} (exp(-h_i) - 1) D_i

whose first-order case (D_i = x0_i) is DDIM. The last step goes to the data (alpha = 1, sigma = 0,
h = inf), where the 2M correction is undefined; as the reference implementation does for few steps
(``lower_order_final``) it is taken first order: the output is ``x0`` of the last visited step.

Every iterate of a deterministic linear multistep method is a linear combination of ``x_T`` and
the eps predictions so far. :func:`multistep_to_ggdm` tracks those combinations (a row over
``[x_T, eps_0 .. eps_{S-1}]``) and rewrites each update into the one coefficient form of
:mod:`wavefast.samplers.ggdm`, ``x_{i+1} = u_i x_i + sum_{j<=i} W_ij eps_j`` (``u_i`` = ratio of
the ``x_T`` coefficients), so a solver plan runs through ``run_plan``, batches, chunks and exports
to ONNX exactly like a learned plan (``info["ggdm"]``, noise scales zero, kappa 0).

Steps: S visited levels uniform in lambda from the last trained step (T-1) to step 0 (DPM-Solver's
``logSNR`` skip type), mapped to continuous model steps by the exact inverse of alpha_bar.
"""

from __future__ import annotations

import math

import torch

from ..errors import WavefastError
from .noise import CONTINUOUS_METHODS, LinearBetaSchedule
from .plans import SamplingPlan, _check_steps, _snap_steps

SOLVER_PLANS = ("dpm-solver++2m",)


def logsnr_alpha_bars(schedule: LinearBetaSchedule, S: int) -> torch.Tensor:
    """S noise levels (increasing alpha_bar, float64) uniform in lambda from step T-1 to step 0."""
    ab = schedule.alpha_bar_discrete.double()
    lam = lambda a: 0.5 * torch.log(a / (1 - a))  # noqa: E731
    if S == 1:
        return ab[-1:].clone()
    lams = torch.linspace(float(lam(ab[-1])), float(lam(ab[0])), S, dtype=torch.float64)
    out = torch.sigmoid(2 * lams)  # alpha_bar = 1 / (1 + exp(-2 lambda))
    out[0], out[-1] = ab[-1], ab[0]  # exactly on the trained ends
    return out


def dpm_solver_pp_2m_rows(alpha_bars: torch.Tensor) -> torch.Tensor:
    """Iterates x_0..x_S (x_0 = x_T) of DPM-Solver++(2M) as rows over [x_T, eps_0..eps_{S-1}]: (S+1, S+1)."""
    ab = alpha_bars.double()
    S = ab.shape[0]
    alpha, sigma = ab.sqrt(), (1 - ab).sqrt()
    lam = torch.log(alpha / sigma)
    X = torch.zeros(S + 1, S + 1, dtype=torch.float64)
    X[0, 0] = 1.0
    x0 = []  # data predictions as rows
    for i in range(S):
        e = torch.zeros(S + 1, dtype=torch.float64)
        e[1 + i] = 1.0
        x0.append((X[i] - sigma[i] * e) / alpha[i])
        if i == S - 1:  # to the data, first order: the output is x0 of the last visited level
            X[i + 1] = x0[i]
            continue
        h = lam[i + 1] - lam[i]
        if i == 0:
            D = x0[0]
        else:
            r = (lam[i] - lam[i - 1]) / h
            D = (1 + 1 / (2 * r)) * x0[i] - (1 / (2 * r)) * x0[i - 1]
        X[i + 1] = (sigma[i + 1] / sigma[i]) * X[i] - alpha[i + 1] * torch.expm1(-h) * D
    return X


def multistep_to_ggdm(rows: torch.Tensor) -> dict:
    """Rows over [x_T, eps...] of iterates x_0..x_S -> GGDM ``{"scale_x", "eps_weights", "sigma"}``.

    ``u_i = X[i+1, 0] / X[i, 0]`` and ``W_i = X[i+1] - u_i X[i]`` over eps_0..eps_i; a method
    that used an eps it had not yet computed (or whose x_T coefficient vanishes) is refused.
    """
    S = rows.shape[0] - 1
    scale_x, eps_weights = [], []
    for i in range(S):
        if abs(float(rows[i, 0])) < 1e-300:
            raise WavefastError(f"multistep solver: iterate {i} has lost x_T (coefficient 0); no GGDM form")
        u = rows[i + 1, 0] / rows[i, 0]
        w = rows[i + 1] - u * rows[i]
        ahead = w[2 + i:]
        if ahead.numel() and float(ahead.abs().max()) > 1e-9 * float(rows[i + 1].abs().max()):
            raise WavefastError(f"multistep solver: step {i} uses eps predictions it has not made yet")
        scale_x.append(float(u))
        eps_weights.append(w[1:2 + i].tolist())
    return {"scale_x": scale_x, "eps_weights": eps_weights, "sigma": [0.0] * S}


def solver_plan(schedule: LinearBetaSchedule, name: str, S: int, method: str = "lgamma") -> SamplingPlan:
    """The plan ``name`` (one of :data:`SOLVER_PLANS`) with S network calls."""
    if name not in SOLVER_PLANS:
        raise WavefastError(f"unknown solver {name!r}; allowed: {', '.join(SOLVER_PLANS)}")
    if method not in CONTINUOUS_METHODS:
        raise WavefastError(f"unknown continuous-step method {method!r}; allowed: {', '.join(CONTINUOUS_METHODS)}")
    S = _check_steps(S, schedule.T)
    ab = logsnr_alpha_bars(schedule, S)
    if S > 1 and bool((ab[1:] <= ab[:-1]).any()):
        raise WavefastError(f"{name}: {S} steps do not fit between the trained noise levels")
    steps = _snap_steps(schedule.step_for_alpha_bar(ab, method), schedule)
    steps[-1] = 0.0 if S > 1 else steps[-1]
    steps[0] = float(schedule.T - 1)  # the levels sit exactly on the trained ends
    ggdm = multistep_to_ggdm(dpm_solver_pp_2m_rows(ab))
    info = {"kind": "solver", "solver": name, "spacing": "logsnr", "method": method, "kappa": 0.0, "ggdm": ggdm,
            "note": "DPM-Solver++(2M), Lu et al. 2022 (arXiv 2211.01095); final step first order"}
    plan = SamplingPlan(tuple(float(t) for t in steps), tuple(float(a) for a in ab), name, info)  # most noise first
    if not all(math.isfinite(v) for v in ggdm["scale_x"]):
        raise WavefastError(f"{name}: non-finite coefficients at S={S}")
    return plan
