"""Tiled payloads (format version 4): an image coded as a grid of independent tiles, as in JPEG 2000.

FORMAT.md ("Tiled payload") specifies the bytes: the tile side, one length per tile, then the tiles'
payloads in raster order, each the payload of its tile coded as an image of its own. Pure numpy: no torch.

A reader learns the tile count from the image size and the tile side, and checks the table against
the payload's length before it slices anything, so a corrupt table is one FczError, never a large
allocation: ``split_tiles`` returns views into the payload.
"""
from __future__ import annotations

import struct
from dataclasses import replace

import numpy as np

from .container import TILED_VERSION, UNTILED_VERSION, FczHeader
from .errors import FczError
from .metadata import NO_METADATA

# Every tile side must be a multiple of 2^4, the wavelet's levels, so a tile's reduced decode
# (1/2 .. 1/16) starts at a whole pixel of the reduced image and the reduced tiles add up to it.
TILE_ALIGNMENT = 16
# At least 64 pixels: a 16384 x 16384 image then has at most 65,536 tiles (a 256 KiB length table),
# whatever a file claims.
MIN_TILE = 64
MAX_TILE = 16384
_SIDE = struct.Struct("<I")

Box = tuple[int, int, int, int]   # left, top, right, bottom (pixels, right and bottom exclusive)


def tile_grid(width: int, height: int, tile: int) -> list[Box]:
    """The tiles of a ``width x height`` image in raster order: ``tile`` pixels a side, the last row and column smaller."""
    return [(left, top, min(left + tile, width), min(top + tile, height))
            for top in range(0, height, tile) for left in range(0, width, tile)]


def check_tile_side(tile: int) -> None:
    """FczError unless ``tile`` is a side the format allows (see the constants above)."""
    if not (MIN_TILE <= tile <= MAX_TILE and tile % TILE_ALIGNMENT == 0):
        raise FczError(f"corrupt file: tile side {tile} is not a multiple of {TILE_ALIGNMENT} "
                       f"in {MIN_TILE}..{MAX_TILE}")


def join_tiles(tile: int, payloads: list[bytes]) -> bytes:
    """The tiles' payloads (raster order, each a multiple of 4 bytes) -> one tiled payload."""
    check_tile_side(tile)
    lengths = np.array([len(p) for p in payloads], dtype="<u4")
    return _SIDE.pack(tile) + lengths.tobytes() + b"".join(payloads)


def split_tiles(payload: bytes, width: int, height: int) -> tuple[int, list[Box], list[memoryview]]:
    """A tiled payload of a ``width x height`` image -> (tile side, the tiles' boxes, their payloads).

    FczError if the tile side is not allowed, or the length table does not account for the
    payload exactly, every length a multiple of 4 (the range coder's words).
    """
    if len(payload) < _SIDE.size:
        raise FczError("corrupt file: a tiled payload too short for its tile side")
    (tile,) = _SIDE.unpack_from(payload)
    check_tile_side(tile)
    boxes = tile_grid(width, height, tile)
    table_end = _SIDE.size * (1 + len(boxes))
    if len(payload) < table_end:
        raise FczError(f"corrupt file: a tiled payload too short for the lengths of its {len(boxes)} tiles")
    lengths = np.frombuffer(payload, dtype="<u4", count=len(boxes), offset=_SIDE.size).astype(np.int64)
    if lengths.sum() != len(payload) - table_end or np.any(lengths % 4):
        raise FczError("corrupt file: the tile lengths do not add up to the payload, in whole 32-bit words")
    ends = table_end + np.cumsum(lengths)
    view = memoryview(payload)
    return tile, boxes, [view[end - n:end] for n, end in zip(lengths.tolist(), ends.tolist())]


def tile_header(header: FczHeader, box: Box) -> FczHeader:
    """The header of one tile of a tiled file as an image of its own, untiled (tiles are stride 1, unpadded)."""
    width, height = box[2] - box[0], box[3] - box[1]
    return replace(header, width=width, height=height, latent_shape=(header.latent_shape[0], height, width),
                   version=UNTILED_VERSION, metadata=NO_METADATA)   # the file's metadata is the file's, not a tile's


def tiled_header(tile: FczHeader, width: int, height: int) -> FczHeader:
    """A tile's header (``tile_header``) -> that of the whole ``width x height`` image, tiled: its inverse."""
    return replace(tile, width=width, height=height, latent_shape=(tile.latent_shape[0], height, width),
                   version=TILED_VERSION)
