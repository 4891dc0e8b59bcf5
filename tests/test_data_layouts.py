"""Dataset discovery, splits, preprocessing and packing on tiny synthetic folders (+ the real ../shared/data)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sf = pytest.importorskip("soundfile")

from wavefast.data import (DIGIT_WORDS, apply_holdout, discover, fit_clip, hash_split, load_pack, normalize_loudness,
                           pack_items, pack_sources, place_clip, split_json_path, trim_silence)
from wavefast.data.packing import select_heldout, to_int16
from wavefast.errors import WavefastError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"




def tone(path: Path, sr: int = 16000, seconds: float = 0.1, freq: float = 440.0, amp: float = 0.3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(sr * seconds)
    x = amp * np.sin(2 * np.pi * freq * np.arange(n) / sr)
    sf.write(str(path), x.astype(np.float32), sr, subtype="PCM_16")
    return path


# --- layouts -----------------------------------------------------------------------------
def test_ljspeech_layout_reads_wavs_and_partial_metadata(tmp_path):
    for i in (1, 2, 3):
        tone(tmp_path / "wavs" / f"LJ001-000{i}.wav", sr=22050)
    (tmp_path / "metadata.csv").write_text("LJ001-0001|Printing, in 1|Printing, in one\n"
                                           "LJ001-0002|in being|in being\n", encoding="utf-8")
    items = discover(tmp_path, "ljspeech")
    assert [it.utt_id for it in items] == ["LJ001-0001", "LJ001-0002", "LJ001-0003"]
    assert items[0].text == "Printing, in one" and items[2].text is None
    assert {it.split for it in items} == {"train"}


def test_ljspeech_layout_errors(tmp_path):
    with pytest.raises(WavefastError, match="not found"):
        discover(tmp_path / "nope", "ljspeech")
    (tmp_path / "wavs").mkdir()
    with pytest.raises(WavefastError, match="'ljspeech' layout.*missing metadata.csv"):
        discover(tmp_path, "ljspeech")
    (tmp_path / "metadata.csv").write_text("", encoding="utf-8")
    with pytest.raises(WavefastError, match="no audio files"):
        discover(tmp_path, "ljspeech")


def test_vcc_layout_train_and_eval(tmp_path):
    for part in ("train", "eval"):
        for spk in ("SF1", "TM3"):
            tone(tmp_path / part / spk / "wavs" / f"{'1' if part == 'train' else '2'}00001.wav")
    items = discover(tmp_path, "vcc")
    assert [(it.utt_id, it.split, it.speaker) for it in items] == [
        ("SF1/100001", "train", "SF1"), ("SF1/200001", "test", "SF1"),
        ("TM3/100001", "train", "TM3"), ("TM3/200001", "test", "TM3")]
    with pytest.raises(WavefastError, match="'vcc' layout.*neither train/ nor eval/"):
        discover(tmp_path / "train", "vcc")


def test_sc09_official_lists_are_honoured(tmp_path):
    for word in ("zero", "one"):
        for name in ("aaaa1111_nohash_0", "bbbb2222_nohash_1", "cccc3333_nohash_0"):
            tone(tmp_path / word / f"{name}.wav")
    tone(tmp_path / "yes" / "aaaa1111_nohash_0.wav")  # not a digit: ignored
    (tmp_path / "validation_list.txt").write_text("zero/bbbb2222_nohash_1.wav\n", encoding="utf-8")
    (tmp_path / "testing_list.txt").write_text("one/cccc3333_nohash_0.wav\nzero/cccc3333_nohash_0.wav\n",
                                               encoding="utf-8")
    items = {it.utt_id: it for it in discover(tmp_path, "sc09")}
    assert len(items) == 6 and all(it.label in ("zero", "one") for it in items.values())
    assert items["zero/bbbb2222_nohash_1"].split == "valid"
    assert items["one/cccc3333_nohash_0"].split == "test" and items["zero/cccc3333_nohash_0"].split == "test"
    assert items["one/bbbb2222_nohash_1"].split == "train"
    assert items["zero/aaaa1111_nohash_0"].speaker == "aaaa1111"


def test_sc09_hash_split_without_lists_is_stable_and_per_speaker(tmp_path):
    # golden values: the rule must never change (it decides what is held out)
    assert [hash_split(f"{k}_nohash_0.wav") for k in ("0a7c2a8d", "439c84f4", "6a27a9bf", "2f813234")] == \
        [hash_split(f"{k}_nohash_3.wav") for k in ("0a7c2a8d", "439c84f4", "6a27a9bf", "2f813234")]
    assert hash_split("439c84f4_nohash_1.wav") == "valid"
    assert hash_split("2f813234_nohash_1.wav") == "train"
    splits = [hash_split(f"speaker{i:04d}_nohash_0.wav") for i in range(2000)]
    assert 0.07 < splits.count("valid") / 2000 < 0.13 and 0.07 < splits.count("test") / 2000 < 0.13
    tone(tmp_path / "three" / "439c84f4_nohash_1.wav")
    assert discover(tmp_path, "sc09")[0].split == "valid"
    with pytest.raises(WavefastError, match="'sc09' layout.*digit folders"):
        discover(tmp_path / "three", "sc09")


def test_fsdd_layout_official_test_takes(tmp_path):
    for take in range(7):
        tone(tmp_path / "recordings" / f"3_george_{take}.wav", sr=8000)
    items = discover(tmp_path, "fsdd")
    assert {it.utt_id: it.split for it in items} == {f"3_george_{t}": "test" if t <= 4 else "train"
                                                     for t in range(7)}
    assert {it.label for it in items} == {"three"} and {it.speaker for it in items} == {"george"}
    flat = tmp_path / "flat"
    tone(flat / "9_jackson_12.wav", sr=8000)
    assert discover(flat, "fsdd")[0].label == DIGIT_WORDS[9]
    tone(flat / "hello.wav", sr=8000)
    with pytest.raises(WavefastError, match="'fsdd' layout.*hello.wav"):
        discover(flat, "fsdd")


def test_labelled_and_folder_layouts(tmp_path):
    tone(tmp_path / "dog" / "a.wav")
    tone(tmp_path / "dog" / "sub" / "b.wav")
    tone(tmp_path / "cat" / "c.wav")
    items = discover(tmp_path, "labelled")
    assert [(it.utt_id, it.label) for it in items] == [("cat/c", "cat"), ("dog/a", "dog"), ("dog/sub/b", "dog")]
    folder = discover(tmp_path, "folder")
    assert [it.utt_id for it in folder] == ["cat/c", "dog/a", "dog/sub/b"] and {it.split for it in folder} == {"train"}
    tone(tmp_path / "loose.wav")
    with pytest.raises(WavefastError, match="'labelled' layout.*loose.wav"):
        discover(tmp_path, "labelled")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WavefastError, match="no audio files"):
        discover(empty, "folder")
    with pytest.raises(WavefastError, match="unknown data layout 'lj'.*'ljspeech'"):
        discover(tmp_path, "lj")


def test_holdout_ranges_globs_and_typos(tmp_path):
    for i in range(1, 6):
        tone(tmp_path / "wavs" / f"LJ001-000{i}.wav", sr=22050)
    (tmp_path / "metadata.csv").write_text("", encoding="utf-8")
    items = apply_holdout(discover(tmp_path, "ljspeech"), "LJ001-0002..LJ001-0003,LJ001-000[5]")
    assert [it.split for it in items] == ["train", "test", "test", "train", "test"]
    with pytest.raises(WavefastError, match="match no item id"):
        apply_holdout(items, "LJ002-0001")


# --- preprocessing -----------------------------------------------------------------------
def test_loudness_normalisation():
    x = np.linspace(-0.2, 0.1, 1000, dtype=np.float32)
    assert np.isclose(np.abs(normalize_loudness(x, "peak")).max(), 0.95)
    y = normalize_loudness(0.01 * np.sin(np.arange(16000) / 5.0).astype(np.float32), "rms", rms_dbfs=-20)
    assert np.isclose(20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2))), -20, atol=1e-3)
    loud = np.zeros(1000, np.float32)
    loud[0], loud[1:] = 1.0, 0.001  # rms target would clip the spike: capped at 0.99
    assert np.abs(normalize_loudness(loud, "rms", rms_dbfs=-3)).max() <= 0.99 + 1e-6
    assert not normalize_loudness(np.zeros(10), "peak").any()
    with pytest.raises(WavefastError, match="allowed"):
        normalize_loudness(x, "lufs")


def test_clip_centring_padding_and_cutting():
    short = np.zeros(4000, np.float32)
    short[1000:1100] = 1.0  # energy centre at ~1050
    clip = fit_clip(short, 16000)
    assert clip.shape == (16000,)
    assert np.isclose(np.nonzero(clip)[0].mean(), 8000, atol=1)  # burst moved to the middle
    edge = np.zeros(4000, np.float32)
    edge[0:10] = 1.0  # centring would push it left of the clip start: shift only as far as fits
    content, lead = place_clip(edge, 16000)
    assert content.size == 4000 and 0 <= lead <= 12000
    long = np.zeros(40000, np.float32)
    long[30000:30100] = 0.5
    clip = fit_clip(long, 16000)
    assert clip.shape == (16000,) and np.isclose(np.nonzero(clip)[0].mean(), 8000, atol=1)
    end = np.zeros(40000, np.float32)
    end[-50:] = 0.5  # window stays inside the recording
    assert np.array_equal(fit_clip(end, 16000), end[-16000:])


def test_trim_silence_keeps_margin():
    x = np.zeros(22050, np.float32)
    x[10000:12000] = 0.5
    y = trim_silence(x, 22050, top_db=40, margin_s=0.01)
    assert 2000 <= y.size <= 2000 + 2 * 512 + 2 * 221 and np.abs(y).max() == 0.5


# --- packing -----------------------------------------------------------------------------
def test_pack_round_trip_resamples_and_records_splits(tmp_path):
    data = tmp_path / "vcc"
    tone(data / "train" / "SF1" / "wavs" / "100001.wav", sr=16000, seconds=0.5)
    tone(data / "train" / "SF1" / "wavs" / "100002.wav", sr=16000, seconds=0.25, freq=300)
    for i in range(3):
        tone(data / "eval" / "SF1" / "wavs" / f"20000{i}.wav", sr=16000, seconds=0.2)
    summary = pack_sources([(data, "vcc")], tmp_path / "p.npz", heldout_in_pack=1, loudness="peak", progress=False)
    pack = load_pack(tmp_path / "p.npz")
    assert pack.sample_rate == 22050 and pack.clip_samples == 0
    assert list(pack.ids) == ["SF1/100001", "SF1/100002", "SF1/200000"]  # one held-out item packed
    assert abs(pack.length[0] - round(0.5 * 22050)) <= 2  # resampled to the model rate
    x = pack.clip(0)
    assert x.dtype == np.float32 and np.isclose(np.abs(x).max(), 0.95, atol=1e-4)
    spectrum = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spectrum) * 22050 / x.size - 440) < 5
    record = json.loads(split_json_path(tmp_path / "p.npz").read_text())
    assert record["splits"] == {"train": ["SF1/100001", "SF1/100002"],
                                "test": ["SF1/200000", "SF1/200001", "SF1/200002"]}
    assert "eval/ -> test" in json.dumps(record["rules"])
    assert summary["items"] == 3 and summary["items_listed"] == 5


def test_pack_clips_store_without_padding_and_restore(tmp_path):
    data = tmp_path / "fsdd" / "recordings"
    tone(data / "1_theo_7.wav", sr=8000, seconds=0.3)
    tone(data / "2_theo_8.wav", sr=8000, seconds=2.5)
    tone(data / "2_theo_0.wav", sr=8000, seconds=0.3)
    pack_sources([(tmp_path / "fsdd", "fsdd")], tmp_path / "c.npz", loudness="none", heldout_in_pack=0,
                 progress=False)
    pack = load_pack(tmp_path / "c.npz")
    assert pack.sample_rate == 16000 and pack.clip_samples == 16000 and list(pack.splits) == ["train", "train"]
    assert list(pack.length) == [16000, 16000]
    assert pack.stored(0).size == 4800 and pack.stored(1).size == 16000  # short clip stored unpadded
    clip = pack.clip(0)
    assert clip.shape == (16000,) and np.isclose(np.nonzero(clip)[0].mean(), 8000, atol=60)


def test_int16_quantisation_and_heldout_selection():
    assert list(to_int16(np.array([-1.0, -0.5, 0.0, 0.999999, 1.0]))) == [-32768, -16384, 0, 32767, 32767]

    class It:
        def __init__(self, i, src):
            self.utt_id, self.source, self.split = f"{src}{i}", src, "test"
    items = [It(i, "a") for i in range(10)] + [It(i, "b") for i in range(3)]
    chosen = [it.utt_id for it in select_heldout(items, 4)]
    assert chosen == ["a0", "a9", "b0", "b2"]


def test_pack_errors(tmp_path):
    tone(tmp_path / "d" / "x.wav")
    with pytest.raises(WavefastError, match="must end in .npz"):
        pack_sources([(tmp_path / "d", "folder")], tmp_path / "p.bin", progress=False)
    with pytest.raises(WavefastError, match="not found"):
        load_pack(tmp_path / "missing.npz")
    items = apply_holdout(discover(tmp_path / "d", "folder"), "x")
    with pytest.raises(WavefastError, match="no train items"):
        pack_items(items, tmp_path / "q.npz", sample_rate=16000, progress=False)
    with pytest.raises(WavefastError, match="different default rates"):
        pack_sources([(tmp_path / "d", "folder"), (tmp_path / "d", "sc09")], tmp_path / "p.npz", progress=False)


def test_pack_reader_and_trainer_need_no_soundfile_or_librosa(tmp_path):
    tone(tmp_path / "d" / "x.wav", sr=22050, seconds=0.3)
    pack_sources([(tmp_path / "d", "folder")], tmp_path / "p.npz", progress=False)
    code = (
        "import sys; sys.modules['soundfile'] = None; sys.modules['librosa'] = None\n"
        "import wavefast.train, wavefast.data\n"
        "from wavefast.data import load_pack, SegmentBatches\n"
        f"p = load_pack({str(tmp_path / 'p.npz')!r})\n"
        "x, m = SegmentBatches(p, 1024, mel_frontend='tacotron2').next_batch(2)\n"
        "assert x.shape == (2, 1, 1024) and m.shape == (2, 80, 4)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


# --- the real data in ../shared/data -------------------------------------------------------
def test_real_shared_data_layouts_and_mel_format(tmp_path):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent")
    lj = discover(SHARED_DATA / "ljspeech", "ljspeech")
    assert len(lj) == 32 and lj[0].utt_id == "LJ001-0001" and lj[0].text
    lj = apply_holdout(lj, "LJ001-0025..LJ001-0032")
    assert [it.utt_id for it in lj if it.split == "test"] == [f"LJ001-00{i}" for i in range(25, 33)]
    vcc = discover(SHARED_DATA / "vcc2016", "vcc")
    assert len(vcc) == 540 and sum(it.split == "test" for it in vcc) == 216
    fsdd = discover(SHARED_DATA / "fsdd", "fsdd")
    assert len(fsdd) == 3000 and sum(it.split == "test" for it in fsdd) == 300  # 6 speakers x 10 digits x takes 0-4
    sc = discover(SHARED_DATA / "speech_commands_digits", "sc09")
    assert len(sc) == 100 and {it.label for it in sc} == set(DIGIT_WORDS)

    # pack two real LJ clips untouched (no loudness change, same rate) and check the mel
    # the trainer computes against the published conditioning files, frame for frame
    from wavefast.data import SegmentBatches

    two = [it for it in lj if it.utt_id in ("LJ001-0001", "LJ001-0002")]
    pack_items(two, tmp_path / "lj.npz", sample_rate=22050, loudness="none", progress=False)
    pack = load_pack(tmp_path / "lj.npz")
    batches = SegmentBatches(pack, 62 * 256, mel_frontend="tacotron2")
    reference = torch.load(str(SHARED_DATA / "ljspeech" / "mels" / "LJ001-0002.wav.pt"), weights_only=True)
    ours = batches.utterance_mel(torch.from_numpy(pack.clip(pack.index_of("LJ001-0002"))))
    assert ours.shape == reference.shape
    assert (ours - reference).abs().max() < 2e-3
