"""ONNX export of the sampling graph: parity with the torch sampler on tiny models (CPU)."""

import json

import numpy as np
import pytest
import torch

import wavefast
from wavefast.cli import main
from wavefast.errors import WavefastError
from wavefast.models.checkpoints import save_native

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from wavefast.runtime.onnx_export import export_onnx  # noqa: E402
from wavefast.pipeline import generate_with  # noqa: E402
from wavefast.runtime.ort_backend import OnnxBackend  # noqa: E402
from wavefast.vocoder import Vocoder  # noqa: E402
from tiny_diffwave import random_diffwave  # noqa: E402

TOL = 1e-4


def _model(conditional=True, per_layer=False, embedding="sinusoidal"):
    return random_diffwave(conditional=conditional, per_layer=per_layer, embedding=embedding)


def _mel(batch, frames, seed=0):
    return -6.0 + 2.0 * torch.randn(batch, 80, frames, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("layout", ["folded", "folded-wide", "reference"])
@pytest.mark.parametrize("schedule,steps,kappa", [("var-quadratic", 4, 1.0), ("step-linear", 3, 0.0),
                                                  ("diffwave-base-6", None, 0.5), ("var-linear", 2, 0.0)])
def test_full_graph_matches_torch_vocode(tmp_path, schedule, steps, kappa, layout):
    model = _model()
    plan = wavefast.plan_for(model, schedule, steps)
    report = export_onnx(model, plan, tmp_path / "m.onnx", kappa=kappa, layout=layout)
    assert report["parity_error"] <= TOL and report["layout"] == layout
    sampler = Vocoder.from_pretrained(tmp_path / "m.onnx")
    for batch, frames in ((1, 5), (3, 11)):  # other batch sizes and lengths than at export
        mel = _mel(batch, frames)
        expected = wavefast.vocode(model, mel, schedule=plan, kappa=kappa, seed=[4, 5, 6][:batch]).numpy()
        got = sampler(mel.numpy(), seeds=[4, 5, 6][:batch])[0].numpy()
        assert got.shape == (batch, frames * 256)
        assert np.abs(got - expected).max() <= TOL * max(1.0, np.abs(expected).max())


def test_noise_inputs_follow_kappa(tmp_path):
    model = _model()
    plan = wavefast.plan_for(model, "var-quadratic", 4)
    export_onnx(model, plan, tmp_path / "det.onnx", kappa=0.0)
    export_onnx(model, plan, tmp_path / "sto.onnx", kappa=1.0)
    names = lambda p: [i.name for i in ort.InferenceSession(str(p)).get_inputs()]
    assert names(tmp_path / "det.onnx") == ["mel", "x_T"]
    assert names(tmp_path / "sto.onnx") == ["mel", "x_T", "noise"]
    shape = ort.InferenceSession(str(tmp_path / "sto.onnx")).get_inputs()[2].shape
    assert shape[0] == 3  # S - 1 stochastic steps


def test_philsyn_style_and_table_embedding(tmp_path):
    for model in (_model(per_layer=True), _model(embedding="table")):
        plan = wavefast.plan_for(model, "var-linear", 3)
        for layout in ("folded", "reference"):
            assert export_onnx(model, plan, tmp_path / "p.onnx", kappa=1.0, layout=layout)["parity_error"] <= TOL


def test_layout_choice(tmp_path):
    model = _model()  # 4 residual channels: auto picks the reference layout (folded is for >= 64)
    plan = wavefast.plan_for(model, "var-linear", 2)
    assert export_onnx(model, plan, tmp_path / "a.onnx", kappa=0.0)["layout"] == "reference"
    with pytest.raises(WavefastError, match="unknown layout 'fast'; allowed: 'auto', 'folded', 'folded-wide', 'reference'"):
        export_onnx(model, plan, tmp_path / "b.onnx", layout="fast")
    assert not (tmp_path / "b.onnx").exists()


def test_unconditional_graph(tmp_path):
    model = _model(conditional=False)
    plan = wavefast.plan_for(model, "step-quadratic", 4)
    export_onnx(model, plan, tmp_path / "u.onnx", kappa=1.0, layout="folded")
    got = generate_with(OnnxBackend(tmp_path / "u.onnx"), 2, seed=3).numpy()
    expected = wavefast.generate(model, 2, schedule=plan, kappa=1.0, seed=3).numpy()
    assert np.abs(got - expected).max() <= TOL * max(1.0, np.abs(expected).max())


def test_unconditional_graph_of_odd_length_falls_back_to_rows_of_one_sample(tmp_path):
    import dataclasses

    model = _model(conditional=False)
    model.spec = dataclasses.replace(model.spec, segment_length=641)  # rows of 2 need an even length
    plan = wavefast.plan_for(model, "var-linear", 3)
    assert export_onnx(model, plan, tmp_path / "odd.onnx", kappa=0.0, layout="folded")["parity_error"] <= TOL
    got = generate_with(OnnxBackend(tmp_path / "odd.onnx"), 1, seed=2).numpy()
    expected = wavefast.generate(model, 1, schedule=plan, kappa=0.0, seed=2).numpy()
    assert got.shape[-1] == 641 and np.abs(got - expected).max() <= TOL * max(1.0, np.abs(expected).max())


def test_per_step_graph(tmp_path):
    model = _model()
    plan = wavefast.plan_for(model, "var-linear", 3)
    export_onnx(model, plan, tmp_path / "s.onnx", per_step=True)
    session = ort.InferenceSession(str(tmp_path / "s.onnx"))
    x, t, mel = torch.randn(2, 1, 7 * 256), torch.tensor([0.5, 30.25]), _mel(2, 7)
    got = session.run(None, {"x": x.numpy(), "t": t.numpy(), "mel": mel.numpy()})[0]
    with torch.no_grad():
        assert np.abs(got - model(x, t, mel).numpy()).max() <= TOL
    with pytest.raises(WavefastError, match="not a wavefast full sampling graph"):
        OnnxBackend(tmp_path / "s.onnx")


def test_cli_export_and_onnx_backend_with_learned_plan_json(tmp_path, capsys):
    model = _model()
    ckpt = save_native(model, tmp_path / "m.safetensors", dtype=torch.float32)
    plan_file = tmp_path / "learned.json"
    plan_file.write_text(json.dumps({"name": "learned-3", "steps": [40.5, 12.25, 0.0],
                                     "alpha_bar": [float(a) for a in wavefast.LinearBetaSchedule(50, 1e-4, 0.05)
                                                   .alpha_bar(torch.tensor([40.5, 12.25, 0.0], dtype=torch.float64))]}))
    onnx_path = tmp_path / "m.onnx"
    assert main(["export", "onnx", "--checkpoint", str(ckpt), "--schedule", str(plan_file), "--kappa", "0",
                 "--layout", "folded", "-o", str(onnx_path)]) == 0
    assert "parity" in capsys.readouterr().err
    mel_file = tmp_path / "x.npy"
    np.save(mel_file, _mel(1, 6)[0].numpy())
    assert main(["vocode", str(mel_file), "-o", str(tmp_path / "onnx.wav"), "--backend", "onnx",
                 "--onnx", str(onnx_path)]) == 0
    assert main(["vocode", str(mel_file), "-o", str(tmp_path / "torch.wav"), "--checkpoint", str(ckpt),
                 "--schedule", str(plan_file), "--kappa", "0"]) == 0
    import soundfile as sf

    a, _ = sf.read(tmp_path / "onnx.wav")
    b, _ = sf.read(tmp_path / "torch.wav")
    assert np.abs(a - b).max() <= 2 / 32768  # identical up to 16-bit rounding
    capsys.readouterr()
    assert main(["vocode", str(mel_file), "-o", str(tmp_path / "y.wav"), "--backend", "onnx"]) == 2
    assert "needs --onnx" in capsys.readouterr().err


def _counting_runs(backend):
    """Wrap ``backend._run`` to record the (batch, samples) of each graph call."""
    calls, run = [], backend._run
    backend._run = lambda feeds: (calls.append(feeds["x_T"].shape), run(feeds))[1]
    return calls


@pytest.mark.parametrize("layout", ["folded", "reference"])
def test_lengths_input_runs_a_mixed_batch_in_one_call_each_item_as_alone(tmp_path, layout):
    model = _model()
    plan = wavefast.plan_for(model, "var-quadratic", 4)
    report = export_onnx(model, plan, tmp_path / "len.onnx", kappa=1.0, layout=layout, lengths=True)
    assert report["parity_error"] <= TOL and report["inputs"] == ["mel", "x_T", "noise", "lengths"]
    export_onnx(model, plan, tmp_path / "plain.onnx", kappa=1.0, layout=layout)
    mel, lengths, seeds = _mel(3, 13, seed=1), [13, 9, 4], [1, 2, 3]
    mixed = Vocoder.from_pretrained(tmp_path / "len.onnx")
    plain = Vocoder.from_pretrained(tmp_path / "plain.onnx")
    assert mixed.backend.supports_lengths and not plain.backend.supports_lengths
    calls, plain_calls = _counting_runs(mixed.backend), _counting_runs(plain.backend)
    got, _ = mixed(mel.numpy(), lengths=lengths, seeds=seeds)
    by_length, _ = plain(mel.numpy(), lengths=lengths, seeds=seeds)
    assert calls == [(3, 13 * 256)] and len(plain_calls) == 3  # one padded call vs one call per length
    assert float((got - by_length).abs().max()) <= TOL * max(1.0, float(by_length.abs().max()))
    for i, n in enumerate(lengths):  # each item as the torch sampler makes it alone
        alone = wavefast.vocode(model, mel[i:i + 1, :, :n], schedule=plan, kappa=1.0, seed=seeds[i])[0]
        assert float((got[i, :n * 256] - alone).abs().max()) <= TOL * max(1.0, float(alone.abs().max()))
    # the raw graph: zero past each item's end; a padded item's padding does not reach it
    session = ort.InferenceSession(str(tmp_path / "len.onnx"))
    g = np.random.default_rng(0)
    feeds = {"mel": mel.numpy(), "x_T": g.standard_normal((3, 13 * 256), dtype=np.float32),
             "noise": g.standard_normal((3, 3, 13 * 256), dtype=np.float32),
             "lengths": np.array(lengths, dtype=np.int64)}
    audio = session.run(None, feeds)[0]
    assert all(np.all(audio[i, n * 256:] == 0.0) for i, n in enumerate(lengths))
    feeds["mel"] = feeds["mel"].copy()
    feeds["mel"][2, :, 4:] = 50.0  # garbage in item 2's padding
    feeds["x_T"] = feeds["x_T"].copy()
    feeds["x_T"][2, 4 * 256:] = 1e3
    again = session.run(None, feeds)[0]
    assert np.abs(again[2] - audio[2]).max() <= TOL * max(1.0, np.abs(audio[2]).max())


def test_lengths_is_refused_where_it_cannot_apply(tmp_path):
    model = _model()
    plan = wavefast.plan_for(model, "var-linear", 2)
    with pytest.raises(WavefastError, match="--lengths is for the full graph of a mel-conditioned model"):
        export_onnx(model, plan, tmp_path / "s.onnx", per_step=True, lengths=True)
    with pytest.raises(WavefastError, match="--lengths is for the full graph of a mel-conditioned model"):
        export_onnx(_model(conditional=False), plan, tmp_path / "u.onnx", lengths=True)
    assert not (tmp_path / "s.onnx").exists() and not (tmp_path / "u.onnx").exists()
    export_onnx(model, plan, tmp_path / "plain.onnx", kappa=0.0)
    backend = OnnxBackend(tmp_path / "plain.onnx")
    with pytest.raises(WavefastError, match="no lengths input.*re-export with --lengths"):
        backend.run(_mel(2, 5), torch.randn(2, 5 * 256), None, lengths=torch.tensor([5, 3]))


def test_cli_export_with_lengths(tmp_path):
    ckpt = save_native(_model(), tmp_path / "m.safetensors", dtype=torch.float32)
    assert main(["export", "onnx", "--checkpoint", str(ckpt), "--steps", "2", "--kappa", "0", "--lengths",
                 "-o", str(tmp_path / "m.onnx")]) == 0
    assert [i.name for i in ort.InferenceSession(str(tmp_path / "m.onnx")).get_inputs()] == ["mel", "x_T", "lengths"]
