"""The whole S-step sampler as one module, for export: any plan kind, one coefficient form.

``SamplingGraph(model, plan, kappa)`` unrolls :func:`wavefast.samplers.run_coefficients` with
the plan's coefficients (FastDPM's for rule / preset / JSON plans, the learned ones for a
GGDM plan) baked in as constants::

    forward(mel?, x_T (B, L), noise? (K, B, L)) -> audio (B, L)

with ``K = noise_draws(plan, kappa)`` slices, one per stochastic step in order. The mel
conditioner runs once, outside the step loop. Given the same noise it equals the PyTorch
sampler. ``StepGraph`` is one denoiser call.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..samplers.ggdm import PlanCoefficients
from ..schedules.plans import SamplingPlan
from .folded import lift, lower, make_denoiser


class SamplingGraph(nn.Module):
    """The unrolled sampler (see the module docstring); ``folded`` picks the eps network's layout."""

    def __init__(self, model, plan: SamplingPlan, kappa=None, folded: bool = True):
        super().__init__()
        c = PlanCoefficients.from_plan(plan, kappa)
        self.conditional = model.spec.conditional
        self.folded = folded
        self.scale_x = c.scale_x.tolist()
        self.eps_weights = c.eps_weights.tolist()
        self.sigmas = c.sigmas.tolist()
        self.stochastic = [i for i in range(len(c)) if bool(c.stochastic[i])]
        self.denoiser = make_denoiser(model, c.steps.tolist(), folded)

    def forward(self, *inputs):
        inputs = list(inputs)
        mel = inputs.pop(0) if self.conditional else None
        x = lift(inputs.pop(0), self.folded)
        noise = inputs.pop(0) if self.stochastic else None
        cond_terms = self.denoiser.prepare(mel, x.shape[-1])
        history = []
        for i in range(len(self.scale_x)):
            history.append(self.denoiser(x, i, cond_terms))
            x = self.scale_x[i] * x + self.eps_weights[i][i] * history[i]
            for j in range(i):
                if self.eps_weights[i][j] != 0.0:
                    x = x + self.eps_weights[i][j] * history[j]
            if i in self.stochastic:
                x = x + self.sigmas[i] * lift(noise[self.stochastic.index(i)], self.folded)
        return lower(x, self.folded)


class StepGraph(nn.Module):
    """One denoiser call: forward(x (B, 1, L), t (B,), mel?) -> eps (B, 1, L)."""

    def __init__(self, model):
        super().__init__()
        self.model = model.eval()

    def forward(self, x, t, mel=None):
        return self.model(x, t, mel)
