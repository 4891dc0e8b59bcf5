"""The README demo: vocode a shipped sentence and generate digits with the shipped models.

Writes, under ``--out``: ``hello_vocoded.wav`` (6-step FastDPM VAR vocoding of a
Festival-synthesised sentence shipped in ``wavefast/demo_data``), a spectrogram
comparison ``hello_spectrogram.png``, a few generated digits in ``digits/`` and
``digits_spectrograms.png``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from .audio.io import read_audio, write_wav
from .fileio import atomic_output
from .audio.mel import mel_spectrogram
from .models.default_models import load_default
from .pipeline import generate, vocode

DEMO_INPUT = Path(__file__).resolve().parent / "demo_data" / "hello.wav"


def save_spectrograms(path: Path, panels, sample_rate: int, columns: int = 1) -> None:
    """PNG of log-mel spectrograms; panels = [(title, audio (L,))]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, audio) in zip(axes.flat, panels):
        mel = mel_spectrogram(torch.as_tensor(audio), "tacotron2", sample_rate)
        ax.imshow(mel.numpy(), origin="lower", aspect="auto", vmin=-11.5, vmax=2.0, cmap="magma")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_output(path, ".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def run_demo(out="demo_out", steps: int = 6, digits: int = 8) -> int:
    """Vocode the shipped sentence and generate ``digits`` digits with the shipped models into ``out``."""
    out = Path(out)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    class args:  # noqa: N801 - the two settings used below
        pass

    args.steps, args.digits = steps, digits

    vocoder = load_default("vocoder")
    spec = vocoder.spec
    audio, sr = read_audio(DEMO_INPUT, spec.sample_rate)
    mel = mel_spectrogram(audio, spec.mel_frontend, sr, spec.n_mels, spec.hop_length)
    start = time.perf_counter()
    vocoded = vocode(vocoder, mel, steps=args.steps, schedule="var-quadratic", kappa=1.0, seed=0, progress=True)
    took = time.perf_counter() - start
    write_wav(out / "hello_vocoded.wav", vocoded, sr)
    save_spectrograms(out / "hello_spectrogram.png",
                      [("input (Festival, 22.05 kHz)", audio), (f"wavefast {spec.name}, S={args.steps}", vocoded)], sr)
    print(f"vocoded {len(audio) / sr:.2f} s of speech in {took:.2f} s (RTF {took / (len(audio) / sr):.2f}) "
          f"-> {out / 'hello_vocoded.wav'}, {out / 'hello_spectrogram.png'}", file=sys.stderr)

    digits_model = load_default("sc09")
    digits = generate(digits_model, args.digits, steps=args.steps, schedule="var-quadratic", kappa=1.0, seed=0)
    rate = digits_model.spec.sample_rate
    for i, clip in enumerate(digits):
        write_wav(out / "digits" / f"digit_{i:02d}.wav", clip, rate)
    save_spectrograms(out / "digits_spectrograms.png", [(f"sample {i}", d) for i, d in enumerate(digits)], rate,
                      columns=4)
    print(f"generated {len(digits)} digits with {digits_model.spec.name} -> {out / 'digits'}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # python -m wavefast.demo [--out DIR] = wavefast demo [--out DIR]
    from .cli import main

    sys.exit(main(["demo", *sys.argv[1:]]))
