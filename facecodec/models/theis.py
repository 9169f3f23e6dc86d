"""Compressive autoencoder of Theis et al. (2017), as the seed project trained it.

L. Theis, W. Shi, A. Cunningham, F. Huszar, "Lossy image compression with
compressive autoencoders", ICLR 2017, https://arxiv.org/abs/1703.00395

Data flow (H and W must be multiples of ``stride`` = 8; the codec pads)::

        x: 3 x H x W in [0, 1]
        |  g_a  (analysis transform)
        |    conv 5x5 /2   3 -> 64      BN  LeakyReLU       H/2
        |    conv 5x5 /2  64 -> 128     BN  LeakyReLU       H/4
        |    3 x residual block (conv 3x3, BN, LeakyReLU, conv 3x3, BN) + skip
        |    conv 5x5 /2 128 -> C                            H/8
        v
        y: C x H/8 x W/8  (real-valued features; the codec quantizes these)
        |  g_s  (synthesis transform)
        |    conv 3x3      C -> 128     BN  LeakyReLU       H/8
        |    conv 3x3    128 -> 4*128, pixel shuffle x2,  LeakyReLU   H/4
        |    3 x residual block
        |    conv 3x3    128 -> 4*64,  pixel shuffle x2,  LeakyReLU   H/2
        |    conv 3x3     64 -> 4*3,   pixel shuffle x2               H
        v
        x_hat: 3 x H x W (not clipped; the codec clips to [0, 1])

C, the number of feature channels, sets the sparsity against the 3 x 64 values
of an 8x8 RGB block: 96 -> 1/2, 48 -> 1/4, 24 -> 1/8 (the default).
"""
from __future__ import annotations

import torch
from torch import nn

def _conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, channels, 3), nn.BatchNorm2d(channels), nn.LeakyReLU(0.2),
            _conv(channels, channels, 3), nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SubPixelUp(nn.Sequential):
    """Conv to ``4 * out_ch`` channels, then pixel shuffle: x2 upsampling without checkerboard artefacts."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(_conv(in_ch, out_ch * 4, 3), nn.PixelShuffle(2))


class TheisAutoencoder(nn.Module):
    """Analysis transform ``g_a`` and synthesis transform ``g_s``; quantization lives outside."""

    family = "ranges"  # how its features are quantized (facecodec.families.ranges): per-image ranges, 1..8 bits
    stride = 8  # three stride-2 convolutions
    # Receptive-field radii, rounded up to whole strides, for tiled inference (facecodec.models.tiling):
    # g_a sees 77x77 pixels around a feature; g_s about 6 features around a pixel.
    encode_margin = 48  # pixels
    decode_margin = 8   # latent positions

    def __init__(self, channels: int = 24, res_blocks: int = 3) -> None:
        super().__init__()
        self.channels = channels
        self.g_a = nn.Sequential(
            _conv(3, 64, 5, stride=2), nn.BatchNorm2d(64), nn.LeakyReLU(0.2),
            _conv(64, 128, 5, stride=2), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
            *[ResidualBlock(128) for _ in range(res_blocks)],
            _conv(128, channels, 5, stride=2),
        )
        self.g_s = nn.Sequential(
            _conv(channels, 128, 3), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
            SubPixelUp(128, 128), nn.LeakyReLU(0.2),
            *[ResidualBlock(128) for _ in range(res_blocks)],
            SubPixelUp(128, 64), nn.LeakyReLU(0.2),
            SubPixelUp(64, 3),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Image in [0, 1] -> features (centred on 0.5 grey so the first conv sees zero-mean input)."""
        return self.g_a(x - 0.5)

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        return self.g_s(y) + 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))
