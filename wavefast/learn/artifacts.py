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
import hashlib
import json
import warnings
from pathlib import Path
from typing import Optional, Union

import torch

from ..errors import WavefastError
from ..schedules.plans import PLAN_FORMAT, SamplingPlan

LEARNED_KEY = "learned"
LEARNERS = ("ddss", "errbound")


def _diffusion_of(model) -> dict:
    d = getattr(getattr(model, "spec", None), "diffusion", None)
    if d is None:
        return {}
    return {"T": int(d.T), "beta_0": float(d.beta_0), "beta_T": float(d.beta_T)}


def model_sha256(model) -> str:
    """sha256 hex digest of a model's diffusion spec (T, beta_0, beta_T) and float32 weights (names sorted)."""
    digest = hashlib.sha256(json.dumps(_diffusion_of(model), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def model_record(model) -> dict:
    return {"sha256": model_sha256(model), "name": getattr(getattr(model, "spec", None), "name", "?"),
            **_diffusion_of(model)}


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


def read_learned_record(path) -> Optional[dict]:
    """``info.learned`` of a plan JSON, or None if the file is not a learned plan (or unreadable)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format", PLAN_FORMAT) != PLAN_FORMAT:
        return None
    info = data.get("info")
    record = info.get(LEARNED_KEY) if isinstance(info, dict) else None
    return record if isinstance(record, dict) else None


def _check_record(record: dict, model, where: str, force: bool) -> None:
    learned_for = (record.get("model") or {}).get("sha256")
    if not learned_for:
        raise WavefastError(f"{where} is a learned sampler without the model it was learned for "
                            "(info.learned.model.sha256)")
    mine = model_sha256(model)
    if learned_for == mine:
        return
    other = record.get("model", {})
    message = (f"{where} was learned ({record.get('method', '?')}) for another model "
               f"({other.get('name', '?')}, T={other.get('T', '?')}, sha256 {learned_for[:12]}...) and this model is "
               f"{getattr(model.spec, 'name', '?')} (sha256 {mine[:12]}...). A learned sampler is tuned to one "
               "model's weights; learn one for this model with 'wavefast learn-sampler', or force it with "
               "--force-schedule (CLI) or force_schedule=True (plan_for, vocode, generate)")
    if not force:
        raise WavefastError(message)
    warnings.warn("using it anyway (forced): " + message, stacklevel=3)


def check_schedule_for_model(schedule: Union[str, Path, SamplingPlan], model, force: bool = False) -> None:
    """Refuse a learned schedule (plan or ``.json`` path) learned for a different model.

    Plain plans, rule names and presets pass untouched. ``force=True`` warns instead.
    """
    if isinstance(schedule, SamplingPlan):
        record = schedule.info.get(LEARNED_KEY)
        if isinstance(record, dict):
            _check_record(record, model, f"schedule {schedule.name!r}", force)
        return
    name = str(schedule)
    if name.lower().endswith(".json") and Path(name).is_file():
        record = read_learned_record(name)
        if record is not None:
            _check_record(record, model, f"schedule file {name}", force)
