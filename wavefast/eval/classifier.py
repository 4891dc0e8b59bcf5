"""SC09 spoken-digit classifier: the feature extractor behind FID / IS / mIS / AM / NDB.

Front end (``FrontEnd``, stored with the weights)::

    clip       mono, 16 kHz, exactly 16000 samples (``prepare_clip``: centre of energy
               moved to sample 8000, zero-pad / cut to 16000, peak-normalise to 1)
    |STFT|^2   n_fft 1024, hop 512, periodic Hann 1024, centred, reflect pad
               -> 16000 // 512 + 1 = 32 frames
    mel        32 Slaney-scale, Slaney-normalised bins, 20 Hz .. 8 kHz
    log        ln(max(mel, 1e-6))                        -> input (1, 32, 32)

Network (``SC09Classifier``): a small ResNeXt (Xie et al. 2017) in the spirit of the
DiffWave / WaveGAN SC09 classifier, scaled down to train on two CPU cores::

    BatchNorm(1) -> conv3x3(1->w0) BN ReLU
    stage i: ResNeXt blocks (1x1 -> grouped 3x3 (cardinality g) -> 1x1, identity or
             1x1-conv shortcut), the first block of stages 2, 3 with stride 2
    global average pool -> features (N, widths[-1])   (the FID features)
    dropout -> linear -> logits (N, 10)                 (classes 0..9 = "zero".."nine")

The weights file is safetensors with the architecture and front end as JSON in the
metadata (key ``wavefast_sc09_classifier``); ``load_sc09_classifier()`` with no path
loads the shipped fp16 weights.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import WavefastError
from ..fileio import read_safetensors, read_safetensors_metadata, write_safetensors

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
METADATA_KEY = "wavefast_sc09_classifier"
FORMAT = "wavefast-sc09-classifier-v1"
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "models" / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "sc09_classifier.safetensors"
DEFAULT_STATS = WEIGHTS_DIR / "sc09_train_stats.npz"


@dataclass(frozen=True)
class FrontEnd:
    """Log-mel front end; ``frames`` frames of ``n_mels`` bins from a 16000-sample clip."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 32
    f_min: float = 20.0
    f_max: float = 8000.0
    frames: int = 32
    log_floor: float = 1e-6


@dataclass(frozen=True)
class ClassifierConfig:
    """Architecture of ``SC09Classifier``."""

    stem: int = 32
    widths: Tuple[int, ...] = (64, 128, 256)
    blocks: Tuple[int, ...] = (1, 1, 1)
    cardinality: int = 8
    bottleneck: float = 0.5
    n_classes: int = 10
    dropout: float = 0.2
    frontend: FrontEnd = field(default_factory=FrontEnd)

    @property
    def feature_dim(self) -> int:
        return self.widths[-1]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ClassifierConfig":
        data = json.loads(text)
        data["widths"], data["blocks"] = tuple(data["widths"]), tuple(data["blocks"])
        data["frontend"] = FrontEnd(**data["frontend"])
        return cls(**data)


# --- front end -----------------------------------------------------------------------------
def prepare_clip(audio, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """One clip (L,) at ``sample_rate`` -> float32 (16000,) at 16 kHz.

    Resample to 16 kHz; centre: shift so that the energy centroid
    ``sum_n n x[n]^2 / sum_n x[n]^2`` lands on sample 8000, zero-padding / cutting to
    16000 samples; peak-normalise to max |x| = 1 (all-zero clips stay zero).
    """
    from ..audio.io import resample

    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    if x.size == 0:
        raise WavefastError("cannot classify an empty clip")
    if sample_rate != SAMPLE_RATE:
        x = resample(x, sample_rate, SAMPLE_RATE)
    energy = x.astype(np.float64) ** 2
    total = energy.sum()
    centre = int(round(float((np.arange(x.size) * energy).sum() / total))) if total > 0 else x.size // 2
    start = centre - CLIP_SAMPLES // 2  # index in x of output sample 0
    out = np.zeros(CLIP_SAMPLES, dtype=np.float32)
    src_lo, src_hi = max(start, 0), min(start + CLIP_SAMPLES, x.size)
    out[src_lo - start: src_hi - start] = x[src_lo:src_hi]
    peak = float(np.abs(out).max())
    return out / peak if peak > 0 else out


class LogMel(nn.Module):
    """audio (N, 16000) -> log-mel (N, 1, n_mels, frames), see the module docstring."""

    def __init__(self, spec: FrontEnd):
        super().__init__()
        from ..audio.mel import slaney_mel_filterbank

        self.spec = spec
        fb = slaney_mel_filterbank(spec.sample_rate, spec.n_fft, spec.n_mels, spec.f_min, spec.f_max)
        self.register_buffer("filterbank", torch.from_numpy(fb).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(spec.n_fft, periodic=True), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        s = self.spec
        stft = torch.stft(audio, s.n_fft, hop_length=s.hop_length, window=self.window, center=True,
                          pad_mode="reflect", return_complex=True)
        power = stft.real.square() + stft.imag.square()
        mel = torch.log(torch.clamp(self.filterbank @ power, min=s.log_floor))
        return mel[..., : s.frames].unsqueeze(1)


# --- network -------------------------------------------------------------------------------
class ResNeXtBlock(nn.Module):
    """Bottleneck block: 1x1 (in->mid) -> grouped 3x3 (mid->mid, stride) -> 1x1 (mid->out),
    BN after each conv, ReLU(residual + shortcut). (N, in, H, W) -> (N, out, H/stride, W/stride)."""

    def __init__(self, channels_in: int, channels_out: int, stride: int, cardinality: int, bottleneck: float):
        super().__init__()
        mid = max(cardinality, int(round(channels_out * bottleneck / cardinality)) * cardinality)
        self.reduce = nn.Sequential(nn.Conv2d(channels_in, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU())
        self.grouped = nn.Sequential(nn.Conv2d(mid, mid, 3, stride, 1, groups=cardinality, bias=False),
                                     nn.BatchNorm2d(mid), nn.ReLU())
        self.expand = nn.Sequential(nn.Conv2d(mid, channels_out, 1, bias=False), nn.BatchNorm2d(channels_out))
        self.shortcut = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(channels_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.expand(self.grouped(self.reduce(x))) + self.shortcut(x))


class SC09Classifier(nn.Module):
    """audio (N, 16000) -> (logits (N, n_classes), features (N, feature_dim))."""

    def __init__(self, config: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        if len(config.widths) != len(config.blocks):
            raise WavefastError("classifier config: widths and blocks must have the same length")
        self.config = config
        self.frontend = LogMel(config.frontend)
        self.input_norm = nn.BatchNorm2d(1)
        self.stem = nn.Sequential(nn.Conv2d(1, config.stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(config.stem), nn.ReLU())
        layers, channels = [], config.stem
        for stage, (width, count) in enumerate(zip(config.widths, config.blocks)):
            for i in range(count):
                stride = 2 if (stage > 0 and i == 0) else 1
                layers.append(ResNeXtBlock(channels, width, stride, config.cardinality, config.bottleneck))
                channels = width
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(channels, config.n_classes)

    def features_from_logmel(self, logmel: torch.Tensor) -> torch.Tensor:
        """log-mel (N, 1, n_mels, frames) -> pooled features (N, feature_dim)."""
        return self.body(self.stem(self.input_norm(logmel))).mean(dim=(2, 3))

    def forward(self, audio: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        features = self.features_from_logmel(self.frontend(audio))
        return self.head(self.dropout(features)), features


# --- weights files -------------------------------------------------------------------------
def save_sc09_classifier(model: SC09Classifier, path, dtype: torch.dtype = torch.float16,
                         extra_metadata: Optional[dict] = None) -> Path:
    """Write ``model`` as safetensors (atomic), config JSON in the metadata."""
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, METADATA_KEY: model.config.to_json()}
    metadata.update({k: str(v) for k, v in (extra_metadata or {}).items()})
    return write_safetensors(path, tensors, metadata)


def read_metadata(path) -> dict:
    """The string metadata of a classifier safetensors file."""
    return read_safetensors_metadata(path, "SC09 classifier")


def load_sc09_classifier(path=None, device="cpu") -> SC09Classifier:
    """Load a classifier written by ``save_sc09_classifier`` (``None``: the shipped one),
    in float32 and eval mode. Raises WavefastError for a missing or malformed file."""
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        hint = " (the shipped weights are missing: retrain with python -m wavefast.eval.train_classifier)" \
            if path == DEFAULT_WEIGHTS else ""
        raise WavefastError(f"SC09 classifier file not found: {path}{hint}")
    metadata = read_metadata(path)
    if metadata.get("format") != FORMAT or METADATA_KEY not in metadata:
        raise WavefastError(f"{path} is not a wavefast SC09 classifier (metadata 'format' is "
                            f"{metadata.get('format')!r}, expected {FORMAT!r})")
    try:
        config = ClassifierConfig.from_json(metadata[METADATA_KEY])
        model = SC09Classifier(config)
        state, _ = read_safetensors(path, "SC09 classifier", float_only=False)
        model.load_state_dict(state)
    except WavefastError:
        raise
    except Exception as exc:
        raise WavefastError(f"SC09 classifier {path} is malformed: {exc}") from None
    return model.to(device).eval()


@torch.no_grad()
def classify(model: SC09Classifier, audio, batch_size: int = 256) -> Tuple[np.ndarray, np.ndarray]:
    """Class posteriors and features of 1 s clips at 16 kHz.

    audio (N, 16000) float32 -> ``probs`` (N, 10) float64 softmax outputs, ``features``
    (N, D) float64 pooled penultimate activations. Each row is peak-normalised here (as in
    training); centring is not, so pass clips through ``prepare_clip`` first unless they
    are already 1 s clips with the word near the middle (as SC09 and its generators give).
    Runs in eval mode on the model's device, ``batch_size`` clips at a time.
    """
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] != CLIP_SAMPLES or x.shape[0] == 0:
        raise WavefastError(f"classify expects audio of shape (N, {CLIP_SAMPLES}) with N >= 1, got {x.shape}; "
                            f"use prepare_clip to cut or pad clips to 1 s at 16 kHz")
    if not np.isfinite(x).all():
        raise WavefastError("audio to classify contains NaN or Inf")
    peak = np.abs(x).max(axis=1, keepdims=True)
    x = x / np.where(peak > 0, peak, 1.0)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    probs, feats = [], []
    for start in range(0, x.shape[0], batch_size):
        logits, features = model(torch.from_numpy(x[start: start + batch_size]).to(device))
        probs.append(torch.softmax(logits.double(), dim=1).cpu().numpy())
        feats.append(features.double().cpu().numpy())
    model.train(was_training)
    return np.concatenate(probs), np.concatenate(feats)
