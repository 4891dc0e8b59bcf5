"""Phase 1 / Phase 2 alternation (arXiv 2412.10786) on the shipped source-filter vocoder, and whether it helps.

    python recipes/phase2_vocoder.py learn --pack PACK.npz --out runs/phase2v --steps 4,6 [--rounds 2 --iters 200]
    python recipes/phase2_vocoder.py score --out runs/phase2v --steps 4,6 --data ../shared/data

``learn``: for each S, alternate (:func:`wavefast.learn.phase2.alternate`) on a copy of the shipped
vocoder with the pack's training segments (``--segment`` samples each; the pack's held-out split is
never used). The bound and the fine-tuning loss are the model's own, in its whitened variable
(:class:`wavefast.learn.errbound.WhiteDiffusion`); the F0 predictor is frozen. Writes the tuned model
``phase2-S{S}.safetensors`` (fp16, like the shipped file), its final plan keyed to it
(``phase2-S{S}.json``) and the round-0 Phase-1 plan keyed to the shipped model (``phase1-S{S}.json``).
Resumable per S: an S whose three files exist is skipped.

``score``: one ``wavefast eval vocoder-table`` run on the held-out LJSpeech utterances
LJ001-0025..LJ001-0032 (never trained on) with the anchors (real, Griffin-Lim, HiFi-GAN when
installed) and, per S, kappa 0 (the bound is derived for DDIM), seed 0::

    base + var-quadratic | base + Phase-1 plan | tuned + var-quadratic | tuned + final plan | base + vocoder-ddss-S

Results: ``OUT/table.md`` / ``OUT/table.json`` (vocoded audio cached under ``OUT/table.audio``).
The shipped model is not changed.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

from wavefast.errors import WavefastError, run_command


def learn(args) -> int:
    from wavefast.learn.artifacts import learned_plan, save_learned
    from wavefast.learn.ddss import PackData
    from wavefast.learn.phase2 import Phase2Config, alternate
    from wavefast.models.checkpoints import load_model, save_native
    from wavefast.models.default_models import load_default
    from wavefast.schedules import SamplingPlan
    from wavefast.schedules.resolve import diffusion_of

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not Path(args.pack).is_file():
        raise WavefastError(f"pack file not found: {args.pack} (make one with 'wavefast pack')")
    base = load_default("vocoder")
    schedule = diffusion_of(base)
    for S in [int(s) for s in args.steps.split(",")]:
        model_path, plan_path, first_path = (out / f"phase2-S{S}.safetensors", out / f"phase2-S{S}.json",
                                             out / f"phase1-S{S}.json")
        if model_path.is_file() and plan_path.is_file() and first_path.is_file():
            print(f"S={S}: done already ({model_path})", file=sys.stderr)
            continue
        data = PackData(args.pack, base.spec, args.segment, seed=args.seed, heldout_items=8)
        config = Phase2Config(steps=S, rounds=args.rounds, finetune_iters=args.iters, batch_size=args.batch_size,
                              lr=args.lr, mc_examples=args.mc_examples, mc_batch=args.batch_size,
                              phase1_iters=args.phase1_iters, seed=args.seed)
        run = alternate(base, data, config, log=lambda m: print(m, file=sys.stderr, flush=True))
        rounds = run["rounds"]
        save_native(run["model"], model_path, torch.float16)
        tuned = load_model(model_path)  # the fp16 file is what is scored and keyed
        training = {"rounds": rounds, "config": run["config"], "pack": str(args.pack), "segment_samples": args.segment}
        save_learned(learned_plan(run["plan"], tuned, learner="errbound-phase2", kappa=0.0, init="var-quadratic",
                                  objective={"name": "ddim-error-bound (whitened)", "value": rounds[-1]["bound"]},
                                  training=training, name=f"phase2-S{S}"), plan_path)
        steps0 = torch.tensor(rounds[0]["steps"], dtype=torch.float64)
        first = SamplingPlan(tuple(steps0.tolist()), tuple(schedule.alpha_bar(steps0).clamp(
            *schedule.trained_range).tolist()), f"phase1-S{S}", {"method": "lgamma", "kind": "errbound"})
        save_learned(learned_plan(first, base, learner="errbound", kappa=0.0, init="var-quadratic",
                                  objective={"name": "ddim-error-bound (whitened)", "value": rounds[0]["bound"]},
                                  training=training, name=f"phase1-S{S}"), first_path)
        print(json.dumps({"S": S, "rounds": rounds}), flush=True)
    return 0


def score(args) -> int:
    from wavefast.eval.cli import main as eval_main

    out, data = Path(args.out), Path(args.data)
    ljspeech = data / "ljspeech"
    argv = ["vocoder-table", "--mels", str(ljspeech / "mels"), "--ids", "LJ001-0025..LJ001-0032",
            "--references", str(ljspeech / "wavs"), "--transcripts", str(ljspeech / "metadata.csv"),
            "-o", str(out / "table")]
    for S in [int(s) for s in args.steps.split(",")]:
        tuned, final, first = out / f"phase2-S{S}.safetensors", out / f"phase2-S{S}.json", out / f"phase1-S{S}.json"
        for path in (tuned, final, first):
            if not path.is_file():
                raise WavefastError(f"{path} is missing: run 'learn' for S={S} first")
        argv += ["--system", f"S{S} base + var-quadratic=:plan=var-quadratic,steps={S},kappa=0",
                 "--system", f"S{S} base + Phase-1 plan=:plan={first},kappa=0",
                 "--system", f"S{S} tuned + var-quadratic={tuned}:plan=var-quadratic,steps={S},kappa=0",
                 "--system", f"S{S} tuned + final plan={tuned}:plan={final},kappa=0",
                 "--system", f"S{S} base + vocoder-ddss-{S}=:plan=vocoder-ddss-{S}"]
    return eval_main(argv)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("learn", help="alternate Phase 1 / Phase 2 per S and write the model + plan pairs")
    p.add_argument("--pack", required=True, help="training pack (.npz from 'wavefast pack'); its held-out split unused")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", default="4,6")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--iters", type=int, default=200, help="fine-tuning steps per Phase 2")
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--segment", type=int, default=8192, help="training segment length in samples")
    p.add_argument("--mc-examples", type=int, default=64, help="Phase 1: Monte-Carlo segments")
    p.add_argument("--phase1-iters", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=learn)
    p = sub.add_parser("score", help="score the pairs beside the anchors on LJ001-0025..0032")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", default="4,6")
    p.add_argument("--data", required=True, help="the shared data folder (with ljspeech/)")
    p.set_defaults(func=score)
    args = parser.parse_args()
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
