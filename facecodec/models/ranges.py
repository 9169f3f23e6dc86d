"""Per-image, per-channel uniform quantizer (the seed project's).

Each feature channel of one image is mapped linearly from its own [min, max]
onto the integers 0 .. 2**bits - 1. The decoder needs exactly those two floats
per channel, so the container stores them as float32; everything here works in
float32 so that encoder and decoder compute the same grid.
"""
from __future__ import annotations

import torch

MIN_BITS, MAX_BITS = 1, 8


def check_bits(bits: int) -> None:
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"bits must be between {MIN_BITS} and {MAX_BITS}, got {bits}")


def channel_ranges(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image, per-channel (min, max) of features ``N x C x h x w``, each ``N x C`` float32."""
    flat = y.float().flatten(2)
    return flat.amin(dim=2), flat.amax(dim=2)


def _step(lo: torch.Tensor, hi: torch.Tensor, bits: int) -> torch.Tensor:
    # A constant channel has hi == lo; a step of 1 keeps the division finite and maps it to symbol 0.
    step = (hi - lo) / (2**bits - 1)
    return torch.where(step > 0, step, torch.ones_like(step))[..., None, None]


def quantize(y: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int) -> torch.Tensor:
    """Features -> integer symbols in [0, 2**bits - 1] (int64)."""
    check_bits(bits)
    q = torch.round((y.float() - lo[..., None, None]) / _step(lo, hi, bits))
    return q.clamp_(0, 2**bits - 1).to(torch.int64)


def dequantize(symbols: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int) -> torch.Tensor:
    """Integer symbols -> features on the quantization grid (float32)."""
    check_bits(bits)
    return lo[..., None, None] + symbols.float() * _step(lo, hi, bits)


def fake_quantize(y: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantize and dequantize with each image's own ranges: what the decoder will see."""
    lo, hi = channel_ranges(y)
    return dequantize(quantize(y, lo, hi, bits), lo, hi, bits)
