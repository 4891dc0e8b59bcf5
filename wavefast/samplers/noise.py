"""Noise sources: where every Gaussian draw of a sampler comes from.

A sampler asks its :class:`NoiseSource` for ``x_T`` first and then for one fresh tensor per
stochastic step, in that order: ``noise.randn(item_shape) -> (B, *item_shape)``. Draw ``k``
(0 = x_T) of item ``b`` depends only on that item's seed, never on the batch, the device or
the thread count. Implementations:

- :class:`PositionalNoise` (what every entry point uses): element ``n`` (the flat index; for
  audio, the absolute sample position) of draw ``k`` of the item seeded ``s`` comes from block
  ``n // 4096`` of a generator seeded with ``(s mod 2^32, s div 2^32, k, block)``. A window of
  a long utterance therefore draws exactly the noise the whole utterance has there, which is
  what makes chunked and streamed vocoding equal to whole-utterance vocoding.
- :class:`SeededNoise`: one ``torch.Generator`` per item (the classic per-sample scheme), for
  tests and training code that wants cheap reproducible draws.
- :class:`TensorNoise`: pre-drawn tensors (learned-sampler training keeps them fixed).
- :class:`ShapedNoise`: any of the above passed through a linear map, e.g. a shaped prior
  ``z -> L z``; the sampler is unchanged.

:func:`item_seeds` turns the user's ``seed`` (an int for the first item, one per item, or
None for a random one) into one checked seed per item.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Protocol, Sequence, Union

import numpy as np
import torch

from ..errors import WavefastError

NOISE_BLOCK = 4096
MAX_SEED = 2 ** 63 - 1

SeedArg = Union[int, Sequence[int], None]


class NoiseSource(Protocol):
    def randn(self, item_shape) -> torch.Tensor:  # (B, *item_shape), the next draw
        ...


def check_seed(seed, what: str = "seed") -> int:
    """An int in [0, 2^63 - 1] (bools and floats refused)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise WavefastError(f"{what} must be a whole number in [0, {MAX_SEED}], got {seed!r}")
    seed = int(seed)
    if not 0 <= seed <= MAX_SEED:
        raise WavefastError(f"{what} must lie in [0, 2**63 - 1], got {seed}")
    return seed


def item_seeds(seed: SeedArg, n: int) -> List[int]:
    """One seed per item: ``seed + i`` for an int, the list itself, or random when None."""
    if seed is None:
        seed = int(torch.randint(0, 2 ** 31 - 1, ()).item())
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        first = check_seed(seed)
        if first + n - 1 > MAX_SEED:
            raise WavefastError(f"seed {first} + {n - 1} items exceeds 2**63 - 1; use a smaller seed")
        return [first + i for i in range(n)]
    if isinstance(seed, (str, bytes)) or not hasattr(seed, "__len__"):
        raise WavefastError(f"seed must be an int or one int per item, got {seed!r}")
    seeds = [check_seed(s, "each seed") for s in seed]
    if len(seeds) != n:
        raise WavefastError(f"got {len(seeds)} seeds for {n} items; pass one seed per item or a single int")
    return seeds


def _block(seed: int, draw: int, block: int) -> torch.Tensor:
    entropy = [seed & 0xFFFFFFFF, seed >> 32, int(draw), int(block)]
    state = np.random.SeedSequence(entropy).generate_state(2)
    g = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
    return torch.randn(NOISE_BLOCK, generator=g)


def positional_noise(seed: int, draw: int, start: int, length: int) -> torch.Tensor:
    """Draw ``draw`` of ``seed`` at flat positions [start, start + length): (length,) float32."""
    if length <= 0:
        return torch.zeros(0)
    first, last = start // NOISE_BLOCK, (start + length - 1) // NOISE_BLOCK
    blocks = torch.cat([_block(seed, draw, b) for b in range(first, last + 1)])
    offset = start - first * NOISE_BLOCK
    return blocks[offset: offset + length]


class PositionalNoise:
    """Noise by absolute position: item ``b`` seeded ``seeds[b]``, elements from ``start`` on.

    For audio windows ``item_shape`` is ``(1, L)`` and ``start`` the window's first sample in
    the utterance; for images ``start = 0`` and the flat index runs over (C, H, W).
    """

    def __init__(self, seeds: Sequence[int], start: int = 0, device=None, dtype=torch.float32):
        self.seeds = [check_seed(s) for s in seeds]
        self.start = int(start)
        self.device, self.dtype = device, dtype
        self.draws = 0

    def __len__(self) -> int:
        return len(self.seeds)

    def randn(self, item_shape) -> torch.Tensor:
        shape = tuple(int(s) for s in item_shape)
        count = int(np.prod(shape)) if shape else 1
        rows = [positional_noise(s, self.draws, self.start, count).reshape(shape) for s in self.seeds]
        self.draws += 1
        return torch.stack(rows).to(device=self.device, dtype=self.dtype)


class SeededNoise:
    """Gaussian noise where item i comes from its own ``torch.Generator`` seeded ``seeds[i]``."""

    def __init__(self, seeds: Sequence[int], device=None, dtype=torch.float32):
        self.generators = [torch.Generator().manual_seed(check_seed(s)) for s in seeds]
        self.device = device
        self.dtype = dtype

    def __len__(self) -> int:
        return len(self.generators)

    def randn(self, item_shape) -> torch.Tensor:
        rows = [torch.randn(tuple(item_shape), generator=g, dtype=self.dtype) for g in self.generators]
        return torch.stack(rows).to(self.device)


#: the name the first releases used
PerSampleNoise = SeededNoise


class TensorNoise:
    """Pre-drawn noise: ``draws`` (K, B, *item_shape) handed out in order (x_T is not among them
    unless the caller puts it first)."""

    def __init__(self, draws: Union[torch.Tensor, Sequence[torch.Tensor]]):
        self.tensors = list(draws)
        self.used = 0

    def __len__(self) -> int:
        return len(self.tensors)

    def randn(self, item_shape) -> torch.Tensor:
        if self.used >= len(self.tensors):
            raise WavefastError(f"got {len(self.tensors)} pre-drawn noise tensors; the sampler needs one per "
                                "stochastic step")
        out = self.tensors[self.used]
        self.used += 1
        if tuple(out.shape[1:]) != tuple(item_shape):
            raise WavefastError(f"pre-drawn noise has item shape {tuple(out.shape[1:])}, the sampler needs "
                                f"{tuple(item_shape)}")
        return out


class ShapedNoise:
    """``shape(base.randn(...))``: a linear map applied to every draw (e.g. a shaped prior L z)."""

    def __init__(self, base: NoiseSource, shape: Callable[[torch.Tensor], torch.Tensor]):
        self.base, self.shape = base, shape

    def __len__(self) -> int:
        return len(self.base)

    def randn(self, item_shape) -> torch.Tensor:
        return self.shape(self.base.randn(item_shape))


def as_noise_source(noise, device=None) -> Optional[NoiseSource]:
    """Accept a NoiseSource, pre-drawn tensors (K, B, ...) or None."""
    if noise is None or hasattr(noise, "randn"):
        return noise
    return TensorNoise(noise)
