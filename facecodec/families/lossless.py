"""The lossless family: every pixel back exactly, through a reversible integer transform and the wavelet payload."""
from __future__ import annotations

import numpy as np

from facecodec.bitstream import FczError
from facecodec.bitstream.entropy import SYMBOL_BITS
from facecodec.families.wavelet import WaveletFamily


class LosslessFamily(WaveletFamily):
    """Lossless weights: the integer colour transform and 5/3 wavelet of facecodec.models.reversible, whose
    integer planes are the symbols as they are (no quantization step), coded by the wavelet family's
    context-adaptive payload with the weights' own tables (counted on integer planes of training faces).

    One setting, 1 (the header's quality byte), which ``describe`` calls "lossless"; no encoder search. As the
    lossy wavelet family: large images in tiles (format 4: not overlapping, which would only cost bytes here),
    thumbnails from the coarse levels (the 5/3 low band is already at the pixels' scale), no post-filter.
    """

    name = "lossless"
    tile_overlap = 0   # exact anyway: its tiles have no seams to hide, and overlap would only cost bytes
    efforts, default_effort = range(0, 1), 0
    lossless = True

    def choose(self, setting: int | None) -> int:
        if setting is not None and setting != self.default:   # the generic interface may name the one setting
            raise FczError(f"lossless weights keep every pixel: they take no {self.noun} (their files record "
                           f"{self.default})")
        return self.default

    def describe(self, setting: int) -> str:
        return "lossless"

    def load(self, entry, arrays, read, device):
        from facecodec.models.reversible import ReversibleRuntime

        runtime = ReversibleRuntime()
        return runtime, runtime

    def quantize(self, model, y, setting, effort=0, tables=None):
        symbols = np.rint(np.asarray(y)).astype(np.int32)
        fields = {"quality": setting, "bits": SYMBOL_BITS, "channel_ranges": ()}
        return symbols, [fields] * len(symbols)

    def dequantize(self, model, symbols, header):
        return symbols[None].astype(np.float32)
