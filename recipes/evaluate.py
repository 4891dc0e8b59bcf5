"""``wavefast evaluate`` through Hydra: ``python recipes/evaluate.py +experiment=NAME [overrides]``.

Config: ``recipes/conf/run/config.yaml`` (groups dataset, model, schedule, sampler, eval, export;
experiments in ``conf/run/experiment/``). The config becomes a ``wavefast`` command line
(``run_common.evaluate_argv``) run by :func:`wavefast.cli.main`.
"""

import sys

import hydra
from omegaconf import DictConfig

from run_common import evaluate_argv
from wavefast.cli import main as wavefast_main


@hydra.main(version_base="1.3", config_path="conf/run", config_name="config")
def main(cfg: DictConfig) -> None:
    argv = evaluate_argv(cfg)
    print("wavefast " + " ".join(argv), file=sys.stderr)
    code = wavefast_main(argv)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
