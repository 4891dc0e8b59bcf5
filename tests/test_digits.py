"""The two-stage digit generator: mel-image layout, pack, trainer, generator, CLI, and the digit judges."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from tiny_diffwave import random_diffwave
from wavefast.cli import main
from wavefast.digits.generator import VOCODER_SEED_XOR, TwoStageGenerator
from wavefast.errors import WavefastError
from wavefast.eval.digit_recognizer import digit_scores, hard_label_inception_score
from wavefast.eval.metrics import half_sample_interval
from wavefast.images.checkpoints import IMAGE_PRESETS, save_image_model
from wavefast.images.data import load_image_pack
from wavefast.images.mel_image import EXTRA_KEY, MelImageLayout, mel_layout_of
from wavefast.images.unet import DDPMUNet, ImageModelSpec, UNetConfig
from wavefast.models.checkpoints import save_native
from wavefast.models.spec import DiffusionSpec

LAYOUT = MelImageLayout(n_mels=80, frames=88, factor=4)


def tiny_mel_model(seed=0) -> DDPMUNet:
    torch.manual_seed(seed)
    arch = UNetConfig(16, 16, 32, (1, 2), 1, (), 0.0, 20)
    spec = ImageModelSpec(arch, DiffusionSpec(100, 1e-4, 0.1), "tiny-mel", "native", "test", width=22,
                          extra={EXTRA_KEY: LAYOUT.to_dict()})
    return DDPMUNet(spec).eval()


def tiny_generator() -> TwoStageGenerator:
    return TwoStageGenerator(tiny_mel_model(), random_diffwave(conditional=True))


# --- layout ------------------------------------------------------------------------------------
def test_layout_maps_each_patch_of_mel_bins_and_frames_to_the_channels_of_one_pixel():
    mel = torch.rand(2, 80, 88) * 14 - 11.5
    image = LAYOUT.to_image(mel)
    assert image.shape == (2, 16, 20, 22)
    x = 2 * (mel - LAYOUT.floor) / (LAYOUT.ceil - LAYOUT.floor) - 1
    for k, i, j in [(0, 0, 0), (5, 3, 7), (15, 19, 21), (6, 10, 2)]:  # channel k = (row offset, column offset)
        assert torch.allclose(image[:, k, i, j], x[:, 4 * i + k // 4, 4 * j + k % 4])
    back = LAYOUT.to_mel(image)
    assert torch.allclose(back, mel.clamp(LAYOUT.floor, LAYOUT.ceil), atol=1e-5)


def test_layout_clamps_out_of_range_images_and_refuses_wrong_shapes():
    mel = LAYOUT.to_mel(torch.full((1, 16, 20, 22), 3.0))
    assert torch.allclose(mel, torch.full_like(mel, LAYOUT.ceil))
    with pytest.raises(WavefastError, match="expected log-mels"):
        LAYOUT.to_image(torch.zeros(1, 80, 87))
    with pytest.raises(WavefastError, match="divisible"):
        MelImageLayout(frames=87)


def test_the_shipped_preset_carries_a_layout_matching_its_images():
    spec = IMAGE_PRESETS["mel-digits"]
    assert mel_layout_of(spec).image_shape == spec.image_shape == (16, 20, 22)
    bad = spec.replace(extra={EXTRA_KEY: MelImageLayout(n_mels=64, frames=88).to_dict()})
    with pytest.raises(WavefastError, match="does not match"):
        mel_layout_of(bad)


def test_a_mel_model_round_trips_through_its_file_with_layout(tmp_path):
    from wavefast.images.checkpoints import load_image_model

    model = tiny_mel_model()
    path = save_image_model(model, tmp_path / "mel.safetensors", torch.float32)
    again = load_image_model(path)
    assert mel_layout_of(again.spec) == LAYOUT and again.spec.image_shape == (16, 20, 22)
    x = torch.randn(1, 16, 20, 22)
    assert torch.equal(model(x, torch.tensor([3.0])), again(x, torch.tensor([3.0])))


# --- pack and training ---------------------------------------------------------------------------
def _pack(path, n=6):
    rng = np.random.default_rng(0)
    np.savez(path, layout=np.array(json.dumps(LAYOUT.to_dict())),
             train_images=rng.uniform(-1, 1, (n, 16, 20, 22)).astype(np.float16), train_labels=np.arange(n),
             test_images=rng.uniform(-1, 1, (2, 16, 20, 22)).astype(np.float16), test_labels=np.arange(2))
    return path


def test_image_pack_loads_and_refuses_what_it_is_not(tmp_path):
    images, layout = load_image_pack(_pack(tmp_path / "p.npz"), "train")
    assert images.shape == (6, 16, 20, 22) and images.dtype == torch.float32 and layout == LAYOUT
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(WavefastError, match="not an image pack"):
        load_image_pack(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_text("no")
    with pytest.raises(WavefastError, match="not a readable"):
        load_image_pack(tmp_path / "junk.npz")


def test_the_image_trainer_trains_the_mel_preset_on_a_pack(tmp_path):
    from wavefast.images.checkpoints import load_image_model
    from wavefast.images.train import ImageTrainConfig, train_image_model

    config = ImageTrainConfig(out=str(tmp_path / "run"), dataset=str(_pack(tmp_path / "p.npz")), preset="mel-digits",
                              steps=2, batch_size=2, val_items=2, sample_grid=True)
    result = train_image_model(config)
    assert result["step"] == 2
    model = load_image_model(tmp_path / "run" / "model-ema.safetensors")
    assert mel_layout_of(model.spec) == LAYOUT and model.spec.dataset == "p"
    assert (tmp_path / "run" / "samples" / "step_0000002.png").is_file()
    again = ImageTrainConfig(out=str(tmp_path / "run2"), dataset=config.dataset, preset="mel-digits", steps=1,
                             batch_size=2, val_items=2, sample_grid=False,
                             init_from=str(tmp_path / "run" / "model-ema.safetensors"))
    from wavefast.images.train import ImageTrainer

    trainer = ImageTrainer(again)
    assert all(torch.equal(v.half().float(), model.state_dict()[k]) for k, v in trainer.model.state_dict().items())
    with pytest.raises(WavefastError, match="architecture or prediction"):
        ImageTrainer(ImageTrainConfig(out=str(tmp_path / "run3"), dataset=config.dataset, preset="mel-digits-eps",
                                      steps=1, batch_size=2, val_items=2, init_from=again.init_from))


# --- generator -------------------------------------------------------------------------------------
def test_two_stage_generator_gives_one_second_16k_clips_independent_of_the_batch():
    gen = tiny_generator()
    plan = gen.mel_plan(steps=3)
    together = gen.generate(3, plan, seed=5, batch_size=3, vocoder_steps=2)
    alone = gen.generate(1, plan, seed=[7], batch_size=1, vocoder_steps=2)
    assert together.shape == (3, 16000) and torch.isfinite(together).all()
    assert torch.allclose(together[2], alone[0], atol=1e-4)
    assert not torch.allclose(together[0], together[1])


def test_two_stage_stages_are_the_mel_sampler_then_the_vocoder_with_its_own_seed():
    from wavefast.images.generate import generate_images

    gen = tiny_generator()
    plan = gen.mel_plan(steps=3)
    mels = gen.mels(2, plan, seed=11)
    assert torch.allclose(mels, LAYOUT.to_mel(generate_images(gen.mel_model, 2, schedule=plan, kappa=0.0, seed=11)))
    audio = gen.generate(2, plan, seed=11, vocoder_steps=2)
    from wavefast.audio.io import resample
    from wavefast.pipeline import vocode

    wave = vocode(gen.vocoder, mels[1], steps=2, seed=12 ^ VOCODER_SEED_XOR).numpy()  # item 1: seed 11 + 1
    assert np.allclose(audio[1].numpy(), resample(wave, 22050, 16000)[:16000], atol=1e-4)


def test_two_stage_default_mel_plan_is_var_quadratic_with_20_steps_and_checks_the_vocoder():
    gen = tiny_generator()
    plan = gen.mel_plan()
    assert plan.name == "var-quadratic" and len(plan) == 20
    assert gen.mel_kappa(plan) == 0.0 and gen.mel_kappa(plan, 1.0) == 1.0  # DDIM-rev unless asked
    assert len(gen.mel_plan("step-linear", 5)) == 5
    with pytest.raises(WavefastError, match="expects"):
        TwoStageGenerator(tiny_mel_model(), random_diffwave(conditional=True).to(torch.float32).__class__(
            random_diffwave(conditional=True).spec.replace(sample_rate=16000)))
    with pytest.raises(WavefastError, match="mel layout"):
        TwoStageGenerator(DDPMUNet(IMAGE_PRESETS["tiny-28"]), random_diffwave(conditional=True))


def test_cli_generates_two_stage_clips_from_a_mel_checkpoint_and_resumes(tmp_path, capsys):
    mel = save_image_model(tiny_mel_model(), tmp_path / "mel.safetensors", torch.float32)
    voc = save_native(random_diffwave(conditional=True), tmp_path / "voc.safetensors")
    out = tmp_path / "gen"
    argv = ["generate", "-n", "3", "-o", str(out), "--checkpoint", str(mel), "--vocoder", str(voc), "--steps", "3",
            "--vocoder-steps", "2", "--batch-size", "2"]
    assert main(argv) == 0
    clips = [sf.read(out / f"sample_{i:05d}.wav") for i in range(3)]
    assert all(rate == 16000 and len(a) == 16000 for a, rate in clips)
    settings = json.loads((out / "manifest.json").read_text())["settings"]
    assert settings["vocoder_plan"] == "var-quadratic" and len(settings["vocoder_steps"]) == 2
    assert len(settings["steps"]) == 3
    first = (out / "sample_00001.wav").read_bytes()
    (out / "sample_00001.wav").unlink()
    assert main(argv) == 0  # resume redoes only the missing one, identically
    assert (out / "sample_00001.wav").read_bytes() == first
    assert main(argv[:-4] + ["--vocoder-steps", "3", "--batch-size", "2"]) == 2  # other settings: refused
    assert "other settings" in capsys.readouterr().err


def test_cli_refuses_vocoder_options_for_a_waveform_model(tmp_path, capsys):
    wave = save_native(random_diffwave(conditional=False), tmp_path / "w.safetensors")
    assert main(["generate", "-n", "1", "-o", str(tmp_path / "g"), "--checkpoint", str(wave),
                 "--vocoder-steps", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("wavefast: error:") == 1 and "two-stage" in err


# --- judges ----------------------------------------------------------------------------------------
def test_hard_label_inception_score_bounds():
    assert hard_label_inception_score(np.full(20, -1)) == pytest.approx(1.0)
    assert hard_label_inception_score(np.full(20, 3)) == pytest.approx(1.0)
    assert hard_label_inception_score(np.repeat(np.arange(10), 3)) == pytest.approx(10.0)
    half = hard_label_inception_score(np.array([0, 1] * 5 + [-1] * 10))
    # marginal: 0.3, 0.3, eight x 0.05; KL(one-hot) = ln(1/0.3), KL(uniform) = 0.2 ln(1/3) + 0.8 ln 2
    assert half == pytest.approx(np.exp(0.5 * (np.log(1 / 0.3) + 0.2 * np.log(1 / 3) + 0.8 * np.log(2))))
    scores = digit_scores(np.array([1, 2, -1, 4]), np.array([1, 3, 0, 4]))
    assert scores["recognised"] == 0.75 and scores["agreement"] == 0.5 and scores["n"] == 4


def test_half_sample_interval_of_a_mean_is_its_standard_error_interval_and_is_seeded():
    x = np.random.default_rng(1).normal(3.0, 1.0, 400)
    lo, hi = half_sample_interval(lambda idx: x[idx].mean(), len(x), 400, seed=4)
    assert (lo + hi) / 2 == pytest.approx(x.mean())
    expected = 1.96 * x.std(ddof=1) / np.sqrt(len(x))  # the textbook 95% half-width
    assert (hi - lo) / 2 == pytest.approx(expected, rel=0.15)
    assert (lo, hi) == half_sample_interval(lambda idx: x[idx].mean(), len(x), 400, seed=4)


def test_digit_recognizer_hears_real_digits_and_not_noise(shared_data):
    from wavefast.eval.digit_recognizer import DigitRecognizer
    from wavefast.eval.train_classifier import load_speech_commands

    clips, labels = load_speech_commands(shared_data / "speech_commands_digits")["train"]
    recognizer = DigitRecognizer()
    found = recognizer.labels(clips[::4])
    assert (found == labels[::4]).mean() >= 0.6
    noise = np.random.default_rng(0).standard_normal((5, 16000)).astype(np.float32) * 0.3
    assert (recognizer.labels(noise) == -1).all()


def test_sc09_sweep_of_a_two_stage_model_scores_both_stages_with_intervals_and_resumes(tmp_path):
    from wavefast.eval.sweep import configurations, sc09_sweep

    gen = tiny_generator()
    configs = configurations(["step-linear"], [3], [0.0], full_chain=False)
    rows = sc09_sweep(gen, 4, tmp_path / "sw", configs, batch_size=2, resamples=5, griffin_lim=True)
    row = rows[0]
    assert row["S"] == 3 and row["FID lo"] <= row["FID hi"] and row["GL IS lo"] <= row["GL IS hi"]
    table = (tmp_path / "sw" / "sweep.md").read_text()
    assert "GL FID" in table and "PS agree" not in table and f"{row['FID']:.4g} [" in table
    from wavefast.eval.sweep import sc09_anchor_rows

    clips = np.random.default_rng(0).standard_normal((4, 16000)).astype(np.float32) * 0.1
    rows = sc09_anchor_rows(gen, clips, tmp_path / "sw", resamples=5, griffin_lim=False)
    assert [r["schedule"] for r in rows] == ["step-linear", "anchor: real held-out clips", "anchor: real mel -> vocoder"]
    again = sc09_sweep(gen, 4, tmp_path / "sw", configs, batch_size=2, resamples=5)  # resumes: no new work
    assert again[0]["wall_s"] == row["wall_s"]
    table = (tmp_path / "sw" / "sweep.md").read_text()
    assert "| anchor: real held-out clips | - | - |" in table  # anchors survive the resumed sweep


def test_mel_stage_recipe_composes_builds_its_pack_once_and_trains(tmp_path):
    pytest.importorskip("hydra")
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from wavefast.digits.recipe import run_mel_stage_recipe

    rng = np.random.default_rng(0)
    for take in range(7):  # takes 0-4 are FSDD's test split
        x = np.sin(2 * np.pi * 300 * np.arange(4000) / 8000) * np.hanning(4000) + 0.01 * rng.standard_normal(4000)
        path = tmp_path / "data" / "fsdd" / "recordings" / f"{take % 10}_anna_{take}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), x.astype(np.float32), 8000, subtype="PCM_16")
    conf = Path(__file__).resolve().parents[1] / "recipes" / "conf" / "digits"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose(config_name="mel_stage", overrides=[f"out={tmp_path}/run", f"data.root={tmp_path}/data",
                                                          "data.speech_commands=null", "train.steps=1",
                                                          "train.batch_size=2", "device=cpu"])
    recipe = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert run_mel_stage_recipe(recipe)["step"] == 1
    images, layout = load_image_pack(tmp_path / "run" / "pack.npz", "train")
    assert images.shape == (2, 16, 20, 22) and layout == LAYOUT  # takes 5 and 6
    stamp = (tmp_path / "run" / "pack.npz").stat().st_mtime_ns
    recipe["train"]["steps"] = 2
    assert run_mel_stage_recipe(recipe)["step"] == 2  # resumed, pack reused
    assert (tmp_path / "run" / "pack.npz").stat().st_mtime_ns == stamp
    with pytest.raises(WavefastError, match="unknown mel-stage recipe keys"):
        run_mel_stage_recipe({**recipe, "train": {**recipe["train"], "stpes": 3}})


def test_a_v_prediction_model_returns_eps_from_its_v_output_and_keeps_it_through_its_file(tmp_path):
    from wavefast.images.checkpoints import load_image_model
    from wavefast.schedules import LinearBetaSchedule

    model = DDPMUNet(tiny_mel_model().spec.replace(prediction="v")).eval()
    with torch.no_grad():
        model.conv_out.weight.zero_()
        model.conv_out.bias.fill_(0.5)  # v = 0.5 everywhere
    x, t = torch.randn(2, 16, 20, 22), torch.tensor([3.0, 57.5])
    a = LinearBetaSchedule.from_spec(model.spec.diffusion).alpha_bar(t.double()).float().view(-1, 1, 1, 1)
    assert torch.allclose(model(x, t), a.sqrt() * 0.5 + (1 - a).sqrt() * x, atol=1e-6)
    again = load_image_model(save_image_model(model, tmp_path / "v.safetensors", torch.float32))
    assert again.spec.prediction == "v" and torch.allclose(again(x, t), model(x, t))
    with pytest.raises(WavefastError, match="prediction"):
        model.spec.replace(prediction="x0")


def test_pack_digit_mels_refuses_missing_folders_with_one_line(tmp_path, capsys):
    out = tmp_path / "pack.npz"
    assert main(["pack-digit-mels", "--fsdd", str(tmp_path / "nope"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("wavefast: error:") == 1 and "FSDD recordings folder not found" in err and not out.exists()
    (tmp_path / "fsdd").mkdir()
    assert main(["pack-digit-mels", "--fsdd", str(tmp_path / "fsdd"), "--speech-commands", str(tmp_path / "sc"),
                 "-o", str(out)]) == 2
    assert "Speech Commands folder not found" in capsys.readouterr().err and not out.exists()


def test_the_sweep_resolves_a_two_stage_models_plans_on_its_mel_stage(tmp_path):
    """A plan learned for the mel stage is that model's plan: the SC09 sweep of the two-stage generator runs it
    (it was refused before, checked against the pair's own hash)."""
    from wavefast.eval.sweep import _run
    from wavefast.learn.artifacts import learned_plan, save_learned
    from wavefast.schedules import make_plan
    from wavefast.schedules.resolve import diffusion_of

    gen = tiny_generator()
    plan = make_plan(diffusion_of(gen.mel_model), "var-linear", 3)
    path = save_learned(learned_plan(plan, gen.mel_model, learner="errbound", kappa=0.0, objective={}, init="x"),
                        tmp_path / "eb3.json")
    seen = []
    rows = _run([(str(path), None, 0.0)], lambda p, k: seen.append(p) or {"sampling_s": 0.0, "FID": 1.0},
                tmp_path / "sweep", {"title": "t"}, ["FID"], gen)
    assert len(rows) == 1 and rows[0]["S"] == 3 and list(seen[0].steps) == list(plan.steps)


# --- synthesised digit words -------------------------------------------------------------------
def _fake_engine(folder, fail_on=None):
    """A stand-in ``espeak-ng`` on PATH: writes a 0.5 s tone into the file after ``-w`` (exit 1 on ``fail_on``)."""
    import sys

    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "espeak-ng"
    script.write_text(f"""#!{sys.executable}
import sys, numpy as np, soundfile as sf
argv = sys.argv[1:]
if argv[-1] == {fail_on!r}:
    sys.stderr.write("voice not found\\n"); sys.exit(1)
rate = int(argv[argv.index("-s") + 1])
sf.write(argv[argv.index("-w") + 1], 0.3 * np.sin(np.arange(11025) * rate / 1000.0).astype(np.float32), 22050)
""")
    script.chmod(0o755)
    return folder


def test_synthetic_take_settings_depend_only_on_seed_digit_and_take_and_spread_over_engines():
    from wavefast.digits.synth import RATE_RANGE, Voice, take_settings

    voices = [Voice("espeak-ng", f"en-us+m{i}") for i in range(1, 8)] + [Voice("flite", "slt")]
    first = [take_settings(voices, 0, 3, k) for k in range(40)]
    assert first == [take_settings(list(voices), 0, 3, k) for k in range(40)]  # a pure function
    assert take_settings(voices, 1, 3, 0) != first[0] or take_settings(voices, 1, 3, 1) != first[1]
    engines = [v.engine for v, _, _ in first]
    assert 10 <= engines.count("flite") <= 30  # engine first, then voice: flite's one voice is not 1 in 8
    assert all(RATE_RANGE[0] <= r <= RATE_RANGE[1] and 0.2 <= p <= 0.8 for _, r, p in first)
    assert Voice("espeak-ng", "en-gb-x-rp+f3").tag == "esengbxrpf3"


def test_engine_commands_are_argument_lists_with_the_word_rate_and_output(tmp_path):
    from wavefast.digits.synth import Voice, engine_command

    wav, text = tmp_path / "o.wav", tmp_path / "w.txt"
    es = engine_command(Voice("espeak-ng", "en-us+f2"), "seven; rm -rf /", 1.2, 0.5, wav, text)
    assert es[:3] == ["espeak-ng", "-v", "en-us+f2"] and es[-1] == "seven; rm -rf /" and str(wav) in es
    assert es[es.index("-s") + 1] == "198" and es[es.index("-p") + 1] == "50"
    fl = engine_command(Voice("flite", "slt"), "two", 0.8, 0.0, wav, text)
    assert "duration_stretch=1.250" in fl and fl[fl.index("-t") + 1] == "two"
    fe = engine_command(Voice("festival", "kal_diphone"), "nine", 1.0, 0.5, wav, text)
    assert fe[0] == "text2wave" and "(voice_kal_diphone)" in fe and text.read_text() == "nine\n"
    with pytest.raises(WavefastError, match="allowed: espeak-ng, flite, festival"):
        engine_command(Voice("say", "x"), "one", 1.0, 0.5, wav, text)


def test_synth_digits_writes_fsdd_named_clips_resumes_and_fails_with_one_line(tmp_path, monkeypatch, capsys):
    import os

    from wavefast.digits.synth import Voice, synthesize_digits

    monkeypatch.setenv("PATH", f"{_fake_engine(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}")
    voices = [Voice("espeak-ng", "en-us+m1"), Voice("espeak-ng", "en-gb+f2")]
    paths = synthesize_digits(tmp_path / "clips", 2, voices=voices, progress=False)
    assert len(paths) == 20 and all(p.is_file() for p in paths)
    assert sorted(int(p.name[0]) for p in paths) == sorted(list(range(10)) * 2)
    assert not list((tmp_path / "clips").glob("*.part"))
    stamp = paths[0].stat().st_mtime_ns
    assert synthesize_digits(tmp_path / "clips", 3, voices=voices, progress=False)[:20] == paths
    assert paths[0].stat().st_mtime_ns == stamp and len(list((tmp_path / "clips").glob("*.wav"))) == 30

    (tmp_path / "afile").write_text("x")
    with pytest.raises(WavefastError, match="is a file, not a folder"):
        synthesize_digits(tmp_path / "afile", 1, voices=voices, progress=False)
    _fake_engine(tmp_path / "bin", fail_on="zero")
    with pytest.raises(WavefastError, match="espeak-ng failed on 'zero' .*voice not found"):
        synthesize_digits(tmp_path / "bad", 1, voices=voices, progress=False)
    assert not list((tmp_path / "bad").glob("*"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert main(["synth-digits", "-o", str(tmp_path / "none"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("wavefast: error:") == 1 and "no TTS engine found" in err


@pytest.mark.skipif(__import__("shutil").which("espeak-ng") is None, reason="espeak-ng not installed")
def test_espeak_ng_says_a_digit_the_shipped_classifier_recognises(tmp_path):
    from wavefast.digits.data import load_synthetic_clips
    from wavefast.digits.synth import Voice, synthesize_digits
    from wavefast.eval.classifier import classify, load_sc09_classifier

    synthesize_digits(tmp_path, 1, voices=[Voice("espeak-ng", "en-us+m3")], progress=False)
    clips, labels = load_synthetic_clips(tmp_path)
    probs = classify(load_sc09_classifier(), clips)[0]
    assert (probs.argmax(1) == labels).mean() >= 0.7


def test_a_synthetic_folder_goes_into_the_train_split_only(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name, rate in [(f"{t % 10}_anna_{t}.wav", 8000) for t in range(7)] + [("4_esenusm1_0.wav", 22050),
                                                                              ("7_flslt_3.wav", 16000)]:
        folder = tmp_path / ("fsdd" if "anna" in name else "synth")
        folder.mkdir(exist_ok=True)
        x = np.sin(2 * np.pi * 300 * np.arange(rate // 2) / rate) * np.hanning(rate // 2)
        sf.write(str(folder / name), (x + 0.01 * rng.standard_normal(rate // 2)).astype(np.float32), rate)
    plain, mixed = tmp_path / "plain.npz", tmp_path / "mixed.npz"
    assert main(["pack-digit-mels", "--fsdd", str(tmp_path / "fsdd"), "-o", str(plain)]) == 0
    assert main(["pack-digit-mels", "--fsdd", str(tmp_path / "fsdd"), "--synthetic", str(tmp_path / "synth"),
                 "-o", str(mixed)]) == 0
    a, b = np.load(plain), np.load(mixed)
    assert a["train_images"].shape[0] == 2 and b["train_images"].shape[0] == 4
    assert np.array_equal(b["train_images"][:2], a["train_images"]) and list(b["train_labels"][2:]) == [4, 7]
    assert np.array_equal(b["test_images"], a["test_images"]) and np.array_equal(b["test_labels"], a["test_labels"])
    capsys.readouterr()
    assert main(["pack-digit-mels", "--fsdd", str(tmp_path / "fsdd"), "--synthetic", str(tmp_path / "nope"),
                 "-o", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("wavefast: error:") == 1 and "synthetic clips folder not found" in err
    assert not (tmp_path / "x.npz").exists()
