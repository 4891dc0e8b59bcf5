"""Resumable, shardable unconditional generation (one process or many under torchrun).

Sample ``i`` uses seed ``seed + i`` and is written atomically to
``sample_{i:05d}.wav``, so a finished file is never half-written. Indices are
grouped in fixed batches ``[k B, (k+1) B)`` and rank ``r`` of ``W`` runs the
batches ``k`` with ``k % W == r``: every sample is computed in the same batch
whatever the number of ranks, so the files are bit-identical for any W (given
the same thread settings). A batch with missing files is recomputed whole and
only its missing files are written. ``manifest.json``
records the run's settings; re-running the same command in the same folder
resumes, and a different setting is refused instead of mixing two runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import List

from .audio.io import atomic_output
from .errors import WavefastError

MANIFEST = "manifest.json"


def rank_and_world():
    """(rank, world size) from torchrun's environment; (0, 1) when run directly."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


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


def pending_batches(out_dir: Path, n: int, batch_size: int, rank: int, world: int) -> List[List[int]]:
    """This rank's fixed batches that still have a missing file."""
    batches = [list(range(k, min(k + batch_size, n))) for k in range(0, n, batch_size)]
    return [b for k, b in enumerate(batches)
            if k % world == rank and not all(sample_path(out_dir, i).is_file() for i in b)]


def model_fingerprint(model) -> str:
    digest = hashlib.sha256(model.spec.to_json().encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()[:16]


def check_or_write_manifest(out_dir: Path, settings: dict, rank: int, world: int) -> None:
    """Rank 0 writes the manifest (or checks an existing one); other ranks wait, then check."""
    path = out_dir / MANIFEST
    if rank == 0:
        if path.is_file():
            _compare(path, settings)
        else:
            with atomic_output(path, ".json") as tmp:
                Path(tmp).write_text(json.dumps({"settings": settings, "complete": False}, indent=2))
    barrier(world)
    if rank != 0:
        _compare(path, settings)


def _compare(path: Path, settings: dict) -> None:
    try:
        old = json.loads(path.read_text())["settings"]
    except (OSError, ValueError, KeyError) as exc:
        raise WavefastError(f"cannot read {path}: {exc}; use an empty output folder") from None
    diff = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
    if diff:
        shown = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
        raise WavefastError(f"{path.parent} holds a run with other settings ({shown}); "
                            "use another output folder or the same settings to resume")


def finish(out_dir: Path, settings: dict, n: int, rank: int, world: int) -> None:
    barrier(world)
    if rank == 0:
        missing = [i for i in range(n) if not sample_path(out_dir, i).is_file()]
        if missing:
            raise WavefastError(f"{len(missing)} samples are missing after generation (first: {missing[:5]})")
        with atomic_output(out_dir / MANIFEST, ".json") as tmp:
            Path(tmp).write_text(json.dumps({"settings": settings, "complete": True,
                                             "files": [sample_path(out_dir, i).name for i in range(n)]}, indent=2))
        print(f"wavefast: {n} samples complete in {out_dir} ({world} rank{'s' if world > 1 else ''})", file=sys.stderr)
