"""DPM-Solver++(2M) as a fixed-coefficient plan: the GGDM form runs the published update exactly."""

import numpy as np
import pytest
import torch

import wavefast
from wavefast.errors import WavefastError
from wavefast.samplers import PlanCoefficients, run_plan
from wavefast.schedules import LinearBetaSchedule, make_plan
from wavefast.schedules.solvers import logsnr_alpha_bars

SCHEDULE = LinearBetaSchedule(50, 1e-4, 0.05)


def toy_denoiser(x, t):
    """A nonlinear eps model (so multistep terms matter): depends on x and on the step."""
    return torch.tanh(0.8 * x + 0.01 * t.view(-1, *([1] * (x.dim() - 1)))) + 0.1 * torch.sin(3 * x)


def dpm_solver_pp_2m_loop(denoiser, x, steps, alpha_bars):
    """Algorithm 2 of arXiv 2211.01095 written out directly (float64), last step first order to the data."""
    ab = torch.tensor(alpha_bars, dtype=torch.float64)
    alpha, sigma = ab.sqrt(), (1 - ab).sqrt()
    lam = torch.log(alpha / sigma)
    previous = None
    for i, t in enumerate(steps):
        eps = denoiser(x, torch.full((x.shape[0],), float(t), dtype=torch.float32))  # run_plan feeds float32 steps
        x0 = (x - sigma[i] * eps) / alpha[i]
        if i == len(steps) - 1:
            return x0
        h = lam[i + 1] - lam[i]
        if previous is None:
            D = x0
        else:
            r = (lam[i] - lam[i - 1]) / h
            D = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * previous
        x = sigma[i + 1] / sigma[i] * x - alpha[i + 1] * torch.expm1(-h) * D
        previous = x0


@pytest.mark.parametrize("S", [2, 3, 6, 10])
@pytest.mark.parametrize("shape", [(3, 1, 40), (2, 1, 5, 5)])
def test_ggdm_form_equals_the_published_update(S, shape):
    plan = make_plan(SCHEDULE, "dpm-solver++2m", S)
    x_T = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(S))
    want = dpm_solver_pp_2m_loop(toy_denoiser, x_T, plan.steps, plan.alpha_bars)
    got = run_plan(toy_denoiser, x_T, plan)
    assert torch.allclose(got, want, atol=1e-10, rtol=0)


def test_two_steps_are_ddim():
    """With two steps both updates are first order: DPM-Solver++ is DDIM (FastDPM kappa 0) on the same levels."""
    plan = make_plan(SCHEDULE, "dpm-solver++2m", 2)
    solver = PlanCoefficients.from_plan(plan)
    ddim = PlanCoefficients.fastdpm(wavefast.SamplingPlan(plan.steps, plan.alpha_bars), 0.0)
    assert torch.allclose(solver.scale_x, ddim.scale_x, atol=1e-12)
    assert torch.allclose(solver.eps_weights, ddim.eps_weights, atol=1e-12)
    assert solver.draws == 0


def test_levels_are_uniform_in_log_snr_between_the_trained_ends():
    ab = logsnr_alpha_bars(SCHEDULE, 7)
    lam = 0.5 * torch.log(ab / (1 - ab))
    assert torch.allclose(lam.diff(), lam.diff()[:1].expand(6), rtol=1e-9)
    lo, hi = SCHEDULE.trained_range
    assert float(ab[0]) == lo and float(ab[-1]) == hi
    plan = make_plan(SCHEDULE, "dpm-solver++2m", 7)
    assert plan.steps[0] == 49.0 and plan.steps[-1] == 0.0
    assert all(a > b for a, b in zip(plan.steps, plan.steps[1:]))


def test_second_order_beats_first_order_on_a_smooth_problem():
    """Against a 200-step reference, 2M at S=8 is closer than DDIM at S=8 on the same log-SNR levels."""
    x_T = torch.randn(4, 1, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    reference = run_plan(toy_denoiser, x_T, make_plan(SCHEDULE, "dpm-solver++2m", 50))
    plan = make_plan(SCHEDULE, "dpm-solver++2m", 8)
    ddim = run_plan(toy_denoiser, x_T, wavefast.SamplingPlan(plan.steps, plan.alpha_bars), kappa=0.0)
    second = run_plan(toy_denoiser, x_T, plan)
    assert (second - reference).abs().max() < 0.5 * (ddim - reference).abs().max()


def test_a_solver_plan_refuses_another_kappa():
    plan = make_plan(SCHEDULE, "dpm-solver++2m", 4)
    with pytest.raises(WavefastError, match="solver.*kappa=1.0"):
        PlanCoefficients.from_plan(plan, 1.0)
    assert PlanCoefficients.from_plan(plan, 0.0).draws == 0


def test_solver_plan_through_the_vocoder_and_onnx(tmp_path):
    pytest.importorskip("onnxruntime")
    from tiny_diffwave import random_diffwave
    from wavefast.runtime.onnx_export import export_onnx

    model = random_diffwave()
    plan = wavefast.resolve_plan(model, "dpm-solver++2m", steps=4)
    mel = -6 + 2 * torch.randn(1, 80, 6, generator=torch.Generator().manual_seed(0))
    torch_audio = wavefast.vocode(model, mel[0], plan=plan, seed=3)
    export_onnx(model, plan, tmp_path / "s.onnx")
    onnx_audio = wavefast.Vocoder.from_pretrained(tmp_path / "s.onnx").vocode_long(mel[0], seed=3)
    assert np.abs(onnx_audio.numpy() - torch_audio.numpy()).max() < 1e-4
