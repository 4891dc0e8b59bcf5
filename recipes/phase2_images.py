"""Phase 1 / Phase 2 alternation (arXiv 2412.10786) on the shipped image model, and whether it helps.

    python recipes/phase2_images.py --out runs/phase2 --steps 4,6 [--rounds 2 --iters 200 -n 1000]

For each S: alternate (:func:`wavefast.learn.phase2.alternate`) on a copy of the shipped
Fashion-MNIST DDPM with Fashion-MNIST train images, write the tuned model
(``phase2-S{S}.safetensors``) and its plan keyed to it (``phase2-S{S}.json``), then score
``-n`` images (seeds 0..n-1, kappa 0: the bound is derived for DDIM) of four rows with the
shipped Fashion-MNIST classifier (FID against the test-split statistics, 95% half-sampling
interval over the images; IS):

    base + var-quadratic | base + Phase-1 plan (round 0) | tuned + var-quadratic | tuned + final plan

with the paired FID change against the first row (same seeds, same random halves).

Results: ``OUT/phase2.json`` and the table ``OUT/phase2.md``. The shipped model is not changed.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

from wavefast.errors import run_command


def features(model, plan, n, classifier):
    from wavefast.images.classifier import classify_images
    from wavefast.images.data import to_uint8
    from wavefast.images.generate import generate_images

    images = to_uint8(generate_images(model, n, schedule=plan, kappa=0.0, seed=0, batch_size=100))
    return classify_images(classifier, images)


def score(probs, feats, stats, baseline=None):
    """FID [interval], IS and, against ``baseline`` (features of the same seeds), the paired FID
    difference with its interval over the same random halves."""
    from wavefast.eval import metrics

    return {**metrics.fid_with_interval(feats, stats, baseline), "is": metrics.inception_score(probs, splits=1)}


def study(args) -> int:
    from wavefast.eval.metrics import load_stats
    from wavefast.images.checkpoints import save_image_model
    from wavefast.images.classifier import DEFAULT_STATS, load_classifier
    from wavefast.images.data import load_images, to_model_range
    from wavefast.learn.artifacts import learned_plan, save_learned
    from wavefast.learn.phase2 import Phase2Config, TensorBatches, alternate
    from wavefast.models.default_models import load_default
    from wavefast.schedules import make_plan
    from wavefast.schedules.resolve import diffusion_of

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = load_default("image")
    train, _ = load_images("fashion-mnist", "train")
    data = TensorBatches(to_model_range(train), seed=0)
    classifier, stats = load_classifier(), load_stats(DEFAULT_STATS)
    results_path = out / "phase2.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    from wavefast.images.checkpoints import load_image_model
    from wavefast.schedules import SamplingPlan

    for S in [int(s) for s in args.steps.split(",")]:
        if str(S) in results and not args.rescore:
            continue
        model_path, plan_path = out / f"phase2-S{S}.safetensors", out / f"phase2-S{S}.json"
        if model_path.is_file() and plan_path.is_file() and str(S) in results:  # --rescore: reuse the run
            rounds = results[str(S)]["rounds"]
        else:
            config = Phase2Config(steps=S, rounds=args.rounds, finetune_iters=args.iters, batch_size=32, lr=args.lr)
            run = alternate(base, data, config, log=lambda m: print(m, file=sys.stderr, flush=True))
            rounds = run["rounds"]
            save_image_model(run["model"], model_path, torch.float16)
            tuned = load_image_model(model_path)  # the fp16 file is what is scored and keyed
            save_learned(learned_plan(run["plan"], tuned, learner="errbound-phase2", kappa=0.0, init="var-quadratic",
                                      objective={"name": "error bound", "value": rounds[-1]["bound"]},
                                      training={"rounds": rounds, "config": run["config"]}, name=f"phase2-S{S}"),
                         plan_path)
        tuned = load_image_model(model_path)
        schedule = diffusion_of(base)
        vq = make_plan(schedule, "var-quadratic", S)
        steps0 = torch.tensor(rounds[0]["steps"], dtype=torch.float64)
        first = SamplingPlan(tuple(steps0.tolist()), tuple(schedule.alpha_bar(steps0).clamp(
            *schedule.trained_range).tolist()), f"errbound-S{S}", {"method": "lgamma"})
        final = make_plan(schedule, str(plan_path), None)
        feats = {"base + var-quadratic": features(base, vq, args.n, classifier),
                 "base + Phase-1 plan": features(base, first, args.n, classifier),
                 "tuned + var-quadratic": features(tuned, vq, args.n, classifier),
                 "tuned + final plan": features(tuned, final, args.n, classifier)}
        reference = feats["base + var-quadratic"][1]
        rows = {name: score(p, f, stats, None if name.startswith("base + var") else reference)
                for name, (p, f) in feats.items()}
        results[str(S)] = {"rows": rows, "rounds": rounds}
        results_path.write_text(json.dumps(results, indent=1))
    lines = [f"Phase 1 / Phase 2 on the shipped Fashion-MNIST DDPM, kappa 0, N = {args.n} images (seeds 0..{args.n - 1}); "
             "FID [95% half-sampling interval] with the shipped classifier against the test split", "",
             "(same seeds in every row; the FID change is paired: the same random halves in both rows)", "",
             "| S | row | FID | FID change vs base + var-quadratic | IS |", "|---|---|---|---|---|"]
    for S, entry in sorted(results.items(), key=lambda kv: int(kv[0])):
        for name, r in entry["rows"].items():
            change = f"{r['delta']:+.2f} [{r['delta_lo']:+.2f}, {r['delta_hi']:+.2f}]" if "delta" in r else "-"
            lines.append(f"| {S} | {name} | {r['fid']:.2f} [{r['fid_lo']:.2f}, {r['fid_hi']:.2f}] | {change} | "
                         f"{r['is']:.2f} |")
    (out / "phase2.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", default="4,6")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--iters", type=int, default=200, help="fine-tuning steps per Phase 2")
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("-n", type=int, default=1000, help="images scored per row")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rescore", action="store_true", help="score again the runs already in OUT (no training)")
    args = parser.parse_args()
    if args.n < 2:
        raise SystemExit("-n must be >= 2")
    return run_command(study, args)


if __name__ == "__main__":
    sys.exit(main())
