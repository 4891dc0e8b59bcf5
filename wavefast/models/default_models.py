"""The models shipped inside the package, used when no --checkpoint is given.

``vocoder``: 22.05 kHz DiffWave vocoder on Tacotron-2 mels; ``sc09``: 16 kHz
unconditional digit generator. Weights live in ``wavefast/models/weights/`` with
model cards in ``wavefast/models/cards/``. If a weights file is missing (a
development checkout before training), a small random-weight model stands in and
a loud warning says so.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ..errors import check_choice
from .checkpoints import load_model
from .diffwave import DiffWave
from .spec import DiffusionSpec, DiffWaveConfig, ModelSpec

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_FILES = {"vocoder": "vocoder.safetensors", "sc09": "sc09.safetensors"}
COMMAND_TO_MODEL = {"vocode": "vocoder", "generate": "sc09", "vocoder": "vocoder", "sc09": "sc09"}


def default_path(kind: str) -> Path:
    check_choice("default model", kind, tuple(DEFAULT_FILES))
    return WEIGHTS_DIR / DEFAULT_FILES[kind]


def _stand_in(kind: str) -> DiffWave:
    if kind == "vocoder":
        spec = ModelSpec(DiffWaveConfig(16, 16, 8, 4, n_mels=80), DiffusionSpec(50, 1e-4, 0.05),
                         sample_rate=22050, mel_frontend="tacotron2", name="RANDOM-WEIGHTS-vocoder")
    else:
        spec = ModelSpec(DiffWaveConfig(16, 16, 8, 4, n_mels=0), DiffusionSpec(200, 1e-4, 0.02), sample_rate=16000,
                         mel_frontend=None, segment_length=16000, name="RANDOM-WEIGHTS-sc09")
    torch.manual_seed(0)
    return DiffWave(spec).eval()


def load_default(kind: str, device=None) -> DiffWave:
    """Load the shipped default model (``vocoder``/``vocode`` or ``sc09``/``generate``)."""
    kind = COMMAND_TO_MODEL.get(kind, kind)
    path = default_path(kind)
    if path.is_file():
        return load_model(path, device=device)
    print("!" * 78 + f"\nwavefast: WARNING: no shipped {kind} weights at {path};\n"
          "wavefast: using a small RANDOM-WEIGHT model: the output is noise, not speech.\n" + "!" * 78,
          file=sys.stderr)
    model = _stand_in(kind)
    return model.to(device) if device is not None else model
