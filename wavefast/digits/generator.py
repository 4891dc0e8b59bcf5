"""Two-stage unconditional audio: a mel DDPM, then a mel vocoder, both sampled by the one sampler.

Stage 1 (``mel_model``): an image DDPM whose spec carries a
:class:`~wavefast.images.mel_image.MelImageLayout`; it is sampled with
:func:`wavefast.images.generate.generate_images` (any plan: FastDPM VAR/STEP with kappa,
DDIM, learned, solver), giving log-mels (n, n_mels, frames).
Stage 2 (``vocoder``): the mel vocoder through the :class:`~wavefast.vocoder.Vocoder` front
door with its own plan (default: the vocoder's default, 6 steps), giving ``frames * hop``
samples at the vocoder's rate; these are resampled to ``sample_rate`` (16 kHz, the SC09
format) and cut to ``segment_length`` (one second).

Seeds: item ``i`` with seed ``s`` draws its mel noise from ``s`` and its waveform noise from
``s ^ VOCODER_SEED_XOR`` (both by position), so a sample is the same in any batch or shard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..errors import WavefastError
from ..images.mel_image import mel_layout_of
from ..samplers.noise import SeedArg, item_seeds

VOCODER_SEED_XOR = 0x2545F4914F6CDD1D  # < 2**63: keeps a seed a valid seed
DEFAULT_MEL_STEPS = 20  # the mel stage's S for rule plans when none is asked (an image model needs more than 6)
DEFAULT_MEL_KAPPA = 0.0  # DDIM-rev: better than DDPM-rev on the shipped mel stage (FID 6.1 vs 8.8, var-quadratic S=20)


@dataclass(frozen=True)
class TwoStageSpec:
    """What callers of an unconditional generator read: rate, clip length, name; ``diffusion`` is stage 1's."""

    name: str
    sample_rate: int
    segment_length: int
    diffusion: object
    conditional: bool = False

    def to_json(self) -> str:
        import json

        return json.dumps({"kind": "two-stage", "name": self.name, "sample_rate": self.sample_rate,
                           "segment_length": self.segment_length}, sort_keys=True)


class TwoStageGenerator:
    """``mel_model`` (image DDPM with a mel layout) + ``vocoder`` (mel-conditioned audio model)."""

    def __init__(self, mel_model, vocoder, *, sample_rate: int = 16000, segment_seconds: float = 1.0,
                 name: Optional[str] = None):
        layout = mel_layout_of(getattr(mel_model, "spec", None))
        if layout is None:
            raise WavefastError("the mel stage must be an image model whose spec carries a mel layout "
                                "(ImageModelSpec.extra['mel_image'])")
        vspec = vocoder.spec
        if not vspec.conditional:
            raise WavefastError("the second stage must be a mel-conditioned vocoder")
        wanted = (layout.n_mels, layout.sample_rate, layout.hop_length, layout.frontend)
        found = (vspec.n_mels, vspec.sample_rate, vspec.hop_length, vspec.mel_frontend)
        if wanted != found:
            raise WavefastError(f"the mel stage makes (n_mels, rate, hop, front end) {wanted} mels but the vocoder "
                                f"expects {found}")
        self.mel_model, self.vocoder, self.layout = mel_model, vocoder, layout
        length = int(round(segment_seconds * sample_rate))
        if length > int(layout.samples * sample_rate / layout.sample_rate):
            raise WavefastError(f"{segment_seconds} s is longer than the {layout.frames} mel frames cover")
        self.spec = TwoStageSpec(name or f"{mel_model.spec.name}+{vspec.name}", int(sample_rate), length,
                                 mel_model.spec.diffusion)

    def to(self, *args, **kwargs) -> "TwoStageGenerator":
        """Move / cast both stages (``torch.nn.Module.to`` arguments)."""
        self.mel_model.to(*args, **kwargs)
        self.vocoder.to(*args, **kwargs)
        return self

    def state_dict(self) -> dict:
        """Both stages' tensors (``mel.*``, ``vocoder.*``): what identifies this generator's output."""
        return {**{f"mel.{k}": v for k, v in self.mel_model.state_dict().items()},
                **{f"vocoder.{k}": v for k, v in self.vocoder.state_dict().items()}}

    def parameters(self):
        yield from self.mel_model.parameters()

    def mel_plan(self, plan=None, steps: Optional[int] = None, kappa: Optional[float] = None,
                 method: str = "lgamma", clip_range: bool = False, force: bool = False):
        """The mel stage's :class:`SamplingPlan` (:func:`wavefast.schedules.resolve_plan` on ``mel_model``;
        a rule plan, the default var-quadratic included, gets S = ``DEFAULT_MEL_STEPS`` when ``steps`` is None)."""
        from ..schedules.plans import RULE_PLANS, SamplingPlan
        from ..schedules.resolve import resolve_plan

        if steps is None and not isinstance(plan, SamplingPlan) and (plan is None or str(plan) in RULE_PLANS):
            steps = DEFAULT_MEL_STEPS
        return resolve_plan(self.mel_model, plan, steps, method, clip_range, force, kappa=kappa)

    @staticmethod
    def mel_kappa(plan, kappa: Optional[float] = None) -> float:
        """The mel stage's kappa: the asked one, a learned plan's own, else ``DEFAULT_MEL_KAPPA`` (DDIM-rev)."""
        from ..samplers.ggdm import is_learned, plan_kappa

        if kappa is None and not is_learned(plan):
            kappa = DEFAULT_MEL_KAPPA
        return plan_kappa(plan, kappa)

    @torch.no_grad()
    def mels(self, n: int, plan=None, steps: Optional[int] = None, kappa: Optional[float] = None,
             seed: SeedArg = 0, batch_size: int = 64) -> torch.Tensor:
        """Stage 1 only: log-mels (n, n_mels, frames) float32 (kappa: :meth:`mel_kappa`)."""
        from ..images.generate import generate_images

        plan = self.mel_plan(plan, steps, kappa)
        images = generate_images(self.mel_model, n, schedule=plan, kappa=self.mel_kappa(plan, kappa), seed=seed,
                                 batch_size=batch_size)
        return self.layout.to_mel(images)

    @torch.no_grad()
    def vocode(self, mels: torch.Tensor, seeds, vocoder_plan=None, vocoder_steps: Optional[int] = None,
               vocoder_kappa: Optional[float] = None, batch_size: int = 16) -> torch.Tensor:
        """Stage 2: log-mels (n, n_mels, frames) and the items' seeds -> (n, segment_length) at ``sample_rate``
        (``batch_size`` mels per vocoder pass bounds the memory: about 40 MB per mel for a 64-channel vocoder)."""
        from ..audio.io import resample
        from ..runtime.backends import TorchBackend
        from ..schedules.resolve import resolve_plan
        from ..vocoder import Vocoder

        plan = resolve_plan(self.vocoder, vocoder_plan, vocoder_steps, kappa=vocoder_kappa)
        voc = Vocoder(TorchBackend(self.vocoder, plan, vocoder_kappa))
        seeds = [int(s) ^ VOCODER_SEED_XOR for s in seeds]
        if len(seeds) != len(mels):
            raise WavefastError(f"{len(mels)} mels but {len(seeds)} seeds")
        out = np.zeros((len(mels), self.spec.segment_length), np.float32)
        for start in range(0, len(mels), batch_size):
            audio, _ = voc(mels[start:start + batch_size], seeds=seeds[start:start + batch_size])
            for i, a in enumerate(audio.numpy(), start):
                y = resample(a, self.layout.sample_rate, self.spec.sample_rate)[: self.spec.segment_length]
                out[i, : len(y)] = y
        return torch.from_numpy(out)

    def generate(self, n: int, plan=None, steps: Optional[int] = None, kappa: Optional[float] = None,
                 seed: SeedArg = 0, batch_size: int = 16, vocoder_plan=None, vocoder_steps: Optional[int] = None,
                 vocoder_kappa: Optional[float] = None) -> torch.Tensor:
        """(n, segment_length) float32 audio at ``sample_rate``; item i uses seed ``seed + i`` (or ``seed[i]``)."""
        seeds = item_seeds(seed, int(n))
        outputs = []
        for start in range(0, len(seeds), batch_size):
            chunk = seeds[start:start + batch_size]
            mels = self.mels(len(chunk), plan, steps, kappa, chunk, batch_size=len(chunk))
            outputs.append(self.vocode(mels, chunk, vocoder_plan, vocoder_steps, vocoder_kappa))
        return torch.cat(outputs)




def load_two_stage(mel_checkpoint, vocoder_checkpoint=None, device=None) -> Optional[TwoStageGenerator]:
    """A two-stage generator from a mel-stage image checkpoint (and a vocoder file, default the shipped
    vocoder); None when the checkpoint is an image model without a mel layout."""
    from ..images.checkpoints import load_image_model
    from ..models.checkpoints import load_model
    from ..models.default_models import load_default

    mel_model = load_image_model(mel_checkpoint, device=device)
    if mel_layout_of(mel_model.spec) is None:
        return None
    vocoder = load_default("vocoder", device=device) if vocoder_checkpoint is None else load_model(
        vocoder_checkpoint, device=device)
    return TwoStageGenerator(mel_model, vocoder)
