"""The gained family (facecodec.models.gained): quality levels of one network, features x gain rounded to 6 bits."""
from __future__ import annotations

from facecodec.bitstream import FczHeader
from facecodec.bitstream.entropy import SYMBOL_BITS
from facecodec.families.base import Family


class GainedFamily(Family):
    """Quality levels of one network (facecodec.models.gained): features x gain[level], rounded to 6 bits.

    The header stores only the level (``quality``); ``bits`` is always 6 and no ranges follow.
    """

    name, option = "gained", "quality"

    @classmethod
    def settings_for(cls, model):
        return range(1, model.levels + 1)

    def alphabet(self, setting: int) -> int:
        return 2**SYMBOL_BITS

    def setting_of(self, header: FczHeader) -> int:
        return header.quality

    def quantize(self, model, y, setting, effort=0, tables=None):
        import torch

        symbols = model.symbols(torch.as_tensor(y, device=next(model.parameters()).device), setting - 1).cpu().numpy()
        fields = {"quality": setting, "bits": self.symbol_bits(setting), "channel_ranges": ()}
        return symbols, [fields] * len(symbols)

    def dequantize(self, model, symbols, header):
        import torch

        q = torch.from_numpy(symbols)[None].to(next(model.parameters()).device)
        return model.features(q, header.quality - 1).cpu().numpy()
