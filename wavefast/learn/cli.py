"""``wavefast learn-sampler``: learn a few-step sampler for one model and write it as a plan JSON.

    wavefast learn-sampler --checkpoint CKPT --data PACK.npz --steps S --method {ddss,errbound} \\
        [--iters N] [--batch-size B] [--kappa K] -o learned.json [--resume]

The run state (``learned.state.pt`` next to the output) is saved as it goes;
``--resume`` continues it. The written file is used with ``--schedule learned.json``
by ``vocode``, ``generate`` and ``export`` (and ``schedule=`` in the Python API).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from ..errors import WavefastError, check_choice, run_command

METHODS = ("ddss", "errbound", "grid")


def state_path_for(output) -> Path:
    output = Path(output)
    return output.with_name(output.stem + ".state.pt")


def _default_segment(spec) -> int:
    if spec.conditional:
        return min(16, max(4, spec.segment_length // spec.hop_length)) * spec.hop_length
    return spec.segment_length


def learn_sampler(model, data_path, *, method: str, steps: int, output, resume: bool = False,
                  iters: Optional[int] = None, batch_size: int = 4, kappa: float = 0.0, init: str = "var-quadratic",
                  lr: Optional[float] = None, lr_time: float = 2e-2, segment_samples: Optional[int] = None,
                  heldout_items: Optional[int] = None, heldout_samples: Optional[int] = None, eval_every: int = 25,
                  save_every: int = 25, history: bool = True, timesteps_only: bool = False, features: str = "auto",
                  mc_examples: int = 32, grid_levels: int = 64, candidates: int = 8, seed: int = 0,
                  progress: bool = True) -> dict:
    """Learn a sampler for ``model`` on the pack ``data_path``; writes ``output`` (.json). Returns a summary.

    ``method="ddss"``: :class:`wavefast.learn.ddss.DDSSTrainer` (``iters`` gradient steps,
    ``batch_size`` examples each). ``method="errbound"``: :class:`wavefast.learn.errbound.ErrBoundRun`
    (``mc_examples`` Monte-Carlo examples in batches of ``batch_size``, ``iters`` Adam steps
    on the schedule). ``method="grid"``: :func:`wavefast.learn.gridsearch.coordinate_search`
    (``iters`` sweeps, default 2, ``candidates`` positions per step; FastDPM coefficients with
    ``kappa``). All report the held-out objective (DDSS protocol) of the result and of the
    initial FastDPM plan ``init`` with ``kappa``.
    """
    from .artifacts import learned_plan, save_learned
    from .ddss import DDSSConfig, DDSSTrainer, PackData, config_record, default_objective, evaluate_sampler, \
        objective_record
    from ..samplers.reverse import check_kappa
    from .ggdm import FixedSampler

    check_choice("learning method", method, METHODS)
    kappa = check_kappa(kappa)
    from ..fileio import check_output

    image_model = hasattr(model.spec, "image_shape")
    inputs = [data_path] if Path(str(data_path)).suffix else []  # a named image data set is no file
    output = check_output(output, (".json",), inputs, what="learned-plan output")  # before any work
    state_path = check_output(state_path_for(output), (".pt",), inputs, what="learner state")
    if resume and not state_path.is_file():
        raise WavefastError(f"nothing to resume: {state_path} does not exist (drop --resume to start a run)")
    if not resume and state_path.is_file():
        raise WavefastError(f"{state_path} holds an earlier run for {output.name}: pass --resume to continue it, "
                            "or delete it to start afresh")
    spec = model.spec
    if image_model:
        from .ddss import ImageData

        if segment_samples is not None or heldout_samples is not None:
            raise WavefastError("--segment-samples and --heldout-samples are for audio models; an image model "
                                "learns on whole images")
        segment = None
        data = ImageData(data_path, spec, seed=seed, heldout_items=heldout_items or 256)
    else:
        segment = int(segment_samples or _default_segment(spec))
        data = PackData(data_path, spec, segment, seed=seed, heldout_items=heldout_items or 8,
                        heldout_samples=heldout_samples)
    if method == "ddss":
        config = DDSSConfig(steps=steps, iters=iters or 200, batch_size=batch_size, kappa=kappa, init=init,
                            lr=lr or 1e-3, lr_time=lr_time, learn_coefficients=not timesteps_only,
                            history=history and not timesteps_only, learn_noise=not timesteps_only,
                            eval_every=eval_every, save_every=save_every, seed=seed, features=features)
        trainer = DDSSTrainer(model, data, config, state_path)
        if resume:
            trainer.load_state()
        summary = trainer.train(progress=progress)
        objective = objective_record(trainer, summary)
        plan = learned_plan(trainer.best_plan(), model, learner="ddss", kappa=config.kappa, objective=objective,
                            init=trainer.init_plan.name, training=dict(config_record(config), segment_samples=segment,
                                                                       seconds=round(summary["seconds"], 1),
                                                                       pack=str(data_path)))
    elif method == "grid":
        from .gridsearch import GridSearchConfig, coordinate_search

        if resume:
            raise WavefastError("the grid search takes minutes and keeps no state: run it again without --resume")
        config = GridSearchConfig(steps=steps, init=init, kappa=kappa, sweeps=iters or 2, candidates=candidates,
                                  batch_size=batch_size, seed=seed)
        result = coordinate_search(model, data, config, progress=progress)
        objective = {"name": result["objective"], "value": result["heldout_value"],
                     "initial_value": result["heldout_initial"], "split": data.heldout_split,
                     "search_value": result["value"], "search_initial_value": result["initial_value"],
                     "search_split": "train (fixed batch)", "lower_is_better": True,
                     "evaluations": result["evaluations"]}
        summary = {"initial": result["heldout_initial"], "best": result["heldout_value"],
                   "seconds": result["seconds"]}
        plan = learned_plan(result["plan"], model, learner="grid", kappa=kappa, objective=objective, init=init,
                            training=dict(result["config"], segment_samples=segment,
                                          seconds=round(result["seconds"], 1), pack=str(data_path)))
    else:
        from .errbound import ErrBoundConfig, ErrBoundRun
        from .errbound import config_record as eb_record

        config = ErrBoundConfig(steps=steps, iters=iters or 500, batch_size=batch_size, mc_examples=mc_examples,
                                init=init, grid_levels=grid_levels, lr=lr or 0.05, seed=seed)
        run = ErrBoundRun(model, data, config, state_path)
        if resume:
            run.load_state()
        result = run.run(progress=progress)
        from ..schedules import LinearBetaSchedule, make_plan

        try:
            held_objective, _ = default_objective(spec, data, features)
        except WavefastError as exc:  # e.g. images no classifier takes: the bound itself needs none
            if not image_model:
                raise
            held_objective, skipped = None, str(exc)
        schedule = LinearBetaSchedule.from_spec(spec.diffusion)
        if held_objective is None:
            heldout = {"name": None, "skipped": f"no held-out sample-quality check: {skipped}"}
        else:
            heldout = {"name": held_objective.name, "kappa": kappa,
                       "value": evaluate_sampler(model, FixedSampler(result["plan"], kappa), data.heldout,
                                                 held_objective),
                       "initial_value": evaluate_sampler(model, FixedSampler(make_plan(schedule, init, steps), kappa),
                                                         data.heldout, held_objective),
                       "split": data.heldout_split}
        objective = {"name": "ddim-error-bound", "value": result["value"], "initial_value": result["initial_value"],
                     "split": "train (Monte Carlo)", "lower_is_better": True, "best_start": result["best_start"],
                     "starts": result["starts"], "heldout": heldout}
        summary = {"initial": result["initial_value"], "best": result["value"], "heldout": heldout,
                   "seconds": result["seconds"]}
        plan = learned_plan(result["plan"], model, learner="errbound", kappa=kappa, objective=objective, init=init,
                            training=dict(eb_record(config), segment_samples=segment, mc_examples=result["mc_examples"],
                                          seconds=round(result["seconds"], 1), pack=str(data_path)))
    save_learned(plan, output)
    summary.update(output=str(output), plan=plan, objective=objective)
    return summary


RECIPE_KEYS = ("checkpoint", "data", "output", "method", "steps", "resume", "device", "threads", "preset", "iters",
               "batch_size", "kappa", "init", "lr", "lr_time", "segment_samples", "heldout_items", "heldout_samples",
               "eval_every", "save_every", "history", "timesteps_only", "features", "mc_examples", "grid_levels",
               "candidates", "seed")


def run_learn(config: dict, progress: bool = True) -> dict:
    """The Hydra recipe's entry (``recipes/conf/learn/learn.yaml``): a dict of the CLI's options."""
    unknown = sorted(set(config) - set(RECIPE_KEYS))
    if unknown:
        raise WavefastError(f"unknown learn-sampler settings: {', '.join(unknown)}")
    parser = argparse.ArgumentParser()
    add_learn_command(parser.add_subparsers())
    defaults = parser._subparsers._group_actions[0].choices["learn-sampler"]  # the learn-sampler parser
    args = argparse.Namespace(**{k: config[k] if k in config else defaults.get_default(k) for k in RECIPE_KEYS})
    for required in ("checkpoint", "data", "output", "method", "steps"):
        if getattr(args, required) is None:
            raise WavefastError(f"learn-sampler needs '{required}'")
    args.no_history, args.quiet = not config.get("history", True), not progress
    return _run(args)


def _run(args) -> dict:
    import torch

    from ..images.checkpoints import is_image_checkpoint, load_image_model
    from ..images.data import DATASETS
    from ..models.checkpoints import load_model

    if args.threads is not None:
        if args.threads < 1:
            raise WavefastError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    image = is_image_checkpoint(args.checkpoint, args.preset)
    if not (image and args.data in DATASETS) and not Path(args.data).is_file():
        raise WavefastError(f"pack file not found: {args.data}"
                            + (f" (image models also take a named data set: {', '.join(DATASETS)})" if image else ""))
    model = (load_image_model(args.checkpoint, args.preset, device=args.device) if image
             else load_model(args.checkpoint, args.preset, device=args.device))
    return learn_sampler(
        model, args.data, method=args.method, steps=args.steps, output=args.output, resume=bool(args.resume),
        iters=args.iters, batch_size=args.batch_size, kappa=args.kappa, init=args.init, lr=args.lr,
        lr_time=args.lr_time, segment_samples=args.segment_samples, heldout_items=args.heldout_items,
        heldout_samples=args.heldout_samples, eval_every=args.eval_every, save_every=args.save_every,
        history=not args.no_history, timesteps_only=bool(args.timesteps_only), features=args.features,
        mc_examples=args.mc_examples, grid_levels=args.grid_levels, candidates=args.candidates, seed=args.seed,
        progress=not args.quiet)


def cmd_learn_sampler(args) -> int:
    summary = _run(args)
    obj = summary["objective"]
    line = f"{obj['name']} {obj['initial_value']:.5g} -> {obj['value']:.5g}"
    if "heldout" in obj and obj["heldout"].get("name"):
        h = obj["heldout"]
        line += f"; held-out {h['name']} (kappa {h['kappa']:g}) {h['initial_value']:.5g} -> {h['value']:.5g}"
    elif "heldout" in obj:
        line += f"; {obj['heldout']['skipped']}"
    plan = summary["plan"]
    print(f"wavefast: wrote {args.output} ({args.method}, S={len(plan)}, steps "
          f"{[round(t, 3) for t in plan.steps]}; {line}; {summary['seconds']:.0f} s)", file=sys.stderr)
    return 0


def add_learn_command(sub) -> None:
    p = sub.add_parser("learn-sampler", help="learn a few-step sampler (DDSS / error-bound schedule) for one model")
    p.add_argument("--checkpoint", required=True, help="model file (wavefast .safetensors, philsyn .pkl or lmnt .pt; "
                                                        "or an image model, e.g. the shipped Fashion-MNIST DDPM)")
    p.add_argument("--preset", help="architecture preset for files that do not store it")
    p.add_argument("--data", required=True, help="training pack .npz (train split to learn on, test split to measure); "
                                                 "image models: an image pack .npz or fashion-mnist / mnist-5k")
    p.add_argument("--steps", type=int, required=True, help="number of sampling steps S")
    p.add_argument("--method", required=True, choices=METHODS,
                   help="ddss: train timesteps + GGDM coefficients through the chain; "
                        "errbound: minimise a Monte-Carlo bound of the DDIM error over the steps; "
                        "grid: coordinate search of the steps on a training loss (a baseline)")
    p.add_argument("-o", "--output", required=True, help="learned sampler .json")
    p.add_argument("--resume", action="store_true", help="continue the run saved next to the output")
    p.add_argument("--iters", type=int, default=None,
                   help="ddss: gradient steps (default 200); errbound: Adam steps on the schedule (default 500); "
                        "grid: sweeps (default 2)")
    p.add_argument("--batch-size", type=int, default=4, help="examples per batch (default 4)")
    p.add_argument("--kappa", type=float, default=0.0,
                   help="ddss: kappa of the FastDPM initialisation (0 = deterministic); errbound: kappa for the "
                        "held-out check (default 0)")
    p.add_argument("--init", default="var-quadratic", help="initial FastDPM plan (default var-quadratic)")
    p.add_argument("--lr", type=float, default=None, help="ddss: coefficient learning rate (default 1e-3); "
                                                          "errbound: schedule learning rate (default 0.05)")
    p.add_argument("--lr-time", type=float, default=2e-2, help="ddss: timestep learning rate (default 0.02)")
    p.add_argument("--segment-samples", type=int, default=None,
                   help="training segment length (default: 16 mel frames for a vocoder, the clip for others)")
    p.add_argument("--heldout-items", type=int, default=None,
                   help="held-out examples for the objective (default 8; 256 images for an image model)")
    p.add_argument("--heldout-samples", type=int, default=None, help="held-out segment length (default: as training)")
    p.add_argument("--eval-every", type=int, default=25, help="ddss: held-out check every N steps (default 25)")
    p.add_argument("--save-every", type=int, default=25, help="ddss: save the run state every N steps (default 25)")
    p.add_argument("--no-history", action="store_true", help="ddss: no weights on earlier model outputs (Markovian)")
    p.add_argument("--timesteps-only", action="store_true", help="ddss: learn only the timesteps (a plain plan)")
    p.add_argument("--features", default="auto", choices=("auto", "sc09", "logmel", "auto+logmel"),
                   help="unconditional models: features of the kernel distance (default auto: SC09 classifier "
                        "for 1 s 16 kHz clips, else log-mel statistics; image models: the image classifier; "
                        "mel-image models also auto+logmel: the classifier and the log-mel statistics)")
    p.add_argument("--mc-examples", type=int, default=32, help="errbound: Monte-Carlo training examples (default 32)")
    p.add_argument("--grid-levels", type=int, default=64, help="errbound: eps grid levels (default 64 or T)")
    p.add_argument("--candidates", type=int, default=8, help="grid: positions tried per step per sweep (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_learn_sampler)


def register(subparsers) -> None:
    """Add ``learn-sampler`` to the main ``wavefast`` parser."""
    add_learn_command(subparsers)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="wavefast")
    add_learn_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
