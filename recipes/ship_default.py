"""Copy a training run's EMA weights into the package as a shipped default model.

    python recipes/ship_default.py --run runs/vocoder --kind vocoder --name wavefast-vocoder-22k
    python recipes/ship_default.py --run runs/sc09-mel --kind sc09 --name wavefast-sc09-mel

Reads the run's EMA export ``RUN/model-ema.safetensors`` (an audio model, or for ``sc09`` the
mel stage: an image model with a mel layout), renames the spec, and writes
``wavefast/models/weights/{vocoder.safetensors,sc09_mel.safetensors}`` in fp16 with the training
step in the metadata (and, for a run started with ``--init-from``, that file's name: its steps
count from there). ``--out PATH`` writes the same file elsewhere instead of over the shipped
default, e.g. the weights a session reached but had no time to re-measure, for the next session
to continue from (``wavefast train-images --init-from PATH``). The model card is written by hand from the measured
figures (``wavefast/models/cards/``).
"""

import argparse
import json
import sys
from pathlib import Path

import torch

from wavefast.errors import WavefastError, run_command
from wavefast.images.checkpoints import is_image_checkpoint, load_image_model, save_image_model
from wavefast.images.mel_image import mel_layout_of
from wavefast.models.checkpoints import load_model, save_native
from wavefast.models.default_models import default_path


def ship(args) -> int:
    run = Path(args.run)
    ema = run / "model-ema.safetensors"
    if not ema.is_file():
        raise WavefastError(f"{ema} not found; export it with 'wavefast train --out {run} --export-only'")
    steps = [json.loads(line).get("step", 0) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    metadata = {"trained_steps": max(steps, default=0), "run": run.name}
    config = run / "config.json"
    if config.is_file():
        init_from = json.loads(config.read_text()).get("config", {}).get("init_from")
        if init_from:
            metadata["continued_from"] = Path(init_from).name
    target = Path(args.out) if args.out else default_path(args.kind)
    if is_image_checkpoint(ema):
        model = load_image_model(ema)
        if args.kind != "sc09" or mel_layout_of(model.spec) is None:
            raise WavefastError(f"{ema} is an image model; only a mel-stage model (--kind sc09) ships from here")
        model.spec = model.spec.replace(name=args.name)
        out = save_image_model(model, target, torch.float16, metadata)
    else:
        model = load_model(ema)
        model.spec = model.spec.replace(name=args.name)
        out = save_native(model, target, dtype=torch.float16, extra_metadata=metadata)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, step {max(steps, default=0)})", file=sys.stderr)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True)
    parser.add_argument("--kind", required=True, choices=["vocoder", "sc09"])
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", help="write here instead of over the shipped default")
    args = parser.parse_args()
    return run_command(ship, args)


if __name__ == "__main__":
    sys.exit(main())
