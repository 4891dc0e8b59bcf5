"""One DiffWave network for the philsyn/FastDPM, lmnt and native checkpoints.

Shapes: audio ``x`` (B, 1, L); continuous diffusion step ``t`` (B,) in the
checkpoint's own units (0 .. T-1, fractional allowed); mel ``cond``
(B, n_mels, frames) with ``frames * hop >= L``. Output: predicted noise
epsilon, (B, 1, L).

Per residual layer k (Kong et al. 2021, eq. in Fig. 2)::

    h     = x + W_t^k e(t)                         (step projection)
    y     = DilatedConv_k(h) + W_c^k U(c)          (U: 2 x ConvTranspose2d, x16 each)
    z     = tanh(y[:C]) * sigmoid(y[C:])
    r, s  = split(W_o^k z, [C, S])
    x'    = (h + r) / sqrt(2)  if residual_includes_step else  (x + r) / sqrt(2)
    skip += s

Output ``W_out relu(W_skip (skip / sqrt(K)))``. Checkpoint adapters
(:mod:`wavefast.models.checkpoints`) map each published key layout onto these
parameters: weight norm folded, lmnt's (sigmoid, tanh) gate order swapped into
(tanh, sigmoid) order, and philsyn's separate residual/skip convolutions fused.

The step-invariant work (mel upsampling and the per-layer conditioner
projections) is split out as :meth:`DiffWave.prepare`, so a sampler computes it
once per call instead of once per step.
"""

from __future__ import annotations

import math
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import WavefastError
from .spec import DiffWaveConfig, ModelSpec

STEP_EMBED_IN = 128
STEP_EMBED_HIDDEN = 512
UPSAMPLE_STRIDE = 16  # two stages: x16 x16 = hop 256


def sinusoidal_step_embedding(t: torch.Tensor, dim: int = STEP_EMBED_IN) -> torch.Tensor:
    """philsyn embedding: ``[sin(t w_i), cos(t w_i)]``, ``w_i = 10^(-4 i / (dim/2 - 1))``.

    t: (B,) float steps -> (B, dim).
    """
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def lmnt_embedding_table(rows: int, dim: int = STEP_EMBED_IN) -> torch.Tensor:
    """lmnt table: row n is ``[sin(n w_i), cos(n w_i)]`` with ``w_i = 10^(+4 i / 63)``. (rows, dim)."""
    steps = torch.arange(rows, dtype=torch.float32)[:, None]
    freqs = 10.0 ** (torch.arange(dim // 2, dtype=torch.float32)[None, :] * 4.0 / 63.0)
    table = steps * freqs
    return torch.cat([torch.sin(table), torch.cos(table)], dim=1)


class CondTerms(list):
    """Per-layer conditioner terms, plus ``mask`` (B, 1, L) for a batch of mixed lengths (None otherwise)."""

    mask: Optional[torch.Tensor] = None


def length_mask(lengths: torch.Tensor, size: int, scale: int = 1) -> torch.Tensor:
    """(B, 1, size) float mask, 1 where position < lengths * scale."""
    positions = torch.arange(size, device=lengths.device)
    return (positions[None, :] < (lengths.long()[:, None] * scale)).float()[:, None, :]


class MelUpsampler(nn.Module):
    """Two ConvTranspose2d (kernel 3x32, stride 1x16, padding 1x8), leaky_relu(0.4) after each.

    (B, n_mels, frames) -> (B, n_mels, 256 * frames). With ``lengths`` (B,) in frames, every stage's
    output is zeroed past each item's end, so a padded item upsamples exactly as it would alone.
    """

    def __init__(self):
        super().__init__()
        s = UPSAMPLE_STRIDE
        self.conv1 = nn.ConvTranspose2d(1, 1, (3, 2 * s), stride=(1, s), padding=(1, s // 2))
        self.conv2 = nn.ConvTranspose2d(1, 1, (3, 2 * s), stride=(1, s), padding=(1, s // 2))

    def forward(self, mel: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = mel.unsqueeze(1)
        if lengths is not None:
            h = h * length_mask(lengths, h.shape[-1])[:, None]
        h = F.leaky_relu(self.conv1(h), 0.4)
        if lengths is not None:
            h = h * length_mask(lengths, h.shape[-1], UPSAMPLE_STRIDE)[:, None]
        h = F.leaky_relu(self.conv2(h), 0.4)
        return h.squeeze(1)


class ResidualLayer(nn.Module):
    def __init__(self, cfg: DiffWaveConfig, dilation: int):
        super().__init__()
        c = cfg.residual_channels
        self.channels = c
        self.residual_includes_step = cfg.residual_includes_step
        self.step_proj = nn.Linear(STEP_EMBED_HIDDEN, c)
        self.dilated_conv = nn.Conv1d(c, 2 * c, 3, padding=dilation, dilation=dilation)
        self.out_proj = nn.Conv1d(c, c + cfg.skip_channels, 1)
        if cfg.conditional:
            self.cond_proj = nn.Conv1d(cfg.n_mels, 2 * c, 1)
            self.upsampler = MelUpsampler() if cfg.per_layer_upsampler else None
        else:
            self.cond_proj = None
            self.upsampler = None

    def conditioner(self, mel: torch.Tensor, shared_upsampled: Optional[torch.Tensor], length: int,
                    lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Step-invariant term ``W_c U(c)``: (B, 2C, length)."""
        up = self.upsampler(mel, lengths) if self.upsampler is not None else shared_upsampled
        return self.cond_proj(up[..., :length])

    def forward(self, x, step_emb, cond_term: Optional[torch.Tensor], mask: Optional[torch.Tensor] = None):
        h = x + self.step_proj(step_emb).unsqueeze(-1)
        if mask is not None:  # zero past each item's end, as the convolution's own padding is
            h = h * mask
        y = self.dilated_conv(h)
        if cond_term is not None:
            y = y + cond_term
        z = torch.tanh(y[:, : self.channels]) * torch.sigmoid(y[:, self.channels:])
        out = self.out_proj(z)
        residual, skip = out[:, : self.channels], out[:, self.channels:]
        base = h if self.residual_includes_step else x
        return (base + residual) * math.sqrt(0.5), skip


class DiffWave(nn.Module):
    """DiffWave epsilon-predictor. ``model(x, t, cond=None) -> eps``; see module docstring."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        cfg = spec.arch
        if cfg.conditional and spec.hop_length != UPSAMPLE_STRIDE ** 2:
            raise WavefastError(f"the spec says hop {spec.hop_length} but DiffWave's mel upsampler makes "
                                f"{UPSAMPLE_STRIDE ** 2} samples per frame; the spec contradicts the network")
        self.spec = spec
        self.config = cfg
        self.input_conv = nn.Conv1d(1, cfg.residual_channels, 1)
        if cfg.step_embedding == "table":
            self.register_buffer("embedding_table", lmnt_embedding_table(cfg.embedding_table_size), persistent=False)
        self.step_fc1 = nn.Linear(STEP_EMBED_IN, STEP_EMBED_HIDDEN)
        self.step_fc2 = nn.Linear(STEP_EMBED_HIDDEN, STEP_EMBED_HIDDEN)
        self.upsampler = MelUpsampler() if cfg.conditional and not cfg.per_layer_upsampler else None
        self.layers = nn.ModuleList(
            ResidualLayer(cfg, 2 ** (i % cfg.dilation_cycle)) for i in range(cfg.residual_layers))
        self.skip_conv = nn.Conv1d(cfg.skip_channels, cfg.skip_channels, 1)
        self.output_conv = nn.Conv1d(cfg.skip_channels, 1, 1)
        nn.init.zeros_(self.output_conv.weight)
        nn.init.zeros_(self.output_conv.bias)

    # --- step embedding -------------------------------------------------------------
    def embed_steps(self, t: torch.Tensor) -> torch.Tensor:
        """t: (B,) float steps -> (B, 512) after the two Linear+swish layers."""
        if self.config.step_embedding == "sinusoidal":
            e = sinusoidal_step_embedding(t)
        else:
            table = self.embedding_table
            t = t.float().clamp(0, table.shape[0] - 1)
            low = torch.floor(t)
            high_idx = torch.ceil(t).long()
            frac = (t - low)[:, None]
            e = table[low.long()] + (table[high_idx] - table[low.long()]) * frac
        e = F.silu(self.step_fc1(e.to(self.step_fc1.weight.dtype)))
        return F.silu(self.step_fc2(e))

    # --- step-invariant conditioning ------------------------------------------------
    def prepare(self, cond: Optional[torch.Tensor], length: int, lengths: Optional[torch.Tensor] = None
                ) -> Optional[List[torch.Tensor]]:
        """Per-layer conditioner terms for audio of ``length`` samples, or None if unconditional.

        cond: (B, n_mels, frames) with ``frames * 256 >= length``. Returns a list of
        (B, 2C, length) tensors, one per residual layer. ``lengths`` (B,) in frames: a padded batch
        of mixed lengths, each item computed exactly as alone (its padding never reaches it).
        """
        if not self.config.conditional:
            if cond is not None:
                raise ValueError("this DiffWave model is unconditional; pass cond=None")
            return None
        if cond is None:
            raise ValueError("this DiffWave model is mel-conditioned; pass cond of shape (B, n_mels, frames)")
        if cond.dim() != 3 or cond.shape[1] != self.config.n_mels:
            raise ValueError(f"cond must be (B, {self.config.n_mels}, frames), got {tuple(cond.shape)}")
        if cond.shape[-1] * UPSAMPLE_STRIDE ** 2 < length:
            raise ValueError(f"{cond.shape[-1]} mel frames cover {cond.shape[-1] * 256} samples < length {length}")
        shared = self.upsampler(cond, lengths) if self.upsampler is not None else None
        terms = CondTerms(layer.conditioner(cond, shared, length, lengths) for layer in self.layers)
        if lengths is not None:
            terms.mask = length_mask(lengths.to(cond.device), length, self.spec.hop_length).to(cond.dtype)
        return terms

    def denoise(self, x: torch.Tensor, t: torch.Tensor, cond_terms: Optional[List[torch.Tensor]]) -> torch.Tensor:
        """eps(x, t) given the precomputed conditioner terms from :meth:`prepare`."""
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        return self.denoise_embedded(x, self.embed_steps(t), cond_terms)

    def denoise_embedded(self, x: torch.Tensor, step_emb: torch.Tensor,
                         cond_terms: Optional[List[torch.Tensor]]) -> torch.Tensor:
        """eps given the step embedding (B, 512) from :meth:`embed_steps` (constant per step in a plan)."""
        h = F.relu(self.input_conv(x))
        skip = None
        mask = getattr(cond_terms, "mask", None)
        for k, layer in enumerate(self.layers):
            h, s = layer(h, step_emb, None if cond_terms is None else cond_terms[k], mask)
            skip = s if skip is None else skip + s
        out = skip * math.sqrt(1.0 / len(self.layers))
        out = F.relu(self.skip_conv(out))
        return self.output_conv(out)

    def shape_noise(self, z: torch.Tensor, prepared=None) -> torch.Tensor:
        """The prior's noise from white noise: N(0, I), so z itself."""
        return z

    def finish(self, x0: torch.Tensor, prepared=None) -> torch.Tensor:
        """Audio from the diffused variable (x0 itself for DiffWave)."""
        return x0

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.denoise(x, t, self.prepare(cond, x.shape[-1]))
