"""Lossless coding of pixels decoded from a JPEG: the JPEG rebuilt from the pixels alone, and what it misses.

Most face pixels people hold were decoded from a JPEG (all three face sets here were). Such pixels are fixed by the
JPEG's quantized DCT coefficients, which take 1-2 bits a pixel where the best pixel coders need 4-6. Given only the
pixels (a PNG, say), the encoder rebuilds a JPEG that decodes to nearly the same pixels and keeps the difference::

    encode: pixels -> the source JPEG's 8 x 8 grid (``grid_offset``: a face cropped off it keeps it) -> YCbCr -> block
            DCT -> per frequency, the coarsest quantization step whose lattice the coefficients sit on
            (``estimate_tables``; luma, and chroma at half and at full resolution)
            -> libjpeg (Pillow) encodes the pixels with those tables, 4:2:0 and 4:4:4 (and chroma's 16-pixel
            phases) -> the one whose decode misses fewest samples, encoded again and again with its decode's miss
            added to its input (an error-feedback projection back onto the source's coefficients) -> the JPEG that
            missed fewest -> Lepton's stream of it (facecodec.jpeg_file) + the residual, pixels minus that decode
            modulo 256, through LZMA2 (mostly zeros)
    decode: Lepton -> the JPEG -> libjpeg's decode (as the jpeg-file family's) + the residual: the pixels, exactly

The decode is exact whatever the estimate: a wrong step only makes the residual larger, and the encoder keeps the
pixel coder's file where that is smaller (facecodec.codec), as for pixels that never were a JPEG's. As the kept JPEG
of a JPEG input (jpeg-lepton-v1), it counts on the decoder's libjpeg decoding a baseline JPEG as the encoder's did
(libjpeg-turbo's integer IDCT and upsampling; Pillow ships it). The payload is in bitstream/FORMAT.md ("Payload of
the jpeg-rebuilt family").
"""
from __future__ import annotations

import io
import lzma
import struct

import numpy as np
from PIL import Image

from facecodec import jpeg_file
from facecodec.bitstream import FczError
from facecodec.bitstream.lattice import STANDARD_CHROMA, STANDARD_LUMA
from facecodec.jpeg_lattice import DCT, to_ycc, upsampled

# The residual's coder: raw LZMA2 (no container: the payload says where it starts), one fixed dictionary size, which
# the decoder must name too; 1 MiB covers the repeats in a residual (a block's pattern recurs rows away). No literal
# context (lc = lp = pb = 0): a residual byte says nothing of the next (-1.2 % on 20 faces/val). The extreme preset
# takes 12 % off the residual (47.2 against 53.0 KB on those faces) in 6x the time (98 against 16 ms a 200 x 200
# face): used up to EXTREME_SAMPLES, beyond which it would take tens of seconds.
RESIDUAL_DICTIONARY = 1 << 20
EXTREME_SAMPLES = 3 << 20
RESIDUAL_DECODING = [{"id": lzma.FILTER_LZMA2, "dict_size": RESIDUAL_DICTIONARY}]
_HEAD = struct.Struct("<IBB")   # the Lepton stream's length, the grid offset's columns and rows (FORMAT.md)
MAX_OFFSET = 15                 # a 4:2:0 JPEG's chroma blocks repeat every 16 pixels

# The estimate reads a centred crop of at most this side (on the 16-pixel grid of 4:2:0 JPEG's blocks): 4,096 luma
# blocks, enough for every step, and bounded work on a large photo.
ESTIMATE_SIDE = 512
# A step is taken where this share of the coefficients it would not round to zero (at least MIN_SEEN of them) lie
# within TOLERANCE of its lattice (within 0.3 of the step for small steps): the coarsest such step. The decoded
# pixels' rounding puts a luma coefficient about 0.4 off its lattice point; chroma, read back through the upsampler,
# about twice that. Measured on faces/val, custom-table re-encodes of faces/train and the thumbnail set.
SHARE = 0.8
LUMA_TOLERANCE, CHROMA_TOLERANCE = 0.75, 1.05
LUMA_MIN_SEEN, CHROMA_MIN_SEEN = 3, 8
# Where a frequency's coefficients pin no step (too few off zero), the step is the JPEG standard's example table's
# (ITU T.81 Annex K) scaled as the steps found are: large where the picture has nothing, which codes it as zero.
ANNEX_K_LUMA, ANNEX_K_CHROMA = np.array(STANDARD_LUMA), np.array(STANDARD_CHROMA)
# Rounds of feeding a rebuilt JPEG's miss back into its input (``encode``). On 20 faces/val and 40 web thumbnails:
# 1.391 and 3.036 bpp with none, 1.124 and 2.429 after 4, 1.078 and 2.348 after 8, 1.067 and 2.326 after 12, 1.056
# and 2.314 after 20; each round is one libjpeg encode and decode (a few ms a face).
FEEDBACK_ROUNDS = 10
# libjpeg's subsampling codes as Pillow's ``subsampling`` takes them: 2 is 4:2:0, 0 is 4:4:4.
SUBSAMPLINGS = {2: True, 0: False}   # -> whether the chroma planes are at half resolution


def block_dct(plane: np.ndarray) -> np.ndarray:
    """The DCT coefficients (``N x 64``, natural order) of the 8 x 8 blocks of ``plane`` (level-shifted by 128) that lie
    wholly inside it."""
    h, w = plane.shape[0] // 8 * 8, plane.shape[1] // 8 * 8
    blocks = (plane[:h, :w] - 128).reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    return (DCT @ blocks @ DCT.T).reshape(-1, 64)


def _centre(pixels: np.ndarray) -> np.ndarray:
    """At most ``ESTIMATE_SIDE`` pixels a side of ``pixels``, from the middle, starting on the 16-pixel grid."""
    crop = []
    for size in pixels.shape[:2]:
        start = max(0, (size - ESTIMATE_SIDE) // 2) // 16 * 16
        crop.append(slice(start, start + ESTIMATE_SIDE))
    return pixels[tuple(crop)]


def lattice_steps(coefficients: np.ndarray, tolerance: float, min_seen: int, reference: np.ndarray) -> list[int]:
    """Per frequency of ``coefficients`` (``N x 64``), the coarsest quantization step (2..255) whose lattice holds them
    (see SHARE); where none is pinned, ``reference`` scaled as the pinned steps are."""
    steps = np.zeros(64, dtype=np.int64)
    for k in range(64):
        c = coefficients[:, k]
        largest = int(min(255, 2 * np.abs(c).max(initial=0) + 2))
        if largest < 2:
            continue
        q = np.arange(2, largest + 1)[:, None]
        seen = np.abs(c) >= 0.5 * q                       # the coefficients step q would not round to zero
        near = np.abs(c - q * np.round(c / q)) < np.minimum(tolerance, 0.3 * q)
        count = seen.sum(axis=1)
        held = np.flatnonzero((count >= min_seen) & ((near & seen).sum(axis=1) >= SHARE * count))
        if len(held):
            steps[k] = held[-1] + 2
    pinned = steps > 0
    scale = float(np.median(steps[pinned] / reference[pinned])) if pinned.any() else 1.0
    guess = np.clip(np.round(reference * scale), 1, 255).astype(np.int64)
    return np.where(pinned, steps, guess).tolist()


def _upsampled_1d_transposed(g: np.ndarray, axis: int) -> np.ndarray:
    """The transpose of libjpeg's triangle upsampling by 2 along ``axis`` (facecodec.jpeg_lattice.upsampled): the
    gradient of a least-squares fit through it."""
    g = np.moveaxis(g, axis, 0)
    even, odd = g[0::2], g[1::2]
    c = 0.75 * (even + odd)
    c[:-1] += 0.25 * even[1:]
    c[0] += 0.25 * even[0]
    c[1:] += 0.25 * odd[:-1]
    c[-1] += 0.25 * odd[-1]
    return np.moveaxis(c, 0, axis)


def half_resolution(plane: np.ndarray, steps: int = 30) -> np.ndarray:
    """The half-resolution plane whose fancy upsampling comes closest to ``plane`` (least squares, gradient steps
    from the 2 x 2 means): a decoder's chroma plane before it was upsampled."""
    h, w = plane.shape
    full = np.pad(plane, ((0, h % 2), (0, w % 2)), mode="edge")
    c = full.reshape(full.shape[0] // 2, 2, full.shape[1] // 2, 2).mean(axis=(1, 3))
    for _ in range(steps):
        # 0.4 < 2 / 4, the largest eigenvalue of the upsampler's normal matrix: the steps converge
        misfit = upsampled(c, 2, 2) - full
        c -= 0.4 * _upsampled_1d_transposed(_upsampled_1d_transposed(misfit, 1), 0)
    return c


def estimate_tables(pixels: np.ndarray, grey: bool, subsampling: int = 2) -> list[list[int]]:
    """The quantization tables (natural order) a JPEG of ``pixels`` (``H x W x 3`` uint8, on the JPEG's grid) had,
    estimated from them: the luma table and, for colour, the chroma one as at ``subsampling`` (Pillow's code: 2 for
    4:2:0, 0 for 4:4:4)."""
    y, cb, cr = to_ycc(_centre(pixels))
    luma = lattice_steps(block_dct(y), LUMA_TOLERANCE, LUMA_MIN_SEEN, ANNEX_K_LUMA)
    if grey:
        return [luma]
    planes = [half_resolution(p) for p in (cb, cr)] if SUBSAMPLINGS[subsampling] else [cb, cr]
    chroma = np.concatenate([block_dct(p) for p in planes])
    return [luma, lattice_steps(chroma, CHROMA_TOLERANCE, CHROMA_MIN_SEEN, ANNEX_K_CHROMA)]


def _jpeg(pixels: np.ndarray, tables: list[list[int]], subsampling: int, grey: bool) -> bytes:
    image = Image.fromarray(pixels[..., 0] if grey else pixels)
    out = io.BytesIO()
    image.save(out, "JPEG", qtables=tables, subsampling=subsampling)
    return jpeg_file.image_data(out.getvalue())


def grid_offset(pixels: np.ndarray) -> tuple[int, int]:
    """Where the 8 x 8 grid of the JPEG that ``pixels`` came from lies: (columns, rows) it had left of and above
    the pixels' first ones, 0..7 (a face cropped off the grid: 3, 5). The grid's blocks are the ones whose high
    frequencies the JPEG zeroed; this is the shift that puts the most of them within half a level of zero."""
    crop = _centre(pixels)[:ESTIMATE_SIDE // 2, :ESTIMATE_SIDE // 2]
    luma = to_ycc(crop)[0]
    high = np.add.outer(np.arange(8), np.arange(8)).ravel() >= 4

    def zeroed(dx: int, dy: int) -> float:
        coefficients = block_dct(luma[(8 - dy) % 8:, (8 - dx) % 8:])[:, high]
        return float((np.abs(coefficients) < 0.5).mean()) if coefficients.size else 0.0   # no whole block: 0

    score = {(dx, dy): zeroed(dx, dy) for dy in range(8) for dx in range(8)}
    return max(score, key=score.get)


def _on_grid(pixels: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``pixels`` with ``dx`` columns and ``dy`` rows before them (their edge repeated): the JPEG's grid from 0."""
    return np.pad(pixels, ((dy, 0), (dx, 0), (0, 0)), mode="edge")


def _miss(pixels: np.ndarray, jpeg: bytes, grey: bool, dx: int, dy: int) -> np.ndarray:
    """``pixels`` (``H x W x 3``) less the decode of ``jpeg`` (its grid ``dx``, ``dy`` before them): ``C x H x W``
    int16 (C = 1 for grey)."""
    h, w = pixels.shape[:2]
    channels = 1 if grey else 3
    decoded = jpeg_file.decode_pixels(jpeg, w + dx, h + dy)[:channels, dy:, dx:]
    return pixels.transpose(2, 0, 1)[:channels].astype(np.int16) - decoded


def encode(pixels: np.ndarray, grey: bool) -> bytes | None:
    """Pixels ``H x W x 3`` (uint8; all three equal for a greyscale image, ``grey``) -> the jpeg-rebuilt family's
    payload, or None where Lepton codes none of the JPEGs tried."""
    h, w = pixels.shape[:2]
    dx, dy = grid_offset(pixels)
    best = None   # (samples missed, JPEG, miss, grid offset): only the best is held, a large photo's misses being large
    for subsampling in (0,) if grey else SUBSAMPLINGS:
        # The luma grid repeats every 8 pixels, a 4:2:0 JPEG's chroma every 16: of the offsets that fit the luma, the
        # one whose first JPEG and residual come out smallest (a quick LZMA) goes on; 8 more columns or rows cost
        # their own blocks, so fewer missed samples alone would not do (+0.8 % on faces/val, whose grid is at 0). A
        # picture on the luma grid is taken to be on the chroma one too (not cropped by an odd multiple of 8): the
        # other three offsets took an uncropped face's encode from 86 to 252 ms.
        offsets = [(dx, dy)] if grey or not SUBSAMPLINGS[subsampling] or not (dx or dy) else \
            [(dx, dy), (dx + 8, dy), (dx, dy + 8), (dx + 8, dy + 8)]
        first = []
        for ox, oy in offsets:
            grid = _on_grid(pixels, ox, oy)
            tables = estimate_tables(grid, grey, subsampling)
            jpeg = _jpeg(grid, tables, subsampling, grey)
            guess = len(jpeg) + len(lzma.compress(_miss(pixels, jpeg, grey, ox, oy).astype(np.uint8).tobytes(),
                                                  preset=0))
            first.append((guess, ox, oy, tables))
        _, ox, oy, tables = min(first, key=lambda t: t[0])
        # libjpeg's rounding of the decoded pixels' coefficients lands a step off the source's in some blocks;
        # feeding each decode's miss back into libjpeg's input and encoding again moves most of them back.
        source = _on_grid(pixels, ox, oy).astype(np.int16)
        for _ in range(FEEDBACK_ROUNDS + 1):
            jpeg = _jpeg(np.clip(source, 0, 255).astype(np.uint8), tables, subsampling, grey)
            miss = _miss(pixels, jpeg, grey, ox, oy)
            missed = np.count_nonzero(miss)
            if best is None or missed < best[0]:
                best = missed, jpeg, miss, (ox, oy)
            if not missed:
                break
            source[oy:, ox:] += miss.transpose(1, 2, 0)
    _, jpeg, miss, (dx, dy) = best
    stream = jpeg_file.lepton_stream(jpeg, w + dx, h + dy)
    if stream is None:
        return None
    residual = miss.astype(np.uint8)   # modulo 256: the decoder adds it back modulo 256
    preset = 9 | (lzma.PRESET_EXTREME if residual.size <= EXTREME_SAMPLES else 0)
    coded = lzma.compress(residual.tobytes(), format=lzma.FORMAT_RAW, filters=[
        {"id": lzma.FILTER_LZMA2, "preset": preset, "dict_size": RESIDUAL_DICTIONARY, "lc": 0, "lp": 0, "pb": 0}])
    return jpeg_file.padded(_HEAD.pack(len(stream), dx, dy) + stream + coded)


def decode(payload: bytes, width: int, height: int, grey: bool, reduce: int = 0) -> np.ndarray:
    """A jpeg-rebuilt payload -> the pixels ``3 x H x W`` (uint8) it was made from, exactly; ``reduce`` > 0: the
    rebuilt JPEG's own thumbnail (jpeg_file.decode_pixels; off the grid, its full decode area-averaged), without the
    residual, which holds full-size samples. FczError if the payload is damaged."""
    data = jpeg_file.unpadded(payload)
    if len(data) < _HEAD.size:
        raise FczError("corrupt file: the rebuilt-JPEG payload is too short")
    length, dx, dy = _HEAD.unpack_from(data)
    if dx > MAX_OFFSET or dy > MAX_OFFSET:
        raise FczError(f"corrupt file: the rebuilt JPEG's grid offset {dx}, {dy} is beyond {MAX_OFFSET}")
    if length > len(data) - _HEAD.size:
        raise FczError("corrupt file: the rebuilt JPEG runs past its payload")
    jpeg = jpeg_file.jpeg_of_stream(data[_HEAD.size:_HEAD.size + length], width + dx, height + dy)
    if reduce:
        if not (dx or dy):
            return jpeg_file.decode_pixels(jpeg, width, height, reduce)
        whole = jpeg_file.decode_pixels(jpeg, width + dx, height + dy)[:, dy:, dx:].transpose(1, 2, 0)
        size = (-(-width // 2 ** reduce), -(-height // 2 ** reduce))
        return jpeg_file.area_downscaled(whole, *size).transpose(2, 0, 1)
    pixels = jpeg_file.decode_pixels(jpeg, width + dx, height + dy)[:, dy:, dx:]
    samples = (1 if grey else 3) * width * height
    decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=RESIDUAL_DECODING)
    try:
        residual = decompressor.decompress(data[_HEAD.size + length:], max_length=samples)
    except lzma.LZMAError:
        raise FczError("corrupt file: the rebuilt JPEG's residual does not decode") from None
    if len(residual) != samples or not decompressor.eof or decompressor.unused_data:
        raise FczError("corrupt file: the rebuilt JPEG's residual is not the image's size")
    planes = np.frombuffer(residual, dtype=np.uint8).reshape(-1, height, width)
    return pixels + planes   # uint8: modulo 256, as the encoder took the difference
