"""What the Hydra recipes share: the config resolvers and config -> ``wavefast`` command line.

Every recipe goes config -> ``wavefast`` argv -> :func:`wavefast.cli.main`, so a recipe does
exactly what the command line does (the CLI is the typed boundary):

* generate.py / evaluate.py / export.py compose ``conf/run/config.yaml``
  (:func:`generate_argv`, :func:`evaluate_argv`, :func:`export_argv`);
* learn.py composes ``conf/learn/learn.yaml`` (:func:`learn_argv`: ``wavefast learn-sampler``);
* generate_images.py composes ``conf/images/generate.yaml`` (:func:`images_argvs`:
  ``wavefast generate --checkpoint IMG`` and, with ``evaluate=true``, ``wavefast eval-images``).

The training recipes (train_vocoder.py / train_sc09.py, ``conf/train/``) hand their dict to
:func:`wavefast.train.recipe.run_recipe`, which validates it into a ``TrainConfig``.

Importing this module registers the resolvers the configs use:

``${project:PATH}``
    PATH against the project root (the parent of ``recipes/``), not the working directory;
    absolute paths are kept. ``${project:runs}`` is where the run recipes write.
``${plan_label:NAME,STEPS,KAPPA}``
    the folder name of a sampling plan: ``var-quadratic-S6-k1`` (rule plan), ``diffwave-base-6-k1``
    (fixed-length preset), ``vocoder-ddss-6`` (a learned plan: it brings its own kappa).
``${latest_run:FOLDER,JOB}``
    the newest run folder under FOLDER made by ``recipes/JOB.py`` (read from its ``.hydra/hydra.yaml``);
    evaluate.py reads the samples of the latest generate.py run of the same dataset and plan.
"""

import importlib.util
import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import List, Optional

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent  # the project root: recipes/ is inside it
log = logging.getLogger("recipes")


# --- resolvers -----------------------------------------------------------------------------
def project_path(path) -> str:
    """``${project:PATH}``: PATH relative to the project root (an absolute PATH is kept), normalised."""
    return os.path.normpath(os.path.join(str(ROOT), os.path.expanduser(str(path))))


def _number(value) -> str:
    return f"{float(value):g}"


def _shipped_learned_dir() -> Optional[Path]:
    spec = importlib.util.find_spec("wavefast")  # locate the package without importing it (torch)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "schedules" / "learned"


def _is_learned_plan(name: str) -> bool:
    """A plan .json (or a shipped learned plan's name) whose ``info.learned`` record is present."""
    path = Path(name)
    if path.suffix.lower() == ".json":
        candidates = [path, Path(project_path(name))]
    else:
        shipped = _shipped_learned_dir()
        candidates = [shipped / f"{name}.json"] if shipped is not None and "/" not in name else []
    for candidate in candidates:
        try:
            info = json.loads(candidate.read_text()).get("info")
        except (OSError, ValueError, AttributeError):
            continue
        return isinstance(info, dict) and isinstance(info.get("learned"), dict)
    return False


def plan_label(name, steps=None, kappa=None) -> str:
    """``${plan_label:...}``: ``NAME[-S{steps}]-k{kappa}`` (kappa defaults to 1, the CLI's default);
    a learned plan is just its name (plus ``-k{kappa}`` only if one is given). A .json plan is named by its stem."""
    name = str(name)
    label = Path(name).stem if Path(name).suffix.lower() == ".json" else name
    if _is_learned_plan(name):
        return label if kappa is None else f"{label}-k{_number(kappa)}"
    if steps is not None:
        label += f"-S{int(steps)}"
    return f"{label}-k{_number(1.0 if kappa is None else kappa)}"


def _job_name(run: Path) -> Optional[str]:
    try:
        return OmegaConf.select(OmegaConf.load(run / ".hydra" / "hydra.yaml"), "hydra.job.name")
    except Exception:  # noqa: BLE001 - an unreadable or foreign folder is simply not a match
        return None


def latest_run(folder, job: str = "generate") -> str:
    """``${latest_run:FOLDER,JOB}``: the newest ``FOLDER/<timestamp>`` whose saved Hydra config says ``JOB``;
    ``FOLDER/no-JOB-run`` (which does not exist) if there is none, so commands still build (evaluate.py says so)."""
    folder = Path(str(folder))
    runs = sorted((p for p in folder.glob("*") if (p / ".hydra" / "hydra.yaml").is_file()), reverse=True)
    for run in runs:
        if _job_name(run) == job:
            return str(run)
    return str(folder / f"no-{job}-run")


for _name, _resolver in (("project", project_path), ("plan_label", plan_label), ("latest_run", latest_run)):
    OmegaConf.register_new_resolver(_name, _resolver, replace=True)


# --- run recipes (conf/run) ----------------------------------------------------------------
def _sampling(cfg) -> List[str]:
    argv = []
    if cfg.model.checkpoint:
        argv += ["--checkpoint", str(cfg.model.checkpoint)]
    if cfg.model.preset:
        argv += ["--preset", str(cfg.model.preset)]
    argv += ["--plan", str(cfg.schedule.name)]
    if cfg.schedule.steps is not None:
        argv += ["--steps", str(cfg.schedule.steps)]
    if cfg.sampler.kappa is not None:  # null: the plan's own (learned plans) or 1
        argv += ["--kappa", str(cfg.sampler.kappa)]
    return argv + ["--seed", str(cfg.sampler.seed), "--method", str(cfg.sampler.method), "--device", str(cfg.device)]


def generate_argv(cfg) -> List[str]:
    """``wavefast vocode`` for vocoder datasets, ``wavefast generate`` otherwise; written to ``cfg.output``."""
    if cfg.dataset.kind == "vocoder":
        return ["vocode", *[str(p) for p in cfg.dataset.inputs], "-o", str(cfg.output)] + _sampling(cfg)
    out = str(cfg.output) + ("/grid.png" if cfg.dataset.kind == "images" else "")
    argv = ["generate", "-n", str(cfg.dataset.n), "-o", out, "--batch-size", str(cfg.sampler.batch_size)]
    return argv + _sampling(cfg)


def evaluate_argv(cfg) -> List[str]:
    """``wavefast eval TASK`` of ``cfg.samples`` (default: the latest generate run of this plan), or a sweep;
    results go to ``cfg.output``."""
    task = cfg.eval.task
    if task == "sweep":
        kind = "vocoder" if cfg.dataset.kind == "vocoder" else "sc09"
        argv = ["sweep", kind, "-o", str(cfg.output) + "/sweep", "--steps", str(cfg.eval.steps),
                "--schedules", str(cfg.eval.schedules), "--kappas", str(cfg.eval.kappas)]
        if kind == "vocoder":
            argv += ["--references", str(cfg.dataset.references)]
        if cfg.model.checkpoint:
            argv += ["--checkpoint", str(cfg.model.checkpoint)]
        return argv
    if task == "images":  # generate wrote SAMPLES/grid.png and the images in SAMPLES/grid/
        return ["eval-images", str(cfg.samples) + "/grid", "--json", str(cfg.output) + "/eval_images.json"]
    argv = ["eval", task, str(cfg.samples)]
    if task == "vocoder":
        argv += ["--reference", str(cfg.dataset.references)]
    if task == "sc09" and cfg.dataset.references:
        argv += ["--reference", str(cfg.dataset.references)]
    return argv + ["--json", str(cfg.output) + f"/eval_{task}.json"]


def check_samples(cfg) -> Optional[str]:
    """Why evaluate.py cannot score ``cfg.samples`` (None when it can, or when the task needs no samples)."""
    if cfg.eval.task == "sweep" or Path(str(cfg.samples)).exists():
        return None
    return (f"nothing to evaluate at {cfg.samples}: run recipes/generate.py with the same experiment and plan "
            f"first (its run folders are under {cfg.plan_dir}), or pass samples=DIR")


def export_argv(cfg) -> List[str]:
    argv = ["export", "onnx", "-o", str(cfg.export.output)] + _sampling(cfg)
    return argv + (["--per-step"] if cfg.export.per_step else [])


# --- learn recipe (conf/learn) -------------------------------------------------------------
_LEARN_OPTIONS = ("preset", "iters", "batch_size", "kappa", "init", "lr", "lr_time", "segment_samples",
                  "heldout_items", "heldout_samples", "eval_every", "save_every", "features", "mc_examples",
                  "grid_levels", "seed", "device", "threads")


def learn_argv(cfg) -> List[str]:
    """``wavefast learn-sampler`` with the recipe's settings (null = the command's default)."""
    argv = ["learn-sampler", "--checkpoint", str(cfg.checkpoint), "--data", str(cfg.data), "-o", str(cfg.output),
            "--method", str(cfg.method), "--steps", str(cfg.steps)]
    for key in _LEARN_OPTIONS:
        if cfg[key] is not None:
            argv += ["--" + key.replace("_", "-"), str(cfg[key])]
    if cfg.resume:
        argv.append("--resume")
    if not cfg.history:
        argv.append("--no-history")
    if cfg.timesteps_only:
        argv.append("--timesteps-only")
    return argv


# --- image recipe (conf/images) ------------------------------------------------------------
def image_folder(out) -> str:
    """Where ``wavefast generate -o OUT`` puts the PNGs: ``x.png`` -> ``x/``; a folder -> itself."""
    out = str(out)
    return out[:-4] if out.lower().endswith(".png") else out


def images_argvs(cfg) -> List[List[str]]:
    """``wavefast generate --checkpoint IMG ...`` and, with ``evaluate``, ``wavefast eval-images`` of its folder."""
    argv = ["generate", "-n", str(cfg.n), "-o", str(cfg.out), "--batch-size", str(cfg.batch_size),
            "--checkpoint", str(cfg.checkpoint)]
    if cfg.preset:
        argv += ["--preset", str(cfg.preset)]
    argv += ["--plan", str(cfg.schedule)]
    if cfg.steps is not None:
        argv += ["--steps", str(cfg.steps)]
    if cfg.kappa is not None:
        argv += ["--kappa", str(cfg.kappa)]
    argv += ["--seed", str(cfg.seed), "--method", str(cfg.method), "--device", str(cfg.device)]
    if cfg.clip_range:
        argv.append("--clip-range")
    commands = [argv]
    if cfg.evaluate:
        folder = image_folder(cfg.out)
        commands.append(["eval-images", folder, "--json", folder + ".eval.json"])
    return commands


# --- running -------------------------------------------------------------------------------
def run_wavefast(*argvs: List[str]) -> None:
    """Run each ``wavefast`` command line in turn (logged to the Hydra job log); exit on the first failure."""
    from wavefast.cli import main as wavefast_main

    for argv in argvs:
        log.info("wavefast %s", " ".join(shlex.quote(str(a)) for a in argv))
        code = wavefast_main(argv)
        if code:
            sys.exit(code)
