"""Few-step schedules that minimise a Monte-Carlo upper bound of the DDIM discretisation error.

Idea (arXiv 2412.10786, Phase 1): the first-order solver's output is a convex
combination of model outputs at the scheduled steps; bound the error of that
combination against the exact ODE solution, estimate the bound over training
data, and minimise it over the S steps. The concrete estimator used here:

**Coordinates.** With ``y = x / sqrt(a)`` and the noise-to-signal ratio
``s(a) = sqrt((1 - a) / a)`` (a = alpha_bar), the probability-flow ODE is
``dy/ds = eps(x(s), s)`` and DDIM (kappa = 0) is its Euler method: for steps
``s_0 > s_1 > ... > s_{S-1} > s_S = 0`` (the sampler jumps to a = 1 at the end)::

    y_S = y_0 - sum_i (s_i - s_{i+1}) eps_i = y_0 - s_0 sum_i (Delta_i / s_0) eps_i,

a convex combination of the S model outputs; the exact solution is
``y(0) = y_0 - int_0^{s_0} eps(x(s), s) ds``.

**Bound.** Comparing the two interval by interval (local errors along the exact
trajectory; their propagation through later steps, a Lipschitz factor, is left
out)::

    || y(0) - y_S || <= sum_i int_{s_{i+1}}^{s_i} || eps(x(s), s) - eps(x(s_i), s_i) || ds.

**Monte Carlo estimate.** Trajectories are replaced by forward-noised training
data ``x(s) = sqrt(a(s)) (x0 + s z)`` with one z per example for every s (the exact
ODE trajectory when the data is a single point), the expectation over (x0, z) is
moved inside the norm (Jensen: ``E||v|| <= sqrt(E||v||^2)``), and norms are per
sample dimension (RMS). The estimator is::

    B(schedule) = sum_i int_{s_{i+1}}^{s_i} sqrt( E_{x0,z} ||eps~(s) - eps~(s_i)||^2 / d ) ds,

where ``eps~(s)`` interpolates ``eps_theta`` linearly in s between the K levels of a
fixed grid (the integer steps 0..T-1, or K evenly spaced steps for large T) and is
held at its s_min value below the trained range (the last interval,
``[0, s_{S-1}]``, costs nothing once the last step is at t = 0). Since eps~ is a
linear combination ``sum_k w_k(s) eps_k``, only the K x K Gram matrix
``G_kl = E <eps_k, eps_l> / d`` is needed: ``E||eps~(s) - eps~(s')||^2 / d =
(w(s) - w(s'))^T G (w(s) - w(s'))``. G is estimated once with N training examples
(N K network evaluations); B is then a cheap, differentiable function of the
steps. The integrals use the midpoint rule with ``quad_nodes`` nodes per interval.

**Optimisation.** The steps are those of :class:`wavefast.learn.ggdm.TimestepParam`
(ends fixed, S-2 interior steps via softmax gap logits) and B is minimised with
Adam from each starting plan with the same ends (default var-quadratic,
var-linear, step-linear); the best result is kept, and never one worse than the
best start. The result is a plain plan: sample with any kappa (the bound is
derived for kappa = 0).

**Source-filter models** are bounded in their whitened variable (see
:class:`WhiteDiffusion`): training data enters as ``y0 = x0 - mu`` noised with the
shaped prior ``L z``, and the Gram matrix is of the white estimates ``z_hat``.

Phase 2 of the paper (fine-tuning the network on the chosen steps, alternating
with Phase 1) changes the model, so it writes a new model: :mod:`wavefast.learn.phase2`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from tqdm.auto import tqdm

from ..errors import WavefastError
from ..schedules import LinearBetaSchedule, SamplingPlan, make_plan
from .ggdm import TimestepParam

STATE_FORMAT = "wavefast-learn-state/1"


def noise_to_signal(alpha_bar: torch.Tensor) -> torch.Tensor:
    """s = sqrt((1 - a) / a)."""
    return ((1.0 - alpha_bar) / alpha_bar).sqrt()


def grid_steps(schedule: LinearBetaSchedule, max_levels: int = 64) -> torch.Tensor:
    """Model steps of the fixed grid, increasing: 0..T-1 if T <= max_levels, else max_levels evenly spaced."""
    T = schedule.T
    if T <= max_levels:
        return torch.arange(T, dtype=torch.float64)
    return torch.linspace(0.0, T - 1.0, max_levels, dtype=torch.float64)


class WhiteDiffusion:
    """One batch's diffusion in the variable where its noise is white: ``(y0, shape_noise, predict)``.

    Plain eps models (DiffWave, image UNets)::

        y0 = x0,   noise = z,   predict(y_t, t) = eps_theta(y_t, t)        z ~ N(0, I)

    Source-filter models (:mod:`wavefast.models.sourcefilter`; ``model.predict_white``)::

        prep = prepare(mel, L),   y0 = x0 - mu (mu: the harmonic mean, detached; 0 without it)
        noise = L z (the shaped prior),   predict(y_t, t) = z_hat(y_t, t)

    In the whitened variable ``w = L^-1 y`` the source-filter diffusion is ``w_t = sqrt(a) w0 +
    sqrt(1 - a) z``: a white-noise DDPM whose eps is z, and DDIM on y (linear, L fixed per example)
    is DDIM on w. So the error bound's Gram matrix of ``z_hat`` is the Euler error measured in w
    (PriorGrad's Sigma^-1 metric, the model's own training loss), and ``||z_hat - z||^2`` is the
    model's own diffusion loss. The mel projection (``mel_projection``) acts at sampling time on
    the shaped eps and is not part of ``predict``.
    """

    def __init__(self, model, x0: torch.Tensor, cond: Optional[torch.Tensor]):
        self.model = model
        device = next(model.parameters()).device
        self.x0 = x0.to(device)
        self.white_model = hasattr(model, "predict_white")
        if self.white_model:
            if cond is None:
                raise WavefastError(f"{type(model).__name__} needs its conditioning mel for every example")
            self.prep = model.prepare(cond.to(device), x0.shape[-1])
            self.y0 = self.x0 if self.prep.mean is None else self.x0 - self.prep.mean.detach()
        else:
            self.prep = model.prepare(cond.to(device), x0.shape[-1]) if cond is not None else None
            self.y0 = self.x0

    def shape_noise(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.shape_noise(z, self.prep) if self.white_model else z

    def predict(self, y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The model's estimate of the white draw behind ``y_t`` (z_hat, or eps for plain models)."""
        if self.white_model:
            return self.model.predict_white(y_t, t, self.prep)
        return self.model.denoise(y_t, t, self.prep)


@torch.no_grad()
def accumulate_eps_gram(model, x0: torch.Tensor, cond: Optional[torch.Tensor], schedule: LinearBetaSchedule,
                        grid_t: torch.Tensor, generator: torch.Generator, method: str = "lgamma") -> torch.Tensor:
    """Sum over the batch of ``<eps_k, eps_l> / d``: (K, K) float64 for x0 (B, ...) and one z per example.

    eps_k is the white estimate of :class:`WhiteDiffusion` at grid level k (z_hat for source-filter
    models: the bound is measured in their whitened variable)."""
    view = WhiteDiffusion(model, x0, cond)
    device = view.y0.device
    z = torch.randn(x0.shape, generator=generator).to(device)
    noise = view.shape_noise(z)
    ab = schedule.alpha_bar(grid_t, method)
    d = x0[0].numel()
    eps = []
    for t, a in zip(grid_t.tolist(), ab.tolist()):
        x_t = a ** 0.5 * view.y0 + (1.0 - a) ** 0.5 * noise
        e = view.predict(x_t, torch.full((x0.shape[0],), t, dtype=torch.float32, device=device))
        eps.append(e.reshape(x0.shape[0], -1).double().cpu())
    E = torch.stack(eps)  # (K, B, d)
    return torch.einsum("kbd,lbd->kl", E, E) / d


class ErrorBound:
    """The estimator B(steps) of the module docstring for a given Gram matrix."""

    def __init__(self, schedule: LinearBetaSchedule, grid_t: torch.Tensor, gram: torch.Tensor,
                 method: str = "lgamma", quad_nodes: int = 16):
        self.schedule = schedule
        self.method = method
        self.grid_t = grid_t.double()
        self.grid_s = noise_to_signal(schedule.alpha_bar(self.grid_t, method))  # increasing with t
        if not bool((self.grid_s[1:] > self.grid_s[:-1]).all()):
            raise WavefastError("the error-bound grid must have strictly increasing noise levels")
        self.gram = gram.double()
        self.quad_nodes = int(quad_nodes)

    def weights(self, s: torch.Tensor) -> torch.Tensor:
        """Linear-interpolation weights (..., K) of eps~ at noise ratios s (clamped to the grid's range)."""
        grid = self.grid_s
        K = grid.shape[0]
        s_c = s.clamp(float(grid[0]), float(grid[-1]))
        hi = torch.searchsorted(grid, s_c.detach()).clamp(1, K - 1)
        lo = hi - 1
        frac = ((s_c - grid[lo]) / (grid[hi] - grid[lo])).clamp(0.0, 1.0)
        w = torch.zeros(*s.shape, K, dtype=torch.float64)
        w = w.scatter(-1, lo.unsqueeze(-1), (1.0 - frac).unsqueeze(-1))
        return w.scatter_add(-1, hi.unsqueeze(-1), frac.unsqueeze(-1))

    def __call__(self, steps: torch.Tensor) -> torch.Tensor:
        """B for model steps (S,) decreasing (a differentiable float64 scalar)."""
        s = noise_to_signal(self.schedule.alpha_bar(steps, self.method))  # (S,) decreasing
        upper = s
        lower = torch.cat([s[1:], s.new_zeros(1)])
        width = upper - lower
        fractions = (torch.arange(self.quad_nodes, dtype=torch.float64) + 0.5) / self.quad_nodes
        nodes = lower[:, None] + width[:, None] * fractions[None, :]  # (S, Q)
        diff = self.weights(nodes) - self.weights(upper)[:, None, :]  # (S, Q, K)
        sq = torch.einsum("sqk,kl,sql->sq", diff, self.gram, diff).clamp_min(0.0)
        return (width[:, None] / self.quad_nodes * (sq + 1e-30).sqrt()).sum()

    def of_plan(self, plan: SamplingPlan) -> float:
        with torch.no_grad():
            return float(self(torch.tensor(plan.steps, dtype=torch.float64)))


def optimise_steps(bound: ErrorBound, start: SamplingPlan, iters: int = 500, lr: float = 0.05):
    """Adam on the interior gap logits from ``start``; returns (best steps (S,), best value, trace)."""
    param = TimestepParam(start.steps)
    with torch.no_grad():
        best_steps, best = param().detach().clone(), float(bound(param()))
    trace = [best]
    if len(start) <= 2:
        return best_steps, best, trace
    opt = torch.optim.Adam([param.logits], lr=lr)
    for _ in range(int(iters)):
        value = bound(param())
        opt.zero_grad()
        value.backward()
        opt.step()
        with torch.no_grad():
            current = float(bound(param()))
        trace.append(current)
        if current < best:
            best, best_steps = current, param().detach().clone()
    return best_steps, best, trace


@dataclass
class ErrBoundConfig:
    steps: int = 6
    iters: int = 500  # Adam iterations on the schedule (cheap)
    batch_size: int = 4  # Monte-Carlo examples per network batch
    mc_examples: int = 32  # Monte-Carlo examples in all
    init: str = "var-quadratic"
    starts: Sequence[str] = ("var-quadratic", "var-linear", "step-linear")
    grid_levels: int = 64
    quad_nodes: int = 16
    lr: float = 0.05
    seed: int = 0
    save_every: int = 1  # Monte-Carlo batches between state saves

    def validate(self) -> "ErrBoundConfig":
        for name in ("steps", "iters", "batch_size", "mc_examples", "grid_levels", "quad_nodes", "save_every"):
            if int(getattr(self, name)) < 1:
                raise WavefastError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.grid_levels < 2:
            raise WavefastError("grid_levels must be >= 2")
        return self

    def identity(self) -> dict:
        return {k: getattr(self, k) for k in ("batch_size", "mc_examples", "grid_levels", "seed")}


class ErrBoundRun:
    """Phase 1 for one model: Monte-Carlo Gram matrix (resumable), then schedule optimisation.

    ``data``: an object with ``next_batch(B) -> (x0, cond)`` and optionally ``position``.
    """

    def __init__(self, model, data, config: ErrBoundConfig, state_path=None):
        self.model = model.eval()
        self.data = data
        self.config = config.validate()
        self.schedule = LinearBetaSchedule.from_spec(model.spec.diffusion)
        self.grid_t = grid_steps(self.schedule, config.grid_levels)
        K = self.grid_t.shape[0]
        self.gram_sum = torch.zeros(K, K, dtype=torch.float64)
        self.count = 0
        self.batches = 0
        self.seconds = 0.0
        self.state_path = Path(state_path) if state_path is not None else None

    # --- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        from .artifacts import model_sha256

        position = getattr(self.data, "position", None)
        return {"format": STATE_FORMAT, "learner": "errbound", "identity": self.config.identity(),
                "model_sha256": model_sha256(self.model), "gram_sum": self.gram_sum, "count": self.count,
                "batches": self.batches, "seconds": self.seconds,
                "data_position": position.to_dict() if position is not None else None}

    def save_state(self) -> None:
        if self.state_path is not None:
            from ..fileio import atomic_torch_save

            atomic_torch_save(self.state_dict(), self.state_path)

    def load_state(self) -> None:
        from .artifacts import model_sha256
        from .ddss import load_state_file

        state = load_state_file(self.state_path, "errbound")
        if state["model_sha256"] != model_sha256(self.model):
            raise WavefastError(f"{self.state_path} belongs to a run on another model; start afresh without --resume")
        if state["identity"] != self.config.identity():
            raise WavefastError(f"{self.state_path} was made with other settings {state['identity']}; "
                                f"now {self.config.identity()}")
        self.gram_sum, self.count = state["gram_sum"], int(state["count"])
        self.batches, self.seconds = int(state["batches"]), float(state["seconds"])
        position = getattr(self.data, "position", None)
        if position is not None and state["data_position"] is not None:
            position.epoch, position.cursor = state["data_position"]["epoch"], state["data_position"]["cursor"]

    # --- phase 1 -------------------------------------------------------------------------
    def estimate(self, progress: bool = True) -> ErrorBound:
        """Accumulate the Gram matrix over ``mc_examples`` training examples (resumes where it stopped)."""
        cfg = self.config
        total = -(-cfg.mc_examples // cfg.batch_size)
        bar = tqdm(total=total, initial=min(self.batches, total), desc="errbound: Monte Carlo", unit="batch",
                   disable=not progress)
        while self.count < cfg.mc_examples:
            start = time.perf_counter()
            x0, cond = self.data.next_batch(min(cfg.batch_size, cfg.mc_examples - self.count))
            g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.batches)
            self.gram_sum += accumulate_eps_gram(self.model, x0, cond, self.schedule, self.grid_t, g)
            self.count += x0.shape[0]
            self.batches += 1
            self.seconds += time.perf_counter() - start
            bar.update(1)
            if self.batches % cfg.save_every == 0 or self.count >= cfg.mc_examples:
                self.save_state()
        bar.close()
        return ErrorBound(self.schedule, self.grid_t, self.gram_sum / max(self.count, 1),
                          quad_nodes=cfg.quad_nodes)

    def optimise(self, bound: ErrorBound) -> dict:
        """Minimise B from every start plan with the init plan's ends; returns the best plan and the record."""
        cfg = self.config
        start_time = time.perf_counter()
        init = make_plan(self.schedule, cfg.init, cfg.steps)
        starts: List[SamplingPlan] = [init]
        for name in cfg.starts:
            if name == cfg.init:
                continue
            try:
                plan = make_plan(self.schedule, name, cfg.steps)
            except WavefastError:
                continue
            if abs(plan.steps[0] - init.steps[0]) < 1e-6 and abs(plan.steps[-1] - init.steps[-1]) < 1e-6:
                starts.append(plan)
        results = []
        for plan in starts:
            steps, value, trace = optimise_steps(bound, plan, cfg.iters, cfg.lr)
            results.append({"start": plan.name, "start_value": bound.of_plan(plan), "value": value, "steps": steps,
                            "trace": trace})
        best = min(results, key=lambda r: r["value"])
        steps = best["steps"]
        ab = self.schedule.alpha_bar(steps).clamp(*self.schedule.trained_range)
        plan = SamplingPlan(tuple(steps.tolist()), tuple(ab.tolist()), f"errbound-S{cfg.steps}",
                            {"method": "lgamma", "kind": "errbound"})
        self.seconds += time.perf_counter() - start_time
        return {"plan": plan, "value": best["value"], "initial_value": results[0]["start_value"],
                "best_start": best["start"],
                "starts": {r["start"]: {"initial": r["start_value"], "optimised": r["value"]} for r in results},
                "mc_examples": self.count, "grid_levels": int(self.grid_t.shape[0]), "seconds": self.seconds}

    def run(self, progress: bool = True) -> dict:
        return self.optimise(self.estimate(progress))


def config_record(config: ErrBoundConfig) -> dict:
    out = asdict(config)
    out["starts"] = list(out["starts"])
    return out
