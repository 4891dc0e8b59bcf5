"""Every run experiment composes (struct mode) and becomes the intended wavefast command line."""

import os
import re
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
    cfg = _compose([f"experiment={experiment}"])
    assert OmegaConf.is_struct(cfg)
    argv = generate_argv(cfg)
    assert argv[0] in ("vocode", "generate") and "--plan" in argv  # the CLI's flag (was --schedule, an alias)
    assert evaluate_argv(cfg)[0] in ("eval", "sweep", "eval-images")
    assert export_argv(cfg)[:2] == ["export", "onnx"]
    from wavefast.cli import build_parser

    parser = build_parser()
    for build in (generate_argv, export_argv):  # the real parser accepts what the recipe builds
        parser.parse_args(build(cfg))


def test_overrides_reach_the_command_and_typos_are_refused():
    cfg = _compose(["experiment=sc09_generate", "schedule.steps=20", "sampler.kappa=0", "model=checkpoint",
                    "model.checkpoint=my.safetensors"])
    argv = generate_argv(cfg)
    assert argv[:3] == ["generate", "-n", "64"]
    assert argv[argv.index("--steps") + 1] == "20" and float(argv[argv.index("--kappa") + 1]) == 0.0
    assert argv[argv.index("--checkpoint") + 1] == "my.safetensors"
    with pytest.raises(Exception):
        _compose(["experiment=sc09_generate", "sampler.kapa=0"])  # struct mode: unknown key


def test_required_values_are_required():
    cfg = _compose(["model=checkpoint"])
    with pytest.raises(Exception):
        generate_argv(cfg)  # dataset.inputs and model.checkpoint are ???


# --- lightning-hydra-template conventions ---------------------------------------------------
ROOT = RECIPES.parent


def test_experiment_is_chosen_without_plus():
    cfg = _compose(["experiment=sc09_generate"])  # `experiment: null` is in the defaults list
    assert cfg.dataset.name == "sc09" and cfg.schedule.name == "step-linear" and cfg.schedule.steps == 10
    with pytest.raises(Exception):
        _compose(["+experiment=sc09_generate"])  # already in the defaults list: `+` would append a second one
    with pytest.raises(Exception):
        _compose(["experiment=no_such_experiment"])


def test_dataset_paths_resolve_against_the_project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the working directory
    for experiment in ("ljspeech_vocode", "ljspeech_sweep"):
        cfg = _compose([f"experiment={experiment}"])
        (mel,) = [Path(p) for p in cfg.dataset.inputs]
        assert mel.is_absolute()
        assert str(mel) == os.path.normpath(ROOT / "../shared/data/ljspeech/mels/LJ001-0030.wav.pt")
        argv = generate_argv(cfg)
        assert argv[1] == str(mel)
    assert Path(cfg.dataset.references).is_absolute()
    assert cfg.dataset.references == os.path.normpath(ROOT / "../shared/data/ljspeech/wavs")
    from run_common import project_path

    assert project_path("runs") == str(ROOT / "runs") and project_path("/abs/x") == "/abs/x"


def _run_folder(cfg) -> Path:
    out = Path(cfg.output)
    assert out.is_absolute() and out.parent.parent == ROOT / "runs" / cfg.dataset.name
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", out.name)  # ${now:...}
    return out


def test_output_folder_is_named_by_the_plan():
    rule = _run_folder(_compose(["experiment=ljspeech_vocode"]))
    assert rule.parent.name == "var-quadratic-S6-k1"
    preset = _run_folder(_compose(["experiment=ljspeech_vocode", "schedule=diffwave_base_6"]))
    assert preset.parent.name == "diffwave-base-6-k1"
    ddpm = _run_folder(_compose(["experiment=ljspeech_vocode", "schedule=ddpm", "sampler.kappa=0"]))
    assert ddpm.parent.name == "ddpm-k0"
    learned = _run_folder(_compose(["experiment=ljspeech_vocode", "schedule=file", "schedule.name=vocoder-ddss-6"]))
    assert learned.parent.name == "vocoder-ddss-6"
    images = _run_folder(_compose(["experiment=images_generate"]))
    assert images.parent.name == "var-quadratic-S20-k0"
    for folder in (rule, preset, ddpm, learned, images):
        assert "None" not in str(folder)
    cfg = _compose(["experiment=ljspeech_vocode"])
    assert generate_argv(cfg)[generate_argv(cfg).index("-o") + 1] == cfg.output
    assert export_argv(cfg)[export_argv(cfg).index("-o") + 1] == cfg.output + "/model.onnx"


def test_plan_label():
    from run_common import plan_label

    assert plan_label("var-quadratic", 6, None) == "var-quadratic-S6-k1"
    assert plan_label("step-linear", 20, 0.5) == "step-linear-S20-k0.5"
    assert plan_label("diffwave-base-6", None, None) == "diffwave-base-6-k1"
    assert plan_label("vocoder-ddss-4") == "vocoder-ddss-4"  # a shipped learned plan brings its own kappa
    assert plan_label("/somewhere/my-plan.json", None, None) == "my-plan-k1"  # unreadable: a plain plan


def test_the_config_and_log_are_saved_in_the_run_folder():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=sc09_generate"], return_hydra_config=True)
    assert cfg.hydra.run.dir == cfg.output and cfg.hydra.output_subdir == ".hydra"
    logging = OmegaConf.to_container(cfg.hydra.job_logging, resolve=False)  # Hydra logging is on: <job>.log there
    assert logging["handlers"]["file"]["filename"] == "${hydra.runtime.output_dir}/${hydra.job.name}.log"


def test_evaluate_reads_the_latest_generate_run(tmp_path):
    def run(stamp, job):
        (tmp_path / stamp / ".hydra").mkdir(parents=True)
        (tmp_path / stamp / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  job:\n    name: {job}\n")
        return tmp_path / stamp

    from run_common import check_samples

    cfg = _compose(["experiment=sc09_generate", f"plan_dir={tmp_path}"])
    assert evaluate_argv(cfg)[2] == str(tmp_path / "no-generate-run")  # none yet: the command still builds
    assert "run recipes/generate.py" in check_samples(cfg)  # and evaluate.py says what to do
    run("2024-01-01_00-00-00", "generate")
    newest = run("2024-01-02_00-00-00", "generate")
    run("2024-01-03_00-00-00", "evaluate")  # evaluate's own folder is not a generate run
    argv = evaluate_argv(cfg)
    assert argv[:3] == ["eval", "sc09", str(newest)] and argv[argv.index("--json") + 1].startswith(str(tmp_path))
    assert check_samples(cfg) is None
    assert evaluate_argv(_compose(["experiment=sc09_generate", "samples=/x/gen"]))[2] == "/x/gen"
    images = evaluate_argv(_compose(["experiment=images_generate", "samples=/x/gen"]))
    assert images[:2] == ["eval-images", "/x/gen/grid"]  # generate wrote /x/gen/grid.png and /x/gen/grid/*.png


def test_learn_and_image_recipes_build_cli_commands(tmp_path):
    from run_common import images_argvs, learn_argv
    from wavefast.cli import build_parser

    parser = build_parser()
    with initialize_config_dir(config_dir=str(RECIPES / "conf" / "learn"), version_base="1.3"):
        cfg = compose(config_name="learn", overrides=["checkpoint=m.safetensors", "data=p.npz", "output=o.json",
                                                      "method=errbound", "steps=4", "history=false", "iters=7"])
    args = parser.parse_args(learn_argv(cfg))
    assert (args.checkpoint, args.data, args.output, args.method, args.steps) == ("m.safetensors", "p.npz", "o.json",
                                                                                  "errbound", 4)
    assert args.iters == 7 and args.no_history and not args.resume and args.kappa == 0.0 and args.device == "cpu"
    with initialize_config_dir(config_dir=str(RECIPES / "conf" / "images"), version_base="1.3"):
        cfg = compose(config_name="generate", overrides=["checkpoint=img.safetensors", f"out={tmp_path}/g.png",
                                                         "n=2", "steps=3", "kappa=0", "evaluate=true"])
        hydra_cfg = compose(config_name="generate", overrides=["checkpoint=img.safetensors", "steps=3"],
                            return_hydra_config=True)
    gen, score = images_argvs(cfg)
    args = parser.parse_args(gen)
    assert (args.command if hasattr(args, "command") else gen[0]) == "generate"
    assert (args.checkpoint, args.output, args.n, args.steps, args.kappa) == ("img.safetensors", f"{tmp_path}/g.png",
                                                                              2, 3, 0.0)
    assert score[:2] == ["eval-images", f"{tmp_path}/g"]
    parser.parse_args(score)
    run_dir = Path(hydra_cfg.hydra.run.dir)
    assert run_dir.parent == ROOT / "runs" / "images" / "var-quadratic-S3-k1"
