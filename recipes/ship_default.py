"""Copy a training run's EMA weights into the package as a shipped default model.

    python recipes/ship_default.py --run runs/vocoder --kind vocoder --name wavefast-vocoder-22k
    python recipes/ship_default.py --run runs/sc09 --kind sc09 --name wavefast-sc09-16k

Reads ``RUN/checkpoint.pt`` (the EMA weights, safely) through the trainer's export, renames
the spec, and writes ``wavefast/models/weights/{vocoder,sc09}.safetensors`` in fp16 with
the training step in the metadata. The model card is written by hand from the measured
figures (``wavefast/models/cards/``).
"""

import argparse
import json
import sys
from pathlib import Path

import torch

from wavefast.errors import WavefastError, run_command
from wavefast.models.checkpoints import load_model, save_native
from wavefast.models.default_models import default_path


def ship(args) -> int:
    run = Path(args.run)
    ema = run / "model-ema.safetensors"
    if not ema.is_file():
        raise WavefastError(f"{ema} not found; export it with 'wavefast train --out {run} --export-only'")
    model = load_model(ema)
    model.spec = model.spec.replace(name=args.name)
    steps = [json.loads(line).get("step", 0) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    out = save_native(model, default_path(args.kind), dtype=torch.float16,
                      extra_metadata={"trained_steps": max(steps, default=0), "run": run.name})
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, step {max(steps, default=0)})", file=sys.stderr)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True)
    parser.add_argument("--kind", required=True, choices=["vocoder", "sc09"])
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    return run_command(ship, args)


if __name__ == "__main__":
    sys.exit(main())
