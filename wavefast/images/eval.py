"""Image sample quality: FID and IS from a small classifier trained on the same data set,
and Inception FID when the user supplies Inception weights.

Classifier FID/IS (the SC09 protocol of the DiffWave paper moved to images)::

    image      (N, 1, 28, 28) in [-1, 1]
    network    conv3x3(1->16) ReLU conv3x3(16->16) ReLU maxpool2
               conv3x3(16->32) ReLU conv3x3(32->32) ReLU maxpool2
               flatten (32*7*7) -> linear 64 -> ReLU      = features (N, 64)  (FID)
               dropout -> linear 10 -> softmax            = p(y|x) (N, 10)     (IS)
    FID        Frechet distance between N(mu, Sigma) of the generated features and of the
               Fashion-MNIST *test* split (10,000 images; statistics shipped as .npz)
    IS         exp(E_x KL(p(y|x) || p(y))), mean over 10 splits (1 split below 100 images)

The metric functions are :mod:`wavefast.eval.metrics` (``feature_stats``,
``frechet_distance``, ``inception_score``); this module only makes features.
FID is biased upwards at small N: compare settings at equal N, and read
``real_data_fid`` (real test images at the same N) as the floor.

Inception FID (section at the end): the FID Inception-v3 of pytorch-fid, rebuilt here
with the same parameter names, loading the user's weights file
``pt_inception-2015-12-05-6726825d.pth`` (a plain state dict, read with
``weights_only=True``; wavefast never downloads it). Images are converted to RGB in [0, 1],
resized bilinearly to 299x299 and scaled to [-1, 1], as pytorch-fid does; features are the
2048-d final average pool.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import WavefastError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "models" / "weights"
DEFAULT_CLASSIFIER = WEIGHTS_DIR / "image_fmnist_classifier.safetensors"
DEFAULT_STATS = WEIGHTS_DIR / "image_fmnist_test_stats.npz"
CLASSIFIER_FORMAT = "wavefast-image-classifier/1"
CLASSIFIER_KEY = "wavefast_image_classifier"


@dataclass(frozen=True)
class ClassifierConfig:
    in_channels: int = 1
    size: int = 28
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


class ImageClassifier(nn.Module):
    """Small CNN: images (N, C, size, size) in [-1, 1] -> (logits (N, classes), features (N, feature_dim))."""

    def __init__(self, config: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.config = config
        w1, w2 = config.widths
        if config.size % 4:
            raise WavefastError(f"classifier input size must be divisible by 4, got {config.size}")
        self.convs = nn.Sequential(
            nn.Conv2d(config.in_channels, w1, 3, padding=1), nn.ReLU(), nn.Conv2d(w1, w1, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(w1, w2, 3, padding=1), nn.ReLU(), nn.Conv2d(w2, w2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.embed = nn.Linear(w2 * (config.size // 4) ** 2, config.feature_dim)
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
        hint = " (train one with 'python -m wavefast.images.eval --train')" if path == DEFAULT_CLASSIFIER else ""
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
    if x.dim() != 4 or x.shape[1:] != (config.in_channels, config.size, config.size):
        raise WavefastError(f"the classifier takes images of shape ({config.in_channels}, {config.size}, "
                            f"{config.size}); got {tuple(x.shape)}")
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


# --- folders ---------------------------------------------------------------------------------
def read_image_folder(folder, limit: Optional[int] = None) -> Tuple[list, np.ndarray]:
    """Every .png in ``folder`` (sorted, not recursive, 'grid*.png' skipped) -> (paths, uint8 (N, H, W, C))."""
    from .generate import read_png

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
        result["inception_fid"] = inception_fid(pixels, inception, load_stats(inception_stats))
    return result


# --- Inception FID ----------------------------------------------------------------------------
class _ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm(eps 1e-3) + ReLU: keys ``conv.weight``, ``bn.{weight,bias,running_*}``."""

    def __init__(self, c_in: int, c_out: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x):
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)  # TF's SAME average pool


class _MixedA(nn.Module):
    def __init__(self, c_in: int, pool_features: int):
        super().__init__()
        self.branch1x1 = _ConvBN(c_in, 64, 1)
        self.branch5x5_1, self.branch5x5_2 = _ConvBN(c_in, 48, 1), _ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2, self.branch3x3dbl_3 = _ConvBN(64, 96, 3, padding=1), _ConvBN(96, 96, 3, padding=1)
        self.branch_pool = _ConvBN(c_in, pool_features, 1)

    def forward(self, x):
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_tf_avg_pool(x))], 1)


class _MixedB(nn.Module):
    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3 = _ConvBN(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1, self.branch3x3dbl_2 = _ConvBN(c_in, 64, 1), _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, stride=2)

    def forward(self, x):
        return torch.cat([self.branch3x3(x), self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, 3, stride=2)], 1)


class _MixedC(nn.Module):
    def __init__(self, c_in: int, c7: int):
        super().__init__()
        row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        self.branch1x1 = _ConvBN(c_in, 192, 1)
        self.branch7x7_1, self.branch7x7_2, self.branch7x7_3 = \
            _ConvBN(c_in, c7, 1), _ConvBN(c7, c7, **row), _ConvBN(c7, 192, **col)
        self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3 = \
            _ConvBN(c_in, c7, 1), _ConvBN(c7, c7, **col), _ConvBN(c7, c7, **row)
        self.branch7x7dbl_4, self.branch7x7dbl_5 = _ConvBN(c7, c7, **col), _ConvBN(c7, 192, **row)
        self.branch_pool = _ConvBN(c_in, 192, 1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            d = layer(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_tf_avg_pool(x))], 1)


class _MixedD(nn.Module):
    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3_1, self.branch3x3_2 = _ConvBN(c_in, 192, 1), _ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _ConvBN(c_in, 192, 1)
        self.branch7x7x3_2 = _ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _ConvBN(192, 192, 3, stride=2)

    def forward(self, x):
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, 3, stride=2)], 1)


class _MixedE(nn.Module):
    def __init__(self, c_in: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool  # the FID network's last block max-pools (a quirk of the TF graph)
        self.branch1x1 = _ConvBN(c_in, 320, 1)
        self.branch3x3_1 = _ConvBN(c_in, 384, 1)
        self.branch3x3_2a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1, self.branch3x3dbl_2 = _ConvBN(c_in, 448, 1), _ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _ConvBN(c_in, 192, 1)

    def forward(self, x):
        s = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _tf_avg_pool(x)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(s), self.branch3x3_2b(s),
                          self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d), self.branch_pool(pooled)], 1)


class FIDInception(nn.Module):
    """The FID Inception-v3 (TF 2015-12-05 graph as ported by pytorch-fid), up to the 2048-d pool.

    forward: images (N, 3, H, W) in [0, 1] -> features (N, 2048).
    """

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = _ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = _ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = _ConvBN(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = _MixedA(192, 32), _MixedA(256, 64), _MixedA(288, 64)
        self.Mixed_6a = _MixedB(288)
        self.Mixed_6b, self.Mixed_6c = _MixedC(768, 128), _MixedC(768, 160)
        self.Mixed_6d, self.Mixed_6e = _MixedC(768, 160), _MixedC(768, 192)
        self.Mixed_7a = _MixedD(768)
        self.Mixed_7b, self.Mixed_7c = _MixedE(1280, max_pool=False), _MixedE(2048, max_pool=True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False) * 2.0 - 1.0
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, stride=2)))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                     "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
        return x.mean(dim=(2, 3))


def load_fid_inception(path, device="cpu") -> FIDInception:
    """Load pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (or any state dict with its keys;
    ``fc.*`` and ``num_batches_tracked`` entries are ignored) into :class:`FIDInception`."""
    from ..models.checkpoints import safe_torch_load

    path = Path(path)
    if not path.is_file():
        raise WavefastError(f"Inception weights not found: {path} (expected pytorch-fid's "
                            "pt_inception-2015-12-05-6726825d.pth, a state dict)")
    state = safe_torch_load(path)
    if not isinstance(state, dict) or "Conv2d_1a_3x3.conv.weight" not in state:
        raise WavefastError(f"{path} is not an FID Inception state dict (no 'Conv2d_1a_3x3.conv.weight'); "
                            "expected pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
    model = FIDInception()
    wanted = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    kept = {k: v.float() for k, v in state.items() if k in wanted}
    missing = sorted(wanted - set(kept))
    if missing:
        raise WavefastError(f"{path} lacks Inception weights such as {missing[:3]}")
    model.load_state_dict(kept, strict=False)
    return model.to(device).eval()


@torch.no_grad()
def inception_features(model: FIDInception, pixels: np.ndarray, batch_size: int = 50) -> np.ndarray:
    """uint8 (N, H, W, C) with C in {1, 3} -> (N, 2048) float64 pool features."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 4 or pixels.shape[3] not in (1, 3) or pixels.dtype != np.uint8:
        raise WavefastError(f"Inception features need uint8 (N, H, W, 1 or 3) images, "
                            f"got {pixels.dtype} {pixels.shape}")
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(pixels), batch_size):
        x = torch.from_numpy(np.array(pixels[start:start + batch_size])).permute(0, 3, 1, 2).float() / 255.0
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        out.append(model(x.to(device)).double().cpu().numpy())
    return np.concatenate(out)


def inception_fid(pixels: np.ndarray, weights, reference: Dict[str, np.ndarray]) -> float:
    """Inception FID of uint8 images against reference ``mu``/``sigma`` (2048-d, e.g. from
    :func:`inception_reference_stats` of real images)."""
    from ..eval.metrics import feature_stats, frechet_distance

    model = weights if isinstance(weights, FIDInception) else load_fid_inception(weights)
    mu, sigma = feature_stats(inception_features(model, pixels))
    return frechet_distance(mu, sigma, reference["mu"], reference["sigma"])


def inception_reference_stats(pixels: np.ndarray, weights) -> Dict[str, np.ndarray]:
    from ..eval.metrics import feature_stats

    model = weights if isinstance(weights, FIDInception) else load_fid_inception(weights)
    mu, sigma = feature_stats(inception_features(model, pixels))
    return {"mu": mu, "sigma": sigma, "count": np.array(len(pixels))}


def kernel_distance(features_a, features_b) -> float:
    """KID (Binkowski et al. 2018): the unbiased MMD^2 between two feature sets (N_a, D), (N_b, D)
    with the cubic polynomial kernel ``k(x, y) = (x . y / D + 1)^3``::

        KID = sum_{i != j} k(a_i, a_j) / (N_a (N_a - 1)) + sum_{i != j} k(b_i, b_j) / (N_b (N_b - 1))
              - 2 sum_{i, j} k(a_i, b_j) / (N_a N_b)

    Unlike FID it has no small-N bias (its expectation does not depend on N), so it ranks
    samplers more reliably from a few hundred images; it can be slightly negative."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise WavefastError(f"KID needs two (N >= 2, D) feature sets of equal D, got {a.shape} and {b.shape}")
    d = a.shape[1]
    k_aa, k_bb, k_ab = ((x @ y.T / d + 1.0) ** 3 for x, y in ((a, a), (b, b), (a, b)))
    m, n = len(a), len(b)
    return float((k_aa.sum() - np.trace(k_aa)) / (m * (m - 1)) + (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
                 - 2.0 * k_ab.mean())


# --- few-step sweep ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepSetting:
    schedule: str
    steps: Optional[int]
    kappa: float
    clip_x0: bool = False  # sample with wavefast.images.generate.clip_denoised

    @property
    def label(self) -> str:
        size = "T" if self.steps is None else str(self.steps)
        return f"{self.schedule}_S{size}_kappa{self.kappa:g}" + ("_clipx0" if self.clip_x0 else "")

    @property
    def cost(self) -> int:
        return 1000 if self.steps is None else int(self.steps)


def fastdpm_sweep_settings(step_counts=(10, 20, 50, 100), full_chain: bool = True) -> list:
    """The full chain (DDPM, kappa 1) and FastDPM {STEP, VAR} x {linear, quadratic} x kappa {0, 1}
    at each S."""
    settings = [SweepSetting("ddpm", None, 1.0)] if full_chain else []
    for steps in step_counts:
        for kind in ("step", "var"):
            for spacing in ("linear", "quadratic"):
                for kappa in (0.0, 1.0):
                    settings.append(SweepSetting(f"{kind}-{spacing}", int(steps), kappa))
    return settings


def clip_study_settings(step_counts=(10, 20)) -> list:
    """STEP-linear, STEP-quadratic and VAR-quadratic x kappa {0, 1} at each S, with and without
    clipping the x0 prediction: how much of a weak model's error comes from the largest noise levels."""
    return [SweepSetting(schedule, int(steps), kappa, clip)
            for clip in (False, True) for steps in step_counts
            for schedule in ("step-linear", "step-quadratic", "var-quadratic") for kappa in (0.0, 1.0)]


def valid_settings(model, settings: list) -> Tuple[list, Dict[str, str]]:
    """(settings whose plan can be built for this model, {label: reason} for the others).

    FastDPM/DDIM's STEP-quadratic rule ``int(linspace(0, sqrt(0.8 T), S)^2)`` repeats small steps
    once S > ~35 at T = 1000 (a repeated step is a wasted model call); wavefast's plans refuse it."""
    from .generate import image_plan

    good, skipped = [], {}
    for setting in settings:
        try:
            image_plan(model, setting.schedule, setting.steps)
            good.append(setting)
        except WavefastError as exc:
            skipped[setting.label] = str(exc)
    return good, skipped


def _assign(settings: list, workers: int) -> list:
    """Worker index per setting, greedy by cost (longest first) so that the workers' loads match."""
    load, owner = [0] * workers, [0] * len(settings)
    for i in sorted(range(len(settings)), key=lambda i: -settings[i].cost):
        w = min(range(workers), key=lambda w: load[w])
        owner[i], load[w] = w, load[w] + settings[i].cost
    return owner


def run_sweep(model, out_dir, n: int, chunk: int = 50, settings: Optional[list] = None, worker: int = 0,
              workers: int = 1, classifier: Optional[ImageClassifier] = None, log=print) -> None:
    """Generate ``n`` images per setting (image i: seed i, the same for every setting) in chunks,
    classify them and store ``features/<label>_<start>.npz`` (probs, features); chunk 0's
    images also go to ``grids/<label>.png``. Chunks are done for every setting before the next
    chunk starts, so an interrupted sweep still compares all settings at equal N. Resumable;
    ``worker``/``workers`` split the settings between processes (balanced by cost)."""
    import time

    from .data import to_uint8
    from .generate import generate_images, save_grid

    out_dir = Path(out_dir)
    settings, skipped = valid_settings(model, settings or fastdpm_sweep_settings())
    for label, reason in skipped.items():
        log(f"sweep: skipping {label}: {reason}")
    owner = _assign(settings, workers)
    classifier = classifier or load_classifier()
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        for setting, who in zip(settings, owner):
            path = out_dir / "features" / f"{setting.label}_{start:05d}.npz"
            if who != worker or path.is_file():
                continue
            began = time.monotonic()
            images = generate_images(model, size, steps=setting.steps, schedule=setting.schedule, kappa=setting.kappa,
                                     seed=list(range(start, start + size)), batch_size=size, clip_x0=setting.clip_x0)
            probs, features = classify_images(classifier, to_uint8(images))  # scored as the PNGs would be
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, probs=probs, features=features, seconds=time.monotonic() - began)
            tmp.replace(path)
            if start == 0:
                save_grid(images[:64], out_dir / "grids" / f"{setting.label}.png")
            log(f"sweep worker {worker}: {setting.label} images {start}..{start + size - 1} "
                f"in {time.monotonic() - began:.0f} s")


def summarize_sweep(out_dir, settings: Optional[list] = None, reference: Optional[Dict[str, np.ndarray]] = None,
                    real_images: Optional[np.ndarray] = None, classifier: Optional[ImageClassifier] = None,
                    kid_images: Optional[np.ndarray] = None, model=None) -> dict:
    """FID / IS per setting over the chunks finished for *every* setting (equal N); with
    ``real_images`` the FID/IS/KID of the same number of real images (the small-N floor, 5 draws);
    with ``kid_images`` (real images, e.g. 2,000 of the test split) KID x 1000 per setting."""
    from ..eval.metrics import feature_stats, frechet_distance, inception_score, load_stats

    out_dir = Path(out_dir)
    settings = settings or fastdpm_sweep_settings()
    if model is not None:
        settings, skipped = valid_settings(model, settings)
    else:
        skipped = {}
    reference = reference if reference is not None else load_stats(DEFAULT_STATS)
    starts = sorted({int(p.stem.rsplit("_", 1)[1]) for p in (out_dir / "features").glob("*.npz")})
    complete = [s for s in starts if all((out_dir / "features" / f"{c.label}_{s:05d}.npz").is_file() for c in settings)]
    if not complete:
        raise WavefastError(f"no chunk of {out_dir} is finished for every setting yet")
    classifier = classifier or load_classifier()
    kid_reference = classify_images(classifier, kid_images)[1] if kid_images is not None else None
    # The cubic kernel assumes entries of order 1 (as Inception pool features are); ReLU features of
    # this classifier are larger, so every set is divided by the reference's RMS entry.
    kid_scale = float(np.sqrt(np.mean(kid_reference ** 2))) if kid_reference is not None else 1.0
    rows = []
    for setting in settings:
        parts = [np.load(out_dir / "features" / f"{setting.label}_{s:05d}.npz") for s in complete]
        probs = np.concatenate([p["probs"] for p in parts])
        features = np.concatenate([p["features"] for p in parts])
        mu, sigma = feature_stats(features)
        rows.append({"schedule": setting.schedule, "steps": setting.steps, "kappa": setting.kappa,
                     "clip_x0": setting.clip_x0,
                     "label": setting.label, "n": len(features),
                     "fid": frechet_distance(mu, sigma, reference["mu"], reference["sigma"]),
                     "is": inception_score(probs, splits=10 if len(probs) >= 100 else 1),
                     "kid_x1000": None if kid_reference is None else
                     1000 * kernel_distance(features / kid_scale, kid_reference / kid_scale),
                     "seconds_per_image": float(sum(float(p["seconds"]) for p in parts) / len(features))})
    result = {"n": rows[0]["n"], "rows": rows, "skipped": skipped, "chunks": len(complete)}
    if real_images is not None:
        n = rows[0]["n"]
        rng = np.random.default_rng(0)
        floors = []
        for _ in range(5):
            pick = rng.choice(len(real_images), n, replace=False)
            probs, features = classify_images(classifier, real_images[pick])
            mu, sigma = feature_stats(features)
            floors.append((frechet_distance(mu, sigma, reference["mu"], reference["sigma"]),
                           inception_score(probs, splits=10 if n >= 100 else 1),
                           np.nan if kid_reference is None else
                           1000 * kernel_distance(features / kid_scale, kid_reference / kid_scale)))
        floors = np.array(floors)
        result["real_data"] = {"fid_mean": float(floors[:, 0].mean()), "fid_std": float(floors[:, 0].std()),
                               "is_mean": float(floors[:, 1].mean()), "kid_x1000_mean": float(floors[:, 2].mean()),
                               "kid_x1000_std": float(floors[:, 2].std()), "draws": len(floors)}
    return result


def sweep_table(summary: dict, metric: str = "fid") -> str:
    """Markdown table of one metric (``fid``, ``kid_x1000`` or ``is``): rows = sampler x kappa,
    columns = S; the full chain on its own row."""
    names = {"fid": "FID (lower is better)", "kid_x1000": "KID x 1000 (lower is better)", "is": "IS (higher is better)"}
    rows = summary["rows"]
    steps = sorted({r["steps"] for r in rows if r["steps"] is not None})

    def cell(row):
        value = row.get(metric)
        return "" if value is None else f"{value:.2f}"

    lines = [f"{names[metric]}, classifier features, N = {summary['n']} images per cell", "",
             "| sampler | kappa | " + " | ".join(f"S={s}" for s in steps) + " |", "|---|---|" + "---|" * len(steps)]
    for r in rows:
        if r["steps"] is None:
            lines.append(f"| full chain DDPM-rev (S=1000) | {r['kappa']:g} | {cell(r)} (all S) "
                         + "| " * (len(steps) - 1) + "|")
    for schedule, kappa, clip in sorted({(r["schedule"], r["kappa"], r.get("clip_x0", False))
                                         for r in rows if r["steps"] is not None}):
        cells = [next((cell(r) for r in rows if (r["schedule"], r["kappa"], r["steps"], r.get("clip_x0", False))
                       == (schedule, kappa, s, clip)), "n/a") for s in steps]
        name = schedule.upper().replace("-", " ") + (" + clipped x0" if clip else "")
        lines.append(f"| {name} | {kappa:g} | " + " | ".join(cells) + " |")
    if summary.get("skipped"):
        lines += ["", "n/a: " + "; ".join(sorted(set(summary["skipped"].values())))]
    real = summary.get("real_data")
    if real:
        floor = {"fid": f"{real['fid_mean']:.2f} +- {real['fid_std']:.2f}",
                 "kid_x1000": f"{real['kid_x1000_mean']:.2f} +- {real['kid_x1000_std']:.2f}",
                 "is": f"{real['is_mean']:.2f}"}[metric]
        lines += ["", f"Real Fashion-MNIST train images, same N ({real['draws']} draws): {floor}"]
    return "\n".join(lines)


# --- building the shipped classifier ------------------------------------------------------------
def train_classifier(dataset: str = "fashion-mnist", epochs: float = 2.0, batch_size: int = 128, lr: float = 1e-3,
                     seed: int = 0, max_minutes: Optional[float] = None, log=print) -> Tuple[ImageClassifier, dict]:
    """Train the classifier on the train split; returns (model, {test_accuracy, steps, ...})."""
    import time

    from .data import load_images, to_model_range

    torch.manual_seed(seed)
    images, labels = load_images(dataset, "train")
    test_images, test_labels = load_images(dataset, "test")
    model = ImageClassifier(ClassifierConfig(size=images.shape[1], dataset=dataset))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    total = int(epochs * len(images) / batch_size)
    start = time.monotonic()
    step = 0
    for step in range(1, total + 1):
        index = torch.randint(0, len(images), (batch_size,), generator=g)
        x = to_model_range(images[index.numpy()])
        # light augmentation: random shifts of up to 2 pixels
        dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=g))
        x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
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
    return model, {"test_accuracy": accuracy, "steps": step, "batch_size": batch_size,
                   "seconds": round(time.monotonic() - start)}


def main(argv=None) -> int:
    """``python -m wavefast.images.eval --train``: rebuild the shipped classifier and reference stats."""
    import argparse

    from ..eval.metrics import save_stats
    from .data import load_images

    parser = argparse.ArgumentParser(prog="python -m wavefast.images.eval")
    parser.add_argument("--train", action="store_true", help="train the classifier and write the reference stats")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--out", default=str(DEFAULT_CLASSIFIER))
    parser.add_argument("--stats", default=str(DEFAULT_STATS))
    parser.add_argument("--sweep", metavar="MODEL", help="FastDPM sweep of this image model (FID/IS per setting)")
    parser.add_argument("--sweep-out", default="runs/images/sweep", help="sweep folder (resumable)")
    parser.add_argument("-n", type=int, default=256, help="images per sweep setting")
    parser.add_argument("--chunk", type=int, default=32, help="images per setting per round")
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--summarize", action="store_true", help="print the sweep table from finished chunks")
    parser.add_argument("--clip-study", action="store_true",
                        help="sweep/summarize clip_study_settings() instead of the FastDPM grid")
    args = parser.parse_args(argv)
    if args.sweep and not args.summarize:
        from .checkpoints import load_image_model

        run_sweep(load_image_model(args.sweep), args.sweep_out, args.n, args.chunk,
                  settings=clip_study_settings() if args.clip_study else None, worker=args.worker,
                  workers=args.workers, log=lambda m: print(m, file=sys.stderr, flush=True))
        return 0
    if args.summarize:
        from ..fileio import atomic_write_text

        real, _ = load_images(args.dataset, "train")
        test, _ = load_images(args.dataset, "test")
        kid_pick = np.random.default_rng(1).choice(len(test), 2000, replace=False)
        from .checkpoints import load_image_model

        model = load_image_model(args.sweep) if args.sweep else None
        summary = summarize_sweep(args.sweep_out, settings=clip_study_settings() if args.clip_study else None,
                                  real_images=real, kid_images=test[kid_pick], model=model)
        table = "\n\n".join(sweep_table(summary, m) for m in ("fid", "kid_x1000", "is"))
        atomic_write_text(Path(args.sweep_out) / "summary.json", json.dumps(summary, indent=2))
        atomic_write_text(Path(args.sweep_out) / "table.md", table + "\n")
        print(table)
        return 0
    if not args.train:
        parser.error("nothing to do (pass --train, --sweep MODEL or --summarize)")
    model, info = train_classifier(args.dataset, args.epochs, max_minutes=args.max_minutes,
                                   log=lambda m: print(m, file=sys.stderr))
    save_classifier(model, args.out, extra_metadata=info)
    test_images, _ = load_images(args.dataset, "test")
    stats = classifier_reference_stats(model, test_images)
    save_stats(args.stats, **stats, split=np.array("test"), dataset=np.array(args.dataset))
    print(json.dumps(info), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
