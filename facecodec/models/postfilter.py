"""The wavelet family's decoder enhancement: a small residual CNN after the inverse transform.

The seed project's stage 2 on the wavelet codec: the encoder (the fixed transform and its
quantizer) is frozen, and this filter learns to undo what quantizing the coefficients did to
the decoded picture (ringing around edges, lost texture at low rates). It is conditioned on
the quality level, since the right correction at quality 1 would damage quality 8, and its
last layer starts at zero, so an untrained filter is the identity: adding it can only be
trained up from the wavelet codec, never start below it.

Data flow::

        x: N x 3 x H x W decoded RGB in [0, 1] (clipped and rounded to 8-bit levels, as trained)
        |  edge-replicate to even H, W; pixel-unshuffle x2 (the 12 planes of each 2x2 block)
        v
        N x 12 x H/2 x W/2
        |  conv 3x3 -> hidden, + embedding[quality], ReLU
        |  (layers - 2) x [conv 3x3 hidden -> hidden, + embedding[quality], ReLU]
        |  conv 3x3 -> 12 (zero-initialised), pixel-shuffle x2, crop
        v
        x + residual: N x 3 x H x W (not clipped)

Working at half resolution keeps it cheap (a 150x150 face costs about what 75x75 would),
while each 3x3 layer still sees 6x6 pixels. Its receptive-field radius is ``margin`` pixels,
so it runs in overlapping tiles (facecodec.models.tiling) and large images stay in bounded memory.

Quality conditioning is additive, one learned vector per level and layer (a FiLM bias;
Perez et al. 2018), blended linearly for a level between two trained ones; the residual design and zero-initialised last layer follow the
restoration literature (e.g. DnCNN, Zhang et al. 2017).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PostFilter(nn.Module):
    """A quality-conditioned residual CNN on decoded RGB at half resolution."""

    def __init__(self, qualities: int, hidden: int = 32, layers: int = 6) -> None:
        super().__init__()
        if layers < 2:
            raise ValueError("a post-filter needs at least 2 layers")
        self.qualities, self.hidden, self.layers = qualities, hidden, layers
        widths = [12] + [hidden] * (layers - 1) + [12]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(widths[:-1], widths[1:]))
        self.embedding = nn.Parameter(torch.zeros(qualities, layers - 1, hidden))
        for conv in self.convs[:-1]:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.convs[-1].weight)
        nn.init.zeros_(self.convs[-1].bias)

    @property
    def margin(self) -> int:
        """Receptive-field radius in pixels (each half-resolution 3x3 layer reaches 2 pixels further), even."""
        return 2 * self.layers + 2

    def conditioning(self, level: torch.Tensor) -> torch.Tensor:
        """Levels ``N`` (1-based; fractional between the trained ones) -> biases ``N x (layers - 1) x hidden``.

        A fractional level (a continuous quality between two trained levels) gets the linear blend
        of its neighbours' vectors; levels outside the trained range take the nearest end's.
        """
        level = level.to(self.embedding.dtype).clamp(1, self.qualities) - 1     # 0-based, in [0, Q - 1]
        low = level.floor().long().clamp(max=max(self.qualities - 2, 0))
        high = (low + 1).clamp(max=self.qualities - 1)
        t = (level - low)[:, None, None]
        return self.embedding[low] * (1 - t) + self.embedding[high] * t

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """Decoded RGB ``N x 3 x H x W`` and quality levels ``N`` (1-based, any float or int) -> filtered RGB."""
        height, width = x.shape[-2:]
        padded = F.pad(x, (0, width % 2, 0, height % 2), mode="replicate")
        h = F.pixel_unshuffle(padded, 2)
        bias = self.conditioning(level)
        for i, conv in enumerate(self.convs[:-1]):
            h = F.relu(conv(h) + bias[:, i, :, None, None])
        residual = F.pixel_shuffle(self.convs[-1](h), 2)
        return x + residual[..., :height, :width]
