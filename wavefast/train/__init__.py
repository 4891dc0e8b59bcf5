"""Training DiffWave models on packed data (one trainer for vocoders and unconditional models).

    >>> from wavefast.train import TrainConfig, model_config, train
    >>> cfg = TrainConfig(pack="pack.npz", out="runs/voc", model=model_config("vocoder-small"), steps=1000)
    >>> train(cfg, device="cpu")

Needs only torch and numpy at import (no soundfile / librosa), so it runs from a
pack on a bare GPU machine.
"""

from .config import PRESETS, ModelConfig, TrainConfig, model_config
from .trainer import Trainer, export_run, train

__all__ = ["PRESETS", "ModelConfig", "TrainConfig", "Trainer", "export_run", "model_config", "train"]
