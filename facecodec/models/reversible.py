"""The reversible transform of lossless coding: integer colour transform and integer 5/3 wavelet (JPEG 2000 Part 1).

Every step maps integers to integers and is undone exactly, so ``synthesis(analysis(x)) == x`` for any 8-bit
image. Colour: JPEG 2000's reversible colour transform (RCT), ``Y = floor((R + 2G + B) / 4)``, ``Cb = B - G``,
``Cr = R - G``. Space: the LeGall 5/3 lifting with integer rounding, 4 levels, columns then rows, in the same
Mallat layout and band sizes as the lossy CDF 9/7 (facecodec.models.wavelet_transform), so the wavelet family's
payload (facecodec.bitstream.wavelet_payload) codes its planes unchanged. Along an axis of ``n`` samples::

    d[i] = x[2i + 1] - floor((x[2i] + x[2i + 2]) / 2)           (predict; x[n] mirrors to x[n - 2])
    s[i] = x[2i] + floor((d[i - 1] + d[i] + 2) / 4)              (update; d[-1] mirrors to d[0], d[m] to d[m - 1])

with ``ceil(n / 2)`` low (s) and ``floor(n / 2)`` high (d) samples: whole-sample symmetric extension, as JPEG 2000.
Pure numpy, int64 throughout (the values stay within a few times 255).
"""
from __future__ import annotations

import numpy as np

from facecodec.bitstream.subbands import LEVELS
from facecodec.models.wavelet_transform import mallat_forward, mallat_inverse


def rct(rgb: np.ndarray) -> np.ndarray:
    """``3 x H x W`` integers R, G, B -> Y, Cb, Cr (int64)."""
    r, g, b = (plane.astype(np.int64) for plane in rgb)
    return np.stack([(r + 2 * g + b) >> 2, b - g, r - g])


def inverse_rct(ycc: np.ndarray) -> np.ndarray:
    y, cb, cr = (plane.astype(np.int64) for plane in ycc)
    g = y - ((cb + cr) >> 2)
    return np.stack([cr + g, g, cb + g])


def forward_1d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Along axis 0: ``n x ...`` integers -> (low ``ceil(n/2) x ...``, high ``floor(n/2) x ...``)."""
    n = x.shape[0]
    even, odd = x[0::2], x[1::2]
    if n == 1:
        return even.copy(), odd.copy()
    # the last odd sample's right neighbour, x[n] for an even n, mirrors to x[n - 2]: the last even sample
    right = np.concatenate([even[1:], even[-1:]]) if n % 2 == 0 else even[1:]
    d = odd - ((even[:len(odd)] + right) >> 1)
    return even + ((_before(d, len(even)) + _after(d, len(even)) + 2) >> 2), d


def inverse_1d(s: np.ndarray, d: np.ndarray) -> np.ndarray:
    """(low, high) along axis 0 -> the ``len(s) + len(d)`` samples ``forward_1d`` took."""
    if len(d) == 0:
        return s.copy()
    even = s - ((_before(d, len(s)) + _after(d, len(s)) + 2) >> 2)
    n = len(s) + len(d)
    right = np.concatenate([even[1:], even[-1:]]) if n % 2 == 0 else even[1:]
    odd = d + ((even[:len(d)] + right) >> 1)
    out = np.empty((n,) + s.shape[1:], dtype=np.int64)
    out[0::2], out[1::2] = even, odd
    return out


def _before(d: np.ndarray, count: int) -> np.ndarray:
    """d[i - 1] for i = 0 .. count - 1, d[-1] mirrored to d[0]."""
    return np.concatenate([d[:1], d])[:count]


def _after(d: np.ndarray, count: int) -> np.ndarray:
    """d[i] for i = 0 .. count - 1, d[m] (past the end, when count = m + 1) mirrored to d[m - 1]."""
    return np.concatenate([d, d[-1:]])[:count]


def analysis(rgb: np.ndarray, levels: int = LEVELS) -> np.ndarray:
    """``3 x H x W`` 8-bit RGB -> integer coefficient planes (int64) in Mallat layout."""
    return mallat_forward(rct(rgb), levels, lambda samples, level, axis: forward_1d(samples))


def synthesis(coefficients: np.ndarray, levels: int = LEVELS, reduce: int = 0) -> np.ndarray:
    """Integer coefficient planes -> ``3 x H x W`` RGB integers: exactly the analysed image when ``reduce`` is 0;
    with ``reduce``, the low band of that level, a 1 / 2^reduce image (the 5/3 low-pass keeps the pixels' scale),
    as JPEG 2000's reversible path gives it. Shifting it to the mean of the band's own synthesis, as the lossy
    thumbnails are (facecodec.models.thumbnails), made it no closer to the picture's mean: measured on two
    astronaut crops at 1/4, 0.35 -> 1.34 and 2.11 -> 1.13 levels off, as the 5/3's dropped details carry more of
    the mean than the 9/7's."""
    return inverse_rct(mallat_inverse(np.array(coefficients, dtype=np.int64, copy=True), levels, reduce,
                                      lambda low, high, level, axis: inverse_1d(low, high)))


class ReversibleRuntime:
    """The transforms of lossless weights as the codec runs them (facecodec.models.transform's interface)::

        analyse:    padded RGB N x 3 x H x W in [0, 1] --x 255, rounded: the 8-bit values--> RCT, 5/3 --> planes
        synthesise: planes (integers, held as float32: exact below 2^24) --inverse 5/3, RCT--> 8-bit RGB

    No network, no float in between: what comes out is what went in.
    """

    stride = 1

    def analyse(self, x: np.ndarray, tile: int = 0) -> np.ndarray:
        pixels = np.rint(x * np.float32(255)).astype(np.int64)
        return np.stack([analysis(image) for image in pixels]).astype(np.float32)

    def synthesise(self, features: np.ndarray, reduce: int = 0, tile: int = 0) -> np.ndarray:
        planes = np.rint(features).astype(np.int64)
        # Only a damaged-but-valid file can leave 0..255 (thumbnails, whose low band can overshoot, included).
        return np.stack([np.clip(synthesis(image, LEVELS, reduce), 0, 255) for image in planes]).astype(np.uint8)
