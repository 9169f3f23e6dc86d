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
COMPACT_VERSION = 7                  # written for every file of registered weights (REGISTRY), whatever it holds
OVERLAP_VERSION = 8                  # version 7's header, written only for a payload in overlapping tiles
FORMAT_VERSION = OVERLAP_VERSION     # the newest read; versions 1 (no quality byte) to 7 are still read
FLAG_METADATA = 0x01                 # version 5 on: a metadata block follows the quantizer ranges
FLAG_TILED = 0x02                    # version 5 on: the payload is in tiles, as in version 4
FLAG_LATTICE = 0x04                  # version 6 on: a JPEG source block follows (after the metadata block, if any)
FLAG_GREYSCALE = 0x08                # version 7: colour mode 1 (the long header's colour mode byte)
# The flags each version may have (versions 6 and 7: never a JPEG source block with tiles).
ALLOWED_FLAGS = {METADATA_VERSION: (FLAG_METADATA, FLAG_METADATA | FLAG_TILED),
                 LATTICE_VERSION: (FLAG_LATTICE, FLAG_LATTICE | FLAG_METADATA),
                 COMPACT_VERSION: tuple(f for f in range(16) if not (f & FLAG_TILED and f & FLAG_LATTICE)),
                 OVERLAP_VERSION: tuple(f for f in range(16) if f & FLAG_TILED and not f & FLAG_LATTICE)}
TILED_LAYOUTS = (TILED_VERSION, OVERLAP_VERSION)   # the payload layouts in tiles (FORMAT.md, "Tiled payload")
COMPACT_VERSIONS = (COMPACT_VERSION, OVERLAP_VERSION)   # the versions of the compact header
# Weights a version-7 header names by one byte, k = 1, 2, ...: REGISTRY[k - 1] is (weights id, the quantizer bits of
# their files). Append only: once written, a number means those weights for good. Every file of these weights has
# C = 3 latent planes at stride 1, no padding and a quality level, so a version-7 header leaves those fields out.
REGISTRY = (("wavelet-v0", 6), ("wavelet-v1", 6), ("wavelet-v2", 6), ("wavelet-v3", 6), ("lossless-v1", 6),
            ("jpeg-lepton-v1", 8), ("jpeg-rebuilt-v1", 8))
MAX_SIDE_BYTES = 3                   # a side of at most 16384 takes at most 3 bytes as a varint
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
    version: int = UNTILED_VERSION   # the payload's layout, by the version that introduced it: 3 = whole, 4 = tiles,
                                     # 8 = overlapping tiles
    metadata: Metadata = NO_METADATA  # ICC profile, EXIF, XMP; a long header with any is version 5
    lattice: SourceLattice | None = None  # the JPEG source's lattice; a long header with one is version 6

    @property
    def registry_number(self) -> int | None:
        """The byte that names these weights in a version-7 header, or None where the file needs the long header:
        weights not in REGISTRY, fields other than those their files always have, or a payload of version 2's
        layout (the compact header's payloads are version 3's and 4's)."""
        entry = (self.weights_id, self.bits)
        if (entry not in REGISTRY or self.pad_right or self.pad_bottom or self.channel_ranges or not self.quality
                or self.latent_shape != (3, self.height, self.width) or self.version < UNTILED_VERSION):
            return None
        return REGISTRY.index(entry) + 1

    @property
    def long_version(self) -> int:
        """The version byte of this header's long form (versions 2..6), which weights outside REGISTRY get."""
        return LATTICE_VERSION if self.lattice else METADATA_VERSION if self.metadata else self.version

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
        if not (1 <= self.version <= TILED_VERSION or self.version == OVERLAP_VERSION):
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


def pack(header: FczHeader, payload: bytes, long_header: bool = False) -> bytes:
    """Header and entropy-coded payload -> the bytes of a .fcz file (the payload must be coded for
    ``header.version``: version 3 changed the wavelet family's order, version 4 holds tiles). Weights
    in REGISTRY get the compact header of version 7; others, or any with ``long_header``, the long one (the only
    one facecodec read before version 7): version 5 with metadata (its flags saying whether the payload is in
    tiles), 6 with a JPEG source block, else ``header.version``; see FORMAT.md."""
    header.validate()
    if header.version < 2:
        raise FczError("format version 1 is read, no longer written")
    if len(payload) > header.max_payload_length():
        raise FczError(f"payload of {len(payload)} bytes exceeds the format's bound")
    blocks = [pack_block(header.metadata) if header.metadata else b"",
              pack_lattice(header.lattice) if header.lattice else b""]
    flags = ((FLAG_METADATA if header.metadata else 0) | (FLAG_TILED if header.version in TILED_LAYOUTS else 0)
             | (FLAG_LATTICE if header.lattice else 0))
    number = None if long_header else header.registry_number
    if number is None and header.version == OVERLAP_VERSION:
        raise FczError("overlapping tiles have only the compact header (format 8): a reader of the long one "
                       "predates them")
    if number is not None:   # the payload runs to the checksum: its length is the file's, less the rest
        flags |= FLAG_GREYSCALE if header.mode == "L" else 0
        version = OVERLAP_VERSION if header.version == OVERLAP_VERSION else COMPACT_VERSION
        parts = [_PREFIX.pack(MAGIC, version, flags, number), _varint(header.width),
                 _varint(header.height), _QUALITY.pack(header.quality), *blocks, payload]
    else:
        weights_id = header.weights_id.encode("ascii")
        c, h, w = header.latent_shape
        version = header.long_version
        parts = [_PREFIX.pack(MAGIC, version, flags if version >= METADATA_VERSION else 0, len(weights_id)),
                 weights_id,
                 _SHAPE.pack(header.width, header.height, MODES.index(header.mode), header.bits,
                             header.pad_right, header.pad_bottom, c, h, w),
                 _QUALITY.pack(header.quality), *(_RANGE.pack(lo, hi) for lo, hi in header.channel_ranges),
                 *blocks, _LENGTH.pack(len(payload)), payload]
    body = b"".join(parts)
    return body + _LENGTH.pack(zlib.crc32(body))


def _varint(value: int) -> bytes:
    """``value`` >= 0 as a LEB128 varint: 7 bits a byte, low bits first, the high bit set on all but the last."""
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


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
    if payload_length is None:   # version 7: the payload runs to the checksum
        payload_length = len(data) - _LENGTH.size - reader.pos
        _check_payload_length(header, payload_length)
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
    """Magic, version, flags -> (version, flags, weights-id length; in version 7 the weights' registry number)."""
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


def _read_fields(reader: _Reader, version: int, flags: int, id_length: int) -> tuple[FczHeader, int | None]:
    """The fields after the prefix, up to the payload -> (header, payload length; None in version 7, whose payload
    runs to the checksum)."""
    if version in COMPACT_VERSIONS:
        return _read_compact_fields(reader, version, flags, id_length), None
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
    _check_payload_length(header, payload_length)
    return header, payload_length


def _read_compact_fields(reader: _Reader, version: int, flags: int, number: int) -> FczHeader:
    """A version-7 (or 8) header's fields after the prefix, up to the payload; ``number``: the weights' registry
    number."""
    if not 1 <= number <= len(REGISTRY):
        raise FczError(f"weights number {number} is not one this facecodec knows (1..{len(REGISTRY)}): "
                       f"upgrade facecodec")
    weights_id, bits = REGISTRY[number - 1]
    width, height = _read_varint(reader), _read_varint(reader)
    (quality,) = reader.unpack(_QUALITY)
    if not quality:
        raise FczError("corrupt file: quality level 0 in a version-7 header")
    metadata = read_block(reader.take) if flags & FLAG_METADATA else NO_METADATA
    lattice = read_lattice(reader.take) if flags & FLAG_LATTICE else None
    header = FczHeader(weights_id, width, height, MODES[1 if flags & FLAG_GREYSCALE else 0], bits, 0, 0,
                       (3, height, width), (), quality,
                       version if version == OVERLAP_VERSION else TILED_VERSION if flags & FLAG_TILED
                       else UNTILED_VERSION, metadata, lattice)
    header.validate()
    return header


def _read_varint(reader: _Reader) -> int:
    """An image side as ``_varint`` writes it: at most MAX_SIDE_BYTES bytes, no needless zero byte at the end (so
    each side has one spelling)."""
    value = 0
    for k in range(MAX_SIDE_BYTES):
        (byte,) = reader.take(1)
        value |= (byte & 0x7F) << (7 * k)
        if byte < 0x80:
            if byte == 0 and k:
                raise FczError("corrupt file: an image side written with a needless zero byte")
            return value
    raise FczError(f"corrupt file: an image side longer than {MAX_SIDE_BYTES} bytes")


def _check_payload_length(header: FczHeader, payload_length: int) -> None:
    if payload_length < 0:
        raise FczError("truncated file: it ends inside the header or payload")
    if payload_length > header.max_payload_length() or payload_length % 4:
        raise FczError(f"corrupt file: payload length {payload_length} is impossible for this latent shape")
