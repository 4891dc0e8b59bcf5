"""The reverse process: exactness on known denoisers, equivalence with published updates, seeds."""

import math

import numpy as np
import pytest
import torch

import wavefast
from wavefast.errors import WavefastError
from wavefast.models.diffwave import DiffWave
from wavefast.models.spec import DiffusionSpec, DiffWaveConfig, ModelSpec
from wavefast.samplers import PerSampleNoise, sample
from wavefast.schedules import LinearBetaSchedule, make_plan

SCHEDULE = LinearBetaSchedule(50, 1e-4, 0.05)


def _oracle_for_point_mass(x0: torch.Tensor, plan):
    """eps(x, t) exact for data = the point x0: eps = (x - sqrt(a) x0) / sqrt(1 - a)."""
    steps = torch.tensor(plan.steps)

    def denoiser(x, t):  # the sampler passes t as float32: find the visited step it stands for
        a = plan.alpha_bars[int(torch.argmin(torch.abs(steps - float(t[0]))))]
        return (x - math.sqrt(a) * x0) / math.sqrt(1 - a)

    return denoiser


@pytest.mark.parametrize("name,steps", [("var-quadratic", 6), ("step-linear", 4), ("ddpm", None),
                                        ("diffwave-base-6", None)])
@pytest.mark.parametrize("kappa", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("shape", [(2, 1, 64), (2, 3, 8, 8)])
def test_exact_denoiser_recovers_the_data_point(name, steps, kappa, shape):
    """Any plan and kappa, audio or image shapes: an exact eps returns x0."""
    plan = make_plan(SCHEDULE, name, steps)
    x0 = torch.linspace(-0.8, 0.8, int(np.prod(shape[1:]))).reshape(shape[1:]).expand(shape).double()
    noise = PerSampleNoise([1, 2], dtype=torch.float64)
    out = sample(_oracle_for_point_mass(x0, plan), noise.randn(shape[1:]), plan, kappa=kappa, noise=noise)
    assert torch.max(torch.abs(out - x0)) < 1e-8


def test_kappa_one_full_chain_equals_classic_ddpm():
    """kappa=1 on all T steps is the DDPM ancestral update x' = (x - beta/sqrt(1-ab) eps)/sqrt(alpha) + sigma z."""
    plan = make_plan(SCHEDULE, "ddpm")
    torch.manual_seed(0)
    weight = torch.randn(1, 1, 5).double() * 0.3
    denoiser = lambda x, t: torch.nn.functional.conv1d(x, weight, padding=2) + 0.01 * t.double()[:, None, None]
    ours = sample(denoiser, PerSampleNoise([7]).randn((1, 32)).double(), plan, kappa=1.0,
                  noise=PerSampleNoise([8], dtype=torch.float64))
    betas = np.linspace(1e-4, 0.05, 50)
    ab = np.cumprod(1 - betas)
    x = PerSampleNoise([7]).randn((1, 32)).double()
    z = PerSampleNoise([8], dtype=torch.float64)
    for t in range(49, -1, -1):
        eps = denoiser(x, torch.full((1,), float(t)))
        x = (x - betas[t] / math.sqrt(1 - ab[t]) * eps) / math.sqrt(1 - betas[t])
        if t > 0:
            x = x + math.sqrt(betas[t] * (1 - ab[t - 1]) / (1 - ab[t])) * z.randn((1, 32))
    assert torch.max(torch.abs(ours - x)) < 1e-9


def test_kappa_one_noise_list_equals_lmnt_update():
    """With a noise list, kappa=1 equals lmnt-com/diffwave's fast update (c1, c2, sigma)."""
    betas = np.array([1e-4, 1e-3, 0.01, 0.05, 0.2, 0.5])
    plan = make_plan(SCHEDULE, "diffwave-base-6", method="lmnt")
    denoiser = lambda x, t: 0.3 * torch.sin(x * 3.0) + 0.001 * t.double()[:, None, None]
    ours = sample(denoiser, PerSampleNoise([3]).randn((1, 16)).double(), plan, kappa=1.0,
                  noise=PerSampleNoise([4], dtype=torch.float64))
    alpha, alpha_cum = 1 - betas, np.cumprod(1 - betas)
    steps = plan.steps[::-1]
    x, z = PerSampleNoise([3]).randn((1, 16)).double(), PerSampleNoise([4], dtype=torch.float64)
    for n in range(len(betas) - 1, -1, -1):
        x = (x - betas[n] / math.sqrt(1 - alpha_cum[n]) * denoiser(x, torch.tensor([steps[n]]))) / math.sqrt(alpha[n])
        if n > 0:
            x = x + math.sqrt((1 - alpha_cum[n - 1]) / (1 - alpha_cum[n]) * betas[n]) * z.randn((1, 16))
    assert torch.max(torch.abs(ours - x)) < 1e-9


def test_kappa_zero_is_deterministic_and_needs_no_noise():
    plan = make_plan(SCHEDULE, "var-linear", 5)
    denoiser = lambda x, t: 0.5 * x
    x_T = torch.randn(2, 1, 10)
    assert torch.equal(sample(denoiser, x_T, plan, kappa=0.0), sample(denoiser, x_T, plan, kappa=0.0))
    with pytest.raises(WavefastError, match="noise source"):
        sample(denoiser, x_T, plan, kappa=0.3)


@pytest.mark.parametrize("kappa", [-0.1, 1.5, float("nan")])
def test_kappa_outside_range(kappa):
    with pytest.raises(WavefastError, match="kappa must lie in"):
        sample(lambda x, t: x, torch.zeros(1, 1, 4), make_plan(SCHEDULE, "var-linear", 2), kappa=kappa,
               noise=PerSampleNoise([0]))


def test_no_clamping_unless_asked():
    plan = make_plan(SCHEDULE, "var-linear", 3)
    loud = lambda x, t: -5.0 * torch.ones_like(x)
    x_T = torch.zeros(1, 1, 8)
    free = sample(loud, x_T, plan, kappa=0.0)
    assert free.abs().max() > 1.0
    clamped = sample(loud, x_T, plan, kappa=0.0, clamp=1.0)
    assert clamped.abs().max() <= 1.0


def _tiny(conditional: bool) -> DiffWave:
    torch.manual_seed(0)
    spec = ModelSpec(DiffWaveConfig(4, 4, 2, 2, n_mels=80 if conditional else 0), DiffusionSpec(50, 1e-4, 0.05),
                     sample_rate=22050 if conditional else 8000, mel_frontend="tacotron2" if conditional else None,
                     segment_length=400)
    model = DiffWave(spec).eval()
    with torch.no_grad():
        model.output_conv.weight.normal_(0, 0.5)
    return model


def test_generate_is_independent_of_batch():
    model = _tiny(conditional=False)
    together = wavefast.generate(model, 5, steps=4, kappa=1.0, seed=10, batch_size=5)
    apart = wavefast.generate(model, 5, steps=4, kappa=1.0, seed=10, batch_size=2)
    alone = wavefast.generate(model, 1, steps=4, kappa=1.0, seed=13)
    assert together.shape == (5, 400)
    assert torch.allclose(together, apart, atol=1e-6)
    assert torch.allclose(together[3], alone[0], atol=1e-6)
    assert not torch.allclose(together[0], together[1])  # different seeds, different samples


def test_vocode_batched_equals_one_by_one():
    model = _tiny(conditional=True)
    mels = torch.randn(3, 80, 4) - 5.0
    batched = wavefast.vocode(model, mels, steps=3, kappa=1.0, seed=[5, 6, 7])
    for i in range(3):
        single = wavefast.vocode(model, mels[i], steps=3, kappa=1.0, seed=5 + i)
        assert torch.allclose(batched[i], single, atol=1e-5)
    assert batched.shape == (3, 4 * 256)
