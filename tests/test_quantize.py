"""Opt-in int8 export: which convolutions are quantised, that the graph still vocodes, and its refusals."""

import numpy as np
import pytest
import torch

import wavefast
from wavefast.cli import main
from wavefast.errors import WavefastError
from wavefast.models.checkpoints import save_native

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")
from wavefast.runtime.onnx_export import export_onnx  # noqa: E402
from wavefast.runtime.quantize import quantize_graph, snr_db, stack_convolutions  # noqa: E402
from wavefast.vocoder import Vocoder  # noqa: E402
from tiny_diffwave import random_diffwave  # noqa: E402


def _mels(count, frames, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [-11.0 + 12.0 * torch.rand(80, frames, generator=g) for _ in range(count)]


def _constants(proto) -> dict:
    """name -> array of the graph's initializers and Constant outputs (the convolutions' weights)."""
    from onnx import numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}
    values.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in proto.graph.node
                   if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    return values


def _quantised_convs(path) -> list:
    """Names of the Conv nodes whose weight comes through a DequantizeLinear (QDQ int8)."""
    proto = onnx.load(str(path))
    dequantised = {n.output[0] for n in proto.graph.node if n.op_type == "DequantizeLinear"}
    return [n.name for n in proto.graph.node if n.op_type == "Conv" and n.input[1] in dequantised]


@pytest.mark.parametrize("layout", ["folded", "reference"])
def test_int8_quantises_the_residual_layers_convolutions_and_still_vocodes(tmp_path, layout):
    layers, steps = 3, 2
    model = random_diffwave(residual=8, skip=8, layers=layers, cycle=3)
    plan = wavefast.plan_for(model, "var-quadratic", steps)
    fp32 = tmp_path / "fp32.onnx"
    export_onnx(model, plan, fp32, kappa=0.0, layout=layout)
    report = quantize_graph(fp32, tmp_path / "int8.onnx", _mels(2, 12))
    # per step: the input conv, filter + gate (one conv each folded, one C -> 2C conv in the reference layout),
    # the skip half (folded: its own conv; reference: the out_proj does residual and skip), the residual convs of
    # all but the last layer (folded), the identity adding the first step term (folded), the skip and output convs
    per_step = 1 + 1 + 3 * layers + (layers - 1) + 2 if layout == "folded" else 1 + 2 * layers + 2
    assert report["convolutions"] == steps * per_step
    assert len(_quantised_convs(tmp_path / "int8.onnx")) == steps * per_step
    assert report["calibration_items"] == 2 and report["snr_db"] > 15.0
    int8, ref = Vocoder.from_pretrained(tmp_path / "int8.onnx"), Vocoder.from_pretrained(fp32)
    assert int8.backend.plan.steps == ref.backend.plan.steps  # the metadata travelled
    mel = _mels(1, 9, seed=5)[0][None]  # not a calibration mel, another length
    a, b = int8(mel, seeds=3)[0].numpy(), ref(mel, seeds=3)[0].numpy()
    assert 12.0 < snr_db(b, a) < 80.0  # close to fp32, and really quantised (not the fp32 graph copied)


def test_the_conditioner_is_never_chosen_and_every_dilated_convolution_is(tmp_path):
    model = random_diffwave(residual=8, skip=8, layers=2, cycle=2)
    plan = wavefast.plan_for(model, "var-quadratic", 3)
    export_onnx(model, plan, tmp_path / "g.onnx", kappa=0.0, layout="folded")
    proto = onnx.load(str(tmp_path / "g.onnx"))
    values = _constants(proto)
    chosen = set(stack_convolutions(proto))
    weights = {n.name: values[n.input[1]] for n in proto.graph.node if n.op_type == "Conv"}
    conditioner = [name for name, w in weights.items() if w.shape[1] == 80]  # reads the upsampled mel
    dilated = [name for name, w in weights.items() if w.shape[2] == 3]
    assert len(conditioner) == 2 * 2 and not chosen & set(conditioner)  # filter and gate halves of 2 layers
    assert len(dilated) == 3 * 2 * 2 and set(dilated) <= chosen  # 3 steps x 2 layers x (filter, gate)
    assert len(chosen) == len(weights) - len(conditioner)


def test_quantize_refuses_an_int8_graph_and_an_unconditional_one(tmp_path):
    model = random_diffwave(residual=8, skip=8)
    plan = wavefast.plan_for(model, "var-quadratic", 2)
    export_onnx(model, plan, tmp_path / "fp32.onnx", kappa=0.0, layout="folded")
    quantize_graph(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", _mels(1, 8))
    with pytest.raises(WavefastError, match="already int8"):
        quantize_graph(tmp_path / "int8.onnx", tmp_path / "again.onnx", _mels(1, 8))
    assert not (tmp_path / "again.onnx").exists()
    digits = random_diffwave(conditional=False)
    export_onnx(digits, wavefast.plan_for(digits, "var-quadratic", 2), tmp_path / "u.onnx", kappa=0.0)
    with pytest.raises(WavefastError, match="vocoder graphs"):
        quantize_graph(tmp_path / "u.onnx", tmp_path / "u8.onnx", _mels(1, 8))


def test_cli_int8_export_and_its_errors(tmp_path, capsys):
    ckpt = save_native(random_diffwave(residual=8, skip=8), tmp_path / "m.safetensors", dtype=torch.float32)
    mel_file = tmp_path / "calib.npy"
    np.save(mel_file, _mels(1, 10)[0].numpy())
    out = tmp_path / "m8.onnx"
    assert main(["export", "onnx", "--checkpoint", str(ckpt), "--steps", "2", "--kappa", "0", "--int8",
                 "--calibration", str(mel_file), "-o", str(out)]) == 0
    assert "dB SNR vs fp32" in capsys.readouterr().err and _quantised_convs(out)
    assert main(["vocode", str(mel_file), "--onnx", str(out), "-o", str(tmp_path / "y.wav")]) == 0
    assert "onnx int8," in capsys.readouterr().err
    for extra, message in ((["--calibration", str(mel_file)], "is for --int8"),
                           (["--int8", "--per-step"], "for the full graph"),
                           (["--int8", "--calibration", str(tmp_path / "missing.npy")], "calibration file not found")):
        capsys.readouterr()
        assert main(["export", "onnx", "--checkpoint", str(ckpt), "-o", str(tmp_path / "bad.onnx")] + extra) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "bad.onnx").exists()
