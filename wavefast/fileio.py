"""File output that never loses anything, and the one safetensors reader/writer.

- :func:`atomic_output`: a temporary file next to the target, fsynced and renamed onto it on
  success, removed on *any* failure (including a failed rename); written with the usual
  permissions (``0666 & ~umask``), not mkstemp's 0600.
- :func:`check_output`: checked *before* any work: the target's suffix is an allowed one, it is
  not an existing folder, its folder exists or can be made, and it is not one of the inputs
  (same file, also through links), so no recording or checkpoint is ever overwritten by its
  own output.
- :func:`write_safetensors` / :func:`read_safetensors`: tensors plus string metadata; every
  failure is one :class:`WavefastError` naming the file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Tuple

import torch

from .errors import WavefastError

MAX_METADATA_BYTES = 1 << 20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _AtomicPath:
    def __init__(self, path: Path, suffix: str):
        self.path = path
        self.suffix = suffix or path.suffix

    def __enter__(self) -> Path:
        if self.path.is_dir():
            raise WavefastError(f"cannot write {self.path}: it is a folder")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp" + self.suffix,
                                       dir=self.path.parent)
        except OSError as exc:
            raise WavefastError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            return False
        try:
            if self.tmp.exists():  # writers may recreate the file; give it the usual permissions, flush it
                os.chmod(self.tmp, 0o666 & ~_umask())
                with open(self.tmp, "rb+") as f:
                    os.fsync(f.fileno())
            os.replace(self.tmp, self.path)
        except OSError as err:
            self.tmp.unlink(missing_ok=True)
            raise WavefastError(f"cannot write {self.path}: {err.strerror or err}") from None
        return False


def atomic_output(path, suffix: str = ""):
    """Context manager yielding a temporary path next to ``path``; renamed onto it on success."""
    return _AtomicPath(Path(path), suffix)


def atomic_write_text(path, text: str) -> Path:
    with atomic_output(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_torch_save(obj, path) -> Path:
    """``torch.save`` to a temp file in the same folder, then rename onto ``path``."""
    with atomic_output(path, ".pt") as tmp:
        torch.save(obj, tmp)
    return Path(path)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(path, suffixes: Optional[Sequence[str]] = None, inputs: Iterable = (), what: str = "output") -> Path:
    """Refuse an output path before any work (see the module docstring). Returns it as a Path."""
    path = Path(path)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        allowed = ", ".join(suffixes)
        raise WavefastError(f"{what} {path}: unsupported file type {path.suffix or '(none)'!r}; allowed: {allowed}")
    if path.is_dir():
        raise WavefastError(f"{what} {path} is a folder; give a file name")
    for source in inputs:
        source = Path(source)
        if _same_file(path, source) or (not path.exists() and path.resolve() == source.resolve()):
            raise WavefastError(f"{what} {path} is the input {source}; choose another output so the input is "
                                "not overwritten")
    parent = path.parent
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise WavefastError(f"{what} {path}: {existing} is a file, not a folder")
    if existing.exists() and not os.access(existing, os.W_OK):
        raise WavefastError(f"{what} {path}: folder {existing} is not writable")
    return path


def check_output_folder(folder, inputs: Iterable = (), what: str = "output folder") -> Path:
    """A folder to write into: not an existing file, not an input, writable."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise WavefastError(f"{what} {folder} is a file, not a folder")
    for source in inputs:
        if _same_file(folder, Path(source)):
            raise WavefastError(f"{what} {folder} is the input {source}")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and (not existing.is_dir() or not os.access(existing, os.W_OK)):
        raise WavefastError(f"{what} {folder}: {existing} is not a writable folder")
    return folder


# --- safetensors ---------------------------------------------------------------------------
def write_safetensors(path, tensors: Dict[str, torch.Tensor], metadata: Optional[Dict[str, str]] = None) -> Path:
    """Write tensors (made contiguous, on the CPU) and string metadata atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_output(path, ".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})
    return Path(path)


def is_safetensors(path) -> bool:
    """True when the file starts like a safetensors file (8-byte header length, then '{')."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    if len(head) < 9:
        return False
    header_len = int.from_bytes(head[:8], "little")
    return 0 < header_len < 100_000_000 and head[8:9] == b"{"


def read_safetensors_metadata(path, what: str = "safetensors file") -> Dict[str, str]:
    """The string metadata of a safetensors file (reads only its header)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:
        raise WavefastError(f"cannot read {what} {path}: not a valid safetensors file ({type(exc).__name__})") from None


def read_safetensors(path, what: str = "safetensors file", dtype=torch.float32, float_only: bool = True
                     ) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """(tensors, string metadata); floating tensors converted to ``dtype``; with ``float_only``
    a non-float tensor is refused (model weights are floats; a classifier's batch-norm counters
    are not)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WavefastError(f"{what} not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise WavefastError(f"cannot read {what} {path}: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
                            ) from None
    if sum(len(k) + len(v) for k, v in metadata.items()) > MAX_METADATA_BYTES:
        raise WavefastError(f"{what} {path}: metadata larger than {MAX_METADATA_BYTES} bytes")
    out = {}
    for name, tensor in tensors.items():
        if not tensor.is_floating_point():
            if not float_only:
                out[name] = tensor
                continue
            raise WavefastError(f"{what} {path}: tensor {name!r} is {str(tensor.dtype).replace('torch.', '')}; "
                                "weights must be floating point")
        if not torch.isfinite(tensor).all():
            raise WavefastError(f"{what} {path}: tensor {name!r} contains NaN or Inf")
        out[name] = tensor.to(dtype) if dtype is not None else tensor
    return out, metadata
