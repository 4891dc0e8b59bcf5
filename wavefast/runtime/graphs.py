"""The whole S-step sampler as one module, for export: any plan kind, one coefficient form.

``SamplingGraph(model, plan, kappa)`` unrolls :func:`wavefast.samplers.run_coefficients` with
the plan's coefficients (FastDPM's for rule / preset / JSON plans, the learned ones for a
GGDM plan) baked in as constants::

    forward(mel?, x_T (B, L), noise? (K, B, L), lengths? (B,)) -> audio (B, L)

with ``K = noise_draws(plan, kappa)`` slices, one per stochastic step in order. The mel
conditioner runs once, outside the step loop. Given the same noise it equals the PyTorch
sampler. With ``lengths`` (a graph built with ``lengths=True``; int64 frames per item) a padded
batch of mixed lengths runs in one call, each item computed as if alone: every layer's input is
zeroed past the item's end (as the model's own convolution padding is) and the audio there is
0. ``StepGraph`` is one denoiser call.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import WavefastError
from ..models.diffwave import length_mask
from ..samplers.ggdm import PlanCoefficients
from ..schedules.plans import SamplingPlan
from .folded import ROW_WIDTH, make_denoiser


class SamplingGraph(nn.Module):
    """The unrolled sampler (see the module docstring); ``folded`` picks the eps network's layout
    (``row_width``: the folded layout's, see :mod:`.folded`)."""

    def __init__(self, model, plan: SamplingPlan, kappa=None, folded: bool = True, lengths: bool = False,
                 row_width: int = ROW_WIDTH):
        super().__init__()
        c = PlanCoefficients.from_plan(plan, kappa)
        self.conditional = model.spec.conditional
        if lengths and not self.conditional:
            raise WavefastError("a lengths input is for mel-conditioned models (an unconditional one has one length)")
        self.takes_lengths = lengths
        self.hop = model.spec.hop_length
        self.folded = folded
        self.scale_x = c.scale_x.tolist()
        self.eps_weights = c.eps_weights.tolist()
        self.sigmas = c.sigmas.tolist()
        self.stochastic = [i for i in range(len(c)) if bool(c.stochastic[i])]
        self.denoiser = make_denoiser(model, c.steps.tolist(), folded, row_width)

    def forward(self, *inputs):
        inputs = list(inputs)
        mel = inputs.pop(0) if self.conditional else None
        x_T = inputs.pop(0)
        length = x_T.shape[-1]
        layout = self.denoiser.to_layout
        x = layout(x_T[:, None])
        noise = inputs.pop(0) if self.stochastic else None
        lengths = inputs.pop(0) if self.takes_lengths else None
        mask = None if lengths is None else layout(length_mask(lengths, length, self.hop))
        cond_terms = self.denoiser.prepare(mel, length, lengths)
        history = []
        for i in range(len(self.scale_x)):
            history.append(self.denoiser(x, i, cond_terms, mask))
            x = self.scale_x[i] * x + self.eps_weights[i][i] * history[i]
            for j in range(i):
                if self.eps_weights[i][j] != 0.0:
                    x = x + self.eps_weights[i][j] * history[j]
            if i in self.stochastic:
                x = x + self.sigmas[i] * layout(noise[self.stochastic.index(i)][:, None])
        return self.denoiser.from_layout(x if mask is None else x * mask)[:, 0]


class StepGraph(nn.Module):
    """One denoiser call: forward(x (B, 1, L), t (B,), mel?) -> eps (B, 1, L)."""

    def __init__(self, model):
        super().__init__()
        self.model = model.eval()

    def forward(self, x, t, mel=None):
        return self.model(x, t, mel)


class SourceFilterGraph(nn.Module):
    """The unrolled sampler of a source-filter DiffWave::

        forward(mel (B, n_mels, F + 1), f0 (B, F + 1), voicing (B, F + 1), phase (B, L),
                x_T (B, L), noise? (K, B, L), lengths? (B,)) -> audio (B, L),  L = F hop

    ``x_T`` and ``noise`` are white: the graph shapes them with the prior filter, as the torch
    backend does, and adds the harmonic mean at the end. The mel, F0 and voicing carry the frame
    after the window (repeat the last frame at an utterance's end); the phase comes from
    :func:`wavefast.audio.pitch.phase_track`. ``lengths`` (with ``lengths=True``; int64 frames per
    item): a padded batch of mixed lengths, every frame network, layer and filter seeing each item as
    if alone (the model's own ``prepare(..., lengths)``); the phase must then be each item's own
    (from its F0 with the last frame held past its end); audio past an item's end is 0.
    """

    def __init__(self, model, plan: SamplingPlan, kappa=None, folded: bool = False, lengths: bool = False,
                 row_width: int = ROW_WIDTH):
        super().__init__()
        c = PlanCoefficients.from_plan(plan, kappa)
        self.model = model.eval()
        self.takes_lengths = lengths
        # folded: the residual stack in the 2-D folded layout of :mod:`.folded` (same function)
        self.stack = make_denoiser(model, c.steps.tolist(), True, row_width) if folded else None
        self.scale_x = c.scale_x.tolist()
        self.eps_weights = c.eps_weights.tolist()
        self.sigmas = c.sigmas.tolist()
        self.stochastic = [i for i in range(len(c)) if bool(c.stochastic[i])]
        with torch.no_grad():
            self.register_buffer("step_embeddings", model.embed_steps(c.steps.float()), persistent=False)
        self.register_buffer("alpha_bars", model.spec.diffusion.alpha_bar(c.steps.double()), persistent=False)
        if model.config.mel_projection:  # build the STFT kernels now, outside the trace: they enter it as constants
            from ..models.projection import stft_kernels

            stft_kernels(model.sample_rate, model.config.n_mels)

    def forward(self, mel, f0, voicing, phase, x_T, *rest):
        model = self.model
        rest = list(rest)
        noise = rest.pop(0) if self.stochastic else None
        lengths = rest.pop(0) if self.takes_lengths else None
        length = x_T.shape[-1]
        prep = model.prepare(mel, length, f0=f0, voicing=voicing, phase=phase, lengths=lengths)
        terms = self.stack.fold_terms(prep.terms) if self.stack is not None else None
        band_mask = None if prep.band_mask is None or self.stack is None else self.stack.to_layout(prep.band_mask)
        x = model.shape_noise(x_T[:, None], prep)
        history = []
        for i in range(len(self.scale_x)):
            if self.stack is not None:
                bands = self.stack.from_layout(self.stack(self.stack.to_layout(model.stack_input(x, prep)), i, terms,
                                                          band_mask))
                white = model.stack_output(bands, prep)
            else:
                white = model.predict_white_embedded(x, self.step_embeddings[i:i + 1].expand(x.shape[0], -1), prep)
            eps = model.shape_noise(white, prep)
            if model.config.mel_projection:
                eps = model.refine_eps(x, eps, self.alpha_bars[i:i + 1], prep)
            history.append(eps)
            x = self.scale_x[i] * x + self.eps_weights[i][i] * history[i]
            for j in range(i):
                if self.eps_weights[i][j] != 0.0:
                    x = x + self.eps_weights[i][j] * history[j]
            if i in self.stochastic:
                x = x + self.sigmas[i] * model.shape_noise(noise[self.stochastic.index(i)][:, None], prep)
        return model.finish(x, prep)[:, 0]


class PitchGraph(nn.Module):
    """The source-filter model's F0 predictor: forward(mel (B, n_mels, F), lengths? (B,)) -> (f0 Hz (B, F),
    voicing (B, F)); with ``lengths`` (int64 frames) each item of a padded batch as if alone."""

    def __init__(self, model, lengths: bool = False):
        super().__init__()
        self.model = model.eval()
        self.takes_lengths = lengths

    def forward(self, mel, lengths=None):
        return self.model.predict_pitch(mel, lengths if self.takes_lengths else None)
