"""Would per-step time tiling make the DiffWave BASE graph faster on this CPU? Measured, not assumed.

    python export/tile_probe.py [--threads 2] [--seconds 0.25,0.5,1,2,4,10] [--repeats 2]

The idea (issue: "cache-sized time tiling"): run each denoising step over tiles of ``T`` samples
that fit in cache, each with the step's receptive-field halo ``H = (R - 1) / 2`` samples on either
side, so the output equals the untiled step exactly. A tile then costs what a ``T + 2H`` sample
call costs, so tiling pays only if

    c(T + 2H) (T + 2H) / T  <  c(L)          (c(n): seconds of one step per second of audio at length n)

for some tile ``T`` below the utterance length ``L``. This script measures ``c(n)`` directly: the
marginal cost of one step at each length, as the wall time of the 2-step graph minus that of the
1-step graph (the conditioner, computed once per call, cancels), both exported in the folded
layout (DiffWave BASE 64 x 30 with random weights, kappa 0, batch 1). It prints ``c(n)`` and, for
each tile, the tiled cost of a step relative to the untiled one at the longest length. Figures
only; nothing asserts a time. BASE's receptive field is R = 6139 samples, so H = 3069 (0.14 s).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import wavefast
from wavefast.runtime.onnx_export import export_onnx
from wavefast.runtime.ort_backend import OnnxBackend

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import build_model  # noqa: E402  (the same BASE-size model as the benchmark)


def step_graphs(model, folder: Path, threads) -> dict:
    """{S: OnnxBackend} for the 1- and 2-step graphs (var-quadratic, kappa 0, folded layout)."""
    graphs = {}
    for steps in (1, 2):
        plan = wavefast.resolve_plan(model, "var-quadratic", steps=steps)
        path = folder / f"base_s{steps}.onnx"
        export_onnx(model, plan, path, kappa=0.0, layout="folded")
        graphs[steps] = OnnxBackend(path, providers=["CPUExecutionProvider"], threads=threads)
    return graphs


def wall(backend: OnnxBackend, frames: int, repeats: int) -> float:
    """Median wall seconds of one call on a ``frames``-frame input (after one warm-up call)."""
    g = torch.Generator().manual_seed(frames)
    mel = -6 + 2 * torch.randn(1, 80, frames, generator=g)
    x_T = torch.randn(1, frames * 256, generator=g)
    backend.run(mel, x_T, None)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        backend.run(mel, x_T, None)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", default="0.25,0.5,1,2,4,10", help="lengths to measure c(n) at")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    model = build_model("base")
    sr, hop = model.spec.sample_rate, model.spec.hop_length
    halo = (model.spec.arch.receptive_field() - 1) // 2
    lengths = sorted({max(1, round(float(s) * sr / hop)) for s in args.seconds.split(",")})
    with tempfile.TemporaryDirectory() as folder:
        graphs = step_graphs(model, Path(folder), args.threads)
        print(f"DiffWave BASE 64 x 30, folded ORT graph, {args.threads} thread(s); halo H = {halo} samples")
        print(f"{'length s':>9} {'1-step RTF':>11} {'2-step RTF':>11} {'step c(n)':>10}")
        cost = {}
        for frames in lengths:
            seconds = frames * hop / sr
            one, two = (wall(graphs[s], frames, args.repeats) / seconds for s in (1, 2))
            cost[frames] = two - one
            print(f"{seconds:>9.2f} {one:>11.3f} {two:>11.3f} {cost[frames]:>10.3f}", flush=True)
    longest = lengths[-1]
    print(f"\nper-step cost of tiling a {longest * hop / sr:.2f} s utterance, relative to the untiled step "
          f"(c = {cost[longest]:.3f}); a tile of T samples runs as a call of T + 2H:")
    print(f"{'call s':>7} {'tile T s':>9} {'tiled / untiled':>16}")
    for frames in lengths[:-1]:
        call = frames * hop
        tile = call - 2 * halo
        if tile <= 0:
            continue
        ratio = cost[frames] * call / tile / cost[longest]
        print(f"{call / sr:>7.2f} {tile / sr:>9.2f} {ratio:>16.3f}")
    best = min((cost[f] * f * hop / (f * hop - 2 * halo) / cost[longest], f) for f in lengths[:-1]
               if f * hop > 2 * halo) if any(f * hop > 2 * halo for f in lengths[:-1]) else None
    if best is not None:
        verdict = "pays" if best[0] < 0.95 else "does not pay (within 5%)" if best[0] < 1.0 else "does not pay"
        print(f"best tile: calls of {best[1] * hop / sr:.2f} s at {best[0]:.3f}x the untiled step: tiling {verdict}")


if __name__ == "__main__":
    main()
