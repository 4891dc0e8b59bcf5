"""A log-mel spectrogram seen as an image: the adapter between a mel and the image DDPM.

A ``tacotron2`` log-mel ``m`` (B, n_mels, frames) (natural log, floor ln 1e-5 = -11.513)
becomes a model-range image and back::

    x     = 2 (m - floor) / (ceil - floor) - 1              (B, 1, n_mels, frames), ~[-1, 1]
    image = pixel_unshuffle(x, f)                           (B, f*f, n_mels/f, frames/f)

and ``to_mel`` inverts it (``pixel_shuffle``, clamp to [-1, 1], the affine map back).
Space-to-depth by ``f`` lets the image UNet work at 1/f^2 of the pixels: each model pixel
holds an f x f patch of (mel bins x frames). The layout travels with the model in its
spec (``ImageModelSpec.extra["mel_image"]``), so a file says how its images are mels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from ..errors import WavefastError

EXTRA_KEY = "mel_image"


@dataclass(frozen=True)
class MelImageLayout:
    """How an image of ``(factor**2, n_mels / factor, frames / factor)`` is a log-mel."""

    n_mels: int = 80
    frames: int = 88
    factor: int = 4
    floor: float = -11.5129
    ceil: float = 2.5
    sample_rate: int = 22050
    hop_length: int = 256
    frontend: str = "tacotron2"

    def __post_init__(self):
        if self.factor < 1 or self.n_mels % self.factor or self.frames % self.factor:
            raise WavefastError(f"mel image: n_mels {self.n_mels} and frames {self.frames} must be divisible by "
                                f"the factor {self.factor}")
        if not self.ceil > self.floor:
            raise WavefastError(f"mel image: ceil {self.ceil} must exceed floor {self.floor}")

    @property
    def image_shape(self):
        return (self.factor ** 2, self.n_mels // self.factor, self.frames // self.factor)

    @property
    def samples(self) -> int:
        """Audio samples a vocoder makes from one mel: ``frames * hop_length``."""
        return self.frames * self.hop_length

    def to_image(self, log_mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, frames) log-mel -> (B, f^2, n_mels/f, frames/f) model-range image."""
        m = torch.as_tensor(log_mel, dtype=torch.float32)
        if m.dim() != 3 or tuple(m.shape[1:]) != (self.n_mels, self.frames):
            raise WavefastError(f"mel image: expected log-mels (B, {self.n_mels}, {self.frames}), "
                                f"got {tuple(m.shape)}")
        x = 2.0 * (m - self.floor) / (self.ceil - self.floor) - 1.0
        return F.pixel_unshuffle(x[:, None], self.factor)

    def to_mel(self, image: torch.Tensor) -> torch.Tensor:
        """(B, f^2, n_mels/f, frames/f) image -> (B, n_mels, frames) log-mel (clamped to [floor, ceil])."""
        x = torch.as_tensor(image, dtype=torch.float32)
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise WavefastError(f"mel image: expected images (B, {', '.join(map(str, self.image_shape))}), "
                                f"got {tuple(x.shape)}")
        x = F.pixel_shuffle(x, self.factor)[:, 0].clamp(-1.0, 1.0)
        return (x + 1.0) * 0.5 * (self.ceil - self.floor) + self.floor

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "MelImageLayout":
        try:
            return cls(**data)
        except TypeError as exc:
            raise WavefastError(f"malformed mel image layout: {exc}") from None


def mel_layout_of(spec) -> Optional[MelImageLayout]:
    """The mel layout an image model's spec carries, or None for an ordinary image model."""
    data = (getattr(spec, "extra", None) or {}).get(EXTRA_KEY)
    if data is None:
        return None
    layout = MelImageLayout.from_dict(data)
    if tuple(spec.image_shape) != layout.image_shape:
        raise WavefastError(f"mel image layout {layout.image_shape} does not match the model's images "
                            f"{tuple(spec.image_shape)}")
    return layout
