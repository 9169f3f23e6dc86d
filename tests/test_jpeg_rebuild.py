"""Lossless files of pixels as a JPEG rebuilt from them (facecodec.jpeg_rebuild, the jpeg-rebuilt family).

``encode(lossless=True)`` of pixels (no JPEG file to keep) codes them with the pixel coder and as a rebuilt JPEG with
its residual, and keeps the smaller; either decodes to exactly the pixels.
"""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image
from skimage.data import astronaut

import facecodec
from facecodec import jpeg_file, jpeg_rebuild
from facecodec.bitstream import FczError, pack, unpack
from facecodec.zoo import lossless_weights_id

REBUILT = lossless_weights_id(rebuilt_jpeg=True)
PIXELS = lossless_weights_id()


def decoded_jpeg(pixels: np.ndarray, **options) -> np.ndarray:
    """The pixels a JPEG of ``pixels`` decodes to: what a PNG made from a JPEG holds."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", **{"quality": 75, **options})
    return np.asarray(Image.open(out))


def face(height: int = 101, width: int = 97, mode: str = "RGB") -> np.ndarray:
    return np.asarray(Image.fromarray(astronaut()[30:30 + height, 170:170 + width]).convert(mode))


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("mode, options", [
    ("RGB", {"subsampling": 2}), ("RGB", {"subsampling": 0}), ("L", {}), ("RGB", {"quality": 40}),
    ("RGB", {"qtables": [[4 + (i % 8) + 2 * (i // 8) for i in range(64)]] * 2, "subsampling": 2}),
])
def test_pixels_decoded_from_a_jpeg_come_back_exactly_in_a_fraction_of_the_pixel_coders_bytes(mode, options):
    pixels = decoded_jpeg(face(160, 144, mode), **options)
    data = facecodec.encode(png(pixels), lossless=True)
    header = facecodec.read_header(data)
    assert (header.weights_id, header.mode) == (REBUILT, mode)
    decoded = facecodec.decode(data)
    assert decoded.mode == mode and np.array_equal(np.asarray(decoded), pixels)
    pixel_coder = facecodec.encode(png(pixels), lossless=True, weights_id=PIXELS)
    assert len(data) < 0.7 * len(pixel_coder)


def test_a_face_cropped_off_the_jpeg_grid_keeps_it():
    """Pixels of a JPEG cropped 5 columns and 3 rows in: the rebuilt JPEG has those 5 columns and 3 rows before them
    (its grid's), and takes a fraction of the pixel coder's bytes (measured 62 against 253 KB on 8 such faces/val)."""
    pixels = np.ascontiguousarray(decoded_jpeg(face(168, 152))[3:, 5:])
    assert jpeg_rebuild.grid_offset(pixels) == (5, 3)
    data = facecodec.encode(png(pixels), lossless=True)
    assert facecodec.read_header(data).weights_id == REBUILT
    assert np.array_equal(np.asarray(facecodec.decode(data)), pixels)
    assert len(data) < 0.7 * len(facecodec.encode(png(pixels), lossless=True, weights_id=PIXELS))
    small = np.asarray(facecodec.decode(data, reduce=1), dtype=np.float64)
    assert small.shape == (83, 74, 3) and abs(small.mean() - pixels.mean()) < 0.5


def test_the_estimate_finds_the_tables_of_the_jpeg_the_pixels_came_from():
    out = io.BytesIO()
    Image.fromarray(face(200, 200)).save(out, "JPEG", quality=75, subsampling=2)
    source = Image.open(out)
    luma, chroma = jpeg_rebuild.estimate_tables(np.asarray(source), grey=False, subsampling=2)
    # where the picture has coefficients off zero (the low frequencies), the steps are the JPEG's own; chroma, read
    # back through the upsampler, at most one off
    low = [k for k in range(64) if k % 8 + k // 8 <= 3]
    assert [luma[k] for k in low] == [source.quantization[0][k] for k in low]
    misses = [abs(chroma[k] - source.quantization[1][k]) for k in low]
    assert max(misses) <= 1 and misses.count(0) >= 0.7 * len(low)


def test_pixels_that_never_were_a_jpeg_keep_the_pixel_coder_and_any_pixels_round_trip():
    data = facecodec.encode(png(face()), lossless=True)   # scikit-image's astronaut, never a JPEG at this size
    assert facecodec.read_header(data).weights_id == PIXELS
    noise = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    # named, the rebuilt family codes them too: a large residual, still exact
    named = facecodec.encode(png(noise), lossless=True, weights_id=REBUILT)
    assert np.array_equal(np.asarray(facecodec.decode(named)), noise)


def test_thumbnails_are_the_rebuilt_jpegs_own_and_keep_the_brightness():
    pixels = decoded_jpeg(face(160, 144))
    data = facecodec.encode(png(pixels), lossless=True)
    small = np.asarray(facecodec.decode(data, reduce=2), dtype=np.float64)
    assert small.shape == (40, 36, 3)
    assert abs(small.mean() - pixels.mean()) < 0.5


def _with_payload(data: bytes, payload: bytes) -> bytes:
    header, _ = unpack(data)
    return pack(header, payload)


@pytest.mark.parametrize("damage", [
    lambda p: p[:6] + p[10:],                                       # 4 bytes of the Lepton stream lost
    lambda p: struct.pack("<I", len(p)) + p[4:],                    # the Lepton stream's length runs past the end
    lambda p: p[:-40] + bytes(36) + p[-4:],                         # the residual's stream damaged
    lambda p: p[:-4] + b"\x00\x00\x00\x00" + p[-4:],                # bytes after the residual's end marker
])
def test_a_damaged_payload_is_one_fczerror(damage):
    data = facecodec.encode(png(decoded_jpeg(face())), lossless=True)
    _, payload = unpack(data)
    with pytest.raises(FczError, match="corrupt file"):
        facecodec.decode(_with_payload(data, jpeg_file.padded(damage(jpeg_file.unpadded(payload)))))
