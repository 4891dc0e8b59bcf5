"""Resumable, shardable unconditional generation (one process or many under torchrun).

Sample ``i`` uses seed ``seed + i`` and is written atomically to ``sample_{i:05d}.wav``, so a
finished file is never half-written. Indices are grouped in fixed batches ``[k B, (k+1) B)``
and rank ``r`` of ``W`` runs the batches ``k`` with ``k % W == r``: every sample is computed in
the same batch whatever the number of ranks. ``manifest.json`` records the run's settings,
including what changes the bits of the output (torch version, intra-op threads): re-running
the same command in the same folder resumes, and a run with other settings (also other thread
counts: float sums differ in the last bit) is refused instead of mixing two runs.

Resume trusts nothing by its name: a file counts as finished only if it reads as a WAV at the
model's rate and length; anything else (truncated, another rate, a stray text file) is redone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import List

from .errors import WavefastError
from .fileio import atomic_write_json

MANIFEST = "manifest.json"
log = logging.getLogger("wavefast")


def rank_and_world():
    """(rank, world size) from torchrun's environment; (0, 1) when run directly."""
    try:
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    except ValueError:
        raise WavefastError("RANK / WORLD_SIZE must be whole numbers (torchrun sets them)") from None
    if world < 1 or not 0 <= rank < world:
        raise WavefastError(f"RANK={rank} must lie in [0, WORLD_SIZE={world})")
    return rank, world


def init_process_group(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")


def barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def sample_path(out_dir: Path, index: int) -> Path:
    return out_dir / f"sample_{index:05d}.wav"


def sample_ok(out_dir: Path, index: int, sample_rate: int, length: int) -> bool:
    """True when sample ``index`` exists and reads as a mono WAV of ``length`` samples at ``sample_rate``."""
    path = sample_path(out_dir, index)
    if not path.is_file():
        return False
    try:
        import soundfile as sf

        info = sf.info(str(path))
    except Exception:  # unreadable: not a finished sample
        return False
    return info.samplerate == sample_rate and info.frames == length and info.channels == 1


def pending_batches(out_dir: Path, n: int, batch_size: int, rank: int, world: int, sample_rate: int,
                    length: int) -> List[List[int]]:
    """This rank's fixed batches that still have a missing or bad file."""
    batches = [list(range(k, min(k + batch_size, n))) for k in range(0, n, batch_size)]
    return [b for k, b in enumerate(batches)
            if k % world == rank and not all(sample_ok(out_dir, i, sample_rate, length) for i in b)]


def model_fingerprint(model) -> str:
    digest = hashlib.sha256(model.spec.to_json().encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()[:16]


def run_settings(model, plan, kappa: float, seed: int, n: int, batch_size: int) -> dict:
    """What defines a run's output bits: model, plan, kappa, seeds, batching, torch version and threads."""
    import torch

    return {"model": model_fingerprint(model), "plan": plan.name, "steps": list(plan.steps), "kappa": kappa,
            "seed": seed, "n": n, "batch_size": batch_size, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "dtype": str(next(model.parameters()).dtype)}


def check_or_write_manifest(out_dir: Path, settings: dict, rank: int, world: int) -> None:
    """Rank 0 writes the manifest (or checks an existing one); other ranks wait, then check."""
    path = out_dir / MANIFEST
    if rank == 0:
        if path.exists():
            _compare(path, settings)
        else:
            atomic_write_json(path, {"settings": settings, "complete": False})
    barrier(world)
    if rank != 0:
        _compare(path, settings)


def _compare(path: Path, settings: dict) -> None:
    try:
        data = json.loads(path.read_text())
        old = data["settings"]
        if not isinstance(old, dict):
            raise TypeError("'settings' is not an object")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise WavefastError(f"cannot read {path} ({type(exc).__name__}: {exc}); it is not a wavefast generation "
                            "manifest: use an empty output folder") from None
    diff = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
    if diff:
        shown = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
        raise WavefastError(f"{path.parent} holds a run with other settings ({shown}); "
                            "use another output folder or the same settings (threads included) to resume")


def finish(out_dir: Path, settings: dict, n: int, rank: int, world: int, sample_rate: int, length: int) -> None:
    barrier(world)
    if rank == 0:
        missing = [i for i in range(n) if not sample_ok(out_dir, i, sample_rate, length)]
        if missing:
            raise WavefastError(f"{len(missing)} samples are missing or bad after generation (first: {missing[:5]})")
        atomic_write_json(out_dir / MANIFEST, {"settings": settings, "complete": True,
                                               "files": [sample_path(out_dir, i).name for i in range(n)]})
        log.info(f"{n} samples complete in {out_dir} ({world} rank{'s' if world > 1 else ''})")
