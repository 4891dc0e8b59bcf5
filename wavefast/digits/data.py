"""The training pack of the mel stage: real digit clips as mel images.

Clips (the SC09 classifier's splits, so its held-out clips are never trained on):
FSDD takes 5-49 train / 0-4 test, Speech Commands digits minus two held-out speakers, and
optionally synthesised digit words (:mod:`wavefast.digits.synth`), which go to the train split only
(the test split stays real clips, so validation and the reference statistics are unchanged).
Each clip goes through the classifier's ``prepare_clip`` (16 kHz, energy centroid at
0.5 s, 16,000 samples, peak 1), is scaled to peak ``PEAK``, resampled to 22.05 kHz
(22,050 samples), zero-padded to ``frames * hop - hop`` = 22,272 samples so that the
tacotron2 front end gives exactly ``frames`` = 88 frames, and mapped to a mel image by
:class:`~wavefast.images.mel_image.MelImageLayout`.

Pack (``.npz``): ``train_images`` / ``test_images`` float16 (N, 16, 20, 22) in model range,
``train_labels`` / ``test_labels`` int64 (digit 0-9), ``layout`` (JSON of the layout).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import torch

from ..errors import WavefastError
from ..images.mel_image import MelImageLayout

PEAK = 0.9
CLIP_RATE = 16000


def clips_to_mels(clips: np.ndarray, layout: MelImageLayout, batch: int = 256) -> torch.Tensor:
    """Prepared 16 kHz clips (N, 16000) -> tacotron2 log-mels (N, n_mels, frames)."""
    from ..audio.io import resample
    from ..audio.mel import mel_spectrogram

    length = (layout.frames - 1) * layout.hop_length
    out = []
    for start in range(0, len(clips), batch):
        audio = np.zeros((min(batch, len(clips) - start), length), np.float32)
        for i, clip in enumerate(clips[start:start + batch]):
            y = resample(PEAK * np.asarray(clip, np.float32), CLIP_RATE, layout.sample_rate)[:length]
            audio[i, :len(y)] = y
        out.append(mel_spectrogram(audio, layout.frontend, layout.sample_rate, layout.n_mels, layout.hop_length))
    mels = torch.cat(out)
    if mels.shape[-1] != layout.frames:
        raise WavefastError(f"internal: {mels.shape[-1]} mel frames, expected {layout.frames}")
    return mels


def load_synthetic_clips(root) -> Tuple[np.ndarray, np.ndarray]:
    """Synthesised ``{digit}_{voice}_{take}.wav`` clips -> (clips (N, 16000) float32, labels (N,))."""
    from ..eval.train_classifier import FSDD_NAME, _read_clips

    root = Path(root)
    entries = [(p, int(m.group(1))) for p in sorted(root.glob("*.wav")) if (m := FSDD_NAME.match(p.name))]
    if not entries:
        raise WavefastError(f"no synthetic clips named {{digit}}_{{voice}}_{{take}}.wav in {root} "
                            "(write them with 'wavefast synth-digits -o DIR')")
    return _read_clips([p for p, _ in entries], "synthetic"), np.array([d for _, d in entries], dtype=np.int64)


def load_digit_clips(fsdd_root, speech_commands_root, synthetic_root=None) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """{"train"|"test": (clips (N, 16000) float32, labels (N,))}: FSDD + Speech Commands, classifier splits,
    plus the synthetic clips of ``synthetic_root`` (if given) in the train split."""
    from ..eval.train_classifier import load_fsdd, load_speech_commands

    parts = [load_fsdd(fsdd_root)]
    if speech_commands_root is not None:
        parts.append(load_speech_commands(speech_commands_root))
    if synthetic_root is not None:
        clips, labels = load_synthetic_clips(synthetic_root)
        parts.append({"train": (clips, labels), "test": (clips[:0], labels[:0])})
    return {split: (np.concatenate([p[split][0] for p in parts]), np.concatenate([p[split][1] for p in parts]))
            for split in ("train", "test")}


def build_digit_mel_pack(fsdd_root, speech_commands_root, out, layout: MelImageLayout, synthetic_root=None) -> Path:
    """Write the mel-image pack (see the module docstring) atomically to ``out``."""
    from ..fileio import atomic_output

    data = load_digit_clips(fsdd_root, speech_commands_root, synthetic_root)
    arrays = {"layout": np.array(json.dumps(layout.to_dict()))}
    for split, (clips, labels) in data.items():
        arrays[f"{split}_images"] = layout.to_image(clips_to_mels(clips, layout)).numpy().astype(np.float16)
        arrays[f"{split}_labels"] = labels.astype(np.int64)
    out = Path(out)
    with atomic_output(out) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    return out
