"""The DDPM image UNet (Ho et al. 2020) with the parameter names of its PyTorch ports.

The published DDPM checkpoints that FastDPM's image experiments sample
(CIFAR-10, CelebA-64, LSUN bedroom/church/cat; pesser/pytorch_diffusion and
ermongroup/ddim ``model.ckpt`` state dicts) load into :class:`DDPMUNet`
without renaming: the module tree below reproduces their key layout

    temb.dense.{0,1}                         step-embedding MLP (ch -> 4 ch -> 4 ch)
    conv_in
    down.L.block.M.{norm1,conv1,temb_proj,norm2,conv2[,nin_shortcut]}
    down.L.attn.M.{norm,q,k,v,proj_out}      only at levels whose resolution is in attn_resolutions
    down.L.downsample.conv                   all levels but the last
    mid.{block_1,attn_1,block_2}
    up.L.block.M (num_res_blocks + 1 per level), up.L.attn.M, up.L.upsample.conv (L > 0)
    norm_out, conv_out

Protocol (the same as the audio models): ``model(x, t) -> eps`` with
``x`` (B, C, H, W) in the data range [-1, 1] (noised), ``t`` (B,) float model
steps in [0, T-1] (fractional steps allowed: the sinusoidal embedding is
evaluated at real t, as in the reference), and ``model.spec`` an
:class:`ImageModelSpec` whose ``diffusion`` is the linear-beta DDPM.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import WavefastError
from ..models.spec import DiffusionSpec

IMAGE_SPEC_KIND = "image"
PREDICTIONS = ("eps", "v")


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a DDPM UNet (names as in the reference configs).

    ``resolution`` is the nominal image side: it decides at which levels
    attention sits (level L works at ``resolution / 2**L``); the network itself
    accepts any side divisible by ``2**(len(ch_mult) - 1)``.
    """

    in_channels: int = 3
    out_channels: int = 3
    ch: int = 128
    ch_mult: Tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: Tuple[int, ...] = (16,)
    dropout: float = 0.1
    resolution: int = 32
    resamp_with_conv: bool = True
    norm_groups: int = 32

    def __post_init__(self):
        object.__setattr__(self, "ch_mult", tuple(int(m) for m in self.ch_mult))
        object.__setattr__(self, "attn_resolutions", tuple(int(r) for r in self.attn_resolutions))
        for name in ("in_channels", "out_channels", "ch", "num_res_blocks", "resolution", "norm_groups"):
            if int(getattr(self, name)) < 1:
                raise WavefastError(f"UNet {name} must be >= 1, got {getattr(self, name)}")
        if not self.ch_mult or any(m < 1 for m in self.ch_mult):
            raise WavefastError(f"UNet ch_mult must be a non-empty list of positive integers, got {self.ch_mult}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise WavefastError(f"UNet dropout must lie in [0, 1), got {self.dropout}")
        if self.resolution % self.downsample_factor:
            raise WavefastError(f"UNet resolution {self.resolution} is not divisible by 2^{len(self.ch_mult) - 1} "
                                f"(one halving per level after the first)")
        widths = {self.ch * m for m in (1,) + self.ch_mult}
        if any(w % self.norm_groups for w in widths):
            raise WavefastError(f"every UNet width {sorted(widths)} must be divisible by "
                                f"norm_groups={self.norm_groups}")

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    def level_resolutions(self) -> List[int]:
        return [self.resolution // 2 ** level for level in range(len(self.ch_mult))]


@dataclass(frozen=True)
class ImageModelSpec:
    """Everything known about an image checkpoint besides its weights.

    Images are (C, H, W) with values in [-1, 1] (``(x + 1) * 127.5`` gives 8-bit
    pixels). ``image_size`` is the generated side (defaults to the UNet
    resolution); ``crop`` > 0 removes that many border pixels on each side
    when writing images (a 28x28 dataset padded to 32 would use crop=2).
    ``width`` > 0 makes the images ``resolution`` high and ``width`` wide (0: square);
    attention levels are decided by the height.
    ``prediction``: what the network's last layer outputs. ``"eps"`` (DDPM, every published
    checkpoint) or ``"v"`` (Salimans & Ho 2022, ``v = sqrt(a) eps - sqrt(1 - a) x0``); the model
    always *returns* eps (see :meth:`DDPMUNet.forward`), so samplers and losses are unchanged.
    """

    arch: UNetConfig
    diffusion: DiffusionSpec = DiffusionSpec(1000, 1e-4, 0.02)
    name: str = "custom"
    source_layout: str = "native"
    dataset: str = ""
    crop: int = 0
    width: int = 0
    prediction: str = "eps"
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    kind = IMAGE_SPEC_KIND  # class attribute: not a field, tells image specs from audio ones

    def __post_init__(self):
        if not 0 <= int(self.crop) < self.arch.resolution // 2:
            raise WavefastError(f"crop must lie in [0, {self.arch.resolution // 2}), got {self.crop}")
        if self.prediction not in PREDICTIONS:
            raise WavefastError(f"image model prediction must be one of {', '.join(PREDICTIONS)}, got {self.prediction!r}")
        if int(self.width) < 0 or int(self.width) % self.arch.downsample_factor:
            raise WavefastError(f"image width must be 0 (square) or a positive multiple of "
                                f"{self.arch.downsample_factor}, got {self.width}")

    @property
    def conditional(self) -> bool:
        return False

    @property
    def image_shape(self) -> Tuple[int, int, int]:
        return (self.arch.in_channels, self.arch.resolution, int(self.width) or self.arch.resolution)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["kind"] = IMAGE_SPEC_KIND
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "ImageModelSpec":
        try:
            data = dict(data)
            kind = data.pop("kind", IMAGE_SPEC_KIND)
            if kind != IMAGE_SPEC_KIND:
                raise WavefastError(f"not an image model spec (kind {kind!r})")
            arch = UNetConfig(**data.pop("arch"))
            diffusion = DiffusionSpec(**data.pop("diffusion"))
            return cls(arch=arch, diffusion=diffusion, **data)
        except (TypeError, KeyError) as exc:
            raise WavefastError(f"malformed image model spec: {exc}") from None

    def replace(self, **changes) -> "ImageModelSpec":
        return dataclasses.replace(self, **changes)


# --- building blocks ------------------------------------------------------------------------
def step_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of real steps ``t`` (B,) -> (B, dim), DDPM's variant::

        f_i = exp(-ln(10000) * i / (dim/2 - 1)),  i = 0 .. dim/2 - 1
        emb = [sin(t f), cos(t f)]  (a zero column appended when dim is odd)

    computed in float32 in this order, as the reference does, so fractional
    steps embed exactly as there.
    """
    half = dim // 2
    scale = math.log(10000.0) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * -scale)
    angles = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([angles.sin(), angles.cos()], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def _swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def _group_norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    """GroupNorm-swish-conv twice, the step embedding added after the first conv,
    a 1x1 ``nin_shortcut`` when the width changes."""

    def __init__(self, c_in: int, c_out: int, temb_ch: int, dropout: float, groups: int):
        super().__init__()
        self.norm1 = _group_norm(c_in, groups)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.temb_proj = nn.Linear(temb_ch, c_out)
        self.norm2 = _group_norm(c_out, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: torch.Tensor, temb_act: torch.Tensor) -> torch.Tensor:
        """x (B, c_in, H, W), temb_act = swish(step embedding) (B, temb_ch) -> (B, c_out, H, W)."""
        h = self.conv1(_swish(self.norm1(x)))
        h = h + self.temb_proj(temb_act)[:, :, None, None]
        h = self.conv2(self.dropout(_swish(self.norm2(h))))
        skip = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return skip + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the H*W positions, residual."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = _group_norm(channels, groups)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        normed = self.norm(x)
        # (B, 1 head, HW, C); softmax(q k^T / sqrt(C)) v
        q, k, v = (proj(normed).reshape(b, 1, c, h * w).transpose(2, 3) for proj in (self.q, self.k, self.v))
        attended = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj_out(attended.transpose(2, 3).reshape(b, c, h, w))


class Downsample(nn.Module):
    """Halve H and W: 3x3 stride-2 conv after zero padding one row/column at the bottom/right
    (TensorFlow 'SAME'), or 2x2 average pooling when ``with_conv`` is false."""

    def __init__(self, channels: int, with_conv: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2) if with_conv else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is None:
            return F.avg_pool2d(x, 2)
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Double H and W by nearest neighbour, then an optional 3x3 conv."""

    def __init__(self, channels: int, with_conv: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1) if with_conv else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return x if self.conv is None else self.conv(x)


class _Level(nn.Module):
    """One resolution level: ``block`` and ``attn`` lists plus an optional resampler."""

    def __init__(self):
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()


class DDPMUNet(nn.Module):
    """eps_theta(x_t, t) of DDPM. x (B, C, H, W), t (B,) real steps -> eps (B, out_channels, H, W).

    With ``spec.prediction == "v"`` the network's output ``v`` is turned into eps with the model's
    own noise level ``a = alpha_bar(t)`` (continuous steps: the exact log-Gamma map)::

        eps = sqrt(a) v + sqrt(1 - a) x_t

    so at high noise (a -> 0) eps is the input itself, which the network no longer has to copy.
    """

    def __init__(self, spec: ImageModelSpec):
        super().__init__()
        self.spec = spec
        if spec.prediction == "v":
            from ..schedules.noise import LinearBetaSchedule

            self._schedule = LinearBetaSchedule.from_spec(spec.diffusion)
        cfg = spec.arch
        ch, groups, temb_ch = cfg.ch, cfg.norm_groups, 4 * cfg.ch
        widths = [ch * m for m in cfg.ch_mult]
        attn_levels = [res in cfg.attn_resolutions for res in cfg.level_resolutions()]

        self.temb = nn.Module()
        self.temb.dense = nn.ModuleList([nn.Linear(ch, temb_ch), nn.Linear(temb_ch, temb_ch)])
        self.conv_in = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)

        # Encoder: the widths of every tensor pushed on the skip stack, in order.
        skip_widths = [ch]
        current = ch
        self.down = nn.ModuleList()
        for level, width in enumerate(widths):
            stage = _Level()
            for _ in range(cfg.num_res_blocks):
                stage.block.append(ResnetBlock(current, width, temb_ch, cfg.dropout, groups))
                current = width
                if attn_levels[level]:
                    stage.attn.append(AttnBlock(current, groups))
                skip_widths.append(current)
            if level < len(widths) - 1:
                stage.downsample = Downsample(current, cfg.resamp_with_conv)
                skip_widths.append(current)
            self.down.append(stage)

        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(current, current, temb_ch, cfg.dropout, groups)
        self.mid.attn_1 = AttnBlock(current, groups)
        self.mid.block_2 = ResnetBlock(current, current, temb_ch, cfg.dropout, groups)

        # Decoder: built deepest level first, stored by level index (up[0] is the finest).
        stages = {}
        for level in reversed(range(len(widths))):
            stage = _Level()
            for _ in range(cfg.num_res_blocks + 1):
                stage.block.append(ResnetBlock(current + skip_widths.pop(), widths[level], temb_ch,
                                               cfg.dropout, groups))
                current = widths[level]
                if attn_levels[level]:
                    stage.attn.append(AttnBlock(current, groups))
            if level > 0:
                stage.upsample = Upsample(current, cfg.resamp_with_conv)
            stages[level] = stage
        self.up = nn.ModuleList([stages[level] for level in range(len(widths))])

        self.norm_out = _group_norm(current, groups)
        self.conv_out = nn.Conv2d(current, cfg.out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        cfg = self.spec.arch
        if x.dim() != 4 or x.shape[1] != cfg.in_channels:
            raise WavefastError(f"image model expects x of shape (B, {cfg.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[2] % cfg.downsample_factor or x.shape[3] % cfg.downsample_factor:
            raise WavefastError(f"image side {tuple(x.shape[2:])} must be divisible by {cfg.downsample_factor}")
        t = torch.as_tensor(t, device=x.device)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        temb = self.temb.dense[1](_swish(self.temb.dense[0](step_embedding(t, cfg.ch))))
        temb_act = _swish(temb)  # every ResnetBlock applies swish to the embedding first

        stack = [self.conv_in(x)]
        for stage in self.down:
            for i, block in enumerate(stage.block):
                h = block(stack[-1], temb_act)
                if len(stage.attn):
                    h = stage.attn[i](h)
                stack.append(h)
            if hasattr(stage, "downsample"):
                stack.append(stage.downsample(stack[-1]))

        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(stack[-1], temb_act)), temb_act)

        for stage in reversed(self.up):
            for i, block in enumerate(stage.block):
                h = block(torch.cat([h, stack.pop()], dim=1), temb_act)
                if len(stage.attn):
                    h = stage.attn[i](h)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        out = self.conv_out(_swish(self.norm_out(h)))
        if self.spec.prediction == "v":
            a = self._schedule.alpha_bar(t.detach().double().cpu()).to(out.device, out.dtype).view(-1, 1, 1, 1)
            out = a.sqrt() * out + (1.0 - a).sqrt() * x
        return out

    def denoise(self, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        """Same call as the audio models' ``denoise`` (no conditioning for images)."""
        return self(x, t)

    # The rest of the audio models' sampling protocol, so code that runs a chain on "a model"
    # (the learned samplers) takes an image UNet as it is: no conditioner, a white prior, and the
    # image is the diffused variable itself.
    def prepare(self, cond=None, length=None) -> None:
        """No conditioner terms: image models are unconditional (``cond`` must be None)."""
        if cond is not None:
            raise WavefastError("image models are unconditional: they take no conditioning input")
        return None

    def shape_noise(self, z: torch.Tensor, prepared=None) -> torch.Tensor:
        """The prior's noise from white noise: N(0, I), so z itself."""
        return z

    def finish(self, x0: torch.Tensor, prepared=None) -> torch.Tensor:
        """The image from the diffused variable (x0 itself)."""
        return x0
