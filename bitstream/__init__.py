"""The .fcz container and the entropy coding of its symbols. Pure numpy: no torch here.

Installed as ``facecodec.bitstream``; the byte layout is specified in FORMAT.md beside this file.
"""
from .container import FczHeader, pack, unpack
from .entropy import decode_symbols, encode_symbols
from .errors import FczError

__all__ = ["FczError", "FczHeader", "decode_symbols", "encode_symbols", "pack", "unpack"]
