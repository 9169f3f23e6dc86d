"""What fcz says and writes at the edges a newcomer trips on: one-line errors, names, outputs that are never guessed."""
from __future__ import annotations

import json

from facecodec import zoo
from facecodec.cli import main


def test_fcz_alone_prints_the_help_not_an_error(runner):
    result = runner.invoke(main, [], prog_name="fcz")
    assert result.exit_code == 2
    assert result.stdout.startswith("Usage: fcz [OPTIONS] COMMAND") and "error" not in result.output


def test_standard_input_is_named_stdin_in_an_output_folder(runner, face_png, tmp_path):
    data = face_png.read_bytes()
    assert runner.invoke(main, ["encode", "-", "-o", f"{tmp_path}/coded/"], input=data).exit_code == 0
    assert [p.name for p in (tmp_path / "coded").iterdir()] == ["stdin.fcz"]
    result = runner.invoke(main, ["restore", "-", "--task", "denoise", "-o", f"{tmp_path}/restored/"], input=data)
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "restored").iterdir()] == ["stdin-denoise.png"]


def test_two_inputs_with_one_output_name_are_refused_not_reported_as_existing(runner, face_png, tmp_path):
    jpeg = face_png.with_suffix(".jpg")
    from PIL import Image

    Image.open(face_png).save(jpeg)
    result = runner.invoke(main, ["encode", str(face_png), str(jpeg), "-o", f"{tmp_path}/out/"])
    assert result.exit_code == 1
    assert f"same output {tmp_path}/out/face.fcz as {face_png}: rename one of them" in result.output
    assert "exists" not in result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["face.fcz"]


def test_a_file_name_where_a_directory_is_needed_is_a_usage_error_that_creates_nothing(runner, face_png, face_folder,
                                                                                        tmp_path):
    folder_run = runner.invoke(main, ["encode", str(face_folder), "-o", str(tmp_path / "x.fcz")])
    several = runner.invoke(main, ["encode", str(face_png), str(face_folder / "a.png"), "-o", str(tmp_path / "y.fcz")])
    for result, name in ((folder_run, "x.fcz"), (several, "y.fcz")):
        assert result.exit_code == 2
        assert result.output.count("\n") == 1 and f"-o {tmp_path / name} names a file" in result.output
        assert not (tmp_path / name).exists()


def test_restore_option_errors_are_one_line_naming_the_option(runner, face_png):
    superres = runner.invoke(main, ["restore", str(face_png), "--task", "superres"])
    assert superres.exit_code == 2 and superres.output == "error: superres needs a scale: 4 or 8 (--scale)\n"
    missing = runner.invoke(main, ["restore", str(face_png)])
    assert missing.exit_code == 2 and missing.output.count("\n") == 1
    assert missing.output.startswith("error: Missing option '--task'. Choose from: denoise, inpaint,")


def test_a_bpp_target_out_of_reach_is_answered_in_bpp(runner, face_png):
    result = runner.invoke(main, ["encode", str(face_png), "--bpp", "0.01"])
    assert result.exit_code == 1
    assert "no quality level fits in 0.010 bpp (28 bytes): the smallest file (quality 1) takes " in result.output
    assert result.output.rstrip().endswith("bytes)") and " bpp (" in result.output.split("takes ")[1]


def test_a_size_target_reports_the_quality_it_chose(runner, face_png, tmp_path):
    result = runner.invoke(main, ["encode", str(face_png), "--size", "2000", "-o", str(tmp_path / "f.fcz")])
    assert result.exit_code == 0, result.output
    chosen = int(result.output.split(": quality ")[1].split(",")[0])
    assert 1 <= chosen < zoo.load_spec(zoo.default_weights_id()).family.default


def test_an_empty_folder_is_warned_about(runner, tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(main, ["encode", str(tmp_path / "empty"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0
    assert f"warning: {tmp_path / 'empty'} holds no images to encode" in result.output


def test_fcz_models_lists_every_installed_weights_with_its_settings(runner):
    result = runner.invoke(main, ["models", "--json"])
    assert result.exit_code == 0
    records = {r["id"]: r for r in json.loads(result.output)}
    assert set(records) == set(zoo.installed_ids()) | set(zoo.installed_ids(zoo.RESTORE))
    default = records[zoo.default_weights_id()]
    assert default["default"] and default["option"] == "quality" and default["settings"] == [1, 100]
    assert default["default_setting"] == 50 and default["efforts"] == [0, 1]
    assert records["theis-c24-v1"]["option"] == "bits" and records["theis-c24-v1"]["settings"] == [1, 8]
    assert "dejpeg" in records["restore-dejpeg-v1"]["serves"]
    text = runner.invoke(main, ["models"]).output
    assert f"{zoo.default_weights_id()}" in text and "[default weights]" in text and text.count("\n") == len(records)


def test_a_folder_with_a_name_that_is_not_utf8_finishes_and_resumes(runner, face_png, tmp_path):
    import os

    folder = tmp_path / "faces"
    folder.mkdir()
    odd = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: no valid UTF-8
    (folder / odd).write_bytes(face_png.read_bytes())
    (folder / "plain.png").write_bytes(face_png.read_bytes())
    first = runner.invoke(main, ["encode", str(folder), "-o", str(tmp_path / "out"), "-j", "1"])
    assert first.exit_code == 0, first.output
    assert sorted(os.listdir(os.fsencode(tmp_path / "out"))) == [b"caf\xe9.fcz", b"fcz-manifest.csv", b"plain.fcz"]
    assert b"caf\xe9.png,caf\xe9.fcz," in (tmp_path / "out" / "fcz-manifest.csv").read_bytes()
    again = runner.invoke(main, ["encode", str(folder), "-o", str(tmp_path / "out"), "-j", "1"])
    assert again.exit_code == 0 and "2 of 2 files done (2 already there)" in again.output
