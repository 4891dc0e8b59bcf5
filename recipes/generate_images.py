"""Generate images with an image DDPM: ``python recipes/generate_images.py checkpoint=... out=grid.png``.

Thin Hydra entry point (config: ``recipes/conf/images/generate.yaml``); the work is
:func:`wavefast.images.generate.run_generate_recipe`, the same calls as ``wavefast generate``.
"""

import json
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from wavefast.errors import WavefastError
from wavefast.images.generate import run_generate_recipe


@hydra.main(version_base="1.3", config_path="conf/images", config_name="generate")
def main(cfg: DictConfig) -> None:
    try:
        summary = run_generate_recipe(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True))
    except WavefastError as exc:
        print(f"wavefast: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
