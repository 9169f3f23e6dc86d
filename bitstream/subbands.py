"""Where the wavelet family's coefficients sit in its planes, and the order the payload visits the bands.

FORMAT.md ("Payload of the wavelet family": Symbols, Order) specifies both; this module is the
reference, and the transform (facecodec.models) lays its coefficients out by it.

A payload carries ``3 x H x W`` planes (Y, Cb, Cr; only Y for a greyscale image) in Mallat layout:
with sizes ``n(0) = H``, ``n(l) = ceil(n(l - 1) / 2)`` (likewise for W), level l = 1..``LEVELS``
splits the top-left ``n(l - 1) x m(l - 1)`` region into LL (rows ``< n(l)``, cols ``< m(l)``),
HL (rows ``< n(l)``, cols ``>= m(l)``), LH (rows ``>= n(l)``, cols ``< m(l)``) and HH (the rest);
the LL band of the last level stays top-left.
"""
from __future__ import annotations

LEVELS = 4
ORIENTATIONS = ("HL", "LH", "HH")   # HL: high-pass along W; LH: along H; HH: both
LL_INDEX = LEVELS                    # level index of the LL band in the tables (details: level - 1)


def level_sizes(n: int, levels: int = LEVELS) -> list[int]:
    """Size of the low band along one axis after 0, 1, .., ``levels`` levels: [n, ceil(n/2), ...]."""
    sizes = [n]
    for _ in range(levels):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def subbands(height: int, width: int, levels: int = LEVELS) -> list[tuple[int, str, slice, slice]]:
    """Every subband as (level, orientation, rows, cols) of a Mallat plane, in coding order.

    First (levels, "LL", ...); then for each level from ``levels`` down to 1 its HL, LH and
    HH bands. Some are empty for tiny images (a side of 1 has no high band).
    """
    hs, ws = level_sizes(height, levels), level_sizes(width, levels)
    bands = [(levels, "LL", slice(0, hs[levels]), slice(0, ws[levels]))]
    for level in range(levels, 0, -1):
        h0, h1, w0, w1 = hs[level], hs[level - 1], ws[level], ws[level - 1]
        bands += [(level, "HL", slice(0, h0), slice(w0, w1)),
                  (level, "LH", slice(h0, h1), slice(0, w0)),
                  (level, "HH", slice(h0, h1), slice(w0, w1))]
    return bands


def channels_coded(mode: str) -> int:
    """Planes in the payload: Y only for a greyscale image (its Cb and Cr are zero), else all three."""
    return 1 if mode == "L" else 3


def coding_order(height: int, width: int, channels: int, resolution_order: bool = True,
                 reduce: int = 0) -> list[tuple[int, int, str, slice, slice]]:
    """Every coded band as (plane, level, orientation, rows, cols), in the payload's order.

    ``resolution_order`` (format 3): band after band from the LL band down to level 1, each band
    in Y, Cb, Cr; a decoder can then stop after the coarse levels (``reduce``: the number of finest
    levels left out, 0..LEVELS, so a 1 / 2^reduce image can be synthesised). Otherwise (format 2)
    plane after plane, each plane's bands in the same order.
    """
    if reduce and not resolution_order:
        raise ValueError("only a resolution-ordered payload (format 3) can stop before the finest levels")
    if not 0 <= reduce <= LEVELS:
        raise ValueError(f"reduce must be 0..{LEVELS}, not {reduce}")
    bands = [b for b in subbands(height, width) if b[1] == "LL" or b[0] > reduce]
    if resolution_order:
        return [(c, *band) for band in bands for c in range(channels)]
    return [(c, *band) for c in range(channels) for band in bands]
