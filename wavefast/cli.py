"""The ``wavefast`` command line. The only place that reads argv and picks a device.

Bad input prints one line ``wavefast: error: ...`` on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from .errors import WavefastError, run_command

MEL_SUFFIXES = (".npy", ".pt")


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", help="model file (wavefast .safetensors, philsyn .pkl or lmnt .pt); "
                                        "default: the shipped model")
    p.add_argument("--preset", help="architecture preset for files that do not store it (philsyn-sc09, "
                                    "philsyn-lj-base, philsyn-lj-large, lmnt-lj)")
    p.add_argument("--steps", type=int, default=None, help="number of sampling steps S (default 6 for rule schedules)")
    p.add_argument("--schedule", default="var-quadratic",
                   help="var-linear, var-quadratic, step-linear, step-quadratic, ddpm, a preset "
                        "(diffwave-base-6, diffwave-large-6, wavegrad-6) or a plan .json (default var-quadratic)")
    p.add_argument("--kappa", type=float, default=1.0, help="1 = DDPM-rev (stochastic), 0 = DDIM-rev (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first item; item i uses seed+i (default 0)")
    p.add_argument("--method", default="lgamma", help="continuous-step mapping: lgamma (exact), stirling (FastDPM), lmnt")
    p.add_argument("--clip-range", action="store_true", help="clamp noise levels outside the trained range into it")
    p.add_argument("--force-schedule", action="store_true",
                   help="use a learned schedule file even if it was learned for other weights")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wavefast", description="Few-step sampling of DiffWave models.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("schedule", help="print a sampling plan")
    p.add_argument("--checkpoint", help="read T and the beta range from this model")
    p.add_argument("--preset", help="architecture preset for philsyn files")
    p.add_argument("--T", type=int, help="diffusion length T")
    p.add_argument("--beta-0", type=float, help="first beta")
    p.add_argument("--beta-T", type=float, help="last beta")
    p.add_argument("--kind", default="var", help="var, step, ddpm, or a preset / plan .json")
    p.add_argument("--spacing", default="quadratic", help="linear or quadratic (for var and step)")
    p.add_argument("--steps", type=int, default=None, help="number of steps S (default 6)")
    p.add_argument("--kappa", type=float, default=1.0, help="kappa for the sigma column (default 1)")
    p.add_argument("--method", default="lgamma", help="lgamma, stirling or lmnt")
    p.add_argument("--clip-range", action="store_true")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(func=cmd_schedule)

    p = sub.add_parser("vocode", help="turn mels (or wavs, via the model's front end) into audio")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="wav, or mel .npy/.pt of shape (n_mels, frames)")
    p.add_argument("-o", "--output", required=True, help="output .wav (one input) or folder")
    p.add_argument("--backend", default="torch", choices=["torch", "onnx"], help="torch (default) or onnx")
    p.add_argument("--onnx", help="full-graph .onnx file from 'wavefast export onnx' (with --backend onnx)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    _add_sampling_args(p)
    p.set_defaults(func=cmd_vocode)

    p = sub.add_parser("generate", help="unconditional generation (e.g. SC09 digits)")
    p.add_argument("-n", type=int, required=True, help="number of samples")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--batch-size", type=int, default=16)
    _add_sampling_args(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("export", help="export the S-step sampling graph (or one step) to ONNX")
    p.add_argument("format", choices=["onnx"], help="export format")
    p.add_argument("-o", "--output", required=True, help="output .onnx file")
    p.add_argument("--per-step", action="store_true", help="export one denoiser call instead of the whole sampler")
    p.add_argument("--no-check", action="store_true", help="skip the ORT-vs-PyTorch parity check")
    p.add_argument("--layout", default="auto", choices=["auto", "folded", "reference"],
                   help="full-graph layout: folded (fast on CPU for 64+ channels), reference (the model's layers "
                        "as they are), auto (default: folded for >= 64 residual channels); same outputs")
    _add_sampling_args(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("convert", help="convert a philsyn / lmnt checkpoint to wavefast .safetensors")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--preset", help="architecture preset for files that do not store it")
    p.add_argument("--config", help="upstream config.json (philsyn)")
    p.add_argument("--fp16", action="store_true", help="store fp16 weights (default fp32)")
    p.set_defaults(func=cmd_convert)

    for module in ("wavefast.train.cli", "wavefast.eval.cli", "wavefast.learn.cli", "wavefast.images.cli"):
        try:
            __import__(module, fromlist=["register"]).register(sub)
        except ImportError:
            pass
    return parser


# --- commands ---------------------------------------------------------------------------
def cmd_schedule(args) -> int:
    from .samplers.reverse import check_kappa
    from .schedules import LinearBetaSchedule, make_plan

    if args.checkpoint:
        from .models.checkpoints import load_model

        schedule = LinearBetaSchedule.from_spec(load_model(args.checkpoint, args.preset).spec.diffusion)
    else:
        if args.T is None or args.beta_0 is None or args.beta_T is None:
            raise WavefastError("give --checkpoint, or all of --T, --beta-0 and --beta-T")
        schedule = LinearBetaSchedule(args.T, args.beta_0, args.beta_T)
    kind = args.kind
    if kind in ("var", "step"):
        if args.spacing not in ("linear", "quadratic"):
            raise WavefastError(f"unknown spacing {args.spacing!r}; allowed: 'linear', 'quadratic'")
        kind = f"{kind}-{args.spacing}"
    kappa = check_kappa(args.kappa)
    plan = make_plan(schedule, kind, args.steps, args.method, args.clip_range)
    sigmas = plan.sigmas(kappa)
    if args.json:
        print(json.dumps({"name": plan.name, "T": schedule.T, "beta_0": schedule.beta_0, "beta_T": schedule.beta_T,
                          "kappa": kappa, "steps": list(plan.steps), "alpha_bar": list(plan.alpha_bars),
                          "sigma": list(sigmas), "info": plan.info}, indent=2))
        return 0
    print(f"plan {plan.name}: S={len(plan)} steps on T={schedule.T}, beta {schedule.beta_0} -> {schedule.beta_T}, "
          f"kappa={kappa}")
    print(f"{'i':>3} {'step t':>12} {'alpha_bar':>12} {'sigma':>12}")
    for i, (t, a, s) in enumerate(zip(plan.steps, plan.alpha_bars, sigmas)):
        print(f"{i:>3} {t:>12.6f} {a:>12.8f} {s:>12.8f}")
    return 0


def _load(args):
    from .models import default_models
    from .models.checkpoints import load_model

    if args.checkpoint:
        return load_model(args.checkpoint, args.preset, device=args.device)
    return default_models.load_default(args.command, device=args.device)


def _outputs_for(inputs: List[Path], output: Path) -> List[Path]:
    if len(inputs) == 1 and output.suffix.lower() == ".wav":
        return [output]
    if output.suffix.lower() == ".wav":
        raise WavefastError(f"{len(inputs)} inputs need an output folder, not the file {output}")
    names = [p.name[: -len("".join(p.suffixes))] if p.suffixes else p.name for p in inputs]
    if len(set(names)) != len(names):
        raise WavefastError("two inputs share a file name; their outputs would overwrite each other")
    return [output / f"{n}.wav" for n in names]


def cmd_vocode(args) -> int:
    from tqdm.auto import tqdm

    from .audio.io import write_wav
    from .pipeline import check_mel, plan_for, vocode

    inputs = [Path(p) for p in args.inputs]
    outputs = _outputs_for(inputs, Path(args.output))
    for path in inputs:  # cheap checks before the model loads
        if not path.exists():
            raise WavefastError(f"file not found: {path}")
    if args.backend == "onnx":
        return _vocode_onnx(args, inputs, outputs)
    model = _load(args)
    spec = model.spec
    if not spec.conditional:
        raise WavefastError("this checkpoint is unconditional; use 'wavefast generate'")
    plan = plan_for(model, args.schedule, args.steps, args.method, args.clip_range, args.force_schedule)
    mels = _read_mels(inputs, spec)
    mels = [check_mel(spec, mel, name=str(path)) for path, mel in zip(inputs, mels)]
    for i, (path, mel, out) in enumerate(tqdm(list(zip(inputs, mels, outputs)), desc="vocoding", unit="file",
                                             disable=len(inputs) == 1)):
        audio = vocode(model, mel.to(args.device), schedule=plan, kappa=args.kappa, seed=args.seed + i,
                       progress=True)
        write_wav(out, audio, spec.sample_rate)
        print(f"wrote {out} ({audio.shape[-1] / spec.sample_rate:.2f} s, {plan.name}, S={len(plan)}, "
              f"kappa={args.kappa})", file=sys.stderr)
    return 0


def _read_mels(inputs, spec):
    """Mels for each input: loaded from .npy/.pt, or computed from audio with the model's front end."""
    from .audio.io import load_mel, read_audio
    from .audio.mel import mel_spectrogram

    mels = []
    for path in inputs:  # read and check everything before writing anything
        if path.suffix.lower() in MEL_SUFFIXES:
            mels.append(load_mel(path))
        else:
            audio, _ = read_audio(path, spec.sample_rate, announce=True)
            mels.append(mel_spectrogram(audio, spec.mel_frontend, spec.sample_rate, spec.n_mels, spec.hop_length))
    return mels


def _vocode_onnx(args, inputs, outputs) -> int:
    from .audio.io import write_wav
    from .pipeline import check_mel
    from .runtime.ort_backend import OnnxSampler

    if not args.onnx:
        raise WavefastError("--backend onnx needs --onnx MODEL.onnx (made by 'wavefast export onnx')")
    sampler = OnnxSampler(args.onnx, threads=args.threads)
    spec = sampler.spec
    if not spec.conditional:
        raise WavefastError(f"{args.onnx} is an unconditional graph; it cannot vocode")
    mels = [check_mel(spec, m, name=str(p)) for p, m in zip(inputs, _read_mels(inputs, spec))]
    for i, (mel, out) in enumerate(zip(mels, outputs)):
        audio = sampler.vocode(mel[0].numpy(), seed=args.seed + i)
        write_wav(out, audio, spec.sample_rate)
        print(f"wrote {out} (onnx, {sampler.plan['name']}, S={len(sampler.plan['steps'])}, kappa={sampler.kappa})",
              file=sys.stderr)
    return 0


def cmd_generate(args) -> int:
    from tqdm.auto import tqdm

    from . import generation_run as run
    from .audio.io import write_wav
    from .pipeline import generate, plan_for

    if args.checkpoint:  # an image model: PNGs and a grid (wavefast.images)
        from .images.checkpoints import is_image_checkpoint

        if is_image_checkpoint(args.checkpoint, args.preset):
            from .images.cli import cmd_generate_images

            return cmd_generate_images(args)
    if args.n < 1:
        raise WavefastError(f"-n must be >= 1, got {args.n}")
    if args.batch_size < 1:
        raise WavefastError(f"--batch-size must be >= 1, got {args.batch_size}")
    out_dir = Path(args.output)
    if out_dir.suffix.lower() == ".wav":
        raise WavefastError(f"-o must be a folder for generated samples, got {out_dir}")
    model = _load(args)
    if model.spec.conditional:
        raise WavefastError("this checkpoint is mel-conditioned; use 'wavefast vocode' with a mel or wav input")
    plan = plan_for(model, args.schedule, args.steps, args.method, args.clip_range, args.force_schedule)
    rank, world = run.rank_and_world()
    run.init_process_group(world)
    settings = {"model": run.model_fingerprint(model), "plan": plan.name, "steps": list(plan.steps),
                "kappa": args.kappa, "seed": args.seed, "n": args.n, "batch_size": args.batch_size}
    out_dir.mkdir(parents=True, exist_ok=True)
    run.check_or_write_manifest(out_dir, settings, rank, world)
    todo = run.pending_batches(out_dir, args.n, args.batch_size, rank, world)
    bar = tqdm(total=sum(map(len, todo)), desc=f"generating (rank {rank}/{world})" if world > 1 else "generating",
               unit="sample")
    for indices in todo:
        audio = generate(model, len(indices), schedule=plan, kappa=args.kappa, seed=[args.seed + i for i in indices],
                         batch_size=len(indices))
        for j, index in enumerate(indices):
            if not run.sample_path(out_dir, index).is_file():
                write_wav(run.sample_path(out_dir, index), audio[j], model.spec.sample_rate)
        bar.update(len(indices))
    bar.close()
    run.finish(out_dir, settings, args.n, rank, world)
    return 0


def cmd_export(args) -> int:
    from .pipeline import plan_for
    from .runtime.onnx_export import export_onnx
    from .samplers.reverse import check_kappa

    if Path(args.output).suffix.lower() != ".onnx":
        raise WavefastError(f"-o must name an .onnx file, got {args.output}")
    model = _load(args)
    plan = plan_for(model, args.schedule, args.steps, args.method, args.clip_range, args.force_schedule)
    report = export_onnx(model, plan, args.output, kappa=check_kappa(args.kappa), per_step=args.per_step,
                         check=not args.no_check, layout=args.layout)
    check = "skipped" if report["parity_error"] is None else f"max rel. error {report['parity_error']:.2e}"
    print(f"wrote {args.output} ({report['graph']} graph, {plan.name} S={len(plan)}, kappa={args.kappa}, "
          f"opset {report['opset']}; ORT vs PyTorch parity: {check})", file=sys.stderr)
    return 0


def cmd_convert(args) -> int:
    import torch

    from .models.checkpoints import convert

    out = convert(args.input, args.output, args.preset, args.config, torch.float16 if args.fp16 else torch.float32)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
