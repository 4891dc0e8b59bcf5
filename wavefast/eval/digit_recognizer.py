"""An independent judge of spoken digits: PocketSphinx restricted to the ten digit words.

The shipped SC09 classifier was trained here, on the same corpora as the digit generator; a
generator can drift towards what that one network likes. This judge shares nothing with
either: CMU PocketSphinx 5's US-English acoustic model and dictionary (in its wheel, no
download), decoding one utterance with a JSGF grammar that allows exactly one of
``zero .. nine``. A clip it cannot match to any digit (noise, silence) yields no word.

Per set of clips (16 kHz, one second, as the SC09 protocol prepares them):

- ``recognised``: fraction decoded as some digit;
- ``agreement``: fraction decoded as the digit the shipped classifier picks (when given);
- ``hard_is``: the Inception Score with hard labels, ``exp(mean_i KL(p_i || p))`` where
  ``p_i`` is one-hot on the decoded digit, or uniform when nothing was decoded, and ``p`` is
  the mean of the ``p_i``. It is 1 for noise, at most 10, and rewards clips that are
  recognisable *and* spread over the ten digits. Compare with the real-clip anchor row:
  this recogniser decodes 75% of the FSDD test takes and 65-86% of Speech Commands clips
  correctly, so real data does not reach 10.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import WavefastError

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
GRAMMAR = "#JSGF V1.0;\ngrammar digits;\npublic <digit> = " + " | ".join(DIGIT_WORDS) + ";\n"


class DigitRecognizer:
    """``recognizer(clip) -> digit index or -1``; :meth:`labels` for many clips. A
    :class:`~wavefast.eval.recognizer.Recognizer` with the digit grammar, fed peak-normalised clips."""

    def __init__(self):
        from .recognizer import Recognizer

        self._recognizer = Recognizer(GRAMMAR)

    def __call__(self, clip, sample_rate: int = 16000) -> int:
        x = np.asarray(clip, dtype=np.float32).reshape(-1)
        peak = float(np.abs(x).max()) if x.size else 0.0
        if peak == 0.0:
            return -1
        word = self._recognizer(x * (0.9 / peak), sample_rate)
        return DIGIT_WORDS.index(word) if word in DIGIT_WORDS else -1

    def labels(self, clips: Sequence, sample_rate: int = 16000) -> np.ndarray:
        return np.array([self(c, sample_rate) for c in clips], dtype=np.int64)


def hard_label_inception_score(labels: np.ndarray, classes: int = 10) -> float:
    """``exp(mean_i KL(p_i || mean p))`` with one-hot ``p_i`` (uniform for label -1); see the module docstring."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if labels.size == 0:
        raise WavefastError("no labels to score")
    if ((labels < -1) | (labels >= classes)).any():
        raise WavefastError(f"labels must lie in [-1, {classes})")
    p = np.full((labels.size, classes), 1.0 / classes)
    hit = labels >= 0
    p[hit] = 0.0
    p[np.flatnonzero(hit), labels[hit]] = 1.0
    marginal = p.mean(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(p > 0, p * (np.log(p) - np.log(marginal)), 0.0).sum(1)
    return float(np.exp(kl.mean()))


def digit_scores(labels: np.ndarray, classifier_labels: Optional[np.ndarray] = None) -> dict:
    """``{recognised, agreement (or None), hard_is, n}`` of recogniser labels (see the module docstring)."""
    labels = np.asarray(labels, dtype=np.int64)
    out = {"n": int(labels.size), "recognised": float((labels >= 0).mean()),
           "hard_is": hard_label_inception_score(labels), "agreement": None}
    if classifier_labels is not None:
        classifier_labels = np.asarray(classifier_labels, dtype=np.int64)
        if classifier_labels.shape != labels.shape:
            raise WavefastError(f"{labels.size} recogniser labels but {classifier_labels.size} classifier labels")
        out["agreement"] = float((labels == classifier_labels).mean())
    return out
