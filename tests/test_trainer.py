"""The shared DiffWave trainer on tiny models (2 layers, 4 channels) and tiny synthetic packs."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

sf = pytest.importorskip("soundfile")

from wavefast.audio.mel import mel_spectrogram
from wavefast.data import SegmentBatches, crop_segment, load_pack, pack_sources
from wavefast.errors import WavefastError
from wavefast.train import ModelConfig, TrainConfig, Trainer, train
from wavefast.train.cli import main as cli_main

SR = 22050




def _write(path: Path, x: np.ndarray, sr: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x.astype(np.float32), sr, subtype="PCM_16")


@pytest.fixture(scope="module")
def vocoder_pack(tmp_path_factory) -> Path:
    """Four 0.3 s chirps + noise at 22.05 kHz; one held out."""
    root = tmp_path_factory.mktemp("voc")
    rng = np.random.default_rng(0)
    n = int(0.3 * SR)
    for i, f0 in enumerate((200.0, 330.0, 500.0, 750.0)):
        t = np.arange(n) / SR
        x = 0.4 * np.sin(2 * np.pi * f0 * t * (1 + t)) + 0.02 * rng.standard_normal(n)
        _write(root / "data" / f"utt{i}.wav", x, SR)
    pack_sources([(root / "data", "folder")], root / "pack.npz", holdout="utt3", progress=False)
    return root / "pack.npz"


@pytest.fixture(scope="module")
def clip_pack(tmp_path_factory) -> Path:
    """Unconditional: six 'digit' bursts packed as 2048-sample clips at 8 kHz."""
    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(1)
    for take in range(6):
        x = np.sin(2 * np.pi * (300 + 50 * take) * np.arange(1200) / 8000) * np.hanning(1200)
        _write(root / "recordings" / f"{take % 10}_anna_{take + 5}.wav", x + 0.01 * rng.standard_normal(1200), 8000)
    pack_sources([(root, "fsdd")], root / "clips.npz", sample_rate=8000, clip_samples=2048, progress=False)
    return root / "clips.npz"


def tiny(conditional: bool = True, **changes) -> ModelConfig:
    base = dict(residual_channels=4, residual_layers=2, dilation_cycle=2, T=50, beta_0=1e-4, beta_T=0.05,
                conditional=conditional, sample_rate=SR if conditional else 8000,
                segment_samples=1024 if conditional else 2048, name="tiny")
    return ModelConfig(**dict(base, **changes))


def config(pack: Path, out: Path, **changes) -> TrainConfig:
    base = dict(pack=str(pack), out=str(out), model=tiny(), steps=6, batch_size=2, log_every=2,
                checkpoint_every=3, val_every=0)
    return TrainConfig(**dict(base, **changes))


# --- data alignment ------------------------------------------------------------------------
def test_segments_take_the_matching_mel_frames(vocoder_pack):
    pack = load_pack(vocoder_pack)
    batches = SegmentBatches(pack, 1024, mel_frontend="tacotron2", seed=3)
    audio = torch.from_numpy(pack.clip(0))
    full = mel_spectrogram(audio, "tacotron2", SR)
    assert full.shape[1] == audio.numel() // 256 + 1
    seg, mel = crop_segment(audio, full, 1024, frame_start=5)
    assert torch.equal(seg, audio[5 * 256: 5 * 256 + 1024]) and torch.equal(mel, full[:, 5:9])
    # frame j of a segment starting at sample 5*256 is centred where frame 5+j of the utterance is:
    # away from the segment's own reflect padding the two STFTs see the same samples
    wide = audio[3 * 256: 3 * 256 + 8 * 256]  # frames 3 .. 11 centred at 0, 256, ...
    own = mel_spectrogram(wide, "tacotron2", SR)
    assert torch.allclose(own[:, 2:7], full[:, 5:10], atol=1e-4)
    # past the end: zero audio and silence mel frames
    last = audio.numel() // 256
    seg, mel = crop_segment(audio, full, 1024, frame_start=last - 1, mel_pad=batches.mel_pad)
    assert seg[audio.numel() - (last - 1) * 256:].abs().sum() == 0
    assert torch.all(mel[:, 2:] == batches.mel_pad) and np.isclose(batches.mel_pad, np.log(1e-5), atol=1e-4)
    x0, m = batches.next_batch(3)
    assert x0.shape == (3, 1, 1024) and m.shape == (3, 80, 4)
    assert batches.position.epoch == 1 and batches.position.cursor == 0  # 3 train items: one epoch


def test_segment_order_depends_only_on_seed_and_position(vocoder_pack):
    pack = load_pack(vocoder_pack)
    a = SegmentBatches(pack, 1024, mel_frontend="tacotron2", seed=7)
    b = SegmentBatches(pack, 1024, mel_frontend="tacotron2", seed=7)
    first = [a.next_batch(2)[0] for _ in range(4)]
    b.next_batch(2)
    b.position.epoch, b.position.cursor = a.position.epoch, a.position.cursor
    assert torch.equal(a.next_batch(2)[0], b.next_batch(2)[0])
    b.position.epoch = b.position.cursor = 0
    assert all(torch.equal(x, b.next_batch(2)[0]) for x in first)
    with pytest.raises(WavefastError, match="multiple of the hop"):
        SegmentBatches(pack, 1000, mel_frontend="tacotron2")


# --- training -----------------------------------------------------------------------------
def test_a_few_steps_lower_the_loss(vocoder_pack, tmp_path):
    cfg = config(vocoder_pack, tmp_path / "run", steps=60, batch_size=4, lr=2e-3, checkpoint_every=1000,
                 log_every=20, seed=0)
    result = train(cfg, "cpu", progress=False)
    losses = result["losses"]
    assert len(losses) == 60 and all(np.isfinite(losses))
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert last < 0.95 * first, (first, last)  # measured: 1.00 -> 0.91
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [20, 40, 60]
    assert {"loss", "lr", "grad_norm", "samples_per_s"} <= set(log[0])


def test_resume_continues_bit_identically(vocoder_pack, tmp_path):
    straight = Trainer(config(vocoder_pack, tmp_path / "a", steps=6), "cpu", progress=False)
    straight.run()
    Trainer(config(vocoder_pack, tmp_path / "b", steps=3), "cpu", progress=False).run()
    log_before = (tmp_path / "b" / "log.jsonl").read_text()
    resumed = Trainer(config(vocoder_pack, tmp_path / "b", steps=6), "cpu", resume=True, progress=False)
    assert resumed.step == 3 and resumed.data.position.to_dict() == {"epoch": 2, "cursor": 0}
    resumed.run()
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    for name, value in straight.ema.state_dict().items():
        assert torch.equal(value, resumed.ema.state_dict()[name]), name
    opt_a, opt_b = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(opt_a[k]["exp_avg_sq"], opt_b[k]["exp_avg_sq"]) for k in opt_a)
    assert torch.equal(straight.noise.get_state(), resumed.noise.get_state())
    log_a = (tmp_path / "a" / "log.jsonl").read_text()
    log_b = (tmp_path / "b" / "log.jsonl").read_text()
    assert log_b.startswith(log_before)
    strip = lambda text: [{k: v for k, v in json.loads(l).items() if not k.endswith("_per_s")} for l in text.splitlines()]
    # the short run also logged its last step (3), so only the windows that match are compared
    assert [r["step"] for r in strip(log_b)] == [2, 3, 4, 6]
    assert strip(log_a)[0] == strip(log_b)[0] and strip(log_a)[-1] == strip(log_b)[-1]


def test_checkpoint_is_weights_only_and_export_loads(vocoder_pack, tmp_path):
    trainer = Trainer(config(vocoder_pack, tmp_path / "r", steps=3), "cpu", progress=False)
    trainer.run()
    ckpt = torch.load(str(tmp_path / "r" / "checkpoint.pt"), weights_only=True)
    assert ckpt["step"] == 3 and ckpt["data"] == {"epoch": 2, "cursor": 0, "seed": 0}
    assert set(ckpt["rng"]) >= {"python", "numpy", "torch_cpu", "torch_cuda", "generators"}
    assert not list(tmp_path.glob("r/.*tmp"))  # atomic writes leave no temp files
    import wavefast

    if not hasattr(wavefast, "load_model"):
        pytest.skip("wavefast.load_model not available yet")
    model = wavefast.load_model(tmp_path / "r" / "model-ema.safetensors")
    assert model.spec == trainer.spec
    for name, value in trainer.ema.state_dict().items():
        assert torch.allclose(model.state_dict()[name], value.half().float()), name


def test_run_folder_guards(vocoder_pack, tmp_path):
    Trainer(config(vocoder_pack, tmp_path / "r", steps=2), "cpu", progress=False).run()
    with pytest.raises(WavefastError, match="already holds a training run.*--resume"):
        Trainer(config(vocoder_pack, tmp_path / "r", steps=4), "cpu", progress=False)
    with pytest.raises(WavefastError, match="cannot resume with different lr"):
        Trainer(config(vocoder_pack, tmp_path / "r", steps=4, lr=1e-3), "cpu", resume=True, progress=False)
    with pytest.raises(WavefastError, match="nothing to resume"):
        Trainer(config(vocoder_pack, tmp_path / "new", steps=4), "cpu", resume=True, progress=False)
    with pytest.raises(WavefastError, match="22050 Hz.*16000 Hz"):
        Trainer(config(vocoder_pack, tmp_path / "x", model=tiny(sample_rate=16000)), "cpu", progress=False)


def test_resume_on_another_device_type_reseeds_the_noise(vocoder_pack, tmp_path, capsys):
    Trainer(config(vocoder_pack, tmp_path / "r", steps=2), "cpu", progress=False).run()
    path = tmp_path / "r" / "checkpoint.pt"
    ckpt = torch.load(str(path), weights_only=True)
    ckpt["rng"]["noise_device"] = "cuda"  # as if written on a GPU machine
    torch.save(ckpt, path)
    resumed = Trainer(config(vocoder_pack, tmp_path / "r", steps=3), "cpu", resume=True, progress=False)
    assert "reseeded" in capsys.readouterr().err
    assert resumed.run()["step"] == 3


def test_vocoder_validation_logs_logmel_l1(vocoder_pack, tmp_path):
    pytest.importorskip("wavefast.pipeline")
    cfg = config(vocoder_pack, tmp_path / "v", steps=2, val_every=2, val_items=1, val_seconds=0.2, val_steps=2)
    Trainer(cfg, "cpu", progress=False).run()
    records = [json.loads(l) for l in (tmp_path / "v" / "log.jsonl").read_text().splitlines()]
    val = [r for r in records if "val_logmel_l1" in r]
    assert len(val) == 1 and val[0]["step"] == 2 and np.isfinite(val[0]["val_logmel_l1"])
    assert list((tmp_path / "v" / "samples").glob("step0000002_utt3.wav"))


def test_unconditional_training_and_samples(clip_pack, tmp_path):
    pytest.importorskip("wavefast.pipeline")
    cfg = config(clip_pack, tmp_path / "u", model=tiny(conditional=False), steps=2, val_every=2, val_items=2,
                 val_steps=2)
    result = train(cfg, "cpu", progress=False)
    assert result["step"] == 2
    assert len(list((tmp_path / "u" / "samples").glob("step0000002_sample*.wav"))) == 2
    with pytest.raises(WavefastError, match="2048-sample clips"):
        Trainer(config(clip_pack, tmp_path / "w", model=tiny(conditional=False, segment_samples=4096)), "cpu")


# --- command line -------------------------------------------------------------------------
def test_cli_train_resume_and_bad_input(vocoder_pack, tmp_path, capsys):
    args = ["train", "--data", str(vocoder_pack), "--out", str(tmp_path / "c"), "--preset", "vocoder-tiny",
            "--channels", "4", "--layers", "2", "--segment-samples", "1024", "--steps", "2", "--batch-size", "2",
            "--val-every", "0", "--device", "cpu", "--quiet"]
    assert cli_main(args) == 0
    saved = json.loads((tmp_path / "c" / "config.json").read_text())
    assert saved["config"]["model"]["residual_channels"] == 4 and saved["spec"]["arch"]["residual_layers"] == 2
    assert cli_main(["train", "--out", str(tmp_path / "c"), "--resume", "--steps", "3", "--quiet",
                     "--device", "cpu"]) == 0
    assert torch.load(str(tmp_path / "c" / "checkpoint.pt"), weights_only=True)["step"] == 3
    capsys.readouterr()
    assert cli_main(["train", "--data", str(tmp_path / "nowhere"), "--layout", "vcc", "--out",
                     str(tmp_path / "d"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wavefast: error: data folder not found") and err.count("\n") == 1
    assert cli_main(["train", "--data", str(vocoder_pack), "--out", str(tmp_path / "e"), "--batch-size", "0",
                     "--quiet"]) == 2
    assert "batch_size must be >= 1" in capsys.readouterr().err
    assert cli_main(["pack", "--data", str(tmp_path), "--layout", "ljspeech", "-o", str(tmp_path / "p.npz")]) == 2
    assert "'ljspeech' layout" in capsys.readouterr().err


def test_stop_request_turns_sigterm_and_sigint_into_a_clean_stop_and_restores_handlers():
    import os
    import signal

    from wavefast.train.stop import StopRequest

    before = signal.getsignal(signal.SIGTERM)
    for sig in (signal.SIGTERM, signal.SIGINT):
        with StopRequest() as stop:
            os.kill(os.getpid(), sig)
            assert stop.requested
        assert signal.getsignal(signal.SIGTERM) is before


def test_image_trainer_saves_and_stops_on_sigterm(tmp_path):
    import os
    import signal

    import numpy as np

    from wavefast.images.train import ImageTrainConfig, ImageTrainer

    pack = tmp_path / "p.npz"
    rng = np.random.default_rng(0)
    np.savez(pack, train_images=rng.uniform(-1, 1, (4, 1, 28, 28)).astype(np.float16),
             test_images=rng.uniform(-1, 1, (2, 1, 28, 28)).astype(np.float16))
    trainer = ImageTrainer(ImageTrainConfig(out=str(tmp_path / "run"), dataset=str(pack), steps=50, batch_size=2,
                                            val_items=2, sample_grid=False))
    step = trainer.train_step

    def step_then_signal():
        out = step()
        if trainer.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    trainer.train_step = step_then_signal
    assert trainer.run()["step"] == 2
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


def test_a_resumed_image_run_keeps_its_own_settings_and_refuses_changed_ones(tmp_path):
    import numpy as np
    import pytest

    from wavefast.errors import WavefastError
    from wavefast.images.train import ImageTrainConfig, image_config_for, train_image_model

    pack = tmp_path / "p.npz"
    rng = np.random.default_rng(0)
    np.savez(pack, train_images=rng.uniform(-1, 1, (4, 1, 28, 28)).astype(np.float16),
             test_images=rng.uniform(-1, 1, (2, 1, 28, 28)).astype(np.float16))
    out = tmp_path / "run"
    first = image_config_for(out, {"dataset": str(pack), "steps": 1, "lr": 3e-4, "loss_weighting": "min-snr-5",
                                   "batch_size": 2})
    assert first.lr == 3e-4 and first.loss_weighting == "min-snr-5"
    train_image_model(first.__class__(**{**first.__dict__, "val_items": 2, "sample_grid": False}))
    # resuming with only the budget named: the run's own lr, weighting and batch, the new step budget
    again = image_config_for(out, {"steps": 3, "threads": 1})
    assert (again.lr, again.loss_weighting, again.batch_size, again.steps, again.threads) == \
        (3e-4, "min-snr-5", 2, 3, 1)
    assert again.dataset == str(pack)
    with pytest.raises(WavefastError, match=r"lr \(run: 0.0003, given: 0.0008\)"):
        image_config_for(out, {"lr": 8e-4})
    # the same value again is fine; --fresh starts over with what is given
    assert image_config_for(out, {"lr": 3e-4}).lr == 3e-4
    assert image_config_for(out, {"lr": 8e-4, "fresh": True}) == ImageTrainConfig(out=str(out), lr=8e-4)
