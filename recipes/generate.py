"""``wavefast vocode`` / ``generate`` through Hydra: ``python recipes/generate.py experiment=NAME [overrides]``.

Config: ``recipes/conf/run/config.yaml`` (groups dataset, model, schedule, sampler, eval, export, experiment).
The config becomes a ``wavefast`` command line (``run_common.generate_argv``) run by :func:`wavefast.cli.main`;
samples (vocode / generate) go to the run folder ``runs/<dataset>/<plan>/<date_time>/`` under the project root,
next to the composed config (``.hydra/``) and ``generate.log``.
"""

import hydra
from omegaconf import DictConfig

from run_common import generate_argv, run_wavefast


@hydra.main(version_base="1.3", config_path="conf/run", config_name="config")
def main(cfg: DictConfig) -> None:
    run_wavefast(generate_argv(cfg))


if __name__ == "__main__":
    main()
