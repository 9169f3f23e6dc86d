"""The .fcz container: header, payload, checksum. FORMAT.md beside this file specifies it byte by byte.

``pack`` writes, ``unpack`` reads and validates every field; ``unpack`` never
allocates more than the bytes it was given, so a hostile header cannot make it
reserve memory for an absurd image.
"""
from __future__ import annotations

import io
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Callable

from .errors import FczError
from .lattice import SourceLattice
from .lattice import pack_block as pack_lattice
from .lattice import read_block as read_lattice
from .metadata import NO_METADATA, Metadata, pack_block, read_block

MAGIC = b"\x89FCZ"
TILED_VERSION = 4                    # written only for a payload in tiles (FORMAT.md, "Tiled payload")
UNTILED_VERSION = 3                  # written for every other file, so they keep the bytes they had before tiles
METADATA_VERSION = 5                 # written only for a file that carries metadata; its flags say the rest
LATTICE_VERSION = 6                  # written only for a file with a JPEG source block
FORMAT_VERSION = LATTICE_VERSION     # the newest read; versions 1 (no quality byte) to 5 are still read
FLAG_METADATA = 0x01                 # version 5 on: a metadata block follows the quantizer ranges
FLAG_TILED = 0x02                    # version 5 on: the payload is in tiles, as in version 4
FLAG_LATTICE = 0x04                  # version 6: a JPEG source block follows (after the metadata block, if any)
# The flags each version may have (version 6: never a JPEG source block with tiles).
ALLOWED_FLAGS = {METADATA_VERSION: (FLAG_METADATA, FLAG_METADATA | FLAG_TILED),
                 LATTICE_VERSION: (FLAG_LATTICE, FLAG_LATTICE | FLAG_METADATA)}
MODES = ("RGB", "L")                 # colour mode byte -> the PIL mode the decoder returns
MAX_SIDE = 16384                     # pixels, each side of the image
MAX_LATENT_CHANNELS = 1024
MAX_PAD = 255
# Quantizer ranges beyond this would make (max - min) overflow float32 at dequantization and
# decode to NaN; real features are many orders of magnitude smaller.
MAX_RANGE_MAGNITUDE = 1e30
WEIGHTS_ID = re.compile(rb"[a-z0-9][a-z0-9._-]{0,63}")

# Fixed-size parts, all little-endian (see FORMAT.md).
_PREFIX = struct.Struct("<4sBBB")    # magic, version, flags, weights-id length
_AFTER_MAGIC = struct.Struct("<BBB")  # the prefix's fields after the magic, read once the magic is known good
_SHAPE = struct.Struct("<IIBBBBHHH")  # width, height, mode, bits, pad right, pad bottom, latent C, h, w
_QUALITY = struct.Struct("<B")       # quality level, 0 = per-image quantizer ranges follow (version 2 on)
_RANGE = struct.Struct("<ff")        # one channel's quantizer (min, max)
_LENGTH = struct.Struct("<I")        # payload length; also the trailing CRC-32


@dataclass(frozen=True)
class FczHeader:
    weights_id: str
    width: int
    height: int
    mode: str                        # "RGB" or "L"
    bits: int                        # quantizer bits per symbol, 1..8
    pad_right: int                   # columns added on the right before encoding
    pad_bottom: int                  # rows added at the bottom
    latent_shape: tuple[int, int, int]        # C, h, w of the symbol array
    channel_ranges: tuple[tuple[float, float], ...]  # per channel (min, max), exact float32 values; () with a quality
    quality: int = 0                 # 1.. = the weights' quality level (gained quantizer); 0 = per-image ranges
    version: int = UNTILED_VERSION   # the payload's layout, by the version that introduced it: 3 = whole, 4 = tiles
    metadata: Metadata = NO_METADATA  # ICC profile, EXIF, XMP; a file with any is written as version 5
    lattice: SourceLattice | None = None  # the JPEG source's lattice; a file with one is written as version 6

    @property
    def file_version(self) -> int:
        """The version byte the file has (read) or gets (written)."""
        return LATTICE_VERSION if self.lattice else METADATA_VERSION if self.metadata else self.version

    @property
    def flags(self) -> int:
        """The flags byte the file has or gets (0 before version 5)."""
        if self.file_version < METADATA_VERSION:
            return 0
        return ((FLAG_METADATA if self.metadata else 0) | (FLAG_TILED if self.version == TILED_VERSION else 0)
                | (FLAG_LATTICE if self.lattice else 0))

    @property
    def symbol_count(self) -> int:
        c, h, w = self.latent_shape
        return c * h * w

    def max_payload_length(self) -> int:
        # constriction spends at most 24 bits on the rarest symbol; 32 bits each plus slack is a safe ceiling.
        return 4 * self.symbol_count + 64

    def validate(self) -> None:
        """Raise FczError unless every field is in range and the fields agree with one another."""
        c, h, w = self.latent_shape
        if WEIGHTS_ID.fullmatch(self.weights_id.encode("ascii", "replace")) is None:
            raise FczError(f"corrupt file: invalid weights id {self.weights_id!r}")
        if not (1 <= self.width <= MAX_SIDE and 1 <= self.height <= MAX_SIDE):
            raise FczError(f"corrupt file: image size {self.width}x{self.height} outside 1..{MAX_SIDE} pixels a side")
        if self.mode not in MODES:
            raise FczError(f"corrupt file: unknown colour mode {self.mode!r}")
        if not 1 <= self.bits <= 8:
            raise FczError(f"corrupt file: quantizer bits {self.bits} outside 1..8")
        if not (0 <= self.pad_right <= MAX_PAD and 0 <= self.pad_bottom <= MAX_PAD):
            raise FczError("corrupt file: padding out of range")
        if not (1 <= c <= MAX_LATENT_CHANNELS and h >= 1 and w >= 1):
            raise FczError(f"corrupt file: invalid latent shape {self.latent_shape}")
        padded_w, padded_h = self.width + self.pad_right, self.height + self.pad_bottom
        if padded_w % w or padded_h % h or padded_w // w != padded_h // h:
            raise FczError(f"corrupt file: latent shape {self.latent_shape} does not tile "
                           f"a padded {self.width}x{self.height} image")
        if not 1 <= self.version <= TILED_VERSION:
            raise FczError(f"corrupt file: format version {self.version}")
        if self.metadata and self.version < UNTILED_VERSION:
            raise FczError(f"format version {self.version} carries no metadata")
        if self.lattice is not None:
            if self.version != UNTILED_VERSION:
                raise FczError("a JPEG source block goes only with an untiled payload")
            self.lattice.validate()
        if not 0 <= self.quality <= 255:
            raise FczError(f"corrupt file: quality level {self.quality} outside 0..255")
        if len(self.channel_ranges) != (0 if self.quality else c):
            raise FczError("corrupt file: one quantizer range per latent channel is required, and none with a quality level")
        if not all(lo <= hi and abs(lo) <= MAX_RANGE_MAGNITUDE and abs(hi) <= MAX_RANGE_MAGNITUDE
                   for lo, hi in self.channel_ranges):
            raise FczError(f"corrupt file: quantizer ranges must lie within +-{MAX_RANGE_MAGNITUDE:g} with min <= max")

    @property
    def stride(self) -> int:
        """Pixels per latent position, along each side."""
        return (self.width + self.pad_right) // self.latent_shape[2]


def pack(header: FczHeader, payload: bytes) -> bytes:
    """Header and entropy-coded payload -> the bytes of a .fcz file, of ``header.file_version`` (the payload must
    be coded for ``header.version``: version 3 changed the wavelet family's order, version 4 holds tiles; a file
    with metadata is version 5, its flags saying whether the payload is in tiles; see FORMAT.md)."""
    header.validate()
    if header.version < 2:
        raise FczError("format version 1 is read, no longer written")
    if len(payload) > header.max_payload_length():
        raise FczError(f"payload of {len(payload)} bytes exceeds the format's bound")
    weights_id = header.weights_id.encode("ascii")
    c, h, w = header.latent_shape
    parts = [
        _PREFIX.pack(MAGIC, header.file_version, header.flags, len(weights_id)), weights_id,
        _SHAPE.pack(header.width, header.height, MODES.index(header.mode), header.bits,
                    header.pad_right, header.pad_bottom, c, h, w),
        _QUALITY.pack(header.quality),
        *(_RANGE.pack(lo, hi) for lo, hi in header.channel_ranges),
        pack_block(header.metadata) if header.metadata else b"",
        pack_lattice(header.lattice) if header.lattice else b"",
        _LENGTH.pack(len(payload)), payload,
    ]
    body = b"".join(parts)
    return body + _LENGTH.pack(zlib.crc32(body))


class _Reader:
    """Reads fields front to back from ``read(n)`` (a file's or a buffer's), turning a short file into a clear error."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self.read, self.pos = read, 0

    def take(self, size: int) -> bytes:
        chunk = self.read(size)
        if len(chunk) != size:
            raise FczError("truncated file: it ends inside the header or payload")
        self.pos += size
        return chunk

    def unpack(self, fmt: struct.Struct) -> tuple:
        return fmt.unpack(self.take(fmt.size))


def unpack(data: bytes) -> tuple[FczHeader, bytes]:
    """Bytes of a .fcz file -> (header, payload). Raises FczError on anything malformed."""
    reader = _Reader(io.BytesIO(data).read)
    version, flags, id_length = _read_prefix(reader, empty=not data)
    if len(data) < _LENGTH.size or zlib.crc32(data[:-_LENGTH.size]) != _LENGTH.unpack(data[-_LENGTH.size:])[0]:
        raise FczError("corrupt file: checksum mismatch (the file was damaged or truncated)")
    header, payload_length = _read_fields(reader, version, flags, id_length)
    payload = reader.take(payload_length)
    if reader.pos + _LENGTH.size > len(data):  # the stated payload runs into the checksum
        raise FczError("truncated file: it ends inside the payload")
    if reader.pos + _LENGTH.size != len(data):
        raise FczError(f"corrupt file: {len(data) - reader.pos - _LENGTH.size} unexpected bytes after the payload")
    return header, payload


def read_header(read: Callable[[int], bytes]) -> FczHeader:
    """The header of the file that ``read(n)`` reads from its start, every field checked but not the checksum,
    which needs the whole file: for readers that must not read the pixels yet (Pillow's ``open``); ``unpack``
    checks it when they are wanted."""
    reader = _Reader(read)
    return _read_fields(reader, *_read_prefix(reader, empty=False))[0]


def _read_prefix(reader: _Reader, empty: bool) -> tuple[int, int, int]:
    """Magic, version, flags -> (version, flags, weights-id length)."""
    try:
        magic = reader.take(len(MAGIC))
    except FczError:   # shorter than the magic
        magic = b""
    if magic != MAGIC:
        raise FczError("empty file" if empty else "not a .fcz file (wrong magic bytes)")
    version, flags, id_length = reader.unpack(_AFTER_MAGIC)   # a file cut here is "truncated", as before
    if version > FORMAT_VERSION:
        raise FczError(f"format version {version} is newer than this facecodec reads "
                       f"(up to {FORMAT_VERSION}): upgrade facecodec")
    allowed_flags = ALLOWED_FLAGS.get(version, (0,))
    if version < 1 or flags not in allowed_flags:
        raise FczError(f"corrupt file: version {version}, flags {flags:#04x}")
    return version, flags, id_length


def _read_fields(reader: _Reader, version: int, flags: int, id_length: int) -> tuple[FczHeader, int]:
    """The fields after the prefix, up to the payload -> (header, payload length)."""
    raw_id = reader.take(id_length)
    if not WEIGHTS_ID.fullmatch(raw_id):
        raise FczError("corrupt file: invalid weights id")
    width, height, mode, bits, pad_right, pad_bottom, c, h, w = reader.unpack(_SHAPE)
    if mode >= len(MODES):
        raise FczError(f"corrupt file: unknown colour mode {mode}")
    if not 1 <= c <= MAX_LATENT_CHANNELS:
        raise FczError(f"corrupt file: {c} latent channels (at most {MAX_LATENT_CHANNELS})")
    (quality,) = reader.unpack(_QUALITY) if version >= 2 else (0,)
    ranges = tuple(reader.unpack(_RANGE) for _ in range(0 if quality else c))
    metadata = read_block(reader.take) if flags & FLAG_METADATA else NO_METADATA
    lattice = read_lattice(reader.take) if flags & FLAG_LATTICE else None
    if version >= METADATA_VERSION:
        version = TILED_VERSION if flags & FLAG_TILED else UNTILED_VERSION
    header = FczHeader(raw_id.decode("ascii"), width, height, MODES[mode], bits, pad_right, pad_bottom,
                       (c, h, w), ranges, quality, version, metadata, lattice)
    header.validate()
    (payload_length,) = reader.unpack(_LENGTH)
    if payload_length > header.max_payload_length() or payload_length % 4:
        raise FczError(f"corrupt file: payload length {payload_length} is impossible for this latent shape")
    return header, payload_length
