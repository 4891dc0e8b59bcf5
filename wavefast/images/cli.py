"""Image sub-commands of ``wavefast`` (added by ``register(subparsers)``).

    wavefast generate --checkpoint IMG.safetensors -n 64 -o grid.png   (dispatched here from cmd_generate:
                                                                      images in grid/, the grid in grid.png)
    wavefast eval-images DIR [--classifier F] [--reference-stats NPZ]
                             [--inception pt_inception.pth --inception-stats NPZ] [--json OUT]
    wavefast train-images --out RUN [--steps N] [--max-minutes M] ...
    wavefast sweep-images [--checkpoint IMG] [-o DIR] [-n 256] [--chunk 32] [--worker K --workers W]
                          [--clip-study]                  (resumable; run the workers in parallel)
    wavefast sweep-images [--checkpoint IMG] [-o DIR] --summarize [--clip-study]   (table.md, summary.json)
    wavefast train-image-classifier [--epochs 2] [--max-minutes M] [--out F] [--stats NPZ] [--seed N]
        [--widths W1 W2] [--feature-dim D]

``wavefast eval images DIR`` is the same command inside the ``eval`` group.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import WavefastError
from .generate import DEFAULT_IMAGE_STEPS

from ..models.default_models import default_path

SHIPPED_IMAGE_MODEL = default_path("image")


def cmd_generate_images(args) -> int:
    """``wavefast generate`` for an image checkpoint (same arguments as the audio command)."""
    from .checkpoints import IMAGE_PRESETS, load_image_model
    from .generate import generate_image_folder

    if args.n < 1:
        raise WavefastError(f"-n must be >= 1, got {args.n}")
    preset = args.preset if args.preset in IMAGE_PRESETS else None
    if args.preset is not None and preset is None:
        raise WavefastError(f"unknown image preset {args.preset!r}; allowed: {', '.join(IMAGE_PRESETS)}")
    from ..devices import resolve_device

    model = load_image_model(args.checkpoint, preset, device=resolve_device(args.device))
    generate_image_folder(model, args.output, args.n, steps=args.steps, schedule=args.schedule, kappa=args.kappa,
                          seed=args.seed, batch_size=args.batch_size, method=args.method,
                          clip_range=args.clip_range)
    return 0


def cmd_eval_images(args) -> int:
    from .folders import evaluate_image_folder

    result = evaluate_image_folder(args.dir, classifier=args.classifier, reference_stats=args.reference_stats,
                                   inception=args.inception, inception_stats=args.inception_stats, limit=args.limit)
    metrics = result.get("classifier")
    print(f"{result['n']} images in {result['folder']}")
    if metrics:
        print(f"classifier FID {metrics['fid']:.3f}   IS {metrics['is']:.3f} ({metrics['is_splits']} splits)   "
              f"confident (p>0.9) {metrics['confident']:.1%}")
    if "inception_fid" in result:
        print(f"Inception FID {result['inception_fid']:.3f}")
    if result.get("note"):
        print(f"note: {result['note']}", file=sys.stderr)
    if args.json:
        from ..fileio import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=2))
    return 0


def cmd_train_images(args) -> int:
    from .train import image_config_for, train_image_model

    named = ("dataset", "preset", "steps", "max_minutes", "batch_size", "lr", "ema_decay", "loss_weighting",
             "seed", "threads", "init_from")
    given = {name: getattr(args, name) for name in named if getattr(args, name) is not None}
    config = image_config_for(args.out, {**given, "fresh": args.fresh})
    result = train_image_model(config, resume=not args.fresh, device=args.device)
    print(f"wavefast: step {result['step']}, {result['train_seconds']:.0f} s of training; "
          f"EMA weights in {Path(result['out']) / 'model-ema.safetensors'}", file=sys.stderr)
    return 0


def cmd_sweep_images(args) -> int:
    """Run (a worker's share of) the FastDPM image sweep, or with ``--summarize`` print and write its table."""
    from .checkpoints import load_image_model
    from .sweep import clip_study_settings, run_sweep, solver_study_settings, write_sweep_summary

    model = load_image_model(args.checkpoint or SHIPPED_IMAGE_MODEL)
    if args.clip_study and args.solver_study:
        raise WavefastError("choose one of --clip-study and --solver-study")
    settings = clip_study_settings() if args.clip_study else solver_study_settings() if args.solver_study else None
    if args.summarize:
        print(write_sweep_summary(args.output, args.dataset, settings=settings, model=model))
        return 0
    run_sweep(model, args.output, args.n, args.chunk, settings=settings, worker=args.worker, workers=args.workers,
              log=lambda message: print(message, file=sys.stderr, flush=True))
    return 0


def cmd_train_image_classifier(args) -> int:
    from .classifier import DEFAULT_CLASSIFIER, DEFAULT_STATS
    from .train_classifier import build_classifier_files

    if len(args.widths) != 2 or min(args.widths) < 1 or args.feature_dim < 1:
        raise WavefastError(f"--widths takes two positive channel counts and --feature-dim a positive size, got "
                            f"{args.widths} and {args.feature_dim}")
    out, stats = args.out, args.stats
    if args.dataset != "fashion-mnist" and out is None:
        raise WavefastError(f"--out is required with --dataset {args.dataset} (the default file is the shipped "
                            "Fashion-MNIST classifier's)")
    if args.dataset == "fashion-mnist" and out is None:  # rebuilding the shipped classifier: its stats too
        out, stats = str(DEFAULT_CLASSIFIER), stats or str(DEFAULT_STATS)
    info = build_classifier_files(args.dataset, args.epochs, max_minutes=args.max_minutes, out=out,
                                  stats=stats, log=lambda message: print(message, file=sys.stderr),
                                  seed=args.seed, widths=tuple(args.widths), feature_dim=args.feature_dim)
    print(json.dumps(info), file=sys.stderr)
    return 0


def add_eval_images_parser(subparsers, name: str):
    """The ``eval-images`` arguments, shared by ``wavefast eval-images`` and ``wavefast eval images``."""
    p = subparsers.add_parser(name, help="classifier FID / IS (and Inception FID) of a folder of PNGs")
    p.add_argument("dir", help="folder of generated .png images (grid*.png skipped)")
    p.add_argument("--classifier", help="image classifier .safetensors (default: the shipped Fashion-MNIST one)")
    p.add_argument("--reference-stats", metavar="NPZ",
                   help="classifier-feature statistics of real images (default: the shipped Fashion-MNIST test stats)")
    p.add_argument("--inception", metavar="PTH", help="pytorch-fid FID Inception weights "
                                                      "(pt_inception-2015-12-05-6726825d.pth) for Inception FID")
    p.add_argument("--inception-stats", metavar="NPZ", help="mu/sigma .npz of 2048-d Inception features of real images")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    p.set_defaults(func=cmd_eval_images)
    return p


def register(subparsers) -> None:
    add_eval_images_parser(subparsers, "eval-images")

    p = subparsers.add_parser("train-images", help="train the small image DDPM (Fashion-MNIST / MNIST)")
    p.add_argument("--out", required=True, help="run folder; one holding a checkpoint is resumed with its own settings (only --steps, --max-minutes and --threads may change)")
    p.add_argument("--dataset", help="fashion-mnist (default), mnist-5k or an .npz image pack")
    p.add_argument("--preset", help="architecture preset (default tiny-28; mel-digits for the "
                   "digit generator's mel stage, with --dataset a pack from 'wavefast pack-digit-mels')")
    p.add_argument("--init-from", help="start a fresh run from this image model file (same preset), e.g. the shipped "
                   "wavefast/models/weights/sc09_mel.safetensors to continue its training")
    p.add_argument("--steps", type=int, help="stop after this many optimiser steps (default 100000)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this much wall-clock time")
    p.add_argument("--batch-size", type=int, help="default 32")
    p.add_argument("--lr", type=float, help="Adam learning rate after warm-up (default 8e-4)")
    p.add_argument("--ema-decay", type=float, help="default 0.999")
    p.add_argument("--loss-weighting", help="uniform (DDPM L_simple, the default) or min-snr-<gamma>")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --out")
    p.set_defaults(func=cmd_train_images)

    p = subparsers.add_parser("sweep-images", help="FastDPM sweep of an image model: classifier FID / KID / IS "
                                                   "per (schedule, S, kappa) at equal N")
    p.add_argument("--checkpoint", help="image model (default: the shipped Fashion-MNIST DDPM)")
    p.add_argument("-o", "--output", default="runs/images/sweep", help="sweep folder (re-running resumes)")
    p.add_argument("-n", type=int, default=256, help="images per setting")
    p.add_argument("--chunk", type=int, default=32, help="images per setting per round")
    p.add_argument("--worker", type=int, default=0, help="this process's index, 0..workers-1")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the settings (balanced by cost)")
    p.add_argument("--clip-study", action="store_true", help="sweep clip_study_settings() (with / without a "
                                                             "clipped x0) instead of the FastDPM grid")
    p.add_argument("--solver-study", action="store_true", help="sweep DPM-Solver++(2M) beside FastDPM's samplers at "
                                                               "S = 5, 10, 20 instead of the FastDPM grid")
    p.add_argument("--summarize", action="store_true", help="print the tables of the finished chunks and write "
                                                            "table.md and summary.json")
    p.add_argument("--dataset", default="fashion-mnist", help="real images for --summarize (same-N floor, KID)")
    p.set_defaults(func=cmd_sweep_images)

    p = subparsers.add_parser("train-image-classifier", help="train the image classifier behind FID / IS and write "
                                                             "its reference statistics")
    p.add_argument("--dataset", default="fashion-mnist",
                   help="fashion-mnist (default), mnist-5k or a labelled .npz image pack (the digit mel pack)")
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this much wall-clock time")
    p.add_argument("--out", help="classifier .safetensors (default for fashion-mnist: the shipped one; required "
                                 "otherwise)")
    p.add_argument("--stats", help="test-split reference statistics .npz (default when rebuilding the shipped "
                                   "classifier: the shipped statistics; otherwise none unless given)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--widths", type=int, nargs=2, default=[16, 32], metavar=("W1", "W2"),
                   help="channels of the two conv stages (default 16 32)")
    p.add_argument("--feature-dim", type=int, default=64, help="size of the feature layer FID uses (default 64)")
    p.set_defaults(func=cmd_train_image_classifier)


__all__ = ["DEFAULT_IMAGE_STEPS", "SHIPPED_IMAGE_MODEL", "cmd_eval_images", "cmd_generate_images",
           "cmd_sweep_images", "cmd_train_image_classifier", "cmd_train_images", "register"]
