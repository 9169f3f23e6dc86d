"""Run a convolutional network over a large image one overlapping tile at a time.

Peak memory then depends on the tile size, not the image size. Each tile is
extended by a margin at least as wide as the network's receptive-field radius,
and only the tile's own centre is kept, so every kept output saw exactly the
context it would have seen in one pass over the whole image: no seams, up to
float rounding.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def run_in_tiles(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, tile: int, margin: int,
                 scale_num: int = 1, scale_den: int = 1) -> np.ndarray:
    """Apply ``fn`` to ``x`` (N x C x H x W) tile by tile; ``fn`` scales sizes by ``scale_num / scale_den``.

    ``tile`` and ``margin`` must be multiples of ``scale_den`` and H, W multiples
    of it too, so every tile boundary maps to a whole output pixel.
    """
    height, width = x.shape[-2:]
    if height <= tile and width <= tile:
        return fn(x)
    if tile % scale_den or margin % scale_den or height % scale_den or width % scale_den:
        raise ValueError("tile, margin and image size must be multiples of the network's stride")

    def scaled(v: int) -> int:
        return v * scale_num // scale_den

    out = None
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(height, top + tile), min(width, left + tile)
            top0, left0 = max(0, top - margin), max(0, left - margin)
            piece = fn(x[..., top0:min(height, bottom + margin), left0:min(width, right + margin)])
            if out is None:
                out = np.empty((*piece.shape[:-2], scaled(height), scaled(width)), dtype=piece.dtype)
            out[..., scaled(top):scaled(bottom), scaled(left):scaled(right)] = \
                piece[..., scaled(top - top0):scaled(bottom - top0), scaled(left - left0):scaled(right - left0)]
    return out
