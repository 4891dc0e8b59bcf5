"""The small image classifier behind classifier FID / IS (the SC09 protocol of the DiffWave paper
moved to images)::

    image      (N, C, H, W) in [-1, 1]; the shipped one (N, 1, 28, 28)
    network    conv3x3(C->16) ReLU conv3x3(16->16) ReLU maxpool2
               conv3x3(16->32) ReLU conv3x3(32->32) ReLU maxpool2
               flatten (32*(H//4)*(W//4)) -> linear 64 -> ReLU = features (N, 64)  (FID)
               dropout -> linear 10 -> softmax            = p(y|x) (N, 10)     (IS)
    FID        Frechet distance between N(mu, Sigma) of the generated features and of the
               Fashion-MNIST *test* split (10,000 images; statistics shipped as .npz)
    IS         exp(E_x KL(p(y|x) || p(y))), mean over 10 splits (1 split below 100 images)

The metric functions are :mod:`wavefast.eval.metrics` (``feature_stats``,
``frechet_distance``, ``inception_score``); this module only makes features.
FID is biased upwards at small N: compare settings at equal N, and read
``real_data_fid`` (real test images at the same N) as the floor.

The shipped weights are ``default_path("image-classifier")`` (:mod:`wavefast.models.default_models`);
``wavefast train-image-classifier`` (:mod:`.train_classifier`) rebuilds them and the reference
statistics ``DEFAULT_STATS``. The same network trained on the digit mel pack's labelled
(16, 20, 22) mel images is ``default_path("digit-mel-classifier")``: the feature extractor of
DDSS on the digit generator's mel stage (a training objective, never the judge: the digit
scores come from the SC09 classifier on audio).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import WavefastError
from ..models import default_models

DEFAULT_CLASSIFIER = default_models.default_path("image-classifier")
DEFAULT_STATS = default_models.WEIGHTS_DIR / "image_fmnist_test_stats.npz"
CLASSIFIER_FORMAT = "wavefast-image-classifier/1"
CLASSIFIER_KEY = "wavefast_image_classifier"


@dataclass(frozen=True)
class ClassifierConfig:
    in_channels: int = 1
    size: int = 28  # image height (and width, unless ``width`` is set)
    width: Optional[int] = None
    widths: Tuple[int, int] = (16, 32)
    feature_dim: int = 64
    classes: int = 10
    dataset: str = "fashion-mnist"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ClassifierConfig":
        data = json.loads(text)
        data["widths"] = tuple(data["widths"])
        return cls(**data)

    @property
    def input_shape(self) -> Tuple[int, int, int]:
        """(C, H, W) of the images the classifier takes."""
        return (self.in_channels, self.size, self.width or self.size)


class ImageClassifier(nn.Module):
    """Small CNN: images (N, C, H, W) in [-1, 1] -> (logits (N, classes), features (N, feature_dim))."""

    def __init__(self, config: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.config = config
        w1, w2 = config.widths
        _, height, width = config.input_shape
        if min(height, width) < 4:
            raise WavefastError(f"classifier images must be at least 4 x 4 pixels, got {height} x {width}")
        self.convs = nn.Sequential(
            nn.Conv2d(config.in_channels, w1, 3, padding=1), nn.ReLU(), nn.Conv2d(w1, w1, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(w1, w2, 3, padding=1), nn.ReLU(), nn.Conv2d(w2, w2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.embed = nn.Linear(w2 * (height // 4) * (width // 4), config.feature_dim)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(config.feature_dim, config.classes)

    def forward(self, x: torch.Tensor):
        features = F.relu(self.embed(self.convs(x).flatten(1)))
        return self.head(self.dropout(features)), features


def save_classifier(model: ImageClassifier, path, dtype=torch.float16, extra_metadata: Optional[dict] = None) -> Path:
    from ..fileio import write_safetensors

    metadata = {"format": CLASSIFIER_FORMAT, CLASSIFIER_KEY: model.config.to_json()}
    metadata.update({k: str(v) for k, v in (extra_metadata or {}).items()})
    return write_safetensors(path, {k: v.detach().to("cpu", dtype) for k, v in model.state_dict().items()}, metadata)


def load_classifier(path=None, device="cpu") -> ImageClassifier:
    """The classifier in ``path`` (default: the shipped Fashion-MNIST one), float32, eval mode."""
    from ..fileio import read_safetensors

    path = Path(path) if path is not None else DEFAULT_CLASSIFIER
    if not path.is_file():
        hint = " (train one with 'wavefast train-image-classifier')" if path == DEFAULT_CLASSIFIER else ""
        raise WavefastError(f"image classifier not found: {path}{hint}")
    state, metadata = read_safetensors(path, "image classifier")
    if metadata.get("format") != CLASSIFIER_FORMAT:
        raise WavefastError(f"{path} is not a wavefast image classifier (format {metadata.get('format')!r})")
    model = ImageClassifier(ClassifierConfig.from_json(metadata[CLASSIFIER_KEY]))
    model.load_state_dict(state)
    return model.to(device).eval()


@torch.no_grad()
def classify_images(model: ImageClassifier, images, batch_size: int = 500) -> Tuple[np.ndarray, np.ndarray]:
    """images uint8 (N, H, W[, C]) or float (N, C, H, W) in [-1, 1] -> (probs (N, K), features (N, D)) float64."""
    x = _as_model_input(images, model.config)
    device = next(model.parameters()).device
    probs, feats = [], []
    for start in range(0, len(x), batch_size):
        logits, features = model(x[start:start + batch_size].to(device))
        probs.append(torch.softmax(logits.double(), dim=1).cpu().numpy())
        feats.append(features.double().cpu().numpy())
    return np.concatenate(probs), np.concatenate(feats)


def _as_model_input(images, config: ClassifierConfig) -> torch.Tensor:
    if isinstance(images, np.ndarray) and images.dtype == np.uint8:
        x = torch.from_numpy(np.array(images))
        if x.dim() == 4:  # (N, H, W, C)
            x = x.permute(0, 3, 1, 2)
        elif x.dim() == 3:
            x = x[:, None]
        x = x.float() / 127.5 - 1.0
    else:
        x = torch.as_tensor(images).float()
    if x.dim() != 4 or tuple(x.shape[1:]) != config.input_shape:
        raise WavefastError(f"the classifier takes images of shape {config.input_shape}; got {tuple(x.shape)}")
    return x


def classifier_reference_stats(model: ImageClassifier, images) -> Dict[str, np.ndarray]:
    """FID reference statistics (``mu``, ``sigma``, ``class_probs``, ``count``) of real images."""
    from ..eval.metrics import feature_stats

    probs, features = classify_images(model, images)
    mu, sigma = feature_stats(features)
    return {"mu": mu, "sigma": sigma, "class_probs": probs.mean(axis=0), "count": np.array(len(features))}


def classifier_metrics(images, model: Optional[ImageClassifier] = None,
                       reference: Optional[Dict[str, np.ndarray]] = None) -> Dict[str, float]:
    """``{fid, is, is_splits, accuracy_like, n}`` of a set of images against reference statistics
    (default: the shipped classifier and Fashion-MNIST test statistics)."""
    from ..eval.metrics import feature_stats, frechet_distance, inception_score, load_stats

    model = model or load_classifier()
    if reference is None:
        if not DEFAULT_STATS.is_file():
            raise WavefastError(f"reference statistics not found: {DEFAULT_STATS}")
        reference = load_stats(DEFAULT_STATS)
    probs, features = classify_images(model, images)
    if len(features) < 2:
        raise WavefastError("FID needs at least 2 images")
    splits = 10 if len(probs) >= 100 else 1
    mu, sigma = feature_stats(features)
    return {"fid": frechet_distance(mu, sigma, reference["mu"], reference["sigma"]),
            "is": inception_score(probs, splits=splits), "is_splits": splits,
            "confident": float((probs.max(axis=1) > 0.9).mean()), "n": int(len(probs))}
