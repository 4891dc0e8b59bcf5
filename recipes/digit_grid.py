"""Spectrogram grid of generated digits, each titled with the shipped SC09 classifier's label and confidence.

    wavefast generate -n 16 -o runs/digits            # the default two-stage generator, seeds 0..15
    python recipes/digit_grid.py runs/digits -o wavefast/models/cards/grids/sc09_two_stage_default.png

Reads ``sample_*.wav`` from the folder in name order (all, or the first ``--count``), labels each with
:func:`wavefast.eval.classifier.classify`, and draws them with the demo's log-mel plotter, four per row.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from wavefast.audio.io import read_audio
from wavefast.demo import save_spectrograms
from wavefast.errors import WavefastError, run_command
from wavefast.eval.classifier import DIGITS, SAMPLE_RATE, classify, load_sc09_classifier, prepare_clip
from wavefast.fileio import check_output


def draw(args) -> int:
    files = sorted(Path(args.folder).glob("sample_*.wav"))[:args.count or None]
    if not files:
        raise WavefastError(f"no sample_*.wav in {args.folder} (write them with 'wavefast generate -o FOLDER')")
    out = check_output(args.output, (".png",), files)
    clips = [read_audio(p, SAMPLE_RATE)[0] for p in files]
    probs = classify(load_sc09_classifier(), np.stack([prepare_clip(c, SAMPLE_RATE) for c in clips]))[0]
    panels = [(f"{i}: '{DIGITS[int(p.argmax())]}' {float(p.max()):.2f}", c) for i, (c, p) in enumerate(zip(clips, probs))]
    save_spectrograms(out, panels, SAMPLE_RATE, columns=4)
    print(f"wrote {out} ({len(files)} clips)", file=sys.stderr)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a 'wavefast generate' output folder")
    parser.add_argument("-o", "--output", required=True, help="output .png")
    parser.add_argument("--count", type=int, default=0, help="first N clips (default all)")
    return run_command(draw, parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
