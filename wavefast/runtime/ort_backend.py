"""An exported full sampling graph in ONNX Runtime, behind the backend interface.

:class:`OnnxBackend` reads the spec, plan and kappa from the graph's metadata, so a
:class:`~wavefast.vocoder.Vocoder` over it draws exactly the noise the torch backend draws
(the graph takes white noise as inputs) and gives the same audio up to float rounding.
Providers: CUDA when available, then CPU. On CUDA the inputs and a preallocated output are
bound with IOBinding. :meth:`OnnxBackend.run` is the public call. A graph exported with
``--lengths`` takes a padded batch of mixed lengths in one call (``supports_lengths``); without
it the vocoder runs one call per length.

Packaging: ``onnxruntime`` (CPU) and ``onnxruntime-gpu`` both install the ``onnxruntime``
module; with both installed the CUDA provider silently disappears. :func:`runtime_conflict`
detects that and the backend warns once with what to uninstall.
"""

from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..errors import WavefastError
from ..models.spec import ModelSpec
from ..schedules.plans import SamplingPlan
from .backends import SamplingBackend, Tracks, solo_tracks, window_phase

GRAPH_FORMAT = "full"


def runtime_conflict() -> Optional[str]:
    """A one-line warning when both onnxruntime and onnxruntime-gpu are installed, else None."""
    from importlib import metadata

    have = []
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            metadata.version(dist)
            have.append(dist)
        except metadata.PackageNotFoundError:
            pass
    if len(have) == 2:
        return ("both onnxruntime and onnxruntime-gpu are installed; they share one module and the CUDA provider "
                "may be missing: pip uninstall onnxruntime (keep onnxruntime-gpu) for CUDA, or the reverse for CPU")
    return None


def import_onnxruntime():
    try:
        import onnxruntime as ort
    except ImportError:
        raise WavefastError("the onnx backend needs onnxruntime: pip install 'wavefast[onnx]' "
                            "(or 'wavefast[gpu]' for CUDA; never both)") from None
    conflict = runtime_conflict()
    if conflict:
        warnings.warn(conflict, stacklevel=3)
    return ort


def available_providers() -> list:
    ort = import_onnxruntime()
    preferred = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    have = ort.get_available_providers()
    return [p for p in preferred if p in have] or have


def read_graph_metadata(path) -> dict:
    """The wavefast metadata of an exported graph, checked; WavefastError naming the file and field."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise WavefastError(f"ONNX file not found: {path}")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise WavefastError(f"cannot read ONNX model {path}: {type(exc).__name__}") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    return meta


class OnnxBackend(SamplingBackend):
    """A full sampling graph from ``wavefast export onnx``. See the module docstring."""

    name = "onnx"

    def __init__(self, path, providers: Optional[Sequence[str]] = None, threads: Optional[int] = None):
        ort = import_onnxruntime()
        path = Path(path)
        if not path.is_file():
            raise WavefastError(f"ONNX file not found: {path}")
        options = ort.SessionOptions()
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                raise WavefastError(f"threads must be a whole number >= 1, got {threads!r}")
            options.intra_op_num_threads = int(threads)
        providers = list(providers or available_providers())
        if "CUDAExecutionProvider" not in providers:
            # The planned-pattern block is allocated and released on every run; for long audio
            # (GBs of hoisted conditioner terms) that re-faults all its pages each call.
            options.enable_mem_pattern = False
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:
            raise WavefastError(f"cannot load ONNX model {path}: {str(exc).splitlines()[0][:300]}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.path = path
        self.spec, self.plan, self.kappa, self._draws = _parse_metadata(meta, path)
        self.precision = meta.get("precision", "float32")  # "int8": per-step network in int8 (--int8)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.supports_lengths = "lengths" in self.input_names
        self.on_cuda = self.session.get_providers()[0] == "CUDAExecutionProvider"
        self.pitch_session = None
        if meta.get("pitch_graph"):
            try:
                self.pitch_session = ort.InferenceSession(base64.b64decode(meta["pitch_graph"]), options,
                                                          providers=providers)
            except Exception as exc:
                raise WavefastError(f"{path}: its embedded pitch graph does not load ({type(exc).__name__})") from None
        elif self.uses_pitch:
            raise WavefastError(f"{path}: a source-filter graph without its pitch graph (metadata 'pitch_graph')")

    @property
    def draws(self) -> int:
        return self._draws

    def analyse(self, mel: torch.Tensor, lengths=None) -> Tracks:
        if self.pitch_session is None:
            return None
        feeds = {"mel": _f32(mel)}
        if lengths is not None:
            self._check_lengths(lengths)
        if self.supports_lengths:  # a graph with the input takes it always: all items whole by default
            feeds["lengths"] = _frame_counts([mel.shape[-1]] * mel.shape[0] if lengths is None else lengths)
        f0, voicing = self.pitch_session.run(["f0", "voicing"], feeds)
        return {"f0": torch.from_numpy(f0), "voicing": torch.from_numpy(voicing)}

    def run(self, mel, x_T, noise, tracks: Tracks = None, lengths=None) -> torch.Tensor:
        """White noise (and the mel, and tracks for source-filter graphs) in, audio (B, L) out.
        ``lengths`` (B,) frames: a padded batch of mixed lengths (graphs exported with ``--lengths``)."""
        feeds = {"x_T": _f32(x_T)}
        if lengths is not None:
            self._check_lengths(lengths)
        if self.supports_lengths:
            frames = x_T.shape[-1] // self.spec.hop_length
            feeds["lengths"] = _frame_counts([frames] * x_T.shape[0] if lengths is None else lengths)
        if self.uses_pitch:  # the graph reads exactly L / hop + 1 frames: repeat the last one at an utterance's end
            need = x_T.shape[-1] // self.spec.hop_length + 1
            mel = _frames(mel, need)
            tracks = dict(tracks or {})
            for key in ("f0", "voicing"):
                if key in tracks:
                    tracks[key] = _frames(tracks[key], need)
            if lengths is not None:  # each item's own tracks (for its phase)
                tracks = solo_tracks(tracks, lengths, need)
        if self.spec.conditional:
            feeds["mel"] = _f32(mel)
        if self._draws:
            if noise is None or len(noise) != self._draws:
                raise WavefastError(f"this graph takes {self._draws} noise tensors, got "
                                    f"{0 if noise is None else len(noise)}")
            feeds["noise"] = _f32(noise)
        if self.uses_pitch:
            if not tracks:
                raise WavefastError("this graph needs F0 tracks (analyse the mel first)")
            feeds["f0"], feeds["voicing"] = _f32(tracks["f0"]), _f32(tracks["voicing"])
            feeds["phase"] = _f32(window_phase(self.spec, tracks, x_T.shape[-1]))
        return torch.from_numpy(self._run(feeds))

    def _check_lengths(self, lengths) -> None:
        if not self.supports_lengths:
            raise WavefastError(f"{self.path} runs items of equal length together (no lengths input); "
                                "re-export with --lengths for padded batches of mixed lengths")

    def _run(self, feeds: dict) -> np.ndarray:
        feeds = {k: v for k, v in feeds.items() if k in self.input_names}
        if not self.on_cuda:
            return self.session.run(["audio"], feeds)[0]
        import onnxruntime as ort

        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0))
        batch, length = feeds["x_T"].shape
        out = ort.OrtValue.ortvalue_from_shape_and_type((batch, length), np.float32, "cuda", 0)
        binding.bind_ortvalue_output("audio", out)
        self.session.run_with_iobinding(binding)
        return out.numpy()


def _frames(x: torch.Tensor, need: int) -> torch.Tensor:
    """``x`` (..., F) cut or padded (repeating its last frame) to ``need`` frames."""
    x = torch.as_tensor(x)
    if x.shape[-1] >= need:
        return x[..., :need]
    return torch.cat([x, x[..., -1:].expand(*x.shape[:-1], need - x.shape[-1])], -1)


def _frame_counts(lengths) -> np.ndarray:
    """(B,) frames as the int64 array a ``lengths`` input takes."""
    return np.ascontiguousarray(torch.as_tensor(lengths).reshape(-1).cpu().numpy(), dtype=np.int64)


def _f32(x) -> np.ndarray:
    if torch.is_tensor(x):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def _parse_metadata(meta: dict, path: Path):
    if meta.get("graph") != GRAPH_FORMAT:
        raise WavefastError(f"{path} is not a wavefast full sampling graph (metadata 'graph' is "
                            f"{meta.get('graph')!r}; export without --per-step)")
    try:
        spec = ModelSpec.from_dict(json.loads(meta["wavefast_spec"]))
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise WavefastError(f"{path}: malformed metadata 'wavefast_spec' ({type(exc).__name__}: {exc})"[:400]) from None
    try:
        data = json.loads(meta["plan"])
        info = data.get("info", {}) if isinstance(data.get("info", {}), dict) else {}
        plan = SamplingPlan(tuple(float(s) for s in data["steps"]), tuple(float(a) for a in data["alpha_bar"]),
                            str(data.get("name", "plan")), info)
        kappa = float(meta["kappa"])
        draws = int(meta["stochastic_steps"])
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise WavefastError(f"{path}: malformed metadata 'plan', 'kappa' or 'stochastic_steps' "
                            f"({type(exc).__name__}: {exc})"[:400]) from None
    if draws < 0 or draws > len(plan):
        raise WavefastError(f"{path}: metadata 'stochastic_steps' = {draws} does not fit a {len(plan)}-step plan")
    return spec, plan, kappa, draws
