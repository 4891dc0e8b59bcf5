"""Per-recording preprocessing in numpy: loudness, silence trimming, fixed-length clips.

All functions take mono float32 audio ``(L,)`` in [-1, 1] and return float32.

Loudness (``normalize_loudness``):

- ``"peak"`` (default): ``x * peak / max|x|`` with ``peak = 0.95``.
- ``"rms"``: ``x * 10^((dbfs - rms_dB(x)) / 20)`` with ``dbfs = -20``, then the
  gain is lowered if needed so that ``max|x| <= 0.99`` (never clips).
- ``"none"``: unchanged. Silent input (all zeros) is always returned unchanged.

Fixed-length clips (SC09): the clip is placed so that its energy centre
``c = sum_n n x_n^2 / sum_n x_n^2`` sits at ``length // 2``; a recording shorter
than ``length`` is shifted as little as needed to fit whole and zero-padded, a
longer one is cut to the ``length`` samples around ``c`` (kept inside the
recording).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from ..errors import WavefastError, check_choice

LOUDNESS_MODES = ("peak", "rms", "none")


def _mono(audio) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise WavefastError(f"expected mono audio of shape (L,), got {x.shape}")
    return x


def normalize_loudness(audio, mode: str = "peak", *, peak: float = 0.95, rms_dbfs: float = -20.0) -> np.ndarray:
    """Loudness-normalise one recording; see the module docstring for the formulas."""
    check_choice("loudness normalisation", mode, LOUDNESS_MODES)
    x = _mono(audio)
    top = float(np.max(np.abs(x))) if x.size else 0.0
    if mode == "none" or top == 0.0:
        return x.copy()
    if mode == "peak":
        if not 0.0 < peak <= 1.0:
            raise WavefastError(f"peak level must be in (0, 1], got {peak}")
        gain = peak / top
    else:
        if rms_dbfs >= 0.0:
            raise WavefastError(f"RMS target must be below 0 dBFS, got {rms_dbfs}")
        rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
        gain = min(10.0 ** (rms_dbfs / 20.0) / rms, 0.99 / top)
    return (x * gain).astype(np.float32)


def trim_silence(audio, sample_rate: int, top_db: float = 40.0, margin_s: float = 0.1,
                 frame: int = 512) -> np.ndarray:
    """Cut leading and trailing silence.

    Frames of ``frame`` samples whose RMS is more than ``top_db`` below the loudest
    frame are silence; ``margin_s`` seconds are kept on each side of the first and
    last loud frame. Returns the trimmed audio (never empty for non-silent input).
    """
    x = _mono(audio)
    if top_db <= 0:
        raise WavefastError(f"trim threshold must be > 0 dB, got {top_db}")
    n_frames = max(1, -(-x.size // frame))
    padded = np.zeros(n_frames * frame, dtype=np.float64)
    padded[: x.size] = x
    rms = np.sqrt(np.mean(padded.reshape(n_frames, frame) ** 2, axis=1))
    if rms.max() == 0.0:
        return x.copy()
    loud = np.nonzero(20.0 * np.log10(np.maximum(rms, 1e-12) / rms.max()) > -top_db)[0]
    margin = int(round(margin_s * sample_rate))
    start = max(0, loud[0] * frame - margin)
    stop = min(x.size, (loud[-1] + 1) * frame + margin)
    return x[start:stop].copy()


def energy_centre(audio) -> float:
    """Energy centroid ``sum n x_n^2 / sum x_n^2`` in samples (the middle for silent input)."""
    x = _mono(audio).astype(np.float64)
    energy = x * x
    total = energy.sum()
    if total == 0.0:
        return (x.size - 1) / 2.0
    return float(np.dot(np.arange(x.size), energy) / total)


def place_clip(audio, length: int = 16000) -> Tuple[np.ndarray, int]:
    """Window of ``length`` samples centred on the energy: ``(content, lead)``.

    The clip is ``zeros(lead) ++ content ++ zeros(length - lead - len(content))``;
    storing ``content`` and ``lead`` instead of the padded clip keeps packs small.
    """
    x = _mono(audio)
    if length < 1:
        raise WavefastError(f"clip length must be >= 1 sample, got {length}")
    if x.size == 0:
        return x.copy(), 0
    start = int(round(energy_centre(x))) - length // 2  # clip sample 0 is audio sample `start`
    if x.size <= length:
        start = min(max(start, x.size - length), 0)  # fit whole: start in [L - length, 0]
    else:
        start = min(max(start, 0), x.size - length)  # stay inside: start in [0, L - length]
    lo, hi = max(start, 0), min(start + length, x.size)
    return x[lo:hi].copy(), lo - start


def fit_clip(audio, length: int = 16000) -> np.ndarray:
    """Exactly ``length`` samples, energy-centred and zero-padded (see :func:`place_clip`)."""
    content, lead = place_clip(audio, length)
    out = np.zeros(length, dtype=np.float32)
    out[lead: lead + content.size] = content
    return out
