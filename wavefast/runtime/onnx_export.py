"""ONNX export of the whole S-step sampling graph (and of one denoiser step).

Full graph contract (all float32):

- inputs: ``mel`` (B, n_mels, frames) for a vocoder; ``x_T`` (B, L) the initial
  noise with ``L = frames * hop`` (vocoder) or ``segment_length`` (unconditional);
  ``noise`` (K, B, L), one slice per stochastic step (K = steps with sigma > 0,
  i.e. S-1 when kappa > 0, absent when kappa = 0).
- optional (``lengths=True``): ``lengths`` (B,) int64, each item's length in frames: a padded
  batch of mixed lengths in one call, each item as if alone, audio past its end 0.
- output: ``audio`` (B, L).
- dynamic axes: ``batch``, ``frames``, ``samples``.

The plan's per-step coefficients and step embeddings are constants; the mel
upsampling and per-layer conditioner projections run once per call, outside the
unrolled step loop. Given the same noise tensors the graph equals the PyTorch
sampler (:func:`wavefast.samplers.sample`).
"""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn as nn

from ..errors import WavefastError, check_choice
from ..models.diffwave import DiffWave
from ..samplers.ggdm import noise_draws, plan_kappa
from ..schedules.plans import SamplingPlan
from .folded import ROW_WIDTH
from .graphs import PitchGraph, SamplingGraph, SourceFilterGraph, StepGraph

OPSET = 17
PARITY_TOLERANCE = 1e-4
LAYOUTS = ("auto", "folded", "folded-wide", "reference")  # max |ORT - torch| relative to max |torch| (fp32)


def example_inputs(model: DiffWave, n_stochastic: int, batch: int = 2, frames: int = 8, generator=None):
    """Random inputs for the full graph, in its input order, with names."""
    spec = model.spec
    length = frames * spec.hop_length if spec.conditional else spec.segment_length
    g = generator or torch.Generator().manual_seed(0)
    names, tensors = [], []
    if spec.conditional:
        lo, hi = (-11.0, 1.0) if spec.mel_frontend == "tacotron2" else (0.0, 1.0)
        names.append("mel")
        tensors.append(lo + (hi - lo) * torch.rand(batch, spec.n_mels, frames, generator=g))
    names.append("x_T")
    tensors.append(torch.randn(batch, length, generator=g))
    if n_stochastic:
        names.append("noise")
        tensors.append(torch.randn(n_stochastic, batch, length, generator=g))
    return names, tensors


def example_lengths(batch: int, frames: int) -> torch.Tensor:
    """(batch,) int64 frames for a padded example batch: the first item full, the others shorter."""
    return torch.tensor([max(1, frames - 3 * i) for i in range(batch)], dtype=torch.int64)


def _ort_session(path, providers=None):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])


def parity_check(module: nn.Module, path, names, tensors, tolerance: float = PARITY_TOLERANCE) -> float:
    """Run ORT and torch on the same inputs; raise if they differ by more than ``tolerance`` (relative)."""
    with torch.no_grad():
        expected = module(*tensors).numpy()
    got = _ort_session(path).run(None, {n: t.numpy() for n, t in zip(names, tensors)})[0]
    scale = max(1.0, float(np.abs(expected).max()))
    error = float(np.abs(got - expected).max()) / scale
    if not np.isfinite(error) or error > tolerance:
        raise WavefastError(f"ONNX Runtime output differs from PyTorch by {error:.3g} (> {tolerance}); export rejected")
    return error



def _finish_graph_file(tmp, meta: dict, module, names, tensors, check: bool):
    """Add ``meta`` to the exported file ``tmp``, run the ONNX checker, save; the ORT-vs-torch parity error
    (or None without ``check``)."""
    import onnx

    proto = onnx.load(str(tmp))
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    return parity_check(module, tmp, names, tensors) if check else None

def export_onnx(model: DiffWave, plan: SamplingPlan, path, kappa=None, per_step: bool = False,
                check: bool = True, layout: str = "auto", lengths: bool = False, row_width: int = ROW_WIDTH) -> dict:
    """Export the full S-step graph (or one step with ``per_step``) to ``path``; returns a report dict.

    ``layout`` (full graph only): ``"folded"`` exports the constant-folded 2-D layout of
    :mod:`wavefast.runtime.folded` with time along rows of 2 samples, which ONNX Runtime runs in its
    blocked CPU kernels on all its threads; ``"folded-wide"`` the same with time along the width (its
    convolutions then run one thread per item; kept for comparison);
    ``"reference"`` exports the model's layers as they are (same outputs); ``"auto"`` picks
    folded for models with >= 64 residual channels, where it measured faster on CPU (with the
    width layout: DiffWave BASE RTF 2.7 vs 3.8), and reference below (32 channels: 1.03 vs 0.88). A source-filter
    model's residual stack (64 channels on 4 subbands for the default vocoder) is folded unless
    ``"reference"`` is asked for (the default vocoder: folded 0.78x the reference's time).

    ``lengths`` (full graph of a vocoder): add the ``lengths`` input, so a padded batch of mixed
    lengths runs in one call (each item as if alone; one mask multiply per layer per step).
    ``row_width``: samples per row of the folded layout (:mod:`wavefast.runtime.folded`; for
    measurements; ``"folded-wide"`` is 0).

    The file is written next to its target and renamed after the onnx checker and
    (with ``check``) the ORT-vs-torch parity check pass.
    """
    import onnx  # noqa: F401  (missing onnx fails here, before the export work)

    from ..fileio import atomic_output

    spec = model.spec
    check_choice("layout", layout, LAYOUTS)
    kappa = plan_kappa(plan, kappa)
    if lengths and (per_step or not spec.conditional):
        raise WavefastError("--lengths is for the full graph of a mel-conditioned model (a vocoder)")
    if getattr(spec.arch, "family", "diffwave") == "sourcefilter":
        if per_step:
            raise WavefastError("--per-step export is for DiffWave models; export the full graph")
        return _export_sourcefilter(model, plan, path, kappa, check, folded=layout != "reference", lengths=lengths,
                                    row_width=0 if layout == "folded-wide" else row_width)
    folded = layout in ("folded", "folded-wide") or (layout == "auto" and spec.arch.residual_channels >= 64)
    row_width = 0 if layout == "folded-wide" else row_width
    if row_width and not spec.conditional and spec.segment_length % row_width:
        row_width = 1  # rows of P samples need L divisible by P (a vocoder's L = frames * hop always is)
    if per_step:
        module = StepGraph(model)
        length = 8 * spec.hop_length if spec.conditional else spec.segment_length
        g = torch.Generator().manual_seed(0)
        names = ["x", "t"] + (["mel"] if spec.conditional else [])
        tensors = [torch.randn(2, 1, length, generator=g), torch.tensor([3.5, float(spec.diffusion.T - 1)])]
        if spec.conditional:
            tensors.append(example_inputs(model, 0, frames=8, generator=g)[1][0])
        dynamic = {"x": {0: "batch", 2: "samples"}, "t": {0: "batch"}, "eps": {0: "batch", 2: "samples"}}
        if spec.conditional:
            dynamic["mel"] = {0: "batch", 2: "frames"}
        outputs = ["eps"]
    else:
        module = SamplingGraph(model, plan, kappa, folded, lengths=lengths, row_width=row_width)
        names, tensors = example_inputs(model, len(module.stochastic))
        dynamic = {"x_T": {0: "batch", 1: "samples"}, "audio": {0: "batch", 1: "samples"}}
        if spec.conditional:
            dynamic["mel"] = {0: "batch", 2: "frames"}
        if module.stochastic:
            dynamic["noise"] = {1: "batch", 2: "samples"}
        if lengths:
            names.append("lengths")
            tensors.append(example_lengths(tensors[0].shape[0], tensors[0].shape[-1]))
            dynamic["lengths"] = {0: "batch"}
        outputs = ["audio"]
    meta = {"wavefast_spec": spec.to_json(), "graph": "step" if per_step else "full",
            "plan": json.dumps(plan.to_dict()),
            "kappa": str(kappa), "stochastic_steps": str(0 if per_step else noise_draws(plan, kappa)),
            "layout": "step" if per_step else (("folded" if row_width else "folded-wide") if folded else "reference")}
    with atomic_output(path, ".onnx") as tmp:
        with torch.no_grad():
            torch.onnx.export(module, tuple(tensors), str(tmp), input_names=names, output_names=outputs,
                              dynamic_axes=dynamic, opset_version=OPSET, dynamo=False, do_constant_folding=True)
        error = _finish_graph_file(tmp, meta, module, names, tensors, check)
    return {"path": str(path), "inputs": names, "outputs": outputs, "parity_error": error, "opset": OPSET, **meta}


def sourcefilter_example_inputs(model, n_stochastic: int, batch: int = 2, frames: int = 8, generator=None):
    """Random inputs for :class:`SourceFilterGraph`, in its input order, with names."""
    from ..audio.pitch import phase_track

    spec = model.spec
    g = generator or torch.Generator().manual_seed(0)
    length = frames * spec.hop_length
    mel = -9.0 + 8.0 * torch.rand(batch, spec.n_mels, frames + 1, generator=g)
    f0 = 90.0 + 200.0 * torch.rand(batch, frames + 1, generator=g)
    voicing = torch.rand(batch, frames + 1, generator=g)
    names = ["mel", "f0", "voicing", "phase", "x_T"]
    tensors = [mel, f0, voicing, phase_track(f0, length, spec.hop_length, spec.sample_rate),
               torch.randn(batch, length, generator=g)]
    if n_stochastic:
        names.append("noise")
        tensors.append(torch.randn(n_stochastic, batch, length, generator=g))
    return names, tensors


def _export_onnx_module(module, names, tensors, outputs, dynamic, tmp) -> None:
    with torch.no_grad():
        torch.onnx.export(module, tuple(tensors), str(tmp), input_names=names, output_names=outputs,
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False, do_constant_folding=True)


def _export_sourcefilter(model, plan: SamplingPlan, path, kappa: float, check: bool, folded: bool = True,
                         lengths: bool = False, row_width: int = ROW_WIDTH) -> dict:
    """The source-filter graph, with its F0 predictor embedded (base64) in the metadata as ``pitch_graph``;
    ``folded``: its residual stack in the folded 2-D layout (the default: measured faster, see export/README.md);
    ``lengths``: both graphs take a ``lengths`` input (B,) int64 frames (a padded batch of mixed lengths)."""
    import base64
    import io

    import onnx  # noqa: F401  (missing onnx fails here, before the export work)

    from ..fileio import atomic_output

    spec = model.spec
    module = SourceFilterGraph(model, plan, kappa, folded=folded, lengths=lengths, row_width=row_width)
    names, tensors = sourcefilter_example_inputs(model, len(module.stochastic))
    frames = {0: "batch", 1: "frames"}
    dynamic = {"mel": {0: "batch", 2: "frames"}, "f0": frames, "voicing": frames, "phase": {0: "batch", 1: "samples"},
               "x_T": {0: "batch", 1: "samples"}, "audio": {0: "batch", 1: "samples"}}
    if module.stochastic:
        dynamic["noise"] = {1: "batch", 2: "samples"}
    pitch = PitchGraph(model, lengths=lengths)
    pitch_names, pitch_inputs = ["mel"], [tensors[0]]
    pitch_dynamic = {"mel": {0: "batch", 2: "frames"}, "f0": frames, "voicing": frames}
    if lengths:
        item_lengths = example_lengths(tensors[0].shape[0], tensors[-1].shape[-1] // spec.hop_length)
        names.append("lengths")
        tensors.append(item_lengths)
        dynamic["lengths"] = {0: "batch"}
        # the pitch graph sees whole utterances: each item's frames plus the one after (as the vocoder gives)
        pitch_names.append("lengths")
        pitch_inputs.append(item_lengths + 1)
        pitch_dynamic["lengths"] = {0: "batch"}
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(pitch, tuple(pitch_inputs), buffer, input_names=pitch_names, output_names=["f0", "voicing"],
                          dynamic_axes=pitch_dynamic, opset_version=OPSET, dynamo=False, do_constant_folding=True)
    pitch_bytes = buffer.getvalue()
    meta = {"wavefast_spec": spec.to_json(), "graph": "full", "plan": json.dumps(plan.to_dict()), "kappa": str(kappa),
            "stochastic_steps": str(noise_draws(plan, kappa)),
            "layout": ("sourcefilter-folded" + ("" if row_width else "-wide")) if folded else "sourcefilter",
            "pitch_graph": base64.b64encode(pitch_bytes).decode("ascii")}
    with atomic_output(path, ".onnx") as tmp:
        _export_onnx_module(module, names, tensors, ["audio"], dynamic, tmp)
        error = _finish_graph_file(tmp, meta, module, names, tensors, check)
        if check:
            pitch_error = _pitch_parity(pitch, pitch_bytes, pitch_names, pitch_inputs)
            error = max(error, pitch_error)
    meta.pop("pitch_graph")
    return {"path": str(path), "inputs": names, "outputs": ["audio"], "parity_error": error, "opset": OPSET,
            "pitch_graph_bytes": len(pitch_bytes), **meta}


def _pitch_parity(module, graph_bytes: bytes, names, inputs, tolerance: float = PARITY_TOLERANCE) -> float:
    import onnxruntime as ort

    with torch.no_grad():
        f0, voicing = module(*inputs)
    got_f0, got_v = ort.InferenceSession(graph_bytes, providers=["CPUExecutionProvider"]).run(
        None, {n: t.numpy() for n, t in zip(names, inputs)})
    error = max(float(np.abs(got_f0 - f0.numpy()).max() / max(1.0, float(f0.abs().max()))),
                float(np.abs(got_v - voicing.numpy()).max()))
    if not np.isfinite(error) or error > tolerance:
        raise WavefastError(f"the exported pitch graph differs from PyTorch by {error:.3g} (> {tolerance}); "
                            "export rejected")
    return error
