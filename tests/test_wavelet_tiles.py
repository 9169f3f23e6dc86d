"""Tiled coding of the wavelet family (formats 4 and 8): large images as a grid of independently coded tiles, which
overlap by 16 pixels (format 8) so that no seam lies at a tile's edge.

The coding tile side (``WaveletFamily.DEFAULT_TILE``) is 1024; here the encodes ask for ``tile=128``, so a 300 x 200
picture makes 3 x 2 tiles in a few seconds.
"""
from __future__ import annotations

import hashlib
import struct
from unittest import mock

import numpy as np
import pytest
from PIL import Image
from skimage.data import astronaut

import facecodec
from facecodec.bitstream import FczError, pack, unpack
from facecodec.bitstream.container import COMPACT_VERSION, OVERLAP_VERSION, TILED_VERSION, UNTILED_VERSION
from facecodec.bitstream.tiles import coded_box, join_tiles, split_tiles, tile_grid
from facecodec.codec import EncodeSettings, analyse, encode_settings, features_to_fcz, reduced_size
from facecodec.reading import inspect
from facecodec.families.wavelet import WaveletFamily
from facecodec.metrics import psnr
from facecodec.runner.convert import convert_chunk
from facecodec.runner.jobs import Conversion, Job
from facecodec.arrays import padded_array
from facecodec.zoo import load_spec, load_weights

TILE = 128


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    """300 x 200: two astronaut crops side by side (the face, and the flag and suit)."""
    a = astronaut()
    return np.hstack([a[20:220, 150:300], a[200:400, 0:150]])


@pytest.fixture(scope="module")
def untiled(picture) -> bytes:
    return facecodec.encode(picture, device="cpu")


@pytest.fixture(scope="module")
def tiled(picture) -> bytes:
    return facecodec.encode(picture, device="cpu", tile=TILE)


@pytest.fixture(scope="module")
def tiled_without_overlap(picture) -> bytes:
    """The picture in tiles that do not overlap, as facecodec wrote every tiled file before format 8."""
    with mock.patch.object(WaveletFamily, "tile_overlap", 0):
        return facecodec.encode(picture, device="cpu", tile=TILE)


def test_the_grid_covers_the_image_in_raster_order():
    assert tile_grid(300, 200, 128) == [(0, 0, 128, 128), (128, 0, 256, 128), (256, 0, 300, 128),
                                        (0, 128, 128, 200), (128, 128, 256, 200), (256, 128, 300, 200)]
    assert tile_grid(1024, 1024, 1024) == [(0, 0, 1024, 1024)]


def test_small_images_keep_the_bytes_they_had_before_tiles():
    """Format 3, byte for byte. The digests were written by facecodec before tiles existed (plain quantizer:
    only float32 adds, multiplies and divides, the same on any CPU), of the long header that the compact one
    (format 7) has replaced since: the same payload; the default effort is compared with the untiled path,
    image -> features -> .fcz."""
    crop = Image.fromarray(astronaut()[20:180, 150:350])
    digests = {"RGB": "8ebd13f75322e6dbe26262891bd69ee72b969edbaaf338fba1a2bc45fcd87e1d",
               "L": "bad6eb42e1272154e3da3d4456c503967bd6d5ac8daceeec895e117499dfa7a8"}
    for mode, digest in digests.items():
        data = facecodec.encode(crop.convert(mode), device="cpu", quality=20, effort=0, weights_id="wavelet-v1")
        header, payload = unpack(data)
        assert header.version == UNTILED_VERSION
        assert hashlib.sha256(pack(header, payload, long_header=True)).hexdigest() == digest
    weights = load_weights(facecodec.zoo.default_weights_id(), "cpu")
    x, pad_right, pad_bottom = padded_array(crop, weights.stride)
    settings = EncodeSettings(weights.weights_id, weights.family.default, weights.family.default_effort,
                              weights.family.choose_tile(None))
    one_pass = features_to_fcz(weights, analyse(weights, x), settings, crop.size, "RGB", pad_right, pad_bottom)
    assert facecodec.encode(crop, device="cpu") == one_pass


def test_a_tiled_file_round_trips_close_to_one_pass(picture, tiled, untiled):
    header, payload = unpack(tiled)
    assert header.version == OVERLAP_VERSION and tiled[4] == OVERLAP_VERSION
    assert unpack(untiled)[0].version == UNTILED_VERSION
    assert split_tiles(payload, 300, 200, overlapping=True)[:2] == (TILE, WaveletFamily.tile_overlap)
    decoded = np.asarray(facecodec.decode(tiled, device="cpu"))
    assert decoded.shape == picture.shape
    one_pass = psnr(picture, np.asarray(facecodec.decode(untiled, device="cpu")))
    assert psnr(picture, decoded) > one_pass - 0.3
    # the overlap codes 19 % more pixels in these small tiles (20.7 against 17.4 kB; 1.5 % without it, their fresh
    # contexts); in tiles of 1024 a 16-pixel overlap is 1.5-3 % more
    assert len(tiled) < 1.25 * len(untiled)
    assert inspect(tiled)[0] == header


def seam_error(picture: np.ndarray, data: bytes) -> float:
    """The mean absolute error of the decode on the tiles' seams: the two columns and the two rows either side."""
    error = np.abs(np.asarray(facecodec.decode(data, device="cpu"), dtype=np.float64) - picture).mean(axis=-1)
    return (error[:, [TILE - 1, TILE, 2 * TILE - 1, 2 * TILE]].mean() + error[[TILE - 1, TILE], :].mean()) / 2


def test_no_seam_shows_where_the_tiles_overlap(picture, tiled, tiled_without_overlap, untiled):
    """Each tile's wavelet mirrors the picture at its edges, so tiles that meet edge to edge (before format 8) put
    their worst pixels on the seam: measured 2.49 levels there against 1.99 untiled; overlapping by 16 pixels, the
    seam is 1.98."""
    assert seam_error(picture, tiled) < 1.05 * seam_error(picture, untiled)
    assert seam_error(picture, tiled_without_overlap) > 1.15 * seam_error(picture, untiled)


def test_files_in_tiles_without_overlap_still_decode(picture, tiled_without_overlap):
    header, payload = unpack(tiled_without_overlap)
    assert (header.version, tiled_without_overlap[4]) == (TILED_VERSION, COMPACT_VERSION)
    assert psnr(picture, np.asarray(facecodec.decode(tiled_without_overlap, device="cpu"))) > 38
    assert unpack(pack(header, payload, long_header=True))[0].version == TILED_VERSION   # and in the long header
    with pytest.raises(FczError, match="only the compact header"):
        pack(*unpack(facecodec.encode(picture, device="cpu", tile=TILE)), long_header=True)


def test_each_tile_is_the_file_of_its_crop(picture, tiled):
    """A tile's payload is the version-3 payload of its crop, with its overlap, coded alone: the reuse FORMAT.md
    promises."""
    _, payload = unpack(tiled)
    _, overlap, boxes, parts = split_tiles(payload, 300, 200, overlapping=True)
    for box, part in zip(boxes, parts):
        left, top, right, bottom = coded_box(box, overlap)
        alone = facecodec.encode(picture[top:bottom, left:right], device="cpu")   # one payload: under 1024
        assert unpack(alone)[1] == bytes(part)


@pytest.mark.parametrize("reduce", [1, 2, 3, 4])
def test_reduced_decoding_of_a_tiled_file(picture, tiled, untiled, reduce):
    """A tiled file's thumbnail is the untiled one's, but for the tiles' edges: as close to the picture's area average.

    At 1/16 a 64-pixel tile is a 4 x 4 thumbnail, mostly edge, and each keeps its own tile's mean (the untiled one
    keeps the whole picture's), so there the two differ most (measured 2026-12-05 on an astronaut crop: 26.0 dB apart,
    each 23.1 and 21.7 dB from the area average)."""
    small = facecodec.decode(tiled, device="cpu", reduce=reduce)
    assert small.size == reduced_size(300, 200, reduce)
    one_pass = facecodec.decode(untiled, device="cpu", reduce=reduce)
    assert psnr(np.asarray(one_pass), np.asarray(small)) > (30 if reduce < 4 else 25)
    reference = np.asarray(Image.fromarray(picture).resize(small.size, Image.Resampling.BOX))
    assert psnr(reference, np.asarray(small)) > psnr(reference, np.asarray(one_pass)) - 0.5


def test_greyscale_and_a_size_target_in_tiles(picture):
    grey = Image.fromarray(picture).convert("L")
    data = facecodec.encode(grey, device="cpu", quality=30, tile=TILE)
    decoded = facecodec.decode(data, device="cpu")
    assert unpack(data)[0].version == OVERLAP_VERSION and decoded.mode == "L" and decoded.size == (300, 200)
    assert psnr(np.asarray(grey), np.asarray(decoded)) > 30
    fitted = facecodec.encode(grey, device="cpu", size=len(data), tile=TILE)
    assert len(fitted) <= len(data) and unpack(fitted)[0].quality >= 30


def test_batches_code_a_tiled_image_as_alone(picture, tiled, tmp_path):
    Image.fromarray(picture).save(tmp_path / "big.png")
    jobs = [Job("big.png", str(tmp_path / "big.png"), "big.fcz", str(tmp_path / "big.fcz"))]
    encode = Conversion("encode", ".fcz", encode_settings(tile=TILE), device="cpu")
    assert [r.status for r in convert_chunk(encode, jobs, 4)] == ["ok"]
    assert (tmp_path / "big.fcz").read_bytes() == tiled
    back = [Job("big.fcz", str(tmp_path / "big.fcz"), "big.png", str(tmp_path / "out.png"))]
    assert [r.status for r in convert_chunk(Conversion("decode", ".png", device="cpu"), back, 4)] == ["ok"]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), np.asarray(facecodec.decode(tiled, device="cpu")))


def _with_table(data: bytes, edit) -> bytes:
    """The file with its tiled payload's words (side, overlap, lengths, ...) edited by ``edit`` and a fresh checksum."""
    header, payload = unpack(data)
    words = list(struct.unpack_from(f"<{2 + 6}I", payload))
    return pack(header, edit(words, payload[4 * len(words):]))


CORRUPT_TABLES = {
    "tile side 0": lambda w, rest: struct.pack("<8I", 0, *w[1:]) + rest,
    "tile side 32": lambda w, rest: struct.pack("<8I", 32, *w[1:]) + rest,
    "tile side 100": lambda w, rest: struct.pack("<8I", 100, *w[1:]) + rest,
    "tile side 2^31": lambda w, rest: struct.pack("<8I", 2 ** 31, *w[1:]) + rest,
    "tile side 64": lambda w, rest: struct.pack("<8I", 64, *w[1:]) + rest,
    "overlap 0": lambda w, rest: struct.pack("<8I", w[0], 0, *w[2:]) + rest,
    "overlap 8": lambda w, rest: struct.pack("<8I", w[0], 8, *w[2:]) + rest,
    "overlap over half the side": lambda w, rest: struct.pack("<8I", w[0], w[0] // 2 + 16, *w[2:]) + rest,
    "overlap 2^31": lambda w, rest: struct.pack("<8I", w[0], 2 ** 31, *w[2:]) + rest,
    "overlap 32": lambda w, rest: struct.pack("<8I", w[0], 32, *w[2:]) + rest,
    "a length too long": lambda w, rest: struct.pack("<8I", *w[:2], w[2] + 4, *w[3:]) + rest,
    "a huge length": lambda w, rest: struct.pack("<8I", *w[:2], 2 ** 32 - 4, *w[3:]) + rest,
    "lengths not in words": lambda w, rest: struct.pack("<8I", *w[:2], w[2] + 1, w[3] - 1, *w[4:]) + rest,
    "the table cut short": lambda w, rest: struct.pack("<5I", *w[:5]),
    "no tiles at all": lambda w, rest: struct.pack("<2I", *w[:2]),
    "no overlap either": lambda w, rest: struct.pack("<I", w[0]),
    "an empty payload": lambda w, rest: b"",
}


@pytest.mark.parametrize("name", CORRUPT_TABLES)
def test_corrupt_tile_tables_are_fcz_errors(tiled, name):
    data = _with_table(tiled, CORRUPT_TABLES[name])
    with pytest.raises(FczError, match="corrupt file"):
        facecodec.decode(data, device="cpu")
    with pytest.raises(FczError, match="corrupt file"):
        inspect(data)


def test_tiles_in_the_wrong_order_go_where_the_table_puts_them(tiled_without_overlap):
    """FORMAT.md (Tiled payload): the lengths and the payloads are in raster order, and each tile decodes alone. So
    the first two tiles swapped, lengths and payloads together, make a valid file that the reader cannot tell from
    a real one: it decodes, with those two tiles' pictures swapped (both are 128 x 128 where tiles do not overlap)
    and the rest untouched."""
    tiled = tiled_without_overlap
    header, payload = unpack(tiled)
    side, *lengths = struct.unpack_from("<7I", payload)
    starts = np.cumsum([4 * 7] + lengths)
    tiles = [payload[starts[k]:starts[k + 1]] for k in range(6)]
    swapped = pack(header, struct.pack("<7I", side, lengths[1], lengths[0], *lengths[2:])
                   + tiles[1] + tiles[0] + b"".join(tiles[2:]))
    original = np.asarray(facecodec.decode(tiled, device="cpu"))
    decoded = np.asarray(facecodec.decode(swapped, device="cpu"))
    assert decoded.shape == original.shape
    assert np.array_equal(decoded[:TILE, :TILE], original[:TILE, TILE:2 * TILE])
    assert np.array_equal(decoded[:TILE, TILE:2 * TILE], original[:TILE, :TILE])
    assert np.array_equal(decoded[:, 2 * TILE:], original[:, 2 * TILE:])
    assert np.array_equal(decoded[TILE:], original[TILE:])
    assert not np.array_equal(decoded, original)


def test_lengths_in_the_wrong_order_are_refused(tiled):
    """The first two lengths swapped over payloads left in place: the table still adds up, so the reader goes on,
    and the second tile's payload then starts inside the first one's range-coder words, which the entropy decoder
    finds invalid. (FORMAT.md promises no check that catches every misplaced byte; with this file it is refused.)"""
    swapped = _with_table(tiled, lambda w, rest: struct.pack("<8I", *w[:2], w[3], w[2], *w[4:]) + rest)
    with pytest.raises(FczError, match="corrupt file: entropy-coded payload does not decode"):
        facecodec.decode(swapped, device="cpu")


def test_the_writer_refuses_a_tile_side_or_overlap_readers_refuse():
    with pytest.raises(FczError):
        join_tiles(100, [b""])
    with pytest.raises(FczError):
        join_tiles(64, [b""], overlap=8)
    assert split_tiles(join_tiles(64, [b"abcd", b""]), 100, 10)[3] == [b"abcd", b""]
    assert split_tiles(join_tiles(64, [b"abcd", b""], overlap=32), 100, 10, overlapping=True)[1:] == (
        32, [(0, 0, 64, 10), (64, 0, 100, 10)], [b"abcd", b""])


def test_only_the_wavelet_family_tiles():
    gained, wavelet = load_spec("gained-q8-v1").family, load_spec("wavelet-v1").family
    assert gained.tile_boxes(5000, 5000, gained.choose_tile(None)) is None
    with pytest.raises(FczError, match="takes no tile size"):
        gained.choose_tile(TILE)
    assert wavelet.choose_tile(None) == WaveletFamily.DEFAULT_TILE == 1024
    assert len(wavelet.tile_boxes(5000, 5000, wavelet.choose_tile(None))) == 25
    assert wavelet.tile_boxes(1024, 1024, wavelet.choose_tile(None)) is None
