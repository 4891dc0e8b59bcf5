"""Learn a few-step sampler: ``python recipes/learn.py checkpoint=... data=... output=... method=ddss steps=6``.

Thin Hydra entry point (config: ``recipes/conf/learn/learn.yaml``); the work is
:func:`wavefast.learn.cli.run_learn`, the same call as ``wavefast learn-sampler``.
"""

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from wavefast.errors import WavefastError
from wavefast.learn.cli import run_learn


@hydra.main(version_base="1.3", config_path="conf/learn", config_name="learn")
def main(cfg: DictConfig) -> None:
    try:
        summary = run_learn(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True))
    except WavefastError as exc:
        print(f"wavefast: error: {exc}", file=sys.stderr)
        sys.exit(2)
    obj = summary["objective"]
    print(f"wavefast: wrote {summary['output']} ({obj['name']} {obj['initial_value']:.5g} -> {obj['value']:.5g})",
          file=sys.stderr)


if __name__ == "__main__":
    main()
