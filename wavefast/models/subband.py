"""Orthonormal Haar subband split (a full wavelet-packet tree) for running a network at L / 2^levels.

One level maps pairs of samples to ``((x_{2n} + x_{2n+1}) / sqrt 2, (x_{2n} - x_{2n+1}) / sqrt 2)``
and is applied to every band again for the next level, so ``levels`` levels turn
``(B, C, L)`` into ``(B, C * 2^levels, L / 2^levels)``. The transform is orthonormal
(``synthesis(analysis(x)) = x`` and ``||analysis(x)|| = ||x||``), so white Gaussian noise stays
white Gaussian noise of the same variance: a diffusion over the bands is the same diffusion
(FreGrad, arXiv 2401.10032, uses one level; multi-band MelGAN four PQMF bands).
Built from reshapes, adds and subtracts only, so it exports to ONNX as is.
"""

from __future__ import annotations

import math

import torch

from ..errors import WavefastError

_R = math.sqrt(0.5)


def haar_analysis(x: torch.Tensor, levels: int) -> torch.Tensor:
    """(B, C, L) -> (B, C 2^levels, L / 2^levels); bands of a channel stay adjacent."""
    for _ in range(levels):
        b, c, length = x.shape
        if length % 2:
            raise WavefastError(f"a Haar split needs an even length, got {length}")
        pairs = x.reshape(b, c, length // 2, 2)
        low = (pairs[..., 0] + pairs[..., 1]) * _R
        high = (pairs[..., 0] - pairs[..., 1]) * _R
        x = torch.stack([low, high], 2).reshape(b, 2 * c, length // 2)
    return x


def haar_synthesis(bands: torch.Tensor, levels: int) -> torch.Tensor:
    """Inverse of :func:`haar_analysis`: (B, C 2^levels, L / 2^levels) -> (B, C, L)."""
    for _ in range(levels):
        b, c2, half = bands.shape
        split = bands.reshape(b, c2 // 2, 2, half)
        low, high = split[:, :, 0], split[:, :, 1]
        bands = torch.stack([(low + high) * _R, (low - high) * _R], -1).reshape(b, c2 // 2, 2 * half)
    return bands
