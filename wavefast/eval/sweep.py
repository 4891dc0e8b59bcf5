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
import torch

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
        cells = [r["schedule"], str(r["S"]), "-" if r["kappa"] is None else f"{r['kappa']:g}"]
        cells += [_cell(r, m) for m in metric_names]
        cells.append(f"{r['wall_s']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    with atomic_output(out_dir / "sweep.md", ".md") as tmp:
        Path(tmp).write_text(f"{meta.get('title', 'sweep')}\n\n" + "\n".join(lines) + "\n")


def _cell(row: dict, metric: str) -> str:
    """``value`` (4 significant digits), with ``[lo, hi]`` when the row holds an interval for it."""
    value = row.get(metric)
    if value is None:
        return "-"
    if row.get(metric + " lo") is not None:
        return f"{value:.4g} [{row[metric + ' lo']:.3g}, {row[metric + ' hi']:.3g}]"
    return f"{value:.4g}"


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
            if r.get(metric) is not None and r["kappa"] is not None:  # anchor rows have no S or kappa
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
    _check_same_protocol(out_dir / "sweep.json", meta)
    done = _load_done(out_dir / "sweep.json")
    rows = []
    for schedule, steps, kappa in tqdm(configs, desc="sweep", unit="config"):
        key = _key(schedule, steps, kappa)
        if key in done:
            rows.append(done[key])
            continue
        try:
            # a two-stage generator's plans are its mel stage's (a learned plan is keyed to that model)
            plan = model.mel_plan(schedule, steps) if hasattr(model, "mel_plan") else plan_for(model, schedule, steps)
        except WavefastError as exc:  # e.g. step-quadratic repeating a step at this S
            print(f"wavefast: skipping {key}: {exc}", file=sys.stderr)
            continue
        scores = evaluate(plan, kappa)
        rows.append({"key": key, "schedule": schedule, "S": len(plan), "kappa": kappa,
                     "wall_s": scores.pop("sampling_s"), **scores})
        _save(out_dir, rows + _earlier(done, rows), meta, metric_names)
    _save(out_dir, rows + _earlier(done, rows), meta, metric_names)
    return rows


def _check_same_protocol(path: Path, meta: dict) -> None:
    """A folder's finished rows are reused only under the same protocol (the meta's fields other
    than the title: samples, seed, utterances); refuse to mix rows of another one."""
    if not path.is_file():
        return
    saved = json.loads(path.read_text()).get("meta", {})
    differ = {k: (saved[k], v) for k, v in meta.items() if k != "title" and k in saved and saved[k] != v}
    if differ:
        what = ", ".join(f"{k} {a!r} there, {b!r} now" for k, (a, b) in differ.items())
        raise WavefastError(f"{path.parent} holds a sweep of another protocol ({what}); pick another output folder")


def _earlier(done: Dict[str, dict], rows: List[dict]) -> List[dict]:
    """Rows of earlier runs in the folder that this run does not list (other configurations, the
    anchor rows of :func:`sc09_anchor_rows`): kept in the table when the sweep resumes with another
    list, so finished work is never dropped."""
    mine = {row["key"] for row in rows}
    return [row for key, row in done.items() if key not in mine]


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


def sc09_sweep(model, n: int, out_dir, configs, seed: int = 0, batch_size: int = 16, recognizer=None,
               resamples: int = 200, griffin_lim: bool = False) -> List[dict]:
    """SC09 scores of ``n`` generated clips per configuration (:func:`wavefast.digits.evaluate.score_digit_clips`:
    FID with its 95% half-sampling interval against the shipped training statistics, IS likewise, mIS, AM, NDB/K,
    mean confidence; with ``recognizer``, the independent PocketSphinx judge's recognised / agreement /
    hard-label IS). For a two-stage generator the configuration is the mel stage's plan (the vocoder keeps its
    default plan) and, with ``griffin_lim``, its mels are also scored alone, inverted by Griffin-Lim (``GL FID``,
    ``GL IS``; about 0.5 s of CPU per clip)."""
    from ..digits.evaluate import griffin_lim_clips, score_digit_clips, to_sc09_clips
    from . import metrics
    from .classifier import DEFAULT_STATS, load_sc09_classifier
    from ..samplers.noise import item_seeds

    classifier = load_sc09_classifier()
    stats = metrics.load_stats(DEFAULT_STATS)
    rate = model.spec.sample_rate
    two_stage = hasattr(model, "mel_model")

    def evaluate(plan, kappa):
        start = time.perf_counter()
        mels = []
        if two_stage:
            seeds, audio = item_seeds(seed, n), []
            for i in range(0, n, batch_size):
                chunk = seeds[i:i + batch_size]
                mels.append(model.mels(len(chunk), plan, kappa=kappa, seed=chunk, batch_size=len(chunk)))
                audio.append(model.vocode(mels[-1], chunk))
            audio = torch.cat(audio).numpy()
        else:
            audio = generate(model, n, schedule=plan, kappa=kappa, seed=seed, batch_size=batch_size).numpy()
        sampling = time.perf_counter() - start
        scores = score_digit_clips(to_sc09_clips(audio, rate), classifier, stats, recognizer, resamples, seed)
        row = {"sampling_s": sampling}
        for name, key in SC09_COLUMNS.items():
            row[name] = scores.get(key)
            if key + "_lo" in scores:
                row[name + " lo"], row[name + " hi"] = scores[key + "_lo"], scores[key + "_hi"]
        if two_stage and griffin_lim:
            gl = score_digit_clips(griffin_lim_clips(torch.cat(mels), model.layout), classifier, stats, None,
                                   resamples, seed)
            row["GL FID"], row["GL FID lo"], row["GL FID hi"] = gl["fid"], gl["fid_lo"], gl["fid_hi"]
            row["GL IS"], row["GL IS lo"], row["GL IS hi"] = gl["is"], gl["is_lo"], gl["is_hi"]
        return row

    names = list(SC09_COLUMNS) if recognizer is not None else [c for c in SC09_COLUMNS if not c.startswith("PS")]
    names += ["GL FID", "GL IS"] if two_stage and griffin_lim else []
    meta = {"title": f"SC09 sweep: {model.spec.name}, {n} samples per configuration (seeds {seed}..{seed + n - 1}); "
                     "[lo, hi]: 95% half-sampling interval over the clips", "n": n, "seed": seed}
    rows = _run(configs, evaluate, Path(out_dir), meta, names, model)
    plot(Path(out_dir), rows, "FID")
    return rows


def sc09_anchor_rows(model, clips, out_dir, recognizer=None, resamples: int = 200, seed: int = 0,
                     griffin_lim: bool = True) -> List[dict]:
    """Anchor rows for an SC09 sweep table from real held-out clips (N, 16000) at 16 kHz, scored like the
    generated rows: the clips themselves; for a two-stage model also their mels through its vocoder (the
    ceiling of stage 2) and, with ``griffin_lim``, through Griffin-Lim. Appended to ``sweep.json`` /
    ``sweep.md`` (schedule ``anchor: ...``); already-scored anchors are kept."""
    from ..digits.data import clips_to_mels
    from ..digits.evaluate import griffin_lim_clips, score_digit_clips, to_sc09_clips
    from . import metrics
    from .classifier import DEFAULT_STATS, load_sc09_classifier

    out_dir = Path(out_dir)
    data = json.loads((out_dir / "sweep.json").read_text()) if (out_dir / "sweep.json").is_file() else {}
    rows, meta = data.get("rows", []), data.get("meta", {"title": "SC09 sweep"})
    done = {r["key"] for r in rows}
    classifier, stats = load_sc09_classifier(), metrics.load_stats(DEFAULT_STATS)
    sets = {"real held-out clips": lambda: clips}
    if hasattr(model, "mel_model"):
        mels = clips_to_mels(clips, model.layout)
        sets["real mel -> vocoder"] = lambda: to_sc09_clips(model.vocode(mels, range(len(mels))).numpy(),
                                                            model.spec.sample_rate)
        if griffin_lim:
            sets["real mel -> Griffin-Lim"] = lambda: griffin_lim_clips(mels, model.layout)
    names = [c for c in SC09_COLUMNS if recognizer is not None or not c.startswith("PS")]
    for name, make in sets.items():
        key = f"anchor|{name}"
        if key in done:
            continue
        start = time.perf_counter()
        prepared = make()
        scores = score_digit_clips(prepared, classifier, stats, recognizer, resamples, seed)
        row = {"key": key, "schedule": f"anchor: {name}", "S": "-", "kappa": None,
               "wall_s": time.perf_counter() - start}
        for column, k in SC09_COLUMNS.items():
            row[column] = scores.get(k)
            if k + "_lo" in scores:
                row[column + " lo"], row[column + " hi"] = scores[k + "_lo"], scores[k + "_hi"]
        rows.append(row)
        meta["anchors_n"] = int(len(clips))
        _save(out_dir, rows, meta, names + [c for c in ("GL FID", "GL IS") if any(c in r for r in rows)])
    return rows


#: table column -> key of :func:`wavefast.digits.evaluate.score_digit_clips`
SC09_COLUMNS = {"FID": "fid", "IS": "is", "mIS": "mis", "AM": "am", "NDB/K": "ndb_k", "confidence": "confidence",
                "PS recognised": "recognised", "PS agree": "agreement", "PS hard-IS": "hard_is"}
