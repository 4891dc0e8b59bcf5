"""DNSMOS through speechmos on real LJSpeech and on white noise."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("speechmos")

from wavefast.eval import cli, mos  # noqa: E402

LJ_WAVS = Path(__file__).resolve().parents[2] / "shared" / "data" / "ljspeech" / "wavs"
LJ_FILES = ["LJ001-0001.wav", "LJ001-0003.wav", "LJ001-0005.wav"]  # three of the longer files


@pytest.fixture(scope="module")
def scorer():
    return mos.DnsmosScorer()


@pytest.fixture(scope="module")
def lj_folder(tmp_path_factory):
    if not all((LJ_WAVS / f).is_file() for f in LJ_FILES):
        pytest.skip("real LJSpeech wavs not found in ../shared/data/ljspeech/wavs")
    folder = tmp_path_factory.mktemp("lj")
    for name in LJ_FILES:
        (folder / name).symlink_to(LJ_WAVS / name)
    return folder


def test_real_speech_scores_high_and_noise_low(lj_folder, scorer):
    result = mos.score_folder(lj_folder, progress=False)
    assert sorted(result["files"]) == LJ_FILES
    assert result["summary"]["p808"]["mean"] > 3.5
    assert result["summary"]["p808"]["n"] == 3 and result["summary"]["p808"]["ci95"] > 0
    assert result["resampled"] == LJ_FILES  # 22.05 kHz -> 16 kHz
    noise = 0.1 * np.random.default_rng(0).standard_normal(3 * 16000).astype(np.float32)
    scores = mos.dnsmos(noise, 16000, scorer)
    assert scores["p808"] < 2.5
    assert scores["ovrl"] < result["summary"]["ovrl"]["mean"] - 1.0


def test_cli_mos_writes_json(tmp_path, capsys):
    noise = 0.1 * np.random.default_rng(1).standard_normal(16000).astype(np.float32)
    sf.write(str(tmp_path / "noise.wav"), noise, 16000)
    out = tmp_path / "mos.json"
    assert cli.main(["mos", str(tmp_path), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["files"]["noise.wav"]) >= {"p808", "sig", "bak", "ovrl"}
    assert report["summary"]["p808"]["ci95"] is None  # one file: no interval
    assert "p808" in capsys.readouterr().out


def test_cli_mos_empty_folder(tmp_path, capsys):
    assert cli.main(["mos", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wavefast: error: no .wav files") and "Traceback" not in err
