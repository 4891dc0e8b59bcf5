"""The folded inference form of DiffWave (wavefast.runtime.folded) computes the model's own eps."""

import pytest
import torch

import wavefast
from wavefast.runtime.folded import FoldedDenoiser, ReferenceDenoiser
from wavefast.runtime.onnx_export import SamplingGraph
from tiny_diffwave import random_diffwave

STEPS = [0.0, 3.5, 17.25, 49.0]


def _model(conditional=True, per_layer=False, embedding="sinusoidal", residual_includes_step=False, layers=7):
    return random_diffwave(8, 6, layers, 3, conditional, per_layer, embedding, residual_includes_step, seed=3)


VARIANTS = {
    "philsyn (per-layer upsampler, residual includes the step)":
        dict(per_layer=True, residual_includes_step=True),
    "lmnt (table embedding, shared upsampler)": dict(embedding="table"),
    "unconditional, residual includes the step": dict(conditional=False, residual_includes_step=True),
    "unconditional, plain residual, one layer": dict(conditional=False, layers=1),
}


@pytest.mark.parametrize("row_width", [2, 1, 4, 0], ids=["rows of 2", "rows of 1", "rows of 4", "time along the width"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_folded_denoiser_equals_the_model_at_every_step(variant, row_width):
    """In float64 the rewrite is exact up to rounding (1e-10); fp32 parity is the ONNX tests' job.
    Rows of P samples: dilations divisible by P run down the rows, the others on a one-sample view."""
    model = _model(**VARIANTS[variant]).double()
    folded = FoldedDenoiser(model, STEPS, row_width=row_width)
    g = torch.Generator().manual_seed(0)
    length = 3 * 256
    x = torch.randn(2, 1, length, generator=g, dtype=torch.float64)
    mel = -6 + 2 * torch.randn(2, 80, 3, generator=g, dtype=torch.float64) if model.spec.conditional else None
    with torch.no_grad():
        cond_model = model.prepare(mel, length)
        cond_folded = folded.prepare(mel, length)
        for i, t in enumerate(STEPS):
            expected = model.denoise(x, torch.full((2,), t, dtype=torch.float64), cond_model)
            layout_x = folded.to_layout(x)
            assert layout_x.shape == ((2, 1, length // row_width, row_width) if row_width else (2, 1, 1, length))
            got = folded.from_layout(folded(layout_x, i, cond_folded))
            assert got.shape == expected.shape
            assert torch.max(torch.abs(got - expected)) <= 1e-10 * max(1.0, expected.abs().max().item())


def test_reference_and_folded_sampling_graphs_agree():
    model = _model(per_layer=True, residual_includes_step=True)
    plan = wavefast.plan_for(model, "var-quadratic", 4)
    g = torch.Generator().manual_seed(1)
    mel, x_T, noise = -6 + 2 * torch.randn(1, 80, 4, generator=g), torch.randn(1, 1024, generator=g), \
        torch.randn(3, 1, 1024, generator=g)
    with torch.no_grad():
        a = SamplingGraph(model, plan, 1.0, folded=True)(mel, x_T, noise)
        b = SamplingGraph(model, plan, 1.0, folded=False)(mel, x_T, noise)
    assert a.shape == b.shape == (1, 1024)
    assert torch.max(torch.abs(a - b)) <= 1e-4 * max(1.0, b.abs().max().item())


def test_reference_denoiser_is_the_model():
    model = _model(embedding="table")
    ref = ReferenceDenoiser(model, STEPS)
    x, mel = torch.randn(1, 1, 512), -6 + 2 * torch.randn(1, 80, 2)
    with torch.no_grad():
        assert torch.equal(ref(x, 2, ref.prepare(mel, 512)),
                           model.denoise_embedded(x, model.embed_steps(torch.tensor(STEPS))[2:3], model.prepare(mel, 512)))
