"""The one resumable sample writer: numbered WAVs or PNGs, sharded over ranks, with a manifest.

Used by unconditional audio generation (one process or many under torchrun) and by image
generation. Sample ``i`` uses seed ``seed + i`` and is written atomically to
``sample_{i:05d}.wav`` (or ``image_{i:05d}.png``), so a finished file is never half-written. Indices are grouped in fixed batches ``[k B, (k+1) B)``
and rank ``r`` of ``W`` runs the batches ``k`` with ``k % W == r``: every sample is computed in
the same batch whatever the number of ranks. ``manifest.json`` records the run's settings,
including what changes the bits of the output (torch version, intra-op threads): re-running
the same command in the same folder resumes, and a run with other settings (also other thread
counts: float sums differ in the last bit) is refused instead of mixing two runs.

Resume trusts nothing by its name: a file counts as finished only if it reads back as what the
run makes (a WAV at the model's rate and length, a PNG of the model's image shape); anything else
(truncated, another rate or size, a stray text file) is redone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

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


@dataclass(frozen=True)
class SampleFormat:
    """How the samples of a run are named and checked: ``{prefix}{i:05d}{suffix}``, ``ok(path)``."""

    prefix: str
    suffix: str
    ok: Callable[[Path], bool]

    def path(self, out_dir: Path, index: int) -> Path:
        return Path(out_dir) / f"{self.prefix}{index:05d}{self.suffix}"


def wav_format(sample_rate: int, length: int) -> SampleFormat:
    """Mono WAVs of ``length`` samples at ``sample_rate``."""

    def ok(path: Path) -> bool:
        if not path.is_file():
            return False
        try:
            import soundfile as sf

            info = sf.info(str(path))
        except Exception:  # unreadable: not a finished sample
            return False
        return info.samplerate == sample_rate and info.frames == length and info.channels == 1

    return SampleFormat("sample_", ".wav", ok)


def png_format(height: int, width: int, channels: int) -> SampleFormat:
    """PNGs of one image shape."""

    def ok(path: Path) -> bool:
        if not path.is_file():
            return False
        try:
            from .images.png import read_png

            pixels = read_png(path)
        except Exception:  # unreadable: not a finished image
            return False
        return tuple(pixels.shape) in ((height, width, channels), (height, width)) and (
            pixels.ndim == 3 or channels == 1)

    return SampleFormat("image_", ".png", ok)


def sample_path(out_dir: Path, index: int) -> Path:
    return Path(out_dir) / f"sample_{index:05d}.wav"


def sample_ok(out_dir: Path, index: int, sample_rate: int, length: int) -> bool:
    """True when sample ``index`` exists and reads as a mono WAV of ``length`` samples at ``sample_rate``."""
    return wav_format(sample_rate, length).ok(sample_path(out_dir, index))


def batches_to_do(out_dir: Path, n: int, batch_size: int, rank: int, world: int, fmt: SampleFormat
                  ) -> List[List[int]]:
    """This rank's fixed batches ``[k B, (k+1) B)`` (k % world == rank) that still have a missing or bad file."""
    batches = [list(range(k, min(k + batch_size, n))) for k in range(0, n, batch_size)]
    return [b for k, b in enumerate(batches) if k % world == rank and not all(fmt.ok(fmt.path(out_dir, i)) for i in b)]


def pending_batches(out_dir: Path, n: int, batch_size: int, rank: int, world: int, sample_rate: int,
                    length: int) -> List[List[int]]:
    """This rank's fixed batches of WAV samples that still have a missing or bad file."""
    return batches_to_do(out_dir, n, batch_size, rank, world, wav_format(sample_rate, length))


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


def finish(out_dir: Path, settings: dict, n: int, rank: int, world: int, sample_rate: int = 0, length: int = 0,
           fmt: Optional[SampleFormat] = None, extra: Optional[dict] = None) -> None:
    """Check every sample (rank 0, after all ranks), then mark the manifest complete."""
    barrier(world)
    if rank == 0:
        fmt = fmt or wav_format(sample_rate, length)
        missing = [i for i in range(n) if not fmt.ok(fmt.path(out_dir, i))]
        if missing:
            raise WavefastError(f"{len(missing)} samples are missing or bad after generation (first: {missing[:5]})")
        atomic_write_json(out_dir / MANIFEST, {"settings": settings, "complete": True,
                                               "files": [fmt.path(out_dir, i).name for i in range(n)],
                                               **(extra or {})})
        log.info(f"{n} samples complete in {out_dir} ({world} rank{'s' if world > 1 else ''})")
