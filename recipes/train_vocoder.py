"""Train the mel-conditioned DiffWave vocoder: ``python recipes/train_vocoder.py data.root=... out=...``.

Thin Hydra entry point (config: ``recipes/conf/train/vocoder.yaml``): the config goes to
:func:`wavefast.train.recipe.run_recipe`, which validates it into a ``TrainConfig`` and makes the same
calls as ``wavefast train`` (pack the sources, then train). Each call saves its composed config and log
in ``OUT/hydra/<date_time>/``.
"""

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from wavefast.errors import WavefastError
from wavefast.train.recipe import run_recipe


@hydra.main(version_base="1.3", config_path="conf/train", config_name="vocoder")
def main(cfg: DictConfig) -> None:
    try:
        result = run_recipe(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True))
    except WavefastError as exc:
        print(f"wavefast: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"wavefast: step {result['step']}, {result['samples_per_s']:.0f} audio samples/s", file=sys.stderr)


if __name__ == "__main__":
    main()
