"""The contract across entry points: the same seed gives the same audio everywhere.

Entry points {CLI vocode, wavefast.vocode, Vocoder (torch), Vocoder (ONNX), batched, chunked,
streamed} x plan kinds {FastDPM rule plan, published preset, JSON noise list, learned GGDM plan, solver plan}
x kappa {0, 1}: every output equals ``wavefast.vocode`` within 1e-4 (16-bit files within one LSB
more). Plus the unconditional path: API, CLI and ONNX ``generate``.
"""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

import wavefast
from wavefast.cli import main
from wavefast.learn.artifacts import learned_plan, save_learned
from wavefast.learn.ggdm import GGDMSampler
from wavefast.models.checkpoints import save_native
from wavefast.pipeline import generate_with
from wavefast.schedules import LinearBetaSchedule, make_plan
from wavefast.vocoder import Vocoder
from tiny_diffwave import random_diffwave

TOL = 1e-4
LSB = 1.0 / 32768
SCHEDULE = LinearBetaSchedule(50, 1e-4, 0.05)


def _quiet_model(conditional=True):
    """A random tiny DiffWave (files clip its samples to [-1, 1]: compare those clipped)."""
    return random_diffwave(conditional=conditional, seed=3)


def _mel(frames, seed):
    return -6.0 + 2.0 * torch.randn(80, frames, generator=torch.Generator().manual_seed(seed))


def _learned(model, kappa, tmp_path):
    sampler = GGDMSampler(SCHEDULE, make_plan(SCHEDULE, "var-quadratic", 4), kappa=kappa)
    with torch.no_grad():
        sampler.d_eps.add_(torch.tril(torch.full((4, 4), 0.01)))
        sampler.timesteps.logits.add_(torch.tensor([0.2, -0.1, 0.05]))
    plan = learned_plan(sampler.to_plan("learned-4"), model, learner="ddss", kappa=kappa, objective={},
                        init="var-quadratic")
    path = tmp_path / f"learned-k{kappa:g}.json"
    save_learned(plan, path)
    return str(path)


def _plan_args(kind, kappa, model, tmp_path):
    """(plan argument, steps, kappa to pass) for a plan kind."""
    if kind == "rule":
        return "var-quadratic", 4, kappa
    if kind == "preset":
        return "diffwave-base-6", None, kappa
    if kind == "solver":  # DPM-Solver++(2M): deterministic by construction; kappa 0 given explicitly, or its own
        return "dpm-solver++2m", 4, 0.0 if kappa == 0.0 else None
    if kind == "noise-list":
        path = tmp_path / "list.json"
        path.write_text(json.dumps({"name": "list-4", "betas": [2e-4, 5e-3, 0.08, 0.5]}))
        return str(path), None, kappa
    return _learned(model, kappa, tmp_path), None, None  # a learned plan brings its own kappa


@pytest.mark.parametrize("kappa", [0.0, 1.0])
@pytest.mark.parametrize("kind", ["rule", "preset", "noise-list", "learned", "solver"])
def test_every_entry_point_gives_the_same_audio(tmp_path, capsys, kind, kappa):
    model = _quiet_model()
    plan_arg, steps, kappa_arg = _plan_args(kind, kappa, model, tmp_path)
    plan = wavefast.resolve_plan(model, plan_arg, steps)
    mels = [_mel(40, 1), _mel(23, 2), _mel(40, 3)]
    seeds = [7, 8, 9]
    reference = [wavefast.vocode(model, m, plan=plan_arg, steps=steps, kappa=kappa_arg, seed=s)
                 for m, s in zip(mels, seeds)]

    def close(a, b, tol=TOL):
        return float((torch.as_tensor(a) - b).abs().max()) <= tol

    # Vocoder, torch backend: one by one and as one padded batch of mixed lengths
    voc = Vocoder(model, plan, kappa_arg)
    for m, s, ref in zip(mels, seeds, reference):
        assert close(voc(m[None], seeds=[s])[0][0], ref)
    padded = torch.full((3, 80, 40), -11.5)
    for i, m in enumerate(mels):
        padded[i, :, :m.shape[1]] = m
    batch, lengths = voc(padded, lengths=[m.shape[1] for m in mels], seeds=seeds)
    for i, ref in enumerate(reference):
        assert close(batch[i, :lengths[i]], ref) and torch.all(batch[i, lengths[i]:] == 0)

    # CLI (16-bit file)
    ckpt = save_native(model, tmp_path / "m.safetensors", dtype=torch.float32)
    mel_file = tmp_path / "x.npy"
    np.save(mel_file, mels[0].numpy())
    argv = ["vocode", str(mel_file), "-o", str(tmp_path / "cli.wav"), "--checkpoint", str(ckpt), "--plan", plan_arg,
            "--seed", str(seeds[0])] + (["--steps", str(steps)] if steps else []) + \
        (["--kappa", str(kappa_arg)] if kappa_arg is not None else [])
    assert main(argv) == 0, capsys.readouterr().err
    cli_audio, _ = sf.read(tmp_path / "cli.wav", dtype="float32")
    assert close(cli_audio, reference[0].clamp(-1, 1), TOL + LSB)

    # long form: chunked and streamed equal the whole utterance
    long_mel = _mel(160, 4)
    whole = wavefast.vocode(model, long_mel, plan=plan_arg, steps=steps, kappa=kappa_arg, seed=5, chunk_seconds=100)
    chunked_voc = Vocoder(model, plan, kappa_arg, chunk_seconds=0.3)
    assert close(chunked_voc.vocode_long(long_mel, seed=5), whole)
    pieces = [long_mel[:, a:a + k] for a, k in zip((0, 5, 45, 46, 100), (5, 40, 1, 54, 60))]
    assert close(torch.cat(list(chunked_voc.stream(iter(pieces), seed=5))), whole)
    parallel = Vocoder(model, plan, kappa_arg, chunk_seconds=100, workers=3)  # chunks on 3 threads
    assert parallel._piece_frames(160) is not None  # the utterance really is split
    assert close(parallel.vocode_long(long_mel, seed=5), whole)
    assert close(parallel(long_mel[None], seeds=[5])[0][0], whole)

    # ONNX backend (the exported full graph, noise drawn by the same Vocoder)
    pytest.importorskip("onnxruntime")
    from wavefast.runtime.onnx_export import export_onnx

    export_onnx(model, plan, tmp_path / "m.onnx", kappa=kappa_arg)
    onnx_voc = Vocoder.from_pretrained(tmp_path / "m.onnx", chunk_seconds=0.3)
    assert onnx_voc.kappa == voc.kappa
    onnx_batch, _ = onnx_voc(padded, lengths=[m.shape[1] for m in mels], seeds=seeds)
    for i, ref in enumerate(reference):
        assert close(onnx_batch[i, :lengths[i]], ref)
    assert close(onnx_voc.vocode_long(long_mel, seed=5), whole)
    onnx_parallel = Vocoder.from_pretrained(tmp_path / "m.onnx", chunk_seconds=100, threads=1, workers=2)
    assert close(onnx_parallel.vocode_long(long_mel, seed=5), whole)


def test_unconditional_entry_points_agree(tmp_path, capsys):
    model = _quiet_model(conditional=False)
    api = wavefast.generate(model, 3, plan="step-linear", steps=4, kappa=1.0, seed=11, batch_size=2)
    ckpt = save_native(model, tmp_path / "u.safetensors", dtype=torch.float32)
    assert main(["generate", "-n", "3", "-o", str(tmp_path / "gen"), "--checkpoint", str(ckpt), "--plan",
                 "step-linear", "--steps", "4", "--kappa", "1", "--seed", "11", "--batch-size", "3"]) == 0
    for i in range(3):
        audio, _ = sf.read(tmp_path / "gen" / f"sample_{i:05d}.wav", dtype="float32")
        assert float(np.abs(audio - api[i].clamp(-1, 1).numpy()).max()) <= TOL + LSB
    pytest.importorskip("onnxruntime")
    from wavefast.runtime.onnx_export import export_onnx
    from wavefast.runtime.ort_backend import OnnxBackend

    export_onnx(model, wavefast.resolve_plan(model, "step-linear", 4), tmp_path / "u.onnx", kappa=1.0)
    onnx = generate_with(OnnxBackend(tmp_path / "u.onnx"), 3, seed=11)
    assert float((onnx - api).abs().max()) <= TOL


def test_kappa_of_a_learned_plan_is_its_own(tmp_path, capsys):
    model = _quiet_model()
    path = _learned(model, 1.0, tmp_path)
    ckpt = save_native(model, tmp_path / "m.safetensors", dtype=torch.float32)
    mel_file = tmp_path / "x.npy"
    np.save(mel_file, _mel(10, 0).numpy())
    code = main(["vocode", str(mel_file), "-o", str(tmp_path / "y.wav"), "--checkpoint", str(ckpt), "--plan", path,
                 "--kappa", "0"])
    assert code == 2 and "noise scales were learned" in capsys.readouterr().err
    pytest.importorskip("onnxruntime")
    from wavefast.runtime.onnx_export import export_onnx

    report = export_onnx(model, wavefast.resolve_plan(model, path), tmp_path / "l.onnx")
    assert report["kappa"] == "1.0" and int(report["stochastic_steps"]) == 3  # S - 1 noise draws, recorded
