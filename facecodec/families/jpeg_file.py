"""The jpeg-file family: a JPEG input kept losslessly as its own coefficients (facecodec.jpeg_file)."""
from __future__ import annotations

import numpy as np

from facecodec import jpeg_file
from facecodec.bitstream import FczError
from facecodec.bitstream.container import UNTILED_VERSION
from facecodec.families.base import Family


class JpegFileFamily(Family):
    """Lossless files of JPEG inputs: the payload is the JPEG's image data recompressed by Lepton
    (facecodec.jpeg_file), which libjpeg decodes to exactly the JPEG's pixels.

    Its encoder takes the JPEG file, not pixels: ``encode(lossless=True)`` gives a JPEG input to these weights
    (facecodec.codec.encode_many, after checking that the JPEG decodes to the pixels it would otherwise code), and
    ``quantize`` refuses any other image. Decoding, the payload's "symbols" are the decoded pixels ``3 x H x W``,
    which dequantize and synthesise pass through. One setting, 1; no encoder search; thumbnails by libjpeg's DCT
    scaling, down to 1/8 (``fcz decode --scale``); an image of any size is one payload.
    """

    name, option = "jpeg-file", "quality"
    lossless = keeps_jpeg_files = True
    max_reduce = 3                # libjpeg scales a decode by 1/2, 1/4 or 1/8 within its IDCT
    ALPHABET = 256                # the symbols are 8-bit pixels

    @classmethod
    def settings_for(cls, model):
        return range(1, 2)

    def choose(self, setting: int | None) -> int:
        if setting is not None and setting != self.default:
            raise FczError(f"jpeg-file weights keep a JPEG's own coefficients: they take no {self.noun}")
        return self.default

    def describe(self, setting: int) -> str:
        return "lossless (the JPEG's own coefficients)"

    def load(self, entry, arrays, read, device):
        return None, PixelTransform()

    def entropy_model(self, tables, setting):
        return None

    def check_payload(self, payload, model, header):
        if header.version != UNTILED_VERSION:   # one whole payload, as format 3 (or 5 with its metadata) has it
            raise FczError(f"corrupt file: jpeg-file payloads are not written as format {header.version}")
        if not payload:
            raise FczError("corrupt file: the JPEG payload is empty")

    def alphabet(self, setting):
        return self.ALPHABET

    def setting_of(self, header):
        return header.quality

    def quantize(self, model, y, setting, effort=0, tables=None):
        raise FczError("jpeg-file weights keep a JPEG input's own coefficients, and this image is no JPEG they can "
                       "keep (not a JPEG that decodes to exactly its pixels, one Lepton cannot code, or one of a few "
                       "pixels): code it with lossless=True and no weights id (fcz encode --lossless, no --model)")

    def entropy_decode(self, payload, model, header, reduce=0):
        jpeg = jpeg_file.decompress(payload, header.width, header.height)
        return jpeg_file.decode_pixels(jpeg, header.width, header.height, reduce)

    def dequantize(self, model, symbols, header):
        return symbols[None]   # the pixels, as bytes: a 12-megapixel JPEG's features are 36 MB, not 144


class PixelTransform:
    """The jpeg-file family's transforms: the decoded pixels are the features (facecodec.models.transform)."""

    stride = 1

    def analyse(self, x: np.ndarray, tile: int = 0) -> np.ndarray:
        return x

    def synthesise(self, features: np.ndarray, reduce: int = 0, tile: int = 0) -> np.ndarray:
        return features.astype(np.uint8, copy=False)
