"""A GDN transform-coding network with one gain vector per quality level and a factorized prior.

The transforms follow J. Ballé, V. Laparra, E. P. Simoncelli, "End-to-end optimized
image compression", ICLR 2017 (https://arxiv.org/abs/1611.01704), with the
simplified GDN of N. Johnston et al., "Computationally efficient neural image
compression", 2019 (https://arxiv.org/abs/1912.08771): ``x / (beta + gamma |x|)``,
no square root, which is cheaper on a CPU. The quality levels are the gain units of
Z. Cui et al., "Asymmetric gained deep image compression with continuous rate
adaptation", CVPR 2021 (https://arxiv.org/abs/2003.02012): one network, and for
level ``l`` a positive per-channel gain ``gain[l]`` before rounding and a separate
``inverse_gain[l]`` after it. Trained with loss ``lambda[l] * 255^2 * MSE + bits per
pixel``, each level lands at its own rate.

Data flow (H and W must be multiples of ``stride`` = 16; the codec pads)::

        x: 3 x H x W in [0, 1]
        |  g_a:  conv 5x5 /2 3->N, GDN, conv 5x5 /2 N->N, GDN, conv 5x5 /2 N->N, GDN,
        |        conv 5x5 /2 N->M
        v
        y: M x H/16 x W/16                            (real-valued)
        |  * gain[l], round, clip to -32..31          (6-bit symbols; + 32 -> 0..63)
        v
        q: integers                      --range coder, per-level per-channel tables-->
        |  * inverse_gain[l]
        |  g_s:  deconv 5x5 x2 M->N, IGDN, deconv N->N, IGDN, deconv N->N, IGDN,
        |        deconv 5x5 x2 N->3
        v
        x_hat: 3 x H x W (not clipped; the codec clips to [0, 1])

The entropy model used while training, ``prior``, is the non-parametric
factorized density of Ballé et al. 2018 (https://arxiv.org/abs/1802.01436,
appendix 6.1), one per level and channel. It only supplies the rate term: the
shipped tables are integer symbol counts measured on training faces, so no float
network decides probabilities when a file is decoded.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facecodec.bitstream.entropy import SYMBOL_BITS

SYMBOL_MIN, SYMBOL_MAX = -2 ** (SYMBOL_BITS - 1), 2 ** (SYMBOL_BITS - 1) - 1  # the coded integers, -32..31


class SimplifiedGDN(nn.Module):
    """``x / (beta + gamma |x|)`` across channels (``inverse``: multiply instead of divide)."""

    def __init__(self, channels: int, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse
        # Kept non-negative by squaring in forward(); the small floor keeps beta away from 0.
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(torch.eye(channels) * 0.1 ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = self.beta ** 2 + 1e-6
        gamma = (self.gamma ** 2)[:, :, None, None]
        norm = F.conv2d(x.abs(), gamma, beta)
        return x * norm if self.inverse else x / norm


def _conv(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 5, stride=2, padding=2)


def _deconv(in_ch: int, out_ch: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(in_ch, out_ch, 5, stride=2, padding=2, output_padding=1)


class FactorizedDensity(nn.Module):
    """Learned cumulative distribution per (level, channel), as Ballé et al. 2018, appendix 6.1.

    ``likelihood(v, level)`` is the probability mass of ``[v - 0.5, v + 0.5]``:
    the density of ``v + uniform noise`` while training, a symbol's probability after rounding.
    """

    def __init__(self, levels: int, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0) -> None:
        super().__init__()
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(dims) - 1))
        self.matrices, self.biases, self.factors = nn.ParameterList(), nn.ParameterList(), nn.ParameterList()
        for k in range(len(dims) - 1):
            init = torch.log(torch.expm1(torch.tensor(1 / scale / dims[k + 1])))
            self.matrices.append(nn.Parameter(torch.full((levels, channels, dims[k + 1], dims[k]), init.item())))
            self.biases.append(nn.Parameter(torch.empty(levels, channels, dims[k + 1], 1).uniform_(-0.5, 0.5)))
            if k < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(levels, channels, dims[k + 1], 1)))

    def _logits(self, v: torch.Tensor, level: int) -> torch.Tensor:
        """``v``: C x 1 x n -> logits of the CDF at v, same shape."""
        for k, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            v = torch.matmul(F.softplus(matrix[level]), v) + bias[level]
            if k < len(self.factors):
                v = v + torch.tanh(self.factors[k][level]) * torch.tanh(v)
        return v

    def likelihood(self, y: torch.Tensor, level: int) -> torch.Tensor:
        """``y``: N x C x h x w (one level for all N) -> probability mass of each value's unit bin."""
        n, c, h, w = y.shape
        v = y.transpose(0, 1).reshape(c, 1, -1)
        lower, upper = self._logits(v - 0.5, level), self._logits(v + 0.5, level)
        # Subtract on the side of the median where both sigmoids are small, for precision in the tails.
        sign = -torch.sign(lower + upper).detach()
        mass = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        return mass.clamp_min(1e-9).reshape(c, n, h, w).transpose(0, 1)


class GainedFactorized(nn.Module):
    """``g_a``, ``g_s``, per-level gains and the training prior; the codec does the rounding."""

    family = "gained"  # how its features are quantized (facecodec.families.gained): quality levels
    stride = 16  # four stride-2 convolutions
    # Receptive-field radii, rounded up to whole strides, for tiled inference (facecodec.models.tiling).
    # g_a: four 5x5 stride-2 convs see 2 + 4 + 8 + 16 = 30 px each side of a feature's centre -> 64.
    # g_s: four 5x5 transposed convs reach about 2 latent positions; 4 leaves room.
    encode_margin = 64  # pixels
    decode_margin = 4   # latent positions

    def __init__(self, channels: int = 192, hidden: int = 96, levels: int = 8) -> None:
        super().__init__()
        self.channels, self.levels = channels, levels
        self.g_a = nn.Sequential(
            _conv(3, hidden), SimplifiedGDN(hidden),
            _conv(hidden, hidden), SimplifiedGDN(hidden),
            _conv(hidden, hidden), SimplifiedGDN(hidden),
            _conv(hidden, channels),
        )
        self.g_s = nn.Sequential(
            _deconv(channels, hidden), SimplifiedGDN(hidden, inverse=True),
            _deconv(hidden, hidden), SimplifiedGDN(hidden, inverse=True),
            _deconv(hidden, hidden), SimplifiedGDN(hidden, inverse=True),
            _deconv(hidden, 3),
        )
        # Gains are stored as logarithms so they stay positive; level 1 starts coarse, the last fine.
        start = torch.linspace(-1.0, 1.5, levels)[:, None].expand(levels, channels)
        self.log_gain = nn.Parameter(start.clone())
        self.log_inverse_gain = nn.Parameter(-start.clone())
        self.prior = FactorizedDensity(levels, channels)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Image in [0, 1] -> features (centred on 0.5 grey so the first conv sees zero-mean input)."""
        return self.g_a(x - 0.5)

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        return self.g_s(y) + 0.5

    def scale(self, y: torch.Tensor, level: int) -> torch.Tensor:
        """Features -> the real values that get rounded at quality ``level`` (0-based)."""
        return y * self.log_gain[level].exp()[:, None, None]

    def unscale(self, q: torch.Tensor, level: int) -> torch.Tensor:
        """Rounded values -> the features ``g_s`` takes."""
        return q * self.log_inverse_gain[level].exp()[:, None, None]

    @staticmethod
    def round(v: torch.Tensor) -> torch.Tensor:
        return v.round().clamp(SYMBOL_MIN, SYMBOL_MAX)

    def symbols(self, y: torch.Tensor, level: int) -> torch.Tensor:
        """Features -> the coded symbols at ``level`` (0-based): int32 in 0 .. 2**SYMBOL_BITS - 1."""
        return (self.round(self.scale(y, level)) - SYMBOL_MIN).to(torch.int32)

    def features(self, symbols: torch.Tensor, level: int) -> torch.Tensor:
        """Coded symbols -> the features ``g_s`` takes; the inverse of ``symbols`` up to rounding."""
        return self.unscale((symbols + SYMBOL_MIN).float(), level)
