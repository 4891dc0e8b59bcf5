"""DiffWave rewritten for fast inference graphs: constants folded, layers as 2-D convolutions.

:class:`FoldedDenoiser` computes the same eps as :class:`wavefast.models.DiffWave` for a
fixed list of diffusion steps (the steps of a sampling plan), in a form that ONNX Runtime's
CPU optimiser runs entirely in its blocked (NCHWc) convolution kernels:

* audio ``(B, C, L)`` is held as ``(B, C, L / P, P)``: time runs along rows of ``P = 2``
  samples (:data:`ROW_WIDTH`), and every ``Conv1d`` becomes a ``Conv2d`` (ORT only blocks 2-D
  convolutions). A dilated convolution with an even dilation ``d`` is then exactly a ``(3, 1)``
  convolution with dilation ``d / 2`` down the rows (sample ``t = P r + w`` sits at row ``r``,
  column ``w``, so ``t +- d`` is ``r +- d / P`` in the same column); one with an odd ``d`` (the
  ``d = 1`` layer of each dilation cycle) runs on the same memory viewed as ``(B, C, L, 1)``.
  Why rows: ORT's blocked CPU convolution divides its work between threads by batch item and
  output row, so with time along the width (``(B, C, 1, L)``, ``(1, k)`` kernels,
  ``row_width=0``, the earlier layout) one item's convolution ran on one thread however many
  there were (profiled on a 1 s BASE item: 0.99 s of convolution on 2 threads vs 0.93 s on 1).
  Rows of one sample (``row_width=1``) split across threads but ran each thread's share ~25%
  slower than the width layout (its kernels vectorise along the row); rows of 2 keep both;
* each gate half is its own convolution, so there is no ``Split`` (a copy, and a forced
  return to the plain layout);
* the step embedding, the residual scaling and the skip scaling are folded into weights
  and biases, so what is left between convolutions is one add per operand, the gate
  nonlinearities and their product.

Folding. With ``s = sqrt(1/2)``, layer input ``x_k``, ``h_k = x_k + e_k`` (``e_k`` the
layer's step projection, constant for a given step), residual ``r_k = W_r z_k + b_r`` and
``q = 1`` when the residual includes the step (philsyn/FastDPM) else ``0``::

    x_{k+1} = s (x_k + r_k + q e_k)
    h_{k+1} = s h_k + s W_r z_k + c_k,          c_k = s b_r + (q - 1) s e_k + e_{k+1}

Carrying ``g_k = h_k / s^k`` instead of ``h_k`` turns this into a plain accumulation::

    DilatedConv(h_k; W)  = DilatedConv(g_k; s^k W)
    g_{k+1}              = g_k + (W_r / s^k) z_k + c_k / s^{k+1}

and the skip sum ``sqrt(1/K) sum_k (W_s z_k + b_s)`` accumulates with the scale in the
weights and all biases on the first term. The first layer's ``+ e_0`` is a 1x1 convolution
with identity weights and bias ``e_0``: a broadcast add would send the residual chain back
to the plain layout, the identity costs ~0.4% of a step. The last layer's residual half is
never used and is not computed.

Measured on 2 CPU cores (DiffWave BASE, S = 6, see export/README.md): ORT runs every
convolution of this graph in its blocked kernels; the adds, gates and products are separate
memory-bound passes. Letting ORT fuse the adds into the convolutions
(by giving it symbolic shapes) measured no faster: its fused form copies an accumulator that
has other readers.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.diffwave import DiffWave

SQRT_HALF = math.sqrt(0.5)
ROW_WIDTH = 2  # samples per row of the folded layout (0: time along the width); see the module docstring


def _as_2d(weight: torch.Tensor, rows: bool = True) -> torch.Tensor:
    """Conv1d weight (out, in, k) -> Conv2d weight (out, in, k, 1) (time on rows) or (out, in, 1, k)."""
    return weight.detach().unsqueeze(3 if rows else 2).clone()


class FoldedDenoiser(nn.Module):
    """eps for step ``i`` of a fixed step list; x is ``to_layout((B, in, L))`` (see module docstring).

    ``prepare(mel, length)`` -> per-layer ``(filter, gate)`` conditioner terms, each
    ``to_layout((B, C, length))`` with the dilated convolution's bias included (None if the model is
    unconditional); ``forward(x, i, cond_terms)`` -> the stack's output in the same layout: eps for
    DiffWave (in = out = 1). For a source-filter model the same stack runs on its subbands
    (in = out = bands, L = samples / bands), between its Haar analysis and synthesis, with the
    terms from :meth:`fold_terms`. ``row_width``: ``P`` of the layout ``(B, C, L / P, P)`` (L must
    then be a multiple of P), or 0 for ``(B, C, 1, L)`` (time along the width; kept for comparison).
    """

    def __init__(self, model, steps: Sequence[float], row_width: int = ROW_WIDTH):
        super().__init__()
        model = model.eval()
        cfg = model.config
        self.model = model
        self.row_width = row_width
        rows = row_width > 0
        self.channels = c = cfg.residual_channels
        self.layers = k_total = cfg.residual_layers
        self.dilations = [layer.dilated_conv.dilation[0] for layer in model.layers]
        # the source-filter family's residual stack is DiffWave's with q = 0; its conditioner terms
        # come from its own prepare (see fold_terms), so only DiffWave's are built here
        self.makes_terms = isinstance(model, DiffWave) and cfg.conditional
        q = 1.0 if getattr(cfg, "residual_includes_step", False) else 0.0
        with torch.no_grad():
            dtype = model.input_conv.weight.dtype
            emb = model.embed_steps(torch.tensor([float(t) for t in steps], dtype=dtype))  # (S, 512)
            e = torch.stack([layer.step_proj(emb) for layer in model.layers], dim=1)  # (S, K, C)
            self.register_buffer("first_step_term", e[:, 0].clone(), persistent=False)  # (S, C)
            filt, gate, res, skip = [], [], [], []
            res_bias = torch.zeros(len(steps), max(k_total - 1, 1), c, dtype=e.dtype)
            for k, layer in enumerate(model.layers):
                w = _as_2d(layer.dilated_conv.weight, rows) * SQRT_HALF ** k
                filt.append(w[:c])
                gate.append(w[c:])
                w_out = _as_2d(layer.out_proj.weight, rows)
                b_out = layer.out_proj.bias.detach()
                skip.append(w_out[c:] * math.sqrt(1.0 / k_total))
                if k < k_total - 1:
                    res.append(w_out[:c] / SQRT_HALF ** k)
                    offset = SQRT_HALF * b_out[:c] + (q - 1.0) * SQRT_HALF * e[:, k] + e[:, k + 1]
                    res_bias[:, k] = offset / SQRT_HALF ** (k + 1)
            skip_bias = sum(layer.out_proj.bias.detach()[c:] for layer in model.layers) * math.sqrt(1.0 / k_total)
            dil_bias = torch.stack([layer.dilated_conv.bias.detach() for layer in model.layers])  # (K, 2C)
        self.filter_weights = nn.ParameterList(nn.Parameter(w, requires_grad=False) for w in filt)
        self.gate_weights = nn.ParameterList(nn.Parameter(w, requires_grad=False) for w in gate)
        self.residual_weights = nn.ParameterList(nn.Parameter(w, requires_grad=False) for w in res)
        self.skip_weights = nn.ParameterList(nn.Parameter(w, requires_grad=False) for w in skip)
        self.register_buffer("residual_bias", res_bias, persistent=False)
        self.register_buffer("skip_bias", skip_bias, persistent=False)
        self.register_buffer("dilated_bias", dil_bias, persistent=False)
        self.input_weight = nn.Parameter(_as_2d(model.input_conv.weight, rows), requires_grad=False)
        self.identity = nn.Parameter(torch.eye(c, dtype=model.input_conv.weight.dtype)[:, :, None, None], requires_grad=False)
        self.skip_conv_weight = nn.Parameter(_as_2d(model.skip_conv.weight, rows), requires_grad=False)
        self.output_weight = nn.Parameter(_as_2d(model.output_conv.weight, rows), requires_grad=False)
        if self.makes_terms:
            self.cond_filter = nn.ParameterList(
                nn.Parameter(_as_2d(layer.cond_proj.weight, rows)[:c], requires_grad=False) for layer in model.layers)
            self.cond_gate = nn.ParameterList(
                nn.Parameter(_as_2d(layer.cond_proj.weight, rows)[c:], requires_grad=False) for layer in model.layers)

    def to_layout(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) -> (B, C, L / P, P), or (B, C, 1, L) with ``row_width`` 0 (same memory order)."""
        if not self.row_width:
            return x.unsqueeze(2)
        return x.reshape(x.shape[0], x.shape[1], -1, self.row_width)

    def from_layout(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_layout`: back to (B, C, L)."""
        return x.reshape(x.shape[0], x.shape[1], -1)

    def _dilated(self, g, weight, bias, d: int):
        """The kernel-3 convolution with dilation ``d`` along time, in this layout (module docstring)."""
        p = self.row_width
        if not p:
            return F.conv2d(g, weight, bias, padding=(0, d), dilation=(1, d))
        if d % p == 0:
            return F.conv2d(g, weight, bias, padding=(d // p, 0), dilation=(d // p, 1))
        flat = g.reshape(g.shape[0], g.shape[1], -1, 1)  # the same memory, one sample per row
        y = F.conv2d(flat, weight, bias, padding=(d, 0), dilation=(d, 1))
        return y.reshape(y.shape[0], y.shape[1], -1, p)

    def fold_terms(self, terms: Sequence[torch.Tensor]) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """Per-layer conditioner terms (B, 2C, L) made by the model itself (the source-filter family's
        ``prepare``) -> the (filter, gate) pairs :meth:`forward` takes, each ``to_layout((B, C, L))``, with the
        dilated convolution's bias added (once per call, not per step)."""
        c = self.channels
        return [(self.to_layout(term[:, :c] + self.dilated_bias[k, :c, None]),
                 self.to_layout(term[:, c:] + self.dilated_bias[k, c:, None])) for k, term in enumerate(terms)]

    def prepare(self, mel: Optional[torch.Tensor], length: int, lengths: Optional[torch.Tensor] = None
                ) -> Optional[List[Tuple[torch.Tensor, torch.Tensor]]]:
        """Per layer (filter, gate) terms ``W_c U(mel) + b_c + b_dilated``, each ``to_layout((B, C, length))``.
        ``lengths`` (B,) frames: a padded batch of mixed lengths, each item upsampled as if alone."""
        if not self.makes_terms:
            return None
        c = self.channels
        shared = self.model.upsampler(mel, lengths) if self.model.upsampler is not None else None
        terms = []
        for k, layer in enumerate(self.model.layers):
            up = self.to_layout((layer.upsampler(mel, lengths) if layer.upsampler is not None else shared)[..., :length])
            bias = layer.cond_proj.bias + self.dilated_bias[k]
            terms.append((F.conv2d(up, self.cond_filter[k], bias[:c]), F.conv2d(up, self.cond_gate[k], bias[c:])))
        return terms

    def forward(self, x: torch.Tensor, i: int, cond_terms, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``mask`` ``to_layout((B, 1, L))``: 1 inside each item of a padded batch of mixed lengths, 0 past its end;
        every dilated convolution then reads zeros there, as its own padding is (None: all inside)."""
        c = self.channels
        g = F.relu(F.conv2d(x, self.input_weight, self.model.input_conv.bias))
        g = F.conv2d(g, self.identity, self.first_step_term[i])  # + e_0, see module docstring
        skip = None
        for k, d in enumerate(self.dilations):
            if mask is not None:  # g_k = h_k / s^k, so masking g masks the layer input h as the model does
                g = g * mask
            if cond_terms is None:
                bias_f, bias_g = self.dilated_bias[k, :c], self.dilated_bias[k, c:]
            else:
                bias_f = bias_g = None
            y_f = self._dilated(g, self.filter_weights[k], bias_f, d)
            y_g = self._dilated(g, self.gate_weights[k], bias_g, d)
            if cond_terms is not None:
                y_f, y_g = y_f + cond_terms[k][0], y_g + cond_terms[k][1]
            z = torch.tanh(y_f) * torch.sigmoid(y_g)
            if skip is None:
                skip = F.conv2d(z, self.skip_weights[k], self.skip_bias)
            else:
                skip = F.conv2d(z, self.skip_weights[k]) + skip
            if k < self.layers - 1:
                g = F.conv2d(z, self.residual_weights[k], self.residual_bias[i, k]) + g
        out = F.relu(F.conv2d(skip, self.skip_conv_weight, self.model.skip_conv.bias))
        return F.conv2d(out, self.output_weight, self.model.output_conv.bias)


class ReferenceDenoiser(nn.Module):
    """The model's own layers for the same interface: x (B, 1, L), eps (B, 1, L)."""

    def __init__(self, model: DiffWave, steps: Sequence[float]):
        super().__init__()
        self.model = model.eval()
        with torch.no_grad():
            emb = model.embed_steps(torch.tensor([float(t) for t in steps]))
        self.register_buffer("step_embeddings", emb, persistent=False)

    def prepare(self, mel, length, lengths=None):
        return self.model.prepare(mel, length, lengths) if self.model.config.conditional else None

    @staticmethod
    def to_layout(x: torch.Tensor) -> torch.Tensor:
        return x

    @staticmethod
    def from_layout(x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, x, i: int, cond_terms, mask=None):
        """``mask`` is unused: the terms of :meth:`prepare` with ``lengths`` carry it (``CondTerms.mask``)."""
        emb = self.step_embeddings[i].unsqueeze(0).expand(x.shape[0], -1)
        return self.model.denoise_embedded(x, emb, cond_terms)


def make_denoiser(model: DiffWave, steps: Sequence[float], folded: bool = True,
                  row_width: int = ROW_WIDTH) -> nn.Module:
    """The exported eps network: :class:`FoldedDenoiser` (fast; ``row_width``: its layout) or
    :class:`ReferenceDenoiser`. Both map audio-shaped (B, C, L) tensors to their layout with
    ``to_layout`` / ``from_layout``."""
    return FoldedDenoiser(model, steps, row_width) if folded else ReferenceDenoiser(model, steps)
