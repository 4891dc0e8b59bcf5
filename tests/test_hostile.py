"""Hostile input: no checkpoint can change the process, every bad input is one clear line, nothing is lost.

Part 1 crafts pickles that attack the unpickler (BUILD on allowed globals, ``__defaults__``,
``__dict__``, REDUCE to allowed callables with hostile arguments) and checks that loading them
is refused *and* that the process is unchanged afterwards (the allowed functions keep their
attributes; a plain ``torch.load`` still returns the right tensor).

Part 2 runs every command over a corpus of bad files (truncated, wrong type, wrong shape, NaN,
huge, empty, lying metadata) and asserts for each case: non-zero exit, exactly one
``wavefast: error:`` line, no traceback, no output or temporary file left, inputs unchanged.
"""

import collections
import hashlib
import io
import json
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from wavefast.cli import main
from wavefast.errors import WavefastError
from wavefast.models.checkpoints import load_model, safe_torch_load, save_native
from wavefast.models.diffwave import DiffWave
from wavefast.models.spec import DiffusionSpec, DiffWaveConfig, ModelSpec

# --- part 1: crafted pickles ------------------------------------------------------------------------


def _torch_zip(path: Path, data_pkl: bytes) -> Path:
    """A torch zip checkpoint (as torch.save writes it) whose data.pkl is replaced by ``data_pkl``."""
    buffer = io.BytesIO()
    torch.save({"x": torch.ones(2)}, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for name in source.namelist():
            out.writestr(name, data_pkl if name.endswith("/data.pkl") else source.read(name))
    return path


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _unicode(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


# An AttrDict first, so torch's unpickler refuses it and the data-only fallback reads the rest.
ATTRDICT = _global("diffwave.params", "AttrDict") + b")\x81" + b"0"  # NEWOBJ, then POP
REBUILD = _global("torch._utils", "_rebuild_tensor_v2")


def _payloads():
    neg = _global("builtins", "tuple")  # never allowed: any GLOBAL outside the list must be refused
    return {
        # BUILD with a slot state on an allowed function: setattr(func, "__defaults__", ...)
        "build-defaults": b"\x80\x02" + ATTRDICT + REBUILD + b"N}" + _unicode("__defaults__") + b")s\x86b.",
        # BUILD with a dict state on an allowed function: func.__dict__.update(...)
        "build-dict": b"\x80\x02" + ATTRDICT + REBUILD + b"}" + _unicode("__dict__") + b"}s" + b"b.",
        # SETITEM on an allowed global (a class)
        "setitem-global": b"\x80\x02" + ATTRDICT + _global("collections", "OrderedDict") + _unicode("k") + b"K\x01s.",
        # REDUCE to an allowed callable with hostile arguments (not a storage, absurd sizes)
        "reduce-hostile-args": b"\x80\x02" + ATTRDICT + REBUILD + b"(" + _unicode("not a storage")
                               + b"J\x00\x00\x00\x7f" + b"t" + b"R.",
        # a global off the list
        "other-global": b"\x80\x02" + ATTRDICT + neg + b")R.",
        # INST / OBJ opcodes
        "obj-opcode": b"\x80\x02" + ATTRDICT + b"(" + _global("collections", "OrderedDict") + b"o.",
    }


def _process_fingerprint():
    f = torch._utils._rebuild_tensor_v2
    return (f.__defaults__, dict(f.__dict__), f.__code__.co_code, dict(torch._utils._rebuild_parameter.__dict__),
            sorted(vars(collections.OrderedDict)))


@pytest.mark.parametrize("name", sorted(_payloads()))
def test_crafted_pickles_are_refused_and_change_nothing(tmp_path, name):
    reference = tmp_path / "ref.pt"
    torch.save({"w": torch.arange(4.0)}, reference)
    before = _process_fingerprint()
    path = _torch_zip(tmp_path / f"{name}.pt", _payloads()[name])
    with pytest.raises(WavefastError) as caught:
        safe_torch_load(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
    with pytest.raises(WavefastError):
        load_model(path)
    assert _process_fingerprint() == before
    assert torch.equal(torch.load(reference, weights_only=True)["w"], torch.arange(4.0))  # nothing poisoned


def test_code_pickles_never_run(tmp_path, capsys):
    class Exploit:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pt"
    torch.save({"model": Exploit(), "params": {}}, path)
    with pytest.raises(WavefastError, match="needs code to load"):
        safe_torch_load(path)
    assert "this must never run" not in capsys.readouterr().out


# --- part 2: every command over a corpus of bad files -----------------------------------------------
def _tiny_vocoder() -> DiffWave:
    torch.manual_seed(0)
    spec = ModelSpec(DiffWaveConfig(4, 4, 2, 2, n_mels=80), DiffusionSpec(50, 1e-4, 0.05), sample_rate=22050,
                     mel_frontend="tacotron2", name="tiny")
    return DiffWave(spec)


def _safetensors_with(path: Path, tensors: dict, metadata: dict) -> Path:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=metadata)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    good_ckpt = save_native(_tiny_vocoder(), d / "good.safetensors", dtype=torch.float32)
    good_mel = d / "good.npy"
    np.save(good_mel, (np.random.default_rng(0).standard_normal((80, 6)) - 5).astype(np.float32))
    bad = {}
    # audio
    sf.write(d / "ok.wav", np.zeros(4000, np.float32), 22050)
    raw = (d / "ok.wav").read_bytes()
    (d / "truncated.wav").write_bytes(raw[: len(raw) // 2])
    bad["truncated.wav"] = d / "truncated.wav"
    (d / "text.wav").write_text("hello, not audio")
    bad["text.wav"] = d / "text.wav"
    sf.write(d / "nan.wav", np.full(4000, np.nan, np.float32), 22050, subtype="FLOAT")
    bad["nan.wav"] = d / "nan.wav"
    sf.write(d / "short.wav", np.zeros(100, np.float32), 22050)
    bad["short.wav"] = d / "short.wav"
    # mels
    for suffix in (".wav", ".npy", ".pt", ".safetensors", ".json", ".onnx"):
        (d / f"empty{suffix}").write_bytes(b"")
        bad[f"empty{suffix}"] = d / f"empty{suffix}"
    np.save(d / "strings.npy", np.array(["a", "b"]))
    bad["strings.npy"] = d / "strings.npy"
    np.save(d / "shape4d.npy", np.zeros((3, 80, 5, 2), np.float32))
    bad["shape4d.npy"] = d / "shape4d.npy"
    np.save(d / "transposed.npy", np.full((6, 80), -5.0, np.float32))
    bad["transposed.npy"] = d / "transposed.npy"
    arr = np.full((80, 6), -5.0, np.float32)
    arr[0, 0] = np.inf
    np.save(d / "inf.npy", arr)
    bad["inf.npy"] = d / "inf.npy"
    np.save(d / "complex.npy", np.full((80, 6), -5 + 1j, np.complex64))
    bad["complex.npy"] = d / "complex.npy"
    header = b"\x93NUMPY\x01\x00" + b"{'descr': '<f4', 'fortran_order': False, 'shape': (80, 1000000000), }"
    header += b" " * (118 - len(header)) + b"\n"
    (d / "huge.npy").write_bytes(header + b"\x00" * 64)
    bad["huge.npy"] = d / "huge.npy"
    torch.save({"not": "a tensor"}, d / "dict.pt")
    bad["dict.pt"] = d / "dict.pt"
    # checkpoints with lying or broken metadata
    state = {k: v.float() for k, v in _tiny_vocoder().state_dict().items()}
    spec = json.loads(_tiny_vocoder().spec.to_json())
    _safetensors_with(d / "nospec.safetensors", state, {"format": "x"})
    bad["nospec.safetensors"] = d / "nospec.safetensors"
    _safetensors_with(d / "badjson.safetensors", state, {"wavefast_spec": "{not json"})
    bad["badjson.safetensors"] = d / "badjson.safetensors"
    lying = dict(spec, arch=dict(spec["arch"], residual_channels=64, skip_channels=64))
    _safetensors_with(d / "lying.safetensors", state, {"wavefast_spec": json.dumps(lying)})
    bad["lying.safetensors"] = d / "lying.safetensors"
    wrongtype = dict(spec, arch=dict(spec["arch"], residual_layers="two"))
    _safetensors_with(d / "wrongtype.safetensors", state, {"wavefast_spec": json.dumps(wrongtype)})
    bad["wrongtype.safetensors"] = d / "wrongtype.safetensors"
    hop = dict(spec, hop_length=300)
    _safetensors_with(d / "hop.safetensors", state, {"wavefast_spec": json.dumps(hop)})
    bad["hop.safetensors"] = d / "hop.safetensors"
    _safetensors_with(d / "int64.safetensors", {k: v.long() for k, v in state.items()},
                      {"wavefast_spec": json.dumps(spec)})
    bad["int64.safetensors"] = d / "int64.safetensors"
    nan_state = {k: v.clone() for k, v in state.items()}
    nan_state["input_conv.weight"][0] = float("nan")
    _safetensors_with(d / "nanweights.safetensors", nan_state, {"wavefast_spec": json.dumps(spec)})
    bad["nanweights.safetensors"] = d / "nanweights.safetensors"
    torch.save({"model": {"residual_layers.0.dilated_conv.weight": torch.zeros(1)}, "params": {}}, d / "lmnt.pt")
    bad["lmnt-missing-keys.pt"] = d / "lmnt.pt"
    torch.save({"model_state_dict": {"residual_layer.residual_blocks.0.fc_t.weight": "oops"}}, d / "philsyn.pt")
    bad["philsyn-wrong-types.pt"] = d / "philsyn.pt"
    (d / "random.onnx").write_bytes(np.random.default_rng(1).bytes(300))
    bad["random.onnx"] = d / "random.onnx"
    # plans
    for name, data in {"plan-strings": {"steps": "abc"}, "plan-nan": {"steps": [float("nan"), 1.0]},
                       "plan-increasing": {"steps": [1.0, 10.0]}, "plan-negative-beta": {"betas": [-0.1, 0.2]},
                       "plan-list": [1, 2], "plan-ggdm": {"steps": [40.0, 0.0], "info": {"ggdm": {"scale_x": "x"}}},
                       "plan-negative-sigma": {"steps": [40.0, 0.0], "info": {"ggdm": {
                           "scale_x": [1.0, 1.0], "eps_weights": [[0.1], [0.0, 0.1]], "sigma": [-0.1, 0.0]}}},
                       "plan-bool": {"steps": [True, False]}}.items():
        (d / f"{name}.json").write_text(json.dumps(data))
        bad[f"{name}.json"] = d / f"{name}.json"
    (d / "plan-broken.json").write_text("{")
    bad["plan-broken.json"] = d / "plan-broken.json"
    return {"dir": d, "ckpt": good_ckpt, "mel": good_mel, "bad": bad}


def _snapshot(paths):
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths if Path(p).is_file()}


def _run_case(capsys, argv, out_dir: Path, inputs):
    before = _snapshot(inputs)
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0, (argv, err)
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("wavefast: error:"), (argv, err)
    assert len(lines[0]) <= 700, lines[0]
    leftovers = [p.name for p in out_dir.rglob("*") if p.is_file()]
    assert not leftovers, (argv, leftovers)
    assert _snapshot(inputs) == before, argv
    return lines[0]


INPUT_CASES = ["truncated.wav", "text.wav", "nan.wav", "short.wav", "empty.wav", "empty.npy", "empty.pt",
               "strings.npy", "shape4d.npy", "transposed.npy", "inf.npy", "complex.npy", "huge.npy", "dict.pt"]
CHECKPOINT_CASES = ["empty.safetensors", "empty.pt", "nospec.safetensors", "badjson.safetensors",
                    "lying.safetensors", "wrongtype.safetensors", "hop.safetensors", "int64.safetensors",
                    "nanweights.safetensors", "lmnt-missing-keys.pt", "philsyn-wrong-types.pt", "dict.pt",
                    "text.wav"]
PLAN_CASES = ["plan-strings.json", "plan-nan.json", "plan-increasing.json", "plan-negative-beta.json",
              "plan-list.json", "plan-ggdm.json", "plan-negative-sigma.json", "plan-bool.json", "plan-broken.json", "empty.json"]


@pytest.mark.parametrize("case", INPUT_CASES)
def test_vocode_refuses_bad_inputs(capsys, tmp_path, corpus, case):
    bad = corpus["bad"][case]
    _run_case(capsys, ["vocode", bad, "-o", tmp_path / "out.wav", "--checkpoint", corpus["ckpt"]], tmp_path, [bad])


@pytest.mark.parametrize("case", CHECKPOINT_CASES)
@pytest.mark.parametrize("command", ["vocode", "generate", "export", "convert", "schedule"])
def test_commands_refuse_bad_checkpoints(capsys, tmp_path, corpus, case, command):
    bad = corpus["bad"][case]
    before = _process_fingerprint()
    argv = {"vocode": ["vocode", corpus["mel"], "-o", tmp_path / "out.wav", "--checkpoint", bad],
            "generate": ["generate", "-n", 2, "-o", tmp_path / "gen", "--checkpoint", bad],
            "export": ["export", "onnx", "-o", tmp_path / "m.onnx", "--checkpoint", bad],
            "convert": ["convert", bad, tmp_path / "c.safetensors"],
            "schedule": ["schedule", "--checkpoint", bad]}[command]
    _run_case(capsys, argv, tmp_path, [bad, corpus["mel"]])
    assert _process_fingerprint() == before


@pytest.mark.parametrize("case", PLAN_CASES)
@pytest.mark.parametrize("command", ["vocode", "schedule"])
def test_commands_refuse_bad_plans(capsys, tmp_path, corpus, case, command):
    bad = corpus["bad"][case]
    argv = {"vocode": ["vocode", corpus["mel"], "-o", tmp_path / "out.wav", "--checkpoint", corpus["ckpt"],
                       "--plan", bad],
            "schedule": ["schedule", "--T", 50, "--beta-0", 1e-4, "--beta-T", 0.05, "--kind", bad]}[command]
    _run_case(capsys, argv, tmp_path, [bad])


@pytest.mark.parametrize("case", PLAN_CASES[:4])
def test_clip_range_on_bad_plans(capsys, tmp_path, corpus, case):
    bad = corpus["bad"][case]
    _run_case(capsys, ["vocode", corpus["mel"], "-o", tmp_path / "out.wav", "--checkpoint", corpus["ckpt"],
                       "--plan", bad, "--clip-range"], tmp_path, [bad])


@pytest.mark.parametrize("argv_tail", [["--seed", str(2 ** 70)], ["--seed", "-1"], ["--kappa", "nan"],
                                       ["--steps", "0"], ["--device", "cuda:7"], ["--device", "tpu"],
                                       ["--dtype", "float16", "--device", "cpu"], ["--chunk-seconds", "0"],
                                       ["--threads", "-3", "--backend", "onnx", "--onnx", "x.onnx"]])
def test_bad_option_values(capsys, tmp_path, corpus, argv_tail):
    _run_case(capsys, ["vocode", corpus["mel"], "-o", tmp_path / "out.wav", "--checkpoint", corpus["ckpt"]]
              + argv_tail, tmp_path, [corpus["mel"]])


def test_onnx_file_that_is_not_a_graph(capsys, tmp_path, corpus):
    pytest.importorskip("onnxruntime")
    for case in ("random.onnx", "empty.onnx"):
        bad = corpus["bad"][case]
        _run_case(capsys, ["vocode", corpus["mel"], "-o", tmp_path / "out.wav", "--onnx", bad], tmp_path, [bad])


def test_output_is_never_an_input(capsys, tmp_path, corpus):
    wav = tmp_path / "in.wav"
    sf.write(wav, np.zeros(4000, np.float32), 22050)
    ckpt = tmp_path / "w.safetensors"
    ckpt.write_bytes(Path(corpus["ckpt"]).read_bytes())
    link = tmp_path / "link.wav"
    link.symlink_to(wav)
    before = _snapshot([wav, ckpt])
    for argv in (["vocode", wav, "-o", wav, "--checkpoint", ckpt], ["vocode", wav, "-o", link, "--checkpoint", ckpt],
                 ["convert", ckpt, ckpt], ["vocode", wav, "-o", tmp_path / "x.mp3", "--checkpoint", ckpt],
                 ["vocode", wav, "-o", tmp_path, "--checkpoint", ckpt]):
        code = main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("wavefast: error:") and "Traceback" not in err, (argv, err)
    assert _snapshot([wav, ckpt]) == before and not (tmp_path / "x.mp3").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "link.wav", "w.safetensors"]


def test_generate_resume_redoes_bad_samples_and_refuses_bad_manifest(capsys, tmp_path):
    torch.manual_seed(0)
    spec = ModelSpec(DiffWaveConfig(4, 4, 2, 2, n_mels=0), DiffusionSpec(50, 1e-4, 0.05), sample_rate=16000,
                     mel_frontend=None, segment_length=800)
    ckpt = save_native(DiffWave(spec), tmp_path / "u.safetensors", dtype=torch.float32)
    out = tmp_path / "gen"
    argv = ["generate", "-n", 3, "-o", out, "--checkpoint", ckpt, "--steps", 2, "--batch-size", 1]
    assert main([str(a) for a in argv]) == 0
    good = (out / "sample_00001.wav").read_bytes()
    (out / "sample_00001.wav").write_text("abc")  # a 3-byte text file named like a finished sample
    sf.write(out / "sample_00002.wav", np.zeros(10, np.float32), 8000)  # wrong rate and length
    assert main([str(a) for a in argv]) == 0
    assert (out / "sample_00001.wav").read_bytes() == good
    assert sf.info(str(out / "sample_00002.wav")).frames == 800
    (out / "manifest.json").write_text("[1, 2")
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    assert "not a wavefast generation manifest" in capsys.readouterr().err


def test_train_resume_with_a_bad_run_config(capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"")
    (run / "config.json").write_text('{"config": {"steps": "many"}}')
    code = main(["train", "--out", str(run), "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("wavefast: error:") == 1 and "Traceback" not in err, err


def test_internal_errors_are_one_line_and_debug_shows_the_traceback(capsys, monkeypatch, corpus, tmp_path):
    import wavefast.cli as cli

    def boom(args):
        raise KeyError("an internal bug")

    monkeypatch.setattr(cli, "cmd_schedule", boom)
    argv = ["schedule", "--T", "50", "--beta-0", "1e-4", "--beta-T", "0.05"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error (KeyError" in err and "--debug" in err
    assert main(["--debug"] + argv) == 1
    assert "Traceback" in capsys.readouterr().err


def test_closed_pipe_is_not_an_error(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(f"{sys.executable} -m wavefast schedule --T 200 --beta-0 1e-4 --beta-T 0.02 --kind var "
                          "--steps 150 --json | head -c 10", shell=True, capture_output=True, text=True)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_long_messages_are_capped():
    from wavefast.errors import short

    assert len(short("x" * 10_000_000)) <= 600
