"""Sharded, resumable generation: 1 rank = 2 ranks (gloo), and a killed run completes on re-run."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch

from wavefast.cli import main
from wavefast.models.checkpoints import save_native
from wavefast.models.diffwave import DiffWave
from wavefast.models.spec import DiffusionSpec, DiffWaveConfig, ModelSpec


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    spec = ModelSpec(DiffWaveConfig(8, 8, 4, 2, n_mels=0), DiffusionSpec(200, 1e-4, 0.02), sample_rate=16000,
                     mel_frontend=None, segment_length=4000)
    model = DiffWave(spec)
    with torch.no_grad():
        model.output_conv.weight.normal_(0, 0.3)
    return save_native(model, tmp_path / "m.safetensors", dtype=torch.float32)


def _args(ckpt, out, n=6, steps=4):
    return ["generate", "-n", str(n), "-o", str(out), "--checkpoint", str(ckpt), "--steps", str(steps),
            "--schedule", "var-linear", "--batch-size", "2", "--seed", "100"]


def _read_all(folder, n):
    return [sf.read(folder / f"sample_{i:05d}.wav")[0] for i in range(n)]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    return env


def test_two_ranks_write_the_same_files_as_one(tmp_path, ckpt):
    one = subprocess.run([sys.executable, "-m", "wavefast"] + _args(ckpt, tmp_path / "one"), capture_output=True,
                         text=True, env=_env(), timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "wavefast"] + _args(ckpt, tmp_path / "two")
    result = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for a, b in zip(_read_all(tmp_path / "one", 6), _read_all(tmp_path / "two", 6)):
        assert np.array_equal(a, b)
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["files"]) == 6


def test_killed_run_resumes_without_duplicates_or_gaps(tmp_path, ckpt):
    n = 10
    ref = subprocess.run([sys.executable, "-m", "wavefast"] + _args(ckpt, tmp_path / "ref", n=n, steps=30),
                         capture_output=True, text=True, env=_env(), timeout=300)
    assert ref.returncode == 0, ref.stderr[-2000:]
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "wavefast"] + _args(ckpt, out, n=n, steps=30),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("sample_*.wav"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in out.glob("sample_*.wav")}
    assert 2 <= len(done_before) < n, "the run should have been interrupted midway"
    again = subprocess.run([sys.executable, "-m", "wavefast"] + _args(ckpt, out, n=n, steps=30),
                           capture_output=True, text=True, env=_env(), timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    for name, mtime in done_before.items():  # finished samples were not redone
        assert (out / name).stat().st_mtime_ns == mtime
    assert sorted(p.name for p in out.glob("sample_*.wav")) == [f"sample_{i:05d}.wav" for i in range(n)]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    for a, b in zip(_read_all(tmp_path / "ref", n), _read_all(out, n)):
        assert np.array_equal(a, b)


def test_other_settings_in_the_same_folder_are_refused(tmp_path, ckpt, capsys):
    assert main(_args(ckpt, tmp_path / "o", n=2)) == 0
    capsys.readouterr()
    assert main(_args(ckpt, tmp_path / "o", n=2, steps=5)) == 2
    assert "holds a run with other settings" in capsys.readouterr().err
