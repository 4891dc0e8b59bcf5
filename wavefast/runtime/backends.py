"""Sampling backends behind one small interface (after torchaudio's ``_tts/interface.py``).

A backend fixes a model, a plan and kappa and turns *given* white noise into audio; it never
draws noise itself (the :class:`~wavefast.vocoder.Vocoder` does, by position), so every
backend gives the same audio for the same noise::

    backend.run(mel (B, n_mels, F') or None, x_T (B, L), noise (K, B, L) or None, tracks) -> (B, L)

``K = backend.draws`` (the plan's stochastic steps). ``tracks`` are frame-rate side inputs of
source-filter models (``{"f0", "voicing"}`` (B, F') and ``"phase0"`` (B,)), from
``backend.analyse(mel)`` over the whole utterance, so a window sees the whole utterance's F0
and harmonic phase. ``F' = L / hop`` or one frame more (the next frame, when the window has
one: the model interpolates between frame centres and holds the last frame otherwise).

- :class:`TorchBackend`: a loaded model through :func:`wavefast.samplers.run_plan`.
- :class:`wavefast.runtime.ort_backend.OnnxBackend`: an exported full sampling graph in ONNX Runtime.
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import torch

from ..audio.pitch import phase_track
from ..errors import WavefastError
from ..samplers.ggdm import noise_draws, plan_kappa, run_plan
from ..samplers.noise import ShapedNoise, TensorNoise
from ..schedules.plans import SamplingPlan

Tracks = Optional[Dict[str, torch.Tensor]]


class SamplingBackend:
    """The interface (see the module docstring). Subclasses set ``spec``, ``plan``, ``kappa``."""

    spec = None
    plan: SamplingPlan = None
    kappa: float = 1.0
    name = "backend"

    @property
    def draws(self) -> int:
        return noise_draws(self.plan, self.kappa)

    @property
    def uses_pitch(self) -> bool:
        return bool(getattr(self.spec.arch, "uses_pitch", False))

    def receptive_field(self) -> int:
        """Samples either side of an output sample that one network call reads, plus one."""
        return int(self.spec.arch.receptive_field())

    def frame_context(self) -> int:
        """Frames either side that frame-rate sub-networks read (0 for plain DiffWave)."""
        return int(getattr(self.spec.arch, "frame_receptive_field", lambda: 0)())

    def context_frames(self) -> int:
        """Frames of context either side for a window to equal the whole utterance (see Vocoder)."""
        chain = len(self.plan) * (self.receptive_field() - 1) // 2
        return math.ceil(chain / self.spec.hop_length) + self.frame_context() + 2

    #: whether ``run`` takes ``lengths`` (a padded batch of mixed lengths in one pass)
    supports_lengths = False

    def analyse(self, mel: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> Tracks:
        """Frame-rate side inputs for whole utterances (B, n_mels, F) -> tracks, or None."""
        return None

    def run(self, mel: Optional[torch.Tensor], x_T: torch.Tensor, noise: Optional[torch.Tensor],
            tracks: Tracks = None, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        raise NotImplementedError


def solo_tracks(tracks: Tracks, lengths, need: int) -> Tracks:
    """Each item's ``f0`` / ``voicing`` (B, need) as it alone would have them (its last frame held past its
    end), for a padded batch of mixed ``lengths`` (B,) frames; other entries unchanged."""
    from ..models.sourcefilter import solo_frames

    lengths = torch.as_tensor(lengths).long()
    return dict(tracks, **{k: solo_frames(tracks[k], lengths, need) for k in ("f0", "voicing") if k in tracks})


def window_phase(spec, tracks: Tracks, length: int) -> Optional[torch.Tensor]:
    """The harmonic phase (B, L) of a window from its tracks (``f0`` and ``phase0``)."""
    if not tracks:
        return None
    phase0 = tracks.get("phase0")
    return phase_track(tracks["f0"], length, spec.hop_length, spec.sample_rate, phase0)


class TorchBackend(SamplingBackend):
    """A PyTorch model (DiffWave or source-filter DiffWave) on its own device and dtype."""

    name = "torch"
    supports_lengths = True

    def __init__(self, model, plan: SamplingPlan, kappa: Optional[float] = None, clamp: Optional[float] = None):
        self.model = model.eval()
        self.spec = model.spec
        self.plan = plan
        self.kappa = plan_kappa(plan, kappa)
        self.clamp = clamp
        first = next(model.parameters(), None)
        self.device = first.device if first is not None else torch.device("cpu")
        self.dtype = first.dtype if first is not None else torch.float32

    @torch.no_grad()
    def analyse(self, mel: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> Tracks:
        if not self.uses_pitch:
            return None
        f0, voicing = self.model.predict_pitch(mel.to(self.device, self.dtype), lengths)
        return {"f0": f0.float().cpu(), "voicing": voicing.float().cpu()}

    @torch.no_grad()
    def run(self, mel, x_T, noise, tracks: Tracks = None, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        model, device, dtype = self.model, self.device, self.dtype
        length = x_T.shape[-1]
        if mel is not None:
            mel = mel.to(device, dtype)
        if self.uses_pitch:
            if not tracks:
                raise WavefastError("this model needs F0 tracks (analyse the mel first)")
            if lengths is not None:
                tracks = solo_tracks(tracks, lengths, length // self.spec.hop_length + 1)
            phase = window_phase(self.spec, tracks, length).to(device)
            context = model.prepare(mel, length, f0=tracks["f0"].to(device, dtype),
                                    voicing=tracks["voicing"].to(device, dtype), phase=phase, lengths=lengths)
        elif lengths is not None and mel is not None:
            context = model.prepare(mel, length, lengths=lengths)
        else:
            context = model.prepare(mel, length)
        shape = lambda z: model.shape_noise(z, context)  # noqa: E731
        x = shape(x_T[:, None].to(device, dtype))
        draws = None
        if noise is not None and len(noise):
            draws = ShapedNoise(TensorNoise([n[:, None].to(device, dtype) for n in noise]), shape)
        out = run_plan(lambda y, t: model.denoise(y, t, context), x, self.plan, kappa=self.kappa, noise=draws,
                       clamp=self.clamp)
        return model.finish(out, context)[:, 0].float().cpu()
