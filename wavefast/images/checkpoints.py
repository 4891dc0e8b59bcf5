"""Image checkpoints: layout detection, presets, loading and the native format.

Layouts:

- ``pytorch_diffusion``: the DDPM PyTorch ports that FastDPM's image
  experiments load (pesser/pytorch_diffusion ``model-*.ckpt``, ermongroup/ddim
  ``ckpt.pth``): a plain state dict with keys ``temb.dense.0.weight``,
  ``conv_in.weight``, ``down.L.block.M.conv1.weight`` ... (see
  :mod:`wavefast.images.unet`), optionally prefixed ``module.`` (DataParallel).
  ermongroup/ddim files are a list ``[model, optimizer, epoch, step(, ema)]``;
  the EMA state (last entry) is used when present. The file does not store the
  image resolution, the diffusion or the dropout: they come from a named preset
  (picked automatically when exactly one preset's architecture fits the weights).
- ``native``: wavefast safetensors with the same tensor names, the
  :class:`~wavefast.images.unet.ImageModelSpec` JSON under ``wavefast_image_spec``
  in the metadata and ``format = wavefast-image-unet/1``.

Pickles are read with :func:`wavefast.models.checkpoints.safe_torch_load`
(``weights_only=True``): no code from a file ever runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from ..errors import WavefastError
from ..fileio import is_safetensors, read_safetensors, read_safetensors_metadata, write_safetensors
from ..models.checkpoints import safe_torch_load
from ..models.spec import DiffusionSpec
from .mel_image import EXTRA_KEY, MelImageLayout
from .unet import DDPMUNet, ImageModelSpec, UNetConfig

NATIVE_IMAGE_FORMAT = "wavefast-image-unet/1"
SPEC_KEY = "wavefast_image_spec"
DDPM_DIFFUSION = DiffusionSpec(1000, 1e-4, 0.02)

_CIFAR10 = UNetConfig(in_channels=3, out_channels=3, ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2,
                      attn_resolutions=(16,), dropout=0.1, resolution=32)
_CELEBA64 = UNetConfig(in_channels=3, out_channels=3, ch=128, ch_mult=(1, 2, 2, 2, 4), num_res_blocks=2,
                       attn_resolutions=(16,), dropout=0.1, resolution=64)
_LSUN = UNetConfig(in_channels=3, out_channels=3, ch=128, ch_mult=(1, 1, 2, 2, 4, 4), num_res_blocks=2,
                   attn_resolutions=(16,), dropout=0.0, resolution=256)
#: Our own small model (the shipped Fashion-MNIST generator): 28x28 grey, three levels 28/14/7,
#: attention at 7x7 and in the middle.
_TINY_28 = UNetConfig(in_channels=1, out_channels=1, ch=32, ch_mult=(1, 2, 2), num_res_blocks=1,
                      attn_resolutions=(7,), dropout=0.0, resolution=28)
#: The mel stage of the two-stage digit generator: 80 x 88 tacotron2 log-mels (1.02 s at 22.05 kHz)
#: space-to-depth by 4 into 16 x 20 x 22 images (see :mod:`wavefast.images.mel_image`), two levels
#: 20/10, attention at 10x11 and in the middle.
_MEL_DIGITS = UNetConfig(in_channels=16, out_channels=16, ch=64, ch_mult=(1, 2), num_res_blocks=1,
                         attn_resolutions=(10,), dropout=0.0, resolution=20)
MEL_DIGITS_LAYOUT = MelImageLayout(n_mels=80, frames=88, factor=4)

IMAGE_PRESETS: Dict[str, ImageModelSpec] = {
    "ddpm-cifar10": ImageModelSpec(_CIFAR10, DDPM_DIFFUSION, "ddpm-cifar10", "pytorch_diffusion", "cifar10"),
    "ddpm-celeba64": ImageModelSpec(_CELEBA64, DDPM_DIFFUSION, "ddpm-celeba64", "pytorch_diffusion", "celeba64"),
    "ddpm-lsun-bedroom": ImageModelSpec(_LSUN, DDPM_DIFFUSION, "ddpm-lsun-bedroom", "pytorch_diffusion",
                                        "lsun-bedroom"),
    "ddpm-lsun-church": ImageModelSpec(_LSUN, DDPM_DIFFUSION, "ddpm-lsun-church", "pytorch_diffusion", "lsun-church"),
    "ddpm-lsun-cat": ImageModelSpec(_LSUN, DDPM_DIFFUSION, "ddpm-lsun-cat", "pytorch_diffusion", "lsun-cat"),
    "tiny-28": ImageModelSpec(_TINY_28, DDPM_DIFFUSION, "tiny-28", "native", "fashion-mnist"),
    "mel-digits": ImageModelSpec(_MEL_DIGITS, DDPM_DIFFUSION, "mel-digits", "native", "digit-mels", width=22,
                                 prediction="v", extra={EXTRA_KEY: MEL_DIGITS_LAYOUT.to_dict()}),
    "mel-digits-eps": ImageModelSpec(_MEL_DIGITS, DDPM_DIFFUSION, "mel-digits-eps", "native", "digit-mels",
                                     width=22, extra={EXTRA_KEY: MEL_DIGITS_LAYOUT.to_dict()}),
}


def get_image_preset(name: str) -> ImageModelSpec:
    if name not in IMAGE_PRESETS:
        raise WavefastError(f"unknown image preset {name!r}; allowed: {', '.join(IMAGE_PRESETS)}")
    return IMAGE_PRESETS[name]


# --- layout detection ---------------------------------------------------------------------
def _strip_module(state: dict) -> dict:
    if state and all(isinstance(k, str) and k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _looks_like_unet(state) -> bool:
    return isinstance(state, dict) and "conv_in.weight" in _strip_module(state) and \
        "temb.dense.0.weight" in _strip_module(state)


def extract_state_dict(obj) -> Dict[str, torch.Tensor]:
    """The UNet state dict inside a loaded ``pytorch_diffusion``/ddim file (EMA entry preferred)."""
    if isinstance(obj, (list, tuple)):
        candidates = [o for o in obj if _looks_like_unet(o)]
        if not candidates:
            raise WavefastError("this list-shaped checkpoint (ermongroup/ddim style) holds no UNet state dict")
        obj = candidates[-1]  # [model, optimizer, epoch, step, ema]: the EMA state is last
    elif isinstance(obj, dict) and not _looks_like_unet(obj):
        for key in ("ema", "ema_model", "model", "state_dict"):
            if _looks_like_unet(obj.get(key)):
                obj = obj[key]
                break
    if not _looks_like_unet(obj):
        top = sorted(map(str, obj))[:6] if isinstance(obj, dict) else type(obj).__name__
        raise WavefastError(f"not a DDPM UNet checkpoint (top-level keys {top}); expected the pytorch_diffusion "
                            "layout with 'temb.dense.0.weight', 'conv_in.weight', 'down.0.block.0...'")
    state = _strip_module(obj)
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor) and k != "logvar"}


def infer_arch(state: Dict[str, torch.Tensor]) -> dict:
    """What the weights say about the architecture (everything but resolution and dropout).

    Returns ``{in_channels, out_channels, ch, ch_mult, num_res_blocks, attn_levels,
    resamp_with_conv}``; ``attn_levels`` are level indices (0 = full resolution).
    """
    try:
        ch, in_channels = state["conv_in.weight"].shape[:2]
        out_channels = state["conv_out.weight"].shape[0]
        levels = sorted({int(m.group(1)) for k in state if (m := re.match(r"down\.(\d+)\.", k))})
        blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"down\.0\.block\.(\d+)\.", k))})
        ch_mult = tuple(int(state[f"down.{level}.block.0.conv1.weight"].shape[0]) // int(ch) for level in levels)
        attn_levels = tuple(level for level in levels if f"down.{level}.attn.0.q.weight" in state)
    except KeyError as exc:
        raise WavefastError(f"DDPM UNet checkpoint is missing {exc}") from None
    if levels != list(range(len(levels))) or not blocks:
        raise WavefastError(f"DDPM UNet checkpoint has an incomplete 'down' tree (levels {levels}, blocks {blocks})")
    return dict(in_channels=int(in_channels), out_channels=int(out_channels), ch=int(ch), ch_mult=ch_mult,
                num_res_blocks=len(blocks), attn_levels=attn_levels,
                resamp_with_conv=len(levels) == 1 or "down.0.downsample.conv.weight" in state)


def _arch_signature(cfg: UNetConfig) -> dict:
    attn_levels = tuple(level for level, res in enumerate(cfg.level_resolutions()) if res in cfg.attn_resolutions)
    return dict(in_channels=cfg.in_channels, out_channels=cfg.out_channels, ch=cfg.ch, ch_mult=cfg.ch_mult,
                num_res_blocks=cfg.num_res_blocks, attn_levels=attn_levels, resamp_with_conv=cfg.resamp_with_conv)


def spec_for_state(state: Dict[str, torch.Tensor], preset: Optional[str] = None,
                   resolution: Optional[int] = None) -> ImageModelSpec:
    """The spec of a ``pytorch_diffusion`` state dict: the named preset (checked against the
    weights), the only preset that fits, or (with ``resolution``) one built from the weights."""
    found = infer_arch(state)
    if preset is not None:
        spec = get_image_preset(preset)
        if _arch_signature(spec.arch) != found:
            raise WavefastError(f"preset {preset!r} does not fit this checkpoint: the weights say {found}")
        return spec
    if resolution is not None:
        resolution = int(resolution)
        attn = tuple(resolution // 2 ** level for level in found["attn_levels"])
        arch = UNetConfig(found["in_channels"], found["out_channels"], found["ch"], found["ch_mult"],
                          found["num_res_blocks"], attn, 0.0, resolution, found["resamp_with_conv"])
        return ImageModelSpec(arch, DDPM_DIFFUSION, f"ddpm-{resolution}px", "pytorch_diffusion")
    fitting = [name for name, spec in IMAGE_PRESETS.items() if _arch_signature(spec.arch) == found]
    if len(fitting) == 1 or (fitting and all(IMAGE_PRESETS[n].arch == IMAGE_PRESETS[fitting[0]].arch and
                                             IMAGE_PRESETS[n].diffusion == IMAGE_PRESETS[fitting[0]].diffusion
                                             for n in fitting)):
        return IMAGE_PRESETS[fitting[0]]  # the LSUN presets share one network: any of them samples alike
    raise WavefastError(f"no image preset fits this checkpoint ({found}); pass a preset "
                        f"({', '.join(IMAGE_PRESETS)}) or the image resolution (T=1000, beta 1e-4 -> 0.02 assumed)")


# --- native format ------------------------------------------------------------------------
def save_image_model(model: DDPMUNet, path, dtype: torch.dtype = torch.float16,
                     extra_metadata: Optional[dict] = None) -> Path:
    """Write ``model`` as wavefast image safetensors (atomically), spec JSON in the metadata."""
    metadata = {"format": NATIVE_IMAGE_FORMAT, SPEC_KEY: model.spec.to_json()}
    metadata.update({k: str(v) for k, v in (extra_metadata or {}).items()})
    return write_safetensors(path, {k: v.detach().to("cpu", dtype) for k, v in model.state_dict().items()}, metadata)


def _load_native(path: Path) -> Tuple[Dict[str, torch.Tensor], ImageModelSpec]:
    state, metadata = read_safetensors(path)
    if SPEC_KEY not in metadata:
        raise WavefastError(f"{path} is not a wavefast image model (no '{SPEC_KEY}' in its metadata)")
    return state, ImageModelSpec.from_dict(json.loads(metadata[SPEC_KEY]))


# --- public entry points --------------------------------------------------------------------
def is_image_checkpoint(path, preset: Optional[str] = None) -> bool:
    """True if ``path`` holds an image model (native image safetensors, or a DDPM UNet pickle),
    or ``preset`` names an image preset. Cheap for safetensors (reads the header only)."""
    if preset is not None and preset in IMAGE_PRESETS:
        return True
    path = Path(path)
    if not path.is_file():
        return False
    if is_safetensors(path):
        return SPEC_KEY in read_safetensors_metadata(path)
    try:
        extract_state_dict(safe_torch_load(path))
        return True
    except WavefastError:
        return False


def read_image_checkpoint(path, preset: Optional[str] = None,
                          resolution: Optional[int] = None) -> Tuple[Dict[str, torch.Tensor], ImageModelSpec]:
    """(state dict, spec) from a native image safetensors or a pytorch_diffusion/ddim pickle."""
    path = Path(path)
    if not path.is_file():
        raise WavefastError(f"checkpoint not found: {path}")
    if is_safetensors(path):
        if preset is not None:
            raise WavefastError("a wavefast .safetensors file carries its own spec; drop the preset")
        return _load_native(path)
    state = extract_state_dict(safe_torch_load(path))
    return {k: v.float() for k, v in state.items()}, spec_for_state(state, preset, resolution)


def build_image_model(state: Dict[str, torch.Tensor], spec: ImageModelSpec, device=None) -> DDPMUNet:
    model = DDPMUNet(spec)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise WavefastError(f"checkpoint does not match the {spec.name} UNet: missing {sorted(missing)[:4]}, "
                            f"unexpected {sorted(unexpected)[:4]}")
    model.eval()
    return model.to(device) if device is not None else model


def load_image_model(path, preset: Optional[str] = None, resolution: Optional[int] = None,
                     device=None) -> DDPMUNet:
    """Load any supported image checkpoint as a float32 :class:`DDPMUNet` in eval mode."""
    state, spec = read_image_checkpoint(path, preset, resolution)
    return build_image_model(state, spec, device)


def convert_image_checkpoint(src, dst, preset: Optional[str] = None, resolution: Optional[int] = None,
                             dtype: torch.dtype = torch.float32) -> Path:
    """A pytorch_diffusion/ddim pickle -> native image safetensors."""
    model = load_image_model(src, preset, resolution)
    return save_image_model(model, dst, dtype, {"converted_from": Path(src).name})

