"""Speed of the S-step vocoder: PyTorch eager, PyTorch with hoisted conditioning, ONNX Runtime full graph.

Prints, for batch 1 and 8 on a ``--seconds`` utterance: wall time, real-time factor
(wall seconds per second of audio, per item), FLOPs per step per output sample
and the fraction of the machine's peak reached. Figures only; nothing asserts a time.

    python export/bench.py                      # the shipped default vocoder, S=6, 10 s
    python export/bench.py --arch base          # DiffWave BASE size (64 x 30), random weights
    python export/bench.py --peak-gflops 200    # this machine's fp32 peak (2 AVX2 cores ~ 200 GFLOP/s)

With a CUDA device it also times PyTorch CUDA (fp32, bf16 autocast) and the CUDA
execution provider with IOBinding.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import wavefast
from wavefast.models.default_models import load_default
from wavefast.models.diffwave import DiffWave
from wavefast.models.presets import PRESETS
from wavefast.models.spec import DiffWaveConfig
from wavefast.samplers import PerSampleNoise, sample


def flops_per_sample_per_step(model: DiffWave, hoisted: bool) -> float:
    """Multiply-adds x 2 of one network call per output sample (convolutions only)."""
    a = model.spec.arch
    c, s = a.residual_channels, a.skip_channels
    per_layer = 2 * 3 * c * 2 * c + 2 * c * (c + s)
    if a.conditional and not hoisted:
        per_layer += 2 * a.n_mels * 2 * c
    return a.residual_layers * per_layer + 2 * c + 2 * s * s + 2 * s


def measured_sgemm_gflops(size: int = 2048, repeats: int = 10) -> float:
    """fp32 GFLOP/s of a size^3 torch matmul on the current threads: a practical peak."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(2):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e9


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="default", choices=["default", "base"])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--peak-gflops", type=float, default=200.0, help="fp32 peak of this machine")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--backends", default="eager,hoisted,ort",
                        help="subset of eager,hoisted,ort,ort-reference (ort = the folded fast layout, "
                             "ort-reference = the model's layers exported as they are)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.arch == "base":
        torch.manual_seed(0)
        base = PRESETS["philsyn-lj-base"].replace(arch=DiffWaveConfig(64, 64, 30, 10, n_mels=80), name="base-64x30")
        model = DiffWave(base).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.02)
    else:
        model = load_default("vocoder")
    spec = model.spec
    plan = wavefast.plan_for(model, "var-quadratic", args.steps)
    frames = int(args.seconds * spec.sample_rate / spec.hop_length)
    seconds = frames * spec.hop_length / spec.sample_rate
    per_step = {h: flops_per_sample_per_step(model, h) for h in (False, True)}
    print(f"model {spec.name}: {spec.arch.residual_channels} ch x {spec.arch.residual_layers} layers, S={args.steps}, "
          f"{seconds:.2f} s utterance, torch threads {torch.get_num_threads()}")
    print(f"FLOPs per output sample per step: {per_step[False] / 1e6:.2f} M (eager), {per_step[True] / 1e6:.2f} M "
          f"(conditioner hoisted); peak assumed {args.peak_gflops:.0f} GFLOP/s "
          f"(torch fp32 2048^3 matmul here: {measured_sgemm_gflops():.0f} GFLOP/s)")
    print(f"{'backend':<28} {'batch':>5} {'wall s':>8} {'RTF':>7} {'GFLOP/s':>8} {'% peak':>7}")

    def report(name, batch, wall, hoisted=True):
        flops = per_step[hoisted] * args.steps * frames * spec.hop_length * batch
        rate = flops / wall / 1e9
        print(f"{name:<28} {batch:>5} {wall:>8.2f} {wall / (seconds * batch):>7.3f} {rate:>8.1f} "
              f"{100 * rate / args.peak_gflops:>6.1f}%")

    backends = set(args.backends.split(","))
    ort_samplers = {}
    try:
        from wavefast.runtime.onnx_export import export_onnx
        from wavefast.runtime.ort_backend import OnnxSampler

        for name, folded in (("ort", True), ("ort-reference", False)):
            if name in backends or (name == "ort" and torch.cuda.is_available()):
                path = Path(tempfile.mkdtemp()) / f"{name}.onnx"
                export_onnx(model, plan, path, kappa=1.0, layout="folded" if folded else "reference")
                ort_samplers[name] = (path, OnnxSampler(path, providers=["CPUExecutionProvider"], threads=args.threads))
    except ImportError:
        print("onnxruntime not installed: skipping the ORT rows")

    for batch in [int(b) for b in args.batches.split(",")]:
        mel = -6 + 2 * torch.randn(batch, spec.n_mels, frames, generator=torch.Generator().manual_seed(0))
        length = frames * spec.hop_length

        def eager():
            noise = PerSampleNoise(range(batch))
            with torch.no_grad():
                sample(lambda x, t: model(x, t, mel), noise.randn((1, length)), plan, kappa=1.0, noise=noise)

        def hoisted():
            with torch.no_grad():
                wavefast.vocode(model, mel, schedule=plan, kappa=1.0, seed=0)

        # ORT first: the PyTorch rows leave GBs of freed pages behind that slow a later large run.
        for name, label in (("ort", "onnxruntime CPU (folded)"), ("ort-reference", "onnxruntime CPU (reference)")):
            if name in ort_samplers and name in backends:
                sampler = ort_samplers[name][1]
                report(label, batch, timed(lambda: sampler.vocode(mel.numpy(), seed=0), args.repeats))
        if "eager" in backends:
            report("pytorch eager", batch, timed(eager, args.repeats), hoisted=False)
        if "hoisted" in backends:
            report("pytorch hoisted", batch, timed(hoisted, args.repeats))
        if torch.cuda.is_available():
            gpu = model.to("cuda")
            mel_gpu = mel.to("cuda")

            def cuda_run(dtype):
                with torch.no_grad(), torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
                    wavefast.vocode(gpu, mel_gpu, schedule=plan, kappa=1.0, seed=0)
                torch.cuda.synchronize()

            report("pytorch CUDA fp32", batch, timed(lambda: cuda_run(torch.float32), args.repeats))
            report("pytorch CUDA bf16", batch, timed(lambda: cuda_run(torch.bfloat16), args.repeats))
            model = gpu.to("cpu")
            if "ort" in ort_samplers:
                cuda_sampler = OnnxSampler(ort_samplers["ort"][0],
                                           providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
                report("onnxruntime CUDA IOBinding", batch, timed(lambda: cuda_sampler.vocode(mel.numpy(), seed=0),
                                                                  args.repeats))


if __name__ == "__main__":
    main()
