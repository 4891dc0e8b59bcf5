"""``wavefast pack-digit-mels``: the mel stage's training pack from FSDD and Speech Commands digit clips."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import WavefastError


def cmd_pack_digit_mels(args) -> int:
    from ..fileio import check_output
    from ..images.checkpoints import MEL_DIGITS_LAYOUT
    from .data import build_digit_mel_pack

    fsdd = Path(args.fsdd)
    if not fsdd.is_dir():
        raise WavefastError(f"FSDD recordings folder not found: {fsdd} (the folder of {{digit}}_{{speaker}}_{{take}}.wav)")
    sc = Path(args.speech_commands) if args.speech_commands else None
    if sc is not None and not sc.is_dir():
        raise WavefastError(f"Speech Commands folder not found: {sc} (the folder holding zero/ .. nine/)")
    out = check_output(args.output, (".npz",), [])
    build_digit_mel_pack(fsdd, sc, out, MEL_DIGITS_LAYOUT)
    print(f"wavefast: wrote {out}; train the mel stage with 'wavefast train-images --dataset {out} "
          f"--preset mel-digits --out RUN'", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("pack-digit-mels", help="build the digit generator's mel-stage training pack")
    p.add_argument("--fsdd", required=True, help="FSDD recordings/ folder ({digit}_{speaker}_{take}.wav, 8 kHz)")
    p.add_argument("--speech-commands", help="Speech Commands folder with zero/ .. nine/ (optional)")
    p.add_argument("-o", "--output", required=True, help="output .npz pack")
    p.set_defaults(func=cmd_pack_digit_mels)
