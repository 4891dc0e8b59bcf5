"""Build a pack (:mod:`wavefast.data.pack`) from corpora on disk.

Per recording, in this order:

1. read as mono float32 and resample to the pack's rate (``wavefast.audio.io``,
   librosa/soxr; imported here lazily so the trainer never needs them);
2. optionally trim leading/trailing silence (``trim_db``, off by default);
3. loudness-normalise (default: peak to 0.95; see :mod:`wavefast.data.preprocess`);
4. for fixed-length clips (SC09: ``clip_samples=16000``) centre on the energy and
   pad or cut to exactly that many samples;
5. quantise to int16 (``round(x * 32768)``, clipped to the int16 range).

Train items are all packed. Held-out items are listed in the split JSON
(``pack.splits.json`` next to the pack) but only ``heldout_in_pack`` of them are
packed (for the trainer's validation pass), picked round-robin across sources and
evenly spaced within each, so the pack stays small enough to carry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import WavefastError, check_choice
from .layouts import LAYOUTS, SPLIT_RULES, AudioItem, discover
from .pack import INT16_SCALE, save_pack_arrays
from .preprocess import LOUDNESS_MODES, normalize_loudness, place_clip, trim_silence
from .splits import apply_holdout, split_json_path, write_split_json

# What a layout is usually packed for: vocoder utterances at 22.05 kHz or SC09 clips.
LAYOUT_DEFAULTS: Dict[str, Dict[str, int]] = {
    "ljspeech": {"sample_rate": 22050, "clip_samples": 0},
    "vcc": {"sample_rate": 22050, "clip_samples": 0},
    "folder": {"sample_rate": 22050, "clip_samples": 0},
    "sc09": {"sample_rate": 16000, "clip_samples": 16000},
    "fsdd": {"sample_rate": 16000, "clip_samples": 16000},
    "labelled": {"sample_rate": 16000, "clip_samples": 16000},
}


def to_int16(audio: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> int16 with ``round(x * 32768)`` clipped to [-32768, 32767]."""
    return np.clip(np.round(np.asarray(audio, dtype=np.float64) * INT16_SCALE), -32768, 32767).astype(np.int16)


def select_heldout(items: Sequence[AudioItem], budget: int) -> List[AudioItem]:
    """Up to ``budget`` held-out items: round-robin over sources, evenly spaced in each."""
    by_source: Dict[str, List[AudioItem]] = {}
    for item in items:
        if item.split != "train":
            by_source.setdefault(item.source, []).append(item)
    counts = {s: 0 for s in by_source}
    left = max(0, int(budget))
    while left > 0 and any(counts[s] < len(v) for s, v in by_source.items()):
        for s, v in by_source.items():
            if left > 0 and counts[s] < len(v):
                counts[s] += 1
                left -= 1
    chosen = []
    for s, v in by_source.items():
        if counts[s]:
            picks = np.unique(np.round(np.linspace(0, len(v) - 1, counts[s])).astype(int))
            chosen += [v[i] for i in picks]
    return chosen


def preprocess_item(item: AudioItem, sample_rate: int, *, clip_samples: int = 0, loudness: str = "peak",
                    peak: float = 0.95, rms_dbfs: float = -20.0,
                    trim_db: Optional[float] = None) -> Tuple[np.ndarray, int, int]:
    """Read and prepare one recording: ``(int16 stored samples, lead, full length)``."""
    from ..audio.io import read_audio  # lazy: soundfile/librosa only when packing

    audio, _ = read_audio(item.path, target_sr=sample_rate)
    if trim_db is not None:
        audio = trim_silence(audio, sample_rate, top_db=trim_db)
    audio = normalize_loudness(audio, loudness, peak=peak, rms_dbfs=rms_dbfs)
    if clip_samples:
        content, lead = place_clip(audio, clip_samples)
        return to_int16(content), lead, clip_samples
    return to_int16(audio), 0, audio.size


def pack_items(items: Sequence[AudioItem], out_path, *, sample_rate: int, clip_samples: int = 0,
               loudness: str = "peak", peak: float = 0.95, rms_dbfs: float = -20.0,
               trim_db: Optional[float] = None, heldout_in_pack: int = 16, compress: bool = True,
               rules: Optional[Dict[str, str]] = None, progress: bool = True) -> dict:
    """Preprocess ``items`` into the pack ``out_path`` (.npz) and write its split JSON beside it.

    Returns a summary dict: path, splits_path, items, seconds per packed split, bytes.
    """
    check_choice("loudness normalisation", loudness, LOUDNESS_MODES)
    if sample_rate <= 0 or clip_samples < 0:
        raise WavefastError(f"need sample_rate > 0 and clip_samples >= 0, got {sample_rate}, {clip_samples}")
    items = list(items)
    if not items:
        raise WavefastError("nothing to pack: no items")
    ids = [it.utt_id for it in items]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise WavefastError(f"item ids must be unique across sources; duplicated: {', '.join(dup)}")
    if not any(it.split == "train" for it in items):
        raise WavefastError("no train items to pack (every item is held out)")
    keep = {id(it) for it in items if it.split == "train"}
    keep |= {id(it) for it in select_heldout(items, heldout_in_pack)}
    packed = [it for it in items if id(it) in keep]

    from tqdm import tqdm

    chunks, leads, lengths = [], [], []
    for item in tqdm(packed, desc="packing", unit="file", disable=not progress, leave=False):
        data, lead, length = preprocess_item(item, sample_rate, clip_samples=clip_samples, loudness=loudness,
                                             peak=peak, rms_dbfs=rms_dbfs, trim_db=trim_db)
        chunks.append(data)
        leads.append(lead)
        lengths.append(length)
    offsets = np.zeros(len(packed) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([c.size for c in chunks])
    text = lambda values: np.array([v or "" for v in values], dtype=str)
    arrays = {
        "audio": np.concatenate(chunks).astype(np.int16),
        "offsets": offsets,
        "lead": np.array(leads, dtype=np.int64),
        "length": np.array(lengths, dtype=np.int64),
        "ids": text(it.utt_id for it in packed),
        "splits": text(it.split for it in packed),
        "speakers": text(it.speaker for it in packed),
        "labels": text(it.label for it in packed),
        "sources": text(it.source for it in packed),
        "texts": text(it.text for it in packed),
        "sample_rate": np.array(sample_rate, dtype=np.int64),
    }
    n_heldout = sum(it.split != "train" for it in items)
    meta = {
        "clip_samples": int(clip_samples),
        "loudness": {"mode": loudness, "peak": peak, "rms_dbfs": rms_dbfs},
        "trim_db": trim_db,
        "quantisation": "int16, x = audio / 32768",
        "rules": dict(rules or {}),
        "heldout_packed": sum(it.split != "train" for it in packed),
        "heldout_total": n_heldout,
    }
    out_path = save_pack_arrays(out_path, arrays, meta, compress=compress)
    splits_path = write_split_json(items, split_json_path(out_path), rules=rules)
    seconds: Dict[str, float] = {}
    for it, length in zip(packed, lengths):
        seconds[it.split] = seconds.get(it.split, 0.0) + length / sample_rate
    return {"path": str(out_path), "splits_path": str(splits_path), "items": len(packed),
            "items_listed": len(items), "seconds": {k: round(v, 2) for k, v in seconds.items()},
            "bytes": Path(out_path).stat().st_size}


def gather_sources(sources: Sequence[Tuple[str, str]], holdout=None) -> List[AudioItem]:
    """Discover every ``(path, layout)`` source, then move ``holdout`` ids to the test split."""
    if not sources:
        raise WavefastError("no data sources given")
    items: List[AudioItem] = []
    for path, layout in sources:
        items += discover(path, layout)
    return apply_holdout(items, holdout)


def layout_defaults(layouts: Sequence[str]) -> Dict[str, int]:
    """Shared sample rate and clip length of the layouts; an error if they disagree."""
    for layout in layouts:
        check_choice("data layout", layout, LAYOUTS)
    found = {tuple(sorted(LAYOUT_DEFAULTS[l].items())) for l in layouts}
    if len(found) != 1:
        raise WavefastError(f"layouts {', '.join(layouts)} have different default rates/clip lengths; "
                            "pass --sample-rate and --clip-samples explicitly")
    return dict(LAYOUT_DEFAULTS[layouts[0]])


def pack_sources(sources: Sequence[Tuple[str, str]], out_path, *, holdout=None,
                 sample_rate: Optional[int] = None, clip_samples: Optional[int] = None, **options) -> dict:
    """Discover, hold out, preprocess and pack several corpora into one ``.npz``.

    ``sources``: ``[(path, layout), ...]``; ``holdout``: ids, ``A..B`` ranges or
    globs moved to the test split (see :func:`wavefast.data.splits.apply_holdout`).
    Rate and clip length default to the layouts' (:data:`LAYOUT_DEFAULTS`).
    Other keyword options go to :func:`pack_items`.
    """
    layouts = [layout for _, layout in sources]
    if sample_rate is None or clip_samples is None:
        defaults = layout_defaults(layouts)
        sample_rate = defaults["sample_rate"] if sample_rate is None else sample_rate
        clip_samples = defaults["clip_samples"] if clip_samples is None else clip_samples
    items = gather_sources(sources, holdout)
    rules = {f"{layout}:{path}": SPLIT_RULES[layout] for path, layout in sources}
    if holdout:
        rules["holdout"] = f"ids matching {holdout!r} -> test"
    return pack_items(items, out_path, sample_rate=int(sample_rate), clip_samples=int(clip_samples),
                      rules=rules, **options)
