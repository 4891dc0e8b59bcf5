"""F0 tracks, harmonic phase and pitch metrics: the frame-rate side of the source-filter vocoder.

Conventions (the mel's own, Tacotron-2 front end): frame ``j`` is centred on sample ``j * hop``;
a per-sample track is the linear interpolation between frame centres, and past the last frame
centre the last frame is held. A track over ``length`` samples therefore reads frames
``0 .. ceil(length / hop)`` (the frame after the last one is used when it is given, else the last
frame is repeated), so a window cut from a longer utterance, with its extra frame, gives the same
samples as the whole utterance does there.

Phase (F0 in Hz per sample ``f``, sample rate ``sr``)::

    phi(n) = phase0 + 2 pi sum_{m < n} f(m) / sr          (wrapped to [0, 2 pi))

accumulated in float64 so that long utterances and chunked windows agree. Training uses a
phase *aligned* to the recording: the first harmonic's complex amplitude
``c_j = sum_n w(n - j hop) x(n) exp(-i phi(n))`` (Hann window of ``n_fft``) gives the offset
``theta_j = angle(c_j)`` between the integrated phase and the real one, unwrapped across frames
and interpolated to samples: ``phi_aligned = phi + theta``.

Pitch metrics (Chu and Alwan 2009 definitions, 20% threshold): gross pitch error = share of
frames voiced in both tracks whose F0 differs by more than 20%; voicing decision error = share
of frames whose voiced/unvoiced decision differs.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
import torch

from ..errors import WavefastError

F0_MIN, F0_MAX = 55.0, 600.0
DEFAULT_F0 = 150.0  # used where an utterance has no voiced frame at all


def fill_unvoiced(f0: np.ndarray) -> np.ndarray:
    """Continuous F0 (Hz): log-linear interpolation across frames with f0 <= 0, ends held. (F,) -> (F,)."""
    f0 = np.asarray(f0, dtype=np.float64)
    voiced = f0 > 0
    if not voiced.any():
        return np.full_like(f0, DEFAULT_F0)
    idx = np.arange(f0.shape[0])
    return np.exp(np.interp(idx, idx[voiced], np.log(f0[voiced])))


def frames_to_samples(frames: torch.Tensor, length: int, hop: int) -> torch.Tensor:
    """Linear interpolation between frame centres: (..., F) -> (..., length), last frame held.

    Needs ``F * hop >= length``; frame ``floor(n / hop) + 1`` is used when ``F`` has it.
    """
    frames = torch.as_tensor(frames)
    count = frames.shape[-1]
    if count * hop < length:
        raise WavefastError(f"{count} frames cover {count * hop} samples < {length}")
    need = -(-length // hop) + 1  # frames 0 .. ceil(length / hop)
    if count < need:
        frames = torch.cat([frames, frames[..., -1:].expand(*frames.shape[:-1], need - count)], -1)
    else:
        frames = frames[..., :need]
    # out[j hop + m] = a_j (1 - m / hop) + a_{j+1} m / hop, computed per frame interval (exact, no gather)
    frac = torch.arange(hop, dtype=frames.dtype, device=frames.device) / hop
    low, high = frames[..., :-1, None], frames[..., 1:, None]
    out = (low * (1 - frac) + high * frac).reshape(*frames.shape[:-1], (need - 1) * hop)
    return out[..., :length]


def phase_increments(f0: torch.Tensor, hop: int, sample_rate: int) -> torch.Tensor:
    """Phase gained over each frame interval [j hop, (j+1) hop): (..., F) Hz -> (..., F) radians, float64.

    With linear interpolation inside the interval, ``sum_{m=0}^{hop-1} f(j hop + m)
    = hop f_j + (f_{j+1} - f_j)(hop - 1) / 2`` (the last frame is held).
    """
    f0 = torch.as_tensor(f0, dtype=torch.float64)
    nxt = torch.cat([f0[..., 1:], f0[..., -1:]], -1)
    return 2 * math.pi * (hop * f0 + (nxt - f0) * (hop - 1) / 2) / sample_rate


def phase_track(f0: torch.Tensor, length: int, hop: int, sample_rate: int,
                phase0: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Wrapped phase (..., length) float32 of a continuous F0 track (..., F) in Hz.

    ``phase0`` (...,) is the phase at sample 0 (default 0). Accumulated in float64, wrapped to
    [0, 2 pi), so a window starting at frame ``a`` with ``phase0 = phase_at_frame(f0, a)``
    equals the whole utterance's track there to float rounding.
    """
    f0 = torch.as_tensor(f0, dtype=torch.float64)
    per_sample = frames_to_samples(f0, length, hop)
    phi = 2 * math.pi * (torch.cumsum(per_sample, -1) - per_sample) / sample_rate
    if phase0 is not None:
        phi = phi + torch.as_tensor(phase0, dtype=torch.float64)[..., None]
    return torch.remainder(phi, 2 * math.pi).float()


def phase_at_frame(f0: torch.Tensor, frame: int, hop: int, sample_rate: int,
                   phase0: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Phase at sample ``frame * hop`` of the track of ``f0`` (..., F): (...,) float64, wrapped."""
    inc = phase_increments(f0, hop, sample_rate)[..., :frame]
    phi = inc.sum(-1)
    if phase0 is not None:
        phi = phi + torch.as_tensor(phase0, dtype=torch.float64)
    return torch.remainder(phi, 2 * math.pi)


def aligned_phase(audio: np.ndarray, f0: np.ndarray, hop: int, sample_rate: int, n_fft: int = 1024) -> np.ndarray:
    """Phase of the first harmonic of ``audio`` (L,) following the continuous F0 ``f0`` (F,). (L,) float32.

    See the module docstring; used to make training targets phase-consistent with the
    harmonic excitation (at inference the phase is free: :func:`phase_track`).
    """
    audio = np.asarray(audio, dtype=np.float64)
    length = audio.shape[0]
    per_sample = frames_to_samples(torch.from_numpy(np.asarray(f0, np.float64)), length, hop).numpy()
    phi = 2 * np.pi * (np.cumsum(per_sample) - per_sample) / sample_rate
    analytic = audio * np.exp(-1j * phi)
    window = np.hanning(n_fft + 1)[:-1]
    padded = np.pad(analytic, (n_fft // 2, n_fft // 2 + hop))
    count = len(f0)
    starts = np.arange(count) * hop
    frames = np.stack([padded[s:s + n_fft] for s in starts]) if count else np.zeros((0, n_fft))
    theta = np.unwrap(np.angle(frames @ window))
    theta_samples = frames_to_samples(torch.from_numpy(theta), length, hop).numpy()
    return np.mod(phi + theta_samples, 2 * np.pi).astype(np.float32)


def track_pitch(audio: np.ndarray, sample_rate: int, hop: int = 256, fmin: float = F0_MIN,
                fmax: float = F0_MAX) -> Tuple[np.ndarray, np.ndarray]:
    """(f0 Hz with 0 where unvoiced, voiced probability), each (L // hop + 1,), by pYIN (librosa).

    Frames are centred on ``j * hop`` like the mel. The frame length is ``4 * hop`` (1024 at 22.05 kHz).
    """
    import librosa

    audio = np.asarray(audio, dtype=np.float32)
    if audio.shape[0] <= 2 * hop:
        raise WavefastError(f"audio of {audio.shape[0]} samples is too short for pitch tracking")
    f0, _, prob = librosa.pyin(audio, fmin=fmin, fmax=fmax, sr=sample_rate, frame_length=4 * hop, hop_length=hop,
                               center=True)
    f0 = np.nan_to_num(f0, nan=0.0)
    return f0.astype(np.float32), np.nan_to_num(prob, nan=0.0).astype(np.float32)


def pitch_errors(ref_f0: np.ndarray, ref_voiced: np.ndarray, f0: np.ndarray, voiced: np.ndarray,
                 threshold: float = 0.2) -> dict:
    """Gross pitch error and voicing decision error between two frame tracks (truncated to the shorter)."""
    n = min(len(ref_f0), len(f0))
    ref_f0, f0 = np.asarray(ref_f0[:n], np.float64), np.asarray(f0[:n], np.float64)
    rv, v = np.asarray(ref_voiced[:n], bool), np.asarray(voiced[:n], bool)
    both = rv & v
    gpe = float(np.mean(np.abs(f0[both] - ref_f0[both]) > threshold * ref_f0[both])) if both.any() else float("nan")
    return {"gpe": gpe, "vde": float(np.mean(rv != v)) if n else float("nan"), "frames": int(n),
            "voiced_both": int(both.sum())}
