"""fcz compare: fcz against JPEG, JPEG 2000, WebP and AVIF at matched file size (facecodec.compare, the CLI)."""
from __future__ import annotations


import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from skimage.data import astronaut
from skimage.metrics import structural_similarity

import facecodec
from facecodec import classical
from facecodec.bitstream import FczError
from facecodec.cli import main
from facecodec.compare import COMPARED, MAX_PANEL, Result, compare, match_rate, side_by_side, ssim, table
from facecodec.metrics import psnr
from facecodec.ratecontrol import largest_fitting

from benchmarks import operating_points

SIZE_TOLERANCE = 0.10  # a matched file lies at most 10% below fcz's (usually within 3%; see facecodec.compare)
MAGIC = {".fcz": None, ".jpg": b"\xff\xd8\xff", ".j2k": b"\xff\x4f\xff\x51", ".webp": b"RIFF", ".avif": None}


@pytest.fixture(scope="module")
def small_face() -> np.ndarray:
    return astronaut()[30:126, 170:266].copy()  # 96x96


@pytest.fixture(scope="module")
def results(small_face) -> list[Result]:
    return compare(small_face, device="cpu")


# --- matching sizes -----------------------------------------------------------------------------------

def test_fcz_first_then_every_codec_at_most_fczs_size_or_flagged(results):
    fcz = results[0]
    default = facecodec.zoo.load_spec(facecodec.zoo.default_weights_id()).family.default
    assert (fcz.codec, fcz.setting) == ("fcz", f"quality={default}")
    assert [r.codec for r in results[1:]] == COMPARED
    for r in results[1:]:
        assert not r.skipped, r.note  # this Pillow has every codec
        assert r.size <= fcz.size or r.over_target
        assert not r.over_target and r.note is None  # a 96x96 face: every codec can go as small as fcz
        assert r.size >= (1 - SIZE_TOLERANCE) * fcz.size, (r.label, r.size, fcz.size)


@pytest.mark.parametrize("sizes", [[100, 120, 150, 150, 180, 260, 300, 400],  # rising, with a tie
                                   [100, 120, 150, 140, 180, 260, 255, 300, 400]])  # and with dips
def test_quality_bisection_finds_the_largest_file_not_above_the_target(sizes):
    encode = lambda q: bytes(sizes[q])  # noqa: E731
    rising = sizes == sorted(sizes)
    for target in range(100, 450, 7):
        q, data, over = largest_fitting(range(len(sizes)), encode, target)
        assert not over and len(data) == sizes[q] <= target
        if rising:
            assert len(data) == max(s for s in sizes if s <= target)
    q, data, over = largest_fitting(range(len(sizes)), encode, 99)
    assert (q, len(data), over) == (0, 100, True)  # even the lowest quality is bigger: kept, flagged


def test_rate_search_refines_an_undershooting_or_overshooting_first_rate():
    # A fake OpenJPEG: size falls with the rate in steps of 10 bytes, from 24,000 bytes at rate 1.
    encode = lambda rate: bytes(int(24_000 / rate) // 10 * 10)  # noqa: E731
    for first in (8.0, 12.0, 20.0):  # the right rate is 12: start below, at and above it
        rate, data, over = match_rate(encode, 2_000, first)
        assert not over and 0.99 * 2_000 <= len(data) <= 2_000
    rate, data, over = match_rate(lambda rate: bytes(500), 100, 10.0)  # a floor above the target
    assert over and len(data) == 500


# --- measures -----------------------------------------------------------------------------------------

def test_psnr_ssim_and_bpp_recompute_from_the_decoded_files(results, small_face):
    h, w = small_face.shape[:2]
    for r in results:
        decoded = facecodec.decode(r.data, device="cpu") if r.codec == "fcz" else classical.decode(r.data)
        pixels = np.asarray(decoded.convert("RGB"))
        assert np.array_equal(pixels, np.asarray(r.decoded.convert("RGB")))
        assert r.psnr_db == pytest.approx(psnr(small_face, pixels), abs=1e-9)
        assert r.ssim == pytest.approx(structural_similarity(small_face, pixels, channel_axis=2, data_range=255))
        assert r.bpp == 8 * len(r.data) / (w * h)
        if MAGIC[r.suffix]:
            assert r.data.startswith(MAGIC[r.suffix])


def test_ssim_on_tiny_images_uses_a_smaller_window_or_none():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (2, 5, 6, 3), dtype=np.uint8)
    assert ssim(a, b) == pytest.approx(structural_similarity(a, b, channel_axis=2, data_range=255, win_size=5))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a[:2], b[:2]) is None


def test_a_tiny_image_flags_codecs_that_cannot_get_as_small_as_fcz():
    found = compare(astronaut()[:5, :5].copy(), device="cpu", codecs=["jpeg-420"])
    jpeg = found[1]
    assert jpeg.over_target and jpeg.size > found[0].size and jpeg.setting == "quality=1"
    assert "cannot go as small as fcz's" in jpeg.note and "* JPEG 4:2:0 cannot" in table(found)


def test_greyscale_input_compares_as_greyscale(small_face):
    grey = Image.fromarray(small_face).convert("L")
    fcz, jpeg = compare(grey, device="cpu", codecs=["jpeg-420"])
    assert fcz.decoded.mode == "L" and jpeg.decoded.mode == "RGB"
    assert fcz.psnr_db == pytest.approx(psnr(np.asarray(grey), np.asarray(fcz.decoded)))


# --- missing or failing codecs ------------------------------------------------------------------------

def test_a_codec_pillow_lacks_or_that_fails_is_skipped_with_a_note(monkeypatch, small_face):
    monkeypatch.setattr(classical.Codec, "available", lambda self: self.name != "avif-444")
    original_encode = classical.Codec.encode

    def encode(self, image, value):
        if self.name == "webp":
            raise OSError("encoder error -2")
        return original_encode(self, image, value)

    monkeypatch.setattr(classical.Codec, "encode", encode)
    found = {r.codec: r for r in compare(small_face, device="cpu", codecs=["webp", "avif-444"])}
    assert found["avif-444"].skipped and "built without AVIF" in found["avif-444"].note
    assert found["webp"].skipped and "encoder failed" in found["webp"].note and "encoder error -2" in found["webp"].note
    text = table(list(found.values()))
    assert "AVIF 4:4:4  skipped" in text and "note: skipped: this Pillow was built without" in text
    sheet = side_by_side(small_face, list(found.values()))  # skipped codecs are left out, no crash
    assert sheet.mode == "RGB"


# --- the same encoder settings as the benchmarks ------------------------------------------------------

def test_benchmark_and_compare_encode_with_the_same_settings(results, small_face):
    assert operating_points.CODEC_LABELS == {name: c.label for name, c in classical.CODECS.items()}
    assert operating_points.jpeg(50, 2).options == {"format": "JPEG", **classical.jpeg_options(50, 2)}
    assert operating_points.jpeg2000(0.5).options == {"format": "JPEG2000", **classical.jpeg2000_options(48.0)}
    assert operating_points.webp(70).options == {"format": "WEBP", **classical.webp_options(70)}
    assert operating_points.avif(60).options == {"format": "AVIF", **classical.avif_options(60)}
    for r in results[1:]:  # the benchmark's point at compare's setting writes compare's very file
        point = operating_points.classical_point(classical.CODECS[r.codec], r.value)
        assert (point.codec, point.setting) == (r.codec, r.setting)
        assert point.encode(small_face) == r.data


# --- the sheet ------------------------------------------------------------------------------------------

def test_side_by_side_sheet_has_every_codec_and_enlarged_crops(results, small_face):
    sheet = side_by_side(small_face, results)
    assert sheet.mode == "RGB"
    # six columns of at least the 2x panel (96 -> 192 px), a row of images and one of crops
    assert sheet.width >= 6 * 192 and sheet.height >= 2 * 192
    assert sheet.width <= 2000 and sheet.height <= 900
    with pytest.raises(FczError, match="crop box"):
        side_by_side(small_face, results, crop=(90, 90, 100, 100))


def test_side_by_side_caps_its_size_for_large_images():
    big = np.tile(astronaut(), (3, 4, 1))[:1400, :2000]  # 2000x1400, without running any codec on it
    image = Image.fromarray(big)
    fake = [Result(name, name, "quality=1", 1, ".x", b"x" * 1000, image, 0.1, 30.0, 0.9) for name in
            ["fcz", *COMPARED]]
    sheet = side_by_side(image, fake)
    assert sheet.mode == "RGB" and sheet.width <= 6 * (MAX_PANEL + 40) and sheet.height <= 900


# --- command line ---------------------------------------------------------------------------------------

@pytest.fixture()
def face_png(tmp_path) -> str:
    path = tmp_path / "face.png"
    Image.fromarray(astronaut()[40:104, 180:244]).save(path)  # 64x64
    return str(path)


def test_cli_prints_the_table_and_writes_every_file(face_png, tmp_path):
    out = tmp_path / "new" / "dir"
    result = CliRunner().invoke(main, ["compare", face_png, "-o", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["codec", "setting", "bytes", "bpp", "PSNR", "dB", "SSIM"]
    assert [line.split()[0] for line in lines[2:7]] == ["fcz", "JPEG", "JPEG", "WebP", "AVIF"]
    names = ["compare.png", "face.fcz", "face.jpg", "face.j2k", "face.webp", "face.avif"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    sizes = [int(line.split()[-4].replace(",", "").rstrip("*")) for line in lines[2:7]]
    assert sizes == [(out / name).stat().st_size for name in names[1:]]
    assert facecodec.read_header((out / "face.fcz").read_bytes()).width == 64
    with Image.open(out / "compare.png") as sheet:
        assert sheet.format == "PNG" and sheet.mode == "RGB"
    for name in names[2:]:
        Image.open(out / name).load()  # every file opens as what its name says


def test_cli_refuses_to_overwrite_without_force(face_png, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "face.webp").write_bytes(b"keep")
    result = CliRunner().invoke(main, ["compare", face_png, "-o", str(out), "--device", "cpu"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [f"error: {out / 'face.webp'} exists (use --force to overwrite)"]
    assert [p.name for p in out.iterdir()] == ["face.webp"] and (out / "face.webp").read_bytes() == b"keep"
    result = CliRunner().invoke(main, ["compare", face_png, "-o", str(out), "--device", "cpu", "--force"])
    assert result.exit_code == 0, result.output
    assert (out / "face.webp").read_bytes().startswith(b"RIFF")


@pytest.mark.parametrize("make, arguments, code, words", [
    (lambda p: p.write_bytes(b"not an image"), [], 1, "not an image"),
    (lambda p: None, [], 1, "no such file"),
    (lambda p: Image.new("RGB", (8, 8)).save(p, format="PNG"), ["-q", "101"], 2, "quality must be between"),
    (lambda p: Image.new("RGB", (8, 8)).save(p, format="PNG"), ["-q", "2", "--bits", "3"], 2, "not both"),
])
def test_cli_errors_are_one_line(tmp_path, make, arguments, code, words):
    path = tmp_path / "input.png"
    make(path)
    result = CliRunner().invoke(main, ["compare", str(path), *arguments, "--device", "cpu"])
    assert result.exit_code == code
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: ") and words in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
