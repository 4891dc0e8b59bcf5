"""Train the unconditional SC09-style DiffWave: ``python recipes/train_sc09.py data.root=... out=...``.

Thin Hydra entry point (config: ``recipes/conf/sc09.yaml``); the work is
:func:`wavefast.train.recipe.run_recipe`, the same calls as ``wavefast train``.
"""

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from wavefast.errors import WavefastError
from wavefast.train.recipe import run_recipe


@hydra.main(version_base="1.3", config_path="conf", config_name="sc09")
def main(cfg: DictConfig) -> None:
    try:
        result = run_recipe(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True))
    except WavefastError as exc:
        print(f"wavefast: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"wavefast: step {result['step']}, {result['samples_per_s']:.0f} audio samples/s", file=sys.stderr)


if __name__ == "__main__":
    main()
