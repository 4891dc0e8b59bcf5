"""Does int8 pay for the default vocoder's ONNX graph on this CPU? Measured, not assumed.

    python export/int8_probe.py --out runs/int8 [--threads 1] [--data ../shared/data]

Exports the shipped vocoder's full S-step graph (fp32, folded layout, its default plan), then
quantises it with ONNX Runtime's static quantisation (QDQ format, int8 per-channel weights, uint8
activations calibrated by min/max on real feeds; :mod:`wavefast.runtime.quantize`) in two variants:

- ``int8-stack``: only the residual layers' convolutions (the network's bulk; the whitening,
  subband and mel-projection convolutions stay fp32): what ``wavefast export onnx --int8`` writes;
- ``int8-all``: every convolution.

Calibration feeds are the graph's own inputs for training-split utterances (LJ001-0001..0004 from
``--data`` when given, else the shipped demo sentence); the timed utterance is LJ001-0005 (or the
demo sentence). For each graph it prints the wall time and RTF (median of ``--repeats``; every
graph in the same run, so the ratios hold on a shared machine) and the output's SNR against the
fp32 graph's output for the same noise. Figures only; nothing asserts a time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import onnx
import torch

import wavefast
from wavefast.models.default_models import load_default
from wavefast.runtime.onnx_export import export_onnx
from wavefast.runtime.ort_backend import OnnxBackend
from wavefast.runtime.quantize import quantize_graph, snr_db


def utterances(data) -> tuple:
    """(calibration audios [(audio, sr)], timed (audio, sr)): training-split LJSpeech clips, or the demo."""
    from wavefast.audio.io import read_audio

    if data is not None:
        wavs = Path(data) / "ljspeech" / "wavs"
        calib = [read_audio(wavs / f"LJ001-000{i}.wav") for i in range(1, 5)]
        return calib, read_audio(wavs / "LJ001-0005.wav")
    demo = read_audio(Path(wavefast.__file__).parent / "demo_data" / "hello.wav")
    return [demo], demo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the graphs")
    parser.add_argument("--data", help="the shared data folder (ljspeech/wavs); default: the demo sentence")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_default("vocoder")
    voc = wavefast.Vocoder.from_pretrained()
    fp32 = out / "fp32.onnx"
    export_onnx(model, voc.plan, fp32, kappa=voc.kappa)
    calib, timed = utterances(args.data)
    mels = [voc.mel(torch.as_tensor(a), sr) for a, sr in calib]
    graphs = {"fp32": fp32, "int8-stack": out / "int8-stack.onnx", "int8-all": out / "int8-all.onnx"}
    every_conv = [n.name for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv"]
    for name, convs in (("int8-stack", None), ("int8-all", every_conv)):  # int8-stack: what --int8 writes
        report = quantize_graph(fp32, graphs[name], mels, args.threads, convolutions=convs)
        print(f"{name}.onnx: {report['convolutions']} convolutions quantised", flush=True)
    mel = voc.mel(torch.as_tensor(timed[0]), timed[1])[None]
    seconds = mel.shape[-1] * voc.hop_length / voc.sample_rate
    print(f"timed utterance {seconds:.2f} s, plan {voc.plan.name}, {args.threads} thread(s)")
    print(f"{'graph':<12} {'wall s':>8} {'RTF':>7} {'x fp32 time':>12} {'SNR vs fp32 dB':>15}")
    reference, base_wall = None, None
    for name, path in graphs.items():
        v = wavefast.Vocoder(OnnxBackend(path, providers=["CPUExecutionProvider"], threads=args.threads),
                             chunk_seconds=3600)
        audio = v(mel, seeds=0)[0]  # warm-up, and the output compared
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            v(mel, seeds=0)
            times.append(time.perf_counter() - start)
        wall = statistics.median(times)
        if reference is None:
            reference, base_wall = audio, wall
        snr = snr_db(reference.numpy(), audio.numpy())
        print(f"{name:<12} {wall:>8.2f} {wall / seconds:>7.3f} {wall / base_wall:>12.2f} {snr:>15.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
