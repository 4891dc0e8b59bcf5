"""The packed training cache: one ``.npz`` of int16 audio that travels without its corpus.

Reading a pack needs only numpy (no soundfile, no librosa), so the trainer runs
on a machine that has neither. Writing one is :mod:`wavefast.data.packing`.

Arrays in the file (n items, N stored samples)::

    audio      int16 (N,)     every item's stored samples, concatenated; x = audio / 32768
    offsets    int64 (n+1,)   item i is audio[offsets[i]:offsets[i+1]]
    lead       int64 (n,)     zeros to put before item i's samples
    length     int64 (n,)     full length of item i (lead + stored + trailing zeros)
    ids, splits, speakers, labels, sources, texts   unicode (n,) ("" = unknown)
    sample_rate int64 ()      the rate every item was resampled to
    meta       unicode ()     JSON: format, preprocessing, sources and split rules

Fixed-length clips (SC09) are stored without their zero padding (``lead`` and
``length`` restore it), which halves the size of short-word corpora.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np

from ..errors import WavefastError

PACK_FORMAT = "wavefast-pack/1"
INT16_SCALE = 32768.0
_ARRAYS = ("audio", "offsets", "lead", "length", "ids", "splits", "speakers", "labels", "sources", "texts",
           "sample_rate", "meta")


@dataclass
class Pack:
    """An opened pack; item ``i`` is ``pack.clip(i)`` (float32, ``(length[i],)``)."""

    audio: np.ndarray
    offsets: np.ndarray
    lead: np.ndarray
    length: np.ndarray
    ids: np.ndarray
    splits: np.ndarray
    speakers: np.ndarray
    labels: np.ndarray
    sources: np.ndarray
    texts: np.ndarray
    sample_rate: int
    meta: dict = field(default_factory=dict)
    path: Optional[Path] = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def clip_samples(self) -> int:
        """Fixed clip length (e.g. 16000) or 0 for whole utterances."""
        return int(self.meta.get("clip_samples") or 0)

    def stored(self, i: int) -> np.ndarray:
        """Item i's stored int16 samples (no padding)."""
        return self.audio[self.offsets[i]: self.offsets[i + 1]]

    def clip(self, i: int) -> np.ndarray:
        """Item i as float32 in [-1, 1), padded back to ``length[i]`` samples."""
        out = np.zeros(int(self.length[i]), dtype=np.float32)
        data = self.stored(i)
        start = int(self.lead[i])
        out[start: start + data.size] = data.astype(np.float32) / INT16_SCALE
        return out

    def indices(self, split: str = "train") -> List[int]:
        """Item indices of one split; ``"heldout"`` means every split except train."""
        if split == "heldout":
            return [i for i in range(len(self)) if self.splits[i] != "train"]
        return [i for i in range(len(self)) if self.splits[i] == split]

    def index_of(self, utt_id: str) -> int:
        hits = np.nonzero(self.ids == utt_id)[0]
        if hits.size == 0:
            raise WavefastError(f"item {utt_id!r} is not in the pack {self.path}")
        return int(hits[0])

    def total_seconds(self, split: Optional[str] = None) -> float:
        idx = range(len(self)) if split is None else self.indices(split)
        return float(sum(int(self.length[i]) for i in idx)) / self.sample_rate


def load_pack(path) -> Pack:
    """Open a pack written by :func:`wavefast.data.packing.pack_items` (numpy only)."""
    path = Path(path)
    if not path.is_file():
        raise WavefastError(f"pack file not found: {path} (make one with 'wavefast pack')")
    try:
        with np.load(str(path), allow_pickle=False) as npz:
            missing = [k for k in _ARRAYS if k not in npz.files]
            if missing:
                raise WavefastError(f"{path} is not a wavefast pack: missing arrays {', '.join(missing)}")
            arrays = {k: npz[k] for k in _ARRAYS}
    except WavefastError:
        raise
    except Exception as exc:
        raise WavefastError(f"cannot read pack {path}: {exc}") from None
    meta = json.loads(str(arrays.pop("meta")))
    if meta.get("format") != PACK_FORMAT:
        raise WavefastError(f"{path} has pack format {meta.get('format')!r}; this version reads {PACK_FORMAT!r}")
    n = arrays["ids"].shape[0]
    if arrays["offsets"].shape != (n + 1,) or int(arrays["offsets"][-1]) != arrays["audio"].shape[0]:
        raise WavefastError(f"pack {path} is corrupt: offsets do not match the audio")
    return Pack(sample_rate=int(arrays.pop("sample_rate")), meta=meta, path=path, **arrays)


def save_pack_arrays(path, arrays: dict, meta: dict, compress: bool = False) -> Path:
    """Write the arrays of a pack atomically (temp file + rename)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise WavefastError(f"pack file name must end in .npz, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(arrays)
    payload["meta"] = np.array(json.dumps(dict(meta, format=PACK_FORMAT), sort_keys=True))
    tmp = path.with_name(f".{path.name}.tmp.npz")
    try:
        (np.savez_compressed if compress else np.savez)(str(tmp), **payload)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
