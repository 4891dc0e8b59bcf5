"""Training state helpers: EMA weights, RNG snapshots, atomic checkpoint files.

Everything saved here is made of tensors, dicts, lists, numbers, strings and
None, so a checkpoint loads with ``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import random
from typing import Dict, Optional

import numpy as np
import torch

from ..fileio import atomic_torch_save, atomic_write_text  # noqa: F401 (one home: wavefast.fileio)


class EMA:
    """Exponential moving average of a model's floating-point state.

    After optimiser step ``n`` (1-based):
    ``d_n = min(decay, (1 + n) / (10 + n))``,  ``ema <- d_n ema + (1 - d_n) theta``.
    The warm-up ``(1 + n)/(10 + n)`` keeps early averages from being dominated by
    the random initial weights. Shadow tensors are float32 on the model's device.
    """

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        self.decay = float(decay)
        self.shadow: Dict[str, torch.Tensor] = {k: v.detach().clone().float() if v.is_floating_point() else
                                                v.detach().clone() for k, v in model.state_dict().items()}

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = self.decay_at(step)
        for name, value in model.state_dict().items():
            target = self.shadow[name]
            if target.is_floating_point():
                target.mul_(d).add_(value.detach().float(), alpha=1.0 - d)
            else:
                target.copy_(value)

    def state_dict(self) -> Dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) ^ set(state)
        if missing:
            raise KeyError(f"EMA state does not match the model: {sorted(missing)[:4]}")
        for name, value in state.items():
            self.shadow[name].copy_(value)

    def copy_to(self, model: torch.nn.Module) -> torch.nn.Module:
        model.load_state_dict(self.shadow)
        return model


def capture_rng(generators: Optional[Dict[str, torch.Generator]] = None) -> dict:
    """Snapshot of python, numpy, torch CPU/CUDA and the named generators' states."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
        "numpy": {"bit_generator": np_state["bit_generator"],
                  "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }
    return state


def restore_rng(state: dict, generators: Optional[Dict[str, torch.Generator]] = None) -> None:
    """Inverse of :func:`capture_rng` (CUDA states only where the device count matches)."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state({"bit_generator": nps["bit_generator"],
                         "state": {"key": nps["key"].numpy().astype(np.uint32), "pos": nps["pos"]},
                         "has_gauss": nps["has_gauss"], "gauss": nps["gauss"]})
    torch.set_rng_state(state["torch_cpu"])
    cuda = state.get("torch_cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    for name, g in (generators or {}).items():
        g.set_state(state["generators"][name])
