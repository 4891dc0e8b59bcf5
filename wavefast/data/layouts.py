"""Find the audio of a corpus on disk, by its standard layout.

Every ``discover_*`` function takes the corpus root and returns a list of
:class:`AudioItem` (sorted by id, so the order is the same on every machine).
Layouts:

===========  ===============================================  ===================================
layout       files                                            split
===========  ===============================================  ===================================
ljspeech     ROOT/wavs/*.wav + ROOT/metadata.csv              all train (use a hold-out spec)
             (``id|text|normalized text``; wavs missing
             from the csv are kept with no text)
vcc          ROOT/{train,eval}/{SPEAKER}/wavs/*.wav (VCC2016)  train -> train, eval -> test
sc09         ROOT/{zero..nine}/*.wav (Speech Commands; other  validation_list.txt -> valid,
             word folders are ignored)                        testing_list.txt -> test, else train;
                                                              no lists: hash rule (splits.py)
fsdd         ROOT/recordings/{digit}_{speaker}_{take}.wav     takes 0-4 -> test (official), else
             or the same names directly in ROOT               train
labelled     ROOT/{label}/**/*.wav                            hash rule (splits.py)
folder       ROOT/**/*.wav                                    all train (use a hold-out spec)
===========  ===============================================  ===================================

Ids: ljspeech/fsdd ``stem``; vcc ``SPEAKER/stem``; sc09 ``label/stem`` (the list
files' form without ``.wav``); labelled ``label/relative stem``; folder the
relative path without extension. FSDD labels are the digit words
(``zero`` .. ``nine``) so they line up with SC09's.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

from ..errors import WavefastError, check_choice
from .splits import hash_split

AUDIO_SUFFIXES = (".wav", ".flac")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z0-9-]+)_(\d+)$")


@dataclass(frozen=True)
class AudioItem:
    """One recording: where it is, what it is, which split it belongs to."""

    path: Path
    utt_id: str
    split: str = "train"
    speaker: Optional[str] = None
    label: Optional[str] = None
    text: Optional[str] = None
    source: str = ""  # the layout it was found with

    def with_split(self, split: str) -> "AudioItem":
        return dataclasses.replace(self, split=split)


def _is_audio(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith(".")


def _audio_files(folder: Path, recursive: bool) -> List[Path]:
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(p for p in pattern if _is_audio(p))


def _check_root(root, layout: str) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise WavefastError(f"data folder not found: {root} (layout {layout!r})")
    if not root.is_dir():
        raise WavefastError(f"data path is not a folder: {root} (layout {layout!r} expects a folder)")
    return root


def _mismatch(root: Path, layout: str, expected: str, found: str) -> WavefastError:
    return WavefastError(f"{root} does not look like the {layout!r} layout: expected {expected}; {found}")


def _nonempty(items: List[AudioItem], root: Path, layout: str, expected: str) -> List[AudioItem]:
    if not items:
        raise WavefastError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) found in {root} "
                            f"(layout {layout!r} expects {expected})")
    return sorted(items, key=lambda it: it.utt_id)


# --- layouts ------------------------------------------------------------------------
def discover_ljspeech(root) -> List[AudioItem]:
    """LJSpeech-1.1: ``ROOT/wavs/*.wav`` with transcripts from ``ROOT/metadata.csv``."""
    expected = "ROOT/wavs/*.wav and ROOT/metadata.csv (id|text|normalized text)"
    root = _check_root(root, "ljspeech")
    wav_dir, meta = root / "wavs", root / "metadata.csv"
    missing = [p.name for p in (wav_dir, meta) if not p.exists()]
    if missing:
        raise _mismatch(root, "ljspeech", expected, f"missing {' and '.join(missing)}")
    texts: Dict[str, str] = {}
    for n, line in enumerate(meta.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 2:
            raise _mismatch(root, "ljspeech", expected, f"metadata.csv line {n} has no '|' separator")
        texts[fields[0].strip()] = fields[-1].strip()
    items = [AudioItem(p, p.stem, "train", "LJ", None, texts.get(p.stem), "ljspeech")
             for p in _audio_files(wav_dir, recursive=False)]
    return _nonempty(items, wav_dir, "ljspeech", expected)


def discover_vcc(root) -> List[AudioItem]:
    """VCC2016: ``ROOT/{train,eval}/{SPEAKER}/wavs/*.wav``; eval becomes the test split."""
    expected = "ROOT/{train,eval}/{SPEAKER}/wavs/*.wav"
    root = _check_root(root, "vcc")
    parts = [(d, "train" if d == "train" else "test") for d in ("train", "eval") if (root / d).is_dir()]
    if not parts:
        raise _mismatch(root, "vcc", expected, "neither train/ nor eval/ exists")
    items = []
    for folder, split in parts:
        speakers = sorted(p for p in (root / folder).iterdir() if p.is_dir() and not p.name.startswith("."))
        for spk in speakers:
            wav_dir = spk / "wavs"
            if not wav_dir.is_dir():
                raise _mismatch(root, "vcc", expected, f"{folder}/{spk.name}/ has no wavs/ folder")
            items += [AudioItem(p, f"{spk.name}/{p.stem}", split, spk.name, None, None, "vcc")
                      for p in _audio_files(wav_dir, recursive=False)]
    return _nonempty(items, root, "vcc", expected)


def _read_list(path: Path) -> set:
    if not path.exists():
        return set()
    return {str(Path(line.strip()).with_suffix("")) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()}


def discover_sc09(root, valid_percent: float = 10.0, test_percent: float = 10.0) -> List[AudioItem]:
    """Speech Commands, SC09 subset: ``ROOT/{zero..nine}/*.wav``.

    Splits from ``validation_list.txt`` / ``testing_list.txt`` in ROOT when either
    exists (lines ``zero/abc_nohash_0.wav``; unlisted clips are train), otherwise
    the hash rule of :mod:`wavefast.data.splits`.
    """
    expected = "ROOT/{zero,one,...,nine}/*.wav (Speech Commands)"
    root = _check_root(root, "sc09")
    folders = [root / w for w in DIGIT_WORDS if (root / w).is_dir()]
    if not folders:
        raise _mismatch(root, "sc09", expected, "none of the ten digit folders exists")
    valid, test = _read_list(root / "validation_list.txt"), _read_list(root / "testing_list.txt")
    use_lists = (root / "validation_list.txt").exists() or (root / "testing_list.txt").exists()
    items = []
    for folder in folders:
        for p in _audio_files(folder, recursive=False):
            utt = f"{folder.name}/{p.stem}"
            if use_lists:
                split = "valid" if utt in valid else "test" if utt in test else "train"
            else:
                split = hash_split(p.name, valid_percent, test_percent)
            speaker = p.stem.split("_nohash_")[0] if "_nohash_" in p.stem else None
            items.append(AudioItem(p, utt, split, speaker, folder.name, None, "sc09"))
    return _nonempty(items, root, "sc09", expected)


def discover_fsdd(root) -> List[AudioItem]:
    """Free Spoken Digit Dataset: ``{digit}_{speaker}_{take}.wav`` in ROOT/recordings or ROOT.

    Official split: takes 0-4 are the test set, the rest train.
    """
    expected = "ROOT/recordings/{digit}_{speaker}_{take}.wav (or those files directly in ROOT)"
    root = _check_root(root, "fsdd")
    folder = root / "recordings" if (root / "recordings").is_dir() else root
    files = _audio_files(folder, recursive=False)
    items = []
    for p in files:
        m = _FSDD_NAME.match(p.stem)
        if m is None:
            raise _mismatch(root, "fsdd", expected, f"file {p.name!r} does not follow that naming")
        digit, speaker, take = int(m.group(1)), m.group(2), int(m.group(3))
        split = "test" if take <= 4 else "train"
        items.append(AudioItem(p, p.stem, split, speaker, DIGIT_WORDS[digit], None, "fsdd"))
    return _nonempty(items, folder, "fsdd", expected)


def discover_labelled(root, valid_percent: float = 10.0, test_percent: float = 10.0) -> List[AudioItem]:
    """Generic labelled folders ``ROOT/{label}/**/*.wav``; hash-rule splits."""
    expected = "ROOT/{label}/*.wav (one folder per label)"
    root = _check_root(root, "labelled")
    loose = [p.name for p in root.iterdir() if _is_audio(p)]
    if loose:
        raise _mismatch(root, "labelled", expected, f"audio files directly in ROOT (e.g. {loose[0]!r})")
    items = []
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        for p in _audio_files(label_dir, recursive=True):
            rel = p.relative_to(label_dir).with_suffix("").as_posix()
            items.append(AudioItem(p, f"{label_dir.name}/{rel}", hash_split(p.name, valid_percent, test_percent),
                                   None, label_dir.name, None, "labelled"))
    return _nonempty(items, root, "labelled", expected)


def discover_folder(root) -> List[AudioItem]:
    """Any folder of audio, searched recursively; every file is train."""
    root = _check_root(root, "folder")
    items = [AudioItem(p, p.relative_to(root).with_suffix("").as_posix(), "train", None, None, None, "folder")
             for p in _audio_files(root, recursive=True)]
    return _nonempty(items, root, "folder", "ROOT/**/*.wav")


DISCOVERERS: Dict[str, Callable[..., List[AudioItem]]] = {
    "ljspeech": discover_ljspeech,
    "vcc": discover_vcc,
    "folder": discover_folder,
    "sc09": discover_sc09,
    "fsdd": discover_fsdd,
    "labelled": discover_labelled,
}
LAYOUTS = tuple(DISCOVERERS)

# How each layout splits, in words (copied into the split JSON).
SPLIT_RULES = {
    "ljspeech": "all train unless held out by id",
    "vcc": "train/ -> train, eval/ -> test",
    "folder": "all train unless held out by id",
    "sc09": "validation_list.txt -> valid, testing_list.txt -> test, else train; without the lists: "
            "sha1 hash of the file name up to '_nohash_', 10% valid, 10% test",
    "fsdd": "takes 0-4 -> test (official), takes 5+ -> train",
    "labelled": "sha1 hash of the file name up to '_nohash_', 10% valid, 10% test",
}


def discover(root, layout: str) -> List[AudioItem]:
    """Items of the corpus at ``root`` read with the named ``layout`` (see module docstring)."""
    check_choice("data layout", layout, LAYOUTS)
    return DISCOVERERS[layout](root)
