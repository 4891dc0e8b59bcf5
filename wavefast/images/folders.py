"""Scoring a folder of generated PNGs (``wavefast eval-images DIR``): classifier FID / IS with
:mod:`.classifier` and, given pytorch-fid weights and reference statistics, Inception FID with
:mod:`.inception`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ..errors import WavefastError
from .classifier import classifier_metrics, load_classifier
from .png import read_png


def read_image_folder(folder, limit: Optional[int] = None) -> Tuple[list, np.ndarray]:
    """Every .png in ``folder`` (sorted, not recursive, 'grid*.png' skipped) -> (paths, uint8 (N, H, W, C))."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WavefastError(f"not a folder: {folder}")
    paths = sorted(p for p in folder.glob("*.png") if not p.name.startswith("grid"))
    if limit:
        paths = paths[:limit]
    if not paths:
        raise WavefastError(f"no .png images in {folder}")
    arrays = [read_png(p) for p in paths]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise WavefastError(f"images in {folder} differ in size: {sorted(shapes)[:3]}")
    return paths, np.stack(arrays)


def evaluate_image_folder(folder, classifier=None, reference_stats=None, inception=None,
                          inception_stats=None, limit: Optional[int] = None) -> dict:
    """Classifier FID/IS of the PNGs in ``folder`` and, with ``inception`` (a pytorch-fid weights
    file) and ``inception_stats`` (an .npz with mu/sigma of 2048-d pool features of real
    images), Inception FID."""
    from ..eval.metrics import load_stats

    paths, pixels = read_image_folder(folder, limit)
    result = {"folder": str(folder), "n": len(paths)}
    model = load_classifier(classifier)
    reference = load_stats(reference_stats) if reference_stats else None
    if pixels.shape[1:3] == (model.config.size, model.config.size) and pixels.shape[3] == model.config.in_channels:
        result["classifier"] = classifier_metrics(pixels, model, reference)
    else:
        result["classifier"] = None
        result["note"] = (f"images are {pixels.shape[1]}x{pixels.shape[2]}x{pixels.shape[3]}; the classifier takes "
                          f"{model.config.size}x{model.config.size}x{model.config.in_channels}: classifier metrics "
                          "skipped")
    if inception is not None:
        if inception_stats is None:
            raise WavefastError("Inception FID needs --inception-stats (an .npz with mu and sigma of real images)")
        from .inception import inception_fid

        result["inception_fid"] = inception_fid(pixels, inception, load_stats(inception_stats))
    return result
