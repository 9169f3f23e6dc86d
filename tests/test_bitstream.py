"""The container and entropy coder on their own: exact round trips and every header rule."""
from __future__ import annotations

import struct
import zlib
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facecodec.bitstream import FczError, FczHeader, decode_symbols, encode_symbols, pack, unpack
from facecodec.bitstream.container import FORMAT_VERSION, MAGIC, MAX_SIDE, REGISTRY, UNTILED_VERSION
from facecodec.bitstream.metadata import NO_METADATA, Metadata, pack_block


def make_header(**changes) -> FczHeader:
    header = FczHeader(weights_id="test-c2-v1", width=30, height=21, mode="RGB", bits=6, pad_right=2,
                       pad_bottom=3, latent_shape=(2, 3, 4), channel_ranges=((-1.5, 2.25), (0.0, 0.0)))
    return replace(header, **changes)


def make_file(header: FczHeader | None = None, seed: int = 0) -> tuple[FczHeader, np.ndarray, np.ndarray, bytes]:
    header = header or make_header()
    rng = np.random.default_rng(seed)
    c, h, w = header.latent_shape
    tables = rng.integers(1, 1000, size=(c, 2**header.bits))
    symbols = rng.integers(0, 2**header.bits, size=(c, h, w))
    return header, tables, symbols, pack(header, encode_symbols(symbols, tables))


def with_crc(body: bytes) -> bytes:
    """Re-seal an edited file so the edit reaches the field checks behind the checksum."""
    return body + struct.pack("<I", zlib.crc32(body))


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(1, 8), c=st.integers(1, 5), h=st.integers(0, 9), w=st.integers(0, 9), seed=st.integers(0, 2**32 - 1))
def test_entropy_round_trip_is_symbol_exact(bits, c, h, w, seed):
    rng = np.random.default_rng(seed)
    tables = rng.integers(1, 5000, size=(c, 2**bits))
    tables[rng.random(tables.shape) < 0.3] = 1  # rare symbols must still round-trip
    symbols = rng.integers(0, 2**bits, size=(c, h, w))
    assert np.array_equal(decode_symbols(encode_symbols(symbols, tables), tables, (h, w)), symbols)


def test_matching_table_codes_below_raw_bits():
    rng = np.random.default_rng(1)
    probabilities = np.exp(-0.5 * ((np.arange(64) - 32) / 4.0) ** 2)
    symbols = rng.choice(64, size=(3, 40, 40), p=probabilities / probabilities.sum())
    tables = np.tile(np.round(probabilities * 1e6).astype(np.int64) + 1, (3, 1))
    bits_per_symbol = 8 * len(encode_symbols(symbols, tables)) / symbols.size
    assert bits_per_symbol < 4.5  # entropy of this distribution is about 4.05 bits, raw is 6


def test_symbols_outside_alphabet_are_refused():
    with pytest.raises(ValueError):
        encode_symbols(np.full((1, 2, 2), 64), np.ones((1, 64)))


def test_container_round_trip_preserves_every_field():
    header, tables, symbols, data = make_file()
    parsed, payload = unpack(data)
    assert parsed == header
    assert parsed.stride == 8
    assert np.array_equal(decode_symbols(payload, tables, (3, 4)), symbols)


def test_layout_matches_format_md():
    header, _, _, data = make_file()
    n = len(header.weights_id)
    assert data[:4] == MAGIC == b"\x89FCZ"
    assert data[4] == UNTILED_VERSION and data[5] == 0 and data[6] == n
    assert data[7:7 + n] == b"test-c2-v1"
    assert struct.unpack_from("<IIBBBBHHH", data, 7 + n) == (30, 21, 0, 6, 2, 3, 2, 3, 4)
    assert data[25 + n] == 0  # quality 0: per-image quantizer ranges follow
    assert struct.unpack_from("<4f", data, 26 + n) == (-1.5, 2.25, 0.0, 0.0)
    (length,) = struct.unpack_from("<I", data, 26 + n + 16)
    assert len(data) == 30 + n + 16 + length + 4
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])


def test_quality_level_replaces_the_ranges():
    header, _, _, data = make_file(make_header(quality=5, channel_ranges=()))
    n = len(header.weights_id)
    assert data[25 + n] == 5
    (length,) = struct.unpack_from("<I", data, 26 + n)
    assert len(data) == 30 + n + length + 4
    parsed = unpack(data)[0]
    assert parsed == header


@pytest.mark.parametrize("changes", [{"quality": 3}, {"quality": 0, "channel_ranges": ()}, {"quality": 256}])
def test_quality_and_ranges_must_agree(changes):
    with pytest.raises(FczError, match="quantizer range|quality level"):
        pack(make_header(**changes), b"")


def test_version_1_files_are_still_read():
    """Version 1 had no quality byte: its ranges follow the shape block directly."""
    header, tables, symbols, data = make_file()
    n = len(header.weights_id)
    v1 = data[:4] + b"\x01" + data[5:25 + n] + data[26 + n:-4]
    parsed, payload = unpack(with_crc(v1))
    assert parsed == replace(header, version=1)
    assert np.array_equal(decode_symbols(payload, tables, (3, 4)), symbols)


def test_version_2_files_are_still_read_and_written_as_such():
    header, _, _, data = make_file()
    v2 = data[:4] + b"\x02" + data[5:-4]
    parsed, payload = unpack(with_crc(v2))
    assert parsed == replace(header, version=2)
    assert pack(parsed, payload) == with_crc(v2)  # a version-2 header re-packs as version 2
    with pytest.raises(FczError, match="no longer written"):
        pack(replace(header, version=1), payload)


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("bits", [1, 8])
def test_modes_and_bit_depths_round_trip(mode, bits):
    header, _, _, data = make_file(make_header(mode=mode, bits=bits))
    assert unpack(data)[0] == header


@pytest.mark.parametrize("data, message", [
    (b"", "empty file"),
    (b"GIF89a" + bytes(40), "wrong magic"),
    (b"\x89FC", "wrong magic"),
])
def test_not_fcz(data, message):
    with pytest.raises(FczError, match=message):
        unpack(data)


def test_every_truncation_is_refused():
    *_, data = make_file()
    for end in range(len(data)):
        with pytest.raises(FczError):
            unpack(data[:end])


def test_every_single_bit_flip_is_refused():
    *_, data = make_file()
    for position in range(len(data)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[position] ^= 1 << bit
            with pytest.raises(FczError):
                unpack(bytes(damaged))


def test_newer_version_is_refused_by_name():
    *_, data = make_file()
    with pytest.raises(FczError, match="newer than this facecodec"):
        unpack(data[:4] + bytes([FORMAT_VERSION + 1]) + data[5:])


def test_trailing_bytes_are_refused():
    *_, data = make_file()
    with pytest.raises(FczError, match="unexpected bytes"):
        unpack(with_crc(data[:-4] + b"\0\0\0\0"))


def test_checksum_mismatch_names_the_checksum():
    *_, data = make_file()
    with pytest.raises(FczError, match="checksum"):
        unpack(data[:-1] + bytes([data[-1] ^ 0xFF]))


def _edit_shape(data: bytes, header: FczHeader, **fields) -> bytes:
    """Rewrite the fixed shape block of a file (see FORMAT.md) and re-seal its checksum."""
    offset = 7 + len(header.weights_id)
    names = ["width", "height", "mode", "bits", "pad_right", "pad_bottom", "c", "h", "w"]
    values = dict(zip(names, struct.unpack_from("<IIBBBBHHH", data, offset)))
    values.update(fields)
    block = struct.pack("<IIBBBBHHH", *(values[n] for n in names))
    return with_crc(data[:offset] + block + data[offset + len(block):-4])


@pytest.mark.parametrize("fields, message", [
    ({"width": 100_000, "height": 100_000}, "outside 1..16384"),
    ({"width": 0}, "outside 1..16384"),
    ({"mode": 7}, "unknown colour mode"),
    ({"bits": 0}, "bits 0 outside"),
    ({"bits": 9}, "bits 9 outside"),
    ({"c": 0}, "latent channels"),
    ({"c": 5000}, "latent channels"),
    ({"w": 5}, "does not tile"),
    ({"h": 0}, "invalid latent shape"),
])
def test_header_fields_out_of_range_are_refused(fields, message):
    header, _, _, data = make_file()
    with pytest.raises(FczError, match=message):
        unpack(_edit_shape(data, header, **fields))


def test_absurd_payload_length_is_refused_before_reading_it():
    header, _, _, data = make_file()
    offset = 26 + len(header.weights_id) + 8 * header.latent_shape[0]
    edited = data[:offset] + struct.pack("<I", 2**32 - 4) + data[offset + 4:-4]
    with pytest.raises(FczError, match="payload length"):
        unpack(with_crc(edited))


def test_non_finite_or_inverted_ranges_are_refused():
    for ranges in [((float("nan"), 1.0), (0.0, 0.0)), ((2.0, 1.0), (0.0, 0.0)), ((float("inf"),) * 2, (0.0, 0.0)),
                   ((-2.9e38, 2.9e38), (0.0, 0.0))]:  # finite, but max - min overflows float32
        with pytest.raises(FczError, match="quantizer ranges"):
            pack(make_header(channel_ranges=ranges), b"")


def test_bad_weights_id_is_refused():
    with pytest.raises(FczError, match="weights id"):
        pack(make_header(weights_id="Bad Id!"), b"")


def test_largest_allowed_side_is_accepted():
    header = make_header(width=MAX_SIDE, height=8, pad_right=0, pad_bottom=0, latent_shape=(2, 1, 2048))
    assert unpack(pack(header, b""))[0] == header


# --- the compact header (format 7) ----------------------------------------------------------------------------

def registered_header(**changes) -> FczHeader:
    """A header of the default weights, which the compact header (format 7) names by its registry number."""
    header = FczHeader(weights_id="wavelet-v2", width=150, height=150, mode="RGB", bits=6, pad_right=0,
                       pad_bottom=0, latent_shape=(3, 150, 150), channel_ranges=(), quality=50)
    return replace(header, **changes)


@pytest.mark.parametrize("width, height", [(1, 1), (127, 128), (128, 127), (16383, 2), (16384, 16384), (90, 110)])
@pytest.mark.parametrize("number", range(1, len(REGISTRY) + 1))
def test_every_compact_field_round_trips(width, height, number):
    """Each registered weights, sides at the varints' byte boundaries, both modes, a tiled payload, a metadata block,
    quality levels at the ends: the compact file reads back as the header it was written from, and as its long twin."""
    weights_id, bits = REGISTRY[number - 1]
    metadata = Metadata(exif=b"Exif" * number) if number > 4 else NO_METADATA
    header = registered_header(weights_id=weights_id, bits=bits, width=width, height=height,
                               latent_shape=(3, height, width), mode="L" if number % 2 else "RGB",
                               quality=(1, 100, 255)[number % 3], version=4 if number == 3 else 3, metadata=metadata)
    payload = b"\x01\x02\x03\x04" * number
    data = pack(header, payload)
    sides = sum(1 + (side >= 128) + (side >= 16384) for side in (width, height))   # LEB128: 7 bits a byte
    flags = (metadata != NO_METADATA) | 2 * (number == 3) | 8 * (number % 2)
    assert data[4:7] == bytes([7, flags, number])
    assert len(data) == 4 + 3 + sides + 1 + len(pack_block(metadata) if metadata else b"") + len(payload) + 4
    assert unpack(data) == (header, payload)
    assert unpack(pack(header, payload, long_header=True)) == unpack(data)


def test_other_weights_and_payloads_of_version_2_keep_the_long_header():
    assert pack(make_header(), b"")[4] == UNTILED_VERSION                              # not registered
    assert pack(registered_header(version=2), b"")[4] == 2                             # a plane-ordered payload
    assert pack(registered_header(bits=5), b"")[4] == UNTILED_VERSION                  # not the registry's bits
    assert pack(registered_header(), b"")[4] == 7


@pytest.mark.parametrize("edit, message", [
    (lambda d: d[:6] + b"\x00" + d[7:], "weights number 0"),
    (lambda d: d[:6] + bytes([len(REGISTRY) + 1]) + d[7:], "upgrade facecodec"),
    (lambda d: d[:7] + b"\x96\x81\x00" + d[9:], "needless zero byte"),
    (lambda d: d[:7] + b"\x96\x81\x80\x01" + d[9:], "longer than 3 bytes"),
    (lambda d: d[:5] + b"\x10" + d[6:], "flags 0x10"),
    (lambda d: d[:11] + b"\x00" + d[12:], "quality level 0"),
    (lambda d: d[:12] + b"\x00" + d[12:], "payload length"),
])
def test_damaged_compact_fields_are_refused(edit, message):
    data = pack(registered_header(), b"\x00" * 8)
    with pytest.raises(FczError, match=message):
        unpack(with_crc(edit(data)[:-4]))
