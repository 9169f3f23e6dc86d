"""The metadata block of a .fcz file (format version 5): the source's ICC profile, EXIF and XMP, as bytes.

FORMAT.md ("Metadata block") specifies it; ``pack_block`` writes it and ``read_block`` reads it. The bytes are
carried as the source file held them, never parsed here: the ICC profile says what the pixels' numbers mean
(without it a wide-gamut photo shows in the wrong colours), EXIF holds the camera, date and orientation, XMP
the rest. Which image formats can carry which is the image layer's business (facecodec.metadata).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from typing import Callable

from .errors import FczError

# Each entry's kind byte; entries come in this order, each at most once.
KINDS = {1: "icc_profile", 2: "exif", 3: "xmp"}
# ICC profiles of real devices reach a few MB; EXIF in a JPEG is at most 64 KiB. Past this, a length is damage.
MAX_ENTRY = 16 * 1024 * 1024
_COUNT = struct.Struct("<B")
_ENTRY = struct.Struct("<BI")        # kind, length in bytes


@dataclass(frozen=True)
class Metadata:
    """What a file says about its pixels besides the pixels; b"" where the source had none."""

    icc_profile: bytes = b""
    exif: bytes = b""
    xmp: bytes = b""

    def __bool__(self) -> bool:
        return any(self.entries().values())

    def entries(self) -> dict[str, bytes]:
        """Name -> bytes, in the block's order, the empty ones included."""
        return {field.name: getattr(self, field.name) for field in fields(self)}

    def names(self) -> list[str]:
        """The names of the entries present, in the block's order."""
        return [name for name, value in self.entries().items() if value]


NO_METADATA = Metadata()


def pack_block(metadata: Metadata) -> bytes:
    """A non-empty Metadata -> the bytes of its block."""
    kinds = {name: kind for kind, name in KINDS.items()}
    present = [(kinds[name], value) for name, value in metadata.entries().items() if value]
    if not present:
        raise ValueError("an empty metadata block is never written: write format version 3 or 4 instead")
    for kind, value in present:
        if len(value) > MAX_ENTRY:
            raise FczError(f"{KINDS[kind]} of {len(value):,} bytes is larger than the format's "
                           f"{MAX_ENTRY:,}-byte limit for one metadata entry")
    return _COUNT.pack(len(present)) + b"".join(_ENTRY.pack(kind, len(value)) + value for kind, value in present)


def read_block(take: Callable[[int], bytes]) -> Metadata:
    """The block, read through ``take(n)`` (which returns the next n bytes or raises FczError) -> its Metadata.

    FczError on an entry count outside 1..3, a kind that is unknown or out of order (each at most once, in
    increasing order), or a length of 0 or over the limit; the lengths are checked before anything is read.
    """
    (count,) = _COUNT.unpack(take(_COUNT.size))
    if not 1 <= count <= len(KINDS):
        raise FczError(f"corrupt file: {count} metadata entries (1..{len(KINDS)})")
    found: dict[str, bytes] = {}
    last = 0
    for _ in range(count):
        kind, length = _ENTRY.unpack(take(_ENTRY.size))
        if kind not in KINDS or kind <= last:
            raise FczError(f"corrupt file: metadata entry kind {kind} (1..{len(KINDS)}, each once, in order)")
        if not 1 <= length <= MAX_ENTRY:
            raise FczError(f"corrupt file: metadata entry of {length:,} bytes (1..{MAX_ENTRY:,})")
        found[KINDS[kind]] = take(length)
        last = kind
    return Metadata(**found)
