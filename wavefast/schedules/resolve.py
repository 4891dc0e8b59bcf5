"""Plan resolution: one function turns what a user names into a :class:`SamplingPlan` for a model.

Accepted: a :class:`SamplingPlan`; a rule name (``var-quadratic`` ... with ``steps``); ``ddpm`` /
``full``; a published preset; a shipped learned plan by name; or a path to a plan ``.json``
(read once). A learned plan made for other weights is refused unless ``force``
(:func:`wavefast.schedules.learned.check_plan_for_model`).

Default (``plan=None``): a shipped learned plan made for exactly these weights with the asked
number of steps (default 6) when no kappa is asked for -- for the shipped vocoder that is
``vocoder-ddss-6`` (``vocoder-ddss-4`` with ``steps=4``), its measured best -- else
``var-quadratic``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional, Union

from ..errors import WavefastError
from .learned import check_plan_for_model
from .noise import LinearBetaSchedule
from .plans import SamplingPlan, make_plan

PlanArg = Union[str, Path, SamplingPlan]
DEFAULT_PLAN = "var-quadratic"


def resolve_plan(model, plan: Optional[PlanArg] = None, steps: Optional[int] = None, method: str = "lgamma",
                 clip_range: bool = False, force: bool = False, kappa: Optional[float] = None) -> SamplingPlan:
    """The plan ``plan`` for ``model``'s diffusion (``model.spec.diffusion``); see the module docstring.

    ``model`` may also be a bare :class:`LinearBetaSchedule` (then learned plans are not checked
    against weights). ``kappa`` only steers the default: with one given, the default is a rule plan.
    """
    schedule = model if isinstance(model, LinearBetaSchedule) else diffusion_of(model)
    if plan is None:
        plan = default_plan_name(model, steps, kappa)
    if isinstance(plan, SamplingPlan):
        if steps is not None and int(steps) != len(plan):
            raise WavefastError(f"plan {plan.name!r} has {len(plan)} steps, not {steps}")
        resolved = plan
    else:
        resolved = make_plan(schedule, plan, steps, method, clip_range)
    from ..samplers.ggdm import PlanCoefficients, is_learned  # samplers build on schedules: imported late

    if is_learned(resolved):  # read its coefficients now: a malformed file fails here, not after hours of work
        PlanCoefficients.learned(resolved)
    if not isinstance(model, LinearBetaSchedule):
        check_plan_for_model(resolved, model, force, where=f"schedule {str(plan)!r}" if not isinstance(
            plan, SamplingPlan) else None)
    return resolved


def default_plan_name(model, steps: Optional[int] = None, kappa: Optional[float] = None) -> str:
    """The shipped learned plan learned for exactly these weights with ``steps`` (default 6) steps, when
    no kappa is asked for; else :data:`DEFAULT_PLAN`."""
    if kappa is not None or isinstance(model, LinearBetaSchedule) or not hasattr(model, "state_dict"):
        return DEFAULT_PLAN
    from .learned import learned_for_sha256, model_sha256
    from .plans import shipped_learned_plans

    wanted = 6 if steps is None else steps
    candidates = {name: learned_for_sha256(path) for name, path in shipped_learned_plans().items()}
    own_name = getattr(getattr(model, "spec", None), "name", None)
    candidates = {name: record for name, record in candidates.items()  # cheap checks before hashing the weights
                  if record is not None and record[1] == wanted and record[2] == own_name}
    if not candidates:
        return DEFAULT_PLAN
    mine = model_sha256(model)
    for name, (sha, _, _) in sorted(candidates.items()):
        if sha == mine:
            return name
    return DEFAULT_PLAN


def diffusion_of(model) -> LinearBetaSchedule:
    spec = getattr(model, "spec", None)
    diffusion = getattr(spec, "diffusion", None)
    if diffusion is None:
        raise WavefastError(f"{type(model).__name__} has no diffusion spec (model.spec.diffusion)")
    return LinearBetaSchedule(int(diffusion.T), float(diffusion.beta_0), float(diffusion.beta_T))


def plan_keyword(plan, schedule, where: str = "plan"):
    """Accept the old ``schedule=`` keyword for a plan, with a deprecation warning."""
    if schedule is None:
        return plan
    if plan is not None:
        raise WavefastError(f"{where}: give the plan once, as plan= (schedule= is its old name)")
    warnings.warn("the keyword 'schedule=' is now 'plan=' (a schedule is the model's noise schedule)",
                  DeprecationWarning, stacklevel=3)
    return schedule
