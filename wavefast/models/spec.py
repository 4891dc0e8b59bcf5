"""Frozen descriptions of a DiffWave network and the diffusion it was trained with.

A loaded model carries a :class:`ModelSpec` as ``model.spec``; everything a
sampler, a front end or an exporter needs to know about a checkpoint is here.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Optional

from ..errors import WavefastError, check_choice
from ..schedules.noise import LinearBetaSchedule

STEP_EMBEDDINGS = ("sinusoidal", "table")
PRIORS = ("standard", "energy", "shaped")
FAMILIES = ("diffwave", "sourcefilter")
MEL_FRONTENDS = ("tacotron2", "lmnt")
MAX_CHANNELS, MAX_LAYERS = 4096, 512  # far above any published network; bigger values are a damaged spec


def check_fields(obj) -> None:
    """Every field of a spec dataclass has its annotated type (ints are not bools or floats) and
    the size fields stay in sane ranges; WavefastError naming the field otherwise."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        where = f"{type(obj).__name__}.{f.name}"
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise WavefastError(f"{where} must be a whole number, got {value!r}")
            if value > (MAX_LAYERS if "layers" in f.name or "cycle" in f.name else 10 ** 8):
                raise WavefastError(f"{where} = {value} is implausibly large")
        elif kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise WavefastError(f"{where} must be a number, got {value!r}")
        elif kind == "bool":
            if not isinstance(value, bool):
                raise WavefastError(f"{where} must be true or false, got {value!r}")
        elif kind == "str":
            if not isinstance(value, str):
                raise WavefastError(f"{where} must be a string, got {value!r}")
        elif kind == "Optional[str]":
            if value is not None and not isinstance(value, str):
                raise WavefastError(f"{where} must be a string or null, got {value!r}")
        elif kind == "dict":
            if not isinstance(value, dict):
                raise WavefastError(f"{where} must be an object, got {type(value).__name__}")
    for name in ("residual_channels", "skip_channels", "frame_channels", "harmonic_channels", "pitch_channels"):
        if hasattr(obj, name) and getattr(obj, name) > MAX_CHANNELS:
            raise WavefastError(f"{type(obj).__name__}.{name} = {getattr(obj, name)} is implausibly large "
                                f"(> {MAX_CHANNELS})")


@dataclass(frozen=True)
class DiffWaveConfig:
    """Architecture of a DiffWave network.

    The three switches cover the published families:

    - philsyn / FastDPM: ``step_embedding="sinusoidal"`` (frequencies
      ``10^(-4 i / 63)``, computed for float steps), ``per_layer_upsampler=True``
      (each residual layer owns its mel upsampler) and
      ``residual_includes_step=True`` (the in-place ``h += part_t`` makes the
      residual output ``(x + t_emb + res) * sqrt(0.5)``).
    - lmnt-com/diffwave: ``step_embedding="table"`` (a table with frequencies
      ``10^(+4 i / 63)``, linearly interpolated at float steps), a shared
      upsampler and the plain residual ``(x + res) / sqrt(2)``.
    """

    residual_channels: int = 64
    skip_channels: int = 64
    residual_layers: int = 30
    dilation_cycle: int = 10
    n_mels: int = 80  # 0 = unconditional
    step_embedding: str = "sinusoidal"
    per_layer_upsampler: bool = False
    residual_includes_step: bool = False
    embedding_table_size: int = 0  # rows of the "table" embedding (= T)

    def __post_init__(self):
        check_fields(self)
        check_choice("step embedding", self.step_embedding, STEP_EMBEDDINGS)
        for name in ("residual_channels", "skip_channels", "residual_layers", "dilation_cycle"):
            if int(getattr(self, name)) < 1:
                raise WavefastError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_mels < 0:
            raise WavefastError(f"n_mels must be >= 0 (0 = unconditional), got {self.n_mels}")
        if self.step_embedding == "table" and self.embedding_table_size < 2:
            raise WavefastError("the 'table' step embedding needs embedding_table_size >= 2 (the T of training)")

    @property
    def conditional(self) -> bool:
        return self.n_mels > 0

    def receptive_field(self) -> int:
        """Receptive field of one network evaluation in samples (kernel 3 dilated convs)."""
        return 1 + 2 * sum(2 ** (i % self.dilation_cycle) for i in range(self.residual_layers))


@dataclass(frozen=True)
class SourceFilterConfig:
    """Architecture of a :class:`~wavefast.models.sourcefilter.SourceFilterDiffWave` (options in its docstring)."""

    residual_channels: int = 64
    residual_layers: int = 12
    dilation_cycle: int = 6
    subband_levels: int = 2
    n_mels: int = 80
    frame_channels: int = 128
    frame_layers: int = 2
    prior: str = "shaped"
    prior_floor: float = 1e-3
    prior_scale: float = 1.0
    excitation: bool = True
    harmonic_mean: bool = True
    harmonics: int = 128
    harmonic_channels: int = 256
    harmonic_layers: int = 4
    pitch_channels: int = 256
    pitch_layers: int = 4
    mel_projection: bool = False
    family: str = "sourcefilter"

    def __post_init__(self):
        check_fields(self)
        check_choice("prior", self.prior, PRIORS)
        for name in ("residual_channels", "residual_layers", "dilation_cycle", "n_mels", "frame_channels",
                     "harmonics", "harmonic_channels", "pitch_channels"):
            if int(getattr(self, name)) < 1:
                raise WavefastError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= int(self.subband_levels) <= 4:
            raise WavefastError(f"subband_levels must be 0..4, got {self.subband_levels}")
        if not (self.prior_floor > 0 and self.prior_scale > 0):
            raise WavefastError("prior_floor and prior_scale must be > 0")

    # DiffWave-compatible views used by samplers, chunking and exporters
    @property
    def conditional(self) -> bool:
        return True

    @property
    def skip_channels(self) -> int:
        return self.residual_channels

    @property
    def uses_pitch(self) -> bool:
        return self.excitation or self.harmonic_mean

    @property
    def bands(self) -> int:
        return 2 ** self.subband_levels

    def frame_receptive_field(self) -> int:
        """Mel/F0 frames either side that reach one output frame through the frame-rate networks
        (with F0 given), plus the next frame that interpolation reads."""
        frames = 2 * (1 + self.frame_layers)
        if self.harmonic_mean:
            frames = max(frames, 2 * (1 + self.harmonic_layers))
        return frames + 1

    def receptive_field(self) -> int:
        """Samples that reach one output sample in one network call (stack, Haar blocks and prior filter)."""
        stack = 1 + 2 * sum(2 ** (i % self.dilation_cycle) for i in range(self.residual_layers))
        field = stack * self.bands + self.bands
        if self.prior != "standard":
            field += 2 * 2 * 512  # the prior filter (on the input and the output) reads +-512 samples each time
        if self.mel_projection:
            field += 2 * 1024  # the mel projection's STFT and inverse read +-1024 samples
        return field


#: the diffusion of a model is its noise schedule object
DiffusionSpec = LinearBetaSchedule


@dataclass(frozen=True)
class ModelSpec:
    """Everything known about a checkpoint besides its weights."""

    arch: DiffWaveConfig
    diffusion: DiffusionSpec
    sample_rate: int = 22050
    hop_length: int = 256
    mel_frontend: Optional[str] = "tacotron2"  # None for unconditional models
    segment_length: int = 16000  # samples generated by an unconditional model
    name: str = "custom"
    source_layout: str = "native"
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        if not isinstance(self.arch, (DiffWaveConfig, SourceFilterConfig)):
            raise WavefastError(f"ModelSpec.arch must be an architecture config, got {type(self.arch).__name__}")
        if not isinstance(self.diffusion, LinearBetaSchedule):
            raise WavefastError(f"ModelSpec.diffusion must be a noise schedule, got {type(self.diffusion).__name__}")
        check_fields(self)
        if self.arch.conditional:
            check_choice("mel front end", self.mel_frontend, MEL_FRONTENDS)
        if not (0 < self.sample_rate <= 384000):
            raise WavefastError(f"sample_rate must lie in (0, 384000] Hz, got {self.sample_rate}")
        if self.hop_length <= 0 or self.segment_length <= 0:
            raise WavefastError("hop_length and segment_length must be positive")

    @property
    def n_mels(self) -> int:
        return self.arch.n_mels

    @property
    def conditional(self) -> bool:
        return self.arch.conditional

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        if not isinstance(data, dict) or not isinstance(data.get("arch"), dict) or \
                not isinstance(data.get("diffusion"), dict):
            raise WavefastError("malformed model spec: expected an object with 'arch' and 'diffusion' objects")
        try:
            data = dict(data)
            arch = dict(data.pop("arch"))
            family = arch.pop("family", "diffwave")
            check_choice("model family", family, FAMILIES)
            arch = SourceFilterConfig(**arch) if family == "sourcefilter" else DiffWaveConfig(**arch)
            diffusion = DiffusionSpec(**data.pop("diffusion"))
            return cls(arch=arch, diffusion=diffusion, **data)
        except (TypeError, KeyError) as exc:
            raise WavefastError(f"malformed model spec: {exc}") from None

    def replace(self, **changes) -> "ModelSpec":
        return dataclasses.replace(self, **changes)
