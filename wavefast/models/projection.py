"""Mel-consistent denoising: the clean signal a denoiser implies, projected onto the conditioning mel.

At a step with noise level ``a`` (alpha_bar), a denoiser's eps implies
``x0 = (x - sqrt(1 - a) eps) / sqrt(a)`` (plus the model's mean). A vocoder is told the mel of
the answer, so that x0 can be made consistent with it before the update (like DDPM's
``clip_denoised`` for images, which projects x0 onto the data range)::

    X      = STFT(x0)                       (the mel front end's frames: Hann 1024, hop 256, centred)
    g      = clamp(M / (W |X|), 1/20, 20)   (M the conditioning mel's magnitudes, W its filterbank)
    X'     = (W^T-spread g) X               (each bin scaled by the mean gain of its bands; the phase kept)
    x0'    = ISTFT(X'),   eps' = (x - sqrt(a) x0') / sqrt(1 - a)

The model keeps the phase, so the harmonics it makes; the mel sets each band's energy. Bins
above the filterbank's top hold the top band's gain. The STFT is two convolutions (framing +
window + DFT, and its transpose), so an exported ONNX graph does the same; its support is one
frame (+-1024 samples) either side, which chunked vocoding adds to its context.
"""

from __future__ import annotations

import functools
import math
from typing import Optional

import torch
import torch.nn.functional as F

from ..audio.mel import frontend_filterbank

N_FFT, HOP = 1024, 256
GAIN_RANGE = 20.0
OLA_NORM = 1.5  # sum of the periodic Hann window squared at 75% overlap


@functools.lru_cache(maxsize=4)
def stft_kernels(sample_rate: int, n_mels: int):
    """(analysis (2K, 1, N), synthesis (2K, 1, N), filterbank (n_mels, K), spread (K, n_mels)), K = N/2 + 1, cached."""
    n = torch.arange(N_FFT, dtype=torch.float64)
    k = torch.arange(N_FFT // 2 + 1, dtype=torch.float64)
    angle = 2 * math.pi * k[:, None] * n[None, :] / N_FFT
    window = 0.5 - 0.5 * torch.cos(2 * math.pi * n / N_FFT)  # periodic Hann, the front end's
    weight = torch.full((N_FFT // 2 + 1, 1), 2.0, dtype=torch.float64)
    weight[0] = weight[-1] = 1.0
    analysis = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])[:, None, :]
    synthesis = torch.cat([torch.cos(angle) * weight, -torch.sin(angle) * weight])[:, None, :] * window / (
        N_FFT * OLA_NORM)
    fb = frontend_filterbank("tacotron2", sample_rate, n_mels).double()  # (n_mels, bins)
    cover = fb.sum(0)
    spread = torch.where(cover[None, :] > 0, fb / cover.clamp_min(1e-12)[None, :], torch.zeros_like(fb)).T
    top = int(torch.nonzero(cover > 0).max())
    spread[top + 1:] = spread[top]  # bins above the top band follow it
    return analysis.float(), synthesis.float(), fb.float(), spread.float()


def project_onto_mel(x0: torch.Tensor, log_mel: torch.Tensor, sample_rate: int,
                     frame_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """x0 (B, 1, L), L a multiple of 256, with its band energies set to the tacotron2 mel (B, n_mels, >= L/256 + 1).

    ``frame_mask`` (B, [1,] >= L/256 + 1), for a padded batch of mixed lengths: 1 for the STFT frames an item
    has alone (0 .. n_b), 0 after; the frames past an item's end then add nothing to its samples, so it
    is projected exactly as it would be alone (its samples past the end are zero already).
    """
    dtype = x0.dtype
    x0, log_mel = x0.float(), log_mel.float()  # an STFT and its inverse: float32 whatever the model's dtype
    analysis, synthesis, fb, spread = (k.to(x0) for k in stft_kernels(int(sample_rate), int(log_mel.shape[1])))
    length = x0.shape[-1]
    frames = length // HOP + 1
    spec = F.conv1d(F.pad(x0, (N_FFT // 2, N_FFT // 2)), analysis, stride=HOP)  # (B, 2K, frames)
    half = spec.shape[1] // 2
    real, imag = spec[:, :half], spec[:, half:]
    magnitude = (real.square() + imag.square()).clamp_min(1e-20).sqrt()
    estimate = torch.einsum("mk,bkf->bmf", fb, magnitude)
    target = torch.exp(log_mel[..., :frames])
    gain = (target / estimate.clamp_min(1e-7)).clamp(1.0 / GAIN_RANGE, GAIN_RANGE)
    per_bin = torch.einsum("km,bmf->bkf", spread, gain)
    scaled = spec * torch.cat([per_bin, per_bin], 1)
    if frame_mask is not None:
        scaled = scaled * frame_mask.reshape(frame_mask.shape[0], 1, -1)[..., :frames].to(scaled)
    out = F.conv_transpose1d(scaled, synthesis, stride=HOP)
    return out[..., N_FFT // 2: N_FFT // 2 + length].to(dtype)


def mel_consistent_eps(x: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor, log_mel: torch.Tensor,
                       sample_rate: int, mean=None, frame_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """eps' of the module docstring; ``alpha_bar`` (B,) the step's noise level; ``mean`` the model's mean (or None);
    ``frame_mask`` as in :func:`project_onto_mel`."""
    dtype = x.dtype
    x, eps = x.float(), eps.float()  # 1 - a is ~1e-4 at the last steps: not representable in bf16
    a = alpha_bar.to(torch.float64).view(-1, 1, 1)
    root_a, root_1a = a.sqrt().float(), (1 - a).sqrt().float()
    x0 = (x - root_1a * eps) / root_a
    if mean is not None:
        x0 = x0 + mean.float()
    projected = project_onto_mel(x0, log_mel, sample_rate, frame_mask)
    if mean is not None:
        projected = projected - mean.float()
    return ((x - root_a * projected) / root_1a).to(dtype)
