"""Thumbnails from a wavelet's low band that keep the picture's mean brightness (``fcz decode --scale``).

A reduced decode takes the low band of level r as a 1 / 2^r image. Scaling it by the low-pass's DC gain is not
enough: a low-band sample stands for a neighbourhood centred on its first pixel, not on the middle of its
2^r x 2^r block, and the bands' edges are mirrored, so the samples along the image's edges stand for more or less
of it than the others; the plain mean of the thumbnail then weighs the edges wrongly, and a face photo's edges
(hair, background) are not its average. Measured on faces/val crops with the CDF 9/7: thumbnails up to 1.9 levels
(1/4) and 4.3 levels (1/8) away from the picture's mean, mostly darker.

Each sample's share of the full picture's mean is one row of the synthesis (``low_band_shares``, measured by
synthesising the band's unit vectors, separable), so the band's true mean costs two dot products, and the
thumbnail is shifted to it (facecodec.models.wavelet_transform's reduced synthesis).
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from facecodec.bitstream.subbands import LEVELS, level_sizes

Inverse1d = Callable[[np.ndarray, np.ndarray], np.ndarray]   # (low, high) along axis 0 -> float32 samples


def keeping_the_mean(low: np.ndarray, height: int, width: int, reduce: int, inverse_1d: Inverse1d,
                     gain: float) -> np.ndarray:
    """The low band of level ``reduce`` (``C x h x w``) of a ``height x width`` picture -> float32 planes of a
    1 / 2^reduce image: the band times ``gain`` (the inverse of the low-pass's DC gain over ``reduce`` levels),
    each plane shifted so that its plain mean is the mean of the full-size picture the band synthesises through
    ``inverse_1d`` with its finer details at zero."""
    shares_h, shares_w = low_band_shares(height, reduce, inverse_1d), low_band_shares(width, reduce, inverse_1d)
    full_mean = np.einsum("i,cij,j->c", shares_h, low.astype(np.float64), shares_w)
    scaled = low * np.float32(gain)
    shift = full_mean - scaled.mean(axis=(1, 2), dtype=np.float64)
    return scaled + shift.astype(np.float32)[:, None, None]


@functools.lru_cache(maxsize=64)
def low_band_shares(n: int, reduce: int, inverse_1d: Inverse1d) -> np.ndarray:
    """For a signal of ``n`` samples, each level-``reduce`` low-band sample's weight in the mean of the signal that
    ``inverse_1d`` synthesises from that band alone (float64, ``ceil(n / 2^reduce)`` values).

    Away from the ends every weight is the same, so a long signal is measured on a short one of the same length
    modulo 2^LEVELS (same band lengths' parities, so the same ends), its ends kept and its middle weight repeated
    between them.
    """
    probe = n if n <= 2048 else 1024 + n % 2 ** LEVELS
    sizes = level_sizes(probe, LEVELS)
    x = np.eye(sizes[reduce], dtype=np.float32)
    for level in reversed(range(reduce)):
        x = inverse_1d(x, np.zeros((sizes[level] - sizes[level + 1], x.shape[1]), dtype=np.float32))
    sums = x.sum(axis=0, dtype=np.float64)
    if probe != n:
        half = len(sums) // 2
        middle = np.full(level_sizes(n, LEVELS)[reduce] - 2 * half, sums[half])
        sums = np.concatenate([sums[:half], middle, sums[-half:]])
    return sums / n
