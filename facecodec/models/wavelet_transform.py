"""A fixed CDF 9/7 wavelet transform on YCbCr: the training-free start of the learned wavelet family.

Data flow (any H x W; no padding: the codec's stride is 1)::

        x: 3 x H x W RGB in [0, 1]
        |  x 255, ICT (JPEG 2000's irreversible colour transform), Y - 128
        v
        YCbCr: 3 x H x W
        |  4 levels of separable CDF 9/7 lifting (rows, then columns; learned residuals on the
        |  finest levels' steps in weights that have them), whole-sample
        |  symmetric extension at the edges, low part ceil(n / 2) samples, high part floor(n / 2),
        |  scaled so the transform is close to orthonormal
        v
        y: 3 x H x W coefficient planes in Mallat layout (LL4 top left, then HL/LH/HH of levels 4..1)
        |  dead-zone quantizer, one step per (plane, level, orientation) and quality
        |  (facecodec.families.WaveletFamily)
        v
        q: signed integers  --context-adaptive range coder (facecodec.bitstream.wavelet_payload)-->
        |  (|q| + recon_offset) * sign(q) * step
        |  inverse lifting, inverse ICT, / 255
        v
        x_hat: 3 x H x W (not clipped; the codec clips to [0, 1])
        |  only in weights with a post-filter (wavelet-v1 on): clip, round to 8 bits, then
        |  x_hat + a quality-conditioned residual CNN (facecodec.models.postfilter), in tiles
        v
        x_hat: 3 x H x W

The transform is numpy (float32, no torch: the default weights run without it) and exactly invertible up
to float rounding.
Each lifting step is ``target += coefficient * (left + right neighbour)``; weights with a learned
lifting (wavelet-v3 on) add a residual ``+ f_step(source)`` to the steps of the finest levels (a small
CNN, initialised to zero: facecodec.models.lifting). That changes neither the subband layout nor the
symbols' meaning: the bitstream stays the same.

The codec runs these functions through facecodec.models.wavelet_runtime (numpy, the post-filter by ONNX
Runtime); training runs them through the ``nn.Module`` of facecodec.models.wavelet_network.
"""
from __future__ import annotations

from typing import Sequence

import math
from typing import Callable

import numpy as np

from facecodec.bitstream.subbands import LEVELS, LL_INDEX, ORIENTATIONS, level_sizes, subbands
from facecodec.models.thumbnails import keeping_the_mean

# CDF 9/7 lifting coefficients (JPEG 2000 Part 1, Annex F): predict, update, predict, update.
ALPHA, BETA, GAMMA, DELTA = -1.586134342059924, -0.052980118572961, 0.882911075530934, 0.443506852043971
K = 1.230174104914001
LOW_SCALE, HIGH_SCALE = math.sqrt(2) / K, K / math.sqrt(2)   # near-orthonormal: DC gain sqrt(2) per level
STEPS = ((ALPHA, True), (BETA, False), (GAMMA, True), (DELTA, False))   # (coefficient, predict step?)
ROWS, COLUMNS = 0, 1                                                     # the axes, in the order they are lifted

# A learned lifting step's residual (facecodec.models.lifting): (source samples, target length) -> the addition
# to its target, and the four of each (level, axis) that learns them.
StepResidual = Callable[[np.ndarray, int], np.ndarray]
NumpyResiduals = dict[tuple[int, int], Sequence[StepResidual]]

# ICT: RGB -> YCbCr, and its inverse (JPEG 2000 Part 1, Annex G.2).
RGB_TO_YCC = np.array([[0.299, 0.587, 0.114],
                       [-0.168736, -0.331264, 0.5],
                       [0.5, -0.418688, -0.081312]], dtype=np.float64)
YCC_TO_RGB = np.linalg.inv(RGB_TO_YCC)
LEVEL_SHIFT = 128.0


# --- one dimension -------------------------------------------------------------------------------------

def _lift(target: np.ndarray, source: np.ndarray, coefficient: float, predict: bool,
          residual: StepResidual | None = None, sign: float = 1.0) -> None:
    """``target[k] += sign * (coefficient * (source[left] + source[right]) + residual(source)[k])`` along
    axis 0, mirrored at the ends; ``sign`` -1 undoes the step.

    Predict steps (odd samples from even ones): left = k, right = k + 1 (the last odd sample
    of an even-length signal mirrors k + 1 onto k). Update steps (even from odd): left = k - 1
    (k = 0 mirrors onto 0), right = k (an odd-length signal's last even sample mirrors onto k - 1).
    """
    n_t, n_s = len(target), len(source)
    if n_t == 0 or n_s == 0:
        return
    if predict:                         # n_s == n_t or n_t + 1
        left = source[:n_t]
        right = source[1:n_t + 1] if n_s > n_t else np.concatenate([source[1:], source[-1:]])
    else:                               # n_t == n_s or n_s + 1
        left = np.concatenate([source[:1], source[:n_t - 1]])
        right = source[:n_t] if n_s >= n_t else np.concatenate([source, source[-1:]])
    target += np.float32(sign * coefficient) * (left + right)
    if residual is not None:
        addition = residual(source, n_t)
        if sign > 0:
            target += addition
        else:
            target -= addition


def forward_1d(x: np.ndarray, residuals: Sequence[StepResidual] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Samples along axis 0 -> (low: ceil(n/2), high: floor(n/2)); a length-1 signal passes through.
    ``residuals``: the learned addition of each of the 4 steps (facecodec.models.lifting), or none."""
    if len(x) < 2:
        return x.copy(), x[:0].copy()
    r = residuals or (None,) * 4
    s, d = x[0::2].copy(), x[1::2].copy()
    _lift(d, s, ALPHA, True, r[0])
    _lift(s, d, BETA, False, r[1])
    _lift(d, s, GAMMA, True, r[2])
    _lift(s, d, DELTA, False, r[3])
    s *= np.float32(LOW_SCALE)
    d *= np.float32(HIGH_SCALE)
    return s, d


def inverse_1d(s: np.ndarray, d: np.ndarray, residuals: Sequence[StepResidual] | None = None) -> np.ndarray:
    """(low, high) along axis 0 -> the samples, undoing ``forward_1d`` step by step."""
    if len(d) == 0:
        return s.copy()
    r = residuals or (None,) * 4
    s = s * np.float32(1 / LOW_SCALE)
    d = d * np.float32(1 / HIGH_SCALE)
    _lift(s, d, DELTA, False, r[3], -1.0)
    _lift(d, s, GAMMA, True, r[2], -1.0)
    _lift(s, d, BETA, False, r[1], -1.0)
    _lift(d, s, ALPHA, True, r[0], -1.0)
    x = np.empty((len(s) + len(d),) + s.shape[1:], dtype=s.dtype)
    x[0::2], x[1::2] = s, d
    return x


# --- two dimensions, several levels --------------------------------------------------------------------

# A 1-D step of the walk: (samples along axis 0, level 1.., ROWS or COLUMNS) -> (low half, high half), and back:
# (low half, high half, level, axis) -> samples.
Split = Callable[[np.ndarray, int, int], "tuple[np.ndarray, np.ndarray]"]
Merge = Callable[[np.ndarray, np.ndarray, int, int], np.ndarray]


def mallat_forward(out: np.ndarray, levels: int, split: Split) -> np.ndarray:
    """The Mallat walk, in place on planes ``C x H x W``: at each level the top-left region's rows (along W), then its
    columns (along H), each cut by ``split`` into a low half and a high half; the next level takes the low-low
    corner. Shared by the CDF 9/7 here and the integer 5/3 of the lossless family (facecodec.models.reversible)."""
    hs, ws = level_sizes(out.shape[1], levels), level_sizes(out.shape[2], levels)
    for level in range(levels):
        for axis, along in ((ROWS, 2), (COLUMNS, 1)):
            region = np.moveaxis(out[:, :hs[level], :ws[level]], along, 0)
            low, high = split(region, level + 1, axis)
            region[:len(low)], region[len(low):] = low, high
    return out


def mallat_inverse(out: np.ndarray, levels: int, reduce: int, merge: Merge) -> np.ndarray:
    """``mallat_forward`` undone, in place, down to level ``reduce``: columns first, then rows, coarsest level first
    -> the top-left ``ceil(H / 2^reduce) x ceil(W / 2^reduce)`` of ``out``."""
    hs, ws = level_sizes(out.shape[1], levels), level_sizes(out.shape[2], levels)
    for level in reversed(range(reduce, levels)):
        for axis, along, sizes in ((COLUMNS, 1, hs), (ROWS, 2, ws)):
            region = np.moveaxis(out[:, :hs[level], :ws[level]], along, 0)
            region[:] = merge(region[:sizes[level + 1]], region[sizes[level + 1]:], level + 1, axis)
    return out[:, :hs[reduce], :ws[reduce]]


def forward_2d(plane: np.ndarray, levels: int = LEVELS, residuals: NumpyResiduals | None = None) -> np.ndarray:
    """Image planes ``C x H x W`` -> coefficient planes of the same shape in Mallat layout (float32).
    ``residuals[(level, axis)]``: the learned steps of the levels and axes that have them."""
    steps = residuals or {}
    return mallat_forward(np.array(plane, dtype=np.float32, copy=True), levels,
                          lambda samples, level, axis: forward_1d(samples, steps.get((level, axis))))


def inverse_2d(coefficients: np.ndarray, levels: int = LEVELS, reduce: int = 0,
               residuals: NumpyResiduals | None = None) -> np.ndarray:
    """Coefficient planes ``C x H x W`` in Mallat layout -> image planes (float32).

    ``reduce`` > 0 stops that many levels early: the result is the low band of level ``reduce``,
    ``ceil(H / 2^reduce) x ceil(W / 2^reduce)``, in the transform's scale (a DC gain of 2 per level).
    """
    steps = residuals or {}
    return mallat_inverse(np.array(coefficients, dtype=np.float32, copy=True), levels, reduce,
                          lambda low, high, level, axis: inverse_1d(low, high, steps.get((level, axis))))


def _mix(matrix: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """``matrix @ planes`` per pixel, as plain float32 multiply-adds in a fixed order (no BLAS, whose
    summation order may depend on threads: the encoder's symbols must not)."""
    planes = planes.astype(np.float32)
    out = np.empty_like(planes)
    for row in range(3):
        m = matrix[row].astype(np.float32)
        out[row] = m[0] * planes[0] + m[1] * planes[1] + m[2] * planes[2]
    return out


def rgb_to_ycc(rgb: np.ndarray) -> np.ndarray:
    """``3 x H x W`` RGB in 0..255 -> YCbCr with Y level-shifted by -128 (float32)."""
    ycc = _mix(RGB_TO_YCC, rgb)
    ycc[0] -= np.float32(LEVEL_SHIFT)
    return ycc


def ycc_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """The inverse of ``rgb_to_ycc`` (float32, not clipped)."""
    ycc = ycc.astype(np.float32)  # a copy
    ycc[0] += np.float32(LEVEL_SHIFT)
    return _mix(YCC_TO_RGB, ycc)


def analysis(rgb: np.ndarray, levels: int = LEVELS, residuals: NumpyResiduals | None = None) -> np.ndarray:
    """``3 x H x W`` RGB in 0..255 -> coefficient planes (YCbCr, Mallat layout)."""
    return forward_2d(rgb_to_ycc(rgb), levels, residuals)


def synthesis(coefficients: np.ndarray, levels: int = LEVELS, reduce: int = 0,
              residuals: NumpyResiduals | None = None) -> np.ndarray:
    """Coefficient planes -> ``3 x H x W`` RGB in 0..255 (not clipped); with ``reduce``, an image
    ``1 / 2^reduce`` the size from the coarse bands alone (JPEG 2000's reduced-resolution decoding)."""
    low = inverse_2d(coefficients, levels, reduce, residuals)
    if reduce:   # the low band's DC gain is 2 per level
        low = keeping_the_mean(low, *coefficients.shape[1:], reduce, inverse_1d, np.float32(0.5 ** reduce))
    return ycc_to_rgb(low)



# --- subbands and steps -------------------------------------------------------------------------------

def subband_gains(levels: int = LEVELS, size: int = 256) -> dict[tuple[int, str], float]:
    """Squared L2 norm of each subband's synthesis basis function (interior of a large image).

    Quantization noise of variance v in subband b adds about ``v * gain[b]`` to the pixel MSE
    (per YCbCr plane), so steps proportional to ``gain ** -0.5`` spread the error evenly.
    """
    gains = {}
    for level, orientation, rows, cols in subbands(size, size, levels):
        plane = np.zeros((1, size, size), dtype=np.float64)
        i = rows.start + (rows.stop - rows.start) // 2
        j = cols.start + (cols.stop - cols.start) // 2
        plane[0, i, j] = 1.0
        gains[(level, orientation)] = float((inverse_2d(plane.astype(np.float32), levels).astype(np.float64) ** 2).sum())
    return gains


def colour_gains() -> np.ndarray:
    """MSE in RGB per unit of noise variance in Y, Cb, Cr: mean over R, G, B of the squared inverse ICT."""
    return (YCC_TO_RGB ** 2).mean(axis=0)


def steps_at(steps: np.ndarray, level: float) -> np.ndarray:
    """The step table of a quality ``level`` (1-based, fractional between the trained levels) from the
    per-level tables ``L x 3 x (LEVELS + 1) x 3``: log-linear between neighbours, extended past the ends."""
    if float(level).is_integer() and 1 <= level <= len(steps):
        return steps[int(level) - 1]
    low = min(max(int(np.floor(level)), 1), len(steps) - 1)   # the lower of the two levels it lies between
    t = level - low
    logs = np.log(steps[low - 1].astype(np.float64)) * (1 - t) + np.log(steps[low].astype(np.float64)) * t
    return np.exp(logs).astype(np.float32)


def step_planes(height: int, width: int, steps: np.ndarray) -> np.ndarray:
    """A step table ``3 x (LEVELS + 1) x 3`` (channel, level index, orientation) -> per-coefficient steps ``3 x H x W``."""
    out = np.empty((3, height, width), dtype=np.float32)
    for level, orientation, rows, cols in subbands(height, width):
        if orientation == "LL":
            out[:, rows, cols] = steps[:, LL_INDEX, 0, None, None]
        else:
            out[:, rows, cols] = steps[:, level - 1, ORIENTATIONS.index(orientation), None, None]
    return out


def ll_mask(height: int, width: int) -> np.ndarray:
    """True on the LL band of a Mallat plane ``H x W``."""
    mask = np.zeros((height, width), dtype=bool)
    _, _, rows, cols = subbands(height, width)[0]
    mask[rows, cols] = True
    return mask


def quantize(y: np.ndarray, steps: np.ndarray, rounding_offset: float) -> np.ndarray:
    """Coefficient planes ``3 x H x W`` -> signed integers: a dead zone on detail bands, plain rounding on LL.

    ``|q| = floor(|y| / step + rounding_offset)`` (0.5 would be plain rounding; smaller widens the zero bin).
    """
    _, height, width = y.shape
    scaled = y / step_planes(height, width, steps)
    offset = np.where(ll_mask(height, width), np.float32(0.5), np.float32(rounding_offset))
    return (np.sign(scaled) * np.floor(np.abs(scaled) + offset)).astype(np.int32)


def dequantize(q: np.ndarray, steps: np.ndarray, recon_offset: float) -> np.ndarray:
    """Signed integers -> coefficient planes: nonzero detail values at ``(|q| + recon_offset) * step``, LL at ``q * step``."""
    _, height, width = q.shape
    offset = np.where(ll_mask(height, width), np.float32(0), np.float32(recon_offset))
    magnitude = np.where(q != 0, np.abs(q).astype(np.float32) + offset, np.float32(0))
    return np.sign(q).astype(np.float32) * magnitude * step_planes(height, width, steps)
