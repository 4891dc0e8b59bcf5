"""Opt-in int8 of an exported vocoder graph: the per-step network's convolutions, calibrated on real mels.

``quantize_graph(fp32_graph, target, mels)`` rewrites the convolutions of the network that runs at
every step (its input convolution, the residual layers' dilated, residual and skip convolutions,
the skip and output convolutions) of a full sampling graph (``wavefast export onnx``) into ONNX
Runtime's QDQ int8 form (static quantisation: int8 weights per output channel, uint8 activations
with ranges from min / max over the calibration feeds) and keeps every other operation in fp32:
the conditioner (run once per call), the sampler's updates, and for the source-filter family the
whitening, subband and mel-projection convolutions (quantising those broke the default vocoder's
output: -38 dB against fp32). The whole per-step network, not only its residual layers: with its
input, identity and output convolutions left in fp32 the default vocoder's graph ran at 0.96x the
fp32 time, against 0.71x with them in int8 (one probe run each; ORT then leaves fewer layout
changes between int8 and fp32 kernels).

Calibration feeds are what the front door gives the fp32 graph for the first seconds of each
calibration mel (seed 0, :func:`calibration_frames`), so the activation ranges are those of real
sampling trajectories. What it costs is measured, not assumed (export/README.md "int8"): on 2
AVX512-VNNI cores the default vocoder's graph ran in 0.71-0.83x its fp32 time at 22 dB SNR against
the fp32 output, with the vocoder metrics unchanged; DiffWave BASE's graph in 0.97x; on AVX2 cores
without VNNI the default vocoder's in 0.99x. Hence opt-in. Judge it by the vocoder metrics
(``wavefast eval vocoder-table --system NAME=graph.onnx``), not by 1e-4 parity.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch

from ..errors import WavefastError
from .ort_backend import OnnxBackend

PRECISION_KEY = "precision"
# Calibration runs the graph on the first seconds of each utterance, one utterance at a time (min / max merged
# after each). ORT's calibrator keeps every quantised tensor of a run in memory (DiffWave BASE, 6 steps: ~230 kB
# per audio sample, a 4.7 s sentence in one run went past 24 GB), so the crop is also held to a memory budget.
# Crops start at the utterance's start: windows cut from mid-speech widened the ranges with their edge
# transients (default vocoder: 5-7 dB SNR vs fp32, against 17-25 dB for crops of 1-3.5 s from the start).
CALIBRATION_SECONDS = 2.0
CALIBRATION_BUDGET_BYTES = 4 * 2 ** 30


def calibration_frames(spec, convolutions: int) -> int:
    """Frames of each calibration utterance: ``CALIBRATION_SECONDS``, fewer where the calibrator's tensors
    (about 2 per quantised convolution, ``residual_channels`` x samples / bands fp32 each) would pass the budget."""
    bands = 2 ** int(getattr(spec.arch, "subband_levels", 0) or 0)
    per_sample = 4 * 2 * convolutions * spec.arch.residual_channels / bands
    samples = min(CALIBRATION_SECONDS * spec.sample_rate, CALIBRATION_BUDGET_BYTES / per_sample)
    return max(8, int(samples // spec.hop_length))


class _RecordingBackend(OnnxBackend):
    """An OnnxBackend that keeps a copy of every feed it runs (the calibration data) and its output."""

    def __init__(self, path, threads=None):
        super().__init__(path, providers=["CPUExecutionProvider"], threads=threads)
        self.recorded: List[dict] = []
        self.outputs: List[np.ndarray] = []

    def _run(self, feeds: dict) -> np.ndarray:
        self.recorded.append({k: v.copy() for k, v in feeds.items() if k in self.input_names})
        self.outputs.append(super()._run(feeds))
        return self.outputs[-1]


def calibration_feeds(backend: OnnxBackend, mels: Sequence[torch.Tensor]) -> None:
    """Run each mel (n_mels, frames) through :class:`wavefast.Vocoder` over ``backend`` (a
    :class:`_RecordingBackend`), seed 0, one window: its feeds and outputs are then recorded there."""
    from ..vocoder import Vocoder

    voc = Vocoder(backend, chunk_seconds=3600)
    for mel in mels:
        voc(torch.as_tensor(mel)[None], seeds=0)


def calibration_mels(spec, files: Sequence = ()) -> List[torch.Tensor]:
    """Calibration mels (n_mels, frames) for a model of ``spec``: each file a recording (.wav, .flac: resampled and
    through the model's own front end, as ``wavefast vocode`` reads one) or a mel (.npy, .pt); none given: the
    shipped demo sentence."""
    from ..audio.io import load_mel, read_audio
    from ..audio.mel import mel_spectrogram

    files = [Path(f) for f in files] or [Path(__file__).resolve().parent.parent / "demo_data" / "hello.wav"]
    mels = []
    for path in files:
        if path.suffix.lower() in (".npy", ".pt"):
            mels.append(load_mel(path))
        else:
            audio, _ = read_audio(path, spec.sample_rate)
            mels.append(mel_spectrogram(audio, spec.mel_frontend, spec.sample_rate, spec.n_mels, spec.hop_length))
    return mels


STACK_SCOPES = ("denoiser", "stack")  # graphs.SamplingGraph.denoiser, graphs.SourceFilterGraph.stack


def stack_convolutions(proto) -> List[str]:
    """Names of the Conv nodes of the per-step network: those under the ``denoiser`` (DiffWave) or ``stack``
    (source-filter) scope of the exported graph, one scope per step (``stack``, ``stack_1``, ...)."""
    names = []
    for node in proto.graph.node:
        scope = node.name.split("/")[1] if node.name.startswith("/") and node.name.count("/") >= 2 else ""
        if node.op_type == "Conv" and scope.rstrip("0123456789").rstrip("_") in STACK_SCOPES:
            names.append(node.name)
    return names


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """10 log10(|reference|^2 / |other - reference|^2); inf when equal."""
    error = float(((other.astype(np.float64) - reference) ** 2).sum())
    if error == 0:
        return float("inf")
    return 10.0 * float(np.log10(float((reference.astype(np.float64) ** 2).sum()) / error))


def quantize_graph(source, target, mels: Sequence[torch.Tensor], threads=None,
                   convolutions: Optional[Sequence[str]] = None) -> dict:
    """Write ``target``: the fp32 full graph ``source`` with its per-step network's convolutions in int8 (QDQ).

    ``mels``: calibration mels (n_mels, frames) in the model's front end, each cropped to its first
    :func:`calibration_frames`; ``convolutions``: Conv node names
    to quantise instead of :func:`stack_convolutions` (for measurements). Returns ``{"path",
    "convolutions", "calibration_items", "snr_db"}`` with the SNR of the int8 output against the
    fp32 graph's on the calibration feeds. ``target`` is written next to itself and renamed when done.
    """
    import onnx

    try:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    except ImportError:
        raise WavefastError("int8 export needs onnxruntime's quantisation tools: "
                            "pip install 'wavefast[onnx]'") from None
    from ..fileio import atomic_output

    source, target = Path(source), Path(target)
    recorder = _RecordingBackend(source, threads)
    spec = recorder.spec
    if not spec.conditional:
        raise WavefastError("int8 export is for vocoder graphs (its calibration runs mels through the vocoder)")
    if not mels:
        raise WavefastError("int8 export needs at least one calibration mel")
    proto = onnx.load(str(source))
    meta = {p.key: p.value for p in proto.metadata_props}
    if meta.get(PRECISION_KEY, "float32") != "float32":
        raise WavefastError(f"{source} is already {meta[PRECISION_KEY]}; quantise the fp32 graph")
    convs = list(convolutions) if convolutions is not None else stack_convolutions(proto)
    if not convs:
        raise WavefastError(f"{source}: no convolutions of the per-step network found to quantise")
    frames = calibration_frames(spec, len(convs))
    calibration_feeds(recorder, [torch.as_tensor(m)[:, :frames] for m in mels])
    feeds = recorder.recorded

    class Reader(CalibrationDataReader):
        """The feeds, one range at a time (ORT's strided calibration merges min / max after each range)."""

        def __init__(self):
            self.set_range(0, len(feeds))

        def __len__(self):
            return len(feeds)

        def set_range(self, start_index, end_index):
            self.items = iter(feeds[start_index:end_index])

        def get_next(self):
            return next(self.items, None)

    with atomic_output(target, ".onnx") as tmp:
        quantize_static(str(source), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        op_types_to_quantize=["Conv"], nodes_to_quantize=convs,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        extra_options={"CalibStridedMinMax": 1})  # ranges merged after each utterance
        quantized = onnx.load(str(tmp))
        del quantized.metadata_props[:]
        for key, value in {**meta, PRECISION_KEY: "int8"}.items():  # spec, plan and pitch graph travel with it
            entry = quantized.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(quantized, str(tmp))
        int8 = OnnxBackend(tmp, providers=["CPUExecutionProvider"], threads=threads)
        reference = np.concatenate([out.ravel() for out in recorder.outputs])
        got = np.concatenate([int8._run(f).ravel() for f in feeds])
    return {"path": str(target), "convolutions": len(convs), "calibration_items": len(feeds),
            "snr_db": snr_db(reference, got)}
