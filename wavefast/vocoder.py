"""The one vocoder front door: batched, long-form (chunked) and streaming, over any backend.

``Vocoder`` holds a :class:`~wavefast.runtime.backends.SamplingBackend` (PyTorch or ONNX
Runtime: same model, plan and kappa) and draws all noise itself, *by position*
(:class:`~wavefast.samplers.noise.PositionalNoise`): draw ``k`` (0 = x_T, then one per
stochastic step) of the item seeded ``s`` at absolute sample ``n`` is the same wherever it is
computed. So an item's audio depends only on its own mel, length and seed; ``wavefast vocode``,
``wavefast.vocode``, a ``Vocoder`` on either backend, a batch, a chunked long utterance and a
stream give the same audio for the same seed (up to float rounding: about 1 LSB of 16-bit
audio between different batch sizes or thread counts, since the float summation order
differs).

Chunking. One network call sees ``R`` samples (its receptive field); S calls see ``S (R - 1) + 1``.
A window computed with ``C`` frames of context on each side, ``C = ceil(S (R - 1) / 2 / hop) +
F + 2`` (``F``: the frames a frame-rate sub-network reads, e.g. the F0 and harmonic networks of
a source-filter model), and trimmed, equals the unchunked output up to float rounding. F0 and the
harmonic phase of a source-filter model are computed once over the whole utterance (or, when
streaming, as frames arrive) and sliced into each window. Memory is bounded by ``chunk + 2 C``.
Parallel chunks (``workers`` > 1): the chunks of one long utterance are independent, so they run
concurrently (threads; ONNX Runtime and PyTorch release the GIL), each utterance cut into at least
``workers`` pieces when each piece still spans ``2 C`` frames. Same audio as one window; on CPU run
one intra-op thread per worker. It pays where the chunks' duplicated context costs less than one
window loses across threads (the default vocoder's ONNX graph, 10 s, 2 cores: 0.92x the time of one
2-thread window; DiffWave BASE at S = 6: 1.06x, no gain; see export/README.md).
Streaming latency: a chunk is emitted once ``C`` frames of right context have arrived.
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator, Optional, Sequence, Tuple

import numpy as np
import torch

from .audio.mel import check_mel, mel_spectrogram
from .audio.pitch import phase_at_frame
from .errors import WavefastError
from .runtime.backends import SamplingBackend, TorchBackend, Tracks
from .samplers.noise import PositionalNoise, item_seeds

DEFAULT_CHUNK_SECONDS = 4.0


def _as_tensor(x, what: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        if np.iscomplexobj(x):
            raise WavefastError(f"{what} is complex; a mel is real-valued")
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif not torch.is_tensor(x):
        try:
            x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        except (TypeError, ValueError):
            raise WavefastError(f"{what} must be a tensor or array of numbers, got {type(x).__name__}") from None
    if x.is_complex():
        raise WavefastError(f"{what} is complex; a mel is real-valued")
    return x.detach().float().cpu()


class Vocoder:
    """Mel -> waveform for a TTS pipeline. See the module docstring for the noise and chunk contracts.

    ``Vocoder(backend)`` or ``Vocoder(model, plan, kappa)`` (a torch backend for a loaded model);
    usually :meth:`from_pretrained`.
    """

    def __init__(self, backend=None, plan=None, kappa: Optional[float] = None, *,
                 chunk_seconds: float = DEFAULT_CHUNK_SECONDS, workers: int = 1):
        if backend is None:
            raise WavefastError("a Vocoder needs exactly one backend: a SamplingBackend, or a torch model (with its "
                                "plan); see Vocoder.from_pretrained")
        if not isinstance(backend, SamplingBackend):
            from .schedules.resolve import resolve_plan

            backend = TorchBackend(backend, resolve_plan(backend, plan, kappa=kappa), kappa)
        elif plan is not None or kappa is not None:
            raise WavefastError("a backend already fixes its plan and kappa; pass only the backend")
        self.backend = backend
        self.spec = backend.spec
        if not self.spec.conditional:
            raise WavefastError("Vocoder needs a mel-conditioned model; use wavefast.generate for unconditional ones")
        if isinstance(chunk_seconds, bool) or not isinstance(chunk_seconds, (int, float)) or not (
                math.isfinite(chunk_seconds) and chunk_seconds > 0):
            raise WavefastError(f"chunk_seconds must be a positive number of seconds, got {chunk_seconds!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise WavefastError(f"workers must be a whole number >= 1, got {workers!r}")
        self.workers = workers
        self.hop = self.spec.hop_length
        self.context_frames = backend.context_frames()
        self.chunk_frames = max(1, int(round(chunk_seconds * self.spec.sample_rate / self.hop)))

    # --- conventions (torchaudio bundles, SpeechBrain, Vocos) ------------------------------
    @property
    def sample_rate(self) -> int:
        return self.spec.sample_rate

    @property
    def hop_length(self) -> int:
        return self.hop

    @property
    def n_mels(self) -> int:
        return self.spec.n_mels

    @property
    def plan(self):
        return self.backend.plan

    @property
    def kappa(self) -> float:
        return self.backend.kappa

    def mel(self, audio, sample_rate: Optional[int] = None) -> torch.Tensor:
        """The model's own front end: audio (L,) or (B, L) at ``sample_rate`` (default the model's) -> mel."""
        audio = _as_tensor(audio, "audio")
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            from .audio.io import resample

            audio = torch.from_numpy(resample(audio.numpy(), int(sample_rate), self.sample_rate))
        return mel_spectrogram(audio, self.spec.mel_frontend, self.sample_rate, self.n_mels, self.hop)

    def to(self, device) -> "Vocoder":
        """Move a torch backend's model to ``device`` (cpu, cuda, cuda:N)."""
        if not isinstance(self.backend, TorchBackend):
            raise WavefastError(f"the {self.backend.name} backend picks its device itself (providers); "
                                "to() works for the torch backend")
        model = self.backend.model.to(device)
        self.backend = TorchBackend(model, self.backend.plan, self.backend.kappa, self.backend.clamp)
        return self

    # --- construction -------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path=None, *, steps: Optional[int] = None, plan=None, kappa: Optional[float] = None,
                        backend: Optional[str] = None, device=None, dtype=None,
                        chunk_seconds: float = DEFAULT_CHUNK_SECONDS, threads: Optional[int] = None,
                        workers: int = 1,
                        schedule=None, onnx_path=None, force_plan: bool = False,
                        clip_range: bool = False) -> "Vocoder":
        """The shipped default vocoder (``path=None``), a checkpoint, or an exported ``.onnx`` graph.

        A ``.onnx`` path (or ``backend="onnx"``) runs in ONNX Runtime; its plan and kappa are
        baked in, so ``steps``/``plan``/``kappa``/``dtype`` are refused there rather than ignored.
        ``device``: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:N``. ``workers``: chunks of a
        long utterance vocoded concurrently (module docstring; on CPU with ``threads=1`` for onnx).
        ``clip_range``: a plan made for another model's noise range (e.g. BDDM's T = 200 schedules) is
        mapped onto this model's by noise level, levels outside its trained range clamped into it.
        """
        from .schedules.resolve import plan_keyword

        plan = plan_keyword(plan, schedule, "Vocoder.from_pretrained")
        if onnx_path is not None:
            if path is not None:
                raise WavefastError("give the .onnx file once (path or onnx_path)")
            path, backend = onnx_path, backend or "onnx"
        is_onnx = backend == "onnx" or (backend is None and path is not None and str(path).lower().endswith(".onnx"))
        if backend not in (None, "torch", "onnx"):
            raise WavefastError(f"unknown backend {backend!r}; allowed: 'torch', 'onnx'")
        if is_onnx:
            from .runtime.ort_backend import OnnxBackend

            if path is None:
                raise WavefastError("the onnx backend needs the .onnx file of 'wavefast export onnx'")
            given = {k: v for k, v in (("steps", steps), ("plan", plan), ("kappa", kappa), ("dtype", dtype),
                                       ("clip_range", clip_range or None)) if v is not None}
            if given:
                raise WavefastError(f"an exported graph fixes its plan, kappa and precision; "
                                    f"{', '.join(given)} cannot change it (re-export instead)")
            if device not in (None, "auto", "cpu", "cuda"):
                raise WavefastError(f"the onnx backend picks CUDA or CPU itself; device={device!r} is not supported")
            return cls(OnnxBackend(path, providers=["CPUExecutionProvider"] if device == "cpu" else None,
                                   threads=threads), chunk_seconds=chunk_seconds, workers=workers)
        from .devices import resolve_device, resolve_dtype
        from .models import load_default, load_model
        from .schedules.resolve import resolve_plan

        if threads is not None:
            raise WavefastError("threads= applies to the onnx backend; for torch use torch.set_num_threads")
        dev = resolve_device(device)
        model = load_default("vocoder", device=dev) if path is None else load_model(path, device=dev)
        model = model.to(dtype=resolve_dtype(dtype, dev))
        resolved = resolve_plan(model, plan, steps, clip_range=clip_range, force=force_plan, kappa=kappa)
        return cls(TorchBackend(model, resolved, kappa), chunk_seconds=chunk_seconds, workers=workers)

    # --- one window -----------------------------------------------------------------------
    def _window(self, mels: torch.Tensor, frames: int, seeds: Sequence[int], start_frame: int,
                tracks: Tracks, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Audio of frames [start, start + frames) of each item: (B, frames * hop).

        ``mels`` (B, n_mels, frames or frames + 1): the window's mel and, when the utterance has
        it, the next frame; ``tracks`` sliced the same way, with ``phase0``.
        """
        length = frames * self.hop
        noise = PositionalNoise(seeds, start_frame * self.hop)
        x_T = noise.randn((length,))
        draws = torch.stack([noise.randn((length,)) for _ in range(self.backend.draws)]) \
            if self.backend.draws else None
        return self.backend.run(mels, x_T, draws, tracks, lengths) if lengths is not None else \
            self.backend.run(mels, x_T, draws, tracks)

    @staticmethod
    def _slice_tracks(tracks: Tracks, lo: int, hi: int, spec) -> Tracks:
        if not tracks:
            return None
        out = {k: v[:, lo:hi] for k, v in tracks.items() if k != "phase0"}
        out["phase0"] = phase_at_frame(tracks["f0"], lo, spec.hop_length, spec.sample_rate, tracks.get("phase0"))
        return out

    # --- long form -----------------------------------------------------------------------
    def _region(self, mel: torch.Tensor, tracks: Tracks, seed: int, a: int, b: int, total: int) -> torch.Tensor:
        """Exact audio (1, (b - a) hop) for frames [a, b) of an utterance of ``total`` frames (all in ``mel``)."""
        lo, hi = max(0, a - self.context_frames), min(total, b + self.context_frames)
        upto = min(total, hi + 1)  # the frame after the window, when it exists
        window = self._window(mel[None, :, lo:upto], hi - lo, [seed], lo,
                              self._slice_tracks(tracks, lo, upto, self.spec))
        return window[:, (a - lo) * self.hop:(b - lo) * self.hop]

    def _piece_frames(self, frames: int) -> Optional[int]:
        """The chunk length for an utterance of ``frames`` frames, or None to run it as one window:
        ``chunk_seconds``, shortened to ``ceil(frames / workers)`` with parallel workers while each
        piece still spans ``2 C`` frames (shorter pieces would cost more context than they save)."""
        piece = self.chunk_frames
        if self.workers > 1 and -(-frames // self.workers) >= 2 * self.context_frames:
            piece = min(piece, -(-frames // self.workers))
        elif frames <= self.chunk_frames + 2 * self.context_frames:
            return None
        return piece if piece < frames else None

    def _whole(self, mel: torch.Tensor, seed: int) -> torch.Tensor:
        """One checked utterance (n_mels, F) -> (F hop,), chunked when long (chunks run on ``workers`` threads)."""
        frames = mel.shape[-1]
        tracks = self.backend.analyse(mel[None])
        piece = self._piece_frames(frames)
        if piece is None:
            return self._window(mel[None], frames, [seed], 0, self._slice_tracks(tracks, 0, frames, self.spec))[0]
        starts = range(0, frames, piece)
        region = lambda a: self._region(mel, tracks, seed, a, min(a + piece, frames), frames)[0]  # noqa: E731
        if self.workers == 1 or len(starts) == 1:
            return torch.cat([region(a) for a in starts])
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(self.workers, len(starts))) as pool:
            return torch.cat(list(pool.map(region, starts)))

    def vocode_long(self, mel, seed: int = 0) -> torch.Tensor:
        """One utterance (n_mels, frames) in chunks of ``chunk_seconds`` with exact context. (frames*hop,)."""
        mel = self._check(mel, "mel")
        if mel.shape[0] != 1:
            raise WavefastError(f"vocode_long takes one utterance (n_mels, frames), got a batch of {mel.shape[0]}; "
                                "call the vocoder itself for batches")
        return self._whole(mel[0], item_seeds(seed, 1)[0])

    # --- batches ---------------------------------------------------------------------------
    def _check(self, mels, what: str) -> torch.Tensor:
        return check_mel(_as_tensor(mels, what), self.spec.n_mels, self.spec.mel_frontend, what)

    def __call__(self, mels, lengths: Optional[Sequence[int]] = None,
                 seeds=None) -> Tuple[torch.Tensor, torch.Tensor]:
        """mels (B, n_mels, frames) padded (numpy or torch); lengths in frames (default all); one seed per item.

        Returns ``(audio (B, max_samples), sample_lengths (B,))`` as torch tensors; audio past an
        item's length is zero. An item's audio depends only on its own mel, length and seed: items
        of different lengths run as one padded batch (the torch backend masks every layer past each
        item's end, so padding never reaches it); the ONNX backend batches items of equal length.
        """
        mels = _as_tensor(mels, "mels")
        if mels.dim() == 2:
            mels = mels[None]
        if mels.dim() != 3:
            raise WavefastError(f"mels must be (B, {self.n_mels}, frames), got shape {tuple(mels.shape)}")
        batch, frames = mels.shape[0], mels.shape[-1]
        if lengths is None:
            lengths = [frames] * batch
        else:
            lengths = list(torch.as_tensor(lengths).reshape(-1).tolist()) if not isinstance(lengths, list) else lengths
            if any(isinstance(n, bool) or not float(n).is_integer() for n in lengths):
                raise WavefastError(f"lengths must be whole numbers of frames, got {lengths}")
            lengths = [int(n) for n in lengths]
        if len(lengths) != batch or (seeds is not None and not isinstance(seeds, int) and len(seeds) != batch):
            raise WavefastError(f"need one length and one seed per item: {batch} items, {len(lengths)} lengths, "
                                f"{'1 seed' if isinstance(seeds, int) else len(seeds) if seeds is not None else batch} "
                                "seeds")
        seeds = item_seeds(0 if seeds is None else seeds, batch)
        if any(n < 1 or n > frames for n in lengths):
            raise WavefastError(f"lengths must lie in [1, {frames}] frames, got {lengths}")
        checked = [self._check(mels[i, :, :lengths[i]], f"mel of item {i}")[0] for i in range(batch)]
        audio = torch.zeros(batch, frames * self.hop)
        short = [i for i, n in enumerate(lengths) if self._piece_frames(n) is None]
        for i in sorted(set(range(batch)) - set(short)):  # long items: chunked, one by one
            audio[i, :lengths[i] * self.hop] = self._whole(checked[i], seeds[i])
        groups = [short] if self.backend.supports_lengths else \
            [[i for i in short if lengths[i] == n] for n in sorted({lengths[i] for i in short})]
        for items in (g for g in groups if g):
            top = max(lengths[i] for i in items)
            stack = torch.full((len(items), self.n_mels, top), float(checked[items[0]].min()))
            for row, i in enumerate(items):
                stack[row, :, :lengths[i]] = checked[i]
            mixed = len({lengths[i] for i in items}) > 1
            item_lengths = torch.tensor([lengths[i] for i in items]) if mixed else None
            tracks = self.backend.analyse(stack, item_lengths)
            window = self._window(stack, top, [seeds[i] for i in items], 0,
                                  self._slice_tracks(tracks, 0, top, self.spec), item_lengths)
            for row, i in enumerate(items):
                audio[i, :lengths[i] * self.hop] = window[row, :lengths[i] * self.hop]
        return audio, torch.tensor([n * self.hop for n in lengths])

    # --- streaming ---------------------------------------------------------------------------
    def stream(self, mel_frames: Iterable, seed: int = 0) -> Iterator[torch.Tensor]:
        """Yield audio chunks as mel frames arrive; concatenated they equal ``vocode_long``.

        ``mel_frames`` yields tensors (n_mels, k) with any k >= 1. A chunk of ``chunk_frames``
        frames is emitted once enough right context has arrived (``context_frames``, plus the
        pitch network's reach for source-filter models); the rest when the iterator ends. F0 is
        computed over the buffer, whose left context covers the pitch network's reach, and the
        harmonic phase is carried across chunks.
        """
        seed = item_seeds(seed, 1)[0]
        pitch_reach = 2 * (1 + int(self.spec.arch.pitch_layers)) + 1 if self.backend.uses_pitch else 0
        reach = self.context_frames + pitch_reach
        state = {"buffer": torch.zeros(self.spec.n_mels, 0), "start": 0,  # buffer[:, 0] is absolute frame start
                 "phase_frame": 0, "phase": torch.zeros(1, dtype=torch.float64)}

        def tracks_for(lo: int, upto: int) -> Tracks:
            if not self.backend.uses_pitch:
                return None
            buffer, start = state["buffer"], state["start"]
            tracks = self.backend.analyse(buffer[None])
            self._advance_phase(state, tracks["f0"], lo)
            out = {k: v[:, lo - start:upto - start] for k, v in tracks.items()}
            out["phase0"] = state["phase"]
            return out

        def region(a: int, b: int, total: Optional[int]) -> torch.Tensor:
            buffer, start = state["buffer"], state["start"]
            lo = max(0, a - self.context_frames)
            hi = b + self.context_frames if total is None else min(total, b + self.context_frames)
            upto = min(start + buffer.shape[1], hi + 1)
            mel = buffer[:, lo - start:upto - start]
            window = self._window(mel[None], hi - lo, [seed], lo, tracks_for(lo, upto))
            return window[0, (a - lo) * self.hop:(b - lo) * self.hop]

        emitted = 0  # absolute frame index of the next frame to emit
        for piece in mel_frames:
            piece = _as_tensor(piece, "streamed mel piece")
            if piece.dim() != 2 or piece.shape[0] != self.spec.n_mels:
                raise WavefastError(f"streamed mel pieces must be ({self.spec.n_mels}, k), got {tuple(piece.shape)}")
            check_mel(piece, self.spec.n_mels, self.spec.mel_frontend, "streamed mel piece")
            state["buffer"] = torch.cat([state["buffer"], piece], dim=1)
            while emitted + self.chunk_frames + reach <= state["start"] + state["buffer"].shape[1]:
                yield region(emitted, emitted + self.chunk_frames, None)
                emitted += self.chunk_frames
                if self.backend.uses_pitch:  # move the carried phase forward before frames are dropped
                    tracks_for(max(0, emitted - self.context_frames), max(0, emitted - self.context_frames))
                keep_from = max(0, emitted - reach)
                state["buffer"] = state["buffer"][:, keep_from - state["start"]:]
                state["start"] = keep_from
        total = state["start"] + state["buffer"].shape[1]
        while emitted < total:
            end = min(emitted + self.chunk_frames, total)
            yield region(emitted, end, total)
            emitted = end

    def _advance_phase(self, state: dict, f0: torch.Tensor, to_frame: int) -> None:
        """Carry the harmonic phase from ``state['phase_frame']`` to ``to_frame`` over the buffer's F0."""
        start, frm = state["start"], state["phase_frame"]
        if to_frame <= frm:
            return
        part = f0[:, frm - start:to_frame - start + 1]
        state["phase"] = phase_at_frame(part, to_frame - frm, self.hop, self.sample_rate, state["phase"])
        state["phase_frame"] = to_frame


def vocoder_for(model, plan, kappa=None, clamp=None, chunk_seconds: float = DEFAULT_CHUNK_SECONDS) -> Vocoder:
    """A torch-backend Vocoder for a loaded model and a resolved plan."""
    return Vocoder(TorchBackend(model, plan, kappa, clamp), chunk_seconds=chunk_seconds)

