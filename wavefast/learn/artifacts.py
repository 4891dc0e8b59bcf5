"""Learned-sampler files: a plan JSON that remembers which model it was learned for.

A learned sampler is an ordinary ``wavefast-plan`` JSON (readable by
``make_plan("file.json")`` and ``--schedule file.json``)::

    {
      "format": "wavefast-plan", "version": 1, "name": "ddss-S6",
      "steps": [t_0 > ... > t_{S-1}], "alpha_bar": [increasing],
      "info": {
        "method": "lgamma",                       # continuous-step map, as in every plan
        "learned": {
          "method": "ddss" | "errbound", "S": 6, "kappa": 0.0, "init": "var-quadratic",
          "model": {"sha256": "...", "name": ..., "T": ..., "beta_0": ..., "beta_T": ...},
          "objective": {"name": ..., "value": ..., "initial_value": ..., "split": "test", ...},
          "created": "2025-01-01T00:00:00+00:00", "training": {...}
        },
        "ggdm": {"scale_x": [S], "eps_weights": [[1], [2], ... [S]], "sigma": [S]}   # DDSS only
      }
    }

``info.ggdm`` is present only when the learned sampler is more than a plan (learned
coefficients); the torch samplers (:func:`wavefast.learn.ggdm.sample_with_plan`)
then run the GGDM update and ignore ``kappa``.

The model identity is :func:`model_sha256`: sha256 over the diffusion (T, beta_0,
beta_T) and the float32 state dict (names sorted). A file learned for other weights
is refused by :func:`check_schedule_for_model` unless forced.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Optional, Union

from ..errors import WavefastError
from ..schedules.learned import LEARNED_KEY, check_plan_for_model, model_record, model_sha256  # noqa: F401 (re-exported)
from ..schedules.plans import SamplingPlan

LEARNERS = ("ddss", "errbound", "grid", "errbound-phase2")


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def learned_plan(plan: SamplingPlan, model, *, learner: str, kappa: float, objective: dict, init: str,
                 training: Optional[dict] = None, name: Optional[str] = None) -> SamplingPlan:
    """``plan`` with the ``info.learned`` record (model hash, objective, date) attached."""
    if learner not in LEARNERS:
        raise WavefastError(f"unknown learner {learner!r}; allowed: {', '.join(LEARNERS)}")
    record = {"method": learner, "S": len(plan), "kappa": float(kappa), "init": init, "model": model_record(model),
              "objective": objective, "created": now_iso(), "training": dict(training or {})}
    info = dict(plan.info, **{LEARNED_KEY: record})
    return SamplingPlan(plan.steps, plan.alpha_bars, name or f"{learner}-S{len(plan)}", info)


def save_learned(plan: SamplingPlan, path) -> Path:
    """Write a learned plan as JSON (atomic)."""
    if LEARNED_KEY not in plan.info:
        raise WavefastError("this plan has no 'learned' record; build it with learned_plan()")
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise WavefastError(f"a learned sampler file must end in .json, got {path.name}")
    plan.save(path)
    return path


def check_schedule_for_model(schedule: Union[str, Path, SamplingPlan], model, force: bool = False) -> None:
    """Refuse a learned plan (a plan or a ``.json`` path) learned for a different model; names pass.

    The check itself is :func:`wavefast.schedules.learned.check_plan_for_model`.
    """
    if isinstance(schedule, SamplingPlan):
        check_plan_for_model(schedule, model, force)
        return
    name = str(schedule)
    if name.lower().endswith(".json") and Path(name).is_file():
        from ..schedules.plans import read_plan_file

        data = read_plan_file(name)
        info = data.get("info") if isinstance(data.get("info"), dict) else {}
        if isinstance(info.get(LEARNED_KEY), dict):
            probe = SamplingPlan((1.0,), (0.5,), name, {LEARNED_KEY: info[LEARNED_KEY]})
            check_plan_for_model(probe, model, force, where=f"schedule file {name}")
