"""Phase 2 of arXiv 2412.10786: fine-tune the model on the chosen steps, alternating with Phase 1.

Phase 1 (:mod:`wavefast.learn.errbound`) picks S steps for a fixed model by minimising the
error bound. Phase 2 then tunes the network on exactly those steps: per optimiser step, a
batch ``x0`` of training data, one plan index per example ``i ~ U{0..S-1}``, ``t = t_i``,
``a = alpha_bar_i`` (the plan's own noise levels, fractional steps included) and::

    x_t  = sqrt(a) x0 + sqrt(1 - a) eps,   eps ~ N(0, I)
    loss = mean_b mean (eps_theta(x_t, t) - eps)^2

(DDPM's L_simple restricted to the S steps, the paper's Phase-2 setting), Adam, gradient-norm
clipping. The alternation is::

    plan_0 = P1(model_0);  model_1 = P2(model_0, plan_0);  plan_1 = P1(model_1);  ...;  plan_R = P1(model_R)

and the result is a *new* model plus the last plan, keyed to the new model's hash (the input
model is copied, never changed).

Models: image UNets and plain DiffWave (eps prediction with white noise, the loss above), and the
source-filter vocoder (:mod:`wavefast.models.sourcefilter`) in its own training loss restricted to
the plan's steps, i.e. in its whitened variable (:class:`wavefast.learn.errbound.WhiteDiffusion`)::

    y0 = x0 - mu,   y_t = sqrt(a) y0 + sqrt(1 - a) L z,   loss = mean (z_hat(y_t, t) - z)^2

where Phase 1's bound is measured too. Only the denoiser is tuned there (residual stack, step
embedding, frame conditioner): the F0 predictor is frozen, since its loss is not a diffusion loss
and nothing in Phase 2 measures it. Other models are refused rather than tuned with the wrong loss.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Callable, List, Optional

import torch

from ..errors import WavefastError
from ..schedules import SamplingPlan


@dataclass
class Phase2Config:
    steps: int = 6
    rounds: int = 2            # Phase 1 / Phase 2 alternations (then a last Phase 1)
    finetune_iters: int = 200  # optimiser steps per Phase 2
    batch_size: int = 32
    lr: float = 2e-5
    grad_clip: float = 1.0
    mc_examples: int = 64      # Phase 1: Monte-Carlo examples for the Gram matrix
    mc_batch: int = 16
    phase1_iters: int = 300
    seed: int = 0

    def validate(self) -> "Phase2Config":
        for name in ("steps", "rounds", "finetune_iters", "batch_size", "mc_examples", "mc_batch", "phase1_iters"):
            if int(getattr(self, name)) < 1:
                raise WavefastError(f"phase 2: {name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and self.grad_clip > 0):
            raise WavefastError("phase 2: need lr > 0 and grad_clip > 0")
        return self


def check_eps_model(model) -> None:
    """Refuse models whose training loss Phase 2 does not know (see the module docstring)."""
    from ..images.unet import DDPMUNet
    from ..models.diffwave import DiffWave
    from ..models.sourcefilter import SourceFilterDiffWave

    if type(model) not in (DDPMUNet, DiffWave, SourceFilterDiffWave):
        raise WavefastError(f"phase 2 fine-tunes image UNets, DiffWave and source-filter DiffWave models in their "
                            f"own diffusion losses; {type(model).__name__} trains with another objective, so it is "
                            "not tuned here")


FROZEN_PREFIXES = ("pitch_net.",)  # not diffusion parameters: Phase 2 leaves them as they are


def tuned_parameters(model) -> list:
    """The parameters Phase 2 changes: all but the F0 predictor's (:data:`FROZEN_PREFIXES`)."""
    return [p for name, p in model.named_parameters() if not name.startswith(FROZEN_PREFIXES)]


def finetune_on_plan(model, data, plan: SamplingPlan, config: Phase2Config, generator: torch.Generator,
                     progress: Optional[Callable[[int, float], None]] = None) -> List[float]:
    """Phase 2 in place on ``model``: ``config.finetune_iters`` Adam steps of the loss in the module docstring.
    ``data.next_batch(B) -> (x0, cond)``. Returns the per-step losses."""
    from .errbound import WhiteDiffusion

    check_eps_model(model)
    device = next(model.parameters()).device
    steps = torch.tensor(plan.steps, dtype=torch.float32)
    alpha_bars = torch.tensor(plan.alpha_bars, dtype=torch.float64)
    params = tuned_parameters(model)
    tuned = {id(p) for p in params}
    frozen = [(p, p.requires_grad) for p in model.parameters() if id(p) not in tuned]
    for p, _ in frozen:
        p.requires_grad_(False)
    optimizer = torch.optim.Adam(params, lr=config.lr)
    model.train()
    losses = []
    try:
        for k in range(int(config.finetune_iters)):
            x0, cond = data.next_batch(config.batch_size)
            view = WhiteDiffusion(model, x0, cond)
            index = torch.randint(0, len(plan), (x0.shape[0],), generator=generator)
            a = alpha_bars[index].float().to(device).view(-1, *([1] * (x0.dim() - 1)))
            z = torch.randn(x0.shape, generator=generator).to(device)
            y_t = a.sqrt() * view.y0 + (1.0 - a).sqrt() * view.shape_noise(z)
            loss = (view.predict(y_t, steps[index].to(device)).float() - z).square().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(k, losses[-1])
    finally:
        for p, flag in frozen:  # as the caller had them
            p.requires_grad_(flag)
        model.eval()
    return losses


def phase1(model, data, config: Phase2Config) -> dict:
    """Error-bound schedule for the current weights (:class:`wavefast.learn.errbound.ErrBoundRun`)."""
    from .errbound import ErrBoundConfig, ErrBoundRun

    run = ErrBoundRun(model, data, ErrBoundConfig(steps=config.steps, iters=config.phase1_iters,
                                                  batch_size=config.mc_batch, mc_examples=config.mc_examples,
                                                  seed=config.seed))
    return run.run(progress=False)


def alternate(model, data, config: Phase2Config, log: Optional[Callable[[str], None]] = None) -> dict:
    """Phase 1 / Phase 2 alternation on a copy of ``model``; see the module docstring.

    Returns ``{model, plan, plans (one per round), rounds: [{bound, bound_initial, steps, finetune_loss_first/last, seconds}], config}``:
    ``plan`` is the last Phase-1 plan (for the returned model), ``rounds[r].bound`` the error bound of round r's
    plan on round r's weights."""
    config.validate()
    check_eps_model(model)
    tuned = copy.deepcopy(model).eval()
    generator = torch.Generator().manual_seed(config.seed)
    rounds, plans = [], []
    for r in range(int(config.rounds) + 1):
        start = time.perf_counter()
        result = phase1(tuned, data, config)
        plan = result["plan"]
        plans.append(plan)
        record = {"round": r, "bound": result["value"], "bound_initial": result["initial_value"],
                  "steps": list(plan.steps)}
        if r < config.rounds:
            losses = finetune_on_plan(tuned, data, plan, config, generator)
            record.update(finetune_loss_first=sum(losses[:10]) / min(10, len(losses)),
                          finetune_loss_last=sum(losses[-10:]) / min(10, len(losses)))
        record["seconds"] = time.perf_counter() - start
        rounds.append(record)
        if log is not None:
            log(f"phase 2: round {r}: bound {record['bound']:.4f} (start plan {record['bound_initial']:.4f}), "
                f"steps {[round(t, 1) for t in plan.steps]}"
                + (f", fine-tune loss {record['finetune_loss_first']:.4f} -> {record['finetune_loss_last']:.4f}"
                   if "finetune_loss_last" in record else ""))
    return {"model": tuned, "plan": plan, "plans": plans, "rounds": rounds, "config": asdict(config)}


class TensorBatches:
    """``next_batch(B) -> (x0, None)``: examples drawn without replacement from a tensor (N, ...), reshuffled
    every epoch with a seeded generator. ``position`` (epoch, cursor) says where the stream is; setting it
    (a resumed run) replays the permutations up to that epoch, so the stream continues exactly."""

    def __init__(self, x0: torch.Tensor, seed: int = 0):
        from ..data.segments import DataPosition

        if x0.dim() < 2 or x0.shape[0] < 1:
            raise WavefastError(f"need a batch of examples (N, ...), got shape {tuple(x0.shape)}")
        self.x0 = x0.float()
        self.seed = int(seed)
        self.position = DataPosition()
        self._epoch, self._order, self._generator = -1, None, None

    def _order_of(self, epoch: int) -> torch.Tensor:
        if epoch < self._epoch or self._generator is None:
            self._generator, self._epoch = torch.Generator().manual_seed(self.seed), -1
        while self._epoch < epoch:
            self._order, self._epoch = torch.randperm(len(self.x0), generator=self._generator), self._epoch + 1
        return self._order

    def next_batch(self, batch_size: int):
        out, pos = [], self.position
        while len(out) < batch_size:
            if pos.cursor >= len(self.x0):
                pos.epoch, pos.cursor = pos.epoch + 1, 0
            order = self._order_of(pos.epoch)
            take = min(batch_size - len(out), len(order) - pos.cursor)
            out.extend(order[pos.cursor:pos.cursor + take].tolist())
            pos.cursor += take
        return self.x0[out], None
