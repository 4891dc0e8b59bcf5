"""Plan resolution: one function turns what a user names into a :class:`SamplingPlan` for a model.

Accepted: a :class:`SamplingPlan`; a rule name (``var-quadratic`` ... with ``steps``); ``ddpm`` /
``full``; a published preset; a shipped learned plan by name; or a path to a plan ``.json``
(read once). A learned plan made for other weights is refused unless ``force``
(:func:`wavefast.schedules.learned.check_plan_for_model`).
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
                 clip_range: bool = False, force: bool = False) -> SamplingPlan:
    """The plan ``plan`` for ``model``'s diffusion (``model.spec.diffusion``); see the module docstring.

    ``model`` may also be a bare :class:`LinearBetaSchedule` (then learned plans are not checked
    against weights).
    """
    schedule = model if isinstance(model, LinearBetaSchedule) else diffusion_of(model)
    if plan is None:
        plan = DEFAULT_PLAN
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
