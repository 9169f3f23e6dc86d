"""``fcz`` as a user runs it: encode, decode, info, demo, and one clear line for every bad input."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

import facecodec
from facecodec import zoo
from facecodec.bitstream import pack, unpack
from facecodec.bitstream.container import REGISTRY
from facecodec.cli import main
from facecodec.metrics import psnr


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], result.output


def test_encode_decode_info(runner, face_png, face_fcz):
    assert face_fcz.exists()
    result = runner.invoke(main, ["decode", str(face_fcz), "-o", str(face_png.with_name("out.png"))])
    assert result.exit_code == 0, result.output
    assert Image.open(face_png.with_name("out.png")).size == Image.open(face_png).size
    result = runner.invoke(main, ["info", str(face_fcz)])
    assert result.exit_code == 0
    default_quality = zoo.load_spec(zoo.default_weights_id()).family.default
    assert "144x160 RGB" in result.output and f"quality {default_quality}," in result.output and "bpp" in result.output


def test_bits_select_the_seeds_fixed_depth_path(runner, face_png):
    result = runner.invoke(main, ["encode", str(face_png), "--bits", "3", "-o", str(face_png.with_name("b3.fcz"))])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["info", str(face_png.with_name("b3.fcz"))])
    assert f"weights {zoo.default_weights_id('bits')}, 3 bits" in result.output


@pytest.mark.parametrize("options, message", [
    (["--quality", "101"], "quality must be between 1 and 100"),
    (["--quality", "9", "--model", "wavelet-v0"], "quality must be between 1 and 8"),
    (["--effort", "2"], "effort must be between 0 and 1"),
    (["--effort", "1", "--model", "gained-q8-v1"], "no encoder search"),
    (["--size", "3000", "--quality", "5"], "not several"),
    (["--quality", "0"], "error: quality must be between 1 and 100, got 0"),
    (["--quality", "2", "--bits", "6"], "not both"),
    (["--quality", "2", "--model", "theis-c24-v1"], "not a quality level"),
    (["--bits", "6", "--model", "gained-q8-v1"], "not a bit depth"),
    (["--model", "nonesuch"], "weights 'nonesuch' are not installed (installed: "),
])
def test_bad_options_are_usage_errors(runner, face_png, options, message):
    result = runner.invoke(main, ["encode", str(face_png), *options])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not face_png.with_suffix(".fcz").exists()


def test_default_decode_output_is_png_beside_input(runner, face_fcz, face_png):
    face_png.unlink()
    assert runner.invoke(main, ["decode", str(face_fcz)]).exit_code == 0
    assert face_png.exists()


def test_refuses_to_overwrite_without_force(runner, face_png, face_fcz):
    before = face_fcz.read_bytes()
    result = runner.invoke(main, ["encode", str(face_png), "--bits", "3"])
    assert_one_line_error(result, "exists", "--force")
    assert face_fcz.read_bytes() == before
    assert runner.invoke(main, ["encode", str(face_png), "--bits", "3", "--force"]).exit_code == 0
    assert face_fcz.read_bytes() != before


def test_never_overwrites_an_input(runner, face_fcz):
    result = runner.invoke(main, ["encode", str(face_fcz), "-o", str(face_fcz), "--force"])
    assert_one_line_error(result, "input")


def test_several_inputs_finish_despite_a_bad_one(runner, face_png, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    second = tmp_path / "second.png"
    second.write_bytes(face_png.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    result = runner.invoke(main, ["encode", str(face_png), str(bad), str(second), "-o", str(out)])
    assert result.exit_code == 1
    assert sorted(p.name for p in out.iterdir()) == ["face.fcz", "second.fcz"]
    assert "2 of 3 files done" in result.output and "bad.png" in result.output


@pytest.mark.parametrize("bits", ["0", "9"])
def test_bits_out_of_range(runner, face_png, bits):
    result = runner.invoke(main, ["encode", str(face_png), "--bits", bits])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"error: bits must be between 1 and 8, got {bits}" in result.output
    assert not face_png.with_suffix(".fcz").exists()


def test_not_an_image(runner, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    assert_one_line_error(runner.invoke(main, ["encode", str(path)]), "not an image")
    assert not path.with_suffix(".fcz").exists()


def _reseal(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def _long_huge(data: bytes) -> bytes:
    """The file with the long header (format 6 and before) claiming 100000 x 100000 pixels."""
    d = pack(*unpack(data), long_header=True)
    return _reseal(d[:7 + d[6]] + struct.pack("<II", 100_000, 100_000) + d[7 + d[6] + 8:-4])


def _long_unknown_weights(data: bytes) -> bytes:
    """The file with the long header naming weights that are not installed."""
    d = pack(*unpack(data), long_header=True)
    return _reseal(d[:6] + bytes([12]) + b"theis-c24-v9" + d[7 + d[6]:-4])


@pytest.mark.parametrize("damage, message", [
    (lambda d: b"", "empty file"),
    (lambda d: d[: len(d) // 2], "checksum"),
    (lambda d: b"PK\x03\x04" + d[4:], "wrong magic"),
    (lambda d: d[:4] + b"\x09" + d[5:], "newer than this facecodec"),
    (lambda d: d[:40] + bytes([d[40] ^ 0x10]) + d[41:], "checksum"),
    (lambda d: _reseal(d[:7] + b"\xa0\x8d\x06" * 2 + d[11:-4]), "100000x100000"),   # varints of 100000 for the face's 2-byte sides
    (lambda d: _reseal(d[:6] + bytes([len(REGISTRY) + 1]) + d[7:-4]), "upgrade facecodec"),
    (_long_huge, "100000x100000"),
    (_long_unknown_weights, "not installed"),
])
def test_bad_fcz_files(runner, face_fcz, damage, message):
    face_fcz.write_bytes(damage(face_fcz.read_bytes()))
    out = face_fcz.with_name("decoded.png")
    result = runner.invoke(main, ["decode", str(face_fcz), "-o", str(out)])
    assert_one_line_error(result, message)
    assert sorted(p.name for p in face_fcz.parent.iterdir()) == ["face.fcz", "face.png"]  # no partial output


def test_missing_output_directory(runner, face_png, tmp_path):
    result = runner.invoke(main, ["encode", str(face_png), "-o", str(tmp_path / "nowhere" / "x.fcz")])
    assert_one_line_error(result, "does not exist")


def test_unwritable_output_directory(runner, face_png, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.access(locked, os.W_OK):  # root ignores permission bits: let the check see what a user would
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: mode != os.W_OK and real_access(path, mode, **kw))
    assert_one_line_error(runner.invoke(main, ["encode", str(face_png), "-o", str(locked / "x.fcz")]), "not writable")
    assert list(locked.iterdir()) == []


def test_no_temporary_files_left_behind(runner, face_png, face_fcz):
    assert runner.invoke(main, ["decode", str(face_fcz), "-o", str(face_png.parent / "x.png")]).exit_code == 0
    assert not [p for p in face_png.parent.iterdir() if p.name.endswith(".part")]


def test_demo(runner, tmp_path):
    result = runner.invoke(main, ["demo", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "PSNR" in result.output and "ratio" in result.output
    assert (tmp_path / "astronaut.fcz").exists() and (tmp_path / "astronaut-decoded.png").exists()


def test_header_work_and_help_load_no_torch(face_fcz):
    """`fcz info`, `--help`, `--version` and the bitstream package answer without importing torch (1-2 s)."""
    script = ("import sys\n"
              "import facecodec.bitstream, facecodec.cli\n"
              "from facecodec.cli import main\n"
              f"for args in (['info', {str(face_fcz)!r}], ['--help'], ['--version']):\n"
              "    try:\n"
              "        main(args)\n"
              "    except SystemExit as exit:\n"
              "        assert exit.code in (0, None), exit.code\n"
              "assert 'torch' not in sys.modules, 'torch was imported'\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "weights" in result.stdout


def test_a_write_failing_halfway_leaves_the_old_output_whole(runner, face_png, face_fcz):
    """The disk gives out in the middle of writing the new file: the old output must stay as it was, with no
    temporary file beside it, and the user gets one error line. A file size limit makes the kernel refuse the
    write itself past ``limit`` bytes, whatever code writes (Python ignores SIGXFSZ, so it raises OSError)."""
    import resource

    before = face_fcz.read_bytes()
    limit = len(before) // 2  # the new file (quality 90) is larger than the old one (the default quality)
    saved = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, saved[1]))
    try:  # nothing but the encode runs under the limit: pytest's own output may go to a larger file
        result = runner.invoke(main, ["encode", str(face_png), "--quality", "90", "--force"])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, saved)
    assert_one_line_error(result, f"cannot write {face_fcz}")
    assert face_fcz.read_bytes() == before
    assert sorted(p.name for p in face_fcz.parent.iterdir()) == ["face.fcz", "face.png"]


# --- thumbnails and size targets ------------------------------------------------------------------------------------

# PSNR of `fcz decode --scale` against an area average (Pillow's BOX) of the full decode, default weights: the
# reduced decode is a low-pass view. Floors a little under the measurement; a decimation without the low pass
# (nearest neighbour) measured 23.49 and 20.06 dB.
THUMBNAIL_FLOORS_DB = {"1/2": ((72, 80), 29.5),    # measured 29.95 dB
                       "1/4": ((36, 40), 23.4)}    # measured 23.91 dB


@pytest.mark.parametrize("scale", THUMBNAIL_FLOORS_DB)
def test_decode_scale_gives_a_low_pass_thumbnail(runner, face_fcz, scale):
    size, floor = THUMBNAIL_FLOORS_DB[scale]
    thumb, full = face_fcz.with_name("thumb.png"), face_fcz.with_name("full.png")
    result = runner.invoke(main, ["decode", str(face_fcz), "--scale", scale, "-o", str(thumb)])
    assert result.exit_code == 0, result.output
    assert f"{size[0]}x{size[1]} RGB PNG" in result.output
    assert runner.invoke(main, ["decode", str(face_fcz), "-o", str(full)]).exit_code == 0
    small = np.asarray(Image.open(thumb))
    assert small.shape == (size[1], size[0], 3)
    area = np.asarray(Image.open(full).resize(size, Image.Resampling.BOX))
    assert psnr(area, small) >= floor


@pytest.mark.parametrize("target", [["--size", "6000"], ["--bpp", "1.5"]])
def test_a_size_target_gets_the_largest_quality_that_fits(runner, face_png, face, target):
    """The default weights, measured: --size 6000 gives quality 45 (5,856 bytes; quality 46 takes 6,108), --bpp 1.5
    (4,320 bytes for 144x160) quality 38 (4,208 bytes; quality 39 takes 4,428)."""
    out = face_png.with_name("target.fcz")
    result = runner.invoke(main, ["encode", str(face_png), *target, "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    limit = int(target[1]) if target[0] == "--size" else float(target[1]) * 144 * 160 / 8
    quality = facecodec.read_header(data).quality
    assert len(data) <= limit and data == facecodec.encode(face, quality=quality)
    assert len(facecodec.encode(face, quality=quality + 1)) > limit  # the next quality would not fit
    assert quality == {"--size": 45, "--bpp": 38}[target[0]]


def test_effort_0_is_plain_rounding_at_the_same_quality(runner, face_png, face_fcz, face):
    """The default effort (1) searches for smaller symbols: measured 7,372 bytes, effort 0 8,052, at quality 50."""
    out = face_png.with_name("plain.fcz")
    result = runner.invoke(main, ["encode", str(face_png), "--effort", "0", "-o", str(out)])
    assert result.exit_code == 0, result.output
    plain, searched = out.read_bytes(), face_fcz.read_bytes()
    assert plain == facecodec.encode(face, effort=0) and searched == facecodec.encode(face)
    assert facecodec.read_header(plain).quality == facecodec.read_header(searched).quality
    assert len(plain) > 1.05 * len(searched)
