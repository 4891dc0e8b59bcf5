"""Vocoder metrics against ground truth, and ``wavefast eval vocoder``."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wavefast.errors import WavefastError
from wavefast.eval import cli
from wavefast.eval import vocoder_metrics as V

LJ_WAV = Path(__file__).resolve().parents[2] / "shared" / "data" / "ljspeech" / "wavs" / "LJ001-0002.wav"


def _speechlike(seconds=1.5, sr=16000, seed=0):
    """Harmonic tone with a moving pitch and syllable-rate envelope (a speech stand-in)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 20))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 3 * t)) + 0.05
    return (0.3 * x * envelope / np.abs(x).max() + 1e-3 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def clip():
    if LJ_WAV.is_file():
        from wavefast.audio.io import read_audio

        audio, sr = read_audio(LJ_WAV, 16000)
        return audio, sr
    return _speechlike(), 16000


def _noisy(x, level, seed=1):
    return (x + level * np.random.default_rng(seed).standard_normal(x.size)).astype(np.float32)


def test_identical_signals_score_perfectly(clip):
    x, sr = clip
    assert V.log_mel_l1(x, x, sr) == 0.0
    assert V.multi_resolution_stft_distance(x, x) == 0.0
    assert V.mel_cepstral_distortion(x, x, sr) == 0.0


def test_more_noise_scores_worse(clip):
    x, sr = clip
    a, b = _noisy(x, 0.003), _noisy(x, 0.03)
    assert 0 < V.log_mel_l1(x, a, sr) < V.log_mel_l1(x, b, sr)
    assert 0 < V.multi_resolution_stft_distance(x, a) < V.multi_resolution_stft_distance(x, b)
    assert 0 < V.mel_cepstral_distortion(x, a, sr) < V.mel_cepstral_distortion(x, b, sr)
    parts = V.stft_distance_components(x, a)
    assert sorted(parts) == ["logmag_1024", "logmag_2048", "logmag_512", "sc_1024", "sc_2048", "sc_512"]


def test_pesq(clip):
    pytest.importorskip("pesq")
    x, sr = clip
    assert V.pesq_wb(x, x, sr) == pytest.approx(4.64, abs=0.01)
    assert V.pesq_wb(x, _noisy(x, 0.003), sr) > V.pesq_wb(x, _noisy(x, 0.03), sr)


def test_stoi(clip):
    pytest.importorskip("pystoi")
    x, sr = clip
    assert V.stoi_score(x, x, sr) == pytest.approx(1.0, abs=1e-6)
    assert V.stoi_score(x, _noisy(x, 0.01), sr) > V.stoi_score(x, _noisy(x, 0.1), sr)


def test_lengths_are_cropped_to_the_shorter(clip):
    x, sr = clip
    assert V.log_mel_l1(x, np.concatenate([x, np.ones(300, np.float32)]), sr) == 0.0
    with pytest.raises(WavefastError, match="longer than"):
        V.mel_cepstral_distortion(x[:100], x[:100], sr)


def _write(folder, name, audio, sr):
    folder.mkdir(exist_ok=True)
    sf.write(str(folder / name), audio, sr, subtype="FLOAT")


def test_cli_vocoder_pairs_by_name(tmp_path, capsys):
    x = _speechlike(1.0)
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    _write(ref, "a.wav", x, 16000)
    _write(ref, "b.wav", x[::-1].copy(), 16000)
    _write(gen, "a.wav", x, 16000)
    _write(gen, "b.wav", _noisy(x[::-1].copy(), 0.01)[:-200], 16000)  # 200 samples short: cropped
    out = tmp_path / "out.json"
    assert cli.main(["vocoder", str(gen), "--reference", str(ref), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["files"]["a.wav"]["mr_stft"] == 0.0 and report["files"]["b.wav"]["mr_stft"] > 0
    assert report["summary"]["log_mel_l1"]["n"] == 2
    assert any("cropped" in n for n in report["notes"])
    assert "log_mel_l1" in capsys.readouterr().out


def test_cli_vocoder_errors(tmp_path, capsys):
    x = _speechlike(1.0)
    ref, gen, empty = tmp_path / "ref", tmp_path / "gen", tmp_path / "empty"
    empty.mkdir()
    _write(ref, "a.wav", x, 16000)
    _write(gen, "other.wav", x, 16000)
    assert cli.main(["vocoder", str(gen), "--reference", str(ref)]) == 2
    err = capsys.readouterr().err
    assert "no reference of the same name" in err and "Traceback" not in err and err.count("\n") == 1
    assert cli.main(["vocoder", str(empty), "--reference", str(ref)]) == 2
    assert "no .wav files" in capsys.readouterr().err
    _write(gen, "a.wav", np.concatenate([x, x]), 16000)
    (gen / "other.wav").unlink()
    assert cli.main(["vocoder", str(gen), "--reference", str(ref)]) == 2
    assert "differ by more than" in capsys.readouterr().err


def test_cli_vocoder_resamples_generated(tmp_path, capsys):
    x = _speechlike(1.0, sr=22050)
    from wavefast.audio.io import resample

    _write(tmp_path / "ref", "a.wav", x, 22050)
    _write(tmp_path / "gen", "a.wav", resample(x, 22050, 16000), 16000)
    assert cli.main(["vocoder", str(tmp_path / "gen"), "--reference", str(tmp_path / "ref")]) == 0
    captured = capsys.readouterr()
    assert "resampled generated files" in captured.err


def test_register_adds_eval_to_a_parser():
    import argparse

    parser = argparse.ArgumentParser(prog="wavefast")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["eval", "vocoder", "gen", "--reference", "ref", "--json", "o.json"])
    assert args.func is cli.cmd_vocoder and args.reference == "ref" and args.json == "o.json"
    args = parser.parse_args(["eval", "sc09", "gen", "--reference-stats", "s.npz"])
    assert args.func is cli.cmd_sc09 and args.reference_stats == "s.npz" and args.reference is None
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "sc09", "gen", "--reference", "d", "--reference-stats", "s.npz"])


def test_cli_vocoder_table_scores_systems_against_recordings_and_resumes(tmp_path, capsys, monkeypatch):
    import torch

    from wavefast.audio.mel import mel_spectrogram
    from wavefast.models.checkpoints import save_native
    from wavefast.vocoder import Vocoder

    from test_sourcefilter import tiny_sf

    sr = 22050
    mels, refs = tmp_path / "mels", tmp_path / "wavs"
    mels.mkdir()
    for i, ident in enumerate(["LJ001-0001", "LJ001-0002", "LJ001-0003"]):
        audio = _speechlike(0.6, sr, seed=i)
        _write(refs, f"{ident}.wav", audio, sr)
        torch.save(mel_spectrogram(audio, "tacotron2", sr), mels / f"{ident}.wav.pt")
    save_native(tiny_sf(), tmp_path / "m.safetensors")
    out = tmp_path / "table"
    argv = ["vocoder-table", "--mels", str(mels), "--ids", "LJ001-0001..LJ001-0002", "--references", str(refs),
            "--system", f"tiny={tmp_path / 'm.safetensors'}:steps=3", "--no-anchors", "--no-mos", "-o", str(out)]
    assert cli.main(argv) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert sorted(report["tiny"]["files"]) == ["LJ001-0001", "LJ001-0002"]  # --ids range, 0003 left out
    assert report["tiny"]["summary"]["mr_stft"] > 0 and "vde" in report["tiny"]["summary"]
    assert "| tiny |" in out.with_suffix(".md").read_text().replace("|  tiny", "| tiny")
    kept = sorted(p.name for p in out.with_suffix(".audio").joinpath("tiny").glob("*.npy"))
    assert kept == ["LJ001-0001.npy", "LJ001-0002.npy"]
    # a rerun of the same system reuses the kept audio (vocoding would fail here) and scores the same
    monkeypatch.setattr(Vocoder, "vocode_long", lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-vocoded")))
    capsys.readouterr()
    assert cli.main(argv) == 0
    assert json.loads(out.with_suffix(".json").read_text())["tiny"]["summary"] == report["tiny"]["summary"]
    # another spec under the same name starts afresh
    argv[argv.index(f"tiny={tmp_path / 'm.safetensors'}:steps=3")] = f"tiny={tmp_path / 'm.safetensors'}:steps=2"
    assert cli.main(argv) != 0 and "re-vocoded" in capsys.readouterr().err


def test_vocoder_table_runs_a_system_in_bfloat16(tmp_path):
    import torch

    from wavefast.audio.mel import mel_spectrogram
    from wavefast.models.checkpoints import save_native

    from test_sourcefilter import tiny_sf

    mels = tmp_path / "mels"
    mels.mkdir()
    torch.save(mel_spectrogram(_speechlike(0.6, 22050, seed=0), "tacotron2", 22050), mels / "LJ001-0001.pt")
    model = tmp_path / "m.safetensors"
    save_native(tiny_sf(), model)
    out = tmp_path / "table"
    assert cli.main(["vocoder-table", "--mels", str(mels), "--system", f"f32={model}:steps=2",
                     "--system", f"bf16={model}:steps=2,dtype=bfloat16", "--no-anchors", "--no-mos",
                     "-o", str(out)]) == 0
    a, b = (np.load(out.with_suffix(".audio") / name / "LJ001-0001.npy") for name in ("f32", "bf16"))
    # the bf16 system really ran in bf16 (a random tiny model amplifies its rounding, so only "differs" is checked;
    # the shipped model's bf16 cost is measured in export/README.md) and came back as float32 audio of the same length
    assert b.dtype == np.float32 and a.shape == b.shape and np.isfinite(b).all()
    assert np.abs(a - b).max() > 1e-4 * np.abs(a).max()


def test_vocoder_table_cells_carry_their_95_percent_intervals():
    from types import SimpleNamespace

    from wavefast.eval.metrics import mean_confidence_interval
    from wavefast.eval.vocoder_eval import score_system, table

    sr = 22050
    ids = [f"LJ001-000{i}" for i in range(1, 7)]
    refs = {k: _speechlike(0.5, sr, seed=i) for i, k in enumerate(ids)}
    rng = np.random.default_rng(0)
    outputs = {k: v + (0.01 + 0.02 * i) * rng.standard_normal(len(v)).astype(np.float32)
               for i, (k, v) in enumerate(refs.items())}
    heard = {ids[0]: "a b c", ids[1]: "a b x", ids[2]: "a b c", ids[3]: "x y c", ids[4]: "a b c", ids[5]: "a x c"}
    scorers = SimpleNamespace(dnsmos=None, recognizer=lambda audio, rate: heard[next(
        k for k, v in outputs.items() if v is audio or np.array_equal(v, audio))])
    result = score_system(outputs, sr, refs, transcripts={k: "a b c" for k in ids}, scorers=scorers)
    per_file = [result["files"][k]["mr_stft"] for k in ids]
    assert result["summary"]["mr_stft"] == pytest.approx(np.mean(per_file))
    assert result["intervals"]["mr_stft"] == pytest.approx(mean_confidence_interval(per_file)[1])
    assert result["summary"]["wer"] == pytest.approx(4 / 18) and result["intervals"]["wer"] > 0
    row = table({"sys": result}, metrics=("wer", "mr_stft"))
    assert f"{result['summary']['mr_stft']:.3f} +- {result['intervals']['mr_stft']:.3f}" in row


@pytest.mark.parametrize("spec,message", [("a=:stpes=3", "KEY one of steps, plan, kappa, clip"),
                                          ("a=:steps", "is not KEY=VALUE"),
                                          ("a=:steps=three", "steps must be a whole number"),
                                          ("a=:clip=yes", "clip must be 0 or 1"),
                                          ("a=:dtype=float16", "dtype must be float32 or bfloat16")])
def test_vocoder_table_refuses_a_malformed_system_option_with_one_line(tmp_path, capsys, spec, message):
    mels = tmp_path / "mels"
    mels.mkdir()
    np.save(mels / "LJ001-0001.npy", np.zeros((80, 10), np.float32))
    assert cli.main(["vocoder-table", "--mels", str(mels), "--system", spec, "--no-anchors", "--no-mos"]) == 2
    err = capsys.readouterr().err
    assert err.count("wavefast: error:") == 1 and message in err
