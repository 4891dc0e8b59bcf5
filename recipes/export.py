"""``wavefast export onnx`` through Hydra: ``python recipes/export.py experiment=NAME [overrides]``.

Config: ``recipes/conf/run/config.yaml`` (groups dataset, model, schedule, sampler, eval, export, experiment).
The config becomes a ``wavefast`` command line (``run_common.export_argv``) run by :func:`wavefast.cli.main`;
the ONNX graph go to the run folder ``runs/<dataset>/<plan>/<date_time>/`` under the project root,
next to the composed config (``.hydra/``) and ``export.log``.
"""

import hydra
from omegaconf import DictConfig

from run_common import export_argv, run_wavefast


@hydra.main(version_base="1.3", config_path="conf/run", config_name="config")
def main(cfg: DictConfig) -> None:
    run_wavefast(export_argv(cfg))


if __name__ == "__main__":
    main()
