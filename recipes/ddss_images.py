"""DDSS-learned few-step samplers on the shipped image model against the best baselines at equal S.

    wavefast learn-sampler --checkpoint wavefast/models/weights/image_fmnist_tiny.safetensors \\
        --data fashion-mnist --method ddss --steps 10 --kappa 1 --init var-linear --iters 200 \\
        --batch-size 32 -o runs/ddss_images/ddss-S10.json          (and --steps 5 --init step-linear)
    python recipes/ddss_images.py --learned runs/ddss_images/ddss-S5.json,runs/ddss_images/ddss-S10.json \\
        --out runs/ddss_images [-n 1000] [--judge J.safetensors --judge-stats J.npz]

Rows, each ``-n`` images with seeds 0..n-1 (the same seeds in every row): every DDSS file given,
and at S = 5, 10, 20 DDIM (STEP linear, kappa 0), DPM-Solver++ (2M) and the best FastDPM rows of
the image card's solver table (STEP linear kappa 1 at S = 5; VAR linear kappa 1 at S = 10, 20).
Scores: FID [95% half-sampling interval] on the shipped classifier's features against the
Fashion-MNIST test statistics, IS; and, because DDSS trains on a kernel distance of those very
features, the same FID on a second *judge* classifier that no sampler saw (another seed, widths
and feature size: ``wavefast train-image-classifier --seed 1 --widths 24 48 --feature-dim 96``;
built here if ``--judge`` is missing). Each learned row also gets its paired FID change against
the best baseline at its S (same seeds, same random halves). Features are cached per row in
OUT, so re-running resumes; the table goes to ``OUT/ddss_images.md`` and ``.json``.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from wavefast.errors import WavefastError, run_command

BASELINES = {5: [("DDIM (STEP linear)", "step-linear", 0.0), ("STEP linear", "step-linear", 1.0),
                 ("DPM-Solver++ (2M)", "dpm-solver++2m", 0.0)],
             10: [("DDIM (STEP linear)", "step-linear", 0.0), ("VAR linear", "var-linear", 1.0),
                  ("DPM-Solver++ (2M)", "dpm-solver++2m", 0.0)],
             20: [("DDIM (STEP linear)", "step-linear", 0.0), ("VAR linear", "var-linear", 1.0),
                  ("DPM-Solver++ (2M)", "dpm-solver++2m", 0.0)]}


def row_features(model, plan, kappa, n, classifiers, cache: Path):
    """(probs, features) per classifier for n images of one sampler, cached in ``cache`` (.npz)."""
    from wavefast.images.classifier import classify_images
    from wavefast.images.data import to_uint8
    from wavefast.images.generate import generate_images

    if cache.is_file():
        with np.load(cache) as data:
            if int(data["n"]) == n:
                return {name: (data[f"{name}_probs"], data[f"{name}_features"]) for name in classifiers}
    images = to_uint8(generate_images(model, n, schedule=plan, kappa=kappa, seed=0, batch_size=100, progress=True))
    out = {name: classify_images(clf, images) for name, clf in classifiers.items()}
    arrays = {f"{name}_{kind}": value for name, (p, f) in out.items() for kind, value in (("probs", p), ("features", f))}
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, n=np.array(n), **arrays)
    tmp.replace(cache)
    return out


def study(args) -> int:
    from wavefast.eval.metrics import fid_with_interval, inception_score, load_stats
    from wavefast.images.classifier import DEFAULT_STATS, load_classifier
    from wavefast.models.default_models import load_default
    from wavefast.schedules import make_plan
    from wavefast.schedules.resolve import diffusion_of

    if args.n < 8:
        raise WavefastError(f"-n must be >= 8 (the intervals halve the set), got {args.n}")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    judge, judge_stats = Path(args.judge or out / "judge.safetensors"), Path(args.judge_stats or out / "judge_stats.npz")
    if not (judge.is_file() and judge_stats.is_file()):
        from wavefast.images.train_classifier import build_classifier_files

        print(f"training the judge classifier into {judge}", file=sys.stderr)
        build_classifier_files(out=judge, stats=judge_stats, seed=1, widths=(24, 48), feature_dim=96,
                               log=lambda m: None)
    classifiers = {"shipped": load_classifier(), "judge": load_classifier(judge)}
    stats = {"shipped": load_stats(DEFAULT_STATS), "judge": load_stats(judge_stats)}
    model = load_default("image")
    schedule = diffusion_of(model)
    rows = []  # (S, label, key, plan, kappa, learned)
    for path in [p for p in args.learned.split(",") if p]:
        plan = make_plan(schedule, path)
        rows.append((len(plan), f"DDSS ({Path(path).stem})", f"learned-{Path(path).stem}", plan, None, True))
    for S, entries in BASELINES.items():
        for label, name, kappa in entries:
            rows.append((S, label, f"{name}-S{S}-k{kappa:g}", make_plan(schedule, name, S), kappa, False))
    feats = {key: row_features(model, plan, kappa, args.n, classifiers, out / f"features-{key}.npz")
             for _, _, key, plan, kappa, _ in rows}
    results = []
    for S, label, key, plan, kappa, learned in rows:
        entry = {"S": S, "row": label, "key": key, "kappa": kappa, "learned": learned}
        for name in classifiers:
            probs, f = feats[key][name]
            entry[name] = {**fid_with_interval(f, stats[name]), "is": inception_score(probs, splits=1)}
        results.append(entry)
    for entry in results:  # paired change of each learned row against the best baseline at its S
        if not entry["learned"]:
            continue
        same_s = [r for r in results if not r["learned"] and r["S"] == entry["S"]]
        if not same_s:
            continue
        best = min(same_s, key=lambda r: r["shipped"]["fid"])
        entry["versus"] = best["row"]
        for name in classifiers:
            paired = fid_with_interval(feats[entry["key"]][name][1], stats[name], feats[best["key"]][name][1])
            entry[name].update(delta=paired["delta"], delta_lo=paired["delta_lo"], delta_hi=paired["delta_hi"])
    (out / "ddss_images.json").write_text(json.dumps(results, indent=1))
    fmt = lambda r: f"{r['fid']:.1f} [{r['fid_lo']:.1f}, {r['fid_hi']:.1f}]"  # noqa: E731
    change = lambda r: f"{r['delta']:+.1f} [{r['delta_lo']:+.1f}, {r['delta_hi']:+.1f}]" if "delta" in r else "-"  # noqa: E731
    lines = [f"N = {args.n} images per row (seeds 0..{args.n - 1}, the same in every row); FID [95% half-sampling "
             "interval] against the Fashion-MNIST test statistics on the shipped classifier (the features DDSS "
             "trained on) and on an independent judge classifier; change = paired FID difference against the best "
             "baseline at the same S (shipped-classifier FID)", "",
             "| S | sampler | kappa | FID (shipped clf.) | IS | FID (judge clf.) | change vs best baseline (shipped / judge) |",
             "|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r["S"], not r["learned"], r["shipped"]["fid"])):
        kappa = "learned" if r["learned"] else f"{r['kappa']:g}"
        vs = f"{change(r['shipped'])} / {change(r['judge'])} (vs {r['versus']})" if "versus" in r else "-"
        lines.append(f"| {r['S']} | {r['row']} | {kappa} | {fmt(r['shipped'])} | {r['shipped']['is']:.2f} | "
                     f"{fmt(r['judge'])} | {vs} |")
    (out / "ddss_images.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learned", default="", help="comma-separated DDSS plan files for the shipped image model")
    parser.add_argument("--out", required=True)
    parser.add_argument("-n", type=int, default=1000, help="images per row")
    parser.add_argument("--judge", help="second classifier .safetensors (default OUT/judge.safetensors, built if missing)")
    parser.add_argument("--judge-stats", help="its test statistics .npz (default OUT/judge_stats.npz)")
    parser.add_argument("--threads", type=int, default=1)
    return run_command(study, parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
