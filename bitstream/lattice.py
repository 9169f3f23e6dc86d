"""The JPEG source block of a .fcz file (format version 6): the quantization lattice of the JPEG it was made from.

A JPEG file holds each 8x8 block's DCT coefficients as integer multiples of its quantization table, so the
pixels a user has from a JPEG lie on a lattice that a decoder can find again (facecodec.jpeg_lattice moves a
decode's coefficients onto it where they lie close). This block says what that lattice is and how strongly the
decoder moves towards it. FORMAT.md ("JPEG source block") specifies it byte by byte; ``pack_block`` writes it and
``read_block`` reads it. Pure Python: no numpy, no torch.
"""
from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import Callable

from .errors import FczError

TABLE_SIZE = 64                      # one 8x8 table, in natural (row-major) order, not JPEG's zigzag
MAX_STRENGTH = 8                     # sixteenths of a quantization step: at most half a step
FACTORS = (1, 2)                     # chroma subsampling factors read and written: 4:4:4, 4:2:2, 4:4:0, 4:2:0
STANDARD, EXPLICIT = 0, 1            # the tables' form: IJG's standard tables at a quality, or 64 bytes each

# The example tables of the JPEG standard (ITU-T T.81 Annex K), which libjpeg scales by its quality setting:
# most JPEG files (libjpeg, Pillow, many cameras and web services) carry these, scaled.
STANDARD_LUMA = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
                 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
                 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
                 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
STANDARD_CHROMA = (17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
                   24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99) + (99,) * 32

_HEAD = struct.Struct("<BBB")        # sampling, strengths, table form


@dataclass(frozen=True)
class SourceLattice:
    """A JPEG source's quantization lattice, and how far (in sixteenths of a step) a decode is moved onto it."""

    luma: tuple[int, ...]             # 64 steps, natural order, each 1..255
    chroma: tuple[int, ...] = ()      # 64 steps for Cb and Cr, () for a greyscale source
    sampling: tuple[int, int] = (1, 1)   # the chroma planes' subsampling (horizontal, vertical), each 1 or 2
    luma_strength: int = 0            # 0..MAX_STRENGTH: coefficients within this many sixteenths of a step move
    chroma_strength: int = 0

    def __bool__(self) -> bool:
        return bool(self.luma_strength or self.chroma_strength)

    def standard_quality(self) -> int | None:
        """The lowest libjpeg quality 1..100 whose scaled standard tables these are, or None."""
        return _standard_qualities().get((self.luma, self.chroma or None))

    def describe(self) -> str:
        """A few words for ``fcz info``, e.g. "IJG quality 75 tables, 4:2:0, moved up to 6/16 and 5/16 of a step"."""
        quality = self.standard_quality()
        tables = f"IJG quality {quality} tables" if quality else "its own tables"
        layout = "greyscale" if not self.chroma else {(1, 1): "4:4:4", (2, 1): "4:2:2", (1, 2): "4:4:0",
                                                      (2, 2): "4:2:0"}[self.sampling]
        strengths = f"{self.luma_strength}/16" + (f" and {self.chroma_strength}/16" if self.chroma else "")
        return f"{tables}, {layout}, moved up to {strengths} of a step"

    def validate(self, strengths: bool = True) -> None:
        """Raise FczError unless every field is in range: the tables' sizes and steps, the sampling and (unless
        ``strengths`` is False: a source's lattice before the encoder chose them) the strengths."""
        if len(self.luma) != TABLE_SIZE or len(self.chroma) not in (0, TABLE_SIZE):
            raise FczError("corrupt file: a JPEG source table without 64 steps")
        if not all(1 <= step <= 255 for step in self.luma + self.chroma):
            raise FczError("corrupt file: a JPEG source quantization step outside 1..255")
        if not all(f in FACTORS for f in self.sampling) or (not self.chroma and self.sampling != (1, 1)):
            raise FczError(f"corrupt file: JPEG source subsampling {self.sampling}")
        if not strengths:
            return
        strengths = (self.luma_strength, self.chroma_strength)
        if not all(0 <= s <= MAX_STRENGTH for s in strengths) or not any(strengths) or (
                not self.chroma and self.chroma_strength):
            raise FczError(f"corrupt file: JPEG source strengths {strengths} (0..{MAX_STRENGTH}, "
                           f"not both 0, chroma 0 for greyscale)")


@functools.cache
def _standard_qualities() -> dict[tuple[tuple[int, ...], tuple[int, ...] | None], int]:
    """(luma table, chroma table or None for greyscale) -> the lowest quality that scales the standard ones to them."""
    found: dict[tuple[tuple[int, ...], tuple[int, ...] | None], int] = {}
    for quality in range(100, 0, -1):   # downwards, so the lowest quality of tables that repeat stays
        luma, chroma = scaled_table(STANDARD_LUMA, quality), scaled_table(STANDARD_CHROMA, quality)
        found[luma, chroma] = found[luma, None] = quality
    return found


def scaled_table(table: tuple[int, ...], quality: int) -> tuple[int, ...]:
    """libjpeg's ``jpeg_set_quality`` scaling of a standard table (baseline: steps clamped to 1..255)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return tuple(min(255, max(1, (step * scale + 50) // 100)) for step in table)


def pack_block(lattice: SourceLattice) -> bytes:
    """A SourceLattice with a strength above 0 -> the bytes of its block."""
    lattice.validate()
    sampling = (lattice.sampling[0] << 4 | lattice.sampling[1]) if lattice.chroma else 0
    strengths = lattice.luma_strength << 4 | lattice.chroma_strength
    quality = lattice.standard_quality()
    if quality is not None:
        return _HEAD.pack(sampling, strengths, STANDARD) + bytes([quality])
    return _HEAD.pack(sampling, strengths, EXPLICIT) + bytes(lattice.luma + lattice.chroma)


def read_block(take: Callable[[int], bytes]) -> SourceLattice:
    """The block, read through ``take(n)`` (the next n bytes, or FczError) -> its SourceLattice, every field checked."""
    sampling, strengths, form = _HEAD.unpack(take(_HEAD.size))
    colour = sampling != 0
    if form == STANDARD:
        quality = take(1)[0]
        if not 1 <= quality <= 100:
            raise FczError(f"corrupt file: JPEG source quality {quality} (1..100)")
        luma = scaled_table(STANDARD_LUMA, quality)
        chroma = scaled_table(STANDARD_CHROMA, quality) if colour else ()
    elif form == EXPLICIT:
        luma = tuple(take(TABLE_SIZE))
        chroma = tuple(take(TABLE_SIZE)) if colour else ()
    else:
        raise FczError(f"corrupt file: JPEG source table form {form} (0 standard, 1 explicit)")
    lattice = SourceLattice(luma, chroma, (sampling >> 4, sampling & 15) if colour else (1, 1),
                            strengths >> 4, strengths & 15)
    lattice.validate()
    if form == EXPLICIT and lattice.standard_quality() is not None:
        raise FczError("corrupt file: explicit JPEG source tables that are standard ones (written as a quality)")
    return lattice
