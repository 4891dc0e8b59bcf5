"""Train / held-out splits: the rules, the hold-out patterns and the JSON record.

Split names are ``"train"``, ``"valid"`` and ``"test"``; everything that is not
``"train"`` is held out (never seen by the trainer's gradient steps).

Hash rule (used for Speech Commands when its list files are absent, and for the
generic ``labelled`` layout) -- the scheme the Speech Commands README describes,
re-implemented here:

    key   = file name without extension, with everything from ``_nohash_`` cut off
            (so all clips of one speaker land in one split)
    h     = int(sha1(key.encode("utf-8")).hexdigest(), 16)
    p     = (h mod 2^27) * 100 / (2^27 - 1)             # a stable percentage
    split = "valid" if p < valid_percent
            "test"  if p < valid_percent + test_percent
            "train" otherwise                             (defaults 10 %, 10 %)

It depends only on the file name, so it is stable across machines and runs.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

from ..errors import WavefastError

SPLITS = ("train", "valid", "test")
_HASH_MAX = 2 ** 27 - 1


def hash_split(file_name: str, valid_percent: float = 10.0, test_percent: float = 10.0) -> str:
    """Stable split of one file by the hash rule in the module docstring."""
    stem = Path(file_name).stem
    key = re.sub(r"_nohash_.*$", "", stem)
    h = int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16)
    percent = (h % (_HASH_MAX + 1)) * (100.0 / _HASH_MAX)
    if percent < valid_percent:
        return "valid"
    if percent < valid_percent + test_percent:
        return "test"
    return "train"


def _term_matches(term: str, utt_id: str) -> bool:
    if ".." in term:
        low, high = term.split("..", 1)
        return low <= utt_id <= high
    if any(ch in term for ch in "*?["):
        return fnmatch.fnmatchcase(utt_id, term)
    return utt_id == term


def parse_holdout(spec) -> List[str]:
    """Split a hold-out spec (``"LJ001-0025..LJ001-0032,SF1/*"`` or a list) into terms."""
    if spec is None:
        return []
    if isinstance(spec, str):
        spec = spec.split(",")
    terms = [str(t).strip() for t in spec if str(t).strip()]
    for term in terms:
        if ".." in term and (not term.split("..", 1)[0] or not term.split("..", 1)[1]):
            raise WavefastError(f"hold-out range {term!r} needs both ends, e.g. 'LJ001-0025..LJ001-0032'")
    return terms


def apply_holdout(items: Sequence, spec, split: str = "test") -> list:
    """Move the items whose id matches ``spec`` into ``split`` (default "test").

    ``spec`` terms (comma separated): an exact id, an inclusive range ``A..B``
    (string comparison, so ``LJ001-0025..LJ001-0032`` is those 8 clips) or a glob
    (``SF1/*``). A term that matches no item is an error (a typo would otherwise
    silently train on the held-out data).
    """
    if split not in SPLITS:
        raise WavefastError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    terms = parse_holdout(spec)
    if not terms:
        return list(items)
    used = {t: False for t in terms}
    out = []
    for item in items:
        hit = [t for t in terms if _term_matches(t, item.utt_id)]
        for t in hit:
            used[t] = True
        out.append(item.with_split(split) if hit else item)
    unused = [t for t, u in used.items() if not u]
    if unused:
        raise WavefastError(f"hold-out term(s) {', '.join(map(repr, unused))} match no item id "
                            f"(ids look like {items[0].utt_id!r})" if items else "no items to hold out from")
    return out


def split_ids(items: Iterable) -> Dict[str, List[str]]:
    """``{split: [ids in discovery order]}`` for the splits that have items."""
    table: Dict[str, List[str]] = {}
    for item in items:
        table.setdefault(item.split, []).append(item.utt_id)
    return {s: table[s] for s in SPLITS if s in table}


def write_split_json(items: Sequence, path, *, rules: Dict[str, str] | None = None) -> Path:
    """Write the split record ``{"splits": {split: [ids]}, "counts": ..., "rules": ...}`` as JSON.

    ``rules`` describes how each source was split (written down so a reader of the
    pack knows what was held out and why).
    """
    path = Path(path)
    splits = split_ids(items)
    record = {
        "format": "wavefast-splits/1",
        "counts": {k: len(v) for k, v in splits.items()},
        "rules": dict(rules or {}),
        "splits": splits,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def split_json_path(pack_path) -> Path:
    """Where the split record of a pack lives: ``pack.npz`` -> ``pack.splits.json``."""
    pack_path = Path(pack_path)
    return pack_path.with_name(pack_path.stem + ".splits.json")
