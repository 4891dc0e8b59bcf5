"""Devices and precision: names resolved with clear errors, reduced-precision inference, GPU paths behind a marker."""

import pytest
import torch

import wavefast
from wavefast.devices import resolve_device, resolve_dtype
from wavefast.errors import WavefastError
from wavefast.vocoder import Vocoder
from tiny_diffwave import random_diffwave


def test_device_names():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(WavefastError, match="allowed: auto, cpu, cuda, cuda:N"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(WavefastError, match="CPU-only build|no visible CUDA"):
            resolve_device("cuda:0")
    with pytest.raises(WavefastError, match="float16 inference needs a CUDA device"):
        resolve_dtype("float16", torch.device("cpu"))
    assert resolve_dtype("bf16") == torch.bfloat16 and resolve_dtype(None) == torch.float32


@pytest.mark.parametrize("family", ["diffwave", "sourcefilter"])
def test_bfloat16_vocoding_runs_and_stays_close_to_float32(family):
    if family == "diffwave":
        model = random_diffwave()
    else:
        from test_sourcefilter import tiny_sf

        model = tiny_sf(harmonic_mean=False)  # the shipped configuration: shaped prior + excitation
    mel = -6.0 + torch.randn(80, 12, generator=torch.Generator().manual_seed(0))
    full = wavefast.vocode(model, mel, plan="var-linear", steps=3, seed=1)
    half = wavefast.vocode(model.to(torch.bfloat16), mel, plan="var-linear", steps=3, seed=1)
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    # bf16 keeps ~3 significant digits: the output stays the same signal (cosine similarity)
    assert float(torch.nn.functional.cosine_similarity(full, half, dim=0)) > 0.99


def test_from_pretrained_dtype_and_devices(tmp_path):
    from wavefast.models.checkpoints import save_native

    path = save_native(random_diffwave(), tmp_path / "m.safetensors")
    voc = Vocoder.from_pretrained(path, steps=2, dtype="bfloat16", device="cpu")
    assert next(voc.backend.model.parameters()).dtype == torch.bfloat16
    assert voc.to("cpu") is voc
    with pytest.raises(WavefastError, match="float16 inference needs a CUDA device"):
        Vocoder.from_pretrained(path, dtype="float16", device="cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_vocoding_matches_cpu(tmp_path):
    model = random_diffwave()
    mel = -6.0 + torch.randn(80, 12, generator=torch.Generator().manual_seed(0))
    cpu = wavefast.vocode(model, mel, plan="var-linear", steps=3, seed=1)
    gpu = wavefast.vocode(model.to("cuda"), mel, plan="var-linear", steps=3, seed=1)
    assert float((cpu - gpu).abs().max()) < 1e-3
    half = wavefast.vocode(model.to(torch.float16), mel, plan="var-linear", steps=3, seed=1)
    assert torch.isfinite(half).all()
