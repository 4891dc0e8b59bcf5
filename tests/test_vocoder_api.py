"""The TTS-pipeline Vocoder: batched = alone, chunked = unchunked (30 s), streaming = offline, ONNX backend."""

import numpy as np
import pytest
import torch

import wavefast
from wavefast.errors import WavefastError
from wavefast.models.diffwave import DiffWave
from wavefast.models.spec import DiffusionSpec, DiffWaveConfig, ModelSpec
from wavefast.samplers.noise import positional_noise
from wavefast.vocoder import Vocoder

TOL = 1e-4


def _model():
    torch.manual_seed(2)
    spec = ModelSpec(DiffWaveConfig(4, 4, 6, 3, n_mels=80), DiffusionSpec(50, 1e-4, 0.05), sample_rate=22050,
                     mel_frontend="tacotron2")
    model = DiffWave(spec).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


def _vocoder(chunk_seconds=1.0, steps=4, kappa=1.0):
    model = _model()
    return Vocoder(model, wavefast.plan_for(model, "var-quadratic", steps), kappa, chunk_seconds=chunk_seconds)


def _mel(frames, seed=0):
    return -6.0 + 2.0 * torch.randn(80, frames, generator=torch.Generator().manual_seed(seed))


def test_positional_noise_is_window_independent():
    whole = positional_noise(7, 1, 0, 20000)
    assert torch.equal(positional_noise(7, 1, 5000, 9000), whole[5000:14000])
    assert not torch.equal(positional_noise(8, 1, 0, 100), whole[:100])
    assert not torch.equal(positional_noise(7, 2, 0, 100), whole[:100])


def test_batched_equals_one_by_one_with_padding():
    voc = _vocoder()
    lengths = [40, 25, 40, 9]
    mels = torch.full((4, 80, 40), -11.5)
    for i, n in enumerate(lengths):
        mels[i, :, :n] = _mel(n, seed=i)
    audio, out_lengths = voc(mels, lengths=lengths, seeds=[10, 11, 12, 13])
    assert out_lengths.tolist() == [n * 256 for n in lengths]
    for i, n in enumerate(lengths):
        alone, _ = voc(mels[i:i + 1, :, :n], seeds=[10 + i])
        assert torch.allclose(audio[i, :n * 256], alone[0], atol=TOL)
        assert torch.all(audio[i, n * 256:] == 0)
    # items of different lengths ran as one padded batch (one backend call), not one call per length
    calls = []
    run = voc.backend.run
    voc.backend.run = lambda *a, **k: calls.append(1) or run(*a, **k)
    voc(mels, lengths=lengths, seeds=[10, 11, 12, 13])
    assert len(calls) == 1
    voc.backend.run = run
    # another item's padding content does not leak: change padding values, same output
    mels2 = mels.clone()
    mels2[1, :, 25:] = 0.5
    assert torch.allclose(voc(mels2, lengths=lengths, seeds=[10, 11, 12, 13])[0], audio, atol=TOL)


def test_chunked_equals_unchunked_on_30_seconds():
    voc = _vocoder(chunk_seconds=1.0)
    frames = int(30 * 22050 / 256)
    mel = _mel(frames, seed=5)
    whole = voc._window(mel[None], frames, [3], 0, None)[0]
    chunked = voc.vocode_long(mel, seed=3)
    assert chunked.shape == whole.shape == (frames * 256,)
    assert (chunked - whole).abs().max() <= TOL
    # the context is what makes it exact: without it the seams differ
    short = mel[:, :300]
    short_whole = voc._window(short[None], 300, [3], 0, None)[0]
    assert (voc.vocode_long(short, seed=3) - short_whole).abs().max() <= TOL
    voc.context_frames = 0
    assert (voc.vocode_long(short, seed=3) - short_whole).abs().max() > 1e-3


def test_stream_concatenates_to_offline():
    voc = _vocoder(chunk_seconds=0.5)
    mel = _mel(300, seed=9)
    offline = voc.vocode_long(mel, seed=4)
    sizes = [1, 7, 30, 2, 100, 60, 100]
    pieces, start = [], 0
    for k in sizes:
        pieces.append(mel[:, start:start + k])
        start += k
    streamed = list(voc.stream(iter(pieces), seed=4))
    assert len(streamed) > 2
    assert (torch.cat(streamed) - offline).abs().max() <= TOL


def test_bad_calls():
    voc = _vocoder()
    with pytest.raises(WavefastError, match="one length and one seed per item"):
        voc(torch.zeros(2, 80, 5) - 5, seeds=[1])
    with pytest.raises(WavefastError, match="lengths must lie in"):
        voc(torch.zeros(1, 80, 5) - 5, lengths=[6])
    with pytest.raises(WavefastError, match="mel bins"):
        voc(torch.zeros(1, 40, 5) - 5)
    with pytest.raises(WavefastError, match="exactly one backend"):
        Vocoder()
    for workers in (0, 1.5, True):
        with pytest.raises(WavefastError, match="workers must be a whole number >= 1"):
            Vocoder(voc.backend, workers=workers)


def test_onnx_backend_behind_the_same_interface(tmp_path):
    pytest.importorskip("onnxruntime")
    from wavefast.runtime.onnx_export import export_onnx

    model = _model()
    plan = wavefast.plan_for(model, "var-quadratic", 3)
    export_onnx(model, plan, tmp_path / "v.onnx", kappa=1.0)
    torch_voc = Vocoder(model, plan, 1.0, chunk_seconds=0.5)
    onnx_voc = Vocoder.from_pretrained(backend="onnx", onnx_path=tmp_path / "v.onnx", chunk_seconds=0.5)
    mels = torch.stack([_mel(70, 1), _mel(70, 2)])
    a, _ = torch_voc(mels, lengths=[70, 50], seeds=[1, 2])
    b, _ = onnx_voc(mels, lengths=[70, 50], seeds=[1, 2])
    assert (a - b).abs().max() <= TOL
    long_mel = _mel(200, 3)
    assert (torch_voc.vocode_long(long_mel, 5) - onnx_voc.vocode_long(long_mel, 5)).abs().max() <= TOL


def test_default_plan_is_the_shipped_learned_plan_made_for_these_weights():
    """No plan given: the shipped vocoder runs its learned plan for the asked S; with a kappa, or for other
    weights, the rule plan var-quadratic."""
    from tiny_diffwave import random_diffwave
    from wavefast.schedules.resolve import default_plan_name

    shipped = wavefast.load_default("vocoder")
    assert default_plan_name(shipped) == "vocoder-ddss-6"
    assert default_plan_name(shipped, steps=4) == "vocoder-ddss-4"
    assert default_plan_name(shipped, steps=2) == "vocoder-ddss-2"
    assert default_plan_name(shipped, steps=10) == "var-quadratic"
    assert default_plan_name(shipped, kappa=1.0) == "var-quadratic"
    assert default_plan_name(random_diffwave()) == "var-quadratic"
    assert wavefast.Vocoder.from_pretrained().plan.name == "vocoder-ddss-6"
    assert wavefast.Vocoder.from_pretrained(kappa=1.0).plan.name == "var-quadratic"
