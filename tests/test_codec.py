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
from facecodec.bitstream.container import UNTILED_VERSION
from facecodec.metrics import bits_per_pixel, psnr
from facecodec.zoo import default_weights_id, load_spec, load_weights, manifest

# The default (weights wavelet-v2, quality 50, effort 1), measured with the shipped weights; each floor sits about
# 0.4 dB under its measurement, so that a lost decibel fails (a 2.5x coarser quantization step loses 4.8-6.5 dB:
# 34.12, 33.33, 35.64 and 38.09 dB). The astronaut crop is a busier, less face-aligned picture than the training faces.
DEFAULT_FLOOR_DB = 38.6     # astronaut crop (conftest's face, 144x160): measured 38.96 dB
DEFAULT_MAX_BPP = 2.65      # the same file: measured 2.560 bpp (7,372 bytes)
ODD_FLOOR_DB = 38.0         # odd_face (97x101): measured 38.40 dB
GREY_FLOOR_DB = 41.7        # the face as greyscale ("L"): measured 42.10 dB
LFW_FLOOR_DB = 42.7         # mean of the first 20 lfw-test faces (by name): measured 43.04 dB
LFW_TEST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lfw-test"
TEST_DATA = Path(__file__).resolve().parent / "data"


def test_round_trip_quality_and_size(face):
    data = facecodec.encode(face)
    decoded = facecodec.decode(data)
    assert decoded.size == (face.shape[1], face.shape[0]) and decoded.mode == "RGB"
    assert psnr(face, decoded) >= DEFAULT_FLOOR_DB
    header = facecodec.read_header(data)
    assert header.quality == load_spec(default_weights_id()).family.default
    raw_6bit_bytes = header.symbol_count * 6 / 8
    assert len(data) < raw_6bit_bytes  # entropy coding beats packing the 6-bit symbols as they are
    assert bits_per_pixel(len(data), *decoded.size) <= DEFAULT_MAX_BPP


# ../shared beside the checkout: CI clones the repository into a folder next to its copy of shared/, so it runs there
@pytest.mark.skipif(not LFW_TEST.is_dir(), reason=f"needs {LFW_TEST} (../shared/data/lfw-test beside the checkout)")
def test_held_out_faces():
    paths = sorted(LFW_TEST.glob("*.jpg"))[:20]
    scores = [psnr(np.asarray(Image.open(p).convert("RGB")), facecodec.decode(facecodec.encode(p))) for p in paths]
    assert np.mean(scores) >= LFW_FLOOR_DB


def test_odd_sizes_are_padded_and_cropped_back(odd_face):
    data = facecodec.encode(odd_face)
    header = facecodec.read_header(data)
    stride = load_weights(default_weights_id()).stride
    assert (header.width, header.height) == (97, 101)
    assert (header.pad_right, header.pad_bottom) == (-97 % stride, -101 % stride)
    assert facecodec.decode(data).size == (97, 101)
    assert psnr(odd_face, facecodec.decode(data)) >= ODD_FLOOR_DB


def test_bits_pick_the_weights_that_take_a_bit_depth(face):
    # how files grow and pictures improve with the bit depth: test_conformance.py, for every installed weights
    data = facecodec.encode(face, bits=6)
    assert facecodec.read_header(data).weights_id == default_weights_id("bits")
    assert facecodec.read_header(data).bits == 6 and facecodec.decode(data).size == (144, 160)


@pytest.mark.parametrize("bits", [0, 9])
def test_bits_out_of_range_are_refused(face, bits):
    with pytest.raises(FczError, match="between 1 and 8"):
        facecodec.encode(face, bits=bits)


@pytest.mark.parametrize("setting, message", [
    ({"quality": 0}, "between 1 and 100"), ({"quality": 101}, "between 1 and 100"),
    ({"quality": 9, "weights_id": "gained-q8-v1"}, "between 1 and 8"), ({"quality": 2, "bits": 6}, "not both"),
    ({"quality": 2, "weights_id": "theis-c24-v1"}, "not a quality level"),
    ({"bits": 6, "weights_id": "gained-q8-v1"}, "not a bit depth"),
])
def test_settings_that_do_not_fit_the_weights_are_refused(face, setting, message):
    with pytest.raises(FczError, match=message):
        facecodec.encode(face, **setting)


def test_decoding_is_repeatable(face):
    data = facecodec.encode(face)
    assert np.array_equal(np.asarray(facecodec.decode(data)), np.asarray(facecodec.decode(data)))


def test_version_1_files_still_decode():
    """Written by facecodec 0.1 (format version 1, Theis weights, 6 bits) from astronaut-64px.png, on an AVX2 CPU.
    Other CPUs (AVX-512) round floats differently in the last bits: what is integer is compared exactly, the
    float ranges and the pixels with tolerances that hold on either."""
    data = (TEST_DATA / "astronaut-64px-v1.fcz").read_bytes()
    assert data[4] == 1  # the version byte
    header, payload = unpack(data)
    assert (header.weights_id, header.width, header.height, header.mode, header.bits, header.quality,
            header.pad_right, header.pad_bottom, header.latent_shape) == \
        ("theis-c24-v1", 64, 64, "RGB", 6, 0, 0, 0, (24, 8, 8))
    original = np.asarray(Image.open(TEST_DATA / "astronaut-64px.png").convert("RGB"))
    decoded = np.asarray(facecodec.decode(data))
    assert decoded.shape == original.shape
    assert psnr(original, decoded) > 25  # 26.5 dB when it was written
    # The same header and payload in today's container decode by the very same computation.
    assert np.array_equal(np.asarray(facecodec.decode(pack(replace(header, version=UNTILED_VERSION), payload))),
                          decoded)

    # Today's encoder writes the same file up to float rounding: every integer field the same; the float32
    # ranges within 1e-4 of their span (AVX2 and AVX-512 differ by 2e-6 of it), far inside one 6-bit step.
    today = facecodec.encode(original, bits=6)
    today_header, today_payload = unpack(today)
    assert replace(today_header, channel_ranges=()) == replace(header, channel_ranges=(), version=UNTILED_VERSION)
    ranges, today_ranges = np.array(header.channel_ranges), np.array(today_header.channel_ranges)
    assert np.all(np.abs(today_ranges - ranges) <= 1e-4 * (ranges[:, 1:] - ranges[:, :1]))
    # So the symbols agree, but for a rare feature on a rounding boundary that goes to the neighbouring symbol
    # (none on AVX-512), and the pixels too: one symbol off by one moves a few pixels by up to 2 levels.
    table = load_spec(header.weights_id).table(header)
    symbols = decode_symbols(payload, table, header.latent_shape[1:])
    today_symbols = decode_symbols(today_payload, table, header.latent_shape[1:])
    assert np.abs(today_symbols - symbols).max() <= 1
    assert np.count_nonzero(today_symbols != symbols) <= symbols.size // 100
    today_decoded = np.asarray(facecodec.decode(today), dtype=np.int16)
    assert np.abs(today_decoded - decoded).max() <= 4


def test_greyscale_stays_greyscale(face):
    grey = Image.fromarray(face).convert("L")
    decoded = facecodec.decode(facecodec.encode(grey))
    assert decoded.mode == "L" and decoded.size == grey.size
    assert psnr(np.asarray(grey), np.asarray(decoded)) >= GREY_FLOOR_DB


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
    Image.fromarray(face).save(path, quality=2)
    assert facecodec.read_header(path.read_bytes()).quality == 2
    with Image.open(path) as image:
        assert image.format == "FCZ" and image.size == (144, 160) and image.info["quality"] == 2
        pixels = np.asarray(image)
    assert np.array_equal(pixels, np.asarray(facecodec.decode(path.read_bytes())))
    Image.fromarray(face).save(path, bits=5)
    with Image.open(path) as image:
        assert image.info["bits"] == 5 and "quality" not in image.info


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


@pytest.mark.parametrize("size, message", [((20000, 100), "outside|16384"), ((15000, 15000), "too large"),
                                           ((100000, 100000), "10,000,000,000 pixels, more than Pillow opens")])
def test_oversized_images_are_refused_before_decoding(size, message):
    with pytest.raises(FczError, match=message) as caught:
        facecodec.encode(io.BytesIO(_png_claiming_size(*size)))
    assert "DOS attack" not in str(caught.value)   # facecodec's words, not Pillow's raw ones


# --- what the API accepts -----------------------------------------------------------------------------

@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview, io.BytesIO, "path", "str"])
def test_decode_and_read_header_take_bytes_paths_and_files(face, tmp_path, wrap):
    data = facecodec.encode(face)
    path = tmp_path / "face.fcz"
    path.write_bytes(data)

    def source():
        return {"path": path, "str": str(path)}.get(wrap) or wrap(data)
    assert facecodec.read_header(source()) == facecodec.read_header(data)
    assert np.array_equal(np.asarray(facecodec.decode(source())), np.asarray(facecodec.decode(data)))


def test_encode_takes_the_bytes_of_an_image_file(face):
    buffer = io.BytesIO()
    Image.fromarray(face).save(buffer, format="PNG")
    assert facecodec.encode(buffer.getvalue()) == facecodec.encode(face)


@pytest.mark.parametrize("call, message", [
    (lambda: facecodec.decode("no-such.fcz"), "no-such.fcz: no such file"),
    (lambda: facecodec.read_header(Path("no-such.fcz")), "no-such.fcz: no such file"),
    (lambda: facecodec.encode("no-such.png"), "no-such.png: no such file"),
    (lambda: facecodec.encode(TEST_DATA), "is a directory"),
])
def test_a_missing_file_is_an_fcz_error_naming_it(call, message):
    with pytest.raises(FczError, match=message):
        call()


@pytest.mark.parametrize("call, message", [
    (lambda face: facecodec.encode(face, quality="4"), "quality must be an integer"),
    (lambda face: facecodec.encode(face, quality=4.5), "quality must be an integer"),
    (lambda face: facecodec.encode(face, bits=True), "bits must be an integer"),
    (lambda face: facecodec.encode(12), "image must be"),
    (lambda face: facecodec.decode(12), "data must be"),
    (lambda face: facecodec.decode(io.StringIO("text")), "binary mode"),
])
def test_wrong_types_raise_type_errors_naming_the_parameter(face, call, message):
    with pytest.raises(TypeError, match=message):
        call(face)


def test_pillow_keeps_the_reason_a_fcz_is_broken(face, tmp_path):
    path = tmp_path / "broken.fcz"
    data = facecodec.encode(face)
    path.write_bytes(data[:4] + b"\x03\x00\x00" + data[7:])   # a weights id of 0 bytes: the header is broken
    with pytest.raises(UnidentifiedImageError, match="invalid weights id") as caught:
        Image.open(path)
    assert isinstance(caught.value, FczError)


# --- limits -----------------------------------------------------------------------------------------------

def _claiming_size(data: bytes, width: int, height: int) -> bytes:
    """The same payload under a header that claims another image size (CRC re-sealed): a memory bomb."""
    header, payload = unpack(data)
    s = header.stride
    h, w = -(-height // s), -(-width // s)
    return pack(replace(header, width=width, height=height, pad_right=w * s - width, pad_bottom=h * s - height,
                        latent_shape=(header.latent_shape[0], h, w)), payload)


def test_a_header_claiming_a_huge_image_is_refused_before_decoding(face):
    """A small file claiming 16384 x 16384 would need tens of GB: the pixel limit refuses it at once."""
    bomb = _claiming_size(facecodec.encode(face, quality=1), 16384, 16384)
    with pytest.raises(FczError, match="more than the limit"):
        facecodec.decode(bomb)
    with pytest.raises(FczError, match="more than the limit"):
        facecodec.decode(_claiming_size(facecodec.encode(face), 400, 300), max_pixels=100_000)


def test_the_pixel_limit_applies_to_encoding_and_can_be_raised(face):
    with pytest.raises(FczError, match=r"144x160 = 23,040 pixels, more than the limit of 20,000"):
        facecodec.encode(face, max_pixels=20_000)
    data = facecodec.encode(face, max_pixels=23_040)
    assert facecodec.decode(data, max_pixels=None).size == (144, 160)
    with pytest.raises(FczError, match="more than the limit"):
        facecodec.decode(data, max_pixels=20_000)


def test_warnings_for_what_fcz_cannot_keep():
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "blue", "green")]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.warns(facecodec.FczWarning, match="first of 3 frames"):
        facecodec.encode(gif.getvalue())
    deep = io.BytesIO()
    Image.fromarray(np.full((16, 16), 40000, dtype=np.uint16)).save(deep, format="PNG")
    with pytest.warns(facecodec.FczWarning, match="reduced to 8 bits"):
        facecodec.encode(deep.getvalue())
