"""The mel-stage training recipe as a plain dict (what ``recipes/train_sc09_mel.py`` passes in).

Dict shape (``recipes/conf/digits/mel_stage.yaml``)::

    out: RUN_DIR     device: auto|cpu|cuda
    data:  fsdd: DIR   speech_commands: DIR or null   synthetic: DIR or null   pack: RUN_DIR/pack.npz
    train: preset, steps, max_minutes, batch_size, lr, loss_weighting, ema_decay, seed, threads, init_from

The pack is built when missing (:func:`wavefast.digits.data.build_digit_mel_pack`), then
:func:`wavefast.images.train.train_image_model` trains or resumes ``out``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import WavefastError

TRAIN_KEYS = ("preset", "steps", "max_minutes", "batch_size", "lr", "loss_weighting", "ema_decay", "seed", "threads",
              "init_from")


def run_mel_stage_recipe(config: dict) -> dict:
    from ..devices import resolve_device
    from ..images.checkpoints import get_image_preset
    from ..images.mel_image import mel_layout_of
    from ..images.train import ImageTrainConfig, train_image_model
    from .data import build_digit_mel_pack

    unknown = sorted(set(config) - {"out", "device", "data", "train", "hydra"})
    unknown += sorted(f"data.{k}" for k in set(config.get("data", {})) - {"root", "fsdd", "speech_commands", "synthetic", "pack"})
    unknown += sorted(f"train.{k}" for k in set(config.get("train", {})) - set(TRAIN_KEYS))
    if unknown:
        raise WavefastError(f"unknown mel-stage recipe keys {unknown}")
    data, train = config["data"], config.get("train", {})
    layout = mel_layout_of(get_image_preset(train.get("preset", "mel-digits")))
    if layout is None:
        raise WavefastError(f"preset {train.get('preset')!r} is not a mel-stage preset (no mel layout)")
    pack = Path(data["pack"])
    if not pack.is_file():
        fsdd = Path(data["fsdd"])
        if not fsdd.is_dir():
            raise WavefastError(f"FSDD recordings folder not found: {fsdd}")
        sc, synthetic = data.get("speech_commands"), data.get("synthetic")
        if synthetic and not Path(synthetic).is_dir():
            raise WavefastError(f"synthetic clips folder not found: {synthetic} (write it with 'wavefast synth-digits')")
        pack.parent.mkdir(parents=True, exist_ok=True)
        build_digit_mel_pack(fsdd, Path(sc) if sc else None, pack, layout, Path(synthetic) if synthetic else None)
    cfg = ImageTrainConfig(out=str(config["out"]), dataset=str(pack), **{k: v for k, v in train.items()})
    return train_image_model(cfg, resume=True, device=resolve_device(config.get("device", "auto")))
