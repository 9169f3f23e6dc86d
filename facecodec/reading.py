"""Reading .fcz files: their bytes from any source, their header, and every check decode makes before a network runs.

Everything here works without torch, so ``fcz info`` answers in a fraction of a
second and refuses exactly the files that ``decode`` would refuse before its
network runs.
"""
from __future__ import annotations

import os
from typing import IO, Any, Union

from facecodec.bitstream import FczHeader, unpack
from facecodec.image_io import DEFAULT_MAX_PIXELS, check_size, reading
from facecodec.zoo import WeightsSpec, load_spec

FczSource = Union[bytes, bytearray, memoryview, str, os.PathLike, IO[bytes]]


def fcz_bytes(source: FczSource) -> bytes:
    """The bytes of a .fcz file given as bytes, bytearray, memoryview, a path or a binary file object."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        with reading(source), open(source, "rb") as f:
            return f.read()
    if hasattr(source, "read"):
        data = source.read()
        if isinstance(data, (bytes, bytearray)):
            return bytes(data)
        raise TypeError(f"data: the file object gave {type(data).__name__}, not bytes; open it in binary mode ('rb')")
    raise TypeError(f"data must be the bytes of a .fcz file, a path or a binary file object, not {type(source).__name__}")


def read_header(data: FczSource) -> FczHeader:
    """Parse and validate a .fcz file's header (checksum included) without decoding it."""
    return unpack(fcz_bytes(data))[0]


def check_decodable(data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS
                    ) -> tuple[FczHeader, bytes, WeightsSpec, Any]:
    """Everything decode checks before its network runs -> (header, payload, weights spec, entropy model).

    Raises FczError on a malformed file, weights that are not installed, a header
    that asks for a setting or shape those weights don't have, an image of more than
    ``max_pixels`` pixels, or a payload too short for the symbols it claims.
    """
    header, payload = unpack(data)
    check_size(header.width, header.height, max_pixels)
    spec = load_spec(header.weights_id)
    table = spec.table(header)
    spec.family.check_payload(payload, table, header)
    return header, payload, spec, table


def inspect(data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[FczHeader, WeightsSpec]:
    """Check a .fcz file as far as decoding can go without a network -> (header, weights spec).

    Beyond ``check_decodable`` this range-decodes the payload (no torch, a small
    fraction of a decode's time), so a damaged payload is found too.
    """
    header, payload, spec, table = check_decodable(data, max_pixels)
    for _, _, part, part_payload in spec.family.tiles(header, payload):  # a tile at a time: memory follows the tile
        spec.family.entropy_decode(part_payload, table, part)
    return header, spec
