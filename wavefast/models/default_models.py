"""The models shipped inside the package, looked up by kind.

Kinds (``wavefast.load_default(kind)``):

- ``vocoder``: 22.05 kHz mel vocoder on Tacotron-2 mels (``vocoder.safetensors``);
- ``sc09``: the default digit generator, two stages: the mel DDPM ``sc09_mel.safetensors``
  (an image model over log-mels) and the default vocoder, as a
  :class:`wavefast.digits.generator.TwoStageGenerator` (16 kHz, one-second clips);
- ``image``: the Fashion-MNIST DDPM of the image path (``image_fmnist_tiny.safetensors``);
- ``sc09-classifier`` / ``image-classifier``: the evaluation classifiers;
- ``digit-mel-classifier``: the image classifier of the digit mel stage's (16, 20, 22) images,
  DDSS's feature extractor for that stage (an objective, not a judge).

Weights live in ``wavefast/models/weights/`` with model cards in ``wavefast/models/cards/``.
If an audio model's weights are missing (a development checkout before training), a small
random-weight model stands in and a loud warning says so. The CLI maps its commands to kinds;
nothing here knows command names.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ..errors import WavefastError, check_choice

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
CARDS_DIR = Path(__file__).resolve().parent / "cards"
DEFAULT_FILES = {"vocoder": "vocoder.safetensors", "sc09": "sc09_mel.safetensors",
                 "image": "image_fmnist_tiny.safetensors", "sc09-classifier": "sc09_classifier.safetensors",
                 "image-classifier": "image_fmnist_classifier.safetensors",
                 "digit-mel-classifier": "digit_mel_classifier.safetensors"}
KINDS = tuple(DEFAULT_FILES)


def default_path(kind: str) -> Path:
    check_choice("default model kind", kind, KINDS)
    return WEIGHTS_DIR / DEFAULT_FILES[kind]


def _stand_in(kind: str):
    from .diffwave import DiffWave
    from .spec import DiffusionSpec, DiffWaveConfig, ModelSpec

    if kind == "vocoder":
        spec = ModelSpec(DiffWaveConfig(16, 16, 8, 4, n_mels=80), DiffusionSpec(50, 1e-4, 0.05),
                         sample_rate=22050, mel_frontend="tacotron2", name="RANDOM-WEIGHTS-vocoder")
    else:
        spec = ModelSpec(DiffWaveConfig(16, 16, 8, 4, n_mels=0), DiffusionSpec(200, 1e-4, 0.02), sample_rate=16000,
                         mel_frontend=None, segment_length=16000, name="RANDOM-WEIGHTS-sc09")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return DiffWave(spec).eval()


def load_default(kind: str, device=None):
    """The shipped model of ``kind`` (see the module docstring), in eval mode on ``device``."""
    path = default_path(kind)
    if kind == "image":
        from ..images.checkpoints import load_image_model

        return load_image_model(path, device=device)
    if kind == "sc09" and path.is_file():
        from ..digits.generator import TwoStageGenerator
        from ..images.checkpoints import load_image_model

        return TwoStageGenerator(load_image_model(path, device=device), load_default("vocoder", device=device),
                                 name="wavefast-sc09-two-stage")
    if kind == "sc09-classifier":
        from ..eval.classifier import load_sc09_classifier

        return load_sc09_classifier(path, device=device or "cpu")
    if kind in ("image-classifier", "digit-mel-classifier"):
        from ..images.classifier import load_classifier

        return load_classifier(path, device=device or "cpu")
    from .checkpoints import load_model

    if path.is_file():
        return load_model(path, device=device)
    print("!" * 78 + f"\nwavefast: WARNING: no shipped {kind} weights at {path};\n"
          "wavefast: using a small RANDOM-WEIGHT model: the output is noise, not speech.\n" + "!" * 78,
          file=sys.stderr)
    model = _stand_in(kind)
    return model.to(device) if device is not None else model


def card_path(kind: str) -> Path:
    """The model card of a shipped model kind."""
    path = default_path(kind)
    card = CARDS_DIR / (path.stem + ".md")
    if not card.is_file():
        raise WavefastError(f"no model card for {kind} ({card})")
    return card
