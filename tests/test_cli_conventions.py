"""fcz as users of image tools expect it: pipes, output formats, one error style, safe outputs, info's checks."""
from __future__ import annotations

import io
import json
import os
import pty
import re
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecodec.bitstream import pack, unpack
from facecodec.cli import main

FCZ = [sys.executable, "-m", "facecodec.cli"]


def error_lines(result) -> list[str]:
    assert "Traceback" not in result.output
    return [line for line in result.output.splitlines() if line.startswith("error:")]


# --- pipes --------------------------------------------------------------------------------------------------

def test_a_pipeline_gives_the_same_pixels_as_files(face_png, tmp_path):
    """cat face.png | fcz encode - -o - | fcz decode - -o - > out.png"""
    encoded = subprocess.run(FCZ + ["encode", "-", "-o", "-"], input=face_png.read_bytes(), capture_output=True)
    assert encoded.returncode == 0, encoded.stderr
    decoded = subprocess.run(FCZ + ["decode", "-", "-o", "-"], input=encoded.stdout, capture_output=True)
    assert decoded.returncode == 0, decoded.stderr
    assert decoded.stdout.startswith(b"\x89PNG")  # a pipe gets PNG unless --format says otherwise
    subprocess.run(FCZ + ["encode", str(face_png), "-o", str(tmp_path / "f.fcz")], check=True, capture_output=True)
    subprocess.run(FCZ + ["decode", str(tmp_path / "f.fcz"), "-o", str(tmp_path / "f.png")], check=True,
                   capture_output=True)
    assert encoded.stdout == (tmp_path / "f.fcz").read_bytes()
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(decoded.stdout))), np.asarray(Image.open(tmp_path / "f.png")))


def test_binary_data_is_never_written_to_a_terminal(face_png):
    leader, follower = pty.openpty()
    try:
        result = subprocess.run(FCZ + ["encode", str(face_png), "-o", "-"], stdout=follower, stderr=subprocess.PIPE)
    finally:
        os.close(follower)
        os.close(leader)
    assert result.returncode == 2 and b"error: refusing to write binary data to a terminal" in result.stderr


def test_decode_to_a_pipe_takes_a_format(runner, face_fcz):
    result = runner.invoke(main, ["decode", str(face_fcz), "-o", "-", "--format", "jpeg", "-q", "90"])
    assert result.exit_code == 0
    assert Image.open(io.BytesIO(result.stdout_bytes)).format == "JPEG"


# --- one error style ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["encode"], "Missing argument"),
    (["encode", "x.png", "--nonesuch"], "No such option"),
    (["decode", "x.fcz", "-q", "500"], "500"),
    (["nonesuch"], "No such command"),
])
def test_usage_errors_are_one_line_and_exit_2(runner, args, message):
    result = runner.invoke(main, args)
    assert result.exit_code == 2 and len(result.output.splitlines()) == 1
    assert result.output.startswith("error: ") and message in result.output


def test_every_input_is_attempted_and_each_failure_listed(runner, face_png, tmp_path):
    inputs = [str(tmp_path / "missing.png"), str(face_png), str(tmp_path)]
    result = runner.invoke(main, ["encode", *inputs, "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert error_lines(result) == [f"error: {inputs[0]}: no such file", f"error: {inputs[2]}: is a directory"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["face.fcz"]
    assert "1 of 3 files done" in result.output


def test_a_missing_input_alone_exits_1(runner, tmp_path):
    for command in ("encode", "decode", "info"):
        result = runner.invoke(main, [command, str(tmp_path / "missing")])
        assert result.exit_code == 1 and error_lines(result) == [f"error: {tmp_path / 'missing'}: no such file"]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", ["encode", "decode"])
def test_cuda_without_a_gpu_is_a_usage_error_for_both_directions(runner, face_png, face_fcz, command):
    source = face_png if command == "encode" else face_fcz
    result = runner.invoke(main, [command, str(source), "-o", str(source.with_name("x")), "--device", "cuda"])
    assert result.exit_code == 2 and error_lines(result) == [
        "error: --device cuda was asked for, but PyTorch sees no CUDA GPU here"]


def test_an_output_directory_is_created(runner, face_png, tmp_path):
    result = runner.invoke(main, ["encode", str(face_png), "-o", f"{tmp_path / 'new' / 'dir'}/"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "new" / "dir" / "face.fcz").is_file()


def test_short_help(runner):
    for args in (["-h"], ["encode", "-h"], ["decode", "-h"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0 and "Usage:" in result.output


# --- formats by extension -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, fmt", [("x.png", "PNG"), ("x.jpg", "JPEG"), ("x.webp", "WEBP"), ("x.tif", "TIFF"),
                                       ("x.bmp", "BMP")])
def test_decode_writes_the_format_its_name_says(runner, face_fcz, name, fmt):
    target = face_fcz.with_name(name)
    assert runner.invoke(main, ["decode", str(face_fcz), "-o", str(target)]).exit_code == 0
    with Image.open(target) as image:
        assert image.format == fmt and image.size == (144, 160)


def test_decode_quality_sets_lossy_output_quality(runner, face_fcz):
    sizes = []
    for quality in ("20", "95"):
        target = face_fcz.with_name(f"q{quality}.jpg")
        assert runner.invoke(main, ["decode", str(face_fcz), "-o", str(target), "-q", quality]).exit_code == 0
        sizes.append(target.stat().st_size)
    assert sizes[0] < sizes[1]
    result = runner.invoke(main, ["decode", str(face_fcz), "-o", str(face_fcz.with_name("x.png")), "-q", "90"])
    assert result.exit_code == 2 and "JPEG and WebP" in result.output


@pytest.mark.parametrize("args, message", [
    (["decode", "{fcz}", "-o", "{dir}/x.xyz"], "cannot tell an image format"),
    (["decode", "{fcz}", "-o", "{dir}/x.png", "--format", "jpeg"], "does not match"),
    (["encode", "{png}", "-o", "{dir}/out.png"], "encode writes .fcz files"),
])
def test_names_that_lie_about_the_format_are_refused(runner, face_png, face_fcz, args, message):
    args = [a.format(fcz=face_fcz, png=face_png, dir=face_png.parent) for a in args]
    result = runner.invoke(main, args)
    assert result.exit_code == 2 and message in error_lines(result)[0]
    assert sorted(p.name for p in face_png.parent.iterdir()) == ["face.fcz", "face.png"]


def test_an_fcz_under_an_unknown_name_gets_a_warning(runner, face_png):
    result = runner.invoke(main, ["encode", str(face_png), "-o", str(face_png.with_name("face.bin"))])
    assert result.exit_code == 0 and "warning: " in result.output and "does not end in .fcz" in result.output


def test_dropped_frames_are_reported(runner, tmp_path):
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    result = runner.invoke(main, ["encode", str(tmp_path / "anim.gif")])
    assert result.exit_code == 0 and "warning: " in result.output and "first of 2 frames" in result.output


# --- limits -------------------------------------------------------------------------------------------------

def _resealed(path: Path, **changes) -> None:
    header, payload = unpack(path.read_bytes())
    payload = changes.pop("payload", payload)
    path.write_bytes(pack(replace(header, **changes), payload))


def test_a_file_claiming_a_huge_image_is_refused_at_once(runner, face_fcz):
    header = unpack(face_fcz.read_bytes())[0]
    _resealed(face_fcz, width=16384, height=16384, pad_right=0, pad_bottom=0,
              latent_shape=(header.latent_shape[0], 1024, 1024))
    for command in (["decode", str(face_fcz), "-o", str(face_fcz.with_name("x.png"))], ["info", str(face_fcz)]):
        result = runner.invoke(main, command)
        assert result.exit_code == 1 and "more than the limit" in error_lines(result)[0]


def test_max_pixels_is_an_option(runner, face_png, face_fcz):
    result = runner.invoke(main, ["encode", str(face_png), "-o", str(face_png.with_name("y.fcz")),
                                  "--max-pixels", "10000"])
    assert result.exit_code == 1 and "more than the limit of 10,000" in error_lines(result)[0]
    result = runner.invoke(main, ["decode", str(face_fcz), "-o", str(face_fcz.with_name("y.png")), "--max-pixels", "0"])
    assert result.exit_code == 0


# --- info checks what decode checks --------------------------------------------------------------------------

@pytest.mark.parametrize("changes, message", [
    ({"weights_id": "gained-q8-v9"}, "not installed"),
    ({"quality": 101}, "no quantizer setting quality 101"),
    ({"latent_shape": "fewer channels"}, "not what weights"),
    ({"payload": "cut"}, "too short"),
])
def test_info_exits_1_on_files_that_cannot_decode(runner, face_fcz, changes, message):
    header, payload = unpack(face_fcz.read_bytes())
    if changes.get("latent_shape"):
        c, h, w = header.latent_shape
        changes["latent_shape"] = (c - 1, h, w)
    if changes.get("payload"):
        changes["payload"] = payload[:8]  # a payload that cannot hold the symbols its header claims
    _resealed(face_fcz, **changes)
    result = runner.invoke(main, ["info", str(face_fcz)])
    assert result.exit_code == 1 and message in error_lines(result)[0]
    decoded = runner.invoke(main, ["decode", str(face_fcz), "-o", str(face_fcz.with_name("x.png"))])
    assert decoded.exit_code == 1  # info refuses exactly what decode refuses


def test_info_json_and_one_line_per_file(runner, face_fcz, tmp_path):
    second = tmp_path / "second.fcz"
    second.write_bytes(face_fcz.read_bytes())
    result = runner.invoke(main, ["info", str(face_fcz), str(second)])
    assert result.exit_code == 0 and len(result.output.splitlines()) == 2 and "quality 50" in result.output
    result = runner.invoke(main, ["info", "--json", str(face_fcz), str(tmp_path / "missing.fcz")])
    records = json.loads(result.stdout)
    assert result.exit_code == 1
    assert records[0]["ok"] and records[0]["quality"] == 50 and records[0]["bytes"] == face_fcz.stat().st_size
    assert records[1] == {"file": str(tmp_path / "missing.fcz"), "ok": False,
                          "error": f"{tmp_path / 'missing.fcz'}: no such file"}


# --- safe outputs ---------------------------------------------------------------------------------------------

def test_force_never_replaces_a_link_or_a_fifo(runner, face_png, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "link.fcz"
    link.symlink_to(victim)
    fifo = tmp_path / "fifo.fcz"
    os.mkfifo(fifo)
    for target in (link, fifo):
        result = runner.invoke(main, ["encode", str(face_png), "-o", str(target), "--force"])
        assert result.exit_code == 1 and "not a regular file" in error_lines(result)[0]
    assert link.is_symlink() and victim.read_text() == "keep me" and stat.S_ISFIFO(fifo.lstat().st_mode)


def test_new_files_follow_the_umask_and_replaced_files_keep_their_mode(runner, face_png, face_fcz):
    old_umask = os.umask(0o022)
    try:
        fresh = face_png.with_name("fresh.fcz")
        assert runner.invoke(main, ["encode", str(face_png), "-o", str(fresh)]).exit_code == 0
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
        face_fcz.chmod(0o640)
        assert runner.invoke(main, ["encode", str(face_png), "-o", str(face_fcz), "-q", "2", "--force"]).exit_code == 0
        assert stat.S_IMODE(face_fcz.stat().st_mode) == 0o640
    finally:
        os.umask(old_umask)


# --- --quiet, -v, --threads -----------------------------------------------------------------------------------

def test_quiet_prints_errors_only_and_verbose_adds_each_files_time(runner, face_png, tmp_path):
    rgba = tmp_path / "alpha.png"
    Image.open(face_png).convert("RGBA").save(rgba)   # encodes with a warning: alpha dropped
    result = runner.invoke(main, ["encode", str(face_png), str(rgba), "-o", str(tmp_path / "q/"), "--quiet"])
    assert result.exit_code == 0 and result.output == "", result.output
    result = runner.invoke(main, ["encode", str(rgba), "-o", str(tmp_path / "n.fcz")])
    assert "warning:" in result.output and "alpha.png -> " in result.output
    result = runner.invoke(main, ["encode", str(tmp_path / "missing.png"), "-o", str(tmp_path / "m.fcz"), "--quiet"])
    assert result.exit_code == 1 and result.output.startswith("error: ") and "no such file" in result.output
    result = runner.invoke(main, ["decode", str(tmp_path / "n.fcz"), "-o", str(tmp_path / "n.png"), "-v"])
    assert result.exit_code == 0 and re.search(r"n\.fcz: \d+\.\d{3} s", result.output), result.output
    result = runner.invoke(main, ["decode", str(tmp_path / "n.fcz"), "-o", "x.png", "--quiet", "-v"])
    assert result.exit_code == 2 and "--quiet and --verbose" in result.output


def test_quiet_silences_a_folder_run_but_not_its_failures(runner, face_folder, tmp_path):
    (face_folder / "bad.png").write_bytes(b"not a png")
    result = runner.invoke(main, ["encode", str(face_folder), "-o", str(tmp_path / "out"), "--quiet", "--jobs", "1"])
    assert result.exit_code == 1
    assert [line.split(":")[0] for line in result.output.splitlines()] == ["error"], result.output


def test_threads_sets_the_transforms_thread_count_for_the_command_only(runner, face_png, tmp_path):
    from facecodec.models import threads

    try:
        result = runner.invoke(main, ["encode", str(face_png), "-o", str(tmp_path / "t.fcz"), "--threads", "1"])
        assert result.exit_code == 0 and threads.threads() == 1, result.output
        assert runner.invoke(main, ["decode", str(tmp_path / "t.fcz"), "-o", str(tmp_path / "t.png")]).exit_code == 0
        assert threads.threads() is None          # the next command is back to the libraries' defaults
    finally:
        threads.set_threads(None)
    result = runner.invoke(main, ["encode", str(face_png), "--threads", "0"])
    assert result.exit_code == 2 and "--threads" in result.output
