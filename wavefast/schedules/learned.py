"""Reading and verifying learned plans: a plan JSON that remembers which model it was learned for.

A learned sampler is an ordinary ``wavefast-plan`` JSON whose ``info.learned`` record holds the
learner, S, kappa, the initial plan, the objective and the model identity
``{"sha256", "name", "T", "beta_0", "beta_T"}``; a DDSS plan also holds ``info.ggdm`` (its
coefficients, run by :func:`wavefast.samplers.run_plan`). Writing them is
:mod:`wavefast.learn.artifacts`; this module only reads and checks.

The model identity is :func:`model_sha256`: sha256 over the diffusion (T, beta_0, beta_T) and
the float32 state dict (names sorted). A plan learned for other weights is refused by
:func:`check_plan_for_model` unless forced.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Optional

import torch

from ..errors import WavefastError
from .plans import SamplingPlan

LEARNED_KEY = "learned"


def _diffusion_of(model) -> dict:
    d = getattr(getattr(model, "spec", None), "diffusion", None)
    if d is None:
        return {}
    return {"T": int(d.T), "beta_0": float(d.beta_0), "beta_T": float(d.beta_T)}


def model_sha256(model) -> str:
    """sha256 hex digest of a model's diffusion (T, beta_0, beta_T) and float32 weights (names sorted)."""
    digest = hashlib.sha256(json.dumps(_diffusion_of(model), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def model_record(model) -> dict:
    return {"sha256": model_sha256(model), "name": getattr(getattr(model, "spec", None), "name", "?"),
            **_diffusion_of(model)}


def learned_record(plan: SamplingPlan) -> Optional[dict]:
    record = plan.info.get(LEARNED_KEY)
    return record if isinstance(record, dict) else None


def learned_for_sha256(path) -> Optional[tuple]:
    """(model sha256, S, model name) a shipped learned plan file was learned for, or None if it does not say."""
    try:
        data = json.loads(Path(path).read_text())
        record = data["info"][LEARNED_KEY]
        return str(record["model"]["sha256"]), len(data["steps"]), str(record["model"].get("name", ""))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_plan_for_model(plan: SamplingPlan, model, force: bool = False, where: Optional[str] = None) -> None:
    """Refuse a learned plan learned for a different model (``force=True`` warns instead).

    Plain plans pass untouched.
    """
    record = learned_record(plan)
    if record is None:
        return
    where = where or f"schedule {plan.name!r}"
    model_info = record.get("model") if isinstance(record.get("model"), dict) else {}
    learned_for = model_info.get("sha256")
    if not isinstance(learned_for, str) or not learned_for:
        raise WavefastError(f"{where} is a learned sampler without the model it was learned for "
                            "(info.learned.model.sha256)")
    mine = model_sha256(model)
    if learned_for == mine:
        return
    message = (f"{where} was learned ({record.get('method', '?')}) for another model "
               f"({model_info.get('name', '?')}, T={model_info.get('T', '?')}, sha256 {learned_for[:12]}...) and this "
               f"model is {getattr(model.spec, 'name', '?')} (sha256 {mine[:12]}...). A learned sampler is tuned to "
               "one model's weights; learn one for this model with 'wavefast learn-sampler', or force it with "
               "--force-schedule (CLI) or force_schedule=True (resolve_plan, vocode, generate)")
    if not force:
        raise WavefastError(message)
    warnings.warn("using it anyway (forced): " + message, stacklevel=3)
