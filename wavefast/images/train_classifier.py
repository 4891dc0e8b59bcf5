"""Building the shipped image classifier (``wavefast train-image-classifier``).

:func:`train_classifier` trains :class:`~.classifier.ImageClassifier` on a data set's train split
(Adam, random shifts of up to 2 pixels; along time only for a mel-image pack, where a shift
across mel bins would move formants); ``dataset`` is a named data set or a labelled ``.npz``
image pack (the digit mel pack); :func:`build_classifier_files` also writes the weights
(``DEFAULT_CLASSIFIER``) and the FID reference statistics of the test split (``DEFAULT_STATS``).
"""

from __future__ import annotations

import time
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .classifier import (DEFAULT_CLASSIFIER, DEFAULT_STATS, ClassifierConfig, ImageClassifier,
                         classifier_reference_stats, classify_images, save_classifier)


def train_classifier(dataset: str = "fashion-mnist", epochs: float = 2.0, batch_size: int = 128, lr: float = 1e-3,
                     seed: int = 0, max_minutes: Optional[float] = None, log=print,
                     widths: Tuple[int, int] = (16, 32), feature_dim: int = 64) -> Tuple[ImageClassifier, dict]:
    """Train the classifier on the train split; returns (model, {test_accuracy, steps, ...}).
    ``seed``, ``widths`` and ``feature_dim`` other than the defaults make a second, differently
    initialised and shaped judge (a check on a metric some method was optimised against)."""
    from pathlib import Path

    from .data import labelled_split

    torch.manual_seed(seed)
    images, labels, layout = labelled_split(dataset, "train")
    test_images, test_labels, _ = labelled_split(dataset, "test")
    channels, height, width = images.shape[1:]
    name = Path(dataset).name if str(dataset).endswith(".npz") else dataset
    model = ImageClassifier(ClassifierConfig(in_channels=channels, size=height, width=None if width == height else width,
                                             dataset=name, widths=tuple(widths), feature_dim=int(feature_dim),
                                             classes=max(10, int(labels.max()) + 1)))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    total = int(epochs * len(images) / batch_size)
    start = time.monotonic()
    step = 0
    for step in range(1, total + 1):
        index = torch.randint(0, len(images), (batch_size,), generator=g)
        x = images[index]
        # light augmentation: random shifts of up to 2 pixels (time only for mel images)
        dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=g))
        x = torch.roll(x, shifts=(0 if layout is not None else dy, dx), dims=(2, 3))
        model.train()
        logits, _ = model(x)
        loss = F.cross_entropy(logits, torch.from_numpy(labels[index.numpy()]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            log(f"classifier step {step}/{total} loss {float(loss):.3f}")
        if max_minutes is not None and time.monotonic() - start > 60 * max_minutes:
            break
    model.eval()
    probs, _ = classify_images(model, test_images)
    accuracy = float((probs.argmax(axis=1) == test_labels).mean())
    return model, {"test_accuracy": accuracy, "steps": step, "batch_size": batch_size, "seed": seed,
                   "seconds": round(time.monotonic() - start)}


def build_classifier_files(dataset: str = "fashion-mnist", epochs: float = 2.0, max_minutes: Optional[float] = None,
                           out=DEFAULT_CLASSIFIER, stats=DEFAULT_STATS, log=print, seed: int = 0,
                           widths: Tuple[int, int] = (16, 32), feature_dim: int = 64) -> dict:
    """Train the classifier, save it to ``out`` (fp16 safetensors, the training figures in its
    metadata) and its test-split reference statistics (``mu``, ``sigma``, ``class_probs``,
    ``count``) to ``stats`` (unless None); returns the training figures."""
    from ..eval.metrics import save_stats
    from .data import labelled_split

    model, info = train_classifier(dataset, epochs, max_minutes=max_minutes, log=log, seed=seed, widths=widths,
                                   feature_dim=feature_dim)
    save_classifier(model, out, extra_metadata=info)
    if stats is not None:
        test_images = labelled_split(dataset, "test")[0]
        reference = classifier_reference_stats(model, test_images)
        save_stats(stats, **reference, split=np.array("test"), dataset=np.array(str(dataset)))
    return info
