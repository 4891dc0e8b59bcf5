"""The source-filter DiffWave family: its maths checked against direct formulas, the front-door
contracts (batched, chunked, streamed) with F0 predicted from the mel, training and file round trips."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import wavefast
from wavefast.audio.pitch import (aligned_phase, fill_unvoiced, frames_to_samples, phase_at_frame, phase_track,
                                  pitch_errors)
from wavefast.models.checkpoints import load_model, save_native
from wavefast.models.harmonic import excitation, harmonic_basis, harmonic_sum
from wavefast.models.prior import apply_envelope, envelope_gains
from wavefast.models.sourcefilter import SourceFilterDiffWave
from wavefast.models.spec import DiffusionSpec, ModelSpec, SourceFilterConfig
from wavefast.models.subband import haar_analysis, haar_synthesis
from wavefast.vocoder import Vocoder

SR, HOP, TOL = 22050, 256, 1e-4


def tiny_sf(harmonic_mean=True, prior="shaped", excitation_on=True, levels=2, seed=0, mel_projection=False):
    cfg = SourceFilterConfig(residual_channels=8, residual_layers=3, dilation_cycle=2, subband_levels=levels,
                             frame_channels=16, frame_layers=1, prior=prior, excitation=excitation_on,
                             harmonic_mean=harmonic_mean, mel_projection=mel_projection, harmonics=24, harmonic_channels=16, harmonic_layers=1,
                             pitch_channels=16, pitch_layers=1)
    spec = ModelSpec(cfg, DiffusionSpec(20, 1e-4, 0.3), sample_rate=SR, mel_frontend="tacotron2", name="sf-tiny")
    torch.manual_seed(seed)
    model = SourceFilterDiffWave(spec).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model


def _mel(frames, seed=0):
    return -6.0 + 1.5 * torch.randn(80, frames, generator=torch.Generator().manual_seed(seed))


# --- the maths -------------------------------------------------------------------------------------------
def test_haar_is_orthonormal_and_invertible():
    x = torch.randn(3, 1, 64, generator=torch.Generator().manual_seed(0))
    for levels in (1, 2, 3):
        bands = haar_analysis(x, levels)
        assert bands.shape == (3, 2 ** levels, 64 // 2 ** levels)
        assert torch.allclose(bands.norm(), x.norm(), rtol=1e-6)
        assert torch.allclose(haar_synthesis(bands, levels), x, atol=1e-6)
    with pytest.raises(wavefast.WavefastError, match="even length"):
        haar_analysis(torch.zeros(1, 1, 7), 1)


def test_envelope_filter_is_the_identity_at_unit_gains_and_white_noise_gives_unit_gains():
    z = torch.randn(2, 1, 20 * HOP, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(apply_envelope(z, torch.ones(2, 257, 21)), z, atol=1e-5)
    noise = torch.randn(4 * SR, generator=torch.Generator().manual_seed(2))
    mel = wavefast.audio.mel.mel_spectrogram(noise, "tacotron2", SR)[None]
    gains = envelope_gains(mel, SR)
    assert abs(float(gains.mean()) - 1.0) < 0.05  # white noise's own mel maps to gains ~1
    # a filter that halves every bin halves the signal; the shaped noise follows the envelope
    assert torch.allclose(apply_envelope(z, torch.full((2, 257, 21), 0.5)), 0.5 * z, atol=1e-5)


def test_excitation_closed_form_equals_the_explicit_harmonic_sum():
    g = torch.Generator().manual_seed(3)
    phase = torch.rand(2, 4000, generator=g) * 2 * math.pi
    phase[0, :10] = torch.linspace(0, 2e-3, 10)  # near the 0/0 point
    f0 = 60 + 400 * torch.rand(2, 4000, generator=g)
    voicing = torch.rand(2, 4000, generator=g)
    e = excitation(phase, f0, voicing, 64, SR)
    count = (torch.ceil(0.47 * SR / f0.double()) - 1).clamp(1, 64)
    k = torch.arange(1, 65, dtype=torch.float64)
    present = (k <= count[..., None]).double()
    angles = phase.double()[..., None] * k
    ref = torch.stack([(torch.cos(angles) * present).sum(-1), (torch.sin(angles) * present).sum(-1)], 1)
    ref = ref * (voicing.double() / torch.sqrt(count / 2))[:, None]
    assert float((e.double() - ref).abs().max()) < 2e-3  # float32 phase times K ~ 1e-4 relative


def test_harmonic_sum_equals_the_per_sample_formula():
    g = torch.Generator().manual_seed(4)
    frames, K = 6, 10
    coeff = torch.randn(1, 2 * K, frames + 1, generator=g)
    length = frames * HOP
    f0 = frames_to_samples(100 + 50 * torch.rand(1, frames + 1, generator=g), length, HOP)
    phase = phase_track(100 + 0 * torch.ones(1, frames + 1), length, HOP, SR)
    got = harmonic_sum(coeff, phase, f0, HOP, SR)
    a = frames_to_samples(coeff, length, HOP)  # linear interpolation between frame centres
    basis = harmonic_basis(phase, f0, K, SR)  # (1, L, 2K)
    ref = (a.permute(0, 2, 1) * basis).sum(-1)
    assert torch.allclose(got, ref, atol=1e-4)


def test_phase_track_windows_equal_the_whole_track():
    f0 = torch.from_numpy(fill_unvoiced(np.concatenate([np.zeros(3), 120 + 40 * np.sin(np.arange(60) / 5),
                                                        np.zeros(4)])))[None]
    frames = f0.shape[-1]
    whole = phase_track(f0, frames * HOP, HOP, SR)
    for start in (0, 7, 31):
        stop = min(frames, start + 20)
        window = phase_track(f0[:, start:stop + 1], (stop - start) * HOP, HOP, SR,
                             phase_at_frame(f0, start, HOP, SR))
        diff = torch.remainder(window - whole[:, start * HOP:stop * HOP] + math.pi, 2 * math.pi) - math.pi
        assert float(diff.abs().max()) < 1e-4
    # the phase advances by 2 pi f / sr per sample for a constant F0
    constant = phase_track(torch.full((1, 5), 220.0), 4 * HOP, HOP, SR)
    step = torch.remainder(constant[0, 1:] - constant[0, :-1], 2 * math.pi)
    assert torch.allclose(step, torch.full_like(step, 2 * math.pi * 220 / SR), atol=1e-5)


def test_aligned_phase_recovers_the_phase_of_a_harmonic_signal():
    n = SR
    t = np.arange(n) / SR
    true_phase = 2 * np.pi * 180 * t + 0.8  # a constant offset the integrated phase does not know
    x = 0.3 * np.cos(true_phase) + 0.1 * np.cos(2 * true_phase + 0.3)
    f0 = np.full(n // HOP + 1, 180.0)
    got = aligned_phase(x, f0, HOP, SR)
    diff = np.angle(np.exp(1j * (got - true_phase)))[2048:-2048]
    assert np.abs(diff).max() < 0.05


def test_pitch_errors():
    ref, voiced = np.array([100, 200, 0, 150.0]), np.array([1, 1, 0, 1], bool)
    out = pitch_errors(ref, voiced, np.array([100, 300, 120, 150.0]), np.array([1, 1, 1, 1], bool))
    assert out["gpe"] == pytest.approx(1 / 3) and out["vde"] == pytest.approx(1 / 4)


def test_denoise_is_the_prior_filter_of_the_white_prediction_and_finish_adds_the_mean():
    model = tiny_sf()
    mel = _mel(9)[None]
    prep = model.prepare(mel, 8 * HOP)
    y = torch.randn(1, 1, 8 * HOP, generator=torch.Generator().manual_seed(5))
    t = torch.tensor([3.5])
    assert torch.allclose(model.denoise(y, t, prep), apply_envelope(model.predict_white(y, t, prep), prep.gains),
                          atol=1e-6)
    assert prep.mean is not None and torch.allclose(model.finish(y, prep), y + prep.mean)
    plain = tiny_sf(harmonic_mean=False, prior="standard")
    p2 = plain.prepare(mel, 8 * HOP)
    assert p2.mean is None and p2.gains is None and torch.equal(plain.shape_noise(y, p2), y)


def _voiced_signal(length, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length, dtype=torch.float64) / SR
    f0 = 140 + 30 * torch.sin(2 * math.pi * 1.5 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / SR
    s = sum(torch.sin(k * phase) / k for k in range(1, 12)) * 0.1
    return (s + 0.01 * torch.randn(length, generator=g, dtype=torch.float64)).float()


def test_mel_projection_keeps_a_consistent_signal_sets_band_energies_and_is_scale_free():
    from wavefast.audio.mel import mel_spectrogram
    from wavefast.models.projection import mel_consistent_eps, project_onto_mel

    length = 40 * HOP
    s = _voiced_signal(length)
    log_mel = mel_spectrogram(s, "tacotron2", SR)[None]  # (1, 80, 41)
    assert log_mel.shape[-1] == length // HOP + 1
    inner = slice(4 * HOP, length - 4 * HOP)
    # a signal whose mel already is the target comes back unchanged (STFT, unit gains, ISTFT)
    same = project_onto_mel(s[None, None], log_mel, SR)[0, 0]
    assert float((same - s)[inner].abs().max()) < 1e-2 * float(s.abs().max())  # bands at the log floor: ~0.3%
    # a wrong-level, noisy x0 moves towards the target's band energies
    x0 = 3.0 * s + 0.05 * torch.randn(length, generator=torch.Generator().manual_seed(3))
    projected = project_onto_mel(x0[None, None], log_mel, SR)[0, 0]
    before = (mel_spectrogram(x0, "tacotron2", SR) - log_mel[0])[:, 2:-2].abs().mean()
    after = (mel_spectrogram(projected, "tacotron2", SR) - log_mel[0])[:, 2:-2].abs().mean()
    assert float(after) < 0.3 * float(before)
    # the level of x0 does not matter (within the gain range): only its phase and spectral detail do
    assert torch.allclose(project_onto_mel(0.25 * x0[None, None], log_mel, SR), projected[None, None], atol=1e-5)
    # eps' implies exactly the projected x0 at that noise level, with and without a mean
    x = torch.randn(2, 1, length, generator=torch.Generator().manual_seed(4))
    eps = torch.randn(2, 1, length, generator=torch.Generator().manual_seed(5))
    a = torch.tensor([0.3, 0.9])
    mean = 0.1 * s[None, None].expand(2, 1, -1)
    for mu in (None, mean):
        refined = mel_consistent_eps(x, eps, a, log_mel.expand(2, -1, -1), SR, mu)
        root_a, root_1a = a.sqrt().view(-1, 1, 1), (1 - a).sqrt().view(-1, 1, 1)
        x0 = (x - root_1a * eps) / root_a + (0 if mu is None else mu)
        implied = (x - root_1a * refined) / root_a + (0 if mu is None else mu)
        assert torch.allclose(implied, project_onto_mel(x0, log_mel.expand(2, -1, -1), SR), atol=1e-4)


# --- the front door ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["mean", "excitation", "standard", "projection"])
def test_vocoder_contracts_hold_for_source_filter_models(kind):
    model = {"mean": tiny_sf(), "excitation": tiny_sf(harmonic_mean=False),
             "standard": tiny_sf(harmonic_mean=False, prior="standard", excitation_on=False),
             "projection": tiny_sf(harmonic_mean=False, mel_projection=True)}[kind]  # the shipped kind
    plan = wavefast.resolve_plan(model, "var-quadratic", 3)
    voc = Vocoder(model, plan, 1.0, chunk_seconds=0.4)
    mel = _mel(150, 6)
    whole = voc._window(mel[None], 150, [3], 0, voc._slice_tracks(voc.backend.analyse(mel[None]), 0, 150, voc.spec))[0]
    assert torch.isfinite(whole).all() and whole.abs().max() > 0
    assert float((voc.vocode_long(mel, seed=3) - whole).abs().max()) <= TOL
    pieces = [mel[:, a:b] for a, b in ((0, 3), (3, 60), (60, 61), (61, 150))]
    assert float((torch.cat(list(voc.stream(iter(pieces), seed=3))) - whole).abs().max()) <= TOL
    batch = torch.full((2, 80, 40), -11.5)
    batch[0], batch[1, :, :25] = mel[:, :40], mel[:, 50:75]
    audio, lengths = voc(batch, lengths=[40, 25], seeds=[1, 2])
    alone = voc(mel[None, :, 50:75], seeds=[2])[0][0]
    # batched F0 differs from the solo F0 by float rounding (~1e-6 relative, machine dependent), which the
    # harmonic phase integrates: 1.9e-4 on a 0.34-peak item measured on an AMD EPYC; padding that leaked into
    # the item would change it by the signal's own size
    assert float((audio[1, :25 * HOP] - alone).abs().max()) <= 1e-3 and lengths.tolist() == [40 * HOP, 25 * HOP]
    # a user-supplied F0 changes the excitation (the network does listen to it)
    if kind != "standard":
        tracks = voc.backend.analyse(mel[None, :, :40])
        shifted = {k: v.clone() for k, v in tracks.items()}
        shifted["f0"] = shifted["f0"] * 1.5
        shifted["voicing"] = torch.ones_like(shifted["voicing"])
        a = voc._window(mel[None, :, :40], 40, [1], 0, voc._slice_tracks(tracks, 0, 40, voc.spec))
        b = voc._window(mel[None, :, :40], 40, [1], 0, voc._slice_tracks(shifted, 0, 40, voc.spec))
        assert float((a - b).abs().max()) > 1e-3


def test_native_file_round_trip_and_from_pretrained(tmp_path):
    model = tiny_sf()
    path = save_native(model, tmp_path / "sf.safetensors", dtype=torch.float32)
    back = load_model(path)
    assert isinstance(back, SourceFilterDiffWave) and back.spec == model.spec
    mel = _mel(12, 7)
    a = wavefast.vocode(model, mel, plan="var-linear", steps=2, seed=4)
    b = Vocoder.from_pretrained(path, plan="var-linear", steps=2)(mel[None], seeds=[4])[0][0]
    assert float((a - b).abs().max()) <= TOL


# --- training --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def voiced_pack(tmp_path_factory):
    sf = pytest.importorskip("soundfile")
    from wavefast.data import pack_sources

    root = tmp_path_factory.mktemp("sfpack")
    rng = np.random.default_rng(0)
    n = int(0.6 * SR)
    t = np.arange(n) / SR
    for i, f0 in enumerate((140.0, 190.0, 230.0, 170.0)):
        phase = 2 * np.pi * f0 * (t + 0.2 * t ** 2)
        x = sum(0.15 / k * np.cos(k * phase) for k in range(1, 8)) + 0.01 * rng.standard_normal(n)
        (root / "data").mkdir(exist_ok=True)
        sf.write(str(root / "data" / f"utt{i}.wav"), x.astype(np.float32), SR, subtype="PCM_16")
    pack_sources([(root / "data", "folder")], root / "pack.npz", holdout="utt3", progress=False)
    return root / "pack.npz"


def test_training_lowers_every_loss_and_resumes_exactly(tmp_path, voiced_pack):
    from wavefast.train import TrainConfig, Trainer, model_config

    mc = model_config("vocoder-sf-tiny", harmonic_mean=True)
    config = TrainConfig(pack=str(voiced_pack), out=str(tmp_path / "run"), model=mc, steps=40, batch_size=4,
                         lr=1e-3, log_every=10, checkpoint_every=20, val_every=0, gain_db=3.0)
    trainer = Trainer(config, progress=False)
    assert (Path(str(voiced_pack)).with_suffix(".pitch.npz")).is_file()  # labels cached beside the pack
    first = [trainer.train_step() for _ in range(5)]
    for _ in range(35):
        last = trainer.train_step()
    for key in ("loss_diff", "loss_harm", "loss_f0", "loss_vuv"):
        assert last[key] < first[0][key], key
    # straight vs stopped-and-resumed give the same weights
    straight = Trainer(config.replace(out=str(tmp_path / "a")), progress=False)
    straight.run()
    half = Trainer(config.replace(out=str(tmp_path / "b"), steps=20), progress=False)
    half.run()
    resumed = Trainer(config.replace(out=str(tmp_path / "b")), resume=True, progress=False)
    resumed.run()
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    exported = load_model(tmp_path / "a" / "model-ema.safetensors")
    assert isinstance(exported, SourceFilterDiffWave)
    # --init-from starts a new run from those weights
    warm = Trainer(config.replace(out=str(tmp_path / "c"), init_from=str(tmp_path / "a" / "model-ema.safetensors")),
                   progress=False)
    for (name, a), (_, b) in zip(warm.model.state_dict().items(), exported.state_dict().items()):
        assert torch.allclose(a, b.float(), atol=1e-3), name


# --- ONNX ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout,written", [("auto", "sourcefilter-folded"), ("folded-wide", "sourcefilter-folded-wide"),
                                            ("reference", "sourcefilter")])
def test_onnx_graph_equals_torch_given_the_same_tracks_and_vocodes_through_the_front_door(tmp_path, layout, written):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from wavefast.runtime.graphs import SourceFilterGraph
    from wavefast.runtime.onnx_export import export_onnx, sourcefilter_example_inputs

    model = tiny_sf()
    plan = wavefast.resolve_plan(model, "var-quadratic", 3)
    report = export_onnx(model, plan, tmp_path / "sf.onnx", kappa=1.0, layout=layout)
    assert report["parity_error"] <= TOL and report["inputs"] == ["mel", "f0", "voicing", "phase", "x_T", "noise"]
    assert report["layout"] == written  # the folded residual stack by default; the model's layers on request
    session = ort.InferenceSession(str(tmp_path / "sf.onnx"))
    graph = SourceFilterGraph(model, plan, 1.0)
    for batch, frames in ((1, 5), (3, 40)):  # other shapes than at export
        names, inputs = sourcefilter_example_inputs(model, 2, batch=batch, frames=frames,
                                                    generator=torch.Generator().manual_seed(frames))
        with torch.no_grad():
            expected = graph(*inputs)
        got = session.run(None, {n: x.numpy() for n, x in zip(names, inputs)})[0]
        assert float(np.abs(got - expected.numpy()).max()) <= TOL * max(1.0, float(expected.abs().max()))
    # through the Vocoder: the graph's own F0 predictor (ORT) differs from torch's by float rounding, and F0
    # is integrated into the harmonic phase, so end-to-end audio agrees to ~1e-3 rather than 1e-4
    torch_voc = Vocoder(model, plan, 1.0, chunk_seconds=0.4)
    onnx_voc = Vocoder.from_pretrained(tmp_path / "sf.onnx", chunk_seconds=0.4)
    mel = _mel(120, 8)
    a, b = torch_voc.vocode_long(mel, seed=2), onnx_voc.vocode_long(mel, seed=2)
    assert float((a - b).abs().max()) <= 5e-3 * max(1.0, float(a.abs().max()))
    tracks = onnx_voc.backend.analyse(mel[None])
    ref = torch_voc.backend.analyse(mel[None])
    assert float((tracks["f0"] - ref["f0"]).abs().max() / ref["f0"].max()) < 1e-5


def test_onnx_graph_of_a_mel_projection_model_equals_torch(tmp_path):
    pytest.importorskip("onnxruntime")
    from wavefast.runtime.onnx_export import export_onnx

    model = tiny_sf(mel_projection=True)
    plan = wavefast.resolve_plan(model, "var-quadratic", 3)
    report = export_onnx(model, plan, tmp_path / "proj.onnx", kappa=0.0)
    assert report["parity_error"] <= TOL
    mel = _mel(60, 9)
    a = Vocoder(model, plan, 0.0).vocode_long(mel, seed=1)
    b = Vocoder.from_pretrained(tmp_path / "proj.onnx").vocode_long(mel, seed=1)
    assert float((a - b).abs().max()) <= 5e-3 * max(1.0, float(a.abs().max()))
    # the projection is in the graph: the same weights without it give other audio
    plain = tiny_sf(mel_projection=False)
    assert float((Vocoder(plain, plan, 0.0).vocode_long(mel, seed=1) - a).abs().max()) > 1e-3


@pytest.mark.parametrize("layout", ["auto", "reference"])
def test_onnx_lengths_input_runs_a_mixed_batch_in_one_call(tmp_path, layout):
    pytest.importorskip("onnxruntime")
    from wavefast.runtime.onnx_export import export_onnx

    model = tiny_sf(mel_projection=layout == "reference")
    plan = wavefast.resolve_plan(model, "var-quadratic", 3)
    report = export_onnx(model, plan, tmp_path / "len.onnx", kappa=1.0, layout=layout, lengths=True)
    assert report["parity_error"] <= TOL and report["inputs"][-1] == "lengths"
    export_onnx(model, plan, tmp_path / "plain.onnx", kappa=1.0, layout=layout)
    mixed, plain = (Vocoder.from_pretrained(tmp_path / f"{n}.onnx") for n in ("len", "plain"))
    calls, run = [], mixed.backend._run
    mixed.backend._run = lambda feeds: (calls.append(feeds["x_T"].shape), run(feeds))[1]
    mels, lengths, seeds = torch.stack([_mel(30, s) for s in range(3)]), [30, 21, 9], [1, 2, 3]
    got, _ = mixed(mels.numpy(), lengths=lengths, seeds=seeds)
    assert calls == [(3, 30 * HOP)]  # one padded call (F0 predictor included), not one per length
    by_length, _ = plain(mels.numpy(), lengths=lengths, seeds=seeds)
    assert float((got - by_length).abs().max()) <= TOL * max(1.0, float(by_length.abs().max()))
    # the same graph on equal lengths (no lengths given: each item whole)
    alone = mixed(mels[1:2, :, :21].numpy(), seeds=[2])[0][0]
    assert float((got[1, :21 * HOP] - alone).abs().max()) <= TOL * max(1.0, float(alone.abs().max()))
