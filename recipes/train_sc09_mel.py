"""Train the digit generator's mel stage: ``python recipes/train_sc09_mel.py data.root=... out=...``.

Thin Hydra entry point (config: ``recipes/conf/digits/mel_stage.yaml``): the config goes to
:func:`wavefast.digits.recipe.run_mel_stage_recipe`, which builds the mel pack once (as
``wavefast pack-digit-mels``) and trains as ``wavefast train-images --preset mel-digits``.
"""

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from wavefast.digits.recipe import run_mel_stage_recipe
from wavefast.errors import WavefastError


@hydra.main(version_base="1.3", config_path="conf/digits", config_name="mel_stage")
def main(cfg: DictConfig) -> None:
    try:
        result = run_mel_stage_recipe(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True))
    except WavefastError as exc:
        print(f"wavefast: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"wavefast: step {result['step']}, {result['train_seconds']:.0f} s of training; "
          f"EMA weights in {result['out']}/model-ema.safetensors", file=sys.stderr)


if __name__ == "__main__":
    main()
