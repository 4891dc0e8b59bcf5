"""MOS proxy: Microsoft DNSMOS through the ``speechmos`` package (offline ONNX models).

For each clip (resampled to 16 kHz, the only rate the models accept, and clipped to
[-1, 1]) speechmos' ``DNSMOS`` model gives

- ``p808``: DNSMOS P.808, one overall MOS (ITU-T P.808 listening tests), from a log-mel
  of 9.01 s windows;
- ``sig`` / ``bak`` / ``ovrl``: DNSMOS P.835 speech quality, background-noise
  intrusiveness and overall quality.

Scores are on 1..5 (higher is better) and averaged over 9.01 s windows hopped by 1 s;
``speechmos`` tiles clips shorter than 9.01 s by repeating them. DNSMOS was trained on
noisy/enhanced speech, so it is a proxy for vocoder MOS, not a substitute for listeners.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..errors import WavefastError
from .metrics import mean_confidence_interval

DNSMOS_RATE = 16000
DNSMOS_KEYS = ("p808", "sig", "bak", "ovrl")
_SPEECHMOS_KEYS = {"p808": "p808_mos", "sig": "sig_mos", "bak": "bak_mos", "ovrl": "ovrl_mos"}


class DnsmosScorer:
    """Holds the two DNSMOS ONNX sessions of ``speechmos`` (P.835 ``sig_bak_ovr.onnx`` and
    P.808 ``model_v8.onnx``), created with ``threads`` intra-op threads and no spin-waiting
    so that scoring does not starve other work. Call it with a 16 kHz clip in [-1, 1]."""

    def __init__(self, threads: int = 1, cuda: bool = False):
        try:
            import onnxruntime as ort
        except ImportError:
            raise WavefastError("DNSMOS runs on ONNX Runtime, which is not installed: pip install 'wavefast[eval]' "
                                "(or onnxruntime-gpu)") from None
        try:
            from speechmos import dnsmos as speechmos_dnsmos
        except ImportError:
            raise WavefastError("DNSMOS needs the 'speechmos' package: pip install 'wavefast[eval]'") from None
        models = Path(speechmos_dnsmos.__file__).resolve().parent / "dnsmos_models"
        primary, p808 = models / "sig_bak_ovr.onnx", models / "model_v8.onnx"
        if not (primary.is_file() and p808.is_file()):
            raise WavefastError(f"speechmos is installed but its DNSMOS models are missing from {models}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # speechmos' own DNSMOS class does the windowing, mel and polynomial mapping; we only
        # hand it sessions built with our thread options instead of its defaults.
        self._model = speechmos_dnsmos.DNSMOS.__new__(speechmos_dnsmos.DNSMOS)
        self._model.primary_model_path = str(primary)
        providers = ["CPUExecutionProvider"]
        if cuda:
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise WavefastError("DNSMOS on CUDA needs onnxruntime-gpu (pip install onnxruntime-gpu, without "
                                    "onnxruntime); use --device cpu")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        self._model.onnx_sess = ort.InferenceSession(str(primary), options, providers=providers)
        self._model.p808_onnx_sess = ort.InferenceSession(str(p808), options, providers=providers)

    def __call__(self, audio16k: np.ndarray) -> Dict[str, float]:
        raw = self._model(np.asarray(audio16k, dtype=np.float32), DNSMOS_RATE, False)
        return {key: float(raw[name]) for key, name in _SPEECHMOS_KEYS.items()}


def dnsmos(audio, sample_rate: int, scorer: Optional[DnsmosScorer] = None) -> Dict[str, float]:
    """DNSMOS scores of one clip (L,) at ``sample_rate`` -> {p808, sig, bak, ovrl}. Pass a
    ``DnsmosScorer`` to reuse its loaded models across clips."""
    from ..audio.io import resample

    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    if x.size == 0:
        raise WavefastError("cannot score an empty clip")
    if not np.isfinite(x).all():
        raise WavefastError("audio to score contains NaN or Inf")
    if sample_rate != DNSMOS_RATE:
        x = resample(x, sample_rate, DNSMOS_RATE)
    return (scorer or DnsmosScorer())(np.clip(x, -1.0, 1.0))


def summarise(per_file: Dict[str, Dict[str, Optional[float]]], keys, confidence: float = 0.95) -> Dict[str, dict]:
    """{metric: {"mean", "ci95", "n"}} over files (t-interval, see
    ``metrics.mean_confidence_interval``); files whose value is None are left out."""
    out = {}
    for key in keys:
        values = [scores[key] for scores in per_file.values() if scores.get(key) is not None]
        if values:
            mean, half = mean_confidence_interval(values, confidence)
            out[key] = {"mean": mean, "ci95": half, "n": len(values)}
    return out


def list_wavs(folder, recursive: bool = False) -> List[Path]:
    """Sorted ``*.wav`` files in ``folder``; WavefastError if it is missing or has none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WavefastError(f"not a folder: {folder}")
    files = sorted(p for p in (folder.rglob("*") if recursive else folder.iterdir())
                   if p.is_file() and p.suffix.lower() == ".wav")
    if not files:
        raise WavefastError(f"no .wav files in {folder}" + (" or its subfolders" if recursive else ""))
    return files


def score_folder(folder, progress: bool = True, threads: int = 1, cuda: bool = False) -> dict:
    """DNSMOS of every ``*.wav`` in ``folder``.

    Returns ``{"files": {name: {p808, sig, bak, ovrl, seconds}}, "summary": {metric: {mean,
    ci95, n}}, "resampled": [names not at 16 kHz]}``.
    """
    from tqdm.auto import tqdm

    from ..audio.io import read_audio

    files = list_wavs(folder)
    scorer = DnsmosScorer(threads, cuda)  # fails before reading anything if speechmos is missing
    per_file, resampled = {}, []
    for path in tqdm(files, desc="DNSMOS", unit="file", disable=not progress):
        audio, sr = read_audio(path)
        if sr != DNSMOS_RATE:
            resampled.append(path.name)
        scores = dnsmos(audio, sr, scorer)
        scores["seconds"] = audio.size / sr
        per_file[path.name] = scores
    return {"files": per_file, "summary": summarise(per_file, DNSMOS_KEYS), "resampled": resampled}
