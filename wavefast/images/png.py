"""PNG files and image grids, without Pillow (which is used for reading when installed).

    encode_png   uint8 (H, W), (H, W, 1) or (H, W, 3) -> PNG bytes (8-bit grey or RGB, no filtering)
    read_png     a PNG -> uint8 (H, W, C)
    write_png    uint8 pixels -> a PNG file, atomically (:func:`wavefast.fileio.atomic_output`)
    make_grid    uint8 (N, H, W, C) -> one mosaic (rows*(H+p)+p, nrow*(W+p)+p, C)
    save_grid    model-range images (N, C, H, W) -> a grid PNG
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..errors import WavefastError
from .data import to_uint8


def encode_png(pixels: np.ndarray) -> bytes:
    """uint8 (H, W), (H, W, 1) or (H, W, 3) -> PNG bytes (8-bit grey or RGB, no filtering)."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise WavefastError(f"PNG pixels must be uint8, got {pixels.dtype}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 2:
        colour_type, height, width = 0, *pixels.shape
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        colour_type, height, width = 2, pixels.shape[0], pixels.shape[1]
    else:
        raise WavefastError(f"PNG pixels must be (H, W), (H, W, 1) or (H, W, 3), got {pixels.shape}")
    rows = np.ascontiguousarray(pixels).reshape(height, -1)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()  # filter byte 0 per row

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def _unfilter(raw: bytes, height: int, width: int, channels: int) -> np.ndarray:
    stride = width * channels
    out = np.zeros((height, stride), np.int32)
    data = np.frombuffer(raw, np.uint8).reshape(height, stride + 1)
    for y in range(height):
        kind, line = data[y, 0], data[y, 1:].astype(np.int32)
        prev = out[y - 1] if y else np.zeros(stride, np.int32)
        if kind == 0:
            out[y] = line
        elif kind == 2:
            out[y] = (line + prev) & 0xFF
        elif kind in (1, 3, 4):  # left-dependent filters: per pixel
            row = np.zeros(stride, np.int32)
            for x in range(stride):
                left = row[x - channels] if x >= channels else 0
                up_left = prev[x - channels] if x >= channels else 0
                if kind == 1:
                    predictor = left
                elif kind == 3:
                    predictor = (left + prev[x]) // 2
                else:
                    p = left + prev[x] - up_left
                    pa, pb, pc = abs(p - left), abs(p - prev[x]), abs(p - up_left)
                    predictor = left if pa <= pb and pa <= pc else (prev[x] if pb <= pc else up_left)
                row[x] = (line[x] + predictor) & 0xFF
            out[y] = row
        else:
            raise WavefastError(f"corrupt PNG: filter type {kind}")
    return out.astype(np.uint8).reshape(height, width, channels)


def read_png(path) -> np.ndarray:
    """A PNG -> uint8 (H, W, C). Uses Pillow when installed; otherwise reads 8-bit grey/RGB/RGBA
    non-interlaced files (what :func:`encode_png` writes)."""
    path = Path(path)
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is not None:
        with Image.open(path) as image:
            array = np.asarray(image.convert("L") if image.mode in ("L", "I;16", "I", "1", "P", "LA")
                               else image.convert("RGB"))
        return array[:, :, None] if array.ndim == 2 else array
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise WavefastError(f"{path} is not a PNG file")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, tag = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if tag == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif tag == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise WavefastError(f"{path}: only 8-bit non-interlaced grey/RGB PNGs can be read without Pillow")
    pixels = _unfilter(zlib.decompress(idat), height, width, channels)
    return pixels[:, :, :1] if colour == 4 else pixels[:, :, :3] if colour == 6 else pixels


def write_png(path, pixels: np.ndarray) -> Path:
    """Write uint8 pixels as a PNG, atomically."""
    from ..fileio import atomic_output

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, ".png") as tmp:
        Path(tmp).write_bytes(encode_png(pixels))
        Path(tmp).chmod(0o644)
    return path


def make_grid(pixels: np.ndarray, nrow: Optional[int] = None, padding: int = 2, fill: int = 255) -> np.ndarray:
    """uint8 (N, H, W, C) -> one (rows*(H+p)+p, nrow*(W+p)+p, C) mosaic; ``nrow`` images per row
    (default ceil(sqrt(N)))."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 4 or len(pixels) == 0:
        raise WavefastError(f"grid input must be (N, H, W, C) with N >= 1, got {pixels.shape}")
    n, h, w, c = pixels.shape
    nrow = int(nrow or math_ceil_sqrt(n))
    rows = -(-n // nrow)
    grid = np.full((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), fill, np.uint8)
    for i in range(n):
        y, x = padding + (i // nrow) * (h + padding), padding + (i % nrow) * (w + padding)
        grid[y:y + h, x:x + w] = pixels[i]
    return grid


def math_ceil_sqrt(n: int) -> int:
    root = int(np.sqrt(n))
    return root if root * root >= n else root + 1


def save_grid(images: torch.Tensor, path, nrow: Optional[int] = None) -> Path:
    """Model-range images (N, C, H, W) -> a grid PNG."""
    return write_png(path, make_grid(to_uint8(images), nrow))
