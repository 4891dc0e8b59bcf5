"""Named model presets: the architecture and diffusion that published weights cannot tell.

The dilation cycle, T and the beta range are not stored in the philsyn files;
they come from the upstream ``config.json`` or from one of these names.
"""

from __future__ import annotations

from .spec import DiffWaveConfig, DiffusionSpec, ModelSpec
from ..errors import check_choice

_PHILSYN = dict(step_embedding="sinusoidal", per_layer_upsampler=True, residual_includes_step=True)

PRESETS = {
    "philsyn-sc09": ModelSpec(
        arch=DiffWaveConfig(256, 256, 36, 12, n_mels=0, **_PHILSYN),
        diffusion=DiffusionSpec(200, 1e-4, 0.02), sample_rate=16000, mel_frontend=None,
        segment_length=16000, name="philsyn-sc09", source_layout="philsyn"),
    "philsyn-lj-base": ModelSpec(
        arch=DiffWaveConfig(64, 64, 30, 10, n_mels=80, **_PHILSYN),
        diffusion=DiffusionSpec(50, 1e-4, 0.05), sample_rate=22050, hop_length=256, mel_frontend="tacotron2",
        name="philsyn-lj-base", source_layout="philsyn"),
    "philsyn-lj-large": ModelSpec(
        arch=DiffWaveConfig(128, 128, 30, 10, n_mels=80, **_PHILSYN),
        diffusion=DiffusionSpec(200, 1e-4, 0.02), sample_rate=22050, hop_length=256, mel_frontend="tacotron2",
        name="philsyn-lj-large", source_layout="philsyn"),
    "lmnt-lj": ModelSpec(
        arch=DiffWaveConfig(64, 64, 30, 10, n_mels=80, step_embedding="table", embedding_table_size=50),
        diffusion=DiffusionSpec(50, 1e-4, 0.05), sample_rate=22050, hop_length=256, mel_frontend="lmnt",
        name="lmnt-lj", source_layout="lmnt"),
}


def get_preset(name: str) -> ModelSpec:
    check_choice("model preset", name, tuple(PRESETS))
    return PRESETS[name]
