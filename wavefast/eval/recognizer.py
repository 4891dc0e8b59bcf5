"""Intelligibility: word error rate of an offline recogniser against transcripts.

The recogniser is CMU PocketSphinx 5 with the US-English acoustic model, language model and
dictionary that ship in its wheel (no download): audio is resampled to 16 kHz mono int16 and
decoded as one utterance. Real LJSpeech recordings score WER ~0.27 with it, so WER is a
*relative* measure: compare against the anchor rows (real audio, Griffin-Lim, HiFi-GAN) in the
same table.

Text normalisation before scoring (both sides): lower case, every character that is not a
letter, digit, apostrophe or space becomes a space, runs of spaces collapse. LJSpeech's
``metadata.csv`` third column (numbers spelled out) is the reference.

WER (corpus level) = (substitutions + deletions + insertions) / reference words, summed over
utterances (``jiwer``).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import WavefastError

RECOGNIZER_RATE = 16000


def normalise_text(text: str) -> str:
    text = re.sub(r"[^a-z0-9' ]+", " ", str(text).lower())
    return re.sub(r"\s+", " ", text).strip()


def read_transcripts(metadata_csv) -> Dict[str, str]:
    """``{id: normalised text}`` from an LJSpeech ``metadata.csv`` (``id|text|normalised text``)."""
    path = Path(metadata_csv)
    if not path.is_file():
        raise WavefastError(f"transcript file not found: {path}")
    out = {}
    with open(path, encoding="utf-8") as f:
        for row in csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE):
            if len(row) >= 2 and row[0].strip():
                out[row[0].strip()] = normalise_text(row[2] if len(row) > 2 and row[2].strip() else row[1])
    if not out:
        raise WavefastError(f"{path} holds no 'id|text' rows")
    return out


class Recognizer:
    """Offline English recogniser (PocketSphinx). ``recognizer(audio, sample_rate) -> text``.

    ``grammar``: a JSGF grammar string restricting what can be decoded (default: the wheel's
    language model, open vocabulary)."""

    def __init__(self, grammar: Optional[str] = None):
        try:
            from pocketsphinx import Decoder
        except ImportError:
            raise WavefastError("the recogniser needs pocketsphinx: pip install 'wavefast[eval]'") from None
        self._decoder = Decoder(loglevel="FATAL")
        if grammar is not None:
            self._decoder.add_jsgf_string("grammar", grammar)
            self._decoder.activate_search("grammar")

    def __call__(self, audio, sample_rate: int) -> str:
        from ..audio.io import resample

        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if audio.size == 0:
            return ""
        pcm = (np.clip(resample(audio, int(sample_rate), RECOGNIZER_RATE), -1, 1) * 32767).astype(np.int16)
        d = self._decoder
        d.start_utt()
        d.process_raw(pcm.tobytes(), full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        return normalise_text(hyp.hypstr) if hyp is not None else ""


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER over paired, normalised texts."""
    try:
        import jiwer
    except ImportError:
        raise WavefastError("word error rate needs jiwer: pip install 'wavefast[eval]'") from None
    if len(references) != len(hypotheses) or not references:
        raise WavefastError("word error rate needs one hypothesis per reference (and at least one)")
    refs = [normalise_text(r) for r in references]
    if not all(refs):
        raise WavefastError("a reference transcript is empty")
    return float(jiwer.wer(refs, [normalise_text(h) for h in hypotheses]))


def utterance_errors(reference: str, hypothesis: str) -> Dict[str, int]:
    """Edit counts of one utterance: ``{words, errors}`` (errors = S + D + I)."""
    import jiwer

    out = jiwer.process_words(normalise_text(reference), normalise_text(hypothesis))
    return {"words": len(normalise_text(reference).split()),
            "errors": int(out.substitutions + out.deletions + out.insertions)}


def transcribe_all(recognizer: Optional[Recognizer], items: List[tuple]) -> List[str]:
    """Texts for ``[(audio, sample_rate), ...]``."""
    recognizer = recognizer or Recognizer()
    return [recognizer(audio, sr) for audio, sr in items]
