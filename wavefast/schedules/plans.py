"""Step plans: which S noise levels a sampler visits, and at which model steps.

A :class:`SamplingPlan` lists, in the order the sampler visits them (most noise
first), the continuous model step ``t_i`` fed to the network and the noise level
``alpha_bar_i`` used by the update; after the last entry the sampler jumps to
``alpha_bar = 1`` (x_0). Builders (FastDPM, arXiv 2106.00132, Sec. 4):

- ``step-linear``:    tau_i = floor(i (T-1)/(S-1)),              i = 0..S-1
- ``step-quadratic``: tau_i = floor((i sqrt(0.8 T)/(S-1))^2)
- ``var-linear``:     betas linspace(beta_0, x, S), x such that prod(1-beta) = alpha_bar_{T-1}
- ``var-quadratic``:  betas beta_0 (1 + i x)^2, x likewise
  (VAR steps are mapped to continuous steps t = alpha_bar^{-1}(prod_{j<=i}(1-beta_j)))
- ``dpm-solver++2m``: DPM-Solver++ (2M), S steps uniform in log-SNR (:mod:`.solvers`)
- ``ddpm`` / ``full``: all T integer steps
- named presets (published noise lists), JSON plan files and BDDM ``.ns`` schedule files (:mod:`.bddm`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Tuple

import torch

from ..errors import WavefastError, check_choice
from .noise import CONTINUOUS_METHODS, LinearBetaSchedule

PLAN_FORMAT = "wavefast-plan"
RULE_PLANS = ("step-linear", "step-quadratic", "var-linear", "var-quadratic")
#: the exact-root VAR and de-duplicated STEP variants (the published names reproduce FastDPM's code)
VARIANT_PLANS = ("step-linear-unique", "step-quadratic-unique", "var-linear-exact", "var-quadratic-exact")
VAR_CAP = 0.95  # FastDPM's code bisects the quadratic VAR x in (0, 0.95 / (S sqrt(beta_0)))
FULL_PLANS = ("ddpm", "full")

#: Published few-step noise schedules (betas of the short chain), REFERENCE.md section 2.
PRESETS = {
    "diffwave-base-6": ([1e-4, 1e-3, 0.01, 0.05, 0.2, 0.5], "DiffWave BASE (T=50) fast schedule, Kong et al. 2021"),
    "diffwave-large-6": ([1e-4, 1e-3, 0.01, 0.05, 0.2, 0.7], "DiffWave LARGE (T=200) fast schedule, Kong et al. 2021"),
    "wavegrad-6": ([1e-6, 1.9e-5, 1e-4, 1e-3, 0.0111, 0.06], "WaveGrad 6-iteration grid-search schedule"),
}


LEARNED_DIR = Path(__file__).resolve().parent / "learned"


def shipped_learned_plans() -> dict:
    """Learned plans shipped with the package: name (file stem) -> path."""
    return {p.stem: p for p in sorted(LEARNED_DIR.glob("*.json"))} if LEARNED_DIR.is_dir() else {}


def schedule_names() -> Tuple[str, ...]:
    from .solvers import SOLVER_PLANS

    return RULE_PLANS + VARIANT_PLANS + SOLVER_PLANS + FULL_PLANS + tuple(PRESETS) + tuple(shipped_learned_plans())


@dataclass(frozen=True)
class SamplingPlan:
    """S visited steps. ``steps`` decreasing, ``alpha_bars`` increasing, both length S."""

    steps: Tuple[float, ...]
    alpha_bars: Tuple[float, ...]
    name: str = "custom"
    info: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        if len(self.steps) != len(self.alpha_bars) or len(self.steps) == 0:
            raise WavefastError("a plan needs the same, non-zero number of steps and alpha_bar values")
        ab = list(self.alpha_bars)
        if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) for t in self.steps):
            raise WavefastError(f"plan {self.name!r}: steps must be finite numbers, got {list(self.steps)}")
        if not all(isinstance(a, (int, float)) and not isinstance(a, bool) and 0.0 < a < 1.0 for a in ab):
            raise WavefastError(f"plan {self.name!r}: every alpha_bar must lie in (0, 1), got {ab}")
        repeats = bool(self.info.get("repeated_steps")) if isinstance(self.info, dict) else False
        if any(b < a or (b == a and not repeats) for a, b in zip(ab, ab[1:])):
            raise WavefastError(f"plan {self.name!r}: alpha_bar must increase strictly along the plan "
                                f"(each step removes noise); got {ab}")

    def __len__(self) -> int:
        return len(self.steps)

    def next_alpha_bars(self) -> Tuple[float, ...]:
        """alpha_bar after each step (1.0 after the last one)."""
        return tuple(self.alpha_bars[1:]) + (1.0,)

    def to_dict(self) -> dict:
        return {"format": PLAN_FORMAT, "version": 1, "name": self.name, "steps": list(self.steps),
                "alpha_bar": list(self.alpha_bars), "info": self.info}

    def save(self, path) -> None:
        from ..fileio import atomic_output

        with atomic_output(path, ".json") as tmp:
            Path(tmp).write_text(json.dumps(self.to_dict(), indent=2))


# --- builders ---------------------------------------------------------------------------
def _check_steps(S: int, T: int) -> int:
    if isinstance(S, bool) or int(S) != S:
        raise WavefastError(f"steps must be a whole number, got {S!r}")
    S = int(S)
    if S < 1 or S > T:
        raise WavefastError(f"steps must be between 1 and T={T} (the model's diffusion length), got {S}")
    return S


def _plan_from_integer_steps(schedule: LinearBetaSchedule, taus: Sequence[int], name: str, info: dict,
                             repeats: str = "refuse") -> SamplingPlan:
    """A plan over integer steps (most noise first). ``repeats``: what to do with a repeated step:
    ``"keep"`` (FastDPM's code: the repeat is a no-op update that still calls the network; a warning
    says so), ``"drop"`` (keep each step once: fewer steps) or ``"refuse"``."""
    import warnings

    taus = sorted(int(t) for t in taus)
    unique = sorted(set(taus))
    if len(unique) != len(taus):
        if repeats == "refuse":
            raise WavefastError(f"{name} with {len(taus)} steps at T={schedule.T} repeats a step; "
                                "use fewer steps or a var-* schedule")
        if repeats == "drop":
            warnings.warn(f"{name}: {len(taus) - len(unique)} repeated steps dropped ({len(unique)} of {len(taus)} "
                          "remain)", stacklevel=3)
            taus = unique
            info = dict(info, deduplicated=True)
        else:
            warnings.warn(f"{name} with {len(taus)} steps at T={schedule.T} repeats {len(taus) - len(unique)} steps, "
                          "as FastDPM's code does: each repeat is a no-op update that still calls the network "
                          f"(use {name}-unique to drop them)", stacklevel=3)
            info = dict(info, repeated_steps=True)
    ab = schedule.alpha_bar_discrete
    ordered = list(reversed(taus))
    return SamplingPlan(tuple(float(t) for t in ordered), tuple(float(ab[t]) for t in ordered), name, info)


def step_plan(schedule: LinearBetaSchedule, S: int, spacing: str = "linear", repeats: str = "keep") -> SamplingPlan:
    """FastDPM STEP: S integer steps of the trained chain (ends at step 0).

    Quadratic spacing ``int(linspace(0, sqrt(0.8 T), S)^2)`` repeats small steps for large S;
    ``repeats="keep"`` runs them as FastDPM's code does (no-op updates), ``"drop"`` de-duplicates.
    """
    check_choice("STEP spacing", spacing, ("linear", "quadratic"))
    S = _check_steps(S, schedule.T)
    if S < 2:
        raise WavefastError("STEP schedules need at least 2 steps (the last one is step 0); use var-* for 1 step")
    T = schedule.T
    if spacing == "linear":
        c = (T - 1.0) / (S - 1.0)
        taus = [math.floor(i * c) for i in range(S)]
    else:
        taus = [int(v) for v in (torch.linspace(0, math.sqrt(T * 0.8), S, dtype=torch.float64) ** 2).tolist()]
    name = f"step-{spacing}" + ("-unique" if repeats == "drop" else "")
    return _plan_from_integer_steps(schedule, taus, name, {"kind": "step", "spacing": spacing}, repeats)


def full_plan(schedule: LinearBetaSchedule) -> SamplingPlan:
    """All T steps: with kappa = 1 this is the original DDPM sampler."""
    return _plan_from_integer_steps(schedule, range(schedule.T), "ddpm", {"kind": "full"})


def _bisect_decreasing(f, lo: float, hi: float, target: float, iters: int = 200) -> float:
    """x in [lo, hi] with f(x) = target for decreasing f."""
    if not (f(hi) <= target <= f(lo)):
        raise WavefastError("no VAR noise schedule with these steps reaches the model's final noise level")
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if f(mid) > target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def var_betas(schedule: LinearBetaSchedule, S: int, spacing: str = "linear", bound: str = "published") -> torch.Tensor:
    """FastDPM VAR noise list: S betas whose product prod(1 - beta) is alpha_bar_{T-1}.

    ``bound="published"`` (the names ``var-*``) follows FastDPM's code: the quadratic family
    ``beta_0 (1 + i x)^2`` is searched only up to ``x = 0.95 / (S sqrt(beta_0))``; for small S
    (e.g. S=6 at T=200) the root lies past that cap and the schedule stops short of
    alpha_bar_{T-1}, while sampling still starts from N(0, I) (2.5 steps off at S=6, T=200).
    ``bound="exact"`` (``var-*-exact``) solves the root exactly, so the chain starts at the trained
    final noise level.
    """
    check_choice("VAR spacing", spacing, ("linear", "quadratic"))
    S = _check_steps(S, schedule.T)
    target = float(schedule.alpha_bar_discrete[-1])
    b0 = schedule.beta_0
    if S == 1:
        return torch.tensor([1.0 - target], dtype=torch.float64)
    idx = torch.arange(S, dtype=torch.float64)
    if spacing == "linear":
        g = lambda x: b0 + (x - b0) * idx / (S - 1)
        lo, hi = b0, 1.0 - 1e-12
    else:
        g = lambda x: b0 * (1.0 + idx * x) ** 2
        lo, hi = 0.0, ((1.0 - 1e-12) / math.sqrt(b0) - 1.0) / (S - 1)
        if bound == "published":
            cap = VAR_CAP / (S * math.sqrt(b0))
            if cap < hi and float(torch.prod(1.0 - g(cap))) > target:  # the root lies past the cap
                return g(cap)
    x = _bisect_decreasing(lambda x: float(torch.prod(1.0 - g(x))), lo, hi, target)
    return g(x)


def plan_from_betas(schedule: LinearBetaSchedule, betas: Sequence[float], name: str = "custom",
                    method: str = "lgamma", info: Optional[dict] = None) -> SamplingPlan:
    """A user noise list ``betas`` (short chain, first = least noise) as a plan.

    ``gamma_bar_i = prod_{j<=i} (1 - beta_j)`` and ``t_i = alpha_bar^{-1}(gamma_bar_i)``
    (``method``: lgamma exact, stirling as FastDPM, lmnt as lmnt-com/diffwave).
    """
    check_choice("continuous-step method", method, CONTINUOUS_METHODS)
    betas = torch.as_tensor(list(betas), dtype=torch.float64)
    if betas.numel() == 0:
        raise WavefastError("a noise list needs at least one beta")
    if not torch.isfinite(betas).all() or (betas <= 0).any() or (betas >= 1).any():
        raise WavefastError(f"every beta in a noise list must lie in (0, 1), got {betas.tolist()}")
    gamma_bar = torch.cumprod(1.0 - betas, dim=0)
    _check_in_range(gamma_bar, schedule, name)
    t = _snap_steps(schedule.step_for_alpha_bar(gamma_bar, method), schedule)
    info = dict(info or {}, betas=betas.tolist(), method=method)
    return SamplingPlan(tuple(t.flip(0).tolist()), tuple(gamma_bar.flip(0).tolist()), name, info)


def var_plan(schedule: LinearBetaSchedule, S: int, spacing: str = "linear", method: str = "lgamma",
             bound: str = "published") -> SamplingPlan:
    check_choice("VAR search bound", bound, ("published", "exact"))
    betas = var_betas(schedule, S, spacing, bound)
    # The root makes prod(1-beta) = alpha_bar_{T-1} up to rounding: pin the end of the range exactly.
    lo, hi = schedule.trained_range
    gamma_bar = torch.cumprod(1.0 - betas, dim=0).clamp(lo, hi)
    t = _snap_steps(schedule.step_for_alpha_bar(gamma_bar, method), schedule)
    info = {"kind": "var", "spacing": spacing, "betas": betas.tolist(), "method": method, "bound": bound}
    name = f"var-{spacing}" + ("-exact" if bound == "exact" else "")
    return SamplingPlan(tuple(t.flip(0).tolist()), tuple(gamma_bar.flip(0).tolist()), name, info)


def _snap_steps(t: torch.Tensor, schedule: LinearBetaSchedule, tol: float = 1e-6) -> torch.Tensor:
    """Bisection lands within ~1e-10 of the trained ends; put such steps exactly on 0 and T-1."""
    t = torch.where((t < 0) & (t > -tol), torch.zeros_like(t), t)
    return torch.where((t > schedule.T - 1) & (t < schedule.T - 1 + tol), torch.full_like(t, schedule.T - 1.0), t)


def _check_in_range(alpha_bars: torch.Tensor, schedule: LinearBetaSchedule, name: str) -> None:
    lo, hi = schedule.trained_range
    tol = 1e-9
    bad = [float(a) for a in alpha_bars if a < lo * (1 - tol) or a > hi * (1 + tol)]
    if bad:
        raise WavefastError(
            f"schedule {name!r} asks for noise levels alpha_bar={bad} outside the checkpoint's trained range "
            f"[{lo:.6g}, {hi:.6g}] (steps 0..{schedule.T - 1}, T={schedule.T}, beta {schedule.beta_0}->{schedule.beta_T}); "
            "pick a schedule inside it, or pass clip_range=True / --clip-range to clamp the levels into it")


def clip_plan_to_range(plan: SamplingPlan, schedule: LinearBetaSchedule, method: str = "lgamma") -> SamplingPlan:
    """Clamp every noise level into the trained range (duplicates after clamping are dropped)."""
    lo, hi = schedule.trained_range
    ab = torch.tensor(sorted({min(max(a, lo), hi) for a in plan.alpha_bars}), dtype=torch.float64)
    t = schedule.step_for_alpha_bar(ab, method)
    return SamplingPlan(tuple(t.tolist()), tuple(ab.tolist()), plan.name + "+clipped", dict(plan.info, clipped=True))


def read_plan_file(path) -> dict:
    """The JSON object of a plan file (read once); WavefastError naming the file if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise WavefastError(f"schedule file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WavefastError(f"cannot read schedule file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise WavefastError(f"schedule file {path} must hold a JSON object")
    return data


def _numbers(values, what: str, where) -> list:
    if not isinstance(values, list) or not values:
        raise WavefastError(f"schedule file {where}: '{what}' must be a non-empty list of numbers")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            raise WavefastError(f"schedule file {where}: '{what}' must hold finite numbers, got {v!r}")
        out.append(float(v))
    return out


def plan_from_data(data: dict, schedule: LinearBetaSchedule, method: str = "lgamma", where="plan",
                   default_name: str = "custom") -> SamplingPlan:
    """A plan from a plan JSON object: ``{"steps": [...], "alpha_bar": [...]}`` or ``{"betas": [...]}``."""
    name = data.get("name", default_name)
    name = name if isinstance(name, str) else default_name
    info = data.get("info", {})
    if not isinstance(info, dict):
        raise WavefastError(f"schedule file {where}: 'info' must be a JSON object")
    if "betas" in data and "steps" not in data:
        return plan_from_betas(schedule, _numbers(data["betas"], "betas", where), name, method, info)
    if "steps" not in data:
        raise WavefastError(f"schedule file {where} needs 'steps' (with optional 'alpha_bar') or 'betas'")
    steps = _numbers(data["steps"], "steps", where)
    if "alpha_bar" in data:
        ab = _numbers(data["alpha_bar"], "alpha_bar", where)
        if len(ab) != len(steps):
            raise WavefastError(f"schedule file {where}: 'steps' has {len(steps)} entries but 'alpha_bar' "
                                f"{len(ab)}")
    else:
        ab = schedule.alpha_bar(torch.tensor(steps, dtype=torch.float64), method).tolist()
    plan = SamplingPlan(tuple(steps), tuple(ab), name, dict(info, source=str(where)))
    if any(s < -1 or s > schedule.T - 1 for s in steps):
        raise WavefastError(f"schedule file {where}: steps must lie in [0, {schedule.T - 1}] for this model, "
                            f"got {steps}")
    if any(b >= a for a, b in zip(steps, steps[1:])):
        raise WavefastError(f"schedule file {where}: steps must decrease strictly (most noise first), got {steps}")
    _check_in_range(torch.tensor(ab, dtype=torch.float64), schedule, name)
    return plan


def load_plan_json(path, schedule: LinearBetaSchedule, method: str = "lgamma") -> SamplingPlan:
    """Read a plan JSON file (see :func:`plan_from_data`)."""
    return plan_from_data(read_plan_file(path), schedule, method, where=path, default_name=Path(path).stem)


def make_plan(schedule: LinearBetaSchedule, name: str = "var-quadratic", steps: Optional[int] = None,
              method: str = "lgamma", clip_range: bool = False) -> SamplingPlan:
    """Build a plan by name: a rule (with ``steps``), ``ddpm``, a preset, a shipped learned plan
    or a ``.json`` path (read once).

    ``steps`` defaults to 6 for rules; for fixed-length plans it must be None or
    equal to the plan's length.
    """
    check_choice("continuous-step method", method, CONTINUOUS_METHODS)
    if not isinstance(name, (str, Path)):
        raise WavefastError(f"a schedule is a name or a plan .json path, got {type(name).__name__}")
    name = str(name)
    learned = shipped_learned_plans()
    if name in learned:  # shipped learned sampler, selected by name
        name = str(learned[name])
    if steps is not None:
        steps = _check_steps(steps, schedule.T)
    if name.lower().endswith(".json"):
        data = read_plan_file(name)
        plan = _clip_or_check(lambda: plan_from_data(data, schedule, method, where=name, default_name=Path(name).stem),
                              schedule, method, clip_range, lambda: _raw_plan(data, Path(name).stem))
    elif name.lower().endswith(".ns"):  # a BDDM noise-schedule file
        from .bddm import read_bddm_schedule

        data = read_bddm_schedule(name)
        plan = _clip_or_check(lambda: plan_from_data(data, schedule, method, where=name, default_name=data["name"]),
                              schedule, method, clip_range, lambda: _raw_plan(data, data["name"]))
    elif name in RULE_PLANS or name in VARIANT_PLANS:
        kind, spacing, *variant = name.split("-")
        S = 6 if steps is None else steps
        if kind == "step":
            return step_plan(schedule, S, spacing, "drop" if variant else "keep")
        return var_plan(schedule, S, spacing, method, "exact" if variant else "published")
    elif name in _solver_names():
        from .solvers import solver_plan

        return solver_plan(schedule, name, 6 if steps is None else steps, method)
    elif name in FULL_PLANS:
        plan = full_plan(schedule)
    elif name in PRESETS:
        betas, note = PRESETS[name]
        plan = _clip_or_check(lambda: plan_from_betas(schedule, betas, name, method, {"kind": "preset", "note": note}),
                              schedule, method, clip_range, lambda: _raw_plan({"betas": betas}, name))
    else:
        allowed = ", ".join(schedule_names())
        raise WavefastError(f"unknown schedule {name!r}; allowed: {allowed}, or a path to a plan .json "
                            "(or to a BDDM .ns noise schedule)")
    if steps is not None and steps != len(plan):
        raise WavefastError(f"schedule {name!r} has {len(plan)} steps; drop --steps or pass --steps {len(plan)}")
    return plan


def _solver_names() -> Tuple[str, ...]:
    from .solvers import SOLVER_PLANS  # solvers build plans with this module's helpers: imported late

    return SOLVER_PLANS


def _raw_plan(data: dict, name: str) -> SamplingPlan:
    """The noise levels of a plan JSON object or noise list, unchecked against any model (for clipping)."""
    if "betas" in data and "steps" not in data:
        betas = torch.tensor(_numbers(data["betas"], "betas", name), dtype=torch.float64)
        gamma_bar = torch.cumprod(1.0 - betas, 0)
        return SamplingPlan(tuple(range(len(betas) - 1, -1, -1)), tuple(gamma_bar.flip(0).tolist()), name)
    if "alpha_bar" not in data:
        raise WavefastError(f"{name}: clipping a plan needs its 'alpha_bar' list (or 'betas')")
    return SamplingPlan(tuple(_numbers(data["steps"], "steps", name)), tuple(_numbers(data["alpha_bar"], "alpha_bar",
                                                                                      name)), name)


def _clip_or_check(build, schedule, method, clip_range, raw) -> SamplingPlan:
    try:
        return build()
    except WavefastError:
        if not clip_range:
            raise
    return clip_plan_to_range(raw(), schedule, method)
