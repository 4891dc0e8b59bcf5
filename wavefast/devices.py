"""Devices and precision by name: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``, and float32/float16/bfloat16.

Only the CLI, recipes and the front doors that take a ``device=`` argument call these; the
model and sampler code runs wherever its tensors are.
"""

from __future__ import annotations

import re
from typing import Optional

import torch

from .errors import WavefastError

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def resolve_device(device=None) -> torch.device:
    """``None``/``auto`` = CUDA when present, else CPU; ``cuda[:N]`` refused with a clear line when absent."""
    if isinstance(device, torch.device):
        device = str(device)
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise WavefastError(f"unknown device {device!r}; allowed: auto, cpu, cuda, cuda:N")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            build = "a CPU-only build of torch" if torch.version.cuda is None else "no visible CUDA device"
            raise WavefastError(f"device {device!r} asked for, but this machine has {build}; use --device cpu "
                                "(or auto)")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise WavefastError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(device)


def resolve_dtype(dtype=None, device: Optional[torch.device] = None) -> torch.dtype:
    """float32 by default; float16/bfloat16 on request (on CPU bfloat16 runs, float16 is refused: CPU fp16
    convolutions are missing or slow)."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        value = dtype
    else:
        if not isinstance(dtype, str) or dtype.lower() not in DTYPES:
            raise WavefastError(f"unknown dtype {dtype!r}; allowed: float32, float16, bfloat16")
        value = DTYPES[dtype.lower()]
    if value not in (torch.float32, torch.float16, torch.bfloat16):
        raise WavefastError(f"unsupported dtype {value}; allowed: float32, float16, bfloat16")
    if value == torch.float16 and (device is None or torch.device(device).type == "cpu"):
        raise WavefastError("float16 inference needs a CUDA device; on CPU use bfloat16 or float32")
    return value
