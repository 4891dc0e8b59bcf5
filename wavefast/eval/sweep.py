"""Sampler sweeps that reproduce the papers' tables on our models.

A sweep runs every (schedule, S, kappa) configuration on a fixed set of inputs
and seeds, and records quality and wall time:

- vocoder: log-mel L1 and multi-resolution STFT distance against the ground
  truth (mean over utterances), DNSMOS P.808 when ``speechmos`` is installed;
- unconditional SC09: IS, FID against the classifier's training statistics,
  and the classifier's mean confidence, from ``n`` generated clips.

``wall s`` in the table is the sampling time only (scoring excluded).
Results go to ``sweep.json`` and ``sweep.md`` (a table) and, with matplotlib,
``quality_vs_steps.png`` and ``quality_vs_time.png``; every file is written
atomically, and a re-run skips configurations already in ``sweep.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..fileio import atomic_output
from ..errors import WavefastError
from ..models.diffwave import DiffWave
from ..pipeline import generate, plan_for, vocode

DEFAULT_SCHEDULES = ("var-linear", "var-quadratic", "step-linear", "step-quadratic")


def configurations(schedules: Sequence[str], steps: Sequence[int], kappas: Sequence[float],
                   full_chain: bool = True, presets: Sequence[str] = ()) -> List[Tuple[str, Optional[int], float]]:
    """(schedule, S or None, kappa) triples: the full chain first, then presets, then rules x S x kappa."""
    configs = [("ddpm", None, 1.0)] if full_chain else []
    configs += [(p, None, k) for p in presets for k in kappas]
    configs += [(s, n, k) for s in schedules for n in steps for k in kappas]
    return configs


def _key(schedule, steps, kappa) -> str:
    return f"{schedule}|{steps}|{kappa:g}"


def _load_done(path: Path) -> Dict[str, dict]:
    if not path.is_file():
        return {}
    return {row["key"]: row for row in json.loads(path.read_text()).get("rows", [])}


def _save(out_dir: Path, rows: List[dict], meta: dict, metric_names: Sequence[str]) -> None:
    with atomic_output(out_dir / "sweep.json", ".json") as tmp:
        Path(tmp).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    header = ["schedule", "S", "kappa"] + list(metric_names) + ["wall s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["schedule"], str(r["S"]), f"{r['kappa']:g}"]
        cells += ["-" if r.get(m) is None else f"{r[m]:.4g}" for m in metric_names]
        cells.append(f"{r['wall_s']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    with atomic_output(out_dir / "sweep.md", ".md") as tmp:
        Path(tmp).write_text(f"{meta.get('title', 'sweep')}\n\n" + "\n".join(lines) + "\n")


def plot(out_dir: Path, rows: List[dict], metric: str, lower_is_better: bool = True) -> None:
    """quality_vs_steps.png and quality_vs_time.png for ``metric`` (one line per schedule x kappa)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("wavefast: matplotlib is not installed; skipping plots", file=sys.stderr)
        return
    for x_key, name in (("S", "quality_vs_steps.png"), ("wall_s", "quality_vs_time.png")):
        fig, ax = plt.subplots(figsize=(6, 4))
        groups: Dict[str, list] = {}
        for r in rows:
            if r.get(metric) is not None:
                groups.setdefault(f"{r['schedule']} k={r['kappa']:g}", []).append(r)
        for label, items in groups.items():
            items = sorted(items, key=lambda r: r[x_key])
            ax.plot([r[x_key] for r in items], [r[metric] for r in items], marker="o", label=label)
        ax.set_xscale("log")
        ax.set_xlabel("steps S" if x_key == "S" else "wall time (s)")
        ax.set_ylabel(metric + (" (lower is better)" if lower_is_better else " (higher is better)"))
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic_output(out_dir / name, ".png") as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)


def _run(configs, evaluate, out_dir: Path, meta: dict, metric_names, model: DiffWave) -> List[dict]:
    from tqdm.auto import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    done = _load_done(out_dir / "sweep.json")
    rows = []
    for schedule, steps, kappa in tqdm(configs, desc="sweep", unit="config"):
        key = _key(schedule, steps, kappa)
        if key in done:
            rows.append(done[key])
            continue
        try:
            plan = plan_for(model, schedule, steps)
        except WavefastError as exc:  # e.g. step-quadratic repeating a step at this S
            print(f"wavefast: skipping {key}: {exc}", file=sys.stderr)
            continue
        scores = evaluate(plan, kappa)
        rows.append({"key": key, "schedule": schedule, "S": len(plan), "kappa": kappa,
                     "wall_s": scores.pop("sampling_s"), **scores})
        _save(out_dir, rows, meta, metric_names)
    _save(out_dir, rows, meta, metric_names)
    return rows


def vocoder_sweep(model: DiffWave, utterances: Sequence[Tuple[str, np.ndarray]], out_dir, configs,
                  seed: int = 0, mos: bool = True) -> List[dict]:
    """utterances: (name, ground-truth audio at the model rate). Mels use the model's front end."""
    from ..audio.mel import mel_spectrogram
    from .vocoder_metrics import log_mel_l1, multi_resolution_stft_distance

    spec = model.spec
    mels = [mel_spectrogram(a, spec.mel_frontend, spec.sample_rate, spec.n_mels, spec.hop_length) for _, a in utterances]
    scorer = None
    if mos:
        try:
            from .mos import DnsmosScorer, dnsmos

            scorer = DnsmosScorer()
        except Exception as exc:  # speechmos missing or its models unreadable
            print(f"wavefast: DNSMOS unavailable ({exc}); sweeping without it", file=sys.stderr)

    def evaluate(plan, kappa):
        l1, mrstft, p808, sampling = [], [], [], 0.0
        for i, ((name, ref), mel) in enumerate(zip(utterances, mels)):
            start = time.perf_counter()
            audio = vocode(model, mel, schedule=plan, kappa=kappa, seed=seed + i).numpy()
            sampling += time.perf_counter() - start
            l1.append(log_mel_l1(ref, audio, spec.sample_rate))
            mrstft.append(multi_resolution_stft_distance(ref, audio))
            if scorer is not None:
                p808.append(dnsmos(audio, spec.sample_rate, scorer)["p808"])
        return {"sampling_s": sampling, "log_mel_l1": float(np.mean(l1)), "mr_stft": float(np.mean(mrstft)),
                "dnsmos_p808": float(np.mean(p808)) if p808 else None}

    meta = {"title": f"Vocoder sweep: {spec.name}, {len(utterances)} held-out utterances "
                     f"({sum(len(a) for _, a in utterances) / spec.sample_rate:.1f} s)",
            "utterances": [n for n, _ in utterances], "seed": seed}
    rows = _run(configs, evaluate, Path(out_dir), meta, ("log_mel_l1", "mr_stft", "dnsmos_p808"), model)
    plot(Path(out_dir), rows, "log_mel_l1")
    return rows


def sc09_sweep(model: DiffWave, n: int, out_dir, configs, seed: int = 0, batch_size: int = 16) -> List[dict]:
    """IS / FID (shipped training statistics) / mean confidence of ``n`` generated clips per configuration."""
    from . import metrics
    from .classifier import DEFAULT_STATS, classify, load_sc09_classifier, prepare_clip

    classifier = load_sc09_classifier()
    stats = metrics.load_stats(DEFAULT_STATS)
    rate = model.spec.sample_rate

    def evaluate(plan, kappa):
        start = time.perf_counter()
        audio = generate(model, n, schedule=plan, kappa=kappa, seed=seed, batch_size=batch_size).numpy()
        sampling = time.perf_counter() - start
        clips = np.stack([prepare_clip(a, rate) for a in audio])
        probs, features = classify(classifier, clips)
        fid = metrics.frechet_distance(*metrics.feature_stats(features), stats["mu"], stats["sigma"])
        return {"sampling_s": sampling, "IS": metrics.inception_score(probs), "FID": fid, "confidence": float(probs.max(1).mean())}

    meta = {"title": f"SC09 sweep: {model.spec.name}, {n} samples per configuration", "n": n, "seed": seed}
    rows = _run(configs, evaluate, Path(out_dir), meta, ("IS", "FID", "confidence"), model)
    plot(Path(out_dir), rows, "FID")
    return rows
