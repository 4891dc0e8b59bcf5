"""The README demo: vocode a shipped sentence and generate digits with the shipped models.

Writes, under ``--out``:

- ``hello_vocoded.wav``: the shipped vocoder (``Vocoder.from_pretrained()``, its default
  6-step plan) on the mel of a Festival-synthesised sentence in ``wavefast/demo_data``;
- ``hello_spectrogram.png``: input and output log-mel spectrograms, and a 0-2 kHz
  linear-frequency zoom of both where the harmonics of the voice show as parallel lines;
- ``digits/digit_NN.wav`` and ``digits_spectrograms.png``: samples of the shipped digit model.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .audio.io import read_audio, write_wav
from .audio.mel import mel_spectrogram
from .fileio import atomic_output, check_output_folder
from .models.default_models import load_default
from .pipeline import generate
from .vocoder import Vocoder

DEMO_INPUT = Path(__file__).resolve().parent / "demo_data" / "hello.wav"
ZOOM_HZ = 2000.0


def _linear_zoom(audio: np.ndarray, sample_rate: int, top_hz: float = ZOOM_HZ, n_fft: int = 2048, hop: int = 256):
    """|STFT| in dB up to ``top_hz``: (bins, frames), fine enough (10.8 Hz bins at 22.05 kHz) to resolve harmonics."""
    x = torch.as_tensor(np.asarray(audio, np.float32))
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True).abs()
    bins = int(top_hz / (sample_rate / n_fft)) + 1
    return (20 * torch.log10(spec[:bins] + 1e-5)).numpy()


def save_spectrograms(path: Path, panels, sample_rate: int, columns: int = 1, zoom: bool = False) -> None:
    """PNG of log-mel spectrograms; panels = [(title, audio (L,))]; ``zoom`` adds a 0-2 kHz linear panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    views = [(title, audio, "mel") for title, audio in panels]
    if zoom:
        views += [(f"{title}: 0-{ZOOM_HZ / 1000:g} kHz", audio, "zoom") for title, audio in panels]
    rows = (len(views) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns if columns > 1 else 9, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, audio, kind) in zip(axes.flat, views):
        if kind == "mel":
            image = mel_spectrogram(torch.as_tensor(audio), "tacotron2", sample_rate).numpy()
            ax.imshow(image, origin="lower", aspect="auto", vmin=-11.5, vmax=2.0, cmap="magma")
        else:
            image = _linear_zoom(audio, sample_rate)
            ax.imshow(image, origin="lower", aspect="auto", vmin=image.max() - 70, vmax=image.max(), cmap="magma",
                      extent=(0, image.shape[1], 0, ZOOM_HZ))
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_output(path, ".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def run_demo(out="demo_out", steps: Optional[int] = None, digits: int = 8) -> int:
    """Vocode the shipped sentence and generate ``digits`` digits with the shipped models into ``out``
    (``steps``: the vocoder's sampling steps, also in the digit generator's vocoder stage; default each
    model's default plan)."""
    out = check_output_folder(out, what="demo output folder")
    vocoder = Vocoder.from_pretrained(steps=steps)  # the shipped default
    audio, sr = read_audio(DEMO_INPUT, vocoder.sample_rate)
    mel = vocoder.mel(audio, sr)
    start = time.perf_counter()
    vocoded = vocoder.vocode_long(mel, seed=0)
    took = time.perf_counter() - start
    seconds = vocoded.numel() / sr
    write_wav(out / "hello_vocoded.wav", vocoded, sr)
    plan = vocoder.plan
    save_spectrograms(out / "hello_spectrogram.png",
                      [("input (Festival, 22.05 kHz)", audio),
                       (f"{vocoder.spec.name}, {plan.name} S={len(plan)}", vocoded.numpy())], sr, zoom=True)
    print(f"vocoded {seconds:.2f} s of speech in {took:.2f} s (RTF {took / seconds:.2f}, {len(plan)} steps) "
          f"-> {out / 'hello_vocoded.wav'}, {out / 'hello_spectrogram.png'}", file=sys.stderr)

    if digits:
        digits_model = load_default("sc09")
        start = time.perf_counter()
        if hasattr(digits_model, "mel_model"):  # two stages: the mel stage's default plan, the vocoder at ``steps``
            clips = generate(digits_model, digits, seed=0, vocoder={"vocoder_steps": steps})
        else:
            clips = generate(digits_model, digits, steps=steps or 6, seed=0)
        took = time.perf_counter() - start
        rate = digits_model.spec.sample_rate
        for i, clip in enumerate(clips):
            write_wav(out / "digits" / f"digit_{i:02d}.wav", clip, rate)
        save_spectrograms(out / "digits_spectrograms.png", [(f"sample {i}", d) for i, d in enumerate(clips)], rate,
                          columns=4)
        print(f"generated {len(clips)} digits in {took:.1f} s with {digits_model.spec.name} -> {out / 'digits'}, "
              f"{out / 'digits_spectrograms.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # python -m wavefast.demo [--out DIR] = wavefast demo [--out DIR]
    from .cli import main

    sys.exit(main(["demo", *sys.argv[1:]]))
