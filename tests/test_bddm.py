"""BDDM ``.ns`` noise-schedule files: loaded exactly, sampled as BDDM's own loop samples them."""

import pickle

import pytest
import torch

from wavefast.errors import WavefastError
from wavefast.samplers import sample
from wavefast.schedules import LinearBetaSchedule, make_plan

T200 = LinearBetaSchedule(200, 1e-4, 0.02)


def write_ns(path, betas, dtype=torch.float32):
    """A schedule file in BDDM's layout: torch.save((ts, a, b, s)), least noise first (BDDM writes float32)."""
    b = torch.tensor(betas, dtype=torch.float64)
    alpha_bar = torch.cumprod(1 - b, 0)
    previous = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
    s = (b * (1 - previous) / (1 - alpha_bar)).sqrt()
    a = alpha_bar.sqrt()
    # BDDM maps each sqrt(alpha_bar) to a step by linear interpolation in the training sqrt(alpha_bar) table
    table = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 200, dtype=torch.float64), 0).sqrt()
    ts = []
    for value in a:
        k = int((table >= value).sum()) - 1
        ts.append(k + float((table[k] - value) / (table[k] - table[k + 1])) if 0 <= k < 199 else max(k, 0))
    torch.save(tuple(v.to(dtype) for v in (torch.tensor(ts), a, b, s)), path)
    return path


BETAS = [1.2e-4, 9e-4, 8e-3, 0.12, 0.25, 0.3]


def bddm_loop(denoiser, x, ts, a, b, s, z, ddim=False):
    """BDDM's sampling loop, from its paper's equations (index 0 = least noise)."""
    for n in range(len(ts) - 1, -1, -1):
        e = denoiser(x, torch.full((x.shape[0],), float(ts[n])))
        if ddim:
            a_next = a[n - 1] if n > 0 else a[n] / (1 - b[n]).sqrt()
            x = a_next / a[n] * x + (-(1 - a[n] ** 2).sqrt() * a_next / a[n] + (1 - a_next ** 2).sqrt()) * e
        else:
            x = (x - b[n] / (1 - a[n] ** 2).sqrt() * e) / (1 - b[n]).sqrt()
            if n > 0:
                x = x + s[n] * z[len(ts) - 1 - n]
    return x


def toy_denoiser(x, t):
    return torch.tanh(0.8 * x.roll(1, dims=-1) + 0.004 * t[:, None, None])


@pytest.mark.parametrize("kappa,ddim", [(1.0, False), (0.0, True)])
def test_a_bddm_file_samples_as_bddm_samples_it(tmp_path, kappa, ddim):
    # float64 so that the file's alphas and betas agree beyond float32 rounding (in a float32 file, the
    # last step's 1 - a^2 ~ 1e-4 carries ~1e-3 relative rounding, and DDIM-rev feels it)
    path = write_ns(tmp_path / "6steps.ns", BETAS, torch.float64)
    ts, a, b, s = (v.double() for v in torch.load(path, weights_only=True))
    plan = make_plan(T200, str(path))
    assert len(plan) == 6 and plan.info["kind"] == "bddm"
    assert list(plan.steps) == pytest.approx(ts.flip(0).tolist(), abs=1e-5)
    assert list(plan.alpha_bars) == pytest.approx(a.square().flip(0).tolist(), rel=1e-6)
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(3, 1, 64, generator=g, dtype=torch.float64)
    z = torch.randn(5, 3, 1, 64, generator=g, dtype=torch.float64)
    ours = sample(toy_denoiser, x_T, plan, kappa=kappa, noise=z if kappa else None)
    theirs = bddm_loop(toy_denoiser, x_T, ts, a, b, s, z, ddim=ddim)
    assert torch.allclose(ours, theirs, atol=1e-9)
    # its steps land where the model's own noise levels put those alpha_bars
    assert T200.alpha_bar(torch.tensor(plan.steps, dtype=torch.float64)).tolist() == \
        pytest.approx(list(plan.alpha_bars), rel=1e-3)


def test_files_that_are_not_bddm_schedules_are_refused_with_one_line(tmp_path):
    bad = tmp_path / "x.ns"
    torch.save((torch.ones(3), torch.ones(3)), bad)
    with pytest.raises(WavefastError, match="expected a tuple"):
        make_plan(T200, str(bad))
    ts, a, b, s = torch.load(write_ns(tmp_path / "ok.ns", BETAS), weights_only=True)
    torch.save((ts, a * 0.9, b, s), bad)
    with pytest.raises(WavefastError, match="not the running product of its betas"):
        make_plan(T200, str(bad))
    torch.save((ts, a, b, s * 2), bad)
    with pytest.raises(WavefastError, match="not the DDPM posterior std"):
        make_plan(T200, str(bad))

    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))

    with open(bad, "wb") as handle:
        pickle.dump(Payload(), handle, protocol=2)
    with pytest.raises(WavefastError, match="not a readable BDDM noise schedule"):
        make_plan(T200, str(bad))
    with pytest.raises(WavefastError, match="schedule file not found"):
        make_plan(T200, str(tmp_path / "missing.ns"))
    # a schedule for a model whose range it leaves is refused like any plan file
    with pytest.raises(WavefastError):
        make_plan(LinearBetaSchedule(50, 1e-4, 0.05), str(tmp_path / "ok.ns"))


def test_a_bddm_schedule_moves_to_another_models_range_by_noise_level_only_when_asked(tmp_path):
    from wavefast.models.checkpoints import save_native
    from wavefast.vocoder import Vocoder

    from test_sourcefilter import tiny_sf

    path = save_native(tiny_sf(), tmp_path / "m.safetensors")  # T = 20, beta 1e-4 .. 0.3
    ns = str(write_ns(tmp_path / "6steps.ns", BETAS, torch.float64))  # made for T = 200
    with pytest.raises(WavefastError, match="steps must lie in"):
        Vocoder.from_pretrained(path, plan=ns)
    plan = Vocoder.from_pretrained(path, plan=ns, clip_range=True).backend.plan
    model_schedule = LinearBetaSchedule(20, 1e-4, 0.3)
    lo, hi = model_schedule.trained_range
    want = sorted({min(max(a, lo), hi) for a in torch.cumprod(1 - torch.tensor(BETAS, dtype=torch.float64), 0).tolist()})
    assert list(plan.alpha_bars) == pytest.approx(want, rel=1e-9)  # the file's levels, only the end clamped
    expected_t = model_schedule.step_for_alpha_bar(torch.tensor(want, dtype=torch.float64), "lgamma")
    assert list(plan.steps) == pytest.approx(expected_t.tolist(), abs=1e-9) and max(plan.steps) < 19
    with pytest.raises(WavefastError, match="clip_range"):
        Vocoder.from_pretrained(tmp_path / "x.onnx", clip_range=True)
