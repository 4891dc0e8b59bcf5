"""Typed training configuration: model presets, :class:`ModelConfig`, :class:`TrainConfig`.

The CLI (``wavefast train``) and the Hydra recipes both build a :class:`TrainConfig`
and hand it to :func:`wavefast.train.trainer.train`; nothing below reads argv or
picks a device.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

from ..errors import WavefastError, check_choice
from ..models.spec import DiffusionSpec, DiffWaveConfig, ModelSpec, SourceFilterConfig

LOSSES = ("l2", "l1")
HOP = 256


@dataclass(frozen=True)
class ModelConfig:
    """A native model to train: a DiffWave (sinusoidal step embedding, shared mel upsampler) or,
    with ``family="sourcefilter"``, a :class:`~wavefast.models.sourcefilter.SourceFilterDiffWave`
    (its options below; see that module).

    ``conditional``: mel-conditioned vocoder (80-bin ``mel_frontend`` mels) or
    unconditional generator of ``segment_samples``-sample clips.
    """

    residual_channels: int = 32
    residual_layers: int = 20
    dilation_cycle: int = 10
    T: int = 50
    beta_0: float = 1e-4
    beta_T: float = 0.05
    conditional: bool = True
    mel_frontend: str = "tacotron2"
    n_mels: int = 80
    sample_rate: int = 22050
    segment_samples: int = 62 * HOP
    name: str = "custom"
    family: str = "diffwave"
    subband_levels: int = 2
    prior: str = "shaped"
    excitation: bool = True
    harmonic_mean: bool = False
    prior_scale: float = 1.0
    mel_projection: bool = False

    def __post_init__(self):
        check_choice("model family", self.family, ("diffwave", "sourcefilter"))
        if self.family == "sourcefilter" and (not self.conditional or self.mel_frontend != "tacotron2"):
            raise WavefastError("the source-filter family is a tacotron2-mel vocoder (conditional=True)")
        if self.conditional:
            check_choice("mel front end", self.mel_frontend, ("tacotron2", "lmnt"))
            if self.segment_samples % HOP:
                raise WavefastError(f"segment_samples must be a multiple of the hop {HOP} for a vocoder, "
                                    f"got {self.segment_samples} (e.g. {62 * HOP})")
        if self.segment_samples < HOP:
            raise WavefastError(f"segment_samples must be >= {HOP}, got {self.segment_samples}")
        self.spec()  # validates the rest (channels, layers, betas, rate)

    def spec(self) -> ModelSpec:
        """The :class:`ModelSpec` of the network this config trains."""
        if self.family == "sourcefilter":
            arch = SourceFilterConfig(residual_channels=self.residual_channels, residual_layers=self.residual_layers,
                                      dilation_cycle=self.dilation_cycle, subband_levels=self.subband_levels,
                                      n_mels=self.n_mels, prior=self.prior, excitation=self.excitation,
                                      harmonic_mean=self.harmonic_mean, prior_scale=float(self.prior_scale),
                                      mel_projection=bool(self.mel_projection))
        else:
            arch = DiffWaveConfig(residual_channels=self.residual_channels, skip_channels=self.residual_channels,
                                  residual_layers=self.residual_layers, dilation_cycle=self.dilation_cycle,
                                  n_mels=self.n_mels if self.conditional else 0)
        return ModelSpec(arch=arch, diffusion=DiffusionSpec(int(self.T), float(self.beta_0), float(self.beta_T)),
                         sample_rate=int(self.sample_rate), hop_length=HOP,
                         mel_frontend=self.mel_frontend if self.conditional else None,
                         segment_length=int(self.segment_samples), name=self.name, source_layout="native")


PRESETS = {
    # for tests and smoke runs
    "vocoder-tiny": ModelConfig(8, 4, 2, 50, 1e-4, 0.05, True, segment_samples=16 * HOP, name="vocoder-tiny"),
    # CPU-trainable vocoder
    "vocoder-small": ModelConfig(32, 20, 10, 50, 1e-4, 0.05, True, name="vocoder-small"),
    # DiffWave BASE (philsyn config_64 / lmnt): 64 ch, 30 layers, cycle 10, T=50, beta 1e-4..0.05
    "vocoder-base": ModelConfig(64, 30, 10, 50, 1e-4, 0.05, True, name="vocoder-base"),
    # the source-filter vocoder family (shaped prior, harmonic excitation per layer, 4 Haar bands; the mel
    # projection acts only when sampling): the shipped default's recipe, and a tiny one for tests
    "vocoder-sf": ModelConfig(64, 12, 6, 50, 1e-4, 0.15, True, segment_samples=32 * HOP, name="wavefast-vocoder-sf",
                              family="sourcefilter", mel_projection=True),
    "vocoder-sf-tiny": ModelConfig(8, 2, 2, 20, 1e-4, 0.3, True, segment_samples=8 * HOP, name="vocoder-sf-tiny",
                                   family="sourcefilter"),
    "sc09-tiny": ModelConfig(8, 4, 2, 200, 1e-4, 0.02, False, sample_rate=16000, segment_samples=16000,
                             name="sc09-tiny"),
    "sc09-small": ModelConfig(64, 24, 12, 200, 1e-4, 0.02, False, sample_rate=16000, segment_samples=16000,
                              name="sc09-small"),
    # DiffWave unconditional SC09 (philsyn): 256 ch, 36 layers, cycle 12, T=200, beta 1e-4..0.02
    "sc09-base": ModelConfig(256, 36, 12, 200, 1e-4, 0.02, False, sample_rate=16000, segment_samples=16000,
                             name="sc09-base"),
}
PRESET_NAMES = tuple(PRESETS)


def model_config(preset: Optional[str] = None, **overrides) -> ModelConfig:
    """A preset (default ``vocoder-small``) with ``overrides`` applied (None values are ignored)."""
    name = "vocoder-small" if preset is None else preset
    check_choice("model preset", name, PRESET_NAMES)
    base = PRESETS[name]
    changes = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(changes) - {f.name for f in dataclasses.fields(ModelConfig)}
    if unknown:
        raise WavefastError(f"unknown model option(s) {', '.join(sorted(unknown))}")
    if changes and "name" not in changes:
        changes["name"] = f"{base.name}-custom"
    return dataclasses.replace(base, **changes)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the device.

    Loss: ``E_{t, eps} || eps - eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t, mel) ||``
    (squared for ``l2``), ``t ~ Uniform{0..T-1}``. Adam(``lr``), gradient norm clipped
    to ``grad_clip`` (0 = off), EMA of the weights with ``ema_decay``.
    """

    pack: str
    out: str
    model: ModelConfig = field(default_factory=ModelConfig)
    steps: int = 100_000
    batch_size: int = 8
    lr: float = 2e-4
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    loss: str = "l2"
    seed: int = 0
    amp: bool = True  # bf16 autocast, used only on CUDA
    log_every: int = 50
    checkpoint_every: int = 1000
    val_every: int = 1000  # 0 = never
    val_items: int = 4
    val_seconds: float = 1.0
    val_steps: int = 6
    val_schedule: str = "var-quadratic"
    val_kappa: float = 1.0
    export_dtype: str = "float16"
    gain_db: float = 0.0  # random gain per example in [-gain_db, gain_db] dB (log-mel shifted to match)
    low_t_fraction: float = 0.0  # share of examples with t drawn from the lowest fifth of the steps
    init_from: Optional[str] = None  # start from these weights (a model file) instead of at random
    max_minutes: Optional[float] = None  # stop (with a checkpoint) after this long; resume to go on
    stft_weight: float = 0.0  # source-filter family: MR-STFT loss on x0 predicted at the low-noise steps

    def __post_init__(self):
        check_choice("loss", self.loss, LOSSES)
        check_choice("export dtype", self.export_dtype, ("float16", "bfloat16", "float32"))
        positive = {"steps": self.steps, "batch_size": self.batch_size, "log_every": self.log_every,
                    "checkpoint_every": self.checkpoint_every, "val_steps": self.val_steps}
        for name, value in positive.items():
            if int(value) < 1:
                raise WavefastError(f"{name} must be >= 1, got {value}")
        if not self.lr > 0:
            raise WavefastError(f"learning rate must be > 0, got {self.lr}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise WavefastError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.grad_clip < 0 or self.val_every < 0 or self.val_items < 0 or self.val_seconds <= 0:
            raise WavefastError("grad_clip, val_every and val_items must be >= 0 and val_seconds > 0")
        if not 0.0 <= self.val_kappa <= 1.0:
            raise WavefastError(f"val_kappa must be in [0, 1], got {self.val_kappa}")
        if not 0.0 <= self.gain_db <= 40.0 or not 0.0 <= self.low_t_fraction <= 1.0:
            raise WavefastError("gain_db must lie in [0, 40] and low_t_fraction in [0, 1]")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise WavefastError(f"unknown training option(s) {', '.join(sorted(unknown))}; "
                                f"allowed: {', '.join(sorted(known))}")
        model = data.pop("model", None)
        if isinstance(model, dict):
            model = dict(model)
            preset = model.pop("preset", None)
            model = model_config(preset, **model)
        try:
            return cls(model=model or ModelConfig(), **data)
        except TypeError as exc:
            raise WavefastError(f"bad training config: {exc}") from None

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


# Settings that may change when a run is resumed; anything else must match the checkpoint.
RESUMABLE_CHANGES = ("pack", "out", "steps", "log_every", "checkpoint_every", "val_every", "val_items",
                     "val_seconds", "val_steps", "val_schedule", "val_kappa", "export_dtype", "amp", "init_from",
                     "max_minutes")
