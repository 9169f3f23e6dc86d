"""The Python API through the shipped weights: quality, sizes, modes, and refusing what it cannot decode."""
from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

import facecodec
from facecodec.bitstream import FczError, decode_symbols, pack, unpack
from facecodec.metrics import bits_per_pixel, psnr
from facecodec.zoo import default_weights_id, load_weights, manifest

# The shipped weights at 6 bits measured 28.3 dB on the astronaut crop below (a busier, less
# face-aligned picture than the training faces) and 33.4 dB mean on lfw-test; floors sit below both.
PSNR_FLOOR_DB = 27.0
LFW_TEST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lfw-test"


def test_round_trip_quality_and_size(face):
    data = facecodec.encode(face)
    decoded = facecodec.decode(data)
    assert decoded.size == (face.shape[1], face.shape[0]) and decoded.mode == "RGB"
    assert psnr(face, decoded) >= PSNR_FLOOR_DB
    header = facecodec.read_header(data)
    raw_6bit_bytes = header.symbol_count * 6 / 8
    assert len(data) < raw_6bit_bytes  # entropy coding beats packing the 6-bit symbols as they are
    assert bits_per_pixel(len(data), *decoded.size) < 24 / 4


@pytest.mark.skipif(not LFW_TEST.is_dir(), reason="needs ../shared/data/lfw-test")
def test_held_out_faces_reach_30_db():
    paths = sorted(LFW_TEST.glob("*.jpg"))[:20]
    scores = [psnr(np.asarray(Image.open(p).convert("RGB")), facecodec.decode(facecodec.encode(p))) for p in paths]
    assert np.mean(scores) >= 30.0


def test_odd_sizes_are_padded_and_cropped_back(odd_face):
    data = facecodec.encode(odd_face)
    header = facecodec.read_header(data)
    assert (header.width, header.height) == (97, 101)
    assert (header.pad_right, header.pad_bottom) == (7, 3)
    assert facecodec.decode(data).size == (97, 101)
    assert psnr(odd_face, facecodec.decode(data)) >= PSNR_FLOOR_DB - 1


def test_more_bits_give_larger_files_and_better_quality(face):
    results = []
    for bits in (3, 6, 8):
        data = facecodec.encode(face, bits=bits)
        results.append((len(data), psnr(face, facecodec.decode(data))))
    sizes, quality = zip(*results)
    assert sizes[0] < sizes[1] < sizes[2]
    assert quality[0] < quality[1]


@pytest.mark.parametrize("bits", [0, 9])
def test_bits_out_of_range_are_refused(face, bits):
    with pytest.raises(FczError, match="between 1 and 8"):
        facecodec.encode(face, bits=bits)


def test_decoding_is_symbol_exact_and_repeatable(face):
    data = facecodec.encode(face)
    header, payload = unpack(data)
    tables = load_weights(header.weights_id).entropy_tables[header.bits]
    first = decode_symbols(payload, tables, header.latent_shape[1:])
    assert np.array_equal(first, decode_symbols(payload, tables, header.latent_shape[1:]))
    assert np.array_equal(np.asarray(facecodec.decode(data)), np.asarray(facecodec.decode(data)))


def test_greyscale_stays_greyscale(face):
    grey = Image.fromarray(face).convert("L")
    decoded = facecodec.decode(facecodec.encode(grey))
    assert decoded.mode == "L" and decoded.size == grey.size
    assert psnr(np.asarray(grey), np.asarray(decoded)) >= PSNR_FLOOR_DB - 2


def test_palette_image_is_converted(face):
    palette = Image.fromarray(face).convert("P", palette=Image.Palette.ADAPTIVE)
    assert facecodec.decode(facecodec.encode(palette)).mode == "RGB"


def test_alpha_is_dropped_with_a_warning(face):
    rgba = Image.fromarray(face).convert("RGBA")
    with pytest.warns(facecodec.FczWarning, match="alpha"):
        data = facecodec.encode(rgba)
    assert facecodec.decode(data).mode == "RGB"


def test_exif_orientation_is_applied(face):
    image = Image.fromarray(face)  # 144 wide, 160 tall
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": a viewer shows it 160 wide, 144 tall
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif, quality=95)
    buffer.seek(0)
    assert facecodec.decode(facecodec.encode(buffer)).size == (160, 144)


def test_files_and_paths_are_accepted(face, tmp_path):
    path = tmp_path / "face.png"
    Image.fromarray(face).save(path)
    assert facecodec.encode(path) == facecodec.encode(str(path)) == facecodec.encode(face)


def test_not_an_image_is_refused(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("hello")
    with pytest.raises(FczError, match="not an image"):
        facecodec.encode(path)


def test_truncated_image_is_refused(face, tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(face).save(buffer, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(FczError):
        facecodec.encode(path)


def test_wrong_array_type_is_refused():
    with pytest.raises(FczError, match="uint8"):
        facecodec.encode(np.zeros((16, 16, 3), dtype=np.float32))


def test_unknown_weights_id_names_the_missing_weights(face):
    header, payload = unpack(facecodec.encode(face))
    forged = pack(replace(header, weights_id="theis-c24-v999"), payload)
    with pytest.raises(FczError, match="weights 'theis-c24-v999' are not installed"):
        facecodec.decode(forged)


def test_latent_shape_must_match_the_weights(face):
    header, payload = unpack(facecodec.encode(face))
    c, h, w = header.latent_shape
    forged = pack(replace(header, latent_shape=(c - 1, h, w), channel_ranges=header.channel_ranges[1:]), payload)
    with pytest.raises(FczError, match="not what weights"):
        facecodec.decode(forged)


def test_manifest_lists_the_default_and_its_checksum_matches():
    entry = next(e for e in manifest()["weights"] if e["id"] == default_weights_id())
    assert len(entry["sha256"]) == 64
    assert load_weights(default_weights_id()).channels == entry["channels"]


def test_unknown_device_is_refused(face):
    with pytest.raises(FczError, match="unknown device"):
        facecodec.encode(face, device="tpu")


def test_pillow_opens_and_saves_fcz(face, tmp_path):
    path = tmp_path / "face.fcz"
    Image.fromarray(face).save(path, bits=5)
    assert facecodec.read_header(path.read_bytes()).bits == 5
    with Image.open(path) as image:
        assert image.format == "FCZ" and image.size == (144, 160) and image.info["bits"] == 5
        pixels = np.asarray(image)
    assert np.array_equal(pixels, np.asarray(facecodec.decode(path.read_bytes())))


def test_pillow_reports_a_broken_fcz_as_unreadable(face, tmp_path):
    path = tmp_path / "broken.fcz"
    path.write_bytes(facecodec.encode(face)[:-3])
    with pytest.raises(UnidentifiedImageError):
        Image.open(path)


def _png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims another size: what a decompression bomb looks like before decoding."""
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = bytearray(data[12:29])  # chunk type + 13 data bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


@pytest.mark.parametrize("size, message", [((20000, 100), "outside|16384"), ((15000, 15000), "too large")])
def test_oversized_images_are_refused_before_decoding(size, message):
    with pytest.raises(FczError, match=message):
        facecodec.encode(io.BytesIO(_png_claiming_size(*size)))
