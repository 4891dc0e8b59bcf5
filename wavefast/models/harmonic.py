"""Harmonic signals from F0: the deterministic excitation and the harmonic mean of the source-filter vocoder.

Given a wrapped phase track ``phi`` (B, L) and F0 per sample ``f`` (B, L) (see
:mod:`wavefast.audio.pitch`), harmonic ``k`` is present where ``k f < 0.47 sr`` (below
Nyquist with a margin).

- Excitation (PeriodGrad / NSF style, unit RMS where voiced)::

      e_cos = v sum_k cos(k phi) / sqrt(K_n / 2),   e_sin = v sum_k sin(k phi) / sqrt(K_n / 2)

  with ``K_n`` the number of harmonics present at sample n and ``v`` the voicing (0..1).
- Harmonic mean: per-frame complex amplitudes ``C_j = (a_{j,k}, b_{j,k})`` predicted from
  the mel, linearly interpolated between frame centres::

      mu(n) = sum_k a_k(n) cos(k phi(n)) + b_k(n) sin(k phi(n))

  computed block-wise: for the samples of frame interval j the harmonic basis (hop, 2K) is
  multiplied by the two frame vectors C_j and C_{j+1} at once.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

NYQUIST_MARGIN = 0.47


def harmonic_basis(phase: torch.Tensor, f0: torch.Tensor, harmonics: int, sample_rate: int) -> torch.Tensor:
    """(B, L, 2K): cos(k phi), sin(k phi) for k = 1..K, zero where k f0 >= 0.47 sr."""
    k = torch.arange(1, harmonics + 1, dtype=phase.dtype, device=phase.device)
    angles = phase[..., None] * k
    present = (f0[..., None] * k < NYQUIST_MARGIN * sample_rate).to(phase.dtype)
    return torch.cat([torch.cos(angles) * present, torch.sin(angles) * present], -1)


def excitation(phase: torch.Tensor, f0: torch.Tensor, voicing: torch.Tensor, harmonics: int,
               sample_rate: int) -> torch.Tensor:
    """(B, 2, L): unit-RMS harmonic cos and sin sums gated by the voicing (B, L).

    Closed forms (Dirichlet kernel) with K = harmonics present at each sample::

        sum_k cos(k phi) = sin((K + 1/2) phi) / (2 sin(phi/2)) - 1/2
        sum_k sin(k phi) = (cos(phi/2) - cos((K + 1/2) phi)) / (2 sin(phi/2))

    (for |phi| < 1e-3, wrapped to (-pi, pi]: their Taylor series to second order).
    """
    count = (torch.ceil(NYQUIST_MARGIN * sample_rate / f0.clamp_min(1.0)) - 1).clamp(1, harmonics)
    phase = torch.remainder(phase + math.pi, 2 * math.pi) - math.pi  # (-pi, pi]: no cancellation near 2 pi
    half = torch.sin(phase / 2)
    small = phase.abs() < 1e-3  # series to second order there: no 0/0
    safe = torch.where(small, torch.ones_like(half), half)
    top = (count + 0.5) * phase
    k1 = count * (count + 1)
    cos_sum = torch.where(small, count - phase ** 2 * k1 * (2 * count + 1) / 12, torch.sin(top) / (2 * safe) - 0.5)
    sin_sum = torch.where(small, phase * k1 / 2, (torch.cos(phase / 2) - torch.cos(top)) / (2 * safe))
    norm = voicing / torch.sqrt(count / 2)
    return torch.stack([cos_sum * norm, sin_sum * norm], 1)


def harmonic_sum(coefficients: torch.Tensor, phase: torch.Tensor, f0: torch.Tensor, hop: int,
                 sample_rate: int) -> torch.Tensor:
    """mu (B, L) from frame coefficients (B, 2K, F') with F' >= L / hop + 1, L a multiple of hop."""
    b, k2, count = coefficients.shape
    length = phase.shape[-1]
    frames = length // hop
    if frames * hop != length:
        raise ValueError(f"harmonic synthesis needs a length that is a multiple of the hop {hop}, got {length}")
    if count < frames + 1:
        coefficients = torch.cat([coefficients, coefficients[..., -1:].expand(b, k2, frames + 1 - count)], -1)
    basis = harmonic_basis(phase, f0, k2 // 2, sample_rate).reshape(b, frames, hop, k2)
    pair = torch.stack([coefficients[..., :frames], coefficients[..., 1:frames + 1]], -1)  # (B, 2K, F, 2)
    pair = pair.permute(0, 2, 1, 3)  # (B, F, 2K, 2)
    both = torch.matmul(basis, pair)  # (B, F, hop, 2)
    frac = torch.arange(hop, dtype=phase.dtype, device=phase.device) / hop
    return (both[..., 0] * (1 - frac) + both[..., 1] * frac).reshape(b, length)


class FrameNet(nn.Module):
    """A frame-rate conv stack: (B, c_in, F) -> (B, c_out, F); kernel 5, residual, leaky ReLU."""

    def __init__(self, c_in: int, channels: int, c_out: int, layers: int):
        super().__init__()
        self.inp = nn.Conv1d(c_in, channels, 5, padding=2)
        self.blocks = nn.ModuleList(nn.Conv1d(channels, channels, 5, padding=2) for _ in range(layers))
        self.out = nn.Conv1d(channels, c_out, 1)

    def receptive_frames(self) -> int:
        """Frames either side that reach one output frame."""
        return 2 * (1 + len(self.blocks))

    def forward(self, x: torch.Tensor, mask: torch.Tensor = None) -> torch.Tensor:
        """``mask`` (B, 1, F): frames past each item's end are zeroed before every convolution."""
        if mask is not None:
            x = x * mask
        h = F.leaky_relu(self.inp(x), 0.2)
        for block in self.blocks:
            h = h + F.leaky_relu(block(h if mask is None else h * mask), 0.2)
        return self.out(h if mask is None else h * mask)


def mel_features(log_mel: torch.Tensor) -> torch.Tensor:
    """Tacotron-2 log-mel (about [-11.5, 2]) scaled to about unit range."""
    return (log_mel + 5.0) / 3.0


def f0_features(f0: torch.Tensor, voicing: torch.Tensor) -> torch.Tensor:
    """(B, 2, F): log F0 centred on 150 Hz, voicing."""
    return torch.stack([torch.log(f0.clamp_min(1.0)) - math.log(150.0), voicing], 1)
