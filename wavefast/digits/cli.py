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
    synthetic = Path(args.synthetic) if args.synthetic else None
    if synthetic is not None and not synthetic.is_dir():
        raise WavefastError(f"synthetic clips folder not found: {synthetic} (write it with 'wavefast synth-digits -o DIR')")
    out = check_output(args.output, (".npz",), [])
    build_digit_mel_pack(fsdd, sc, out, MEL_DIGITS_LAYOUT, synthetic)
    print(f"wavefast: wrote {out}; train the mel stage with 'wavefast train-images --dataset {out} "
          f"--preset mel-digits --out RUN'", file=sys.stderr)
    return 0


def cmd_synth_digits(args) -> int:
    from .synth import installed_voices, synthesize_digits

    voices = installed_voices()
    paths = synthesize_digits(args.output, args.takes, seed=args.seed, voices=voices, progress=not args.quiet)
    engines = sorted({v.engine for v in voices})
    print(f"wavefast: {len(paths)} clips in {args.output} ({len(voices)} voices: {', '.join(engines)}); add them "
          f"to the mel stage's train split with 'wavefast pack-digit-mels ... --synthetic {args.output}'",
          file=sys.stderr)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("pack-digit-mels", help="build the digit generator's mel-stage training pack")
    p.add_argument("--fsdd", required=True, help="FSDD recordings/ folder ({digit}_{speaker}_{take}.wav, 8 kHz)")
    p.add_argument("--speech-commands", help="Speech Commands folder with zero/ .. nine/ (optional)")
    p.add_argument("--synthetic", help="folder of synthesised {digit}_{voice}_{take}.wav clips to add to the "
                   "train split only (from 'wavefast synth-digits')")
    p.add_argument("-o", "--output", required=True, help="output .npz pack")
    p.set_defaults(func=cmd_pack_digit_mels)

    p = subparsers.add_parser("synth-digits", help="synthesise spoken digit words offline (espeak-ng, flite, "
                              "festival) as extra training clips")
    p.add_argument("-o", "--output", required=True, help="output folder (re-running resumes)")
    p.add_argument("--takes", type=int, default=100, help="clips per digit (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_synth_digits)
