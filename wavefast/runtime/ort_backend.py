"""Run an exported full sampling graph with ONNX Runtime, seeded like the torch path.

Noise is drawn on the CPU with :class:`wavefast.samplers.PerSampleNoise` in the
same order as the torch sampler (x_T, then one draw per stochastic step), so
``OnnxSampler(path).vocode(mel, seed=s)`` equals ``wavefast.vocode(model, mel,
..., seed=s)`` up to float rounding. Providers: CUDA when available, then CPU.
On CUDA, inputs and the preallocated output are bound with IOBinding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..errors import WavefastError
from ..models.spec import ModelSpec
from ..samplers.reverse import PerSampleNoise


def available_providers() -> list:
    import onnxruntime as ort

    preferred = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    have = ort.get_available_providers()
    return [p for p in preferred if p in have] or have


class OnnxSampler:
    """A loaded full-graph export. ``vocode(mel, seed)`` / ``generate(n, seed)`` -> float32 numpy audio."""

    def __init__(self, path, providers: Optional[Sequence[str]] = None, threads: Optional[int] = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise WavefastError("the onnx backend needs onnxruntime: pip install 'wavefast[onnx]' "
                                "(or 'wavefast[gpu]' for CUDA; never both)") from None
        path = Path(path)
        if not path.is_file():
            raise WavefastError(f"ONNX file not found: {path}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        providers = list(providers or available_providers())
        if "CUDAExecutionProvider" not in providers:
            # The planned-pattern block is allocated and released on every run; for long audio
            # (GBs of hoisted conditioner terms) that re-faults all its pages each call.
            options.enable_mem_pattern = False
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:
            raise WavefastError(f"cannot load ONNX model {path}: {exc}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("graph") != "full":
            raise WavefastError(f"{path} is not a wavefast full sampling graph (export without --per-step)")
        self.spec = ModelSpec.from_dict(json.loads(meta["wavefast_spec"]))
        self.plan = json.loads(meta["plan"])
        self.kappa = float(meta["kappa"])
        self.stochastic_steps = int(meta["stochastic_steps"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.on_cuda = self.session.get_providers()[0] == "CUDAExecutionProvider"

    def _seeds(self, seed: Union[int, Sequence[int]], n: int) -> list:
        if isinstance(seed, int):
            return [seed + i for i in range(n)]
        seeds = [int(s) for s in seed]
        if len(seeds) != n:
            raise WavefastError(f"got {len(seeds)} seeds for {n} items")
        return seeds

    def _noise_inputs(self, seeds, length: int) -> dict:
        noise = PerSampleNoise(seeds)
        inputs = {"x_T": noise.randn((1, length))[:, 0].numpy()}
        if self.stochastic_steps:
            inputs["noise"] = np.stack([noise.randn((1, length))[:, 0].numpy() for _ in range(self.stochastic_steps)])
        return inputs

    def _run(self, feeds: dict) -> np.ndarray:
        feeds = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feeds.items() if k in self.input_names}
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

    def vocode(self, mel, seed: Union[int, Sequence[int]] = 0) -> np.ndarray:
        """mel (n_mels, frames) or (B, n_mels, frames) -> audio (L,) or (B, L)."""
        if not self.spec.conditional:
            raise WavefastError("this ONNX graph is unconditional; use generate()")
        mel = np.asarray(mel.detach().cpu() if torch.is_tensor(mel) else mel, dtype=np.float32)
        squeeze = mel.ndim == 2
        mel = mel[None] if squeeze else mel
        if mel.ndim != 3 or mel.shape[1] != self.spec.n_mels or mel.shape[2] == 0:
            raise WavefastError(f"mel must be (B, {self.spec.n_mels}, frames>0), got {mel.shape}")
        if not np.isfinite(mel).all():
            raise WavefastError("mel contains NaN or Inf")
        feeds = self._noise_inputs(self._seeds(seed, mel.shape[0]), mel.shape[2] * self.spec.hop_length)
        feeds["mel"] = mel
        audio = self._run(feeds)
        return audio[0] if squeeze else audio

    def generate(self, n: int, seed: Union[int, Sequence[int]] = 0) -> np.ndarray:
        if self.spec.conditional:
            raise WavefastError("this ONNX graph is a vocoder; use vocode()")
        return self._run(self._noise_inputs(self._seeds(seed, n), self.spec.segment_length))
