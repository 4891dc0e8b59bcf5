"""The FastDPM image sweep: classifier FID / KID / IS of few-step samplers at equal N.

Every setting (schedule, S, kappa, clip_x0) generates the same ``n`` images (image ``i``: seed
``i``) in chunks, which are classified and stored::

    <out>/features/<label>_<start>.npz   probs (chunk, K), features (chunk, D), seconds
    <out>/grids/<label>.png              the first chunk's images (at most 64)
    <out>/summary.json, <out>/table.md   :func:`write_sweep_summary` of the finished chunks

Chunks are done for every setting before the next chunk starts, so an interrupted sweep still
compares all settings at equal N; finished chunk files are skipped on a re-run, and
``worker``/``workers`` split the settings between processes (balanced by cost; each writes
its own files). The grid of settings comes from :func:`wavefast.eval.sweep.configurations`,
the builder of the audio sweeps; the audio sweeps' one-row-per-configuration ``sweep.json``
does not fit here (arrays per chunk, several writer processes), so the chunk files are
written with :func:`wavefast.eval.metrics.save_stats` (atomic ``.npz``) instead.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import WavefastError
from .classifier import DEFAULT_STATS, ImageClassifier, classify_images, load_classifier

SWEEP_SCHEDULES = ("step-linear", "step-quadratic", "var-linear", "var-quadratic")  # FastDPM's table order
CLIP_STUDY_SCHEDULES = ("step-linear", "step-quadratic", "var-quadratic")
SWEEP_KAPPAS = (0.0, 1.0)
CHUNK_KEYS = ("probs", "features", "seconds")


@dataclass(frozen=True)
class SweepSetting:
    schedule: str
    steps: Optional[int]
    kappa: float
    clip_x0: bool = False  # sample with wavefast.images.generate.clip_denoised

    @property
    def label(self) -> str:
        size = "T" if self.steps is None else str(self.steps)
        return f"{self.schedule}_S{size}_kappa{self.kappa:g}" + ("_clipx0" if self.clip_x0 else "")

    @property
    def cost(self) -> int:
        return 1000 if self.steps is None else int(self.steps)


def _grid(schedules: Sequence[str], step_counts: Sequence[int], full_chain: bool = False) -> List[tuple]:
    """(schedule, S or None, kappa) triples of :func:`wavefast.eval.sweep.configurations`, S outermost
    (the order of FastDPM's tables: every sampler at S = 10, then at S = 20, ...)."""
    from ..eval.sweep import configurations

    configs = configurations((), (), SWEEP_KAPPAS, full_chain=full_chain)  # the full chain (DDPM, kappa 1)
    for steps in step_counts:
        configs += configurations(schedules, [int(steps)], SWEEP_KAPPAS, full_chain=False)
    return configs


def fastdpm_sweep_settings(step_counts=(10, 20, 50, 100), full_chain: bool = True) -> list:
    """The full chain (DDPM, kappa 1) and FastDPM {STEP, VAR} x {linear, quadratic} x kappa {0, 1}
    at each S."""
    return [SweepSetting(*config) for config in _grid(SWEEP_SCHEDULES, step_counts, full_chain)]


def clip_study_settings(step_counts=(10, 20)) -> list:
    """STEP-linear, STEP-quadratic and VAR-quadratic x kappa {0, 1} at each S, with and without
    clipping the x0 prediction: how much of a weak model's error comes from the largest noise levels."""
    return [SweepSetting(*config, clip) for clip in (False, True)
            for config in _grid(CLIP_STUDY_SCHEDULES, step_counts)]


def solver_study_settings(step_counts=(5, 10, 20)) -> list:
    """DPM-Solver++(2M) beside FastDPM's STEP / VAR x {linear, quadratic} x kappa {0, 1} at each S
    (the training-free baselines of the few-step comparison; no full chain)."""
    return [SweepSetting("dpm-solver++2m", int(steps), 0.0) for steps in step_counts] + \
        [SweepSetting(*config) for config in _grid(SWEEP_SCHEDULES, step_counts)]


def valid_settings(model, settings: list) -> Tuple[list, Dict[str, str]]:
    """(settings whose plan can be built for this model, {label: reason} for the others).

    FastDPM/DDIM's STEP-quadratic rule ``int(linspace(0, sqrt(0.8 T), S)^2)`` repeats small steps
    once S > ~35 at T = 1000; like FastDPM's code, the plan keeps them as no-op updates (with a warning)."""
    from .generate import image_plan

    good, skipped = [], {}
    for setting in settings:
        try:
            image_plan(model, setting.schedule, setting.steps)
            good.append(setting)
        except WavefastError as exc:
            skipped[setting.label] = str(exc)
    return good, skipped


def _assign(settings: list, workers: int) -> list:
    """Worker index per setting, greedy by cost (longest first) so that the workers' loads match."""
    load, owner = [0] * workers, [0] * len(settings)
    for i in sorted(range(len(settings)), key=lambda i: -settings[i].cost):
        w = min(range(workers), key=lambda w: load[w])
        owner[i], load[w] = w, load[w] + settings[i].cost
    return owner


def _chunk_path(out_dir: Path, setting: SweepSetting, start: int) -> Path:
    return out_dir / "features" / f"{setting.label}_{start:05d}.npz"


def _chunk_starts(out_dir: Path) -> List[int]:
    """First image index of every chunk file in ``<out>/features`` (temporary files skipped)."""
    return sorted({int(p.stem.rsplit("_", 1)[1]) for p in (out_dir / "features").glob("*.npz")
                   if not p.name.startswith(".")})


def run_sweep(model, out_dir, n: int, chunk: int = 50, settings: Optional[list] = None, worker: int = 0,
              workers: int = 1, classifier: Optional[ImageClassifier] = None, log=print) -> None:
    """Generate ``n`` images per setting (image i: seed i, the same for every setting) in chunks,
    classify them and store ``features/<label>_<start>.npz`` (probs, features); chunk 0's
    images also go to ``grids/<label>.png``. Chunks are done for every setting before the next
    chunk starts, so an interrupted sweep still compares all settings at equal N. Resumable;
    ``worker``/``workers`` split the settings between processes (balanced by cost)."""
    from ..eval.metrics import save_stats
    from .data import to_uint8
    from .generate import generate_images
    from .png import save_grid

    if n < 1 or chunk < 1:
        raise WavefastError(f"-n and --chunk must be >= 1, got {n} and {chunk}")
    if not 0 <= worker < workers:
        raise WavefastError(f"--worker must be in 0..{workers - 1} for {workers} workers, got {worker}")
    out_dir = Path(out_dir)
    settings, skipped = valid_settings(model, settings or fastdpm_sweep_settings())
    for label, reason in skipped.items():
        log(f"sweep: skipping {label}: {reason}")
    owner = _assign(settings, workers)
    classifier = classifier or load_classifier()
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        for setting, who in zip(settings, owner):
            path = _chunk_path(out_dir, setting, start)
            if who != worker or path.is_file():
                continue
            began = time.monotonic()
            images = generate_images(model, size, steps=setting.steps, schedule=setting.schedule, kappa=setting.kappa,
                                     seed=list(range(start, start + size)), batch_size=size, clip_x0=setting.clip_x0)
            probs, features = classify_images(classifier, to_uint8(images))  # scored as the PNGs would be
            save_stats(path, probs=probs, features=features, seconds=time.monotonic() - began)
            if start == 0:
                save_grid(images[:64], out_dir / "grids" / f"{setting.label}.png")
            log(f"sweep worker {worker}: {setting.label} images {start}..{start + size - 1} "
                f"in {time.monotonic() - began:.0f} s")


def summarize_sweep(out_dir, settings: Optional[list] = None, reference: Optional[Dict[str, np.ndarray]] = None,
                    real_images: Optional[np.ndarray] = None, classifier: Optional[ImageClassifier] = None,
                    kid_images: Optional[np.ndarray] = None, model=None) -> dict:
    """FID / IS per setting over the chunks finished for *every* setting (equal N); with
    ``real_images`` the FID/IS/KID of the same number of real images (the small-N floor, 5 draws);
    with ``kid_images`` (real images, e.g. 2,000 of the test split) KID x 1000 per setting."""
    from ..eval.metrics import feature_stats, frechet_distance, inception_score, kernel_distance, load_stats

    out_dir = Path(out_dir)
    settings = settings or fastdpm_sweep_settings()
    if model is not None:
        settings, skipped = valid_settings(model, settings)
    else:
        skipped = {}
    reference = reference if reference is not None else load_stats(DEFAULT_STATS)
    complete = [s for s in _chunk_starts(out_dir) if all(_chunk_path(out_dir, c, s).is_file() for c in settings)]
    if not complete:
        raise WavefastError(f"no chunk of {out_dir} is finished for every setting yet")
    classifier = classifier or load_classifier()
    kid_reference = classify_images(classifier, kid_images)[1] if kid_images is not None else None
    # The cubic kernel assumes entries of order 1 (as Inception pool features are); ReLU features of
    # this classifier are larger, so every set is divided by the reference's RMS entry.
    kid_scale = float(np.sqrt(np.mean(kid_reference ** 2))) if kid_reference is not None else 1.0
    rows = []
    for setting in settings:
        parts = [load_stats(_chunk_path(out_dir, setting, s), required=CHUNK_KEYS) for s in complete]
        probs = np.concatenate([p["probs"] for p in parts])
        features = np.concatenate([p["features"] for p in parts])
        mu, sigma = feature_stats(features)
        rows.append({"schedule": setting.schedule, "steps": setting.steps, "kappa": setting.kappa,
                     "clip_x0": setting.clip_x0,
                     "label": setting.label, "n": len(features),
                     "fid": frechet_distance(mu, sigma, reference["mu"], reference["sigma"]),
                     "is": inception_score(probs, splits=10 if len(probs) >= 100 else 1),
                     "kid_x1000": None if kid_reference is None else
                     1000 * kernel_distance(features / kid_scale, kid_reference / kid_scale),
                     "seconds_per_image": float(sum(float(p["seconds"]) for p in parts) / len(features))})
    result = {"n": rows[0]["n"], "rows": rows, "skipped": skipped, "chunks": len(complete)}
    if real_images is not None:
        n = rows[0]["n"]
        rng = np.random.default_rng(0)
        floors = []
        for _ in range(5):
            pick = rng.choice(len(real_images), n, replace=False)
            probs, features = classify_images(classifier, real_images[pick])
            mu, sigma = feature_stats(features)
            floors.append((frechet_distance(mu, sigma, reference["mu"], reference["sigma"]),
                           inception_score(probs, splits=10 if n >= 100 else 1),
                           np.nan if kid_reference is None else
                           1000 * kernel_distance(features / kid_scale, kid_reference / kid_scale)))
        floors = np.array(floors)
        result["real_data"] = {"fid_mean": float(floors[:, 0].mean()), "fid_std": float(floors[:, 0].std()),
                               "is_mean": float(floors[:, 1].mean()), "kid_x1000_mean": float(floors[:, 2].mean()),
                               "kid_x1000_std": float(floors[:, 2].std()), "draws": len(floors)}
    return result


def sweep_table(summary: dict, metric: str = "fid") -> str:
    """Markdown table of one metric (``fid``, ``kid_x1000`` or ``is``): rows = sampler x kappa,
    columns = S; the full chain on its own row."""
    names = {"fid": "FID (lower is better)", "kid_x1000": "KID x 1000 (lower is better)", "is": "IS (higher is better)"}
    rows = summary["rows"]
    steps = sorted({r["steps"] for r in rows if r["steps"] is not None})

    def cell(row):
        value = row.get(metric)
        return "" if value is None else f"{value:.2f}"

    lines = [f"{names[metric]}, classifier features, N = {summary['n']} images per cell", "",
             "| sampler | kappa | " + " | ".join(f"S={s}" for s in steps) + " |", "|---|---|" + "---|" * len(steps)]
    for r in rows:
        if r["steps"] is None:
            lines.append(f"| full chain DDPM-rev (S=1000) | {r['kappa']:g} | {cell(r)} (all S) "
                         + "| " * (len(steps) - 1) + "|")
    for schedule, kappa, clip in sorted({(r["schedule"], r["kappa"], r.get("clip_x0", False))
                                         for r in rows if r["steps"] is not None}):
        cells = [next((cell(r) for r in rows if (r["schedule"], r["kappa"], r["steps"], r.get("clip_x0", False))
                       == (schedule, kappa, s, clip)), "n/a") for s in steps]
        name = schedule.upper().replace("-", " ") + (" + clipped x0" if clip else "")
        lines.append(f"| {name} | {kappa:g} | " + " | ".join(cells) + " |")
    if summary.get("skipped"):
        lines += ["", "n/a: " + "; ".join(sorted(set(summary["skipped"].values())))]
    real = summary.get("real_data")
    if real:
        floor = {"fid": f"{real['fid_mean']:.2f} +- {real['fid_std']:.2f}",
                 "kid_x1000": f"{real['kid_x1000_mean']:.2f} +- {real['kid_x1000_std']:.2f}",
                 "is": f"{real['is_mean']:.2f}"}[metric]
        lines += ["", f"Real Fashion-MNIST train images, same N ({real['draws']} draws): {floor}"]
    return "\n".join(lines)


def write_sweep_summary(out_dir, dataset: str = "fashion-mnist", settings: Optional[list] = None, model=None,
                        kid_count: int = 2000) -> str:
    """:func:`summarize_sweep` against real ``dataset`` images (the train split for the same-N floor,
    ``kid_count`` test images for KID), written to ``<out>/summary.json`` and ``<out>/table.md``
    (atomically); returns the FID, KID and IS tables as Markdown."""
    from ..fileio import atomic_write_text
    from .data import load_images

    out_dir = Path(out_dir)
    real, _ = load_images(dataset, "train")
    test, _ = load_images(dataset, "test")
    kid_pick = np.random.default_rng(1).choice(len(test), min(kid_count, len(test)), replace=False)
    summary = summarize_sweep(out_dir, settings=settings, real_images=real, kid_images=test[kid_pick], model=model)
    table = "\n\n".join(sweep_table(summary, metric) for metric in ("fid", "kid_x1000", "is"))
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2))
    atomic_write_text(out_dir / "table.md", table + "\n")
    return table
