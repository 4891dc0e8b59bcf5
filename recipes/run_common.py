"""Config -> ``wavefast`` command line, shared by the thin Hydra entry points.

generate.py / evaluate.py / export.py compose ``conf/run/config.yaml`` and hand the
resulting argv to :func:`wavefast.cli.main`, so a recipe does exactly what the CLI does.
"""

from typing import List


def _sampling(cfg) -> List[str]:
    argv = []
    if cfg.model.checkpoint:
        argv += ["--checkpoint", str(cfg.model.checkpoint)]
    if cfg.model.preset:
        argv += ["--preset", str(cfg.model.preset)]
    argv += ["--schedule", str(cfg.schedule.name)]
    if cfg.schedule.steps is not None:
        argv += ["--steps", str(cfg.schedule.steps)]
    argv += ["--kappa", str(cfg.sampler.kappa), "--seed", str(cfg.sampler.seed), "--method", str(cfg.sampler.method),
             "--device", str(cfg.device)]
    return argv


def generate_argv(cfg) -> List[str]:
    """``wavefast vocode`` for vocoder datasets, ``wavefast generate`` otherwise."""
    if cfg.dataset.kind == "vocoder":
        return ["vocode", *[str(p) for p in cfg.dataset.inputs], "-o", str(cfg.output)] + _sampling(cfg)
    out = str(cfg.output) + ("/grid.png" if cfg.dataset.kind == "images" else "")
    return ["generate", "-n", str(cfg.dataset.n), "-o", out, "--batch-size", str(cfg.sampler.batch_size)] + _sampling(cfg)


def evaluate_argv(cfg) -> List[str]:
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
    if task == "images":
        return ["eval-images", str(cfg.output)]
    argv = ["eval", task, str(cfg.output)]
    if task == "vocoder":
        argv += ["--reference", str(cfg.dataset.references)]
    if task == "sc09" and cfg.dataset.references:
        argv += ["--reference", str(cfg.dataset.references)]
    return argv + ["--json", str(cfg.output) + f"/eval_{task}.json"]


def export_argv(cfg) -> List[str]:
    argv = ["export", "onnx", "-o", str(cfg.export.output)] + _sampling(cfg)
    return argv + (["--per-step"] if cfg.export.per_step else [])
