"""Model families: how each family's features become integer symbols and payload bytes (facecodec.families.base)."""
from __future__ import annotations

from facecodec.bitstream import FczError
from facecodec.families.base import OPTION_NOUNS, Family
from facecodec.families.gained import GainedFamily
from facecodec.families.jpeg_file import JpegFileFamily
from facecodec.families.jpeg_rebuilt import JpegRebuiltFamily
from facecodec.families.lossless import LosslessFamily
from facecodec.families.ranges import RangesFamily
from facecodec.families.wavelet import WaveletFamily

FAMILIES: dict[str, type[Family]] = {family.name: family for family in (GainedFamily, RangesFamily, WaveletFamily,
                                                                         LosslessFamily, JpegFileFamily,
                                                                         JpegRebuiltFamily)}

__all__ = ["FAMILIES", "OPTION_NOUNS", "Family", "family_class"]


def family_class(name: str) -> type[Family]:
    """The family named by a manifest's or a model's ``family``."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise FczError(f"unknown model family {name!r}; this facecodec knows {', '.join(FAMILIES)}") from None
