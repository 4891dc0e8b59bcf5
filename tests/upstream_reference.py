"""Re-statements of the published DiffWave networks, for parity tests only.

Written for wavefast from the published architectures' behaviour (philsyn
DiffWave-unconditional / DiffWave-Vocoder ``WaveNet.py`` and lmnt-com/diffwave
``model.py``), keeping what decides parity: parameter names and shapes exactly as
the upstream ``state_dict`` has them, ``nn.utils.weight_norm`` on the same
layers, the in-place ``h += part_t`` of philsyn's residual block, lmnt's gate
order and its interpolated embedding table. Tests build random weights with
these modules, save them in the upstream file layout, load the file with
wavefast and compare outputs.
"""

import math

import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import weight_norm


def _randomise(module: nn.Module, scale: float = 0.3, seed: int = 0) -> nn.Module:
    """Fill every parameter with random values (upstream zero-inits the last conv)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return module


# --- philsyn -------------------------------------------------------------------------------
class PhilsynConv(nn.Module):
    def __init__(self, cin, cout, kernel_size=3, dilation=1):
        super().__init__()
        pad = dilation * (kernel_size - 1) // 2
        self.conv = weight_norm(nn.Conv1d(cin, cout, kernel_size, dilation=dilation, padding=pad))

    def forward(self, x):
        return self.conv(x)


class PhilsynZeroConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, 1)

    def forward(self, x):
        return self.conv(x)


def philsyn_step_embedding(steps, dim=128):
    half = dim // 2
    freqs = torch.exp(torch.arange(half) * -(math.log(10000) / (half - 1)))
    angles = steps * freqs  # steps (B, 1)
    return torch.cat((torch.sin(angles), torch.cos(angles)), 1)


class PhilsynBlock(nn.Module):
    def __init__(self, res, skip, dilation, conditional, n_mels=80):
        super().__init__()
        self.res = res
        self.conditional = conditional
        self.fc_t = nn.Linear(512, res)
        self.dilated_conv_layer = PhilsynConv(res, 2 * res, 3, dilation)
        if conditional:
            self.upsample_conv2d = nn.ModuleList(
                weight_norm(nn.ConvTranspose2d(1, 1, (3, 32), padding=(1, 8), stride=(1, 16))) for _ in range(2))
            self.mel_conv = PhilsynConv(n_mels, 2 * res, 1)
        self.res_conv = weight_norm(nn.Conv1d(res, res, 1))
        self.skip_conv = weight_norm(nn.Conv1d(res, skip, 1))

    def forward(self, x, mel, emb):
        h = x
        B, C, L = x.shape
        h += self.fc_t(emb).view(B, C, 1)  # in place: x changes too (the published quirk)
        h = self.dilated_conv_layer(h)
        if self.conditional:
            m = mel.unsqueeze(1)
            m = F.leaky_relu(self.upsample_conv2d[0](m), 0.4)
            m = F.leaky_relu(self.upsample_conv2d[1](m), 0.4)
            m = m.squeeze(1)[:, :, :L]
            h += self.mel_conv(m)
        out = torch.tanh(h[:, :C]) * torch.sigmoid(h[:, C:])
        return (x + self.res_conv(out)) * math.sqrt(0.5), self.skip_conv(out)


class PhilsynGroup(nn.Module):
    def __init__(self, res, skip, layers, cycle, conditional, n_mels=80):
        super().__init__()
        self.fc_t1 = nn.Linear(128, 512)
        self.fc_t2 = nn.Linear(512, 512)
        self.residual_blocks = nn.ModuleList(
            PhilsynBlock(res, skip, 2 ** (n % cycle), conditional, n_mels) for n in range(layers))

    def forward(self, x, mel, steps):
        swish = lambda v: v * torch.sigmoid(v)
        emb = swish(self.fc_t2(swish(self.fc_t1(philsyn_step_embedding(steps)))))
        h, skip = x, 0
        for block in self.residual_blocks:
            h, s = block(h, mel, emb)
            skip = skip + s
        return skip * math.sqrt(1.0 / len(self.residual_blocks))


class PhilsynWaveNet(nn.Module):
    """philsyn WaveNet; conditional=False is the SC09 model, True the LJSpeech vocoder."""

    def __init__(self, res=8, skip=6, layers=4, cycle=2, conditional=False, n_mels=80):
        super().__init__()
        self.conditional = conditional
        self.init_conv = nn.Sequential(PhilsynConv(1, res, 1), nn.ReLU())
        self.residual_layer = PhilsynGroup(res, skip, layers, cycle, conditional, n_mels)
        self.final_conv = nn.Sequential(PhilsynConv(skip, skip, 1), nn.ReLU(), PhilsynZeroConv(skip, 1))

    def forward(self, audio, steps, mel=None):
        """audio (B,1,L); steps (B,1) float; mel (B,n_mels,frames)."""
        x = self.init_conv(audio)
        x = self.residual_layer(x, mel, steps)
        return self.final_conv(x)


# --- lmnt ------------------------------------------------------------------------------------
class LmntEmbedding(nn.Module):
    def __init__(self, max_steps):
        super().__init__()
        steps = torch.arange(max_steps).unsqueeze(1)
        dims = torch.arange(64).unsqueeze(0)
        table = steps * 10.0 ** (dims * 4.0 / 63.0)
        self.register_buffer("embedding", torch.cat([torch.sin(table), torch.cos(table)], 1), persistent=False)
        self.projection1 = nn.Linear(128, 512)
        self.projection2 = nn.Linear(512, 512)

    def forward(self, t):
        if t.dtype in (torch.int32, torch.int64):
            x = self.embedding[t]
        else:
            lo, hi = torch.floor(t).long(), torch.ceil(t).long()
            x = self.embedding[lo] + (self.embedding[hi] - self.embedding[lo]) * (t - lo).unsqueeze(-1)
        x = F.silu(self.projection1(x))
        return F.silu(self.projection2(x))


class LmntUpsampler(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.ConvTranspose2d(1, 1, [3, 32], stride=[1, 16], padding=[1, 8])
        self.conv2 = nn.ConvTranspose2d(1, 1, [3, 32], stride=[1, 16], padding=[1, 8])

    def forward(self, x):
        x = F.leaky_relu(self.conv1(x.unsqueeze(1)), 0.4)
        return F.leaky_relu(self.conv2(x), 0.4).squeeze(1)


class LmntBlock(nn.Module):
    def __init__(self, n_mels, channels, dilation, conditional):
        super().__init__()
        self.dilated_conv = nn.Conv1d(channels, 2 * channels, 3, padding=dilation, dilation=dilation)
        self.diffusion_projection = nn.Linear(512, channels)
        self.conditioner_projection = nn.Conv1d(n_mels, 2 * channels, 1) if conditional else None
        self.output_projection = nn.Conv1d(channels, 2 * channels, 1)

    def forward(self, x, emb, cond):
        y = x + self.diffusion_projection(emb).unsqueeze(-1)
        y = self.dilated_conv(y)
        if self.conditioner_projection is not None:
            y = y + self.conditioner_projection(cond)
        gate, filt = torch.chunk(y, 2, dim=1)
        y = self.output_projection(torch.sigmoid(gate) * torch.tanh(filt))
        residual, skip = torch.chunk(y, 2, dim=1)
        return (x + residual) / math.sqrt(2.0), skip


class LmntDiffWave(nn.Module):
    def __init__(self, channels=8, layers=4, cycle=2, n_mels=80, T=50, conditional=True):
        super().__init__()
        self.input_projection = nn.Conv1d(1, channels, 1)
        self.diffusion_embedding = LmntEmbedding(T)
        self.spectrogram_upsampler = LmntUpsampler() if conditional else None
        self.residual_layers = nn.ModuleList(
            LmntBlock(n_mels, channels, 2 ** (i % cycle), conditional) for i in range(layers))
        self.skip_projection = nn.Conv1d(channels, channels, 1)
        self.output_projection = nn.Conv1d(channels, 1, 1)

    def forward(self, audio, t, spectrogram=None):
        """audio (B, L) as upstream; t (B,); spectrogram (B, n_mels, frames)."""
        x = F.relu(self.input_projection(audio.unsqueeze(1)))
        emb = self.diffusion_embedding(t)
        cond = self.spectrogram_upsampler(spectrogram) if self.spectrogram_upsampler is not None else None
        skips = []
        for layer in self.residual_layers:
            x, s = layer(x, emb, cond)
            skips.append(s)
        x = torch.sum(torch.stack(skips), 0) / math.sqrt(len(self.residual_layers))
        return self.output_projection(F.relu(self.skip_projection(x)))


def lmnt_params(channels, layers, cycle, n_mels, T, beta_T, conditional=True):
    """The ``params`` dict lmnt stores in its checkpoints (AttrDict turned into a dict)."""
    return dict(batch_size=16, learning_rate=2e-4, max_grad_norm=None, sample_rate=22050, n_mels=n_mels, n_fft=1024,
                hop_samples=256, crop_mel_frames=62, residual_layers=layers, residual_channels=channels,
                dilation_cycle_length=cycle, unconditional=not conditional,
                noise_schedule=np.linspace(1e-4, beta_T, T).tolist(),
                inference_noise_schedule=[0.0001, 0.001, 0.01, 0.05, 0.2, 0.5], audio_len=22050 * 5)
