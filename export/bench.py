"""Speed of the S-step vocoder through its one front door (``wavefast.Vocoder``), backends side by side.

For each batch size it vocodes ``batch`` utterances -- all ``--seconds`` long, or with ``--mixed``
of different lengths as a TTS batch has them (each 4% shorter than the one before) -- and prints
wall time, real-time factor (wall seconds per second of audio), throughput (item-seconds of audio
per wall second), FLOPs per output sample per step (counted by ``torch.utils.flop_counter`` on
one call, conditioner included), the fraction of the machine's peak reached, and the process's
peak memory so far. Figures only; nothing asserts a time. On a shared machine the ratios between
rows of one run hold better than the absolute times.

    python export/bench.py                           # the shipped default vocoder, S=6, 10 s, batch 1 and 8
    python export/bench.py --mixed --batches 1,4,8 --seconds 4   # serving throughput, mixed lengths
    python export/bench.py --arch base               # DiffWave BASE size (64 x 30), random weights
    python export/bench.py --backends torch,ort,ort-reference

``--workers N`` adds a row for the ort graph with each utterance cut into N chunks (exact context) run on N
threads of one intra-op thread each.

Backends: ``torch`` (PyTorch, conditioner hoisted out of the step loop; mixed lengths run as one
padded batch with every layer masked past each item's end), ``torch-bf16`` (the same in bfloat16:
fast where the CPU has AVX512-BF16; judge it by the audio metrics, not 1e-4), ``eager`` (PyTorch, the network
called as is at every step; DiffWave only), ``ort`` (the exported graph in the folded layout ONNX
Runtime runs in its blocked kernels: time along rows of 2 samples), ``ort-rows1`` (rows of one
sample), ``ort-wide`` (time along the width: one thread per item's convolution), ``ort-reference`` (the model's layers exported as they are),
``ort-int8`` (the ort graph with its residual convolutions in int8, as ``wavefast export onnx --int8`` writes
it, calibrated on the demo sentence; needs ``ort`` in the list; pays with AVX512-VNNI),
``ort-lengths`` (the ort graph exported with its ``lengths`` input: a mixed batch as one padded call;
the other graphs run a mixed batch as one call per length). With a CUDA device it also times
PyTorch CUDA (fp32, bf16) and ONNX Runtime's CUDA provider.

``--chunk-seconds`` (default 3600: each item one window, the graph's own cost) sets the front door's
chunk length; ``--chunk-seconds 4`` (``wavefast.Vocoder``'s default) measures what a user's call
costs, memory included: long items then run one at a time in chunks with exact context.
"""

from __future__ import annotations

import argparse
import copy
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import wavefast
from wavefast.models.default_models import load_default
from wavefast.models.diffwave import DiffWave
from wavefast.models.presets import PRESETS
from wavefast.models.spec import DiffWaveConfig
from wavefast.runtime.backends import TorchBackend
from wavefast.samplers import PerSampleNoise, sample

BACKENDS = ("torch", "torch-bf16", "eager", "ort", "ort-rows1", "ort-wide", "ort-reference", "ort-lengths", "ort-int8")


def measured_sgemm_gflops(size: int = 2048, repeats: int = 10) -> float:
    """fp32 GFLOP/s of a size^3 torch matmul on the current threads: a practical peak."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(2):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e9


def flops_per_sample_per_step(voc: wavefast.Vocoder, steps: int, frames: int = 86) -> float:
    """FLOPs of one ``frames``-frame vocode, divided by its samples and steps (conditioner amortised)."""
    from torch.utils.flop_counter import FlopCounterMode

    mel = -6 + 2 * torch.randn(1, voc.n_mels, frames, generator=torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        voc(mel)
    return counter.get_total_flops() / (frames * voc.hop_length * steps)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory_gb() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def batch_lengths(batch: int, frames: int, mixed: bool) -> list:
    """Frame lengths of one batch: all ``frames``, or each item 4% shorter than the one before."""
    return [max(1, int(round(frames * (1 - 0.04 * i)))) if mixed else frames for i in range(batch)]


def build_model(arch: str):
    if arch == "default":
        return load_default("vocoder")
    torch.manual_seed(0)
    base = PRESETS["philsyn-lj-base"].replace(arch=DiffWaveConfig(64, 64, 30, 10, n_mels=80), name="base-64x30")
    model = DiffWave(base).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="default", choices=["default", "base"])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the longest item")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--mixed", action="store_true", help="items of different lengths (4%% shorter each)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--peak-gflops", type=float, default=200.0, help="fp32 peak of this machine")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--backends", default="torch,ort", help=f"comma-separated subset of {','.join(BACKENDS)}")
    parser.add_argument("--chunk-seconds", type=float, default=3600.0,
                        help="wavefast.Vocoder(chunk_seconds=...); default: every item one window")
    parser.add_argument("--workers", type=int, default=1,
                        help="also time the ort graph with each utterance's chunks on this many threads, one "
                             "intra-op thread each (wavefast.Vocoder(workers=N))")
    args = parser.parse_args()
    backends = args.backends.split(",")
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        sys.exit(f"bench.py: unknown backend(s) {', '.join(unknown)}; allowed: {', '.join(BACKENDS)}")
    if "ort-int8" in backends and "ort" not in backends:
        sys.exit("bench.py: ort-int8 quantises the ort graph: list ort too (--backends ort,ort-int8)")
    if args.threads:
        torch.set_num_threads(args.threads)

    model = build_model(args.arch)
    spec = model.spec
    plan = wavefast.resolve_plan(model, "var-quadratic", steps=args.steps)
    frames = int(args.seconds * spec.sample_rate / spec.hop_length)
    chunk = args.chunk_seconds
    torch_voc = wavefast.Vocoder(TorchBackend(model, plan, 1.0), chunk_seconds=chunk)
    per_step = flops_per_sample_per_step(torch_voc, args.steps)
    longest = frames * spec.hop_length / spec.sample_rate
    print(f"model {spec.name}: {type(model).__name__}, S={args.steps}, longest item {longest:.2f} s"
          f"{' (mixed lengths)' if args.mixed else ''}, torch threads {torch.get_num_threads()}, "
          f"chunks of {chunk:g} s")
    print(f"FLOPs per output sample per step: {per_step / 1e6:.2f} M; peak assumed {args.peak_gflops:.0f} GFLOP/s "
          f"(torch fp32 2048^3 matmul here: {measured_sgemm_gflops():.0f} GFLOP/s)")
    print(f"{'backend':<34} {'batch':>5} {'wall s':>8} {'RTF':>7} {'item-s/s':>9} {'GFLOP/s':>8} {'% peak':>7} "
          f"{'peak GB':>8}")

    vocoders = {"torch": ("pytorch (hoisted)", torch_voc)}
    if "torch-bf16" in backends:
        vocoders["torch-bf16"] = ("pytorch bf16 (hoisted)", wavefast.Vocoder(
            TorchBackend(copy.deepcopy(model).to(torch.bfloat16), plan, 1.0), chunk_seconds=chunk))
    if any(b.startswith("ort") for b in backends) or torch.cuda.is_available():
        try:
            from wavefast.runtime.onnx_export import export_onnx
            from wavefast.runtime.ort_backend import OnnxBackend

            graphs = (("ort", "folded", False, 2), ("ort-rows1", "folded", False, 1), ("ort-wide", "folded-wide", False, 0),
                      ("ort-reference", "reference", False, 0), ("ort-lengths", "folded", True, 2))
            for name, layout, lengths_input, row_width in graphs:
                if name in backends:
                    path = Path(tempfile.mkdtemp()) / f"{name}.onnx"
                    export_onnx(model, plan, path, kappa=1.0, layout=layout, lengths=lengths_input, row_width=row_width)
                    label = f"onnxruntime CPU ({layout}{', rows of 1' if row_width == 1 else ''}" \
                            f"{', lengths' if lengths_input else ''})"
                    vocoders[name] = (label, wavefast.Vocoder(
                        OnnxBackend(path, providers=["CPUExecutionProvider"], threads=args.threads),
                        chunk_seconds=chunk))
                    if name == "ort" and "ort-int8" in backends:
                        from wavefast.runtime.quantize import calibration_mels, quantize_graph

                        int8 = path.with_name("ort-int8.onnx")
                        quantize_graph(path, int8, calibration_mels(spec), args.threads)  # what --int8 writes
                        vocoders["ort-int8"] = ("onnxruntime CPU (folded, int8)", wavefast.Vocoder(
                            OnnxBackend(int8, providers=["CPUExecutionProvider"], threads=args.threads),
                            chunk_seconds=chunk))
                    if name == "ort" and args.workers > 1:
                        vocoders["ort-workers"] = (f"ort, {args.workers} chunks x 1 thread", wavefast.Vocoder(
                            OnnxBackend(path, providers=["CPUExecutionProvider"], threads=1),
                            chunk_seconds=chunk, workers=args.workers))
        except ImportError:
            print("onnxruntime not installed: skipping the ORT rows")

    def report(label: str, lengths: list, wall: float) -> None:
        samples = sum(lengths) * spec.hop_length
        audio_s = samples / spec.sample_rate
        rate = per_step * args.steps * samples / wall / 1e9
        print(f"{label:<34} {len(lengths):>5} {wall:>8.2f} {wall / audio_s:>7.3f} {audio_s / wall:>9.2f} "
              f"{rate:>8.1f} {100 * rate / args.peak_gflops:>6.1f}% {peak_memory_gb():>8.1f}", flush=True)

    for batch in [int(b) for b in args.batches.split(",")]:
        lengths = batch_lengths(batch, frames, args.mixed)
        mel = -6 + 2 * torch.randn(batch, spec.n_mels, frames, generator=torch.Generator().manual_seed(0))
        # ORT first: the PyTorch rows leave GBs of freed pages behind that slow a later large run.
        for name in sorted(vocoders, key=lambda n: not n.startswith("ort")):
            if name in backends or name == "ort-workers":
                label, voc = vocoders[name]
                with torch.no_grad():
                    report(label, lengths, timed(lambda: voc(mel, lengths=lengths, seeds=0), args.repeats))
        if "eager" in backends and isinstance(model, DiffWave):
            def eager():
                with torch.no_grad():
                    for i, n in enumerate(lengths):  # the network as is, at every step: one item at a time
                        noise = PerSampleNoise([i])
                        sample(lambda x, t: model(x, t, mel[i:i + 1, :, :n]), noise.randn((1, n * spec.hop_length)),
                               plan, kappa=1.0, noise=noise)
            report("pytorch eager", lengths, timed(eager, args.repeats))
        if torch.cuda.is_available():
            for dtype in (torch.float32, torch.bfloat16):
                gpu = wavefast.Vocoder(TorchBackend(model.to("cuda", dtype), plan, 1.0), chunk_seconds=chunk)

                def cuda_run():
                    with torch.no_grad():
                        gpu(mel.to("cuda"), lengths=lengths, seeds=0)
                    torch.cuda.synchronize()
                report(f"pytorch CUDA {str(dtype)[6:]}", lengths, timed(cuda_run, args.repeats))
            model = model.to("cpu", torch.float32)
            for name in ("ort", "ort-lengths"):
                if name in vocoders:
                    cuda_voc = wavefast.Vocoder(OnnxBackend(vocoders[name][1].backend.path, providers=[
                        "CUDAExecutionProvider", "CPUExecutionProvider"]), chunk_seconds=chunk)
                    report(f"onnxruntime CUDA{' (lengths)' if name == 'ort-lengths' else ''}", lengths,
                           timed(lambda: cuda_voc(mel, lengths=lengths, seeds=0), args.repeats))


if __name__ == "__main__":
    main()
