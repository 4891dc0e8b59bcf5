"""The vocoder stage for TTS pipelines: batched, long-form (chunked) and streaming.

``Vocoder`` fixes a model, a plan and kappa, and draws its noise *by position*:
the Gaussian noise of item seed ``s`` at draw ``k`` (0 = x_T, then one per
stochastic step) and absolute sample ``n`` comes from block ``n // 4096``
seeded with ``(s, k, block)``. So a sample's audio depends only on its own mel,
length and seed; a chunk computes exactly the noise the whole utterance would
see there; and a stream reproduces the offline output.

Chunking. One network call sees ``R = receptive_field`` samples (``1 + 2 sum
dilations``); S calls see ``S (R - 1) + 1``. A chunk computed with ``C >= S (R-1)/2``
samples of context on each side (plus two mel frames for the upsampler), and
trimmed, equals the unchunked output up to float rounding (tests: 1e-4 abs).
Memory is bounded by ``chunk + 2 C`` samples. Streaming latency: a chunk is
emitted once ``C`` samples of right context have arrived, i.e. ``chunk + C``
samples (plus the model's compute) after its first mel frame.
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .errors import WavefastError
from .models.diffwave import DiffWave
from .learn.ggdm import sample_with_plan
from .samplers.reverse import check_kappa, plan_coefficients
from .schedules.plans import SamplingPlan

NOISE_BLOCK = 4096


def _block_noise(seed: int, draw: int, block: int) -> torch.Tensor:
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, draw, block]).generate_state(2)
    g = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
    return torch.randn(NOISE_BLOCK, generator=g)


def positional_noise(seed: int, draw: int, start: int, length: int) -> torch.Tensor:
    """Noise of ``seed`` at draw ``draw`` for absolute samples [start, start+length): (length,)."""
    first, last = start // NOISE_BLOCK, (start + length - 1) // NOISE_BLOCK
    blocks = torch.cat([_block_noise(seed, draw, b) for b in range(first, last + 1)])
    offset = start - first * NOISE_BLOCK
    return blocks[offset: offset + length]


class PositionalNoise:
    """Noise source for :func:`wavefast.samplers.sample` over a window [start, start+length)."""

    def __init__(self, seeds: Sequence[int], start: int, length: int, device=None):
        self.seeds, self.start, self.length, self.device = list(seeds), start, length, device
        self.draw = 0

    def randn(self, item_shape) -> torch.Tensor:
        if tuple(item_shape) != (1, self.length):
            raise ValueError(f"positional noise is for (1, {self.length}) items, got {tuple(item_shape)}")
        rows = [positional_noise(s, self.draw, self.start, self.length)[None] for s in self.seeds]
        self.draw += 1
        return torch.stack(rows).to(self.device)


class Vocoder:
    """Mel -> waveform for a TTS pipeline. See the module docstring for the noise and chunk contracts."""

    def __init__(self, model: Optional[DiffWave] = None, plan: Optional[SamplingPlan] = None, kappa: float = 1.0,
                 onnx_sampler=None, chunk_seconds: float = 4.0, device=None):
        if (model is None) == (onnx_sampler is None):
            raise WavefastError("a Vocoder needs exactly one backend: a torch model or an ONNX sampler")
        self.model, self.onnx = model, onnx_sampler
        if onnx_sampler is not None:
            self.spec = onnx_sampler.spec
            self.plan = SamplingPlan(tuple(onnx_sampler.plan["steps"]), tuple(onnx_sampler.plan["alpha_bar"]),
                                     onnx_sampler.plan["name"])
            self.kappa = onnx_sampler.kappa
        else:
            self.spec, self.plan, self.kappa = model.spec, plan, check_kappa(kappa)
        if not self.spec.conditional:
            raise WavefastError("Vocoder needs a mel-conditioned model")
        self.device = device
        self.hop = self.spec.hop_length
        self.n_draws = 1 + sum(1 for *_, sigma in plan_coefficients(self.plan, self.kappa) if sigma > 0)
        chain_field = len(self.plan) * (self.spec.arch.receptive_field() - 1) // 2
        self.context_frames = math.ceil(chain_field / self.hop) + 2
        self.chunk_frames = max(1, int(round(chunk_seconds * self.spec.sample_rate / self.hop)))

    # --- construction -------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path=None, *, steps: Optional[int] = 6, schedule="var-quadratic", kappa: float = 1.0,
                        backend: str = "torch", onnx_path=None, device=None, chunk_seconds: float = 4.0,
                        threads: Optional[int] = None) -> "Vocoder":
        """Load ``path`` (None = the shipped default vocoder) with the torch backend, or an exported
        full graph with ``backend="onnx", onnx_path=...`` (its plan and kappa are baked in)."""
        if backend == "onnx":
            from .runtime.ort_backend import OnnxSampler

            if onnx_path is None:
                raise WavefastError("backend='onnx' needs onnx_path (a graph from 'wavefast export onnx')")
            return cls(onnx_sampler=OnnxSampler(onnx_path, threads=threads), chunk_seconds=chunk_seconds)
        if backend != "torch":
            raise WavefastError(f"unknown backend {backend!r}; allowed: 'torch', 'onnx'")
        from .models.checkpoints import load_model
        from .models.default_models import load_default
        from .pipeline import plan_for

        model = load_default("vocoder", device=device) if path is None else load_model(path, device=device)
        return cls(model, plan_for(model, schedule, steps), kappa, chunk_seconds=chunk_seconds, device=device)

    # --- one window -----------------------------------------------------------------------
    def _run_window(self, mels: torch.Tensor, seeds: Sequence[int], start_sample: int) -> torch.Tensor:
        """Sample all items of ``mels`` (B, n_mels, F) as the window starting at ``start_sample``. (B, F*hop)."""
        length = mels.shape[-1] * self.hop
        noise = PositionalNoise(seeds, start_sample, length, device=self.device)
        if self.onnx is not None:
            feeds = {"mel": mels.cpu().numpy(), "x_T": noise.randn((1, length))[:, 0].cpu().numpy()}
            if self.n_draws > 1:
                feeds["noise"] = np.stack([noise.randn((1, length))[:, 0].cpu().numpy() for _ in range(self.n_draws - 1)])
            return torch.from_numpy(self.onnx._run(feeds))
        with torch.no_grad():
            mels = mels.to(self.device)
            cond = self.model.prepare(mels, length)
            x_T = noise.randn((1, length))
            out = sample_with_plan(lambda x, t: self.model.denoise(x, t, cond), x_T, self.plan, kappa=self.kappa,
                                   noise=noise)
        return out[:, 0].cpu()

    # --- long form -----------------------------------------------------------------------
    def _chunks(self, frames: int) -> List[Tuple[int, int]]:
        return [(a, min(a + self.chunk_frames, frames)) for a in range(0, frames, self.chunk_frames)]

    def _vocode_region(self, mel: torch.Tensor, seed: int, a: int, b: int, frames: int) -> torch.Tensor:
        """Exact audio for frames [a, b) of an utterance of ``frames`` frames (mel holds all of it). (1, (b-a)*hop)."""
        lo, hi = max(0, a - self.context_frames), min(frames, b + self.context_frames)
        window = self._run_window(mel[None, :, lo:hi], [seed], lo * self.hop)
        return window[:, (a - lo) * self.hop:(b - lo) * self.hop]

    def vocode_long(self, mel: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """One utterance (n_mels, frames) in chunks of ``chunk_seconds`` with exact context. (frames*hop,)."""
        mel = self._check(mel)[0]
        frames = mel.shape[-1]
        if frames <= self.chunk_frames + 2 * self.context_frames:
            return self._run_window(mel[None], [seed], 0)[0]
        return torch.cat([self._vocode_region(mel, seed, a, b, frames)[0] for a, b in self._chunks(frames)])

    # --- batches ---------------------------------------------------------------------------
    def _check(self, mels) -> torch.Tensor:
        from .pipeline import check_mel

        return check_mel(self.spec, mels)

    def __call__(self, mels, lengths: Optional[Sequence[int]] = None,
                 seeds: Optional[Sequence[int]] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """mels (B, n_mels, frames) padded; lengths in frames (default: all frames); seeds one per item.

        Returns ``(audio (B, max_samples), sample_lengths (B,))``; audio past an item's
        length is zero. Items of equal length are batched; an item's audio depends only
        on its own mel, length and seed.
        """
        mels = torch.as_tensor(mels).float()
        if mels.dim() == 2:
            mels = mels[None]
        batch, frames = mels.shape[0], mels.shape[-1]
        lengths = [frames] * batch if lengths is None else [int(n) for n in lengths]
        seeds = list(range(batch)) if seeds is None else [int(s) for s in seeds]
        if len(lengths) != batch or len(seeds) != batch:
            raise WavefastError(f"need one length and one seed per item: {batch} items, {len(lengths)} lengths, "
                                f"{len(seeds)} seeds")
        if any(n < 1 or n > frames for n in lengths):
            raise WavefastError(f"lengths must lie in [1, {frames}] frames, got {lengths}")
        checked = [self._check(mels[i, :, :lengths[i]])[0] for i in range(batch)]
        audio = torch.zeros(batch, frames * self.hop)
        by_length = {}
        for i, n in enumerate(lengths):
            by_length.setdefault(n, []).append(i)
        for n, items in by_length.items():
            if n > self.chunk_frames + 2 * self.context_frames:
                for i in items:
                    audio[i, :n * self.hop] = self.vocode_long(checked[i], seeds[i])
            else:
                stack = torch.stack([checked[i] for i in items])
                audio[items, :n * self.hop] = self._run_window(stack, [seeds[i] for i in items], 0)
        return audio, torch.tensor([n * self.hop for n in lengths])

    # --- streaming ---------------------------------------------------------------------------
    def stream(self, mel_frames: Iterable[torch.Tensor], seed: int = 0) -> Iterator[torch.Tensor]:
        """Yield audio chunks as mel frames arrive; concatenated they equal ``vocode_long``.

        ``mel_frames`` yields tensors (n_mels, k) with any k >= 1. A chunk of
        ``chunk_frames`` frames is emitted once ``context_frames`` more frames have
        arrived; the rest when the iterator ends.
        """
        buffer = torch.zeros(self.spec.n_mels, 0)
        buffer_start = 0  # absolute frame index of buffer[:, 0]
        emitted = 0  # absolute frame index of the next frame to emit
        for piece in mel_frames:
            piece = torch.as_tensor(piece).float()
            if piece.dim() != 2 or piece.shape[0] != self.spec.n_mels:
                raise WavefastError(f"streamed mel pieces must be ({self.spec.n_mels}, k), got {tuple(piece.shape)}")
            buffer = torch.cat([buffer, piece], dim=1)
            received = buffer_start + buffer.shape[1]
            while emitted + self.chunk_frames + self.context_frames <= received:
                yield self._stream_region(buffer, buffer_start, emitted, emitted + self.chunk_frames, None, seed)
                emitted += self.chunk_frames
                keep_from = max(0, emitted - self.context_frames)
                buffer, buffer_start = buffer[:, keep_from - buffer_start:], keep_from
        total = buffer_start + buffer.shape[1]
        if total == 0:
            return
        while emitted < total:
            end = min(emitted + self.chunk_frames, total)
            yield self._stream_region(buffer, buffer_start, emitted, end, total, seed)
            emitted = end

    def _stream_region(self, buffer, buffer_start, a, b, total, seed) -> torch.Tensor:
        """Frames [a, b) from a buffer starting at ``buffer_start``; ``total`` known only at the end."""
        lo = max(0, a - self.context_frames)
        hi = b + self.context_frames if total is None else min(total, b + self.context_frames)
        mel = self._check(buffer[:, lo - buffer_start:hi - buffer_start])
        window = self._run_window(mel, [seed], lo * self.hop)
        return window[0, (a - lo) * self.hop:(b - lo) * self.hop]
