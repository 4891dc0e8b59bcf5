"""Scoring spoken-digit clips, and judging a mel stage on its own.

:func:`score_digit_clips`: the SC09 protocol's scores of 1 s, 16 kHz clips under the shipped
classifier (FID against its training statistics, IS, mIS, AM, NDB/K, mean confidence), with
95% half-sampling intervals for FID and IS
(:func:`wavefast.eval.metrics.half_sample_interval`: the spread over random halves of the clips), and, when a
:class:`~wavefast.eval.digit_recognizer.DigitRecognizer` is given, the independent
recogniser's scores (recognised, agreement with the classifier, hard-label IS).

:func:`griffin_lim_clips`: a mel stage's log-mels inverted without any neural vocoder (the
pseudo-inverse of the mel filterbank by non-negative least squares, then Griffin-Lim, 32
iterations: :func:`wavefast.eval.anchors.griffin_lim`), so a weak vocoder cannot hide a good
mel model, nor a strong one a bad mel model.
"""

from __future__ import annotations

from typing import Optional

import numpy as np


def to_sc09_clips(audio, sample_rate: int) -> np.ndarray:
    """Any-length clips at ``sample_rate`` -> (N, 16000) prepared clips (``prepare_clip``: centred, peak 1)."""
    from ..eval.classifier import prepare_clip

    return np.stack([prepare_clip(a, sample_rate) for a in audio])


def griffin_lim_clips(log_mels, layout) -> np.ndarray:
    """(N, n_mels, frames) log-mels of ``layout`` -> (N, 16000) prepared 16 kHz clips via Griffin-Lim."""
    from ..eval.anchors import griffin_lim

    audio = [griffin_lim(m, layout.sample_rate) for m in np.asarray(log_mels, dtype=np.float32)]
    return to_sc09_clips(audio, layout.sample_rate)


def score_digit_clips(clips: np.ndarray, classifier=None, stats: Optional[dict] = None, recognizer=None,
                      resamples: int = 200, seed: int = 0) -> dict:
    """Scores of prepared clips (N, 16000); see the module docstring. Keys: ``fid``, ``fid_lo``, ``fid_hi``,
    ``is``, ``is_lo``, ``is_hi``, ``mis``, ``am``, ``ndb_k``, ``confidence``, ``class_histogram``, ``n`` and,
    with a recogniser, ``recognised``, ``agreement``, ``hard_is``."""
    from ..eval import metrics
    from ..eval.classifier import DEFAULT_STATS, classify, load_sc09_classifier

    classifier = classifier if classifier is not None else load_sc09_classifier()
    stats = stats if stats is not None else metrics.load_stats(DEFAULT_STATS)
    probs, features = classify(classifier, clips)
    out = metrics.sc09_metrics(probs, features, stats)
    for key in ("is_10split_mean", "is_10split_std", "is_sashimi"):
        out.pop(key, None)
    out["confidence"] = float(probs.max(1).mean())
    if resamples and len(clips) >= 4:
        fid = lambda idx: metrics.frechet_distance(*metrics.feature_stats(features[idx]), stats["mu"], stats["sigma"])
        lo, out["fid_hi"] = metrics.half_sample_interval(fid, len(clips), resamples, seed=seed)
        out["fid_lo"] = max(lo, 0.0)  # a distance: the normal interval is cut at 0
        out["is_lo"], out["is_hi"] = metrics.half_sample_interval(lambda idx: metrics.inception_score(probs[idx]),
                                                                len(clips), resamples, seed=seed)
    if recognizer is not None:
        from ..eval.digit_recognizer import digit_scores

        out.update({k: v for k, v in digit_scores(recognizer.labels(clips), probs.argmax(1)).items() if k != "n"})
    return out
