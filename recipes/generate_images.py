"""Generate images with an image DDPM: ``python recipes/generate_images.py checkpoint=IMG [schedule=... steps=...]``.

Thin Hydra entry point (config: ``recipes/conf/images/generate.yaml``): the config becomes
``wavefast generate --checkpoint IMG ...`` (and, with ``evaluate=true``, ``wavefast eval-images``;
``run_common.images_argvs``) run by :func:`wavefast.cli.main`. The grid, the PNGs, the composed config
(``.hydra/``) and ``generate_images.log`` go to ``runs/images/<plan>/<date_time>/`` under the project root.
"""

import hydra
from omegaconf import DictConfig

from run_common import images_argvs, run_wavefast


@hydra.main(version_base="1.3", config_path="conf/images", config_name="generate")
def main(cfg: DictConfig) -> None:
    run_wavefast(*images_argvs(cfg))


if __name__ == "__main__":
    main()
