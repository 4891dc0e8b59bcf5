"""A source-filter DiffWave: shaped prior, harmonic excitation, harmonic mean, Haar subbands.

The native vocoder family trained by this project. Every option is a field of
:class:`SourceFilterConfig` (stored in the model file's spec), and with all of them off the
network is a DiffWave over Haar subbands. The diffusion and its samplers are the standard
ones; only the noise, the conditioning and the output differ:

- **shaped prior** (``prior="shaped"``, SpecGrad/PriorGrad): ``eps = L z``, L the mel's
  spectral-envelope filter (:mod:`wavefast.models.prior`); ``prior="energy"`` is PriorGrad's
  frame-energy prior (each frame's envelope RMS, a flat spectrum). The network sees the whitened
  ``L^-1 y_t`` (inverse gains) and predicts the white ``z``, so ``||z - z_hat||^2`` is
  PriorGrad's ``Sigma^-1``-weighted loss and the high-noise steps stay an identity to learn;
  :meth:`denoise` returns ``L z_hat``; the sampler's noise source draws ``L z``.
- **harmonic excitation** (``excitation=True``, PeriodGrad/NSF): harmonic cos/sin sums of F0
  at unit RMS (:func:`wavefast.models.harmonic.excitation`) enter every residual layer through
  a 1x1 projection into the gate, like the mel.
- **harmonic mean** (``harmonic_mean=True``): a frame-rate network predicts per-frame complex
  harmonic amplitudes, ``mu = sum_k a_k cos(k phi) + b_k sin(k phi)``, trained by L2 to the
  waveform (a conditional mean); the diffusion models ``y = x0 - mu``, the network sees ``mu``
  as a further per-layer input, and the sample is ``mu + y_0``. So FastDPM, presets and learned
  plans act on the residual unchanged.
- **F0 from the mel**: a frame-rate predictor ``mel -> (log F0, voicing)`` ships inside the
  model; a user F0 (from an acoustic model) can be given instead.
- **subbands** (``subband_levels``): the residual stack runs on an orthonormal Haar split at
  ``L / 2^levels`` positions (white noise stays white), the mel conditioner at frame rate,
  upsampled by interpolation between frame centres.

Shapes: audio ``(B, 1, L)`` with ``L`` a multiple of the hop; mel ``(B, n_mels, F')`` with
``F' >= L / hop`` (frame ``L / hop`` is used when present, else the last frame is held);
F0 and voicing ``(B, F')``; phase ``(B, L)``.

Per residual layer k at positions p (C channels)::

    h  = x + W_t^k e(t)
    y  = DilatedConv_k(h) + U(W_c^k c) + W_a^k a          (c: frame features, a: aux signals)
    z  = tanh(y[:C]) sigmoid(y[C:]);   r, s = split(W_o^k z);   x' = (x + r) / sqrt 2
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..audio.pitch import F0_MAX, F0_MIN, frames_to_samples, phase_track
from ..errors import WavefastError
from .diffwave import STEP_EMBED_HIDDEN, STEP_EMBED_IN, length_mask, sinusoidal_step_embedding
from .harmonic import FrameNet, excitation, f0_features, harmonic_sum, mel_features
from .prior import envelope_gains, apply_envelope
from .spec import SourceFilterConfig
from .subband import haar_analysis, haar_synthesis

HARMONIC_SCALE = 0.01  # harmonic amplitudes are ~1e-2: the network outputs them x100 (well-scaled Adam steps)


@dataclass
class Prepared:
    """Step-invariant work for one batch: per-layer terms, the prior filter gains and the mean.

    ``terms``: per layer (B, 2C, P); ``gains``: (B, 257, F') or None; ``mean``: (B, 1, L) or None;
    ``f0``/``voicing``: (B, F') frame tracks used (None without pitch).
    """

    terms: List[torch.Tensor]
    gains: Optional[torch.Tensor]
    mean: Optional[torch.Tensor]
    f0: Optional[torch.Tensor] = None
    voicing: Optional[torch.Tensor] = None
    mask: Optional[torch.Tensor] = None  # (B, 1, L): a padded batch of mixed lengths
    band_mask: Optional[torch.Tensor] = None  # (B, 1, L / bands)
    mel: Optional[torch.Tensor] = None  # (B, n_mels, L / hop + 1): the target of the mel projection
    frame_mask: Optional[torch.Tensor] = None  # (B, L / hop + 1): each item's own frames (mixed lengths)


def solo_frames(x: torch.Tensor, lengths: torch.Tensor, need: int) -> torch.Tensor:
    """Frames of a padded batch (..., F) as each item alone sees them: frame ``n_b`` repeats frame
    ``n_b - 1`` (an utterance's end), later frames are zero. Returns (..., need)."""
    x = _frames(x, need)
    index = torch.minimum(torch.arange(need, device=x.device)[None, :], (lengths - 1)[:, None])  # (B, need)
    shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (need,)
    gathered = torch.gather(x, -1, index.view(shape).expand_as(x))
    keep = length_mask(lengths + 1, need).to(x.dtype).view(shape)
    return gathered * keep


def _frames(x: torch.Tensor, need: int) -> torch.Tensor:
    """``x`` (..., F) cut or padded (repeating its last frame) to ``need`` frames."""
    if x.shape[-1] >= need:
        return x[..., :need]
    return torch.cat([x, x[..., -1:].expand(*x.shape[:-1], need - x.shape[-1])], -1)


class _Layer(nn.Module):
    def __init__(self, cfg: SourceFilterConfig, dilation: int, aux_channels: int):
        super().__init__()
        c = cfg.residual_channels
        self.channels = c
        self.step_proj = nn.Linear(STEP_EMBED_HIDDEN, c)
        self.dilated_conv = nn.Conv1d(c, 2 * c, 3, padding=dilation, dilation=dilation)
        self.cond_proj = nn.Conv1d(cfg.frame_channels, 2 * c, 1)
        self.aux_proj = nn.Conv1d(aux_channels, 2 * c, 1) if aux_channels else None
        self.out_proj = nn.Conv1d(c, 2 * c, 1)

    def forward(self, x, step_emb, term, mask=None):
        h = x + self.step_proj(step_emb).unsqueeze(-1)
        if mask is not None:  # zero past each item's end, as the convolution's own padding is
            h = h * mask
        y = self.dilated_conv(h) + term
        z = torch.tanh(y[:, : self.channels]) * torch.sigmoid(y[:, self.channels:])
        out = self.out_proj(z)
        return (x + out[:, : self.channels]) * math.sqrt(0.5), out[:, self.channels:]


class SourceFilterDiffWave(nn.Module):
    """The model of the module docstring. ``spec.arch`` is a :class:`SourceFilterConfig`."""

    def __init__(self, spec):
        super().__init__()
        cfg: SourceFilterConfig = spec.arch
        self.spec, self.config = spec, cfg
        self.hop, self.sample_rate = spec.hop_length, spec.sample_rate
        bands = cfg.bands
        c = cfg.residual_channels
        if self.hop % bands:
            raise WavefastError(f"hop {self.hop} is not divisible by {bands} subbands")
        self.input_conv = nn.Conv1d(bands, c, 1)
        self.step_fc1 = nn.Linear(STEP_EMBED_IN, STEP_EMBED_HIDDEN)
        self.step_fc2 = nn.Linear(STEP_EMBED_HIDDEN, STEP_EMBED_HIDDEN)
        frame_in = cfg.n_mels + (2 if cfg.uses_pitch else 0)
        self.frame_net = FrameNet(frame_in, cfg.frame_channels, cfg.frame_channels, cfg.frame_layers)
        aux = (2 * bands if cfg.excitation else 0) + (bands if cfg.harmonic_mean else 0)
        self.layers = nn.ModuleList(_Layer(cfg, 2 ** (i % cfg.dilation_cycle), aux) for i in range(cfg.residual_layers))
        self.skip_conv = nn.Conv1d(c, c, 1)
        self.output_conv = nn.Conv1d(c, bands, 1)
        nn.init.zeros_(self.output_conv.weight)
        nn.init.zeros_(self.output_conv.bias)
        self.pitch_net = FrameNet(cfg.n_mels, cfg.pitch_channels, 2, cfg.pitch_layers) if cfg.uses_pitch else None
        if cfg.harmonic_mean:
            self.harmonic_net = FrameNet(frame_in, cfg.harmonic_channels, 2 * cfg.harmonics, cfg.harmonic_layers)
            nn.init.normal_(self.harmonic_net.out.weight, std=0.1)
            nn.init.zeros_(self.harmonic_net.out.bias)
        else:
            self.harmonic_net = None

    def clip_groups(self) -> dict:
        """Parameters by sub-network, for gradient clipping group by group (the F0 and harmonic networks
        have their own losses; one global norm would let their gradients throttle the diffusion's)."""
        side = {"pitch": self.pitch_net, "harmonic": self.harmonic_net}
        groups = {name: list(net.parameters()) for name, net in side.items() if net is not None}
        taken = {id(p) for params in groups.values() for p in params}
        groups["diffusion"] = [p for p in self.parameters() if id(p) not in taken]
        return groups

    # --- pitch ------------------------------------------------------------------------
    def pitch_outputs(self, mel: torch.Tensor, lengths: Optional[torch.Tensor] = None):
        """(log F0 (B, F) natural log of Hz, voicing logit (B, F)) predicted from the mel.

        ``lengths`` (B,) frames: each item of a padded batch as if alone."""
        if next(self.pitch_net.parameters()).dtype != torch.float32:  # F0 is integrated into a phase: keep float32
            self.pitch_net.float()
        mel = mel.float()
        mask = None if lengths is None else length_mask(lengths.to(mel.device), mel.shape[-1])
        out = self.pitch_net(mel_features(mel), mask)
        return out[:, 0] + math.log(150.0), out[:, 1]

    def predict_pitch(self, mel: torch.Tensor, lengths: Optional[torch.Tensor] = None):
        """(F0 Hz (B, F), voicing probability (B, F)) from the mel, F0 clamped to [55, 600] Hz."""
        log_f0, logit = self.pitch_outputs(mel, lengths)
        return torch.exp(log_f0).clamp(F0_MIN, F0_MAX), torch.sigmoid(logit)

    # --- step-invariant conditioning ---------------------------------------------------
    def _check_inputs(self, mel, length):
        if mel.dim() != 3 or mel.shape[1] != self.config.n_mels:
            raise ValueError(f"cond must be (B, {self.config.n_mels}, frames), got {tuple(mel.shape)}")
        if length % self.hop:
            raise ValueError(f"length {length} must be a multiple of the hop {self.hop}")
        if mel.shape[-1] * self.hop < length:
            raise ValueError(f"{mel.shape[-1]} mel frames cover {mel.shape[-1] * self.hop} samples < length {length}")

    def prepare(self, mel: torch.Tensor, length: int, f0: Optional[torch.Tensor] = None,
                voicing: Optional[torch.Tensor] = None, phase: Optional[torch.Tensor] = None,
                lengths: Optional[torch.Tensor] = None) -> Prepared:
        """Everything that does not depend on the diffusion step (see :class:`Prepared`).

        Without ``f0`` the model's own predictor gives F0 and voicing; without ``phase`` the
        phase is integrated from F0 starting at 0 (:func:`wavefast.audio.pitch.phase_track`).
        ``lengths`` (B,) in frames: a padded batch of mixed lengths; every frame network, every
        residual layer and the prior filter see each item as if it were alone (frames past its
        end repeated once, then zero; samples past its end zero).
        """
        cfg = self.config
        self._check_inputs(mel, length)
        need = length // self.hop + 1  # frames 0 .. L / hop: the last one repeated at an utterance's end
        frame_mask = band_mask = mask = None
        if lengths is not None:
            lengths = lengths.to(mel.device).long()
            mel, f0, voicing = (None if x is None else solo_frames(x, lengths, need) for x in (mel, f0, voicing))
            frame_mask = length_mask(lengths + 1, need).to(mel.dtype)
            mask = length_mask(lengths, length, self.hop).to(mel.dtype)
            band_mask = length_mask(lengths, length // cfg.bands, self.hop // cfg.bands).to(mel.dtype)
        mel = _frames(mel, need)
        f0 = None if f0 is None else _frames(f0, need)
        voicing = None if voicing is None else _frames(voicing, need)
        positions = length // cfg.bands
        frame_in = mel_features(mel)
        aux = []
        mean = None
        if cfg.uses_pitch:
            if f0 is None:
                f0, predicted_voicing = self.predict_pitch(mel, None if lengths is None else lengths + 1)
                voicing = predicted_voicing if voicing is None else voicing
            elif voicing is None:
                raise ValueError("a user F0 needs its voicing (B, frames) too")
            f0 = f0.to(mel.dtype)
            voicing = voicing.to(mel.dtype)
            if phase is None:
                phase = phase_track(f0, length, self.hop, self.sample_rate).to(mel.device)
            f0_s = frames_to_samples(f0, length, self.hop)
            voicing_s = frames_to_samples(voicing, length, self.hop)
            frame_in = torch.cat([frame_in, f0_features(f0, voicing)], 1)
            # the harmonic signals are computed in float32 whatever the model's dtype (phase precision)
            phase32, f0_32, voicing32 = phase.float(), f0_s.float(), voicing_s.float()
            if cfg.excitation:
                exc = excitation(phase32, f0_32, voicing32, cfg.harmonics, self.sample_rate).to(mel.dtype)
                aux.append(haar_analysis(exc if mask is None else exc * mask, cfg.subband_levels))
            if cfg.harmonic_mean:
                coefficients = self.harmonic_net(frame_in, frame_mask) * (HARMONIC_SCALE * voicing[:, None])
                mean = harmonic_sum(coefficients.float(), phase32, f0_32, self.hop,
                                    self.sample_rate)[:, None].to(mel.dtype)
                if mask is not None:
                    mean = mean * mask
                aux.append(haar_analysis(mean.detach(), cfg.subband_levels))
        features = self.frame_net(frame_in, frame_mask)
        aux_signal = torch.cat(aux, 1) if aux else None
        terms = []
        for layer in self.layers:
            term = frames_to_samples(layer.cond_proj(features), positions, self.hop // cfg.bands)
            if layer.aux_proj is not None:
                term = term + layer.aux_proj(aux_signal)
            terms.append(term)
        gains = None
        if cfg.prior != "standard":
            gains = envelope_gains(mel, self.sample_rate, self.spec.mel_frontend, cfg.prior_floor, cfg.prior_scale)
            if cfg.prior == "energy":  # PriorGrad: one level per frame (the envelope's RMS), a flat spectrum
                gains = gains.pow(2).mean(dim=1, keepdim=True).sqrt().expand_as(gains)
        return Prepared(terms, gains, mean, f0 if cfg.uses_pitch else None, voicing if cfg.uses_pitch else None,
                        mask, band_mask, mel if cfg.mel_projection else None, frame_mask)

    # --- one network call ---------------------------------------------------------------
    def embed_steps(self, t: torch.Tensor) -> torch.Tensor:
        e = F.silu(self.step_fc1(sinusoidal_step_embedding(t).to(self.step_fc1.weight.dtype)))
        return F.silu(self.step_fc2(e))

    def predict_white(self, y: torch.Tensor, t: torch.Tensor, prepared: Prepared) -> torch.Tensor:
        """The white noise estimate z_hat (B, 1, L) for the diffusion variable y (B, 1, L)."""
        if t.dim() == 0:
            t = t.expand(y.shape[0])
        return self.predict_white_embedded(y, self.embed_steps(t), prepared)

    def predict_white_embedded(self, y: torch.Tensor, step_emb: torch.Tensor, prepared: Prepared) -> torch.Tensor:
        """:meth:`predict_white` given the step embedding (B, 512) (a constant per step in an exported graph)."""
        h = F.relu(self.input_conv(self.stack_input(y, prepared)))
        skip = None
        for layer, term in zip(self.layers, prepared.terms):
            h, s = layer(h, step_emb, term, prepared.band_mask)
            skip = s if skip is None else skip + s
        out = F.relu(self.skip_conv(skip * math.sqrt(1.0 / len(self.layers))))
        return self.stack_output(self.output_conv(out), prepared)

    def stack_input(self, y: torch.Tensor, prepared: Prepared) -> torch.Tensor:
        """What the residual stack sees of y (B, 1, L): whitened (w = L^-1 y, approximately) and split
        into subbands, (B, bands, L / bands)."""
        mask = prepared.mask
        if mask is not None:
            y = y * mask
        if prepared.gains is not None:
            y = apply_envelope(y, 1.0 / prepared.gains, self.hop)
            if mask is not None:
                y = y * mask
        return haar_analysis(y, self.config.subband_levels)

    def stack_output(self, bands: torch.Tensor, prepared: Prepared) -> torch.Tensor:
        """The stack's output subbands (B, bands, L / bands) -> z_hat (B, 1, L)."""
        out = haar_synthesis(bands, self.config.subband_levels)
        return out if prepared.mask is None else out * prepared.mask

    def shape_noise(self, z: torch.Tensor, prepared: Prepared) -> torch.Tensor:
        """Prior noise ``L z`` from white z (B, 1, L)."""
        if prepared.mask is not None:
            z = z * prepared.mask
        if prepared.gains is None:
            return z
        out = apply_envelope(z, prepared.gains, self.hop)
        return out if prepared.mask is None else out * prepared.mask

    def denoise(self, y: torch.Tensor, t: torch.Tensor, prepared: Prepared) -> torch.Tensor:
        """eps (in the prior's shape) for the diffusion variable y (B, 1, L); with ``mel_projection`` the
        eps whose x0 has the conditioning mel's band energies (:mod:`wavefast.models.projection`)."""
        if t.dim() == 0:
            t = t.expand(y.shape[0])
        eps = self.shape_noise(self.predict_white(y, t, prepared), prepared)
        return self.refine_eps(y, eps, self.spec.diffusion.alpha_bar(t.double()), prepared)

    def refine_eps(self, y: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor, prepared: Prepared):
        """The mel projection of eps at noise level ``alpha_bar`` (B,) when the model uses it, else eps."""
        if not self.config.mel_projection:
            return eps
        from .projection import mel_consistent_eps

        out = mel_consistent_eps(y, eps, alpha_bar, prepared.mel, self.sample_rate, prepared.mean,
                                 prepared.frame_mask)
        return out if prepared.mask is None else out * prepared.mask

    def finish(self, y0: torch.Tensor, prepared: Prepared) -> torch.Tensor:
        """Audio from the diffused variable: ``y0 + mu`` (or y0)."""
        return y0 if prepared.mean is None else y0 + prepared.mean

    def forward(self, x, t, cond=None):
        return self.denoise(x, t, self.prepare(cond, x.shape[-1]))
