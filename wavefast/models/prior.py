"""A shaped diffusion prior: Gaussian noise filtered by the spectral envelope of the mel.

SpecGrad (arXiv 2203.16749) draws the diffusion noise as ``eps = L z``, ``z ~ N(0, I)``, with
``L`` a time-varying filter whose response follows the mel's spectral envelope, and trains with
the ``Sigma^-1``-weighted loss (PriorGrad, arXiv 2106.06406). Here::

    L z = OLA_j( w * IDFT( g_j * DFT( w * z_j ) ) )

with ``z_j`` the ``n_fft``-sample frame centred on sample ``j hop`` (zero outside the signal),
``w`` the periodic square-root Hann window (``w^2`` overlap-adds to 1 at hop ``n_fft / 2``, so
``L = I`` when every gain is 1) and ``g_j`` (n_fft/2 + 1,) real, non-negative gains read from mel
frame ``j``: the mel magnitudes spread back over the linear bins they cover (each bin the
weighted mean of its bands, each band its mean magnitude), divided by the mean STFT magnitude
of unit white noise (so white noise's own mel gives gains ~1), bins above the mel's top band
holding its value, floored at ``floor``, times ``scale``.

``L`` is linear and local (one frame either side), the DFTs are matrix products (no FFT op),
so it runs the same in PyTorch and in an exported ONNX graph. The network predicts the white
``z``; ``denoise`` returns ``L z_hat``, which makes ``||z - z_hat||^2`` the PriorGrad loss and lets
every sampler run unchanged with the noise source drawing ``L z``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from ..audio.mel import frontend_filterbank, frontend_spec

FILTER_FFT = 512
WHITE_NOISE_MAGNITUDE = math.sqrt(math.pi * 384.0) / 2.0  # E|STFT| of unit white noise, Hann 1024 (Rayleigh mean)


@functools.lru_cache(maxsize=8)
def _envelope_matrix(sample_rate: int, n_mels: int, frontend: str, n_fft_filter: int) -> torch.Tensor:
    """(n_fft_filter/2 + 1, n_mels): mel magnitudes -> linear-bin envelope (see module docstring)."""
    spec = frontend_spec(frontend, sample_rate)
    fb = frontend_filterbank(frontend, int(sample_rate), n_mels).double().numpy()
    band_mass = fb.sum(1, keepdims=True)  # (n_mels, 1): white noise of mean magnitude c gives mel = c * mass
    cover = fb.sum(0)  # (bins,)
    weights = np.where(cover[None, :] > 0, fb / np.maximum(cover[None, :], 1e-12), 0.0)  # (n_mels, bins)
    matrix = weights.T / np.maximum(band_mass.T, 1e-12)  # (bins, n_mels)
    covered = np.nonzero(cover > 0)[0]
    matrix[covered.max() + 1:] = matrix[covered.max()]
    matrix[:covered.min()] = matrix[covered.min()]
    ratio = spec.n_fft // n_fft_filter
    return torch.from_numpy(matrix[::ratio][: n_fft_filter // 2 + 1] / WHITE_NOISE_MAGNITUDE).float()


def envelope_gains(log_mel: torch.Tensor, sample_rate: int, frontend: str = "tacotron2", floor: float = 1e-3,
                   scale: float = 1.0, n_fft_filter: int = FILTER_FFT) -> torch.Tensor:
    """Filter gains (B, n_fft_filter/2 + 1, F) from a tacotron2 log-mel (B, n_mels, F)."""
    if frontend != "tacotron2":
        raise ValueError("the shaped prior reads tacotron2 (natural-log magnitude) mels")
    log_mel = log_mel.float()
    matrix = _envelope_matrix(int(sample_rate), int(log_mel.shape[1]), frontend, n_fft_filter).to(log_mel)
    gains = torch.einsum("km,bmf->bkf", matrix, torch.exp(log_mel))
    return gains.clamp_min(floor) * scale


@functools.lru_cache(maxsize=4)
def _dft_kernels(n_fft: int):
    """Analysis (2K, 1, N) and synthesis (2K, 1, N) kernels, K = N/2 + 1, the windows folded in.

    Analysis row k is ``w(n) cos(2 pi k n / N)`` (real part) and, in rows K.., ``-w(n) sin(...)``
    (imaginary part); synthesis row k is the inverse real DFT's ``c_k w(n) cos(...) / N`` (``c_k`` = 2,
    1 at DC and Nyquist) and ``-c_k w(n) sin(...) / N``.
    """
    n = torch.arange(n_fft, dtype=torch.float64)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
    angle = 2 * math.pi * k[:, None] * n[None, :] / n_fft
    window = torch.sin(math.pi * n / n_fft)  # sqrt of the periodic Hann window
    weight = torch.full((n_fft // 2 + 1, 1), 2.0, dtype=torch.float64)
    weight[0] = weight[-1] = 1.0
    analysis = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])[:, None, :]
    synthesis = torch.cat([torch.cos(angle) * weight * window / n_fft,
                           -torch.sin(angle) * weight * window / n_fft])[:, None, :]
    return analysis.float(), synthesis.float()


def apply_envelope(z: torch.Tensor, gains: torch.Tensor, hop: int = 256, n_fft: int = FILTER_FFT) -> torch.Tensor:
    """``L z`` for z (B, 1, L) with L a multiple of ``hop`` and gains (B, n_fft/2 + 1, F'), F' >= L / hop
    (frame L / hop is the last one repeated when absent).

    Frames are centred on samples ``j hop`` of ``z`` (one strided convolution does framing, window
    and DFT; one transposed convolution does the inverse DFT, window and overlap-add), so it is two
    convolutions in PyTorch and in an exported ONNX graph. Extra gain frames are ignored.
    """
    if n_fft != 2 * hop:
        raise ValueError("the shaped-prior filter uses 50% overlap (n_fft = 2 hop)")
    dtype = z.dtype
    z, gains = z.float(), gains.float()  # the filter runs in float32: its gains span 60 dB
    length = z.shape[-1]
    frames = length // hop + 1
    analysis, synthesis = (k.to(z) for k in _dft_kernels(n_fft))
    spectrum = F.conv1d(F.pad(z, (n_fft // 2, n_fft // 2)), analysis, stride=hop)  # (B, 2K, frames)
    g = gains[..., :frames]
    if g.shape[-1] < frames:  # an utterance's last frame is held (as the mel conditioning does)
        g = torch.cat([g, g[..., -1:].expand(-1, -1, frames - g.shape[-1])], -1)
    shaped = spectrum * torch.cat([g, g], dim=1)
    out = F.conv_transpose1d(shaped, synthesis, stride=hop)  # (B, 1, (frames - 1) hop + n_fft)
    return out[..., n_fft // 2: n_fft // 2 + length].to(dtype)
