"""Vocoder quality against ground truth: generated vs reference waveform of one utterance.

All functions take ``reference`` and ``generated`` as 1-D float arrays in [-1, 1] at the
same ``sample_rate``. When the lengths differ both are cropped to the shorter one from
the start (vocoders emit ``frames * hop`` samples, a few hundred more or fewer than the
recording); the caller decides how large a difference is an error. Lower is better for
every distance; PESQ (1..4.64) and STOI (0..1) are higher-is-better.

- ``log_mel_l1``: mean |ln M_ref - ln M_gen| over the 80 x frames Tacotron-2 log-mel
  (``wavefast.audio.mel``, n_fft 1024, hop 256, 0-8 kHz, ln(max(., 1e-5))).
- ``multi_resolution_stft_distance``: mean over (n_fft, hop, Hann window) =
  (512, 128, 512), (1024, 256, 1024), (2048, 512, 2048) of spectral convergence
  ``|| |S_ref| - |S_gen| ||_F / || |S_ref| ||_F`` plus log-magnitude L1
  ``mean |ln |S_ref| - ln |S_gen||`` (magnitudes clamped at 1e-7), centred STFT with
  reflect padding (the auxiliary loss of Parallel WaveGAN, Yamamoto et al. 2020).
- ``mel_cepstral_distortion``: see its docstring (24 coefficients c1..c24, no DTW).
- ``pesq_wb`` / ``stoi_score``: ITU-T P.862.2 wideband PESQ at 16 kHz (``pesq`` package)
  and STOI (Taal et al. 2011, ``pystoi``); ``None`` when the package is not installed.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from ..errors import WavefastError

STFT_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))
MCD_COEFFICIENTS = 24
MCD_CONSTANT = 10.0 * math.sqrt(2.0) / math.log(10.0)  # 6.1418 dB per unit of cepstral distance


def align(reference, generated) -> Tuple[np.ndarray, np.ndarray]:
    """Both signals as float32 (L,), cropped to the shorter length L."""
    ref = np.asarray(reference, dtype=np.float32).reshape(-1)
    gen = np.asarray(generated, dtype=np.float32).reshape(-1)
    length = min(ref.size, gen.size)
    if length == 0:
        raise WavefastError("cannot compare an empty signal")
    if not (np.isfinite(ref).all() and np.isfinite(gen).all()):
        raise WavefastError("signals to compare contain NaN or Inf")
    return ref[:length], gen[:length]


def _min_length(ref: np.ndarray, need: int, what: str) -> None:
    if ref.size <= need:
        raise WavefastError(f"{what} needs signals longer than {need} samples, got {ref.size}")


def log_mel_l1(reference, generated, sample_rate: int) -> float:
    """mean_{m,t} |ln M_ref(m,t) - ln M_gen(m,t)| with the Tacotron-2 log-mel (80 bins)."""
    from ..audio.mel import mel_spectrogram

    ref, gen = align(reference, generated)
    _min_length(ref, 512, "log-mel L1")
    mels = mel_spectrogram(np.stack([ref, gen]), "tacotron2", sample_rate)
    return float((mels[0] - mels[1]).abs().mean())


def _magnitude(x: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    window = torch.hann_window(win, periodic=True, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop_length=hop, win_length=win, window=window, center=True,
                      pad_mode="reflect", return_complex=True)
    return spec.abs().clamp_min(1e-7)


def stft_distance_components(reference, generated) -> Dict[str, float]:
    """Per-resolution ``sc_{n_fft}`` and ``logmag_{n_fft}`` (see the module docstring)."""
    ref, gen = align(reference, generated)
    _min_length(ref, STFT_RESOLUTIONS[-1][0] // 2, "the multi-resolution STFT distance")
    x = torch.from_numpy(np.stack([ref, gen])).double()
    out = {}
    for n_fft, hop, win in STFT_RESOLUTIONS:
        mag = _magnitude(x, n_fft, hop, win)
        out[f"sc_{n_fft}"] = float(torch.linalg.norm(mag[0] - mag[1]) / torch.linalg.norm(mag[0]))
        out[f"logmag_{n_fft}"] = float((mag[0].log() - mag[1].log()).abs().mean())
    return out


def multi_resolution_stft_distance(reference, generated) -> float:
    """(1/3) sum over the three resolutions of (spectral convergence + log-magnitude L1)."""
    parts = stft_distance_components(reference, generated)
    return float(sum(parts.values()) / len(STFT_RESOLUTIONS))


def mel_cepstrum(audio, sample_rate: int, n_coefficients: int = MCD_COEFFICIENTS) -> np.ndarray:
    """Mel-cepstral coefficients c1..cK per frame, (frames, K).

    |STFT| (n_fft 1024, hop 256, Hann, centred) -> 80 Slaney mel bands 0 Hz .. sr/2 ->
    ``L_m = ln(max(mel_m, 1e-5))`` -> cosine transform of the (warped) log-amplitude
    spectrum, ``c_d = (1/M) sum_{m=0}^{M-1} L_m cos(pi d (m + 1/2) / M)``, which is the
    cepstrum convention ``ln S(w) = c_0 + 2 sum_d c_d cos(d w)`` sampled at M = 80 bands.
    c0 (energy) is dropped.
    """
    from scipy.fft import dct

    from ..audio.mel import slaney_mel_filterbank

    x = torch.from_numpy(np.asarray(audio, dtype=np.float64).reshape(1, -1))
    mag = _magnitude(x, 1024, 256, 1024)[0].numpy()
    fb = slaney_mel_filterbank(sample_rate, 1024, 80, 0.0, sample_rate / 2.0)
    log_mel = np.log(np.maximum(fb @ mag, 1e-5))  # (80, frames)
    cepstrum = dct(log_mel, type=2, axis=0, norm=None) / (2.0 * log_mel.shape[0])
    return cepstrum[1: n_coefficients + 1].T


def mel_cepstral_distortion(reference, generated, sample_rate: int, n_coefficients: int = MCD_COEFFICIENTS) -> float:
    """MCD in dB over time-aligned frames (equal-length signals, no DTW, silence kept)::

        MCD = mean_t (10 sqrt(2) / ln 10) sqrt( sum_{d=1}^{K} (c_d(t) - c'_d(t))^2 ),  K = 24

    with ``mel_cepstrum`` coefficients (c0 excluded). The cepstra come from an FFT mel
    filterbank, not SPTK's mel-generalised analysis, so compare values within wavefast
    rather than with papers' absolute MCDs.
    """
    ref, gen = align(reference, generated)
    _min_length(ref, 512, "mel-cepstral distortion")
    diff = mel_cepstrum(ref, sample_rate, n_coefficients) - mel_cepstrum(gen, sample_rate, n_coefficients)
    return float(MCD_CONSTANT * np.sqrt((diff ** 2).sum(axis=1)).mean())


def _to_16k(ref: np.ndarray, gen: np.ndarray, sample_rate: int) -> Tuple[np.ndarray, np.ndarray]:
    from ..audio.io import resample

    return resample(ref, sample_rate, 16000), resample(gen, sample_rate, 16000)


def pesq_wb(reference, generated, sample_rate: int) -> Optional[float]:
    """Wideband PESQ (MOS-LQO, about 1.04..4.64) at 16 kHz, resampling if needed; ``None``
    if the ``pesq`` package is missing or finds no speech in the reference."""
    try:
        from pesq import PesqError, pesq
    except ImportError:
        return None
    ref, gen = _to_16k(*align(reference, generated), sample_rate)
    try:
        return float(pesq(16000, ref.astype(np.float64), gen.astype(np.float64), "wb"))
    except PesqError:
        return None


def stoi_score(reference, generated, sample_rate: int) -> Optional[float]:
    """STOI (0..1, Taal et al. 2011; ``pystoi`` resamples to 10 kHz itself); ``None`` if
    ``pystoi`` is missing."""
    try:
        from pystoi import stoi
    except ImportError:
        return None
    ref, gen = align(reference, generated)
    return float(stoi(ref.astype(np.float64), gen.astype(np.float64), sample_rate, extended=False))


def vocoder_scores(reference, generated, sample_rate: int) -> Dict[str, Optional[float]]:
    """All of the above for one pair: ``{log_mel_l1, mr_stft, mcd_db, pesq_wb, stoi}``."""
    return {"log_mel_l1": log_mel_l1(reference, generated, sample_rate),
            "mr_stft": multi_resolution_stft_distance(reference, generated),
            "mcd_db": mel_cepstral_distortion(reference, generated, sample_rate),
            "pesq_wb": pesq_wb(reference, generated, sample_rate),
            "stoi": stoi_score(reference, generated, sample_rate)}
