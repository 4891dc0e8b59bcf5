"""Inception FID: the FID Inception-v3 of pytorch-fid, rebuilt here with the same parameter names.

It loads the user's weights file ``pt_inception-2015-12-05-6726825d.pth`` (a plain state dict,
read with ``weights_only=True``; wavefast never downloads it)::

    pixels     uint8 (N, H, W, C), C in {1, 3}; grey is repeated to RGB
    input      RGB in [0, 1], resized bilinearly to 299x299, scaled to [-1, 1] (as pytorch-fid)
    features   (N, 2048) float64, the final average pool
    FID        :func:`wavefast.eval.metrics.frechet_distance` of their mean / covariance against
               reference ``mu`` / ``sigma`` of real images (:func:`inception_reference_stats`)
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import WavefastError


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
    """uint8 (N, H, W, C) real images -> ``{mu (2048,), sigma (2048, 2048), count}`` for :func:`inception_fid`."""
    from ..eval.metrics import feature_stats

    model = weights if isinstance(weights, FIDInception) else load_fid_inception(weights)
    mu, sigma = feature_stats(inception_features(model, pixels))
    return {"mu": mu, "sigma": sigma, "count": np.array(len(pixels))}
