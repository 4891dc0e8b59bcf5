"""``wavefast demo`` (the README's first command) on the shipped models."""

import soundfile as sf

from wavefast.cli import main
from wavefast.demo import DEMO_INPUT


def test_demo_writes_the_sentence_its_spectrograms_and_digits(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "2", "--digits", "2"]) == 0
    vocoded, rate = sf.read(out / "hello_vocoded.wav")
    source = sf.info(str(DEMO_INPUT))
    assert rate == 22050 and abs(len(vocoded) / rate - source.duration) < 256 / 22050 + 1e-6
    assert 0.01 < abs(vocoded).max() <= 1.0
    for png in ("hello_spectrogram.png", "digits_spectrograms.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (out / "digits").iterdir()) == ["digit_00.wav", "digit_01.wav"]
    assert "RTF" in capsys.readouterr().err


def test_demo_refuses_a_file_as_its_folder(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("x")
    assert main(["demo", "--out", str(target), "--digits", "0"]) == 2
    assert "is a file" in capsys.readouterr().err and target.read_text() == "x"
