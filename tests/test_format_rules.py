"""One refusal test per rule a reader enforces (bitstream/FORMAT.md), walked from a table.

Each row of ``CASES`` names a rule as FORMAT.md words it (the field of a table row whose column
"rules the reader enforces" holds it, or a paragraph of the spec's prose), forges a file that breaks
that rule alone from a valid one (the fields are rewritten at the offsets FORMAT.md gives and the
CRC-32 resealed, so every other rule still holds), and the FczError message expected. The fuzz tests
(tests/test_fuzz.py) check that damaged files decode or raise FczError; they cannot see a rule that
went missing, as a file a missing rule lets through often still decodes. These tests can: each
forged file must be refused, by the rule's own message.

``test_every_rule_of_the_spec_has_a_case`` parses FORMAT.md's tables, so a rule added to the spec
without a case here turns it red. benchmarks/mutation_check.py removes some of these rules from a
scratch copy of the library and shows the tests below fail.
"""
from __future__ import annotations

import io
import re
import struct
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable
from unittest import mock

import numpy as np
import pytest
from PIL import Image, ImageCms
from skimage.data import astronaut

import facecodec
from facecodec.bitstream import FczError, pack, unpack
from facecodec.bitstream import wavelet_payload
from facecodec.bitstream.lattice import STANDARD_CHROMA, STANDARD_LUMA
from facecodec.bitstream.tiles import tile_grid
from facecodec.reading import check_decodable
from facecodec.families.wavelet import WaveletFamily
from facecodec.zoo import load_spec, lossless_weights_id

REBUILT = lossless_weights_id(rebuilt_jpeg=True)
SPEC = Path(__file__).resolve().parents[1] / "bitstream" / "FORMAT.md"
RULES_COLUMN = "rules the reader enforces"


# --- the file as FORMAT.md lays it out ------------------------------------------------------------------

@dataclass
class Fields:
    """Every field of a .fcz file (version 2 and later), as raw values: nothing here is checked."""

    magic: bytes
    version: int
    flags: int
    weights_id: bytes
    width: int
    height: int
    mode: int
    bits: int
    pad_right: int
    pad_bottom: int
    channels: int
    latent_h: int
    latent_w: int
    quality: int
    ranges: list[tuple[float, float]]
    payload: bytes
    metadata_block: bytes = b""        # version 5 on with flags bit 0x01: the block as it stands in the file
    lattice_block: bytes = b""         # version 6 (flags bit 0x04): the JPEG source block as it stands in the file
    id_length: int | None = None        # None: len(weights_id)
    payload_length: int | None = None   # None: len(payload)
    after_payload: bytes = b""          # bytes between the payload and the CRC (covered by it)
    crc: int | None = None              # None: zlib's CRC-32 of every byte before it

    @classmethod
    def parse(cls, data: bytes) -> Fields:
        """At FORMAT.md's offsets: magic 0, version 4, flags 5, n 6, id 7, W 7+n, ..., q 25+n, ranges 26+n,
        metadata block 26+n+R (version 5 on, flags bit 0x01), JPEG source block 26+n+R+M (version 6, flags bit
        0x04), L 26+n+R+M+J."""
        magic, version, flags, n = struct.unpack_from("<4sBBB", data, 0)
        weights_id = data[7:7 + n]
        width, height, mode, bits, pad_right, pad_bottom, c, h, w = struct.unpack_from("<IIBBBBHHH", data, 7 + n)
        quality = data[25 + n]
        r = 0 if quality else 8 * c
        ranges = [struct.unpack_from("<ff", data, 26 + n + 8 * k) for k in range(r // 8)]
        m = metadata_block_size(data, 26 + n + r) if version >= 5 and flags & 1 else 0
        j = lattice_block_size(data, 26 + n + r + m) if version == 6 and flags & 4 else 0
        (length,) = struct.unpack_from("<I", data, 26 + n + r + m + j)
        payload = data[30 + n + r + m + j:30 + n + r + m + j + length]
        assert len(data) == 30 + n + r + m + j + length + 4
        return cls(magic, version, flags, weights_id, width, height, mode, bits, pad_right, pad_bottom, c, h, w,
                   quality, ranges, payload, data[26 + n + r:26 + n + r + m], data[26 + n + r + m:26 + n + r + m + j])

    def to_bytes(self) -> bytes:
        body = b"".join([
            struct.pack("<4sBBB", self.magic, self.version, self.flags,
                        len(self.weights_id) if self.id_length is None else self.id_length), self.weights_id,
            struct.pack("<IIBBBBHHH", self.width, self.height, self.mode, self.bits, self.pad_right,
                        self.pad_bottom, self.channels, self.latent_h, self.latent_w),
            struct.pack("<B", self.quality), *(struct.pack("<ff", lo, hi) for lo, hi in self.ranges),
            self.metadata_block, self.lattice_block, struct.pack("<I", len(self.payload) if self.payload_length is None else self.payload_length),
            self.payload, self.after_payload])
        return body + struct.pack("<I", zlib.crc32(body) if self.crc is None else self.crc)


@dataclass
class Compact:
    """Every field of a version-7 file (FORMAT.md, Compact header), as raw values: the sides as the bytes of their
    varints, the blocks as they stand in the file; nothing here is checked."""

    magic: bytes
    version: int
    flags: int
    number: int
    width: bytes
    height: bytes
    quality: int
    blocks: bytes
    payload: bytes
    crc: int | None = None              # None: zlib's CRC-32 of every byte before it

    @classmethod
    def parse(cls, data: bytes) -> Compact:
        """At FORMAT.md's offsets: magic 0, version 4, flags 5, k 6, W 7, H 7+a, q 7+a+b, the blocks 8+a+b, then
        the payload up to the CRC-32."""
        magic, version, flags, number = struct.unpack_from("<4sBBB", data, 0)
        width_end = varint_end(data, 7)
        height_end = varint_end(data, width_end)
        blocks = height_end + 1
        m = metadata_block_size(data, blocks) if flags & 1 else 0
        j = lattice_block_size(data, blocks + m) if flags & 4 else 0
        return cls(magic, version, flags, number, data[7:width_end], data[width_end:height_end], data[height_end],
                   data[blocks:blocks + m + j], data[blocks + m + j:-4])

    def to_bytes(self) -> bytes:
        body = (struct.pack("<4sBBB", self.magic, self.version, self.flags, self.number) + self.width + self.height
                + bytes([self.quality]) + self.blocks + self.payload)
        return body + struct.pack("<I", zlib.crc32(body) if self.crc is None else self.crc)


def varint_end(data: bytes, start: int) -> int:
    """Where the varint at ``start`` ends: after its first byte without the high bit."""
    at = start
    while data[at] & 0x80:
        at += 1
    return at + 1


def varint(value: int) -> bytes:
    """``value`` as FORMAT.md's varint: 7 bits a byte, the low ones first, the high bit on all but the last."""
    out = bytes([value & 0x7F])
    value >>= 7
    while value:
        out = out[:-1] + bytes([out[-1] | 0x80, value & 0x7F])
        value >>= 7
    return out


def metadata_block_size(data: bytes, start: int) -> int:
    """The size of the metadata block at ``start``: the count k, then k times (kind, length E, E bytes)."""
    at = start + 1
    for _ in range(data[start]):
        at += 5 + struct.unpack_from("<I", data, at + 1)[0]
    return at - start


def lattice_block_size(data: bytes, start: int) -> int:
    """The size of the JPEG source block at ``start``: subsampling, strengths, form, then a quality or the tables."""
    sampling, form = data[start], data[start + 2]
    return 3 + (1 if form == 0 else 64 * (2 if sampling else 1))


def lattice(sampling: int = 0x22, strengths: int = 0x55, form: int = 0, rest: bytes = bytes([75])) -> bytes:
    """A JPEG source block of these fields (default: 4:2:0, 5/16 both, IJG quality 75)."""
    return bytes([sampling, strengths, form]) + rest


def block(*entries: tuple[int, bytes], count: int | None = None, length: int | None = None) -> bytes:
    """A metadata block of these (kind, bytes) entries, its count or the first entry's length forged if given."""
    parts = [struct.pack("<B", len(entries) if count is None else count)]
    for i, (kind, value) in enumerate(entries):
        parts.append(struct.pack("<BI", kind, len(value) if length is None or i else length) + value)
    return b"".join(parts)


def edit(**changes) -> Callable[[bytes], bytes]:
    """A forger: the file with these fields changed, its CRC-32 resealed."""
    return lambda data: replace(Fields.parse(data), **changes).to_bytes()


def edit_compact(**changes) -> Callable[[bytes], bytes]:
    """A forger of a version-7 file: these fields changed (a function of the valid file's fields, or a value), its
    CRC-32 resealed."""
    def forge(data: bytes) -> bytes:
        fields = Compact.parse(data)
        return replace(fields, **{name: change(fields) if callable(change) else change
                                  for name, change in changes.items()}).to_bytes()
    return forge


def edit_with(change: Callable[[Fields], dict]) -> Callable[[bytes], bytes]:
    """A forger whose changes depend on the valid file's fields."""
    def forge(data: bytes) -> bytes:
        fields = Fields.parse(data)
        return replace(fields, **change(fields)).to_bytes()
    return forge


# --- the tiled payload (version 4) ----------------------------------------------------------------------

def split_tiled(payload: bytes, tiles: int) -> tuple[int, list[int], list[bytes]]:
    """A tiled payload -> (tile side T, the N lengths, the N tile payloads), at FORMAT.md's offsets."""
    (side,) = struct.unpack_from("<I", payload, 0)
    lengths = list(struct.unpack_from(f"<{tiles}I", payload, 4))
    parts, at = [], 4 + 4 * tiles
    for n in lengths:
        parts.append(payload[at:at + n])
        at += n
    assert at == len(payload)
    return side, lengths, parts


def tiled(side: int | None = None, lengths: Callable[[list[int]], list[int]] | None = None,
          part: Callable[[int, bytes], bytes] | None = None, cut: int | None = None) -> Callable[[bytes], bytes]:
    """A forger of the tile table: another side, other lengths, other tile payloads (lengths kept in step), or the
    payload cut to ``cut`` bytes."""
    def forge(data: bytes) -> bytes:
        fields = Fields.parse(data)
        tiles = len(tile_grid(fields.width, fields.height, TILE))
        t, n, parts = split_tiled(fields.payload, tiles)
        if part is not None:
            parts = [part(k, p) for k, p in enumerate(parts)]
            n = [len(p) for p in parts]
        if lengths is not None:
            n = lengths(n)
        payload = struct.pack(f"<I{tiles}I", t if side is None else side, *n) + b"".join(parts)
        return replace(fields, payload=payload if cut is None else payload[:cut]).to_bytes()
    return forge


def overlapping(side: int | None = None, overlap: int | None = None,
                lengths: Callable[[list[int]], list[int]] | None = None,
                part: Callable[[int, bytes], bytes] | None = None) -> Callable[[bytes], bytes]:
    """A forger of version 8's tile table (compact header): another side or overlap, other lengths, or other tile
    payloads (lengths kept in step)."""
    def forge(data: bytes) -> bytes:
        fields = Compact.parse(data)
        header = facecodec.read_header(data)
        tiles = len(tile_grid(header.width, header.height, TILE))
        t, v = struct.unpack_from("<2I", fields.payload)
        n = list(struct.unpack_from(f"<{tiles}I", fields.payload, 8))
        parts, at = [], 8 + 4 * tiles
        for length in n:
            parts.append(fields.payload[at:at + length])
            at += length
        if part is not None:
            parts = [part(k, p) for k, p in enumerate(parts)]
            n = [len(p) for p in parts]
        if lengths is not None:
            n = lengths(n)
        payload = struct.pack(f"<2I{tiles}I", t if side is None else side, v if overlap is None else overlap, *n)
        return replace(fields, payload=payload + b"".join(parts)).to_bytes()
    return forge


# --- payloads an encoder never writes -------------------------------------------------------------------

def wavelet_values(position: tuple[int, int, int], value: int) -> Callable[[bytes], bytes]:
    """A forger: the wavelet file's payload replaced by that of all-zero planes with one ``value`` at ``position``
    (plane, row, column), coded by the file's own tables beyond the format's +-2^21 (the encoder refuses that)."""
    def forge(data: bytes) -> bytes:
        fields = Fields.parse(data)
        header = facecodec.read_header(data)
        model = load_spec(header.weights_id).table(header)
        planes = np.zeros((3, header.height, header.width), dtype=np.int32)
        planes[position] = value
        with mock.patch.object(wavelet_payload, "MAX_SYMBOL", 2 ** 23):
            payload = wavelet_payload.encode_planes(planes, model, header.mode)
        return replace(fields, payload=payload).to_bytes()
    return forge


def jpeg_payload(change: Callable[[bytes, int], bytes]) -> Callable[[bytes], bytes]:
    """A forger of the jpeg-file family's payload: ``change(Lepton stream, pad k)`` gives the new payload."""
    def forge(data: bytes) -> bytes:
        fields = Fields.parse(data)
        pad = fields.payload[-1]
        return replace(fields, payload=change(fields.payload[:-pad], pad)).to_bytes()
    return forge


def rebuilt_payload(change: Callable[[bytes, bytes, bytes], bytes]) -> Callable[[bytes], bytes]:
    """A forger of the jpeg-rebuilt family's payload: ``change(length and grid offset fields, Lepton stream, residual
    stream)`` gives the payload before its padding, which is then made anew."""
    def forge(data: bytes) -> bytes:
        fields = Fields.parse(data)
        body = fields.payload[:-fields.payload[-1]]
        (length,) = struct.unpack_from("<I", body)
        changed = change(body[:6], body[6:6 + length], body[6 + length:])
        pad = 4 - len(changed) % 4
        return replace(fields, payload=changed + bytes([pad]) * pad).to_bytes()
    return forge


# --- the cases ------------------------------------------------------------------------------------------

HEADER, DECODE = "read_header", "decode"   # who must refuse: the container (fcz info too), or decode's checks


@dataclass(frozen=True)
class Case:
    name: str
    where: str        # the field of a FORMAT.md table row (a prefix of its cell), or a paragraph: "**Bounds.**"
    rule: str         # the rule as FORMAT.md words it: a fragment of that row's rules cell, or of the paragraph
    base: str         # the valid file forged: a key of ``files``
    forge: Callable[[bytes], bytes] = field(repr=False)
    message: str      # a fragment of the FczError's message
    stage: str = HEADER


def _flip_first_byte(data: bytes) -> bytes:
    return bytes([data[0] & 0x7F]) + data[1:]


def _unsealed_width(data: bytes) -> bytes:
    fields = Fields.parse(data)
    return replace(fields, width=fields.width + 1, crc=zlib.crc32(data[:-4])).to_bytes()


def _damaged_crc(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


def _longest_payload(fields: Fields) -> dict:
    bound = 4 * fields.channels * fields.latent_h * fields.latent_w + 64
    return {"payload": fields.payload + bytes(bound + 4 - len(fields.payload))}


def _swapped_range(fields: Fields) -> dict:
    (lo, hi), *rest = fields.ranges
    assert lo < hi
    return {"ranges": [(hi, lo), *rest]}


def _pad(side: str, stride: int) -> Callable[[Fields], dict]:
    """Padding of a whole stride more, with the latent shape still tiling the padded image at the weights' stride."""
    def change(fields: Fields) -> dict:
        if side == "right":
            return {"pad_right": fields.pad_right + stride, "latent_w": fields.latent_w + 1}
        return {"pad_bottom": fields.pad_bottom + stride, "latent_h": fields.latent_h + 1}
    return change


ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
TILE = 64   # the tiled file: 96 x 72 pixels in tiles of 64, so 2 x 2 tiles
LL_MAX = 2 ** 21

CASES = [
    Case("magic, high bit lost", "magic", "exact", "wavelet", _flip_first_byte, "wrong magic"),
    Case("magic, text", "magic", "exact", "wavelet", lambda d: b"FCZ!" + d[4:], "wrong magic"),
    Case("version, newer", "format version", "a larger value is refused", "wavelet", edit(version=9),
         "newer than this facecodec reads"),
    Case("version 0", "format version", "`1` and `2` are still read", "wavelet", edit(version=0),
         "corrupt file: version 0"),
    Case("flags 1 in version 3", "flags", "other versions: `0`", "wavelet", edit(flags=1), "flags 0x01"),
    Case("flags 0x80 in version 3", "flags", "other versions: `0`", "gained", edit(flags=0x80), "flags 0x80"),
    Case("flags 3 in version 4", "flags", "other versions: `0`", "tiled", edit(flags=3), "flags 0x03"),
    Case("flags 0 in version 5", "flags", "version 5: `0x01`", "metadata", edit(flags=0), "flags 0x00"),
    Case("flags 2 in version 5", "flags", "or `0x03`", "metadata", edit(flags=2), "flags 0x02"),
    Case("flags 0x81 in version 5", "flags", "or `0x03`", "metadata", edit(flags=0x81), "flags 0x81"),
    Case("flags 0x04 in version 5", "flags", "version 5: `0x01`", "metadata", edit(flags=0x05), "flags 0x05"),
    Case("flags 0x01 in version 6", "flags", "version 6: `0x04`", "lattice", edit(flags=0x01, lattice_block=b""),
         "flags 0x01"),
    Case("flags 0x06 in version 6", "flags", "or `0x05`", "lattice", edit(flags=0x06), "flags 0x06"),
    # the JPEG source block (version 6)
    Case("chroma subsampling by 3", "chroma subsampling", "each `1` or `2`", "lattice",
         edit(lattice_block=lattice(sampling=0x23)), "JPEG source subsampling (2, 3)"),
    Case("chroma subsampling 0x20", "chroma subsampling", "each `1` or `2`", "lattice",
         edit(lattice_block=lattice(sampling=0x20)), "JPEG source subsampling (2, 0)"),
    Case("strengths both 0", "strengths", "not both 0", "lattice", edit(lattice_block=lattice(strengths=0)),
         "JPEG source strengths (0, 0)"),
    Case("luma strength 9", "strengths", "each 0..8", "lattice", edit(lattice_block=lattice(strengths=0x95)),
         "JPEG source strengths (9, 5)"),
    Case("chroma strength for a greyscale source", "strengths", "chroma 0 for a greyscale source", "lattice",
         edit(lattice_block=lattice(sampling=0, strengths=0x51)), "JPEG source strengths (5, 1)"),
    Case("table form 2", "table form", "`1` = explicit tables", "lattice", edit(lattice_block=lattice(form=2)),
         "JPEG source table form 2"),
    Case("quality 0", "quality, form 0", "1..100", "lattice", edit(lattice_block=lattice(rest=b"\0")),
         "JPEG source quality 0"),
    Case("quality 101", "quality, form 0", "1..100", "lattice", edit(lattice_block=lattice(rest=bytes([101]))),
         "JPEG source quality 101"),
    Case("an explicit step of 0", "explicit steps, form 1", "each 1..255", "lattice",
         edit(lattice_block=lattice(form=1, rest=bytes([0]) + bytes(range(2, 129)))), "step outside 1..255"),
    Case("explicit tables that are standard", "explicit steps, form 1", "tables that a quality of form 0 gives",
         "lattice", edit(lattice_block=lattice(form=1, rest=bytes(STANDARD_LUMA + STANDARD_CHROMA))),
         "explicit JPEG source tables that are standard ones"),
    # the metadata block (version 5)
    Case("no metadata entry", "`k`: entry count", "1..3", "metadata", edit(metadata_block=block(count=0)),
         "0 metadata entries"),
    Case("4 metadata entries", "`k`: entry count", "1..3", "metadata",
         edit(metadata_block=block((1, b"i"), (2, b"e"), (3, b"x"), (3, b"y"))), "4 metadata entries"),
    Case("metadata kind 0", "entry kind", "`1` = ICC profile", "metadata", edit(metadata_block=block((0, b"x"))),
         "metadata entry kind 0"),
    Case("metadata kind 4", "entry kind", "`3` = XMP", "metadata", edit(metadata_block=block((4, b"x"))),
         "metadata entry kind 4"),
    Case("two ICC profiles", "entry kind", "each at most once", "metadata",
         edit(metadata_block=block((1, b"a"), (1, b"b"))), "metadata entry kind 1"),
    Case("EXIF before the ICC profile", "entry kind", "in increasing order", "metadata",
         edit(metadata_block=block((2, b"e"), (1, b"i"))), "metadata entry kind 1"),
    Case("metadata entry of 0 bytes", "entry length `E`", "1..16777216", "metadata",
         edit(metadata_block=block((1, b""))), "metadata entry of 0 bytes"),
    Case("metadata entry over 16 MiB", "entry length `E`", "read before any of its bytes", "metadata",
         edit(metadata_block=block((1, b"x"), length=16 * 2 ** 20 + 1)), "metadata entry of 16,777,217 bytes"),
    Case("weights id of 0 bytes", "`n`: length of the weights id", "1..64", "wavelet", edit(weights_id=b""),
         "invalid weights id"),
    Case("weights id of 65 bytes", "`n`: length of the weights id", "1..64", "wavelet",
         edit(weights_id=b"a" * 65), "invalid weights id"),
    Case("weights id, capital", "weights id", "`[a-z0-9][a-z0-9._-]*`", "wavelet", edit(weights_id=b"Wavelet-v2"),
         "invalid weights id"),
    Case("weights id, leading dash", "weights id", "`[a-z0-9][a-z0-9._-]*`", "wavelet",
         edit(weights_id=b"-avelet-v2"), "invalid weights id"),
    Case("weights id, not ASCII", "weights id", "`[a-z0-9][a-z0-9._-]*`", "wavelet", edit(weights_id=b"wavelet-v\xb2"),
         "invalid weights id"),
    Case("weights id, a space", "weights id", "`[a-z0-9][a-z0-9._-]*`", "gained", edit(weights_id=b"gained q8-v1"),
         "invalid weights id"),
    Case("weights not installed", "weights id", "must be installed", "wavelet", edit(weights_id=b"wavelet-v9"),
         "are not installed", DECODE),
    Case("weights id of a restoration network", "weights id", "must be installed", "wavelet",
         edit(weights_id=b"restore-dejpeg-v1"), "are not installed", DECODE),
    Case("width 0", "image width W", "1..16384", "wavelet", edit(width=0), "outside 1..16384"),
    Case("width 16385", "image width W", "1..16384", "wavelet", edit(width=16385, latent_w=16385),
         "outside 1..16384"),
    Case("height 0", "image height H", "1..16384", "wavelet", edit(height=0), "outside 1..16384"),
    Case("height 16385", "image height H", "1..16384", "wavelet", edit(height=16385, latent_h=16385),
         "outside 1..16384"),
    Case("colour mode 2", "colour mode", "`1` = greyscale", "wavelet", edit(mode=2), "unknown colour mode 2"),
    Case("colour mode 255", "colour mode", "`0` = RGB", "ranges", edit(mode=255), "unknown colour mode 255"),
    Case("bits 0", "quantizer bits b", "1..8", "ranges", edit(bits=0), "quantizer bits 0 outside 1..8"),
    Case("bits 9", "quantizer bits b", "1..8", "ranges", edit(bits=9), "quantizer bits 9 outside 1..8"),
    Case("bits 5 with a quality level, wavelet", "quantizer bits b", "`6` with a quality level", "wavelet",
         edit(bits=5), "have no quantizer setting", DECODE),
    Case("bits 8 with a quality level, gained", "quantizer bits b", "`6` with a quality level", "gained",
         edit(bits=8), "have no quantizer setting", DECODE),
    Case("pad right of a whole stride, ranges", "pad right", "< the model's stride", "ranges",
         edit_with(_pad("right", 8)), "padding is not smaller than the model's stride", DECODE),
    Case("pad right of a whole stride, wavelet", "pad right", "< the model's stride", "wavelet",
         edit_with(_pad("right", 1)), "padding is not smaller than the model's stride", DECODE),
    Case("pad bottom of a whole stride, gained", "pad bottom", "< the model's stride", "gained",
         edit_with(_pad("bottom", 16)), "padding is not smaller than the model's stride", DECODE),
    Case("pad bottom of a whole stride, wavelet", "pad bottom", "< the model's stride", "wavelet",
         edit_with(_pad("bottom", 1)), "padding is not smaller than the model's stride", DECODE),
    Case("0 latent channels", "latent channels C", "1..1024", "wavelet", edit(channels=0), "0 latent channels"),
    Case("1025 latent channels", "latent channels C", "1..1024", "gained", edit(channels=1025),
         "1025 latent channels"),
    Case("channels not the weights', wavelet", "latent channels C", "must equal the weights' channel count",
         "wavelet", edit(channels=4), "is not what weights", DECODE),
    Case("channels not the weights', gained", "latent channels C", "must equal the weights' channel count",
         "gained", edit(channels=159), "is not what weights", DECODE),
    Case("latent height 0", "latent height h", "(H + pad bottom) / h", "wavelet", edit(latent_h=0),
         "invalid latent shape"),
    Case("latent height not tiling", "latent height h", "(H + pad bottom) / h", "wavelet", edit(latent_h=39),
         "does not tile"),
    Case("latent height of another stride", "latent height h", "must be the weights' stride", "ranges",
         edit_with(lambda f: {"latent_h": f.latent_h * 2, "latent_w": f.latent_w * 2}), "is not what weights",
         DECODE),
    Case("latent width 0", "latent width w", "(W + pad right) / w", "wavelet", edit(latent_w=0),
         "invalid latent shape"),
    Case("latent width not tiling", "latent width w", "(W + pad right) / w", "wavelet", edit(latent_w=47),
         "does not tile"),
    Case("latent width of a stride not the height's", "latent width w", "must be the same stride", "ranges",
         edit_with(lambda f: {"latent_w": f.latent_w * 2}), "does not tile"),
    Case("latent shape of stride 2, wavelet", "latent width w", "must be the same stride", "wavelet",
         edit(latent_h=20, latent_w=24), "is not what weights", DECODE),
    Case("quality 101, wavelet", "quality level q", "the weights must have that setting", "wavelet",
         edit(quality=101), "no quantizer setting quality 101", DECODE),
    Case("quality 9, gained", "quality level q", "the weights must have that setting", "gained", edit(quality=9),
         "no quantizer setting quality 9", DECODE),
    Case("quality 0 with ranges, wavelet", "quality level q", "`0`: per-image quantizer ranges follow", "wavelet",
         edit_with(lambda f: {"quality": 0, "ranges": [(0.0, 1.0)] * f.channels}), "no quantizer setting quality 0",
         DECODE),
    Case("quality 0 with ranges, gained", "quality level q", "`0`: per-image quantizer ranges follow", "gained",
         edit_with(lambda f: {"quality": 0, "ranges": [(0.0, 1.0)] * f.channels}), "no quantizer setting quality 0",
         DECODE),
    Case("a quality level on a ranges file", "quality level q", "`1..255`: a quality level", "ranges",
         edit(quality=3, ranges=[]), "no quantizer setting", DECODE),
    Case("range beyond 1e30", "quantizer ranges", "within +-1e30", "ranges",
         edit_with(lambda f: {"ranges": [(f.ranges[0][0], 2e30), *f.ranges[1:]]}), "quantizer ranges must lie within"),
    Case("range below -1e30", "quantizer ranges", "within +-1e30", "ranges",
         edit_with(lambda f: {"ranges": [*f.ranges[:-1], (-2e30, f.ranges[-1][1])]}),
         "quantizer ranges must lie within"),
    Case("range inverted", "quantizer ranges", "min <= max", "ranges", edit_with(_swapped_range),
         "quantizer ranges must lie within"),
    Case("range NaN", "quantizer ranges", "min <= max", "ranges",
         edit_with(lambda f: {"ranges": [(float("nan"), f.ranges[0][1]), *f.ranges[1:]]}),
         "quantizer ranges must lie within"),
    Case("payload length 2 mod 4, wavelet", "`L`: payload length", "a multiple of 4", "wavelet",
         edit_with(lambda f: {"payload": f.payload + b"\0\0"}), "payload length"),
    Case("payload length 1 mod 4, gained", "`L`: payload length", "a multiple of 4", "gained",
         edit_with(lambda f: {"payload": f.payload + b"\0"}), "payload length"),
    Case("payload length 3 mod 4, tiled", "`L`: payload length", "a multiple of 4", "tiled",
         edit_with(lambda f: {"payload": f.payload + b"\0\0\0"}), "payload length"),
    Case("payload length over 4 C h w + 64", "`L`: payload length", "at most 4 C h w + 64", "wavelet",
         edit_with(_longest_payload), "payload length"),
    Case("payload too short, wavelet", "payload", "range-coder words", "wavelet",
         edit_with(lambda f: {"payload": b""}), "too short to hold", DECODE),
    Case("payload too short, gained", "payload", "range-coder words", "gained",
         edit_with(lambda f: {"payload": f.payload[:4]}), "too short to hold", DECODE),
    Case("payload too short, ranges", "payload", "range-coder words", "ranges",
         edit_with(lambda f: {"payload": b""}), "too short to hold", DECODE),
    Case("checksum", "CRC-32", "zlib's CRC-32 of every byte before it", "wavelet", _damaged_crc, "checksum mismatch"),
    Case("checksum covers the header", "CRC-32", "of every byte before it", "gained", _unsealed_width,
         "checksum mismatch"),
    Case("bytes after the payload", "CRC-32", "the file ends here", "wavelet", edit(after_payload=b"\0" * 4),
         "unexpected bytes after the payload"),
    Case("payload running into the checksum", "CRC-32", "the file ends here", "ranges",
         edit_with(lambda f: {"payload_length": len(f.payload) + 4}), "ends inside the payload"),
    Case("file cut inside the header", "CRC-32", "the file ends here", "wavelet",
         lambda d: d[:20] + struct.pack("<I", zlib.crc32(d[:20])), "truncated file"),
    # the compact header (version 7)
    Case("compact flag 0x10", "compact flags", "no other bit", "compact", edit_compact(flags=0x10), "flags 0x10"),
    Case("compact flags 0x88", "compact flags", "no other bit", "compact-grey", edit_compact(flags=0x88),
         "flags 0x88"),
    Case("compact tiles with a JPEG source block", "compact flags", "never `0x02` with `0x04`", "compact-lattice",
         edit_compact(flags=0x06), "flags 0x06"),
    Case("registry number 0", "registry number k", "1..7", "compact", edit_compact(number=0),
         "weights number 0 is not one this facecodec knows"),
    Case("registry number 8", "registry number k", "a larger one is refused", "compact", edit_compact(number=8),
         "upgrade facecodec"),
    Case("width of 4 varint bytes", "width W, pixels, as a varint", "at most 3 bytes", "compact",
         edit_compact(width=b"\xb0\x80\x80\x00"), "longer than 3 bytes"),
    Case("width with a needless zero byte", "width W, pixels, as a varint", "no zero last byte after the first",
         "compact", edit_compact(width=lambda f: bytes([f.width[0] | 0x80, 0])), "needless zero byte"),
    Case("width 0 in a varint", "width W, pixels, as a varint", "1..16384", "compact", edit_compact(width=varint(0)),
         "outside 1..16384"),
    Case("width 16385 in a varint", "width W, pixels, as a varint", "1..16384", "compact",
         edit_compact(width=varint(16385)), "outside 1..16384"),
    Case("height of 4 varint bytes", "height H, pixels, as a varint", "as W", "compact-grey",
         edit_compact(height=b"\xa8\x80\x80\x00"), "longer than 3 bytes"),
    Case("height 16385 in a varint", "height H, pixels, as a varint", "as W", "compact",
         edit_compact(height=varint(16385)), "outside 1..16384"),
    Case("compact quality 0", "compact quality level q", "1..255", "compact", edit_compact(quality=0),
         "quality level 0 in a version-7 header"),
    Case("compact quality 101", "compact quality level q", "the weights must have that setting", "compact",
         edit_compact(quality=101), "no quantizer setting quality 101", DECODE),
    Case("compact quality 2, jpeg-file", "compact quality level q", "the weights must have that setting",
         "compact-jpeg-file", edit_compact(quality=2), "no quantizer setting", DECODE),
    Case("compact payload 2 mod 4", "entropy-coded payload", "a multiple of 4", "compact",
         edit_compact(payload=lambda f: f.payload + b"\0\0"), "payload length"),
    Case("compact payload over 12 W H + 64", "entropy-coded payload", "at most 12 W H + 64", "compact",
         edit_compact(payload=lambda f: bytes(12 * 48 * 40 + 68)), "payload length"),
    Case("compact header running into the checksum", "entropy-coded payload", "less every other field",
         "compact-metadata", lambda d: d[:20] + struct.pack("<I", zlib.crc32(d[:20])), "truncated file"),
    Case("compact payload too short", "entropy-coded payload", "a multiple of 4", "compact",
         edit_compact(payload=b""), "too short to hold", DECODE),
    # the tiled payload (version 4)
    Case("tile side 100", "tile side `T`", "a multiple of 16", "tiled", tiled(side=100), "tile side 100", DECODE),
    Case("tile side 48", "tile side `T`", "in 64..16384", "tiled", tiled(side=48), "tile side 48", DECODE),
    Case("tile side 16400", "tile side `T`", "in 64..16384", "tiled", tiled(side=16400), "tile side 16400", DECODE),
    Case("tile side 0", "tile side `T`", "in 64..16384", "tiled", tiled(side=0), "tile side 0", DECODE),
    Case("tile lengths not whole words", "`N` tile lengths", "each a multiple of 4", "tiled",
         tiled(lengths=lambda n: [n[0] - 2, n[1] + 2, *n[2:]]), "tile lengths do not add up", DECODE),
    Case("tile lengths summing over L", "`N` tile lengths", "`4 + 4 N + sum L_k = L` exactly", "tiled",
         tiled(lengths=lambda n: [n[0] + 4, *n[1:]]), "tile lengths do not add up", DECODE),
    Case("tile lengths summing under L", "`N` tile lengths", "`4 + 4 N + sum L_k = L` exactly", "tiled",
         tiled(lengths=lambda n: [*n[:-1], n[-1] - 4]), "tile lengths do not add up", DECODE),
    Case("tile table cut", "`N` tile lengths", "`4 + 4 N + sum L_k = L` exactly", "tiled", tiled(cut=12),
         "too short for the lengths of its 4 tiles", DECODE),
    Case("tile side cut", "tile side `T`", "a multiple of 16", "tiled", tiled(cut=0), "too short for its tile side",
         DECODE),
    Case("a tile's payload too short", "the tile payloads", "each checked and decoded as the version-3 payload",
         "tiled", tiled(part=lambda k, p: p[:4] if k == 0 else p), "too short to hold", DECODE),
    # version 8: overlapping tiles
    Case("version 8 untiled", "compact flags", "in version 8 always `0x02`", "compact-tiled",
         edit_compact(flags=0x00), "flags 0x00"),
    Case("overlapping tile side 100", "side of the overlapping tiles `T`", "a multiple of 16 in 64..16384",
         "compact-tiled", overlapping(side=100), "tile side 100", DECODE),
    Case("overlap 8", "overlap `V`", "a multiple of 16", "compact-tiled", overlapping(overlap=8), "tile overlap 8",
         DECODE),
    Case("overlap 0", "overlap `V`", "in 16..T/2", "compact-tiled", overlapping(overlap=0), "tile overlap 0", DECODE),
    Case("overlap over half a tile", "overlap `V`", "in 16..T/2", "compact-tiled", overlapping(overlap=TILE // 2 + 16),
         f"tile overlap {TILE // 2 + 16}", DECODE),
    Case("overlapping tile lengths not whole words", "lengths of the overlapping tiles", "each a multiple of 4",
         "compact-tiled", overlapping(lengths=lambda n: [n[0] + 1, n[1] - 1, *n[2:]]), "in whole 32-bit words",
         DECODE),
    Case("overlapping tile lengths summing over L", "lengths of the overlapping tiles",
         "`8 + 4 N + sum L_k = L` exactly", "compact-tiled", overlapping(lengths=lambda n: [n[0] + 4, *n[1:]]),
         "do not add up", DECODE),
    Case("an overlapping tile's payload too short", "the overlapping tiles' payloads",
         "each checked and decoded as the version-3 payload of its coded area", "compact-tiled",
         overlapping(part=lambda k, p: p[:4] if k == 0 else p), "too short to hold", DECODE),
    # the jpeg-file family's payload (a JPEG's own coefficients)
    Case("padding of another value", "padding: k bytes", "every byte of value k", "jpeg-file",
         jpeg_payload(lambda stream, pad: stream + bytes([pad + 1]) * pad if pad < 4 else stream + b"\x01\x01\x01\x05"),
         "padding is damaged", DECODE),
    Case("padding of 8 bytes", "padding: k bytes", "1 <= k <= 4, and S + k a multiple of 4", "jpeg-file",
         jpeg_payload(lambda stream, pad: stream + bytes([pad]) * pad + b"\x08" * 8), "padding is damaged", DECODE),
    Case("a Lepton header claiming a 1 GB JPEG", "a Lepton stream", "the lengths in its header fit", "jpeg-file",
         jpeg_payload(lambda stream, pad: stream[:20] + struct.pack("<I", 1 << 30) + stream[24:] + bytes([pad]) * pad),
         "lengths do not fit", DECODE),
    Case("a Lepton stream whose scans are zeros", "a Lepton stream", "it decodes to a JPEG of W x H", "jpeg-file",
         jpeg_payload(lambda stream, pad: stream[:-64] + bytes(64) + bytes([pad]) * pad), "does not decode", DECODE),
    Case("a JPEG of another size", "a Lepton stream", "it decodes to a JPEG of W x H", "jpeg-file",
         edit_with(lambda f: {"width": f.width + 8, "latent_w": f.latent_w + 8}), "the header says", DECODE),
    # the jpeg-rebuilt family's payload (a JPEG rebuilt from the pixels, and the residual)
    Case("a rebuilt JPEG longer than its payload", "the rebuilt JPEG's length S", "at most the payload's length",
         "jpeg-rebuilt", rebuilt_payload(lambda n, lepton, residual: struct.pack("<I", 4 + len(lepton) + len(residual))
                                         + n[4:] + lepton + residual), "runs past its payload", DECODE),
    Case("a grid offset of 16 columns", "grid offset `dx`", "0..15", "jpeg-rebuilt",
         rebuilt_payload(lambda n, lepton, residual: n[:4] + bytes([16]) + n[5:] + lepton + residual),
         "grid offset", DECODE),
    Case("a grid offset of 16 rows", "grid offset `dy`", "0..15", "jpeg-rebuilt",
         rebuilt_payload(lambda n, lepton, residual: n[:5] + bytes([16]) + lepton + residual), "grid offset", DECODE),
    Case("a grid offset the JPEG does not have", "the rebuilt JPEG: a Lepton stream",
         "decodes to a JPEG of (W + dx) x (H + dy)", "jpeg-rebuilt",
         rebuilt_payload(lambda n, lepton, residual: n[:4] + bytes([n[4] ^ 8, n[5]]) + lepton + residual),
         "the header says", DECODE),
    Case("a rebuilt JPEG whose scans are zeros", "the rebuilt JPEG: a Lepton stream", "decodes to a JPEG of",
         "jpeg-rebuilt", rebuilt_payload(lambda n, lepton, residual: n + lepton[:-64] + bytes(64) + residual),
         "does not decode", DECODE),
    Case("a residual cut short", "the residual: a raw LZMA2 stream", "it decodes to exactly P W H bytes",
         "jpeg-rebuilt", rebuilt_payload(lambda n, lepton, residual: n + lepton + residual[:len(residual) // 2]),
         "residual", DECODE),
    Case("a residual of zeros", "the residual: a raw LZMA2 stream", "it decodes to exactly P W H bytes",
         "jpeg-rebuilt", rebuilt_payload(lambda n, lepton, residual: n + lepton + bytes(len(residual))),
         "residual", DECODE),
    Case("bytes after the residual", "the residual: a raw LZMA2 stream", "ends (its end marker) exactly where",
         "jpeg-rebuilt", rebuilt_payload(lambda n, lepton, residual: n + lepton + residual + b"\x00\x00\x00\x00"),
         "not the image's size", DECODE),
    Case("rebuilt padding of another value", "the rebuilt JPEG's padding", "every byte of value k", "jpeg-rebuilt",
         jpeg_payload(lambda body, pad: body + bytes([pad + 1]) * pad if pad < 4 else body + b"\x01\x01\x01\x05"),
         "padding is damaged", DECODE),
    Case("rebuilt padding of 8 bytes", "the rebuilt JPEG's padding", "1 <= k <= 4, the whole payload a multiple of 4",
         "jpeg-rebuilt", jpeg_payload(lambda body, pad: body + bytes([pad]) * pad + b"\x08" * 8),
         "padding is damaged", DECODE),
    # the wavelet family's bounds (prose)
    Case("an LL value beyond 2^21", "**Bounds.**", "as soon as an LL value leaves `+-2^21`", "wavelet",
         wavelet_values((0, 0, 0), LL_MAX + 1), "LL value outside the format's range", DECODE),
    Case("a detail value beyond 2^21", "**Symbols.**", "Every `|q| <= 2^21`", "wavelet",
         wavelet_values((1, 39, 47), -LL_MAX - 1), "value outside the format's range", DECODE),
    Case("a payload shorter than its symbols' information", "## Reading order",
         "not at all if the payload is shorter than the information content", "wavelet",
         edit_with(lambda f: {"payload": f.payload[:4]}), "too short to hold", DECODE),
]


# --- the valid files ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    """Valid files of every family: 48 x 40 crops of the astronaut (default weights, gained-q8-v1, theis-c24-v1) and
    a 96 x 72 one in 2 x 2 tiles of 64 (version 4). The registered weights' files, which facecodec writes with the
    compact header (version 7, "compact..."), also with the long header ("wavelet", "tiled", ...), as files written
    before version 7 have it."""
    picture = astronaut()
    crop, large = picture[40:80, 170:218], picture[30:102, 160:256]
    compact = {"compact": facecodec.encode(crop, device="cpu"),
               "compact-grey": facecodec.encode(Image.fromarray(crop).convert("L"), device="cpu"),
               "compact-tiled": facecodec.encode(large, device="cpu", tile=TILE),
               "compact-tiled-4": without_overlap(lambda: facecodec.encode(large, device="cpu", tile=TILE)),
               "compact-metadata": facecodec.encode(with_metadata(crop), device="cpu"),
               "compact-lattice": facecodec.encode(as_jpeg(crop), device="cpu", strip=True),
               "compact-jpeg-file": facecodec.encode(as_jpeg(crop), lossless=True, strip=True),
               "compact-jpeg-rebuilt": facecodec.encode(np.asarray(Image.open(io.BytesIO(as_jpeg(crop)))),
                                                        weights_id=REBUILT, lossless=True)}
    long = {name: pack(*unpack(compact[twin_of(name)]), long_header=True)
            for name in ("tiled", "metadata", "lattice", "jpeg-file", "jpeg-rebuilt")}
    return {**compact, **long, "wavelet": pack(*unpack(compact["compact"]), long_header=True),
            "gained": facecodec.encode(crop, weights_id="gained-q8-v1", device="cpu"),
            "ranges": facecodec.encode(crop, weights_id="theis-c24-v1", device="cpu")}


def twin_of(name: str) -> str:
    """The compact file whose long-header twin is the long file ``name`` (overlapping tiles have no long form: the
    long tiled file is the twin of the file in tiles that do not overlap)."""
    return {"wavelet": "compact", "tiled": "compact-tiled-4"}.get(name, f"compact-{name}")


def without_overlap(encode: Callable[[], bytes]) -> bytes:
    """``encode()`` in tiles that do not overlap, as facecodec wrote tiled files before version 8."""
    with mock.patch.object(WaveletFamily, "tile_overlap", 0):
        return encode()


def as_jpeg(pixels: np.ndarray) -> bytes:
    """The pixels saved as a JPEG of quality 75, 4:2:0, as most face photos are."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=75, subsampling=2)
    return buffer.getvalue()


def with_metadata(pixels: np.ndarray) -> Image.Image:
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x010F] = "FaceCam"
    image.info.update(icc_profile=ICC, exif=exif.tobytes())
    return image


def test_the_valid_files_decode_and_parse_at_the_specs_offsets(files):
    assert files["wavelet"][4] == 3 and files["tiled"][4] == 4 and files["metadata"][4:6] == b"\x05\x01"
    assert files["lattice"][4:6] == b"\x06\x04" and Fields.parse(files["lattice"]).lattice_block[2:] == b"\x00\x4b"
    assert Fields.parse(files["metadata"]).metadata_block[:len(ICC) + 7] == b"\x02\x01" + struct.pack("<I", len(ICC)) + ICC + b"\x02"
    assert files["compact"][4:10] == b"\x07\x00\x03\x30\x28\x32"   # wavelet-v2, 48 x 40, quality 50
    assert [files[name][4:7] for name in ("compact-grey", "compact-tiled", "compact-metadata", "compact-lattice",
                                          "compact-jpeg-file")] == [b"\x07\x08\x03", b"\x08\x02\x03", b"\x07\x01\x03",
                                                                    b"\x07\x04\x03", b"\x07\x00\x06"]
    assert Compact.parse(files["compact-tiled"]).width == b"\x60" and Compact.parse(files["compact-lattice"]).blocks[2:] == b"\x00\x4b"
    for name, data in files.items():
        layout = Compact if name.startswith("compact") else Fields
        assert layout.parse(data).to_bytes() == data, name   # the layouts above are FORMAT.md's
        header = facecodec.read_header(data)
        check_decodable(data)
        image = facecodec.decode(data, device="cpu")
        assert image.size == (header.width, header.height), name
    assert facecodec.read_header(files["tiled"]).weights_id == facecodec.zoo.default_weights_id()
    assert split_tiled(Fields.parse(files["tiled"]).payload, 4)[0] == TILE


def test_a_compact_file_and_its_long_twin_hold_the_same_and_decode_alike(files):
    """The compact header leaves out only what the registry implies: both headers read the same, and every file of
    registered weights shrinks by what the long header spent on it: 22 bytes and the weights id, less the sides'
    varints (44 bytes against 14 for the default weights here)."""
    for name in ("tiled", "metadata", "lattice", "jpeg-file", "jpeg-rebuilt", "wavelet"):
        compact = files[twin_of(name)]
        long = files[name]
        assert unpack(compact) == unpack(long), name
        assert np.array_equal(np.asarray(facecodec.decode(compact, device="cpu")),
                              np.asarray(facecodec.decode(long, device="cpu"))), name
        header = unpack(long)[0]
        assert len(long) - len(compact) == 22 + len(header.weights_id) - 2, name


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_file_breaking_one_rule_is_refused_by_that_rule(files, case):
    forged = case.forge(files[case.base])
    assert forged != files[case.base]
    if case.stage == HEADER:
        with pytest.raises(FczError, match=re.escape(case.message)):
            facecodec.read_header(forged)
    else:
        facecodec.read_header(forged)   # every container rule still holds: only the one rule is broken
        with pytest.raises(FczError, match=re.escape(case.message)):
            facecodec.decode(forged, device="cpu")


# --- the spec's rules, each with a case -----------------------------------------------------------------

def spec_rules() -> dict[str, str]:
    """FORMAT.md's table rows with a "rules the reader enforces" cell: field -> rules (every table that has one)."""
    rules: dict[str, str] = {}
    columns: list[str] | None = None
    for line in SPEC.read_text().splitlines():
        if not line.startswith("|"):
            columns = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if columns is None:
            columns = cells
        elif set(line) <= set("|- "):
            continue
        elif RULES_COLUMN in columns and len(cells) == len(columns):
            row = dict(zip(columns, cells))
            if row[RULES_COLUMN]:
                rules[row["field"]] = row[RULES_COLUMN]
    return rules


def spec_prose(where: str) -> str:
    """A paragraph of FORMAT.md (``**Bounds.**``) or a section (``## Reading order``), joined into one line."""
    text = SPEC.read_text()
    start = text.index(where)
    end = text.find("\n## ", start + 1) if where.startswith("## ") else text.find("\n\n", start)
    return " ".join(text[start:end if end >= 0 else None].split())


def rules_of(case: Case) -> str:
    if case.where.startswith(("**", "## ")):
        return spec_prose(case.where)
    matches = [rules for name, rules in spec_rules().items() if name.startswith(case.where)]
    assert len(matches) == 1, f"{case.where!r} names {len(matches)} rows of FORMAT.md's tables"
    return " ".join(matches[0].split())


def test_the_spec_tables_are_parsed():
    rules = spec_rules()
    assert len(rules) >= 20 and any(name.startswith("flags") for name in rules)
    assert any(name.startswith("tile side") for name in rules)


def test_every_rule_of_the_spec_has_a_case():
    """Each row of FORMAT.md's tables whose "rules the reader enforces" cell says something has a case above."""
    missing = [name for name in spec_rules() if not any(name.startswith(case.where) for case in CASES)]
    assert not missing, f"FORMAT.md rules without a refusal test in tests/test_format_rules.py: {missing}"


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_case_quotes_its_rule_from_the_spec(case):
    assert case.rule in rules_of(case), f"FORMAT.md no longer words {case.where!r}'s rule as {case.rule!r}"
