"""F0 and voicing labels of a pack's utterances (pYIN), computed once and cached beside the pack.

``pitch_labels(pack)`` returns ``{item index: (f0 (F,) Hz with 0 where unvoiced, voiced
probability (F,))}`` with frames centred on ``j * hop`` (``F = L // hop + 1``, the mel's frames).
The cache ``<pack>.pitch.npz`` is keyed by the pack's content fingerprint and the analysis
settings, written atomically; a stale or foreign cache is recomputed, never trusted.
pYIN (librosa) is a training-time dependency only.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from ..errors import WavefastError
from .pack import Pack

CACHE_FORMAT = "wavefast-pitch/1"


def _fingerprint(pack: Pack, hop: int) -> str:
    digest = hashlib.sha1(f"{CACHE_FORMAT}|{hop}|{pack.sample_rate}|{len(pack)}".encode())
    digest.update("\n".join(f"{i}|{n}" for i, n in zip(pack.ids, pack.length)).encode())
    digest.update(pack.audio[:: max(1, pack.audio.shape[0] // 100000)].tobytes())
    return digest.hexdigest()


def _track(args) -> Tuple[np.ndarray, np.ndarray]:
    from ..audio.pitch import track_pitch

    audio, sample_rate, hop = args
    if audio.shape[0] <= 2 * hop:
        frames = audio.shape[0] // hop + 1
        return np.zeros(frames, np.float32), np.zeros(frames, np.float32)
    return track_pitch(audio, sample_rate, hop)


def cache_path(pack: Pack) -> Path:
    return Path(pack.path).with_suffix(".pitch.npz")


def pitch_labels(pack: Pack, hop: int = 256, items=None, workers: int = 2, progress: bool = True
                 ) -> Dict[int, Tuple[np.ndarray, np.ndarray]]:
    """Labels of ``items`` (default: all) of the pack; see the module docstring."""
    from tqdm.auto import tqdm

    from ..fileio import atomic_output

    if pack.path is None:
        raise WavefastError("pitch labels are cached beside the pack: open it with load_pack(path)")
    items = list(range(len(pack))) if items is None else list(items)
    path = cache_path(pack)
    key = _fingerprint(pack, hop)
    cached: Dict[int, Tuple[np.ndarray, np.ndarray]] = {}
    if path.is_file():
        try:
            with np.load(str(path), allow_pickle=False) as npz:
                meta = json.loads(str(npz["meta"]))
                if meta.get("key") == key:
                    cached = {int(name[3:]): (npz[name], npz["vp_" + name[3:]]) for name in npz.files
                              if name.startswith("f0_")}
        except Exception:  # a damaged cache is recomputed
            cached = {}
    todo = [i for i in items if i not in cached]
    if todo:
        jobs = [(pack.clip(i), pack.sample_rate, hop) for i in todo]
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            results = list(tqdm(pool.map(_track, jobs, chunksize=4), total=len(jobs), desc="pitch labels (pyin)",
                                unit="utt", disable=not progress))
        cached.update(zip(todo, results))
        arrays = {"meta": np.array(json.dumps({"format": CACHE_FORMAT, "key": key, "hop": hop}))}
        for index, (f0, vp) in cached.items():
            arrays[f"f0_{index}"] = f0
            arrays[f"vp_{index}"] = vp
        with atomic_output(path, ".npz") as tmp:
            np.savez(str(tmp), **arrays)
    return {i: cached[i] for i in items}


def labelled(f0: np.ndarray, voicing: np.ndarray, frames: Optional[int] = None):
    """(continuous F0 Hz, voicing) float32, padded/cut to ``frames``: unvoiced gaps filled log-linearly."""
    from ..audio.pitch import fill_unvoiced

    f0c = fill_unvoiced(f0).astype(np.float32)
    vp = np.asarray(voicing, np.float32)
    if frames is not None:
        if f0c.shape[0] < frames:
            f0c = np.pad(f0c, (0, frames - f0c.shape[0]), mode="edge")
            vp = np.pad(vp, (0, frames - vp.shape[0]))
        f0c, vp = f0c[:frames], vp[:frames]
    return f0c, vp
