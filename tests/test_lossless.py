"""Lossless coding (``fcz encode --lossless``, ``encode(lossless=True)``): every pixel back, exactly.

The weights-independent properties (sizes, modes, tiles, damaged files) come from tests/test_conformance.py, which
runs over every installed weights, the lossless ones included; here what is lossless's own.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from skimage.data import astronaut

import facecodec
from facecodec.bitstream import FczError
from facecodec.cli import main
from facecodec.models import reversible
from facecodec.zoo import lossless_weights_id


def exact(pixels: np.ndarray, **options) -> bytes:
    data = facecodec.encode(pixels, lossless=True, **options)
    decoded = np.asarray(facecodec.decode(data))
    assert decoded.shape == pixels.shape and np.array_equal(decoded, pixels)
    return data


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (9, 2), (33, 17), (101, 97), (160, 144)])
def test_rgb_faces_of_any_size_come_back_exactly(size):
    exact(astronaut()[20:20 + size[0], 150:150 + size[1]].copy())


def test_greyscale_comes_back_exactly_as_greyscale():
    grey = np.asarray(Image.fromarray(astronaut()[20:120, 150:240]).convert("L"))
    data = exact(grey)
    assert facecodec.read_header(data).mode == "L"


def test_noise_and_flat_extremes_come_back_exactly():
    rng = np.random.default_rng(0)
    exact(rng.integers(0, 256, size=(40, 56, 3), dtype=np.uint8))           # every value escapes
    for value in (0, 255):
        exact(np.full((24, 40, 3), value, dtype=np.uint8))
    stripes = np.zeros((32, 32, 3), dtype=np.uint8)
    stripes[:, ::2] = 255                                                    # the largest 5/3 details
    exact(stripes)


def test_a_tiled_lossless_file_is_exact_and_so_is_the_reversible_transform():
    picture = astronaut()[30:130, 150:250].copy()
    data = exact(picture, tile=64)
    assert data[4:6] == b"\x07\x02"
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(3, 37, 23))
    assert np.array_equal(reversible.synthesis(reversible.analysis(x)), x)


def test_lossless_keeps_metadata_and_says_what_it_is(runner, tmp_path):
    image = Image.fromarray(astronaut()[20:120, 150:250])
    exif = Image.Exif()
    exif[0x010F] = "FaceCam"
    image.info["exif"] = exif.tobytes()
    path = tmp_path / "face.png"
    image.save(path, exif=exif.tobytes())
    result = runner.invoke(main, ["encode", str(path), "--lossless"])
    assert result.exit_code == 0 and "lossless" in result.output, result.output
    result = runner.invoke(main, ["info", str(tmp_path / "face.fcz")])
    assert f"weights {lossless_weights_id()}, lossless" in result.output and "EXIF" in result.output
    assert runner.invoke(main, ["decode", str(tmp_path / "face.fcz"), "-o", str(tmp_path / "back.png")]).exit_code == 0
    back = Image.open(tmp_path / "back.png")
    assert np.array_equal(np.asarray(back), np.asarray(image)) and back.info["exif"] == image.info["exif"]


@pytest.mark.parametrize("options, message", [
    (["-q", "50"], "lossless keeps every pixel: it takes no quality level"),
    (["--bits", "6"], "lossless keeps every pixel: it takes no bit depth"),
    (["--model", "wavelet-v2"], "weights 'wavelet-v2' are lossy"),
    (["--size", "4000"], "takes no size or bpp target"),
    (["--effort", "1"], "effort must be 0"),
])
def test_lossless_refuses_what_it_cannot_honour(runner, face_png, options, message):
    result = runner.invoke(main, ["encode", str(face_png), "--lossless", *options])
    assert result.exit_code == 2 and message in result.output, result.output


def test_the_lossless_weights_named_directly_take_no_quality():
    with pytest.raises(FczError, match="take no quality level"):
        facecodec.encode(astronaut()[:32, :32], weights_id=lossless_weights_id(), quality=50)
    data = facecodec.encode(astronaut()[:32, :32], weights_id=lossless_weights_id())
    assert np.array_equal(np.asarray(facecodec.decode(data)), astronaut()[:32, :32])


def test_pillow_saves_lossless_as_its_webp_plugin_does(tmp_path):
    face = astronaut()[20:120, 150:250]
    Image.fromarray(face).save(tmp_path / "face.fcz", lossless=True)
    with Image.open(tmp_path / "face.fcz") as image:
        assert np.array_equal(np.asarray(image), face)


def test_a_thumbnail_of_a_lossless_file_is_the_5_3_low_band():
    face = astronaut()[20:180, 150:294].copy()
    data = facecodec.encode(face, lossless=True)
    coefficients = reversible.analysis(face.transpose(2, 0, 1))
    for reduce in (1, 2, 4):
        small = np.asarray(facecodec.decode(data, reduce=reduce))
        expected = np.clip(reversible.synthesis(coefficients, reduce=reduce), 0, 255).transpose(1, 2, 0)
        assert small.shape == (-(-160 // 2 ** reduce), -(-144 // 2 ** reduce), 3)
        assert np.array_equal(small, expected), reduce


def test_lossless_files_are_smaller_than_png_on_a_face():
    """The astronaut's face, 160 x 144 (measured 2026-12-05: fcz 41,589 bytes, PNG 45,119; WebP lossless 36,284 and
    JPEG 2000 reversible 37,293 are smaller on this picture, whose texture the UTKFace-counted tables know less
    well; on LFW faces fcz is the smaller: benchmarks/results/lossless.md)."""
    face = astronaut()[20:180, 150:294].copy()
    buffer = io.BytesIO()
    Image.fromarray(face).save(buffer, "PNG", optimize=True)
    assert len(exact(face)) < len(buffer.getvalue())
