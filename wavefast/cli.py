"""The ``wavefast`` command line. The only place (with the ``*/cli.py`` modules) that reads argv and
picks a device.

Bad input prints one line ``wavefast: error: ...`` on stderr and exits with status 2; other
failures exit 1 with one line (the traceback with ``--debug``). Progress and notes go to stderr
through :mod:`logging` (``-q`` quiet, ``-v`` verbose; ``TQDM_DISABLE=1`` hides progress bars).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional

from .errors import WavefastError, run_command

MEL_SUFFIXES = (".npy", ".pt")
AUDIO_OUTPUTS = (".wav",)
log = logging.getLogger("wavefast")

#: which shipped model a command uses when no --checkpoint is given
COMMAND_KINDS = {"vocode": "vocoder", "export": "vocoder", "generate": "sc09"}


# --- argument types -------------------------------------------------------------------------
def seed_arg(text: str) -> int:
    from .samplers.noise import MAX_SEED

    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number in [0, 2**63 - 1], got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must lie in [0, 2**63 - 1], got {text}")
    return value


def _whole_number_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= {low}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _whole_number_at_least(text, 1)


def count(text: str) -> int:
    return _whole_number_at_least(text, 0)


def unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"kappa must lie in [0, 1] (1 = DDPM-rev, 0 = DDIM-rev), got {value}")
    return value


def positive_float(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_device_args(p: argparse.ArgumentParser, dtype: bool = True) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA when present, default), cpu, cuda or cuda:N")
    if dtype:
        p.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"],
                       help="inference precision (default float32; float16 needs CUDA)")


def _schedule_help() -> str:
    from .schedules.plans import PRESETS, shipped_learned_plans

    learned = ", ".join(shipped_learned_plans()) or "none"
    return ("var-linear, var-quadratic, step-linear, step-quadratic, dpm-solver++2m, ddpm, a published preset ("
            f"{', '.join(PRESETS)}), a shipped learned plan ({learned}) or a plan .json; default: the shipped "
            "learned plan made for these weights with --steps steps (default 6) when --kappa is not given, "
            "else var-quadratic")


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", help="model file (wavefast .safetensors, philsyn .pkl or lmnt .pt); "
                                        "default: the shipped model")
    p.add_argument("--preset", help="architecture preset for files that do not store it (philsyn-sc09, "
                                    "philsyn-lj-base, philsyn-lj-large, lmnt-lj)")
    p.add_argument("--steps", type=int, default=None,
                   help="number of sampling steps S for rule plans (default 6; 1..T)")
    p.add_argument("--plan", "--schedule", dest="schedule", default=None, metavar="PLAN",
                   help=_schedule_help())
    p.add_argument("--kappa", type=unit_float, default=None,
                   help="1 = DDPM-rev (stochastic, default), 0 = DDIM-rev; a learned plan brings its own")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the first item; item i uses seed+i (default 0)")
    p.add_argument("--method", default="lgamma", choices=["lgamma", "stirling", "lmnt"],
                   help="continuous-step mapping: lgamma (exact), stirling (FastDPM), lmnt")
    p.add_argument("--clip-range", action="store_true", help="clamp noise levels outside the trained range into it")
    p.add_argument("--force-schedule", action="store_true",
                   help="use a learned plan file even if it was learned for other weights")
    add_device_args(p)


class Parser(argparse.ArgumentParser):
    """argparse with its errors as one ``wavefast: error:`` line (no usage block), status 2."""

    def error(self, message):
        raise WavefastError(f"{self.prog.replace('wavefast ', '', 1) if self.prog != 'wavefast' else 'usage'}: "
                            f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = Parser(prog="wavefast", description="Few-step sampling of DiffWave models.")
    parser.add_argument("--version", action="version", version=f"wavefast {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="more messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors; no progress bars")
    parser.add_argument("--debug", action="store_true", help="print the traceback of internal errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("schedule", help="print a sampling plan")
    p.add_argument("--checkpoint", help="read T and the beta range from this model")
    p.add_argument("--preset", help="architecture preset for philsyn files")
    p.add_argument("--T", type=positive_int, help="diffusion length T")
    p.add_argument("--beta-0", type=float, help="first beta")
    p.add_argument("--beta-T", type=float, help="last beta")
    p.add_argument("--kind", default="var", help="var, step, ddpm, dpm-solver++2m, or a preset / learned plan / plan .json")
    p.add_argument("--spacing", default="quadratic", choices=["linear", "quadratic"], help="for var and step")
    p.add_argument("--steps", type=int, default=None, help="number of steps S (default 6)")
    p.add_argument("--kappa", type=unit_float, default=None, help="kappa for the sigma column (default 1)")
    p.add_argument("--method", default="lgamma", choices=["lgamma", "stirling", "lmnt"])
    p.add_argument("--clip-range", action="store_true")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(func=cmd_schedule)

    p = sub.add_parser("vocode", help="turn mels (or wavs, via the model's front end) into audio")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="wav, or mel .npy/.pt of shape (n_mels, frames)")
    p.add_argument("-o", "--output", required=True, help="output .wav (one input) or folder")
    p.add_argument("--backend", default=None, choices=["torch", "onnx"],
                   help="torch (default) or onnx (default when --onnx is given)")
    p.add_argument("--onnx", help="full-graph .onnx file from 'wavefast export onnx'")
    p.add_argument("--threads", type=positive_int, default=None, help="ONNX Runtime intra-op threads")
    p.add_argument("--chunk-seconds", type=positive_float, default=4.0,
                   help="long inputs are vocoded in chunks of this length with exact context (default 4)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="vocode the chunks of a long input on this many threads (same audio; on CPU use it with "
                        "--threads 1: the default vocoder, 10 s on 2 cores, --workers 2 --threads 1 takes 0.78x "
                        "the time of --threads 2)")
    _add_sampling_args(p)
    p.set_defaults(func=cmd_vocode)

    p = sub.add_parser("generate", help="unconditional generation (e.g. SC09 digits, or images)")
    p.add_argument("-n", type=positive_int, required=True, help="number of samples")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--batch-size", type=positive_int, default=16)
    _add_sampling_args(p)
    g = p.add_argument_group("two-stage generators (the default digit model: a mel DDPM, then a vocoder); "
                             "--plan/--steps/--kappa above are the mel stage's (default var-quadratic, 20 steps, kappa 0)")
    g.add_argument("--vocoder", metavar="CHECKPOINT", help="vocoder for a mel-stage checkpoint (default: the shipped one)")
    g.add_argument("--vocoder-plan", default=None, metavar="PLAN",
                   help="the vocoder stage's plan (default: the vocoder's default, its shipped 6-step plan)")
    g.add_argument("--vocoder-steps", type=positive_int, default=None, help="the vocoder stage's S (default 6)")
    g.add_argument("--vocoder-kappa", type=unit_float, default=None, help="the vocoder stage's kappa")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("export", help="export the S-step sampling graph (or one step) to ONNX")
    p.add_argument("format", choices=["onnx"], help="export format")
    p.add_argument("-o", "--output", required=True, help="output .onnx file")
    p.add_argument("--per-step", action="store_true", help="export one denoiser call instead of the whole sampler")
    p.add_argument("--no-check", action="store_true", help="skip the ORT-vs-PyTorch parity check")
    p.add_argument("--layout", default="auto", choices=["auto", "folded", "folded-wide", "reference"],
                   help="full-graph layout: folded (fast on CPU for 64+ channels), folded-wide (the same with time "
                        "along the width: one thread per item, for comparison), reference (the model's layers "
                        "as they are), auto (default: folded for source-filter models and DiffWave with >= 64 "
                        "residual channels); same outputs")
    p.add_argument("--lengths", action="store_true",
                   help="add a 'lengths' input (frames per item): a padded batch of mixed lengths in one call, "
                        "each item as if alone (one mask multiply per layer per step)")
    p.add_argument("--int8", action="store_true",
                   help="opt-in: the per-step network's convolutions in int8 (ONNX Runtime static quantisation, "
                        "calibrated on --calibration); pays on CPUs with AVX512-VNNI (default vocoder 0.79x the fp32 "
                        "time, vocoder metrics as fp32), not on plain AVX2 (0.99x); see export/README.md")
    p.add_argument("--calibration", action="append", default=[], metavar="FILE",
                   help="with --int8: a recording (.wav) or mel (.npy/.pt) to calibrate on; repeat for several "
                        "(default: the shipped demo sentence)")
    _add_sampling_args(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("convert", help="convert a philsyn / lmnt checkpoint to wavefast .safetensors")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--preset", help="architecture preset for files that do not store it")
    p.add_argument("--config", help="upstream config.json (philsyn)")
    p.add_argument("--fp16", action="store_true", help="store fp16 weights (default fp32)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("demo", help="vocode the shipped sentence and generate digits with the shipped models")
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    p.add_argument("--steps", type=positive_int,
                   help="vocoder sampling steps, also the digit generator's vocoder stage (default: the shipped plans, 6)")
    p.add_argument("--digits", type=count, default=8, help="digits to generate (default 8; 0 = none)")
    p.set_defaults(func=lambda args: __import__("wavefast.demo", fromlist=["run_demo"]).run_demo(
        args.out, args.steps, args.digits))

    from .digits.cli import register as register_digits
    from .eval.cli import register as register_eval
    from .images.cli import register as register_images
    from .learn.cli import register as register_learn
    from .train.cli import register as register_train

    for register in (register_train, register_eval, register_learn, register_images, register_digits):
        register(sub)
    return parser


# --- commands ---------------------------------------------------------------------------
def cmd_schedule(args) -> int:
    from .samplers.ggdm import coefficients_for, plan_kappa
    from .schedules import LinearBetaSchedule, resolve_plan

    if args.checkpoint:
        from .models.checkpoints import load_model

        model = load_model(args.checkpoint, args.preset)
        schedule = LinearBetaSchedule.from_spec(model.spec.diffusion)
    else:
        if args.T is None or args.beta_0 is None or args.beta_T is None:
            raise WavefastError("give --checkpoint, or all of --T, --beta-0 and --beta-T")
        model = schedule = LinearBetaSchedule(args.T, args.beta_0, args.beta_T)
    kind = args.kind
    if kind in ("var", "step"):
        kind = f"{kind}-{args.spacing}"
    plan = resolve_plan(model, kind, args.steps, args.method, args.clip_range, force=True)
    kappa = plan_kappa(plan, args.kappa)
    sigmas = coefficients_for(plan, kappa).sigmas.tolist()
    if args.json:
        print(json.dumps({"name": plan.name, "T": schedule.T, "beta_0": schedule.beta_0, "beta_T": schedule.beta_T,
                          "kappa": kappa, "steps": list(plan.steps), "alpha_bar": list(plan.alpha_bars),
                          "sigma": sigmas, "info": plan.info}, indent=2))
        return 0
    print(f"plan {plan.name}: S={len(plan)} steps on T={schedule.T}, beta {schedule.beta_0} -> {schedule.beta_T}, "
          f"kappa={kappa}")
    print(f"{'i':>3} {'step t':>12} {'alpha_bar':>12} {'sigma':>12}")
    for i, (t, a, s) in enumerate(zip(plan.steps, plan.alpha_bars, sigmas)):
        print(f"{i:>3} {t:>12.6f} {a:>12.8f} {s:>12.8f}")
    return 0


def load_for(args, kind: Optional[str] = None):
    """The model of ``--checkpoint`` or the shipped model of ``kind`` on ``--device`` / ``--dtype``."""
    from .devices import resolve_device, resolve_dtype
    from .models import load_default, load_model

    device = resolve_device(getattr(args, "device", None))
    dtype = resolve_dtype(getattr(args, "dtype", None), device)
    if getattr(args, "checkpoint", None):
        model = load_model(args.checkpoint, getattr(args, "preset", None), device=device)
    else:
        model = load_default(kind or COMMAND_KINDS[args.command], device=device)
    return model.to(dtype=dtype)


def _outputs_for(inputs: List[Path], output: Path) -> List[Path]:
    from .fileio import check_output, check_output_folder

    if len(inputs) == 1 and output.suffix:
        return [check_output(output, AUDIO_OUTPUTS, inputs)]
    if output.suffix.lower() in AUDIO_OUTPUTS:
        raise WavefastError(f"{len(inputs)} inputs need an output folder, not the file {output}")
    if output.suffix and not output.is_dir():
        raise WavefastError(f"output {output}: unsupported file type {output.suffix!r}; allowed: .wav, or a folder "
                            "(for several inputs)")
    check_output_folder(output, inputs)
    names = [p.name[: -len("".join(p.suffixes))] if p.suffixes else p.name for p in inputs]
    if len(set(names)) != len(names):
        raise WavefastError("two inputs share a file name; their outputs would overwrite each other")
    return [check_output(output / f"{n}.wav", AUDIO_OUTPUTS, inputs) for n in names]


def _read_inputs(inputs, spec):
    """(mels, sample lengths or None) for each input: loaded from .npy/.pt, or computed from audio."""
    from .audio.io import load_mel, read_audio
    from .audio.mel import check_mel, mel_spectrogram

    mels, lengths = [], []
    for path in inputs:  # read and check everything before writing anything
        if path.suffix.lower() in MEL_SUFFIXES:
            mel = load_mel(path)
            lengths.append(None)
        else:
            audio, _ = read_audio(path, spec.sample_rate, announce=True)
            if audio.shape[0] <= 2 * spec.hop_length:
                raise WavefastError(f"{path}: {audio.shape[0]} samples is too short to vocode "
                                    f"(need more than {2 * spec.hop_length})")
            mel = mel_spectrogram(audio, spec.mel_frontend, spec.sample_rate, spec.n_mels, spec.hop_length)
            lengths.append(int(audio.shape[0]))
        mels.append(check_mel(mel, spec.n_mels, spec.mel_frontend, str(path))[0])
    return mels, lengths


def cmd_vocode(args) -> int:
    from tqdm.auto import tqdm

    from .audio.io import write_wav
    from .vocoder import Vocoder

    inputs = [Path(p) for p in args.inputs]
    for path in inputs:  # cheap checks before the model loads
        if not path.is_file():
            raise WavefastError(f"file not found: {path}" if not path.exists() else f"not a file: {path}")
    outputs = _outputs_for(inputs, Path(args.output))
    onnx = args.backend == "onnx" or (args.backend is None and args.onnx)
    if onnx:
        if not args.onnx:
            raise WavefastError("--backend onnx needs --onnx MODEL.onnx (made by 'wavefast export onnx')")
        if args.checkpoint or args.steps is not None or args.kappa is not None or args.dtype is not None or \
                args.schedule is not None:
            raise WavefastError("an exported graph fixes its model, plan, kappa and precision; drop --checkpoint, "
                                "--steps, --plan, --kappa and --dtype with --onnx")
        voc = Vocoder.from_pretrained(args.onnx, device=args.device, threads=args.threads,
                                      chunk_seconds=args.chunk_seconds, workers=args.workers)
    else:
        if args.threads is not None:
            raise WavefastError("--threads applies to --backend onnx")
        from .runtime.backends import TorchBackend
        from .schedules.resolve import resolve_plan

        model = load_for(args)
        if not model.spec.conditional:
            raise WavefastError("this checkpoint is unconditional; use 'wavefast generate'")
        plan = resolve_plan(model, args.schedule, args.steps, args.method, args.clip_range, args.force_schedule,
                        kappa=args.kappa)
        voc = Vocoder(TorchBackend(model, plan, args.kappa), chunk_seconds=args.chunk_seconds, workers=args.workers)
    spec = voc.spec
    mels, lengths = _read_inputs(inputs, spec)
    bar = tqdm(list(zip(inputs, mels, lengths, outputs)), desc="vocoding", unit="file", disable=len(inputs) == 1)
    for i, (path, mel, length, out) in enumerate(bar):
        audio = voc.vocode_long(mel, seed=args.seed + i)
        if length is not None:  # a recording comes back at its own length
            audio = audio[:length]
        write_wav(out, audio, spec.sample_rate)
        backend = voc.backend.name + (" int8" if getattr(voc.backend, "precision", "float32") == "int8" else "")
        log.info(f"wrote {out} ({audio.shape[-1] / spec.sample_rate:.2f} s, {backend}, {voc.plan.name}, "
                 f"S={len(voc.plan)}, kappa={voc.kappa})")
    return 0


def cmd_generate(args) -> int:
    from tqdm.auto import tqdm

    from . import generation_run as run
    from .audio.io import write_wav
    from .fileio import check_output_folder
    from .pipeline import generate
    from .samplers.ggdm import plan_kappa
    from .schedules.resolve import resolve_plan

    model = None
    if args.checkpoint:  # an image model: PNGs and a grid (wavefast.images); a mel-stage one: two stages
        from .images.checkpoints import is_image_checkpoint

        if is_image_checkpoint(args.checkpoint, args.preset):
            model = _two_stage_for(args)
            if model is None:
                from .images.cli import cmd_generate_images

                return cmd_generate_images(args)
    out_dir = Path(args.output)
    if out_dir.suffix.lower() in AUDIO_OUTPUTS:
        raise WavefastError(f"-o must be a folder for generated samples, got {out_dir}")
    check_output_folder(out_dir)
    model = model if model is not None else load_for(args)
    if model.spec.conditional:
        raise WavefastError("this checkpoint is mel-conditioned; use 'wavefast vocode' with a mel or wav input")
    two_stage = hasattr(model, "mel_model")
    vocoder_args = (args.vocoder, args.vocoder_plan, args.vocoder_steps, args.vocoder_kappa)
    if not two_stage and any(v is not None for v in vocoder_args):
        raise WavefastError("--vocoder, --vocoder-plan, --vocoder-steps and --vocoder-kappa apply to two-stage "
                            "generators (the default digit model or a mel-stage checkpoint), not to this waveform model")
    if two_stage:
        plan = model.mel_plan(args.schedule, args.steps, args.kappa, args.method, args.clip_range,
                              args.force_schedule)
        vocoder_plan = resolve_plan(model.vocoder, args.vocoder_plan, args.vocoder_steps, kappa=args.vocoder_kappa)
        stage2 = {"vocoder_plan": vocoder_plan, "vocoder_kappa": args.vocoder_kappa}
        kappa = model.mel_kappa(plan, args.kappa)
    else:
        plan = resolve_plan(model, args.schedule, args.steps, args.method, args.clip_range, args.force_schedule,
                            kappa=args.kappa)
        stage2 = None
        kappa = plan_kappa(plan, args.kappa)
    rank, world = run.rank_and_world()
    run.init_process_group(world)
    settings = run.run_settings(model, plan, kappa, args.seed, args.n, args.batch_size)
    if two_stage:
        settings.update({"vocoder_plan": vocoder_plan.name, "vocoder_steps": list(vocoder_plan.steps),
                         "vocoder_kappa": plan_kappa(vocoder_plan, args.vocoder_kappa)})
    out_dir.mkdir(parents=True, exist_ok=True)
    run.check_or_write_manifest(out_dir, settings, rank, world)
    todo = run.pending_batches(out_dir, args.n, args.batch_size, rank, world, model.spec.sample_rate,
                               model.spec.segment_length)
    bar = tqdm(total=sum(map(len, todo)), desc=f"generating (rank {rank}/{world})" if world > 1 else "generating",
               unit="sample")
    for indices in todo:
        audio = generate(model, len(indices), plan=plan, kappa=kappa, seed=[args.seed + i for i in indices],
                         batch_size=len(indices), vocoder=stage2)
        for j, index in enumerate(indices):
            if not run.sample_ok(out_dir, index, model.spec.sample_rate, model.spec.segment_length):
                write_wav(run.sample_path(out_dir, index), audio[j], model.spec.sample_rate)
        bar.update(len(indices))
    bar.close()
    run.finish(out_dir, settings, args.n, rank, world, model.spec.sample_rate, model.spec.segment_length)
    return 0


def _two_stage_for(args):
    """A two-stage generator when ``--checkpoint`` is a mel-stage image model (with ``--vocoder`` or the
    shipped vocoder), else None."""
    from .devices import resolve_device, resolve_dtype
    from .digits.generator import load_two_stage

    if args.preset is not None:
        return None
    device = resolve_device(getattr(args, "device", None))
    model = load_two_stage(args.checkpoint, args.vocoder, device)
    return None if model is None else model.to(dtype=resolve_dtype(getattr(args, "dtype", None), device))


def cmd_export(args) -> int:
    from .fileio import check_output
    from .runtime.onnx_export import export_onnx
    from .schedules.resolve import resolve_plan

    check_output(args.output, (".onnx",), ([args.checkpoint] if args.checkpoint else []) + args.calibration)
    if args.dtype not in (None, "float32"):
        raise WavefastError("ONNX export writes float32 graphs (--int8 for int8 convolutions); drop --dtype")
    if args.calibration and not args.int8:
        raise WavefastError("--calibration is for --int8 (its activation ranges)")
    if args.int8 and args.per_step:
        raise WavefastError("--int8 is for the full graph; drop --per-step")
    for path in args.calibration:
        if not Path(path).is_file():
            raise WavefastError(f"calibration file not found: {path}")
    model = load_for(args)
    model = model.cpu()
    if args.int8 and not model.spec.conditional:
        raise WavefastError("--int8 is for vocoder graphs (its calibration runs mels through the vocoder)")
    plan = resolve_plan(model, args.schedule, args.steps, args.method, args.clip_range, args.force_schedule,
                        kappa=args.kappa)
    if not args.int8:
        report = export_onnx(model, plan, args.output, kappa=args.kappa, per_step=args.per_step,
                             check=not args.no_check, layout=args.layout, lengths=args.lengths)
        extra = ""
    else:
        import tempfile

        from .runtime.quantize import calibration_mels, quantize_graph

        with tempfile.TemporaryDirectory(prefix="wavefast-int8-") as folder:
            fp32 = Path(folder) / "fp32.onnx"
            report = export_onnx(model, plan, fp32, kappa=args.kappa, check=not args.no_check, layout=args.layout,
                                 lengths=args.lengths)
            quant = quantize_graph(fp32, args.output, calibration_mels(model.spec, args.calibration))
        extra = (f"; int8: {quant['convolutions']} convolutions of the per-step network, output "
                 f"{quant['snr_db']:.1f} dB SNR vs fp32 on {quant['calibration_items']} calibration item(s)")
    check = "skipped" if report["parity_error"] is None else f"max rel. error {report['parity_error']:.2e}"
    log.info(f"wrote {args.output} ({report['graph']} graph, {plan.name} S={len(plan)}, kappa={report['kappa']}, "
             f"opset {report['opset']}; ORT vs PyTorch parity: {check}{extra})")
    return 0


def cmd_convert(args) -> int:
    import torch

    from .fileio import check_output
    from .models.checkpoints import convert

    if not Path(args.input).is_file():
        raise WavefastError(f"checkpoint not found: {args.input}")
    check_output(args.output, (".safetensors",), [args.input])
    out = convert(args.input, args.output, args.preset, args.config, torch.float16 if args.fp16 else torch.float32)
    log.info(f"wrote {out}")
    return 0


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Messages to stderr as ``wavefast: ...``; ``quiet`` also turns progress bars off."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logger = logging.getLogger("wavefast")
    logger.setLevel(level)
    if not any(getattr(h, "_wavefast", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("wavefast: %(message)s"))
        handler._wavefast = True
        logger.addHandler(handler)
        logger.propagate = False
    if quiet:
        os.environ["TQDM_DISABLE"] = "1"


def main(argv: Optional[List[str]] = None) -> int:
    def parse(_):
        return build_parser().parse_args(argv)

    holder = {}

    def parse_into(_):
        holder["args"] = parse(None)
        return 0

    code = run_command(parse_into, None)
    if "args" not in holder:
        return code
    args = holder["args"]
    setup_logging(args.verbose, args.quiet)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
