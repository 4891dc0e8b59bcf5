"""``wavefast pack`` and ``wavefast train``: argv -> typed config -> the same API the recipes call.

``register(subparsers)`` adds both subcommands to the main ``wavefast`` parser;
``python -m wavefast.train.cli ...`` runs them standalone. Bad input prints one
line ``wavefast: error: ...`` on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ..errors import WavefastError, run_command

LAYOUT_CHOICES = ("ljspeech", "vcc", "folder", "sc09", "fsdd", "labelled")
CLIP_LAYOUTS = ("sc09", "fsdd", "labelled")


# --- shared helpers ---------------------------------------------------------------------
def pair_sources(data: Sequence[str], layouts: Optional[Sequence[str]]) -> List[Tuple[str, str]]:
    """Match ``--data`` folders with ``--layout`` values (one layout applies to all)."""
    layouts = list(layouts or [])
    if not layouts:
        raise WavefastError(f"--layout is needed for a data folder; allowed: {', '.join(LAYOUT_CHOICES)}")
    if len(layouts) == 1:
        layouts = layouts * len(data)
    if len(layouts) != len(data):
        raise WavefastError(f"give one --layout for all --data folders or one per folder "
                            f"(got {len(data)} folders, {len(layouts)} layouts)")
    return list(zip(data, layouts))


def _add_pack_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layout", action="append", choices=LAYOUT_CHOICES,
                   help="layout of each --data folder (once for all, or once per folder)")
    p.add_argument("--holdout", help="ids moved to the test split: ids, A..B ranges or globs, comma separated "
                                     "(e.g. LJ001-0025..LJ001-0032)")
    p.add_argument("--loudness", choices=("peak", "rms", "none"), default="peak",
                   help="loudness normalisation: peak to --peak (default), rms to --rms-dbfs, or none")
    p.add_argument("--peak", type=float, default=0.95, help="peak level for --loudness peak (default 0.95)")
    p.add_argument("--rms-dbfs", type=float, default=-20.0, help="RMS target for --loudness rms (default -20)")
    p.add_argument("--trim-db", type=float, default=None,
                   help="trim leading/trailing silence quieter than this many dB below the peak (default off)")
    p.add_argument("--heldout-in-pack", type=int, default=16,
                   help="held-out items packed for validation (all are listed in the split JSON; default 16)")
    p.add_argument("--no-compress", action="store_true", help="write an uncompressed .npz")


def _pack_options(args) -> dict:
    return {"loudness": args.loudness, "peak": args.peak, "rms_dbfs": args.rms_dbfs, "trim_db": args.trim_db,
            "heldout_in_pack": args.heldout_in_pack, "compress": not args.no_compress,
            "progress": not args.quiet}


def _report(summary: dict) -> None:
    secs = ", ".join(f"{k} {v / 60:.1f} min" for k, v in summary["seconds"].items())
    print(f"wavefast: packed {summary['items']} of {summary['items_listed']} items ({secs}) into "
          f"{summary['path']} ({summary['bytes'] / 2 ** 20:.1f} MiB); splits in {summary['splits_path']}",
          file=sys.stderr)


# --- pack -------------------------------------------------------------------------------
def run_pack(args) -> int:
    """``wavefast pack``: corpora -> one .npz pack + split JSON."""
    from ..data.packing import pack_sources

    summary = pack_sources(pair_sources(args.data, args.layout), args.output, holdout=args.holdout,
                           sample_rate=args.sample_rate, clip_samples=args.clip_samples, **_pack_options(args))
    _report(summary)
    return 0


# --- train ------------------------------------------------------------------------------
MODEL_FLAGS = {"channels": "residual_channels", "layers": "residual_layers", "cycle": "dilation_cycle", "T": "T",
               "prior": "prior", "subband_levels": "subband_levels", "excitation": "excitation",
               "harmonic_mean": "harmonic_mean", "prior_scale": "prior_scale", "mel_projection": "mel_projection",
               "beta_0": "beta_0", "beta_T": "beta_T", "segment_samples": "segment_samples",
               "sample_rate": "sample_rate"}
TRAIN_FLAGS = ("steps", "batch_size", "lr", "ema_decay", "grad_clip", "loss", "seed", "log_every", "gain_db",
               "low_t_fraction", "init_from", "max_minutes", "stft_weight",
               "checkpoint_every", "val_every", "val_items", "val_seconds", "val_steps", "val_schedule",
               "val_kappa")


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu`` (see :func:`wavefast.devices.resolve_device`)."""
    from ..devices import resolve_device as resolve

    return str(resolve(name))


def _on_off(text: str) -> bool:
    if text.lower() in ("on", "true", "1", "yes"):
        return True
    if text.lower() in ("off", "false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")


def _is_pack(path: str) -> bool:
    return Path(path).suffix == ".npz"


def _train_config(args):
    """TrainConfig from the flags (fresh run) or from RUN_DIR/config.json plus flags (--resume)."""
    from ..data.pack import load_pack
    from ..data.packing import pack_sources
    from .config import TrainConfig, model_config

    out = Path(args.out)
    model_overrides = {field: getattr(args, flag) for flag, field in MODEL_FLAGS.items()}
    train_overrides = {name: getattr(args, name) for name in TRAIN_FLAGS if getattr(args, name) is not None}
    if args.no_amp:
        train_overrides["amp"] = False
    if args.resume:
        saved = out / "config.json"
        if not saved.is_file():
            raise WavefastError(f"nothing to resume: {saved} does not exist")
        try:
            stored = json.loads(saved.read_text(encoding="utf-8"))["config"]
            base = TrainConfig.from_dict(stored)
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, WavefastError):
                raise WavefastError(f"{saved}: {exc}") from None
            raise WavefastError(f"cannot read the run's settings {saved} ({type(exc).__name__}: {exc}); it is not "
                                "a wavefast training config") from None
        if not args.data and not Path(base.pack).is_file():
            found = _find_pack(base.pack, out)
            if found is None:
                raise WavefastError(f"the run's pack {base.pack} is not found (from here or from {out}); pass "
                                    "--data PACK.npz to say where it is now")
            train_overrides["pack"] = found
        if args.data:
            if len(args.data) != 1 or not _is_pack(args.data[0]):
                raise WavefastError("with --resume, --data may only name the run's .npz pack (moved)")
            train_overrides["pack"] = str(Path(args.data[0]).resolve())
        if args.preset or any(v is not None for v in model_overrides.values()):
            raise WavefastError("the model of a resumed run cannot change; drop --preset and the model flags")
        return base.replace(out=str(out), **train_overrides)
    if not args.data:
        raise WavefastError("--data is required: a .npz pack or a dataset folder with --layout")
    if len(args.data) == 1 and _is_pack(args.data[0]):
        pack_path = args.data[0]
        clip = load_pack(pack_path).clip_samples
        sources = None
    else:
        sources = pair_sources(args.data, args.layout)
        clip = 16000 if all(layout in CLIP_LAYOUTS for _, layout in sources) else 0
        pack_path = str(out / "pack.npz")
    preset = args.preset or ("sc09-small" if clip else "vocoder-small")
    model = model_config(preset, **model_overrides)
    if sources is not None:
        if (out / "checkpoint.pt").exists():
            raise WavefastError(f"{out} already holds a training run; pass --resume to continue it")
        summary = pack_sources(sources, pack_path, holdout=args.holdout, sample_rate=model.sample_rate,
                               clip_samples=0 if model.conditional else model.segment_samples,
                               **_pack_options(args))
        _report(summary)
    # absolute, so that --resume works from any working directory
    return TrainConfig(pack=str(Path(pack_path).resolve()), out=str(out), model=model, **train_overrides)


def _find_pack(pack: str, run_dir: Path) -> Optional[str]:
    """A relative pack path of an older run, looked up next to the run folder and its parents."""
    path = Path(pack)
    if path.is_absolute():
        return None
    for base in (run_dir, *run_dir.resolve().parents):
        if (base / path).is_file():
            return str((base / path).resolve())
    return None


def run_train(args) -> int:
    """``wavefast train``: pack if needed, then train (or resume, or export)."""
    from .trainer import export_run, train

    if args.export_only:
        path = export_run(args.out)
        print(f"wavefast: wrote {path}", file=sys.stderr)
        return 0
    config = _train_config(args)
    device = resolve_device(args.device)
    if args.threads is not None:
        import torch

        if args.threads < 1:
            raise WavefastError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    result = train(config, device, resume=args.resume, progress=not args.quiet)
    state = "stopped" if result["interrupted"] else "finished" if result["step"] >= config.steps else \
        "stopped at its time budget"
    print(f"wavefast: {state} at step {result['step']} ({result['samples_per_s']:.0f} audio samples/s); "
          f"run folder {config.out}", file=sys.stderr)
    return 130 if result["interrupted"] else 0


def register(subparsers) -> None:
    """Add the ``pack`` and ``train`` subcommands to an argparse subparsers object."""
    from .config import LOSSES, PRESET_NAMES

    p = subparsers.add_parser("pack", help="pack corpora into one .npz for training (with a split JSON)")
    p.add_argument("--data", action="append", required=True, help="dataset folder (repeat for several)")
    p.add_argument("-o", "--output", required=True, help="output pack .npz")
    p.add_argument("--sample-rate", type=int, default=None, help="resample to this rate (default: from the layout)")
    p.add_argument("--clip-samples", type=int, default=None,
                   help="fixed clip length (SC09: 16000), 0 = whole utterances (default: from the layout)")
    _add_pack_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_pack)

    p = subparsers.add_parser("train", help="train a DiffWave vocoder or unconditional model")
    p.add_argument("--data", action="append", help="a .npz pack, or dataset folder(s) with --layout "
                                                   "(packed into RUN_DIR/pack.npz)")
    p.add_argument("--out", required=True, help="run folder (checkpoint.pt, model-ema.safetensors, log.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--export-only", action="store_true", help="only export RUN_DIR's EMA weights to .safetensors")
    p.add_argument("--preset", choices=PRESET_NAMES,
                   help="model preset (default vocoder-small, or sc09-small for clip layouts/packs)")
    p.add_argument("--channels", type=int, help="residual (= skip) channels")
    p.add_argument("--layers", type=int, help="residual layers")
    p.add_argument("--cycle", type=int, help="dilation cycle")
    p.add_argument("--T", type=int, help="diffusion steps T")
    p.add_argument("--beta-0", type=float, help="first beta")
    p.add_argument("--beta-T", type=float, help="last beta")
    p.add_argument("--sample-rate", type=int, help="model sample rate (the pack must match)")
    p.add_argument("--segment-samples", type=int, help="training segment length (vocoder: multiple of 256)")
    p.add_argument("--steps", type=int, help="train until this many optimiser steps in total")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="Adam learning rate (default 2e-4)")
    p.add_argument("--ema-decay", type=float, help="EMA decay (default 0.999)")
    p.add_argument("--grad-clip", type=float, help="max gradient norm, 0 = off (default 1)")
    p.add_argument("--loss", choices=LOSSES, help="noise-prediction loss (default l2)")
    p.add_argument("--seed", type=int)
    p.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--log-every", type=int)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--val-every", type=int, help="validate every N steps, 0 = never")
    p.add_argument("--val-items", type=int, help="held-out utterances (vocoder) or samples (unconditional)")
    p.add_argument("--val-seconds", type=float, help="seconds of each held-out utterance to vocode")
    p.add_argument("--val-steps", type=int, help="sampling steps S for validation (default 6)")
    p.add_argument("--val-schedule", help="sampling schedule for validation (default var-quadratic)")
    p.add_argument("--val-kappa", type=float)
    p.add_argument("--prior", choices=("standard", "energy", "shaped"), help="source-filter family: the prior")
    p.add_argument("--mel-projection", type=_on_off, help="source-filter family: project each step's x0 onto "
                                                          "the mel when sampling (on/off)")
    p.add_argument("--prior-scale", type=float, help="source-filter family: prior noise level / speech envelope")
    p.add_argument("--stft-weight", type=float, help="source-filter family: MR-STFT loss on x0 at low noise")
    p.add_argument("--subband-levels", type=int, help="source-filter family: Haar levels (0 = full band)")
    p.add_argument("--excitation", type=_on_off, help="source-filter family: harmonic excitation per layer (on/off)")
    p.add_argument("--harmonic-mean", type=_on_off, help="source-filter family: diffuse x0 - harmonic mean (on/off)")
    p.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this many minutes of this call")
    p.add_argument("--gain-db", type=float, help="random gain per example in [-G, G] dB (default 0 = off)")
    p.add_argument("--low-t-fraction", type=float, help="share of examples with t from the lowest fifth (default 0)")
    p.add_argument("--init-from", help="start the weights (and their EMA) from this model file, e.g. the shipped "
                                       "default, instead of at random (a new run; the architecture must match)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice; 1 on a shared CPU)")
    _add_pack_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wavefast", description="Pack data and train DiffWave models.")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
