"""Sampler sweeps write a resumable table and plots; the CLI wires them up."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from wavefast.cli import main
from wavefast.eval.sweep import configurations, vocoder_sweep
from wavefast.models.checkpoints import save_native
from wavefast.models.diffwave import DiffWave
from wavefast.models.spec import DiffusionSpec, DiffWaveConfig, ModelSpec


def _vocoder():
    torch.manual_seed(0)
    model = DiffWave(ModelSpec(DiffWaveConfig(4, 4, 2, 2, n_mels=80), DiffusionSpec(50, 1e-4, 0.05),
                               mel_frontend="tacotron2")).eval()
    with torch.no_grad():
        model.output_conv.weight.normal_(0, 0.2)
    return model


def test_configurations_order():
    configs = configurations(["var-linear"], [2, 4], [0.0, 1.0], presets=["diffwave-base-6"])
    assert configs[0] == ("ddpm", None, 1.0)
    assert ("diffwave-base-6", None, 0.0) in configs and ("var-linear", 4, 1.0) in configs
    assert len(configs) == 1 + 2 + 4


def test_vocoder_sweep_table_and_resume(tmp_path):
    model = _vocoder()
    ref = (0.1 * np.sin(np.arange(4096) / 7.0)).astype(np.float32)
    configs = configurations(["var-quadratic", "step-quadratic"], [2, 30, 60], [0.0], full_chain=False)
    rows = vocoder_sweep(model, [("u", ref)], tmp_path, configs, mos=False)
    # S=60 on T=50 has no plan: skipped, not fatal (step-quadratic at S=30 repeats steps and runs, as FastDPM's does)
    assert [(r["schedule"], r["S"]) for r in rows] == [("var-quadratic", 2), ("var-quadratic", 30),
                                                       ("step-quadratic", 2), ("step-quadratic", 30)]
    assert all(r["log_mel_l1"] > 0 and r["wall_s"] > 0 for r in rows)
    table = (tmp_path / "sweep.md").read_text()
    assert "| var-quadratic | 30 | 0 |" in table
    assert (tmp_path / "quality_vs_steps.png").stat().st_size > 1000
    data = json.loads((tmp_path / "sweep.json").read_text())
    data["rows"][0]["log_mel_l1"] = -1.0  # a finished configuration is not recomputed
    (tmp_path / "sweep.json").write_text(json.dumps(data))
    again = vocoder_sweep(model, [("u", ref)], tmp_path, configs, mos=False)
    assert again[0]["log_mel_l1"] == -1.0


def test_sweep_cli(tmp_path, capsys):
    ckpt = save_native(_vocoder(), tmp_path / "v.safetensors", dtype=torch.float32)
    refs = tmp_path / "refs"
    refs.mkdir()
    sf.write(refs / "a.wav", 0.1 * np.sin(np.arange(6000) / 9.0), 22050)
    code = main(["sweep", "vocoder", "--checkpoint", str(ckpt), "--references", str(refs), "-o", str(tmp_path / "s"),
                 "--steps", "2", "--kappas", "1", "--schedules", "var-linear", "--no-mos", "--no-full-chain"])
    assert code == 0 and "| var-linear | 2 | 1 |" in capsys.readouterr().out
    assert main(["sweep", "sc09", "--checkpoint", str(ckpt), "-o", str(tmp_path / "x")]) == 2
    assert "is a vocoder" in capsys.readouterr().err


def test_a_sweep_resumed_with_other_configurations_keeps_the_earlier_rows_and_refuses_another_protocol(tmp_path):
    from wavefast.errors import WavefastError

    model = _vocoder()
    ref = (0.1 * np.sin(np.arange(4096) / 7.0)).astype(np.float32)
    first = configurations(["var-quadratic"], [2], [0.0], full_chain=False)
    second = configurations(["step-linear"], [3], [0.0], full_chain=False)
    vocoder_sweep(model, [("u", ref)], tmp_path, first, mos=False)
    rows = vocoder_sweep(model, [("u", ref)], tmp_path, second, mos=False)
    assert [r["key"] for r in rows] == ["step-linear|3|0"]  # this run's rows
    saved = json.loads((tmp_path / "sweep.json").read_text())["rows"]
    assert [r["key"] for r in saved] == ["step-linear|3|0", "var-quadratic|2|0"]  # the earlier row is kept
    assert "| var-quadratic | 2 | 0 |" in (tmp_path / "sweep.md").read_text()
    before = (tmp_path / "sweep.json").read_text()
    with pytest.raises(WavefastError, match="holds a sweep of another protocol .*seed 0 there, 1 now"):
        vocoder_sweep(model, [("u", ref)], tmp_path, first, mos=False, seed=1)
    assert (tmp_path / "sweep.json").read_text() == before
