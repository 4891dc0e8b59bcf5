"""Learn a few-step sampler: ``python recipes/learn.py checkpoint=... data=... method=ddss steps=6``.

Thin Hydra entry point (config: ``recipes/conf/learn/learn.yaml``): the config becomes a
``wavefast learn-sampler`` command line (``run_common.learn_argv``) run by :func:`wavefast.cli.main`.
The learned sampler, the composed config (``.hydra/``) and ``learn.log`` go to
``runs/learn/<method>-S<steps>/<date_time>/`` under the project root (unless ``output=`` names a file).
"""

import hydra
from omegaconf import DictConfig

from run_common import learn_argv, run_wavefast


@hydra.main(version_base="1.3", config_path="conf/learn", config_name="learn")
def main(cfg: DictConfig) -> None:
    run_wavefast(learn_argv(cfg))


if __name__ == "__main__":
    main()
