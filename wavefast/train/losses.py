"""Training losses per model family (one forward-noising: ``schedule.add_noise``).

DiffWave (Ho et al. 2020, eq. 14)::

    x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps,   loss = mean (eps_theta(x_t, t, mel) - eps)^2   (or |.|)

Source-filter DiffWave (:mod:`wavefast.models.sourcefilter`), per example::

    y0   = x0 - mu                       (mu: harmonic mean, detached; y0 = x0 without it)
    eps  = L z,  z ~ N(0, I)             (L: the shaped prior's filter; identity for the standard prior)
    diff = mean (z_hat(y_t, t) - z)^2    (z_hat sees L^-1 y_t: PriorGrad's Sigma^-1-weighted loss)
    harm = ||W (mu - x0)||^2 / ||W x0||^2   (W: L^-1 with each frame's gains floored 40 dB below its
                                            peak: the diffusion's own metric, without letting a near-silent
                                            bin weigh a million times more than speech)
    f0   = |log F0_hat - log F0| on frames with voicing > 0.5,  vuv = BCE(voicing logit, voicing)

    stft = w MR-STFT(x0_hat, x0) on the examples with t in the lowest fifth (``stft_weight`` w; 0 = off),
           x0_hat = (y_t - sqrt(1 - abar) L z_hat) / sqrt(abar) (+ mu)

Each returns per-example tensors (B,) in a dict; the trainer sums their means.
"""

from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F

HARMONIC_WEIGHT_RANGE = 0.01  # the harmonic loss weights no bin more than 40 dB above its frame's loudest


def diffwave_losses(model, schedule, batch: dict, t: torch.Tensor, eps: torch.Tensor, kind: str = "l2"
                    ) -> Dict[str, torch.Tensor]:
    x0 = batch["audio"]
    x_t = schedule.add_noise(x0, t, eps)
    pred = model(x_t, t.float(), batch.get("mel")).float()
    error = (pred - eps) ** 2 if kind == "l2" else (pred - eps).abs()
    return {"loss": error.flatten(1).mean(1)}


def sourcefilter_losses(model, schedule, batch: dict, t: torch.Tensor, z: torch.Tensor,
                        zero_excitation: bool = False, stft_weight: float = 0.0) -> Dict[str, torch.Tensor]:
    from ..models.prior import apply_envelope

    x0, mel = batch["audio"], batch["mel"]
    cfg = model.config
    kwargs = {}
    if cfg.uses_pitch:
        voicing = torch.zeros_like(batch["voicing"]) if zero_excitation else batch["voicing"]
        kwargs = {"f0": batch["f0"], "voicing": voicing, "phase": batch["phase"]}
    prep = model.prepare(mel, x0.shape[-1], **kwargs)
    y0 = x0 if prep.mean is None else x0 - prep.mean.detach()
    eps = model.shape_noise(z, prep)
    y_t = schedule.add_noise(y0, t, eps)
    z_hat = model.predict_white(y_t, t.float(), prep)
    out = {"diff": ((z_hat - z) ** 2).flatten(1).mean(1)}
    if stft_weight > 0:  # a multi-resolution STFT loss on the x0 the low-noise steps predict
        from ..learn.ddss import mr_stft_distance

        low = t < max(1, schedule.T // 5)
        if bool(low.any()):
            ab = schedule.alpha_bar_discrete.to(x0)[t.long()].view(-1, 1, 1)
            x0_hat = (y_t - (1 - ab).sqrt() * model.shape_noise(z_hat, prep)) / ab.sqrt()
            x0_hat = model.finish(x0_hat, prep) if prep.mean is not None else x0_hat
            spectral = mr_stft_distance(x0_hat[low], x0[low])
            out["stft"] = torch.zeros_like(out["diff"]).index_put((low.nonzero()[:, 0],), stft_weight * spectral)
    if prep.mean is not None:
        residual, reference = prep.mean - x0, x0
        if prep.gains is not None:  # whitened, with each frame's gains floored 40 dB below its peak
            floor = HARMONIC_WEIGHT_RANGE * prep.gains.amax(dim=1, keepdim=True)
            inverse = 1.0 / torch.maximum(prep.gains, floor)
            residual, reference = apply_envelope(residual, inverse), apply_envelope(reference, inverse)
        out["harm"] = residual.pow(2).flatten(1).sum(1) / reference.pow(2).flatten(1).sum(1).clamp_min(1e-8)
    if model.pitch_net is not None:
        log_f0, logit = model.pitch_outputs(mel)
        voiced = (batch["voicing"] > 0.5).float()
        out["f0"] = ((log_f0 - torch.log(batch["f0"].clamp_min(1.0))).abs() * voiced).sum(1) / voiced.sum(1).clamp_min(1)
        out["vuv"] = F.binary_cross_entropy_with_logits(logit, batch["voicing"].clamp(0, 1), reduction="none").mean(1)
    return out
