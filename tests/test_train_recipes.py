"""Every training recipe YAML composes (struct mode, required values) and resolves to a valid TrainConfig."""

from pathlib import Path

import numpy as np
import pytest

hydra = pytest.importorskip("hydra")
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from hydra.errors import ConfigCompositionException  # noqa: E402
from omegaconf.errors import MissingMandatoryValue  # noqa: E402

from wavefast.errors import WavefastError  # noqa: E402
from wavefast.train.recipe import plan_recipe, run_recipe  # noqa: E402

RECIPE_DIR = Path(__file__).resolve().parents[1] / "recipes"
CONF = RECIPE_DIR / "conf" / "train"
RECIPES = sorted(p.stem for p in CONF.glob("*.yaml"))




def composed(name: str, overrides=()) -> dict:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=name, overrides=list(overrides))
    assert OmegaConf.is_struct(cfg)
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def test_there_are_recipes():
    assert {"vocoder", "sc09"} <= set(RECIPES)
    for name in RECIPES:
        assert (RECIPE_DIR / f"train_{name}.py").is_file()


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_composes_and_resolves(name, tmp_path):
    recipe = composed(name, [f"out={tmp_path}/run", f"data.root={tmp_path}/data"])
    plan = plan_recipe(recipe)
    assert plan.config.out == f"{tmp_path}/run" and plan.config.pack == f"{tmp_path}/run/pack.npz"
    assert all(path.startswith(f"{tmp_path}/data/") for path, _ in plan.sources)
    mc = plan.config.model
    assert mc.conditional == (name == "vocoder")
    assert mc.sample_rate == (22050 if name == "vocoder" else 16000)
    plan = plan_recipe(composed(name, [f"out={tmp_path}", f"data.root={tmp_path}", "model.residual_channels=16",
                                       "train.steps=10"]))
    assert plan.config.model.residual_channels == 16 and plan.config.steps == 10


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_requires_out_and_data_root(name, tmp_path):
    with pytest.raises(MissingMandatoryValue):
        composed(name)
    with pytest.raises(MissingMandatoryValue):
        composed(name, [f"out={tmp_path}"])


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_is_strict(name, tmp_path):
    with pytest.raises(ConfigCompositionException, match="stpes"):  # struct mode: a typo is an error
        composed(name, [f"out={tmp_path}", f"data.root={tmp_path}", "train.stpes=10"])
    with pytest.raises(WavefastError, match="unknown model preset"):
        plan_recipe(composed(name, [f"out={tmp_path}", f"data.root={tmp_path}", "model.preset=huge"]))


def test_sc09_recipe_runs_end_to_end_on_a_tiny_corpus(tmp_path):
    sf = pytest.importorskip("soundfile")
    rng = np.random.default_rng(0)
    for take in range(6):
        x = np.sin(2 * np.pi * 400 * np.arange(2400) / 8000) * np.hanning(2400) + 0.01 * rng.standard_normal(2400)
        path = tmp_path / "data" / "fsdd" / "recordings" / f"{take}_anna_{take}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), x.astype(np.float32), 8000, subtype="PCM_16")
        word = tmp_path / "data" / "speech_commands_digits" / "seven" / f"{take:08x}_nohash_0.wav"
        word.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(word), x.astype(np.float32), 16000, subtype="PCM_16")
    recipe = composed("sc09", [f"out={tmp_path}/run", f"data.root={tmp_path}/data", "model.preset=sc09-tiny",
                               "train.steps=2", "train.batch_size=2", "train.val_every=0", "device=cpu"])
    result = run_recipe(recipe, progress=False)
    assert result["step"] == 2
    assert (tmp_path / "run" / "pack.npz").is_file() and (tmp_path / "run" / "pack.splits.json").is_file()
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    with pytest.raises(WavefastError, match="already holds a training run"):
        run_recipe(recipe, progress=False)


@pytest.mark.parametrize("name", RECIPES)
def test_help_lists_only_the_recipes_own_groups(name):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(RECIPE_DIR / f"train_{name}.py"), "--help"], capture_output=True,
                          text=True, timeout=120, cwd=str(RECIPE_DIR.parent))
    assert done.returncode == 0, done.stderr
    groups = done.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    for other in ("run", "images", "learn", "experiment", "dataset", "schedule"):
        assert other not in groups, groups
    assert "out: ???" in done.stdout  # its own config


def test_each_call_saves_its_config_under_the_run_folder(tmp_path):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="vocoder", overrides=[f"out={tmp_path}", f"data.root={tmp_path}"],
                      return_hydra_config=True)
    assert cfg.hydra.run.dir.startswith(f"{tmp_path}/hydra/") and cfg.hydra.output_subdir == ".hydra"
