"""``wavefast eval`` / ``wavefast sweep`` through Hydra: ``python recipes/evaluate.py experiment=NAME [overrides]``.

Config: ``recipes/conf/run/config.yaml`` (groups dataset, model, schedule, sampler, eval, export, experiment).
The config becomes a ``wavefast`` command line (``run_common.evaluate_argv``) run by :func:`wavefast.cli.main`;
it scores ``samples`` (default: the newest generate.py run of the same dataset and plan; or ``samples=DIR``),
or runs a sweep, and writes to the run folder ``runs/<dataset>/<plan>/<date_time>/`` under the project root,
next to the composed config (``.hydra/``) and ``evaluate.log``.
"""

import sys

import hydra
from omegaconf import DictConfig

from run_common import check_samples, evaluate_argv, run_wavefast


@hydra.main(version_base="1.3", config_path="conf/run", config_name="config")
def main(cfg: DictConfig) -> None:
    problem = check_samples(cfg)
    if problem:
        print(f"wavefast: error: {problem}", file=sys.stderr)
        sys.exit(2)
    run_wavefast(evaluate_argv(cfg))


if __name__ == "__main__":
    main()
