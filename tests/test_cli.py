"""The command line, including every bad input the core issue lists."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from wavefast.cli import main
from wavefast.models.checkpoints import save_native
from wavefast.models.diffwave import DiffWave
from wavefast.models.spec import DiffusionSpec, DiffWaveConfig, ModelSpec


@pytest.fixture
def vocoder_ckpt(tmp_path):
    torch.manual_seed(0)
    spec = ModelSpec(DiffWaveConfig(4, 4, 2, 2, n_mels=80), DiffusionSpec(50, 1e-4, 0.05), sample_rate=22050,
                     mel_frontend="tacotron2", name="tiny-vocoder")
    return save_native(DiffWave(spec), tmp_path / "voc.safetensors")


@pytest.fixture
def uncond_ckpt(tmp_path):
    torch.manual_seed(0)
    spec = ModelSpec(DiffWaveConfig(4, 4, 2, 2, n_mels=0), DiffusionSpec(200, 1e-4, 0.02), sample_rate=16000,
                     mel_frontend=None, segment_length=800, name="tiny-sc09")
    model = DiffWave(spec)
    with torch.no_grad():
        model.output_conv.weight.normal_(0, 0.3)
    return save_native(model, tmp_path / "sc09.safetensors")


@pytest.fixture
def mel_npy(tmp_path):
    path = tmp_path / "utt.npy"
    np.save(path, (np.random.default_rng(0).standard_normal((80, 6)) - 5).astype(np.float32))
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_error(code, err, pattern):
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("wavefast: error:"), err
    assert "Traceback" not in err
    assert pattern in lines[-1], lines[-1]


def test_schedule_json(capsys):
    code, out, _ = run(capsys, "schedule", "--T", 200, "--beta-0", 1e-4, "--beta-T", 0.02, "--kind", "var",
                       "--spacing", "quadratic", "--steps", 10, "--json")
    data = json.loads(out)
    assert code == 0 and len(data["steps"]) == len(data["alpha_bar"]) == 10
    assert data["steps"][0] == pytest.approx(199.0) and data["steps"] == sorted(data["steps"], reverse=True)
    assert data["sigma"][-1] == 0.0


def test_schedule_table_and_checkpoint(capsys, vocoder_ckpt):
    code, out, _ = run(capsys, "schedule", "--checkpoint", vocoder_ckpt, "--kind", "diffwave-base-6", "--kappa", 0)
    assert code == 0 and "S=6 steps on T=50" in out and len(out.strip().splitlines()) == 8


def test_vocode_mel_files_and_wav(capsys, tmp_path, vocoder_ckpt, mel_npy):
    pt = tmp_path / "other.pt"
    torch.save(torch.from_numpy(np.load(mel_npy)), pt)
    out_dir = tmp_path / "out"
    code, _, err = run(capsys, "vocode", mel_npy, pt, "-o", out_dir, "--checkpoint", vocoder_ckpt, "--steps", 3)
    assert code == 0, err
    a, sr = sf.read(out_dir / "utt.wav")
    b, _ = sf.read(out_dir / "other.wav")
    assert sr == 22050 and len(a) == 6 * 256
    assert not np.allclose(a, b)  # item i uses seed + i
    wav = tmp_path / "speech16k.wav"
    sf.write(wav, 0.1 * np.sin(np.arange(8000) / 5.0), 16000)
    code, _, err = run(capsys, "vocode", wav, "-o", tmp_path / "x.wav", "--checkpoint", vocoder_ckpt, "--steps", 2)
    assert code == 0 and "resampling speech16k.wav from 16000 Hz to 22050 Hz" in err
    assert sf.info(tmp_path / "x.wav").samplerate == 22050


def test_generate_is_seed_stable_across_batch_sizes(capsys, tmp_path, uncond_ckpt):
    for bs, folder in ((2, "a"), (1, "b")):
        code, _, err = run(capsys, "generate", "-n", 3, "-o", tmp_path / folder, "--checkpoint", uncond_ckpt,
                           "--steps", 4, "--batch-size", bs, "--schedule", "step-linear")
        assert code == 0, err
    for i in range(3):
        a, sr = sf.read(tmp_path / "a" / f"sample_{i:05d}.wav")
        b, _ = sf.read(tmp_path / "b" / f"sample_{i:05d}.wav")
        # equal up to float rounding between batch sizes: at most 1 LSB of 16-bit audio (documented)
        assert sr == 16000 and len(a) == 800 and np.abs(a - b).max() <= 1 / 32768 + 1e-12


def test_convert_command(capsys, tmp_path):
    from upstream_reference import LmntDiffWave, _randomise, lmnt_params

    net = _randomise(LmntDiffWave(8, 2, 2, 80, 50))
    src = tmp_path / "lmnt.pt"
    torch.save({"step": 1, "model": net.state_dict(), "params": lmnt_params(8, 2, 2, 80, 50, 0.05)}, src)
    code, _, err = run(capsys, "convert", src, tmp_path / "n.safetensors")
    assert code == 0 and (tmp_path / "n.safetensors").is_file(), err


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "wavefast", "schedule", "--T", "50", "--beta-0", "1e-4",
                             "--beta-T", "0.05", "--steps", "3", "--json"], capture_output=True, text=True)
    assert result.returncode == 0 and len(json.loads(result.stdout)["steps"]) == 3


# --- bad input: one line on stderr, status 2, nothing written -----------------------------------
def test_bad_inputs(capsys, tmp_path, vocoder_ckpt, mel_npy):
    out = tmp_path / "never.wav"
    ck = ["--checkpoint", vocoder_ckpt]

    cases = []
    cases.append((["vocode", tmp_path / "missing.npy", "-o", out] + ck, "file not found"))
    cases.append((["vocode", tmp_path, "-o", out] + ck, "not a file"))
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEjunk")
    cases.append((["vocode", corrupt, "-o", out] + ck, "cannot read audio file"))
    cases.append((["vocode", mel_npy, "-o", out, "--checkpoint", tmp_path / "nope.pt"], "checkpoint not found"))
    unknown = tmp_path / "unknown.pt"
    torch.save({"foo.weight": torch.zeros(1)}, unknown)
    cases.append((["vocode", mel_npy, "-o", out, "--checkpoint", unknown], "known layouts: philsyn"))

    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"model": Exploit()}, evil)
    cases.append((["vocode", mel_npy, "-o", out, "--checkpoint", evil], "needs code to load"))
    bins = tmp_path / "bins.npy"
    np.save(bins, np.full((64, 5), -5.0, np.float32))
    cases.append((["vocode", bins, "-o", out] + ck, "has 64 mel bins but the checkpoint expects 80"))
    lmnt_like = tmp_path / "lmnt.npy"
    np.save(lmnt_like, np.random.default_rng(0).uniform(0, 1, (80, 5)).astype(np.float32))
    cases.append((["vocode", lmnt_like, "-o", out] + ck, "looks like a 'lmnt' mel"))
    nan = tmp_path / "nan.npy"
    arr = np.full((80, 5), -5.0, np.float32)
    arr[3, 2] = np.nan
    np.save(nan, arr)
    cases.append((["vocode", nan, "-o", out] + ck, "NaN or Inf"))
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((80, 0), np.float32))
    cases.append((["vocode", empty, "-o", out] + ck, "no frames"))
    silent = tmp_path / "empty.wav"
    sf.write(silent, np.zeros(0), 22050)
    cases.append((["vocode", silent, "-o", out] + ck, "empty"))
    cases.append((["vocode", mel_npy, "-o", out, "--steps", 0] + ck, "steps must be between 1 and T=50"))
    cases.append((["vocode", mel_npy, "-o", out, "--steps", 51] + ck, "steps must be between 1 and T=50"))
    cases.append((["vocode", mel_npy, "-o", out, "--kappa", 1.5] + ck, "kappa must lie in [0, 1]"))
    cases.append((["vocode", mel_npy, "-o", out, "--schedule", "turbo"] + ck, "unknown schedule 'turbo'"))
    cases.append((["vocode", mel_npy, "-o", out, "--schedule", "wavegrad-6"] + ck, "outside the checkpoint's trained range"))
    cases.append((["schedule", "--T", 50], "give --checkpoint, or all of"))
    cases.append((["generate", "-n", 2, "-o", tmp_path / "g"] + ck, "mel-conditioned"))
    for argv, pattern in cases:
        code, _, err = run(capsys, *argv)
        assert_clean_error(code, err, pattern)
        assert "pwned" not in err
    assert not out.exists()
    assert not (tmp_path / "g").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".never")]  # no temp files left behind


def test_multi_input_to_a_file_is_refused(capsys, tmp_path, vocoder_ckpt, mel_npy):
    code, _, err = run(capsys, "vocode", mel_npy, mel_npy, "-o", tmp_path / "one.wav", "--checkpoint", vocoder_ckpt)
    assert_clean_error(code, err, "need an output folder")


def test_failure_midway_leaves_no_partial_output(capsys, tmp_path, vocoder_ckpt, mel_npy):
    """Inputs are all checked before the first write: a bad second input writes nothing."""
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((12, 3), np.float32))
    code, _, err = run(capsys, "vocode", mel_npy, bad, "-o", tmp_path / "out", "--checkpoint", vocoder_ckpt)
    assert_clean_error(code, err, "12 mel bins")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
