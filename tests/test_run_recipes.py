"""Every run experiment composes (struct mode) and becomes the intended wavefast command line."""

import sys
from pathlib import Path

import pytest

hydra = pytest.importorskip("hydra")
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
CONF = RECIPES / "conf" / "run"
sys.path.insert(0, str(RECIPES))
from run_common import evaluate_argv, export_argv, generate_argv  # noqa: E402

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def _compose(overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_builds_commands(experiment):
    cfg = _compose([f"+experiment={experiment}"])
    assert OmegaConf.is_struct(cfg)
    argv = generate_argv(cfg)
    assert argv[0] in ("vocode", "generate") and "--schedule" in argv
    assert evaluate_argv(cfg)[0] in ("eval", "sweep", "eval-images")
    assert export_argv(cfg)[:2] == ["export", "onnx"]
    from wavefast.cli import build_parser

    parser = build_parser()
    for build in (generate_argv, export_argv):  # the real parser accepts what the recipe builds
        parser.parse_args(build(cfg))


def test_overrides_reach_the_command_and_typos_are_refused():
    cfg = _compose(["+experiment=sc09_generate", "schedule.steps=20", "sampler.kappa=0", "model=checkpoint",
                    "model.checkpoint=my.safetensors"])
    argv = generate_argv(cfg)
    assert argv[:3] == ["generate", "-n", "64"]
    assert argv[argv.index("--steps") + 1] == "20" and float(argv[argv.index("--kappa") + 1]) == 0.0
    assert argv[argv.index("--checkpoint") + 1] == "my.safetensors"
    with pytest.raises(Exception):
        _compose(["+experiment=sc09_generate", "sampler.kapa=0"])  # struct mode: unknown key


def test_required_values_are_required():
    cfg = _compose(["model=checkpoint"])
    with pytest.raises(Exception):
        generate_argv(cfg)  # dataset.inputs and model.checkpoint are ???
