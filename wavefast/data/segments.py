"""Training batches from a pack: random segments with their matching mel frames.

Mel/audio alignment (hop h = 256, centred STFT, ``frames = L // h + 1``): frame
``j`` of an utterance's mel is centred on sample ``j h``, and DiffWave's
upsampler spreads frame ``j`` over samples ``[j h, (j + 1) h)``. A segment of
``k h`` samples starting at sample ``f h`` therefore takes frames
``f .. f + k - 1`` of the *whole-utterance* mel (computed once per utterance, so
no frame sees reflect padding that the utterance does not have).

Order and crops are a pure function of ``(seed, epoch, cursor)``: each epoch is a
permutation of the train items drawn from ``default_rng([seed, epoch])``, and
item ``cursor`` of it is cropped with ``default_rng([seed, epoch, cursor])``. A
resumed run only needs ``(epoch, cursor)`` to continue with the same batches.

Needs only numpy and torch (no soundfile / librosa).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import torch

from ..audio.mel import mel_spectrogram
from ..errors import WavefastError
from .pack import Pack


@dataclass
class DataPosition:
    """Where the batch stream is: item ``cursor`` of epoch ``epoch``'s permutation."""

    epoch: int = 0
    cursor: int = 0

    def to_dict(self) -> dict:
        return {"epoch": int(self.epoch), "cursor": int(self.cursor)}


def silence_mel_value(frontend: str, sample_rate: int, n_mels: int = 80, hop_length: int = 256) -> float:
    """The value a front end gives for digital silence (tacotron2: ln 1e-5; lmnt: 0)."""
    return float(mel_spectrogram(torch.zeros(4 * hop_length), frontend, sample_rate, n_mels, hop_length).min())


def crop_segment(audio: torch.Tensor, mel: Optional[torch.Tensor], segment: int, frame_start: int,
                 hop: int = 256, mel_pad: float = 0.0) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Segment ``audio[f h : f h + segment]`` and mel frames ``f .. f + segment/h - 1``.

    audio (L,), mel (n_mels, L // h + 1) or None. Past the end, audio is padded
    with zeros and mel with ``mel_pad``. Returns ((segment,), (n_mels, segment/h)).
    """
    start = frame_start * hop
    seg = audio.new_zeros(segment)
    piece = audio[start: start + segment]
    seg[: piece.numel()] = piece
    if mel is None:
        return seg, None
    k = segment // hop
    frames = mel.new_full((mel.shape[0], k), mel_pad)
    part = mel[:, frame_start: frame_start + k]
    frames[:, : part.shape[1]] = part
    return seg, frames


class SegmentBatches:
    """Random training batches from one split of a pack.

    ``segment_samples``: length of every example. For a conditional model it
    must be a multiple of ``hop_length`` and crops start on frame boundaries; for
    an unconditional one crops start anywhere. Shorter items are zero-padded at
    the end. ``next_batch(B)`` returns ``(x0 (B, 1, segment), mel (B, n_mels, k) or
    None)`` on the CPU; the caller moves them to its device.
    """

    def __init__(self, pack: Pack, segment_samples: int, *, seed: int = 0, split: str = "train",
                 mel_frontend: Optional[str] = None, n_mels: int = 80, hop_length: int = 256,
                 pitch: Optional[dict] = None, gain_db: float = 0.0):
        if segment_samples < 1:
            raise WavefastError(f"segment length must be >= 1 sample, got {segment_samples}")
        if mel_frontend is not None and segment_samples % hop_length:
            raise WavefastError(f"segment length {segment_samples} must be a multiple of the hop "
                                f"{hop_length} for a mel-conditioned model (e.g. {62 * hop_length})")
        self.pack = pack
        self.segment = int(segment_samples)
        self.seed = int(seed)
        self.hop = int(hop_length)
        self.items = pack.indices(split)
        if not self.items:
            raise WavefastError(f"the pack {pack.path} has no {split!r} items")
        self.frontend = mel_frontend
        self.n_mels = n_mels
        self.position = DataPosition()
        self._mels: List[Optional[torch.Tensor]] = [None] * len(self.items)
        self.mel_pad = 0.0
        if mel_frontend is not None:  # whole-utterance mels, once (audio stays int16 in the pack)
            self.mel_pad = silence_mel_value(mel_frontend, pack.sample_rate, n_mels, hop_length)
            self._mels = [self.utterance_mel(self.item_audio(j)) for j in range(len(self.items))]
        self._perm_epoch, self._perm = -1, None
        self.gain_db = float(gain_db)
        self.tracks = None
        if pitch is not None:  # source-filter models: F0, voicing and the phase aligned to each recording
            from ..audio.pitch import aligned_phase
            from .pitch_labels import labelled

            self.tracks = []
            for j, index in enumerate(self.items):
                audio = self.item_audio(j).numpy()
                f0, vp = labelled(*pitch[index], frames=self._mels[j].shape[-1])
                self.tracks.append((f0, vp, aligned_phase(audio, f0, self.hop, pack.sample_rate)))

    def item_audio(self, j: int) -> torch.Tensor:
        """Float audio (L,) of the j-th item of this split."""
        return torch.from_numpy(self.pack.clip(self.items[j]))

    def utterance_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """Whole-utterance mel (n_mels, L // hop + 1); too-short audio is zero-padded first."""
        min_len = 2 * self.hop + 1  # the STFT needs more than n_fft/2 = 512 samples
        if audio.numel() < min_len:
            audio = torch.cat([audio, audio.new_zeros(min_len - audio.numel())])
        return mel_spectrogram(audio, self.frontend, self.pack.sample_rate, self.n_mels, self.hop)

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.items))
            self._perm_epoch = epoch
        return self._perm

    def next_batch(self, batch_size: int) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The next ``batch_size`` examples as ``(x0 (B, 1, segment), mel (B, n_mels, k) or None)``;
        advances :attr:`position` (wrapping epochs)."""
        batch = self.next_examples(batch_size, extra_frame=False)
        return batch["audio"], batch.get("mel")

    def next_examples(self, batch_size: int, extra_frame: bool = False) -> dict:
        """The next examples as a dict: ``audio`` (B, 1, segment), ``mel`` (B, n_mels, k [+1]) and, with
        pitch labels, ``f0``/``voicing`` (B, k + 1) and ``phase`` (B, segment).

        ``extra_frame`` adds the frame after the segment (frame-centre interpolation reads it).
        With ``gain_db`` every example is scaled by a gain drawn in [-gain_db, gain_db] dB
        (its log-mel shifted by ln(gain), floored at the front end's silence value).
        """
        columns: dict = {}
        for _ in range(batch_size):
            pos = self.position
            example = self._example_dict(pos.epoch, pos.cursor, extra_frame)
            for key, value in example.items():
                columns.setdefault(key, []).append(value)
            pos.cursor += 1
            if pos.cursor == len(self.items):
                pos.epoch, pos.cursor = pos.epoch + 1, 0
        out = {k: torch.stack(v) for k, v in columns.items()}
        out["audio"] = out["audio"][:, None, :]
        return out

    def _example_dict(self, epoch: int, cursor: int, extra_frame: bool) -> dict:
        j = int(self.permutation(epoch)[cursor])
        audio, mel = self.item_audio(j), self._mels[j]
        rng = np.random.default_rng([self.seed, epoch, cursor])
        if mel is None:
            start = int(rng.integers(0, max(0, audio.numel() - self.segment) + 1))
            seg, _ = crop_segment(audio, None, self.segment, start, hop=1)
            return {"audio": self._gain(seg, None, rng)[0]}
        k = self.segment // self.hop
        last = max(0, audio.numel() // self.hop - k)
        frame = int(rng.integers(0, last + 1))
        seg, frames = crop_segment(audio, mel, self.segment + (self.hop if extra_frame else 0), frame, self.hop,
                                   self.mel_pad)
        seg = seg[: self.segment]
        seg, frames = self._gain(seg, frames, rng)
        out = {"audio": seg, "mel": frames}
        if self.tracks is not None:
            f0, vp, phase = self.tracks[j]
            n = k + 1
            f0_seg = np.full(n, f0[-1], np.float32)
            vp_seg = np.zeros(n, np.float32)
            part = slice(frame, frame + n)
            f0_seg[: len(f0[part])] = f0[part]
            vp_seg[: len(vp[part])] = vp[part]
            ph = np.zeros(self.segment, np.float32)
            piece = phase[frame * self.hop: frame * self.hop + self.segment]
            ph[: piece.shape[0]] = piece
            out.update(f0=torch.from_numpy(f0_seg), voicing=torch.from_numpy(vp_seg), phase=torch.from_numpy(ph))
        return out

    def _gain(self, seg: torch.Tensor, frames: Optional[torch.Tensor], rng):
        if not self.gain_db:
            return seg, frames
        gain = 10.0 ** (rng.uniform(-self.gain_db, self.gain_db) / 20.0)
        seg = seg * gain
        if frames is not None and self.frontend == "tacotron2":
            frames = torch.clamp(frames + float(np.log(gain)), min=self.mel_pad)
        elif frames is not None:
            raise WavefastError("gain augmentation is implemented for tacotron2 (log-magnitude) mels")
        return seg, frames


def pick_evenly(indices: List[int], count: int) -> List[int]:
    """``count`` entries of ``indices`` spread evenly (all of them if there are fewer)."""
    if count >= len(indices):
        return list(indices)
    return [indices[int(i)] for i in np.unique(np.round(np.linspace(0, len(indices) - 1, count)).astype(int))]
