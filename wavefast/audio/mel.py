"""Mel front ends in plain torch: ``tacotron2`` and ``lmnt``.

``tacotron2`` (Tacotron-2 / HiFi-GAN / philsyn DiffWave, the format of
``../shared/data/ljspeech/mels``)::

    |STFT(x)|   n_fft 1024, hop 256, win 1024, periodic Hann, centred, reflect pad
    mel        = M_slaney(sr, n_fft, n_mels, fmin=0, fmax=8000) @ |STFT|
    log-mel    = ln(max(mel, 1e-5))                       range [-11.513, ~3]

``lmnt`` (lmnt-com/diffwave preprocess: torchaudio MelSpectrogram with power 1,
normalized=True, f_min 20, f_max sr/2, HTK mel scale without norm)::

    |STFT(x)| / sqrt(sum(window^2))
    mel        = M_htk(f_min=20, f_max=sr/2) @ that
    db         = 20 log10(max(mel, 1e-5)) - 20
    out        = clip((db + 100) / 100, 0, 1)             range [0, 1]

Input audio: float in [-1, 1], shape (L,) or (B, L). Output (n_mels, frames) or
(B, n_mels, frames) with ``frames = L // hop + 1``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import WavefastError, check_choice

FRONTENDS = ("tacotron2", "lmnt")


@dataclass(frozen=True)
class FrontEndSpec:
    name: str
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    f_min: float = 0.0
    f_max: float = 8000.0
    mel_scale: str = "slaney"


def frontend_spec(name: str, sample_rate: int, hop_length: int = 256) -> FrontEndSpec:
    check_choice("mel front end", name, FRONTENDS)
    if name == "tacotron2":
        return FrontEndSpec(name, hop_length=hop_length, f_min=0.0, f_max=8000.0, mel_scale="slaney")
    return FrontEndSpec(name, hop_length=hop_length, win_length=4 * hop_length, f_min=20.0,
                        f_max=sample_rate / 2.0, mel_scale="htk")


# --- mel filterbanks (numpy float64, (n_mels, n_fft//2 + 1)) ---------------------------
def _hz_to_mel_slaney(f):
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, np.log(6.4) / 27.0
    lin = f / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, lin)


def _mel_to_hz_slaney(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def _triangles(fft_freqs: np.ndarray, edges_hz: np.ndarray) -> np.ndarray:
    """Triangular filters with corners at edges_hz[i], edges_hz[i+1], edges_hz[i+2]."""
    widths = np.diff(edges_hz)
    ramps = edges_hz[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    return np.maximum(0.0, np.minimum(lower, upper))


def slaney_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """Slaney-scale, Slaney-normalised filterbank (librosa ``filters.mel`` defaults)."""
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    mels = np.linspace(_hz_to_mel_slaney(f_min), _hz_to_mel_slaney(f_max), n_mels + 2)
    edges = _mel_to_hz_slaney(mels)
    weights = _triangles(fft_freqs, edges)
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def htk_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """HTK-scale filterbank without normalisation (torchaudio ``melscale_fbanks`` defaults)."""
    fft_freqs = np.linspace(0.0, sample_rate // 2, n_fft // 2 + 1)
    to_mel = lambda f: 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)
    mels = np.linspace(to_mel(f_min), to_mel(f_max), n_mels + 2)
    edges = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    return _triangles(fft_freqs, edges)


@functools.lru_cache(maxsize=16)
def _filterbank(name: str, sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    make = slaney_mel_filterbank if name == "slaney" else htk_mel_filterbank
    return torch.from_numpy(make(sample_rate, n_fft, n_mels, f_min, f_max)).float()


def frontend_filterbank(frontend: str, sample_rate: int, n_mels: int = 80, hop_length: int = 256) -> torch.Tensor:
    """The (n_mels, n_fft/2 + 1) float32 filterbank a front end multiplies |STFT| with."""
    spec = frontend_spec(frontend, sample_rate, hop_length)
    return _filterbank(spec.mel_scale, int(sample_rate), spec.n_fft, n_mels, spec.f_min, spec.f_max)


def mel_spectrogram(audio, frontend: str, sample_rate: int, n_mels: int = 80, hop_length: int = 256) -> torch.Tensor:
    """Log-mel spectrogram of ``audio`` (L,) or (B, L) in the named front end's format."""
    spec = frontend_spec(frontend, sample_rate, hop_length)
    x = torch.as_tensor(np.asarray(audio, dtype=np.float32) if not torch.is_tensor(audio) else audio).float()
    squeeze = x.dim() == 1
    if squeeze:
        x = x[None]
    if x.dim() != 2 or x.shape[-1] == 0:
        raise WavefastError(f"audio must be (L,) or (B, L) with L > 0, got shape {tuple(x.shape)}")
    if x.shape[-1] <= spec.n_fft // 2:
        raise WavefastError(f"audio of {x.shape[-1]} samples is too short for a {spec.n_fft}-point STFT "
                            f"(need > {spec.n_fft // 2})")
    window = torch.hann_window(spec.win_length, periodic=True, device=x.device)
    stft = torch.stft(x, spec.n_fft, hop_length=spec.hop_length, win_length=spec.win_length, window=window,
                      center=True, pad_mode="reflect", return_complex=True)
    magnitude = stft.abs()
    fb = _filterbank(spec.mel_scale, int(sample_rate), spec.n_fft, n_mels, spec.f_min, spec.f_max).to(x.device)
    if frontend == "tacotron2":
        mel = torch.log(torch.clamp(fb @ magnitude, min=1e-5))
    else:
        magnitude = magnitude / window.pow(2).sum().sqrt()
        db = 20.0 * torch.log10(torch.clamp(fb @ magnitude, min=1e-5)) - 20.0
        mel = torch.clamp((db + 100.0) / 100.0, 0.0, 1.0)
    return mel[0] if squeeze else mel


def guess_frontend(mel) -> str:
    """Which front end a log-mel's value range points to: 'lmnt' (all in [0, 1]) or 'tacotron2'.

    tacotron2 mels are natural-log magnitudes: silence sits at -11.5 and speech
    mostly below 0; lmnt mels are clipped to [0, 1].
    """
    m = torch.as_tensor(mel)
    lo, hi = float(m.min()), float(m.max())
    if lo >= 0.0 and hi <= 1.0:
        return "lmnt"
    return "tacotron2"


def check_mel(mel, n_mels: int, frontend: str, name: str = "mel") -> torch.Tensor:
    """Validate a mel (n_mels, frames) or (B, n_mels, frames) for a model; returns (B, n_mels, frames) float32.

    Refuses: wrong rank or bin count, no frames, complex, integer-free garbage, NaN/Inf, and a value
    range that belongs to the other front end (a mismatched mel gives static).
    """
    if isinstance(mel, np.ndarray):
        if np.iscomplexobj(mel):
            raise WavefastError(f"{name} is complex; a mel spectrogram is real-valued")
        mel = torch.from_numpy(np.ascontiguousarray(mel))
    mel = torch.as_tensor(mel)
    if mel.is_complex():
        raise WavefastError(f"{name} is complex; a mel spectrogram is real-valued")
    if mel.dtype == torch.bool:
        raise WavefastError(f"{name} holds booleans; a mel spectrogram holds real numbers")
    mel = mel.detach().float().cpu()
    if mel.dim() == 2:
        mel = mel[None]
    if mel.dim() != 3:
        raise WavefastError(f"{name} must be (n_mels, frames) or (B, n_mels, frames), got shape {tuple(mel.shape)}")
    if mel.shape[1] != n_mels:
        raise WavefastError(f"{name} has {mel.shape[1]} mel bins but the checkpoint expects {n_mels} "
                            f"(shape {tuple(mel.shape)}; a (frames, n_mels) array needs transposing)")
    if mel.shape[2] == 0 or mel.shape[0] == 0:
        raise WavefastError(f"{name} is empty (shape {tuple(mel.shape)})")
    if not torch.isfinite(mel).all():
        raise WavefastError(f"{name} contains NaN or Inf")
    looks_like = guess_frontend(mel)
    if looks_like != frontend:
        raise WavefastError(
            f"{name} looks like a '{looks_like}' mel (values in [{float(mel.min()):.3g}, {float(mel.max()):.3g}]) "
            f"but the checkpoint expects the '{frontend}' front end; recompute it from audio with that "
            "front end (a mismatched mel gives static)")
    return mel
