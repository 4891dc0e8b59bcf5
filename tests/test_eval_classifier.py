"""The shipped SC09 classifier, its file format, its training script and ``wavefast eval sc09``."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from wavefast.errors import WavefastError
from wavefast.eval import classifier as C
from wavefast.eval import cli, metrics

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FSDD = DATA / "fsdd" / "recordings"


@pytest.fixture(scope="module")
def model():
    return C.load_sc09_classifier()


def _fsdd_test_files(count):
    if not FSDD.is_dir():
        pytest.skip("FSDD not found in ../shared/data/fsdd")
    files = sorted(p for p in FSDD.glob("*.wav") if int(p.stem.split("_")[2]) < 5)  # official test split
    return files[:: max(1, len(files) // count)][:count]


def test_shipped_files_are_small_fp16_with_config():
    assert C.DEFAULT_WEIGHTS.stat().st_size < 3_000_000
    meta = C.read_metadata(C.DEFAULT_WEIGHTS)
    assert meta["format"] == C.FORMAT
    config = C.ClassifierConfig.from_json(meta[C.METADATA_KEY])
    assert config.frontend.n_mels == 32 and config.frontend.frames == 32
    from safetensors.torch import load_file

    assert all(v.dtype == torch.float16 for v in load_file(str(C.DEFAULT_WEIGHTS)).values() if v.is_floating_point())
    stats = metrics.load_stats(C.DEFAULT_STATS)
    assert stats["mu"].shape == (config.feature_dim,) and stats["sigma"].shape == (config.feature_dim,) * 2
    assert stats["train_class_probs"].shape == (10,) and stats["ndb_centres"].shape[0] == 50


def test_accuracy_on_real_fsdd_test_clips(model):
    from wavefast.audio.io import read_audio

    files = _fsdd_test_files(50)
    clips = np.stack([C.prepare_clip(*read_audio(p)) for p in files])
    labels = np.array([int(p.name[0]) for p in files])
    probs, features = C.classify(model, clips)
    assert probs.shape == (50, 10) and features.shape == (50, model.config.feature_dim)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    assert (probs.argmax(1) == labels).mean() >= 0.85


def test_classify_is_batch_independent(model):
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((5, 16000))).astype(np.float32)
    probs, features = C.classify(model, audio, batch_size=2)
    one, feat_one = C.classify(model, audio[3])
    np.testing.assert_allclose(one[0], probs[3], atol=1e-5)
    np.testing.assert_allclose(feat_one[0], features[3], atol=1e-4)
    with pytest.raises(WavefastError, match=r"\(N, 16000\)"):
        C.classify(model, audio[:, :8000])


def test_prepare_clip_centres_pads_and_normalises():
    x = np.zeros(4000, np.float32)
    x[100:300] = 0.25  # energy centred at sample ~200 of a 8 kHz clip
    clip = C.prepare_clip(x, 8000)
    assert clip.shape == (16000,) and clip.dtype == np.float32
    assert np.abs(clip).max() == pytest.approx(1.0)
    centre = (np.arange(16000) * clip.astype(np.float64) ** 2).sum() / (clip.astype(np.float64) ** 2).sum()
    assert abs(centre - 8000) < 50
    long = np.sin(np.arange(40000) / 10).astype(np.float32)
    assert C.prepare_clip(long).shape == (16000,)
    assert not C.prepare_clip(np.zeros(10, np.float32)).any()


def test_malformed_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01 not a safetensors file at all")
    with pytest.raises(WavefastError, match="not a valid safetensors file"):
        C.load_sc09_classifier(garbage)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(WavefastError, match="not a wavefast SC09 classifier"):
        C.load_sc09_classifier(other)
    broken = tmp_path / "broken.safetensors"
    save_file({"head.weight": torch.zeros(10, 4)}, str(broken),
              metadata={"format": C.FORMAT, C.METADATA_KEY: C.ClassifierConfig().to_json()})
    with pytest.raises(WavefastError, match="malformed"):
        C.load_sc09_classifier(broken)
    with pytest.raises(WavefastError, match="not found"):
        C.load_sc09_classifier(tmp_path / "missing.safetensors")


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    net = C.SC09Classifier(C.ClassifierConfig(stem=8, widths=(8, 16), blocks=(1, 1), cardinality=4)).eval()
    path = C.save_sc09_classifier(net, tmp_path / "tiny.safetensors", torch.float32, {"note": "x"})
    loaded = C.load_sc09_classifier(path)
    audio = np.random.default_rng(1).standard_normal((2, 16000)).astype(np.float32)
    np.testing.assert_allclose(C.classify(net, audio)[0], C.classify(loaded, audio)[0], atol=1e-6)
    assert C.read_metadata(path)["note"] == "x"


def _write_digit_sets(root, fsdd_takes, sc_speakers):
    """Tiny FSDD and Speech Commands layouts of short tones, pitch set by the digit."""
    fsdd, sc = root / "fsdd", root / "sc"
    fsdd.mkdir()
    rng = np.random.default_rng(0)
    tone = lambda d, sr, n: (0.5 * np.sin(2 * np.pi * (200 + 60 * d) * np.arange(n) / sr)
                             + 0.01 * rng.standard_normal(n)).astype(np.float32)
    for d in range(10):
        for take in fsdd_takes:
            sf.write(str(fsdd / f"{d}_spk_{take}.wav"), tone(d, 8000, 4000), 8000)
        (sc / C.DIGITS[d]).mkdir(parents=True)
        for s in sc_speakers:
            sf.write(str(sc / C.DIGITS[d] / f"{s}_nohash_0.wav"), tone(d, 16000, 12000), 16000)
    return fsdd, sc


def test_loaders_and_a_one_epoch_training_run(tmp_path):
    from wavefast.eval import train_classifier as T

    fsdd, sc = _write_digit_sets(tmp_path, fsdd_takes=(0, 5, 6, 7), sc_speakers=("aaaa", "bbbb", "cccc"))
    splits = T.load_fsdd(fsdd)
    assert splits["train"][0].shape == (30, 16000) and splits["test"][0].shape == (10, 16000)
    sc_splits = T.load_speech_commands(sc, holdout_speakers=1)
    assert sc_splits["test"][0].shape == (10, 16000) and len(sc_splits["train"][1]) == 20
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    batch = torch.from_numpy(splits["train"][0][:4])
    torch.testing.assert_close(T.augment(batch, g1), T.augment(batch, g2))

    out, again = tmp_path / "clf.safetensors", tmp_path / "again" / "clf.safetensors"
    for path in (out, again):
        code = T.main(["--fsdd", str(fsdd), "--speech-commands", str(sc), "-o", str(path), "--epochs", "1",
                       "--batch-size", "16", "--sc-holdout-speakers", "1", "--ndb-bins", "5"])
        assert code == 0 and path.is_file() and not Path(str(path) + ".resume.pt").exists()
    from safetensors.torch import load_file

    first, second = load_file(str(out)), load_file(str(again))
    assert all(torch.equal(first[k], second[k]) for k in first)  # seeded: the same weights twice
    stats = metrics.load_stats(tmp_path / "sc09_train_stats.npz")
    assert stats["ndb_centres"].shape[0] == 5
    assert "fsdd_test_accuracy" in C.read_metadata(out)
    C.load_sc09_classifier(out)


def _clip_folder(folder, files):
    folder.mkdir()
    for path in files:
        (folder / path.name).symlink_to(path)
    return folder


def test_cli_sc09_on_real_clips(tmp_path, capsys):
    gen = _clip_folder(tmp_path / "gen", _fsdd_test_files(20))
    out = tmp_path / "sc09.json"
    assert cli.main(["sc09", str(gen), "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert "FID" in captured.out and "NDB/K" in captured.out
    assert "resampled clips" in captured.err  # FSDD is 8 kHz
    report = json.loads(out.read_text())
    scores = report["scores"]
    assert scores["n"] == 20 and scores["fid"] > 0 and 1 <= scores["is"] <= 10
    assert scores["ndb_k"] is not None and scores["am"] is not None
    assert sum(scores["class_histogram"]) == 20 and len(report["files"]) == 20

    ref = _clip_folder(tmp_path / "ref", _fsdd_test_files(40)[1::2])
    assert cli.main(["sc09", str(gen), "--reference", str(ref)]) == 0
    assert "NDB/K skipped" in capsys.readouterr().out


def test_cli_sc09_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["sc09", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wavefast: error: no .wav files") and "Traceback" not in err
    (empty / "a.wav").write_bytes(b"RIFF....not audio")
    assert cli.main(["sc09", str(empty)]) == 2
    assert "cannot read audio file" in capsys.readouterr().err
    bad_stats = tmp_path / "stats.npz"
    np.savez(bad_stats, mu=np.zeros(3))
    sf.write(str(empty / "a.wav"), np.zeros(16000, np.float32), 16000)
    sf.write(str(empty / "b.wav"), 0.1 * np.ones(16000, np.float32), 16000)
    assert cli.main(["sc09", str(empty), "--reference-stats", str(bad_stats)]) == 2
    assert "lacks sigma" in capsys.readouterr().err
