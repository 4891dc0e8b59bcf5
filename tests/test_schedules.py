"""Schedule maths against golden values and independent re-derivations of the published code."""

import json
import math

import numpy as np
import pytest
import torch

from wavefast.errors import WavefastError
from wavefast.schedules import LinearBetaSchedule, make_plan, plan_from_betas, step_plan, var_betas, var_plan
from wavefast.samplers import PlanCoefficients, step_coefficients
from wavefast.schedules.plans import load_plan_json


def _sigmas(plan, kappa):
    return tuple(PlanCoefficients.fastdpm(plan, kappa).sigmas.tolist())

SCHEDULES = [(50, 1e-4, 0.05), (200, 1e-4, 0.02), (1000, 1e-4, 0.02)]


@pytest.mark.parametrize("T,b0,bT", SCHEDULES)
def test_continuous_alpha_bar_matches_discrete_product(T, b0, bT):
    s = LinearBetaSchedule(T, b0, bT)
    product = np.cumprod(1.0 - np.linspace(b0, bT, T))  # independent float64 product
    t = torch.arange(T, dtype=torch.float64)
    assert np.max(np.abs(s.alpha_bar(t).numpy() / product - 1)) < 1e-6
    assert np.max(np.abs(s.alpha_bar_discrete.numpy() / product - 1)) < 1e-12


@pytest.mark.parametrize("T,b0,bT", SCHEDULES)
def test_inverse_is_exact(T, b0, bT):
    s = LinearBetaSchedule(T, b0, bT)
    t = torch.tensor([0.0, 0.37, 1.0, T / 3 + 0.123, T - 1.5, T - 1.0], dtype=torch.float64)
    assert torch.max(torch.abs(s.step_for_alpha_bar(s.alpha_bar(t)) - t)) < 1e-6
    integer = torch.arange(T, dtype=torch.float64)
    assert torch.max(torch.abs(s.step_for_alpha_bar(s.alpha_bar_discrete) - integer)) < 1e-6


def test_golden_fractional_values():
    """alpha_bar(t) between integers, from the Gamma-function closed form computed by hand with math.lgamma."""
    T, b0, bT = 200, 1e-4, 0.02
    d = (bT - b0) / (T - 1)
    c = (1 - b0) / d
    for t in (0.5, 10.25, 123.75):
        golden = math.exp((t + 1) * math.log(d) + math.lgamma(c + 1) - math.lgamma(c - t))
        assert abs(float(LinearBetaSchedule(T, b0, bT).alpha_bar(t)) / golden - 1) < 1e-9
    # monotone between neighbours
    s = LinearBetaSchedule(T, b0, bT)
    assert float(s.alpha_bar_discrete[10]) > float(s.alpha_bar(10.25)) > float(s.alpha_bar_discrete[11])


def test_golden_var_quadratic_plan():
    """Golden values (T=200, S=10, var-quadratic), as printed by `wavefast schedule`."""
    plan = make_plan(LinearBetaSchedule(200, 1e-4, 0.02), "var-quadratic", 10)
    golden_steps = [199.0, 164.815404, 134.264878, 106.829206, 82.206969, 60.244026, 40.906973, 24.286377,
                    10.629537, 0.0]
    golden_ab = [0.13218275, 0.24888611, 0.39621757, 0.55494924, 0.70376418, 0.82613487, 0.91390155, 0.96728416,
                 0.99268017, 0.9999]
    assert np.allclose(plan.steps, golden_steps, atol=1e-5)
    assert np.allclose(plan.alpha_bars, golden_ab, atol=1e-7)


# --- FastDPM's published procedure, re-derived independently in numpy --------------------
def _fastdpm_var_noise(T, b0, bT, S, kind):
    target = np.prod(1 - np.linspace(b0, bT, T))
    if kind == "linear":
        g = lambda x: np.linspace(b0, x, S)
        lo, hi = b0, 0.99
    else:
        g = lambda x: np.array([b0 * (1 + i * x) ** 2 for i in range(S)])
        lo, hi = 0.0, 0.95 / np.sqrt(b0) / S
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.prod(1 - g(mid)) > target else (lo, mid)
    return g((lo + hi) / 2)


def _stirling_log_alpha_bar(t, b0, bT, T):
    lg = lambda x: np.log(2 * np.pi * (x - 1)) / 2 + (x - 1) * (np.log(x - 1) - 1) + np.log(1 + 1 / (12 * (x - 1)))
    d = (bT - b0) / (T - 1)
    c = (1 - b0) / d
    return (t + 1) * np.log(d) + lg(c + 1) - lg(c - t)


def _fastdpm_var_steps(T, b0, bT, eta):
    alpha_bar = np.cumprod(1 - np.linspace(b0, bT, T))
    gamma_bar = np.cumprod(1 - eta)
    steps = []
    for gb in gamma_bar[::-1]:
        found = T - 1
        for i in range(T - 1):
            if alpha_bar[i] >= gb > alpha_bar[i + 1]:
                lo, hi = i - 0.01, i + 1.01
                for _ in range(200):
                    mid = (lo + hi) / 2
                    lo, hi = (mid, hi) if _stirling_log_alpha_bar(mid, b0, bT, T) > np.log(gb) else (lo, mid)
                found = (lo + hi) / 2
                break
        steps.append(found)
    return steps


@pytest.mark.parametrize("kind", ["linear", "quadratic"])
@pytest.mark.parametrize("S", [6, 10, 20])
def test_var_matches_fastdpm(kind, S):
    T, b0, bT = 200, 1e-4, 0.02
    s = LinearBetaSchedule(T, b0, bT)
    eta = _fastdpm_var_noise(T, b0, bT, S, kind)
    assert np.allclose(var_betas(s, S, kind).numpy(), eta, rtol=1e-6)  # the published names = FastDPM's code
    if not np.isclose(np.prod(1 - eta), float(s.alpha_bar_discrete[-1]), rtol=1e-6):
        # FastDPM caps the quadratic search at x = 0.95 / (S sqrt(beta_0)); for small S the root lies past
        # the cap and its schedule stops short of alpha_bar_T: 'var-quadratic' reproduces that, and
        # 'var-quadratic-exact' solves the root exactly (documented).
        assert kind == "quadratic" and S == 6
        assert np.isclose(float(torch.prod(1 - var_betas(s, S, kind, "exact"))), float(s.alpha_bar_discrete[-1]),
                          rtol=1e-9)
        published = var_plan(s, S, kind, method="stirling")
        assert np.allclose(published.steps, _fastdpm_var_steps(T, b0, bT, eta), atol=1e-4)
        assert 2.0 < (T - 1) - published.steps[0] < 3.0  # 2.5 steps short of the top (the figure)
        assert abs(var_plan(s, S, kind, bound="exact").steps[0] - (T - 1)) < 1e-3
        return
    plan = var_plan(s, S, kind, method="stirling")
    ref = _fastdpm_var_steps(T, b0, bT, eta)
    assert np.allclose(plan.steps[1:], ref[1:], atol=1e-4)  # FastDPM sends the last level to T-1 exactly
    assert abs(plan.steps[0] - (T - 1)) < 1e-3
    assert abs(plan.alpha_bars[0] - float(s.alpha_bar_discrete[-1])) < 1e-9  # VAR ends at alpha_bar_T
    assert abs(plan.steps[-1]) < 1e-6  # and starts at step 0
    # the exact mapping differs from Stirling's by far less than a step
    assert np.max(np.abs(np.array(var_plan(s, S, kind).steps) - np.array(plan.steps))) < 1e-3


def test_step_plans_match_fastdpm_formulas():
    s = LinearBetaSchedule(200, 1e-4, 0.02)
    assert step_plan(s, 10, "linear").steps == tuple(float(v) for v in [199, 176, 154, 132, 110, 88, 66, 44, 22, 0])
    assert step_plan(s, 10, "quadratic").steps == tuple(float(v) for v in [160, 126, 96, 71, 49, 31, 17, 7, 1, 0])
    s50 = LinearBetaSchedule(50, 1e-4, 0.05)
    plan = step_plan(s50, 6, "quadratic")
    assert plan.steps == (40.0, 25.0, 14.0, 6.0, 1.0, 0.0)
    assert plan.alpha_bars == tuple(float(s50.alpha_bar_discrete[int(t)]) for t in plan.steps)
    with pytest.raises(WavefastError, match="repeats a step"):
        step_plan(s50, 10, "quadratic", repeats="refuse")
    # the published rule (FastDPM's code) keeps the repeats: each is a no-op update, with a warning
    with pytest.warns(UserWarning, match="repeats 1 steps"):
        published = step_plan(s50, 10, "quadratic")
    taus = [int(v) for v in (np.linspace(0, np.sqrt(0.8 * 50), 10) ** 2)]
    assert published.steps == tuple(float(t) for t in sorted(taus, reverse=True)) and len(published) == 10
    from wavefast.samplers import PlanCoefficients

    c = PlanCoefficients.fastdpm(published, 1.0)
    repeat = [i for i in range(9) if published.steps[i] == published.steps[i + 1]]
    assert repeat and all(float(c.scale_x[i]) == 1.0 and float(c.eps_weights[i, i]) == 0.0 and float(c.sigmas[i]) == 0
                          for i in repeat)  # x unchanged by a repeated step
    with pytest.warns(UserWarning, match="dropped"):
        unique = make_plan(s50, "step-quadratic-unique", 10)
    assert len(unique) == 9 and len(set(unique.steps)) == 9


def test_lmnt_mapping_matches_lmnt_procedure():
    """lmnt-com/diffwave's fast-sampling step mapping, re-derived with a loop."""
    T = 50
    train = np.linspace(1e-4, 0.05, T)
    talpha_cum = np.cumprod(1 - train)
    betas = [0.0001, 0.001, 0.01, 0.05, 0.2, 0.5]
    alpha_cum = np.cumprod(1 - np.array(betas))
    expected = []
    for s in range(len(betas)):
        for t in range(T - 1):
            if talpha_cum[t + 1] <= alpha_cum[s] <= talpha_cum[t]:
                twiddle = (talpha_cum[t] ** 0.5 - alpha_cum[s] ** 0.5) / (talpha_cum[t] ** 0.5 - talpha_cum[t + 1] ** 0.5)
                expected.append(t + twiddle)
                break
    plan = plan_from_betas(LinearBetaSchedule(T, 1e-4, 0.05), betas, method="lmnt")
    assert np.allclose(plan.steps[::-1], expected, atol=1e-6)
    exact = plan_from_betas(LinearBetaSchedule(T, 1e-4, 0.05), betas, method="lgamma")
    assert np.max(np.abs(np.array(exact.steps) - np.array(plan.steps))) < 0.05  # REFERENCE: ~0.03 steps


def test_presets_and_full_chain():
    s = LinearBetaSchedule(50, 1e-4, 0.05)
    base = make_plan(s, "diffwave-base-6")
    assert len(base) == 6 and np.isclose(base.alpha_bars[0], np.prod(1 - np.array([1e-4, 1e-3, 0.01, 0.05, 0.2, 0.5])))
    full = make_plan(s, "ddpm")
    assert full.steps == tuple(float(t) for t in range(49, -1, -1))
    # kappa = 1 on the full chain gives the DDPM posterior std sqrt(beta_tilde)
    betas = np.linspace(1e-4, 0.05, 50)
    ab = np.cumprod(1 - betas)
    sig = _sigmas(full, 1.0)
    for t in (49, 20, 1):
        beta_tilde = betas[t] * (1 - ab[t - 1]) / (1 - ab[t])
        assert np.isclose(sig[49 - t], np.sqrt(beta_tilde), rtol=1e-9)
    assert sig[-1] == 0.0
    assert all(v == 0.0 for v in _sigmas(full, 0.0))


def test_out_of_range_plan_is_refused_with_the_range():
    s = LinearBetaSchedule(50, 1e-4, 0.05)
    with pytest.raises(WavefastError, match=r"outside the checkpoint's trained range \[0.279673, 0.9999\]"):
        make_plan(s, "wavegrad-6")
    clipped = make_plan(s, "wavegrad-6", clip_range=True)
    lo, hi = s.trained_range
    assert all(lo - 1e-12 <= a <= hi + 1e-12 for a in clipped.alpha_bars)
    with pytest.raises(WavefastError, match="trained range"):
        plan_from_betas(s, [1e-4, 0.9, 0.9])  # too much noise for T=50


@pytest.mark.parametrize("steps", [0, -3, 51])
def test_bad_step_counts(steps):
    with pytest.raises(WavefastError, match="steps must be between 1 and T=50"):
        make_plan(LinearBetaSchedule(50, 1e-4, 0.05), "var-linear", steps)


def test_unknown_name_and_fixed_length_plans():
    s = LinearBetaSchedule(50, 1e-4, 0.05)
    with pytest.raises(WavefastError, match="unknown schedule 'fast'; allowed: step-linear"):
        make_plan(s, "fast")
    with pytest.raises(WavefastError, match="has 6 steps"):
        make_plan(s, "diffwave-base-6", 4)
    one = make_plan(s, "var-linear", 1)
    assert one.steps == (pytest.approx(49.0),) and _sigmas(one, 1.0) == (0.0,)


def test_plan_json_round_trip_and_errors(tmp_path):
    s = LinearBetaSchedule(50, 1e-4, 0.05)
    plan = make_plan(s, "var-linear", 4)
    plan.save(tmp_path / "p.json")
    again = make_plan(s, str(tmp_path / "p.json"))
    assert np.allclose(again.steps, plan.steps) and np.allclose(again.alpha_bars, plan.alpha_bars)
    (tmp_path / "b.json").write_text(json.dumps({"betas": [1e-4, 0.01, 0.2, 0.5]}))
    assert len(make_plan(s, str(tmp_path / "b.json"))) == 4
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(WavefastError, match="cannot read schedule file"):
        make_plan(s, str(tmp_path / "bad.json"))
    (tmp_path / "up.json").write_text(json.dumps({"steps": [1, 10], "alpha_bar": [0.99, 0.5]}))
    with pytest.raises(WavefastError, match="must increase"):
        load_plan_json(tmp_path / "up.json", s)
    with pytest.raises(WavefastError, match="not found"):
        make_plan(s, str(tmp_path / "missing.json"))


def test_reverse_sigma_formula():
    a, n = 0.3, 0.6
    assert step_coefficients(a, n, 0.5)[2] == pytest.approx(0.5 * math.sqrt((1 - n) / (1 - a) * (1 - a / n)))
    assert step_coefficients(a, 1.0, 1.0)[2] == 0.0


def test_shipped_learned_plans_are_selectable_by_name(tmp_path, monkeypatch):
    from wavefast.schedules import plans

    monkeypatch.setattr(plans, "LEARNED_DIR", tmp_path)
    s = LinearBetaSchedule(50, 1e-4, 0.05)
    make_plan(s, "var-linear", 3).save(tmp_path / "toy-learned-3.json")
    assert "toy-learned-3" in plans.schedule_names()
    assert len(make_plan(s, "toy-learned-3")) == 3
