"""Reading and writing audio and mel files. The only module that knows file formats.

soundfile is imported inside the functions that need it, so that atomic writes and
mel loading work where it is not installed (e.g. a bare GPU training machine).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch

from ..errors import WavefastError
from ..fileio import atomic_output  # noqa: F401 (re-exported for old callers)

MEL_SUFFIXES = (".npy", ".pt")


def _check_readable(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise WavefastError(f"file not found: {path}")
    if not path.is_file():
        raise WavefastError(f"not a file: {path}")
    if not os.access(path, os.R_OK):
        raise WavefastError(f"file is not readable: {path}")
    return path


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling (librosa / soxr). audio (L,) float32."""
    if orig_sr == target_sr:
        return audio
    import librosa

    return librosa.resample(np.asarray(audio, dtype=np.float32), orig_sr=orig_sr, target_sr=target_sr).astype(np.float32)


def read_audio(path, target_sr: Optional[int] = None, *, announce: bool = False) -> Tuple[np.ndarray, int]:
    """Read a sound file as mono float32 in [-1, 1].

    Multi-channel files are averaged. If ``target_sr`` differs from the file's
    rate the audio is resampled (and, with ``announce``, a line says so on stderr).
    Returns ``(audio (L,), sample_rate)``.
    """
    import soundfile as sf

    path = _check_readable(path)
    try:
        info = sf.info(str(path))
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises RuntimeError/LibsndfileError with a reason
        raise WavefastError(f"cannot read audio file {path}: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}") from None
    if info.frames > 0 and audio.shape[0] < info.frames:
        raise WavefastError(f"audio file {path} is truncated: its header promises {info.frames} samples, "
                            f"{audio.shape[0]} are there")
    if info.format == "WAV" and info.frames > 0:
        expected = _wav_data_bytes(path)
        if expected is not None and expected[0] < expected[1]:
            raise WavefastError(f"audio file {path} is truncated: its header promises {expected[1]} bytes of "
                                f"samples, {expected[0]} are there")
    audio = audio.mean(axis=1)
    if audio.size == 0:
        raise WavefastError(f"audio file is empty: {path}")
    if not np.isfinite(audio).all():
        raise WavefastError(f"audio file contains NaN or Inf samples: {path}")
    if target_sr is not None and sr != target_sr:
        if announce:
            print(f"wavefast: resampling {path.name} from {sr} Hz to {target_sr} Hz (the model's rate)", file=sys.stderr)
        audio = resample(audio, sr, target_sr)
        sr = target_sr
    return audio.astype(np.float32), int(sr)


def _wav_data_bytes(path: Path):
    """(bytes present, bytes promised) of a RIFF WAV's data chunk, or None if it cannot be told."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(12)
            if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            offset = 12
            while offset + 8 <= size:
                f.seek(offset)
                chunk = f.read(8)
                length = int.from_bytes(chunk[4:8], "little")
                if chunk[:4] == b"data":
                    if length in (0, 0xFFFFFFFF):  # streamed WAVs leave it unset
                        return None
                    return max(0, size - offset - 8), length
                offset += 8 + length + (length & 1)
    except OSError:
        return None
    return None


def load_mel(path) -> torch.Tensor:
    """Load a mel spectrogram saved as .npy or .pt (a plain tensor), shape (n_mels, frames)."""
    path = _check_readable(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            mel = torch.from_numpy(np.load(str(path), allow_pickle=False))
        elif suffix == ".pt":
            mel = torch.load(str(path), map_location="cpu", weights_only=True)
        else:
            raise WavefastError(f"unknown mel file type {suffix!r} for {path}; allowed: .npy, .pt")
    except WavefastError:
        raise
    except Exception as exc:
        detail = "a pickle that is not a plain tensor" if "Weights only load failed" in str(exc) else \
            (str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__)
        raise WavefastError(f"cannot read mel file {path}: {detail}; expected a float array (n_mels, frames) "
                            "saved with numpy.save or torch.save") from None
    if not torch.is_tensor(mel):
        raise WavefastError(f"mel file {path} holds a {type(mel).__name__}, expected a tensor (n_mels, frames)")
    if mel.is_complex() or mel.dtype == torch.bool:
        raise WavefastError(f"mel in {path} is {str(mel.dtype).replace('torch.', '')}; a mel holds real numbers")
    mel = mel.float()
    if mel.dim() == 3 and mel.shape[0] == 1:
        mel = mel[0]
    if mel.dim() != 2:
        raise WavefastError(f"mel in {path} has shape {tuple(mel.shape)}, expected (n_mels, frames)")
    if mel.shape[1] == 0:
        raise WavefastError(f"mel in {path} has no frames")
    if not torch.isfinite(mel).all():
        raise WavefastError(f"mel in {path} contains NaN or Inf")
    return mel


def write_wav(path, audio, sample_rate: int) -> Path:
    """Write mono float audio as 16-bit PCM WAV atomically (temp file + rename)."""
    import soundfile as sf

    audio = np.asarray(audio.detach().cpu() if torch.is_tensor(audio) else audio, dtype=np.float32).reshape(-1)
    if not np.isfinite(audio).all():
        raise WavefastError(f"refusing to write {path}: audio contains NaN or Inf")
    with atomic_output(path, ".wav") as tmp:
        sf.write(str(tmp), np.clip(audio, -1.0, 1.0), int(sample_rate), subtype="PCM_16", format="WAV")
    return Path(path)
