"""The ranges family, the seed's: each feature channel's per-image [min, max] onto ``2**bits`` levels."""
from __future__ import annotations

import numpy as np

from facecodec.bitstream import FczHeader
from facecodec.families.base import Family


class RangesFamily(Family):
    """The seed's per-image quantizer (facecodec.models.ranges): each channel's [min, max] onto ``2**bits`` levels.

    The header stores the bit depth and every channel's range; its quality byte is 0.
    """

    name, option = "ranges", "bits"

    @classmethod
    def settings_for(cls, model):
        from facecodec.models.ranges import MAX_BITS, MIN_BITS

        return range(MIN_BITS, MAX_BITS + 1)

    @classmethod
    def default_for(cls, settings):
        return 6  # the seed project's depth: quantizing to 6 bits cost nothing measurable (README, series)

    def describe(self, setting: int) -> str:
        return f"{setting} bits"

    def alphabet(self, setting: int) -> int:
        return 2**setting

    def setting_of(self, header: FczHeader) -> int:
        # A quality level on a ranges file is no setting of this family: report it as bits 0, never valid.
        return 0 if header.quality else header.bits

    def quantize(self, model, y, setting, effort=0, tables=None):
        import torch

        from facecodec.models import ranges

        y = torch.as_tensor(y)
        lo, hi = ranges.channel_ranges(y)
        symbols = ranges.quantize(y, lo, hi, setting).cpu().numpy().astype(np.int32)
        return symbols, [
            {"quality": 0, "bits": setting, "channel_ranges": tuple(zip(l, h))}
            for l, h in zip(lo.tolist(), hi.tolist())]

    def dequantize(self, model, symbols, header):
        import torch

        from facecodec.models import ranges

        device = next(model.parameters()).device
        q = torch.from_numpy(symbols)[None].to(device)
        lo, hi = (torch.tensor(r, dtype=torch.float32)[None].to(device) for r in zip(*header.channel_ranges))
        return ranges.dequantize(q, lo, hi, header.bits).cpu().numpy()
