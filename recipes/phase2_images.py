"""Phase 1 / Phase 2 alternation (arXiv 2412.10786) on the shipped image model, and whether it helps.

    python recipes/phase2_images.py --out runs/phase2 --steps 4,6 [--rounds 2 --iters 200 -n 1000]

For each S: alternate (:func:`wavefast.learn.phase2.alternate`) on a copy of the shipped
Fashion-MNIST DDPM with Fashion-MNIST train images, write the tuned model
(``phase2-S{S}.safetensors``) and its plan keyed to it (``phase2-S{S}.json``), then score
``-n`` images (seeds 0..n-1, kappa 0: the bound is derived for DDIM) of four rows with the
shipped Fashion-MNIST classifier (FID against the test-split statistics, 95% half-sampling
interval over the images; IS):

    base + var-quadratic | base + Phase-1 plan (round 0) | tuned + var-quadratic | tuned + final plan

Results: ``OUT/phase2.json`` and the table ``OUT/phase2.md``. The shipped model is not changed.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from wavefast.errors import run_command


def score(model, plan, n, classifier, stats):
    from wavefast.eval import metrics
    from wavefast.images.classifier import classify_images
    from wavefast.images.data import to_uint8
    from wavefast.images.generate import generate_images

    images = to_uint8(generate_images(model, n, schedule=plan, kappa=0.0, seed=0, batch_size=100))
    probs, feats = classify_images(classifier, images)
    fid = lambda idx: metrics.frechet_distance(*metrics.feature_stats(feats[idx]), stats["mu"], stats["sigma"])
    lo, hi = metrics.half_sample_interval(fid, n, 100)
    return {"fid": fid(np.arange(n)), "fid_lo": lo, "fid_hi": hi, "is": metrics.inception_score(probs, splits=1)}


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
    for S in [int(s) for s in args.steps.split(",")]:
        if str(S) in results:
            continue
        config = Phase2Config(steps=S, rounds=args.rounds, finetune_iters=args.iters, batch_size=32, lr=args.lr)
        run = alternate(base, data, config, log=lambda m: print(m, file=sys.stderr, flush=True))
        tuned, plan = run["model"], run["plan"]
        save_image_model(tuned, out / f"phase2-S{S}.safetensors", torch.float16)
        from wavefast.images.checkpoints import load_image_model

        tuned = load_image_model(out / f"phase2-S{S}.safetensors")  # the fp16 file is what is scored and keyed
        record = learned_plan(plan, tuned, learner="errbound-phase2", kappa=0.0, init="var-quadratic",
                              objective={"name": "error bound", "value": run["rounds"][-1]["bound"]},
                              training={"rounds": run["rounds"], "config": run["config"]}, name=f"phase2-S{S}")
        save_learned(record, out / f"phase2-S{S}.json")
        schedule = diffusion_of(base)
        vq = make_plan(schedule, "var-quadratic", S)
        first = run["plans"][0]
        rows = {"base + var-quadratic": score(base, vq, args.n, classifier, stats),
                "base + Phase-1 plan": score(base, first, args.n, classifier, stats),
                "tuned + var-quadratic": score(tuned, vq, args.n, classifier, stats),
                "tuned + final plan": score(tuned, record, args.n, classifier, stats)}
        results[str(S)] = {"rows": rows, "rounds": run["rounds"]}
        results_path.write_text(json.dumps(results, indent=1))
    lines = [f"Phase 1 / Phase 2 on the shipped Fashion-MNIST DDPM, kappa 0, N = {args.n} images (seeds 0..{args.n - 1}); "
             "FID [95% half-sampling interval] with the shipped classifier against the test split", "",
             "| S | row | FID | IS |", "|---|---|---|---|"]
    for S, entry in sorted(results.items(), key=lambda kv: int(kv[0])):
        for name, r in entry["rows"].items():
            lines.append(f"| {S} | {name} | {r['fid']:.2f} [{r['fid_lo']:.2f}, {r['fid_hi']:.2f}] | {r['is']:.2f} |")
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
    args = parser.parse_args()
    if args.n < 2:
        raise SystemExit("-n must be >= 2")
    return run_command(study, args)


if __name__ == "__main__":
    sys.exit(main())
