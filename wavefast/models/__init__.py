"""DiffWave networks (published layouts and the source-filter family), checkpoint adapters, presets
and the shipped default models by kind."""

from .checkpoints import build_model, convert, load_model, save_native
from .default_models import KINDS, load_default

__all__ = ["KINDS", "build_model", "convert", "load_default", "load_model", "save_native"]
