"""Run a training recipe given as a plain dict (what the Hydra recipes in ``recipes/`` pass in).

Dict shape (see ``recipes/conf/train/*.yaml``)::

    out: RUN_DIR            device: auto|cpu|cuda      resume: false
    data:  sources: [{path, layout}, ...]   holdout: "A..B,..."   pack: RUN_DIR/pack.npz
           loudness, peak, rms_dbfs, trim_db, heldout_in_pack, compress
    model: preset + ModelConfig fields (null = the preset's value)
    train: TrainConfig fields except pack / out / model

No Hydra import here: the recipes own Hydra; this module only turns the dict into
the same calls the CLI makes (:func:`~wavefast.data.packing.pack_sources`,
:func:`~wavefast.train.trainer.train`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from ..errors import WavefastError
from .config import TrainConfig, model_config

PACK_OPTIONS = ("loudness", "peak", "rms_dbfs", "trim_db", "heldout_in_pack", "compress")


@dataclass
class RecipePlan:
    sources: List[Tuple[str, str]]
    holdout: Optional[str]
    pack_options: dict
    config: TrainConfig
    device: str
    resume: bool


def plan_recipe(recipe: dict) -> RecipePlan:
    """Validate a recipe dict and resolve it into a :class:`RecipePlan` (nothing is run)."""
    try:
        data, model, train = dict(recipe["data"]), dict(recipe.get("model") or {}), dict(recipe.get("train") or {})
        out = str(recipe["out"])
    except KeyError as exc:
        raise WavefastError(f"recipe lacks the {exc} section") from None
    sources = [(str(s["path"]), str(s["layout"])) for s in data.get("sources") or []]
    if not sources and not data.get("pack"):
        raise WavefastError("recipe has neither data.sources nor data.pack")
    preset = model.pop("preset", None)
    mc = model_config(preset, **model)
    pack = str(data.get("pack") or Path(out) / "pack.npz")
    config = TrainConfig.from_dict(dict(train, pack=pack, out=out, model=mc))
    options = {k: data[k] for k in PACK_OPTIONS if data.get(k) is not None}
    return RecipePlan(sources, data.get("holdout"), options, config, str(recipe.get("device", "auto")),
                      bool(recipe.get("resume", False)))


def run_recipe(recipe: dict, progress: bool = True) -> dict:
    """Pack the sources (unless resuming with the pack in place), then train."""
    from ..data.packing import pack_sources
    from .cli import resolve_device
    from .trainer import train

    plan = plan_recipe(recipe)
    mc = plan.config.model
    if not plan.resume and (Path(plan.config.out) / "checkpoint.pt").exists():
        raise WavefastError(f"{plan.config.out} already holds a training run; set resume=true to continue it")
    if plan.sources and not (plan.resume and Path(plan.config.pack).is_file()):
        pack_sources(plan.sources, plan.config.pack, holdout=plan.holdout, sample_rate=mc.sample_rate,
                     clip_samples=0 if mc.conditional else mc.segment_samples, progress=progress,
                     **plan.pack_options)
    return train(plan.config, resolve_device(plan.device), resume=plan.resume, progress=progress)
