"""A simple baseline for learned samplers: coordinate search of the S timesteps on a loss.

The plan keeps FastDPM's coefficients (with the given kappa); only its continuous steps move.
Ends stay where the initial plan has them (the first at the model's last trained step, the last
at its first). Each sweep visits the interior steps i = 1 .. S-2 in turn and tries ``candidates``
positions evenly spaced strictly between its neighbours, keeping the one with the lowest loss
(the current position is always a candidate, so the loss never rises). The loss is measured on
a fixed batch of *training* crops with fixed x_T and noise (the reparametrisation of DDSS), so
the held-out objective reported beside it stays an honest check. Cost: ``sweeps * (S-2) *
candidates`` S-step chains, no gradients.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import List

import torch

from ..errors import WavefastError
from ..schedules import LinearBetaSchedule, SamplingPlan, make_plan


@dataclass
class GridSearchConfig:
    steps: int = 6
    init: str = "var-quadratic"
    kappa: float = 0.0
    sweeps: int = 2
    candidates: int = 8
    batch_size: int = 8
    seed: int = 0

    def validate(self) -> "GridSearchConfig":
        for name in ("steps", "sweeps", "candidates", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise WavefastError(f"grid search: {name} must be a whole number >= 1, got {value!r}")
        if self.steps < 3:
            raise WavefastError("grid search moves the interior steps: it needs steps >= 3")
        return self


def plan_at(schedule: LinearBetaSchedule, steps: List[float], name: str, method: str = "lgamma") -> SamplingPlan:
    """A plan over continuous ``steps`` (decreasing) with their exact noise levels."""
    t = torch.tensor(steps, dtype=torch.float64)
    alpha_bars = schedule.alpha_bar(t, method)
    return SamplingPlan(tuple(float(s) for s in steps), tuple(float(a) for a in alpha_bars), name,
                        {"kind": "grid-search", "method": method})


def coordinate_search(model, data, config: GridSearchConfig, progress: bool = False) -> dict:
    """Search the interior steps of ``config.init`` (S steps) for ``model`` on ``data`` (see the module docstring).

    ``data``: an object with ``next_batch(B) -> (x0, cond)`` and ``heldout`` (x0, cond), as
    :class:`wavefast.learn.ddss.PackData`. Returns ``{"plan", "value", "initial_value",
    "heldout_value", "heldout_initial", "objective", "evaluations", "seconds", "history"}``.
    """
    from .ddss import default_objective, evaluate_sampler
    from .ggdm import FixedSampler

    config = config.validate()
    start_time = time.perf_counter()
    schedule = LinearBetaSchedule.from_spec(model.spec.diffusion)
    init = make_plan(schedule, config.init, config.steps)
    method = str(init.info.get("method", "lgamma"))
    objective, _ = default_objective(model.spec, data, "auto")
    batch = data.next_batch(config.batch_size)  # fixed training crops: the search's loss
    evaluations = 0

    def loss(steps, on=batch) -> float:
        nonlocal evaluations
        evaluations += 1
        sampler = FixedSampler(plan_at(schedule, steps, "grid", method), config.kappa)
        return evaluate_sampler(model, sampler, on, objective, seed=config.seed + 1_000_000)

    steps = [float(s) for s in init.steps]
    best = initial = loss(steps)
    history = [{"sweep": 0, "steps": list(steps), "value": best}]
    for sweep in range(1, config.sweeps + 1):
        for i in range(1, len(steps) - 1):
            lo, hi = steps[i + 1], steps[i - 1]
            for k in range(1, config.candidates + 1):
                candidate = lo + (hi - lo) * k / (config.candidates + 1)
                if abs(candidate - steps[i]) < 1e-9:
                    continue
                trial = steps[:i] + [candidate] + steps[i + 1:]
                value = loss(trial)
                if value < best:
                    best, steps = value, trial
        history.append({"sweep": sweep, "steps": list(steps), "value": best})
        if progress:
            print(f"grid search sweep {sweep}/{config.sweeps}: loss {best:.4f} (start {initial:.4f}), "
                  f"steps {[round(s, 3) for s in steps]}", flush=True)
    plan = plan_at(schedule, steps, f"grid-S{config.steps}", method)
    return {"plan": plan, "value": best, "initial_value": initial,
            "heldout_value": loss(steps, data.heldout), "heldout_initial": loss([float(s) for s in init.steps],
                                                                                data.heldout),
            "objective": objective.name, "evaluations": evaluations,
            "seconds": time.perf_counter() - start_time, "history": history, "config": asdict(config)}
