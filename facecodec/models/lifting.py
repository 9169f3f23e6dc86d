"""Learned lifting: the CDF 9/7 wavelet of facecodec.models.wavelet_transform with a learned residual on its steps.

Each of the four lifting steps of the CDF 9/7 wavelet along an axis is
``target += coefficient * (left + right)`` (facecodec.models.wavelet_transform._lift). Here each step of the
finest ``learned_levels`` levels also adds ``f(source)``, a small CNN of the step's source samples
(all three planes, so a step can use the other colours), as iWave (Ma et al. 2020) and Li, Naman &
Taubman (2024) do::

        target += coefficient * (source[left] + source[right]) + f(source)

        f: source (3 planes) --conv 3x3, 3 -> hidden--> ReLU --conv 3x3, hidden -> 3--> addition

The inverse subtracts the same terms in reverse order, and ``f`` reads only the source, which that
step does not change, so the transform is invertible for any weights. The last layer of every ``f``
starts at zero: an untrained ``LearnedLifting`` is exactly the fixed wavelet, so training starts
from the training-free codec (the test of that is tests/test_lifting.py).

One function, three ways to run it, all reading the same weights:

- ``forward`` / ``inverse``: the whole transform in torch, differentiable, for training
  (train/train_lifting.py);
- ``steps(exact=True)``: the residuals for the codec's numpy transform as multiply-adds in a fixed
  order (``Residual.exact``). The encoder uses these: every elementwise float32 operation is
  correctly rounded, so the coefficients, hence the symbols, are the same on every machine and
  thread count, as they are for the fixed transform;
- ``steps(exact=False)``: the same residuals by torch convolutions, 7-60x faster but free to
  sum in any order. The decoder uses these: its output is pixels, where a last-bit difference
  is invisible, and the symbols were already decoded bit-exactly.

The kernel's axes are (across, along) the lifting axis: torch sees a step's source as
``N x 3 x across x along``, the numpy transform as ``along x 3 x across`` (facecodec.models.wavelet_transform).
A source of ``n_s`` samples feeds a target of ``n_t`` (equal, or one more or fewer): ``f`` maps
``n_s`` to ``n_s`` samples, cut or edge-extended to ``n_t`` (``fit``).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facecodec.bitstream.subbands import LEVELS, level_sizes
from facecodec.models.wavelet_transform import HIGH_SCALE, LOW_SCALE, ROWS, COLUMNS, STEPS, NumpyResiduals


def fit(r, n: int, axis: int):
    """``r`` (numpy or torch) cut or edge-extended along ``axis`` to ``n`` samples."""
    have = r.shape[axis]
    if have >= n:
        return r[(slice(None),) * (axis % r.ndim) + (slice(0, n),)]
    last = r[(slice(None),) * (axis % r.ndim) + (slice(have - 1, have),)]
    if isinstance(r, torch.Tensor):
        return torch.cat([r] + [last] * (n - have), axis)
    return np.concatenate([r] + [last] * (n - have), axis)


class Residual(nn.Module):
    """``f`` of one lifting step: conv 3x3 (3 -> hidden), ReLU, conv 3x3 (hidden -> 3), edges replicated;
    the last layer starts at zero."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.inner = nn.Conv2d(3, hidden, 3, padding=1, padding_mode="replicate")
        self.outer = nn.Conv2d(hidden, 3, 3, padding=1, padding_mode="replicate")
        nn.init.zeros_(self.outer.weight)
        nn.init.zeros_(self.outer.bias)

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        """``N x 3 x across x along`` -> the same shape."""
        return self.outer(F.relu(self.inner(source)))

    def fast(self, source: np.ndarray) -> np.ndarray:
        """``forward`` on the numpy transform's layout ``along x 3 x across`` (float32), by torch convolutions."""
        with torch.no_grad():
            out = self(torch.from_numpy(np.ascontiguousarray(source)).permute(1, 2, 0)[None])
        return out[0].permute(2, 0, 1).numpy()

    def exact(self, source: np.ndarray) -> np.ndarray:
        """``fast``, as float32 multiply-adds in a fixed order: the same bits on every machine."""
        layers = [(layer.weight.detach().float().numpy(), layer.bias.detach().float().numpy())
                  for layer in (self.inner, self.outer)]
        hidden = _conv3x3(source.astype(np.float32, copy=False), *layers[0])
        np.maximum(hidden, np.float32(0), out=hidden)
        return _conv3x3(hidden, *layers[1])


def _conv3x3(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, rows_per_block: int = 32) -> np.ndarray:
    """Conv2d with a 3x3 kernel and replicated edges on ``along x C_in x across``: for each output block of
    rows, ``bias`` then every (input plane, across tap, along tap) term in that order. Blocks keep the
    working set in cache; each output element sees the same operations whatever the block size."""
    n, _, m = x.shape
    c_out, c_in = weight.shape[:2]
    padded = np.pad(x, ((1, 1), (0, 0), (1, 1)), mode="edge")
    out = np.empty((n, c_out, m), dtype=np.float32)
    term = np.empty((min(rows_per_block, n), c_out, m), dtype=np.float32)
    for start in range(0, n, rows_per_block):
        stop = min(n, start + rows_per_block)
        block, scratch = out[start:stop], term[:stop - start]
        block[:] = bias[None, :, None]
        for c in range(c_in):
            for across in range(3):
                for along in range(3):
                    source = padded[start + along:stop + along, c:c + 1, across:across + m]
                    np.multiply(source, weight[:, c, across, along][None, :, None], out=scratch)
                    block += scratch
    return out


def _neighbour_sum(source: torch.Tensor, n_target: int, predict: bool) -> torch.Tensor:
    """``source[left] + source[right]`` along the last axis for each of ``n_target`` targets, mirrored as
    facecodec.models.wavelet_transform._lift does."""
    n_s = source.shape[-1]
    if predict:      # left = k, right = k + 1 (the last target of an even-length signal mirrors onto k)
        left = source[..., :n_target]
        right = source[..., 1:n_target + 1] if n_s > n_target else torch.cat([source[..., 1:], source[..., -1:]], -1)
    else:            # left = k - 1 (k = 0 mirrors onto 0), right = k (an extra last target mirrors onto k - 1)
        left = torch.cat([source[..., :1], source[..., :n_target - 1]], -1)
        right = source[..., :n_target] if n_s >= n_target else torch.cat([source, source[..., -1:]], -1)
    return left + right


class LearnedLifting(nn.Module):
    """The residuals of the finest ``learned_levels`` levels, and the transform they belong to in torch.

    ``forward``: YCbCr planes ``N x 3 x H x W`` (Y level-shifted, 0..255 scale) -> coefficient planes in
    Mallat layout, as facecodec.models.wavelet_transform.forward_2d; ``inverse``: back.
    """

    def __init__(self, learned_levels: int = 1, hidden: int = 8) -> None:
        super().__init__()
        if not 1 <= learned_levels <= LEVELS:
            raise ValueError(f"learned_levels must be 1..{LEVELS}")
        self.learned_levels, self.hidden = learned_levels, hidden
        # residuals[level - 1][axis][step]
        self.residuals = nn.ModuleList(
            nn.ModuleList(nn.ModuleList(Residual(hidden) for _ in STEPS) for _ in (ROWS, COLUMNS))
            for _ in range(learned_levels))

    def steps(self, exact: bool) -> NumpyResiduals:
        """The residuals for facecodec.models.wavelet_transform's numpy transform: ``exact`` for the encoder."""
        def fitted(f: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray, int], np.ndarray]:
            return lambda source, n_target: fit(f(source), n_target, 0)

        return {(level + 1, axis): [fitted(r.exact if exact else r.fast) for r in by_step]
                for level, by_axis in enumerate(self.residuals) for axis, by_step in enumerate(by_axis)}

    def _lift(self, target: torch.Tensor, source: torch.Tensor, level: int, axis: int, step: int) -> torch.Tensor:
        """The step's addition to ``target`` (samples on the last axis)."""
        coefficient, predict = STEPS[step]
        addition = coefficient * _neighbour_sum(source, target.shape[-1], predict)
        if level <= self.learned_levels:
            addition = addition + fit(self.residuals[level - 1][axis][step](source), target.shape[-1], -1)
        return addition

    def _forward_1d(self, x: torch.Tensor, level: int, axis: int) -> torch.Tensor:
        if x.shape[-1] < 2:
            return x
        s, d = x[..., 0::2], x[..., 1::2]
        for step, (_, predict) in enumerate(STEPS):
            if predict:
                d = d + self._lift(d, s, level, axis, step)
            else:
                s = s + self._lift(s, d, level, axis, step)
        return torch.cat([s * LOW_SCALE, d * HIGH_SCALE], -1)

    def _inverse_1d(self, x: torch.Tensor, n_low: int, level: int, axis: int) -> torch.Tensor:
        if x.shape[-1] < 2:
            return x
        s, d = x[..., :n_low] / LOW_SCALE, x[..., n_low:] / HIGH_SCALE
        for step in reversed(range(len(STEPS))):
            if STEPS[step][1]:
                d = d - self._lift(d, s, level, axis, step)
            else:
                s = s - self._lift(s, d, level, axis, step)
        out = torch.empty_like(x)
        out[..., 0::2], out[..., 1::2] = s, d
        return out

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        out = planes
        hs, ws = level_sizes(planes.shape[-2]), level_sizes(planes.shape[-1])
        for level in range(1, LEVELS + 1):
            h, w = hs[level - 1], ws[level - 1]
            region = self._forward_1d(out[..., :h, :w], level, ROWS)
            region = self._forward_1d(region.transpose(-1, -2), level, COLUMNS).transpose(-1, -2)
            out = torch.cat([torch.cat([region, out[..., :h, w:]], -1), out[..., h:, :]], -2)
        return out

    def inverse(self, coefficients: torch.Tensor) -> torch.Tensor:
        out = coefficients
        hs, ws = level_sizes(coefficients.shape[-2]), level_sizes(coefficients.shape[-1])
        for level in range(LEVELS, 0, -1):
            h, w = hs[level - 1], ws[level - 1]
            region = out[..., :h, :w]
            region = self._inverse_1d(region.transpose(-1, -2), hs[level], level, COLUMNS).transpose(-1, -2)
            region = self._inverse_1d(region, ws[level], level, ROWS)
            out = torch.cat([torch.cat([region, out[..., :h, w:]], -1), out[..., h:, :]], -2)
        return out
