"""Published checkpoint layouts load and reproduce the upstream networks' outputs."""

import json
import pickle
import sys
import types

import pytest
import torch

import wavefast
from wavefast.errors import WavefastError
from wavefast.models.checkpoints import detect_layout, load_model, save_native
from wavefast.models.presets import PRESETS

from upstream_reference import LmntDiffWave, PhilsynWaveNet, _randomise, lmnt_params

TOL = 1e-4


def _philsyn_file(tmp_path, conditional, res=8, skip=6, layers=4, cycle=2, T=50, beta_T=0.05, config=True, name="ck.pkl"):
    net = _randomise(PhilsynWaveNet(res, skip, layers, cycle, conditional)).eval()
    opt = torch.optim.Adam(net.parameters(), lr=2e-4)
    for p in net.parameters():  # a real optimiser state, as upstream saves it
        p.grad = torch.zeros_like(p)
    opt.step()
    path = tmp_path / name
    torch.save({"model_state_dict": net.state_dict(), "optimizer_state_dict": opt.state_dict()}, path)
    if config:
        (tmp_path / "config.json").write_text(json.dumps({
            "diffusion_config": {"T": T, "beta_0": 0.0001, "beta_T": beta_T},
            "wavenet_config": {"in_channels": 1, "res_channels": res, "skip_channels": skip, "out_channels": 1,
                               "num_res_layers": layers, "dilation_cycle": cycle, "diffusion_step_embed_dim_in": 128,
                               "diffusion_step_embed_dim_mid": 512, "diffusion_step_embed_dim_out": 512},
            "trainset_config": {"segment_length": 16000, "sampling_rate": 22050 if conditional else 16000}}))
    return net, path


def _lmnt_file(tmp_path, conditional=True, channels=8, layers=4, cycle=2, T=50, params_as=dict):
    net = _randomise(LmntDiffWave(channels, layers, cycle, 80, T, conditional)).eval()
    params = lmnt_params(channels, layers, cycle, 80, T, 0.05, conditional)
    path = tmp_path / "weights.pt"
    torch.save({"step": 1000, "model": net.state_dict(), "optimizer": {"state": {}, "param_groups": []},
                "params": params_as(params), "scaler": {"scale": 65536.0, "_growth_tracker": 10}}, path)
    return net, path


@pytest.mark.parametrize("t", [[0.0, 7.0], [3.37, 48.9]])
def test_philsyn_vocoder_reproduces_upstream(tmp_path, t):
    ref, path = _philsyn_file(tmp_path, conditional=True)
    model = load_model(path)
    assert model.spec.source_layout == "philsyn" and model.spec.n_mels == 80
    x, mel = torch.randn(2, 1, 700), torch.randn(2, 80, 3)
    steps = torch.tensor(t)
    with torch.no_grad():
        expected = ref(x.clone(), steps[:, None], mel)
        got = model(x, steps, mel)
    assert expected.abs().max() > 1e-2  # the comparison is not between two zeros
    assert (got - expected).abs().max() <= TOL


def test_philsyn_in_place_residual_matters(tmp_path):
    """Dropping the in-place quirk must break parity (the test can fail)."""
    ref, path = _philsyn_file(tmp_path, conditional=False)
    model = load_model(path)
    x, steps = torch.randn(1, 1, 300), torch.tensor([11.0])
    with torch.no_grad():
        expected = ref(x.clone(), steps[:, None])
        assert (model(x, steps) - expected).abs().max() <= TOL
        for layer in model.layers:
            layer.residual_includes_step = False
        assert (model(x, steps) - expected).abs().max() > 1e-3


def test_philsyn_unconditional_reproduces_upstream_with_config(tmp_path):
    ref, path = _philsyn_file(tmp_path, conditional=False, T=200, beta_T=0.02)
    model = load_model(path)
    assert model.spec.diffusion.T == 200 and model.spec.arch.dilation_cycle == 2 and not model.spec.conditional
    x, steps = torch.randn(3, 1, 400), torch.tensor([0.0, 99.5, 199.0])
    with torch.no_grad():
        assert (model(x, steps) - ref(x.clone(), steps[:, None])).abs().max() <= TOL


def test_philsyn_sc09_preset_shapes(tmp_path):
    """The full-size SC09 layout (256 x 36, cycle 12) is picked by preset and reproduced."""
    ref, path = _philsyn_file(tmp_path, False, res=256, skip=256, layers=36, cycle=12, config=False)
    model = load_model(path, preset="philsyn-sc09")
    assert model.spec == PRESETS["philsyn-sc09"]
    x, steps = torch.randn(1, 1, 200), torch.tensor([150.25])
    with torch.no_grad():
        assert (model(x, steps) - ref(x.clone(), steps[:, None])).abs().max() <= TOL
    # with no config and a shape that matches exactly one preset, that preset is used
    assert load_model(path).spec.name == "philsyn-sc09"


def test_philsyn_without_config_or_preset_is_refused(tmp_path):
    _, path = _philsyn_file(tmp_path, conditional=False, config=False)
    with pytest.raises(WavefastError, match="dilation cycle"):
        load_model(path)
    with pytest.raises(WavefastError, match="does not fit"):
        load_model(path, preset="philsyn-lj-base")


def test_philsyn_data_parallel_prefix(tmp_path):
    ref, path = _philsyn_file(tmp_path, conditional=False)
    obj = torch.load(path, weights_only=True)
    obj["model_state_dict"] = {f"module.{k}": v for k, v in obj["model_state_dict"].items()}
    torch.save(obj, path)
    x, steps = torch.randn(1, 1, 100), torch.tensor([5.0])
    with torch.no_grad():
        assert (load_model(path)(x, steps) - ref(x.clone(), steps[:, None])).abs().max() <= TOL


@pytest.mark.parametrize("conditional", [True, False])
def test_lmnt_reproduces_upstream(tmp_path, conditional):
    ref, path = _lmnt_file(tmp_path, conditional)
    model = load_model(path)
    assert model.spec.source_layout == "lmnt" and model.spec.diffusion.T == 50
    assert model.spec.mel_frontend == ("lmnt" if conditional else None)
    audio, mel = torch.randn(2, 768), torch.rand(2, 80, 3)
    for t in (torch.tensor([0, 49]), torch.tensor([2.25, 37.8])):
        with torch.no_grad():
            expected = ref(audio, t, mel if conditional else None)
            got = model(audio[:, None], t.float(), mel if conditional else None)
        assert expected.abs().max() > 1e-2
        assert (got - expected).abs().max() <= TOL


def test_lmnt_attrdict_params_load_without_code(tmp_path):
    """Older lmnt files pickle diffwave.params.AttrDict: loaded through a data-only stand-in."""
    module = types.ModuleType("diffwave.params")

    class AttrDict(dict):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.__dict__ = self

    AttrDict.__module__ = "diffwave.params"
    AttrDict.__qualname__ = "AttrDict"
    module.AttrDict = AttrDict
    sys.modules["diffwave"] = types.ModuleType("diffwave")
    sys.modules["diffwave.params"] = module
    try:
        ref, path = _lmnt_file(tmp_path, params_as=AttrDict)
    finally:
        del sys.modules["diffwave"], sys.modules["diffwave.params"]
    model = load_model(path)
    assert model.spec.arch.residual_layers == 4 and model.spec.arch.dilation_cycle == 2
    audio, mel, t = torch.randn(1, 512), torch.rand(1, 80, 2), torch.tensor([12.5])
    with torch.no_grad():
        assert (model(audio[:, None], t, mel) - ref(audio, t, mel)).abs().max() <= TOL


class Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickle_needing_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"model_state_dict": {}, "extra": Exploit()}, path)
    with pytest.raises(WavefastError, match="needs code to load"):
        load_model(path)
    assert "must never run" not in capsys.readouterr().out


def test_unknown_layout_lists_known_ones(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(2)}, path)
    with pytest.raises(WavefastError, match="known layouts: philsyn"):
        load_model(path)
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(WavefastError, match="known layout"):
        load_model(garbage)
    with pytest.raises(WavefastError, match="not found"):
        load_model(tmp_path / "missing.pt")


def test_detect_layout():
    assert detect_layout({"model_state_dict": {}}) == "philsyn"
    assert detect_layout({"model": {}, "params": {}}) == "lmnt"
    assert detect_layout({"residual_layers.0.dilated_conv.weight": 0}) == "lmnt"


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float16, 2e-2)])
def test_native_round_trip(tmp_path, dtype, tol):
    _, path = _lmnt_file(tmp_path)
    model = load_model(path)
    out = save_native(model, tmp_path / "m.safetensors", dtype=dtype)
    again = load_model(out)
    assert again.spec == model.spec
    x, t, mel = torch.randn(1, 1, 512), torch.tensor([3.5]), torch.rand(1, 80, 2)
    with torch.no_grad():
        ref = model(x, t, mel)
        assert (again(x, t, mel) - ref).abs().max() <= tol * max(1.0, ref.abs().max().item())
    with pytest.raises(WavefastError, match="carries its own spec"):
        load_model(out, preset="lmnt-lj")


def test_convert_philsyn_to_native(tmp_path):
    ref, path = _philsyn_file(tmp_path, conditional=True)
    out = wavefast.convert(path, tmp_path / "native.safetensors")
    model = load_model(out)
    assert model.spec.source_layout == "philsyn" and model.spec.arch.per_layer_upsampler
    x, t, mel = torch.randn(1, 1, 512), torch.tensor([20.0]), torch.randn(1, 80, 2)
    with torch.no_grad():
        assert (model(x, t, mel) - ref(x.clone(), t[:, None], mel)).abs().max() <= TOL


def test_safetensors_without_metadata_is_explained(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(WavefastError, match="without wavefast metadata"):
        load_model(path)
