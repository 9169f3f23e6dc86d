"""Lossless files of JPEG inputs (facecodec.jpeg_file, the jpeg-file family): the JPEG's own coefficients, kept.

``encode(lossless=True)`` of a JPEG keeps its quantized coefficients (recompressed by Lepton) where they decode to
exactly the pixels it would otherwise code; every other input, and a JPEG it cannot keep so, is coded from its pixels
(tests/test_lossless.py). The pixel-coding weights' shared properties are in tests/test_conformance.py; these are
the jpeg-file family's.
"""
from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageCms
from skimage.data import astronaut

import facecodec
from facecodec import jpeg_file
from facecodec.bitstream import FczError, pack, unpack
from facecodec.cli import main
from facecodec.zoo import lossless_weights_id

KEEPS_JPEG = lossless_weights_id(jpeg_files=True)
PIXELS = lossless_weights_id()
# What codes the pixels where the JPEG is not kept: the pixel coder, or a JPEG rebuilt from the pixels (smaller for
# pixels decoded from a JPEG: tests/test_jpeg_rebuild.py)
PIXEL_CODERS = (PIXELS, lossless_weights_id(rebuilt_jpeg=True))


def jpeg_of(pixels: np.ndarray, **options) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", **{"quality": 80, **options})
    return out.getvalue()


def face(height: int = 101, width: int = 97, mode: str = "RGB") -> np.ndarray:
    return np.asarray(Image.fromarray(astronaut()[30:30 + height, 170:170 + width]).convert(mode))


def pixels_of(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)))


@pytest.mark.parametrize("mode, options", [
    ("RGB", {"subsampling": 2}), ("RGB", {"subsampling": 0}), ("RGB", {"subsampling": 1}),
    ("RGB", {"progressive": True}), ("L", {}), ("RGB", {"quality": 30, "optimize": True}),
])
def test_a_jpeg_comes_back_as_exactly_its_pixels_in_fewer_bytes(mode, options):
    jpeg = jpeg_of(face(mode=mode), **options)
    data = facecodec.encode(jpeg, lossless=True)
    header = facecodec.read_header(data)
    assert (header.weights_id, header.mode, header.width, header.height) == (KEEPS_JPEG, mode, 97, 101)
    decoded = facecodec.decode(data)
    assert decoded.mode == mode and np.array_equal(np.asarray(decoded), pixels_of(jpeg))
    assert len(data) < len(jpeg)


def test_restart_markers_and_trailing_bytes_are_fine():
    jpeg = jpeg_of(face(160, 144), restart_marker_blocks=2) + b"an appended preview"
    data = facecodec.encode(jpeg, lossless=True)
    assert facecodec.read_header(data).weights_id == KEEPS_JPEG
    assert np.array_equal(np.asarray(facecodec.decode(data)), pixels_of(jpeg))


def test_metadata_travels_in_the_fcz_block_and_strip_drops_it():
    exif = Image.Exif()
    exif[0x010F] = "FaceCam"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    jpeg = jpeg_of(face(), exif=exif.tobytes(), icc_profile=icc, comment=b"kept nowhere")
    data = facecodec.encode(jpeg, lossless=True)
    decoded = facecodec.decode(data)
    assert decoded.info["icc_profile"] == icc and decoded.getexif()[0x010F] == "FaceCam"
    stripped = facecodec.encode(jpeg, lossless=True, strip=True)
    assert len(stripped) < len(data) and "icc_profile" not in facecodec.decode(stripped).info
    # the metadata is not in the payload twice: the payload is the same either way
    assert unpack(data)[1] == unpack(stripped)[1]


def test_what_it_cannot_keep_is_coded_from_its_pixels_exactly():
    picture = face()
    turned = Image.fromarray(picture)
    exif = Image.Exif()
    exif[0x0112] = 6   # orientation: the pixels encoded are the turned JPEG's, not its plain decode
    buffer = io.BytesIO()
    turned.save(buffer, "JPEG", quality=80, exif=exif.tobytes())
    cmyk = io.BytesIO()
    turned.convert("CMYK").save(cmyk, "JPEG", quality=80)
    png = io.BytesIO()
    turned.save(png, "PNG")
    for source in (buffer.getvalue(), cmyk.getvalue(), png.getvalue()):
        data = facecodec.encode(source, lossless=True)
        expected = np.asarray(facecodec.image_io.open_image(source)[0])
        assert facecodec.read_header(data).weights_id in PIXEL_CODERS
        assert np.array_equal(np.asarray(facecodec.decode(data).convert("RGB")), expected)
    asked = facecodec.encode(jpeg_of(picture), lossless=True, jpeg_source=False)
    assert facecodec.read_header(asked).weights_id in PIXEL_CODERS


def test_the_jpeg_weights_named_for_a_picture_that_is_no_jpeg_say_so():
    with pytest.raises(FczError, match="no JPEG they can keep"):
        facecodec.encode(face(), weights_id=KEEPS_JPEG, lossless=True)
    with pytest.raises(FczError, match="no quality"):
        facecodec.encode(jpeg_of(face()), weights_id=KEEPS_JPEG, quality=50)
    named = facecodec.encode(jpeg_of(face()), weights_id=KEEPS_JPEG)   # naming them asks for them, lossless or not
    assert named == facecodec.encode(jpeg_of(face()), lossless=True)


@pytest.mark.parametrize("size, mode", [((24, 24), "L"), ((24, 24), "RGB"), ((32, 32), "RGB"),
                                        ((48, 48), "L"), ((64, 64), "RGB")])
def test_a_small_jpeg_gets_the_smaller_of_its_coefficients_and_its_pixels(size, mode):
    """Lepton's own header takes 300-400 bytes: up to 64 x 64 pixels the pixels are coded too, the smaller kept."""
    jpeg = jpeg_of(face(*size, mode=mode), quality=85)
    data = facecodec.encode(jpeg, lossless=True)
    from_pixels = facecodec.encode(jpeg, lossless=True, jpeg_source=False)
    kept = facecodec.encode(jpeg, lossless=True, weights_id=KEEPS_JPEG)
    assert len(data) == min(len(from_pixels), len(kept))
    assert facecodec.read_header(data).weights_id == (KEEPS_JPEG if len(kept) <= len(from_pixels) else PIXELS)
    assert np.array_equal(np.asarray(facecodec.decode(data)), pixels_of(jpeg))


def test_a_jpeg_of_a_few_pixels_is_coded_from_its_pixels():
    jpeg = jpeg_of(face(2, 3))
    assert facecodec.read_header(facecodec.encode(jpeg, lossless=True)).weights_id == PIXELS
    with pytest.raises(FczError, match="no JPEG they can keep"):   # its coefficients would outgrow the format
        facecodec.encode(jpeg, lossless=True, weights_id=KEEPS_JPEG)


@pytest.mark.parametrize("size", [(101, 97), (150, 151), (160, 144), (16, 8), (9, 5)])
def test_thumbnails_keep_the_brightness(size):
    """Within 0.5 levels of the picture's mean: libjpeg's own scaled decode where 2^reduce divides the sides (160 x
    144), an area average elsewhere (libjpeg's was 3.2 levels off at 1/8 of 101 x 97)."""
    jpeg = jpeg_of(face(*size), subsampling=2)
    data = facecodec.encode(jpeg, lossless=True, weights_id=KEEPS_JPEG)   # small ones too, whatever is smaller
    full = pixels_of(jpeg).astype(np.float64)
    for reduce in (1, 2, 3):
        thumbnail = np.asarray(facecodec.decode(data, reduce=reduce)).astype(np.float64)
        assert thumbnail.shape[:2] == tuple(-(-side // 2 ** reduce) for side in size)
        assert abs(thumbnail.mean() - full.mean()) < 0.5, reduce
    with pytest.raises(FczError):
        facecodec.decode(data, reduce=4)


def damaged(data: bytes, payload: bytes) -> bytes:
    return pack(unpack(data)[0], payload)


def test_damaged_payloads_are_one_line_errors():
    data = facecodec.encode(jpeg_of(face()), lossless=True)
    header, payload = unpack(data)
    pad = payload[-1]
    stream = payload[:-pad]
    fixed = jpeg_file.LEPTON_FIXED
    cases = {
        "padding": stream + bytes([pad + 1]) * pad if pad < 4 else stream[:-1] + b"\x01",
        "not a Lepton": b"\x00" * 4 + payload[4:],
        "lengths": stream[:20] + struct.pack("<I", 1 << 30) + payload[24:],
        "does not inflate": stream[:fixed.size] + b"\x00" * 8 + payload[fixed.size + 8:],
        "does not decode": stream[:-40] + bytes(40) + bytes([pad]) * pad,
    }
    for words, payload_ in cases.items():
        with pytest.raises(FczError) as error:
            facecodec.decode(damaged(data, payload_))
        assert "\n" not in str(error.value) and str(error.value).startswith("corrupt file"), words
    wrong_size = replace(header, width=header.width + 8, latent_shape=(3, header.height, header.width + 8))
    with pytest.raises(FczError, match="corrupt file"):
        facecodec.decode(pack(wrong_size, payload))
    with pytest.raises(FczError, match="format 4"):
        facecodec.decode(pack(replace(header, version=4), payload))


def test_a_damaged_lepton_header_is_refused_before_lepton_allocates_what_it_says():
    stream = jpeg_file.compress(jpeg_file.image_data(jpeg_of(face())), 97, 101)
    stream = stream[:-stream[-1]]
    fixed = jpeg_file.LEPTON_FIXED
    (*_, inflated_length, _, deflated_length) = fixed.unpack_from(stream)
    inflated = zlib.decompress(stream[fixed.size:fixed.size + deflated_length])
    assert inflated[:3] == b"HDR" and len(inflated) == inflated_length
    # a header that says its JPEG header is 4 GB long: what a fuzzed file made Lepton allocate
    huge = b"HDR" + struct.pack("<I", 0xFFFFFFF0) + inflated[7:]
    deflated = zlib.compress(huge)
    forged = (stream[:fixed.size - 8] + struct.pack("<II", fixed.unpack_from(stream)[4], len(deflated)) + deflated
              + stream[fixed.size + deflated_length:])
    with pytest.raises(FczError, match="runs past its end"):
        jpeg_file.check_lepton_stream(forged, jpeg_file.max_jpeg_bytes(97, 101))
    jpeg_file.check_lepton_stream(stream, jpeg_file.max_jpeg_bytes(97, 101))   # the real one passes


def test_the_cli_keeps_a_jpeg_losslessly_and_says_so(runner, tmp_path):
    source = tmp_path / "face.jpg"
    source.write_bytes(jpeg_of(face()))
    result = runner.invoke(main, ["encode", "--lossless", str(source)])
    assert result.exit_code == 0, result.output
    info = runner.invoke(main, ["info", str(tmp_path / "face.fcz")])
    assert info.exit_code == 0 and "JPEG's own coefficients" in info.output, info.output
    result = runner.invoke(main, ["decode", str(tmp_path / "face.fcz"), "-o", str(tmp_path / "back.png")])
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "back.png")), pixels_of(source.read_bytes()))
    models = runner.invoke(main, ["models"])
    assert KEEPS_JPEG in models.output


def test_a_folder_of_jpegs_and_pngs_is_coded_as_one_at_a_time(runner, tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    for k in range(3):
        (folder / f"{k}.jpg").write_bytes(jpeg_of(face(48 + k, 40)))
    Image.fromarray(face(48, 40)).save(folder / "3.png")
    result = runner.invoke(main, ["encode", "--lossless", str(folder), "-o", str(tmp_path / "out"), "--batch-size",
                                  "4"])
    assert result.exit_code == 0, result.output
    for source in sorted(folder.iterdir()):
        data = (tmp_path / "out" / f"{source.stem}.fcz").read_bytes()
        assert data == facecodec.encode(source, lossless=True)
        assert facecodec.read_header(data).weights_id == (KEEPS_JPEG if source.suffix == ".jpg" else PIXELS)


def test_decoding_a_kept_jpeg_imports_no_torch(tmp_path):
    path = tmp_path / "face.fcz"
    path.write_bytes(facecodec.encode(jpeg_of(face()), lossless=True))
    code = (f"import sys, facecodec; facecodec.decode(open({str(path)!r}, 'rb').read()).load(); "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pillow_saves_a_jpeg_it_opened_as_its_coefficients(tmp_path):
    """Pillow closes a file it opened by path once the pixels are loaded: the encoder reads that path again, and
    checks it against the pixels."""
    path = tmp_path / "face.jpg"
    path.write_bytes(jpeg_of(face()))
    with Image.open(path) as image:
        image.load()
        image.save(tmp_path / "face.fcz", lossless=True)
    assert facecodec.read_header(tmp_path / "face.fcz").weights_id == KEEPS_JPEG
    with Image.open(tmp_path / "face.fcz") as back:
        assert np.array_equal(np.asarray(back), pixels_of(path.read_bytes()))
    with Image.open(path) as image:
        image.load()
        path.write_bytes(jpeg_of(face()[::-1].copy()))   # changed since: its pixels are no longer the image's
        assert facecodec.read_header(facecodec.encode(image, lossless=True)).weights_id in PIXEL_CODERS
