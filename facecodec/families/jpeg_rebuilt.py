"""The jpeg-rebuilt family: pixels kept losslessly as a JPEG rebuilt from them and the residual (facecodec.jpeg_rebuild)."""
from __future__ import annotations

import numpy as np

from facecodec import jpeg_rebuild
from facecodec.bitstream import FczError
from facecodec.families.jpeg_file import JpegFileFamily


class JpegRebuiltFamily(JpegFileFamily):
    """Lossless files of any pixels: a JPEG the encoder rebuilt from them (its quantization tables estimated from the
    pixels), recompressed by Lepton, and the residual that makes its decode exact (facecodec.jpeg_rebuild).

    Pixels once decoded from a JPEG (most face photos) take a third to a fifth of what the pixel coder
    (facecodec.families.lossless) needs; ``encode(lossless=True)`` codes both and keeps the smaller. The symbols are
    the pixels ``3 x H x W``, coded whole in the payload (never in tiles); thumbnails are the rebuilt JPEG's own,
    down to 1/8, without the residual. One setting, 1.
    """

    name = "jpeg-rebuilt"
    keeps_jpeg_files = False
    rebuilds_jpeg = True

    def describe(self, setting: int) -> str:
        return "lossless (a JPEG rebuilt from the pixels, and the residual)"

    def quantize(self, model, y, setting, effort=0, tables=None):
        symbols = np.rint(np.asarray(y) * 255).astype(np.uint8)   # the pixels, as analyse() gave them in [0, 1]
        return symbols, [{"quality": setting, "bits": self.symbol_bits(setting), "channel_ranges": ()}] * len(symbols)

    def entropy_encode(self, symbols, model, header):
        payload = jpeg_rebuild.encode(np.ascontiguousarray(symbols.transpose(1, 2, 0)), grey=header.mode == "L")
        if payload is None:
            raise FczError("Lepton codes no JPEG rebuilt from these pixels: code them with the pixel coder "
                           "(fcz encode --lossless, no --model)")
        return payload

    def entropy_decode(self, payload, model, header, reduce=0):
        return jpeg_rebuild.decode(payload, header.width, header.height, header.mode == "L", reduce)
