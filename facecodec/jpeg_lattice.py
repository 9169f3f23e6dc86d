"""JPEG-consistent decoding: a decode moved back onto the quantization lattice of the JPEG it was coded from.

Most face photos are JPEGs. A JPEG's pixels are the inverse DCT of 8x8 blocks whose coefficients are integer
multiples of its quantization tables (luma at full resolution, chroma often at half), so a picture decoded from a
JPEG is a point of a lattice that a block-DCT codec finds again at high rates and a wavelet codec does not. Here a
decoder that knows the source's tables (the file's JPEG source block, bitstream.lattice) takes fcz's decoded
pixels to JPEG's YCbCr planes, their 8x8 DCT coefficients, and moves each coefficient that lies within
``strength``/16 of a step of a lattice point onto it; farther ones are left as they are. The encoder, which has
the source pixels, chooses the two strengths (luma, chroma) that bring the decode closest to them, or none::

    decoded RGB -> JFIF YCbCr -> Y: 8x8 DCT -> move near-lattice coefficients -> inverse DCT -> the change to Y
                              -> Cb, Cr: down to the source's chroma grid (inverting its upsampling) -> 8x8 DCT
                                 -> move -> inverse DCT -> the change, upsampled as a JPEG decoder does
               -> YCbCr + the changes -> RGB -> rounded to 8 bits

Measured on faces/val as saved (JPEG quality 75): +1.9 dB at quality 50, +3.2 at 60, the same payload
(docs/results.md, "JPEG sources"). The decoder's model of the source (a float DCT, triangle upsampling) is close to
libjpeg's, not bit-exact, so at the highest qualities, where fcz's own error is below a JPEG decoder's rounding,
the encoder chooses no moving at all.

numpy only. Images are worked on in strips of rows, each with a margin, so memory follows the strip, not the image;
encoder and decoder use the same strips, so they compute the same pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from facecodec.bitstream.errors import FczError
from facecodec.bitstream.lattice import SourceLattice, pack_block

ORIENTATION = 0x0112                 # the EXIF tag that says how a picture is turned
SOURCE_KEY = "fcz_jpeg_source"      # where facecodec.image_io leaves a JPEG input's JpegSource in the image's info
STRIP_ROWS = 256                     # output rows per strip (a multiple of 16, a 4:2:0 JPEG's block row)
MARGIN_ROWS = 32                     # rows of context above and below a strip: two block rows of 4:2:0 chroma
STRENGTHS = (0, 2, 3, 4, 5, 6, 7, 8)  # the strengths the encoder tries, in sixteenths of a step
UPSAMPLING_INVERSIONS = 3            # refinements of the chroma grid's estimate (each shrinks its error by >= 2)
# A file grows by the block's bytes; the encoder keeps the block only where its gain is worth them at the rate
# curve's slope, about 5 dB per doubling of the file at mid rates (measured on faces/val).
DB_PER_DOUBLING = 5.0

# JFIF's full-range YCbCr (ITU-R BT.601 weights), as JPEG files use; rows: Y, Cb, Cr from R, G, B.
RGB_TO_YCC = np.array([[0.299, 0.587, 0.114],
                       [-0.168735892, -0.331264108, 0.5],
                       [0.5, -0.418687589, -0.081312411]])
YCC_TO_RGB = np.linalg.inv(RGB_TO_YCC)
CENTRE = np.array([0.0, 128.0, 128.0])  # Cb and Cr are stored offset by 128
RGB_ERROR_WEIGHTS = YCC_TO_RGB.T @ YCC_TO_RGB  # an error in YCbCr -> its squared error summed over R, G, B


def _dct_matrix() -> np.ndarray:
    """The orthonormal 8-point DCT-II: JPEG's forward DCT of a block is ``D @ block @ D.T`` (ITU-T T.81 A.3.3)."""
    k, n = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    d = np.sqrt(2 / 8) * np.cos((2 * n + 1) * k * np.pi / 16)
    d[0] /= np.sqrt(2)
    return d


DCT = _dct_matrix()


@dataclass(frozen=True)
class JpegSource:
    """What a JPEG input brings besides its pixels: its lattice (strengths 0: the encoder chooses them; None where
    ``source_lattice`` finds none) and the JPEG file's bytes (None where the file cannot give them back: a pipe),
    against which a .fcz of it is weighed, and which a lossless encode keeps (facecodec.jpeg_file)."""

    lattice: SourceLattice | None
    file: bytes | None

    @property
    def file_bytes(self) -> int | None:
        return None if self.file is None else len(self.file)


def jpeg_source(image: Image.Image) -> JpegSource | None:
    """An image as Pillow opened it -> its JpegSource if it is a JPEG, else None."""
    if image.format != "JPEG":
        return None
    return JpegSource(source_lattice(image), _file_of(image))


def _file_of(image: Image.Image) -> bytes | None:
    """The bytes of the file Pillow opened ``image`` from: its open file, or (Pillow closes a file it opened by path
    once the pixels are loaded) that path read again; None where neither is left. What uses them checks them
    against the pixels (facecodec.jpeg_file.kept_jpeg), so a file changed since is never taken for the image."""
    file = getattr(image, "fp", None)
    try:
        here = file.tell()
        file.seek(0)
        data = file.read()
        file.seek(here)
        return data
    except (AttributeError, OSError, ValueError):   # no file left, or one that cannot seek (a pipe)
        pass
    try:
        return Path(image.filename).read_bytes() if getattr(image, "filename", "") else None
    except (OSError, TypeError, ValueError):
        return None


def source_lattice(image: Image.Image) -> SourceLattice | None:
    """The lattice of a JPEG image as Pillow opened it (strengths 0: the encoder chooses them), or None.

    None for anything but a YCbCr or greyscale JPEG with 8-bit tables whose chroma planes share one table and are
    subsampled by 1 or 2, and for an image that an EXIF orientation turns (its blocks would no longer start at the
    picture's corner).
    """
    tables, layer = getattr(image, "quantization", None), getattr(image, "layer", None)
    if image.format != "JPEG" or not tables or not layer or image.mode not in ("RGB", "L"):
        return None
    if image.getexif().get(ORIENTATION, 1) != 1 or image.info.get("adobe_transform") == 0:  # turned, or RGB inside
        return None
    try:
        luma = tuple(int(v) for v in tables[layer[0][3]])
        if image.mode == "L":
            lattice = SourceLattice(luma)
        else:
            (_, h_max, v_max, _), cb, cr = layer
            if cb[1:] != cr[1:] or h_max % cb[1] or v_max % cb[2]:
                return None
            lattice = SourceLattice(luma, tuple(int(v) for v in tables[cb[3]]), (h_max // cb[1], v_max // cb[2]))
        lattice.validate(strengths=False)   # 12-bit tables (steps above 255), subsampling by 3 or 4
    except (KeyError, IndexError, ValueError, TypeError, FczError):   # whatever tables Pillow hands over
        return None
    return lattice


def snap(pixels: np.ndarray, lattice: SourceLattice) -> np.ndarray:
    """Decoded pixels (``H x W x 3`` RGB or ``H x W`` greyscale, uint8) moved onto ``lattice`` -> uint8, same shape."""
    out = np.empty_like(pixels)
    for top, bottom, strip, (keep_top, keep_bottom) in _strips(pixels):
        ycc = to_ycc(strip)
        offsets = _Offsets(ycc, lattice)
        if lattice.luma_strength:
            ycc[0] += offsets.luma_change(lattice.luma_strength)
        if lattice.chroma_strength and offsets.chroma:
            ycc[1:] += offsets.chroma_change(lattice.chroma_strength)
        out[top:bottom] = _to_pixels(ycc[:, keep_top:keep_bottom], pixels.ndim)
    return out


def best_strengths(lattice: SourceLattice, original: np.ndarray, decoded: np.ndarray,
                   payload_bytes: int) -> SourceLattice | None:
    """The strengths (``STRENGTHS``, luma and chroma) that bring ``decoded`` closest to ``original`` (uint8 pixels
    as ``snap`` takes) in squared RGB error, or None where moving does not pay for the block's bytes.

    The error of each pair is summed in YCbCr without forming the pair's pixels: with e the decode's error and L, C
    the luma and chroma changes, |e + L + C|^2 (weighted to RGB) splits into terms of e and L, of e and C, and L.C.
    """
    weights = RGB_ERROR_WEIGHTS
    luma_terms, chroma_terms, cross = np.zeros(len(STRENGTHS)), np.zeros(len(STRENGTHS)), np.zeros((len(STRENGTHS),) * 2)
    plain = 0.0
    chroma_strengths = STRENGTHS if lattice.chroma else (0,)
    for top, bottom, strip, (keep_top, keep_bottom) in _strips(decoded):
        ycc = to_ycc(strip)
        target = to_ycc(original[top - keep_top:top - keep_top + strip.shape[0]].astype(np.float64))
        e = (ycc - target)[:, keep_top:keep_bottom]
        g = weights[:len(e), :len(e)]
        ge = np.einsum("ij,jhw->ihw", g, e)
        plain += float(np.vdot(e, ge))
        offsets = _Offsets(ycc, lattice)
        luma = np.stack([offsets.luma_change(s)[keep_top:keep_bottom] for s in STRENGTHS])
        luma_terms += 2 * np.einsum("shw,hw->s", luma, ge[0]) + g[0, 0] * np.einsum("shw,shw->s", luma, luma)
        if offsets.chroma:
            chroma = np.stack([offsets.chroma_change(s)[:, keep_top:keep_bottom] for s in STRENGTHS])
            gc = np.einsum("ij,sjhw->sihw", g[1:, 1:], chroma)
            chroma_terms += 2 * np.einsum("sjhw,jhw->s", chroma, ge[1:]) + np.einsum("sjhw,sjhw->s", chroma, gc)
            cross += 2 * np.einsum("ahw,bjhw,j->ab", luma, chroma, g[0, 1:])
    costs = {(a, b): plain + luma_terms[i] + chroma_terms[j] + cross[i, j]
             for i, a in enumerate(STRENGTHS) for j, b in enumerate(STRENGTHS) if b in chroma_strengths}
    # Near-ties go to the plain decode and the weaker moves, so machines whose floats differ in the last bits choose alike.
    best = min(costs, key=lambda pair: (costs[pair] * (1 + 1e-9 * (pair != (0, 0))), pair))
    if best == (0, 0):
        return None
    chosen = SourceLattice(lattice.luma, lattice.chroma, lattice.sampling, *best)
    # The choice weighs the changes before rounding to 8 bits; at high rates rounding can undo them: check the pixels.
    plain_error = _squared_error(original, decoded)
    error = _squared_error(original, snap(decoded, chosen))
    gain_db = 10 * np.log10(plain_error / error) if error > 0 else np.inf
    return chosen if gain_db > DB_PER_DOUBLING * np.log2(1 + len(pack_block(chosen)) / max(payload_bytes, 1)) else None


def _squared_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sum((a.astype(np.float64) - b) ** 2))


# --- the steps --------------------------------------------------------------------------------------------------

def _strips(pixels: np.ndarray):
    """(top, bottom, rows top - margin .. bottom + margin as float64, (first, last) row of top..bottom in them)."""
    height = pixels.shape[0]
    for top in range(0, height, STRIP_ROWS):
        bottom = min(height, top + STRIP_ROWS)
        start, stop = max(0, top - MARGIN_ROWS), min(height, bottom + MARGIN_ROWS)
        yield top, bottom, pixels[start:stop].astype(np.float64), (top - start, bottom - start)


def to_ycc(pixels: np.ndarray) -> np.ndarray:
    """RGB ``h x w x 3`` -> JFIF Y, Cb, Cr planes ``3 x h x w``; greyscale ``h x w`` -> ``1 x h x w``."""
    if pixels.ndim == 2:
        return pixels[None].astype(np.float64)
    return np.einsum("ij,hwj->ihw", RGB_TO_YCC, pixels) + CENTRE[:, None, None]


def _to_pixels(ycc: np.ndarray, ndim: int) -> np.ndarray:
    if ndim == 2:
        return np.clip(np.rint(ycc[0]), 0, 255).astype(np.uint8)
    rgb = np.einsum("ij,jhw->hwi", YCC_TO_RGB, ycc - CENTRE[:, None, None])
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


class _Offsets:
    """A strip's 8x8 DCT coefficients and their offsets from the lattice, in steps, worked out once for the
    strengths an encoder tries: luma on Y itself, chroma on the source's chroma grid."""

    def __init__(self, ycc: np.ndarray, lattice: SourceLattice) -> None:
        self.shape = ycc.shape[1:]
        self.factors = lattice.sampling[1], lattice.sampling[0]   # rows, columns
        self.luma = _offsets(_padded(ycc[0], 8, 8), lattice.luma)
        self.chroma = []
        if len(ycc) == 3 and lattice.chroma:
            fy, fx = self.factors
            for plane in ycc[1:]:
                full = _padded(plane, 8 * fy, 8 * fx)
                grid = _down(full, fy, fx)
                for _ in range(UPSAMPLING_INVERSIONS):   # the chroma grid whose JPEG upsampling is closest to the plane
                    grid += _down(full - upsampled(grid, fy, fx), fy, fx)
                self.chroma.append(_offsets(grid, lattice.chroma))

    def luma_change(self, strength: int) -> np.ndarray:
        """What moving Y's near-lattice coefficients onto the lattice adds to Y (``h x w``)."""
        h, w = self.shape
        return _change(*self.luma, strength)[:h, :w]

    def chroma_change(self, strength: int) -> np.ndarray:
        """What moving the chroma grids' near-lattice coefficients adds to Cb and Cr (``2 x h x w``), upsampled."""
        h, w = self.shape
        return np.stack([upsampled(_change(*part, strength), *self.factors)[:h, :w] for part in self.chroma])


def _offsets(plane: np.ndarray, table: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """A plane (sides multiples of 8) -> (its blocks' DCT coefficients' offsets from the lattice, in steps; the
    steps), blocks ``rows x cols x 8 x 8``."""
    h, w = plane.shape
    blocks = (plane - 128).reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3)
    steps = np.asarray(table, dtype=np.float64).reshape(8, 8)
    coefficients = DCT @ blocks @ DCT.T
    return coefficients / steps - np.rint(coefficients / steps), steps


def _change(offset: np.ndarray, steps: np.ndarray, strength: int) -> np.ndarray:
    """The change, in pixels, that moves the coefficients within ``strength``/16 of a step onto the lattice."""
    rows, cols = offset.shape[:2]
    change = np.where(np.abs(offset) < strength / 16, -offset * steps, 0.0)
    return (DCT.T @ change @ DCT).transpose(0, 2, 1, 3).reshape(8 * rows, 8 * cols)


def _padded(plane: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Edges repeated out to multiples of ``rows`` x ``cols``, as a JPEG encoder fills its last blocks."""
    h, w = plane.shape
    return np.pad(plane, ((0, -h % rows), (0, -w % cols)), mode="edge")


def _down(plane: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """Box averages of ``fy x fx`` pixels: a JPEG encoder's chroma subsampling (sides multiples of the factors)."""
    h, w = plane.shape
    return plane.reshape(h // fy, fy, w // fx, fx).mean(axis=(1, 3))


def upsampled(plane: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """Triangle upsampling by ``fy x fx`` (each 1 or 2), libjpeg's "fancy" upsampling: each output sample is 3/4 of
    its own input sample and 1/4 of the next one towards it, edges repeated."""
    for axis, factor in ((0, fy), (1, fx)):
        if factor == 2:
            a = np.moveaxis(plane, axis, 0)
            before, after = np.concatenate([a[:1], a[:-1]]), np.concatenate([a[1:], a[-1:]])
            out = np.empty((2 * a.shape[0],) + a.shape[1:])
            out[0::2], out[1::2] = 0.75 * a + 0.25 * before, 0.75 * a + 0.25 * after
            plane = np.moveaxis(out, 0, axis)
    return plane
