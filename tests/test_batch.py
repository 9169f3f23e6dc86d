"""Folder runs (facecodec.runner; ``fcz encode DIR -o OUT``): the walk, the manifest, resuming, worker processes and
batches, whose files must be byte for byte those of encoding each image alone."""
from __future__ import annotations

import contextlib
import csv
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.data import astronaut

import facecodec
from facecodec import zoo
from facecodec.bitstream import pack
from facecodec.cli import main
from facecodec.codec import analyse, encode_settings, open_fcz, synthesise, to_payload
from facecodec.runner import MANIFEST_NAME, encode_folder
from facecodec.runner.convert import convert_chunk
from facecodec.runner.executors import Processes, threads_per_job
from facecodec.runner.folder import _Lock
from facecodec.runner.jobs import Conversion, Job, plan
from facecodec.runner.manifest import FIELDS
from facecodec.metrics import bits_per_pixel
from facecodec.models.threads import set_threads, threads, using_threads
from facecodec.zoo import load_weights

FCZ = [sys.executable, "-m", "facecodec.cli"]
INPUTS = ["a.png", "b.png", "c.jpg", "d.png", "e.png", "sub/deeper/g.png", "sub/f.png"]


def rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / MANIFEST_NAME, newline="") as f:
        records = list(csv.DictReader(f))
    assert list(records[0]) == list(FIELDS) if records else True
    return {row["input"]: row for row in records}


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def fcz_name(name: str) -> str:
    return name.rsplit(".", 1)[0] + ".fcz"


@pytest.fixture()
def keep_threads():
    """The thread setting (facecodec.models.threads, torch's too) as it was before the test."""
    with using_threads(threads()):
        yield


# --- the walk and the manifest ----------------------------------------------------------------------------------

def test_a_folder_run_mirrors_the_tree_and_lists_every_file(runner, face_folder, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(main, ["encode", str(face_folder), "-o", str(out), "-r", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert tree(out) == {fcz_name(name) for name in INPUTS} | {MANIFEST_NAME}
    manifest = rows(out)
    assert sorted(manifest) == INPUTS  # not the text file, not the hidden one
    for name, row in manifest.items():
        data = (out / fcz_name(name)).read_bytes()
        header = facecodec.read_header(data)
        assert row == {"input": name, "output": fcz_name(name), "bytes": str(len(data)),
                       "bpp": f"{bits_per_pixel(len(data), header.width, header.height):.4f}", "status": "ok",
                       "error": "", "run": "1", "command": "encode"}
    assert result.output.splitlines() == [f"7 of 7 files done; 1 other file ignored; manifest {out / MANIFEST_NAME}"]

    top = tmp_path / "top"  # without -r: the folder's own files only
    assert runner.invoke(main, ["encode", str(face_folder), "-o", str(top), "--jobs", "1"]).exit_code == 0
    assert tree(top) == {"a.fcz", "b.fcz", "c.fcz", "d.fcz", "e.fcz", MANIFEST_NAME}


def test_without_o_the_outputs_go_beside_the_inputs_and_decode_takes_a_format(runner, face_folder):
    originals = {p: p.read_bytes() for p in face_folder.rglob("*") if p.is_file()}  # the images, the text, the hidden
    assert runner.invoke(main, ["encode", str(face_folder), "-r", "--jobs", "1"]).exit_code == 0
    assert (face_folder / "a.fcz").is_file() and (face_folder / "sub" / "deeper" / "g.fcz").is_file()
    result = runner.invoke(main, ["decode", str(face_folder), "-r", "--jobs", "1", "--format", "jpeg", "-q", "80"])
    assert result.exit_code == 0, result.output
    with Image.open(face_folder / "sub" / "deeper" / "g.jpg") as image:
        assert image.format == "JPEG" and image.size == (40, 30)
    # the originals are untouched, byte for byte: a.png -> a.fcz -> a.jpg beside it; c.jpg -> c.fcz -> c.jpg, whose
    # output is the original itself, counts as already there and is not written
    assert {p: p.read_bytes() for p in originals} == originals
    assert "7 of 7 files done (1 already there)" in result.output


@pytest.mark.parametrize("setting", [[], ["--bits", "6"]])
def test_folder_outputs_are_the_single_file_outputs(runner, face_folder, tmp_path, setting):
    """Encode with batches of 4 (a.png, b.png, c.jpg and d.png are one size): each .fcz is byte for byte the
    library's encode of that image alone, and each decoded PNG the library's decode of that file alone."""
    out, decoded = tmp_path / "out", tmp_path / "decoded"
    args = ["-r", "--jobs", "1", "--batch-size", "4"]
    assert runner.invoke(main, ["encode", str(face_folder), "-o", str(out), *args, *setting]).exit_code == 0
    options = {"bits": 6} if setting else {}
    for name in INPUTS:
        assert (out / fcz_name(name)).read_bytes() == facecodec.encode(face_folder / name, **options), name
    result = runner.invoke(main, ["decode", str(out), "-o", str(decoded), *args])
    assert result.exit_code == 0, result.output
    for name in INPUTS:
        png = decoded / (name.rsplit(".", 1)[0] + ".png")
        assert np.array_equal(np.asarray(Image.open(png)), np.asarray(facecodec.decode(out / fcz_name(name)))), name


def test_a_bad_file_is_listed_and_the_rest_finish(runner, face_folder, tmp_path):
    (face_folder / "bad.png").write_bytes(b"not an image at all")
    (face_folder / "sub" / "empty.jpg").write_bytes(b"")
    out = tmp_path / "out"
    result = runner.invoke(main, ["encode", str(face_folder), "-o", str(out), "-r", "--jobs", "1"])
    assert result.exit_code == 1
    manifest = rows(out)
    assert {name: row["status"] for name, row in manifest.items()} == {
        **{name: "ok" for name in INPUTS}, "bad.png": "error", "sub/empty.jpg": "error"}
    assert manifest["bad.png"]["error"] == "not an image Pillow can read"
    assert manifest["bad.png"]["bytes"] == manifest["bad.png"]["bpp"] == ""
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {face_folder / 'bad.png'}: not an image Pillow can read",
                      f"error: {face_folder / 'sub' / 'empty.jpg'}: not an image Pillow can read"]
    assert f"7 of 9 files done; failed: {face_folder / 'bad.png'}, {face_folder / 'sub' / 'empty.jpg'}" in result.output
    assert tree(out) == {fcz_name(name) for name in INPUTS} | {MANIFEST_NAME}


def test_two_inputs_with_one_output_name_do_not_overwrite_each_other(runner, face_folder, tmp_path):
    (face_folder / "a.jpg").write_bytes((face_folder / "c.jpg").read_bytes())
    out = tmp_path / "out"
    result = runner.invoke(main, ["encode", str(face_folder), "-o", str(out), "--jobs", "1"])
    assert result.exit_code == 1
    assert rows(out)["a.png"]["error"] == "same output a.fcz as a.jpg: rename one of them"
    assert (out / "a.fcz").read_bytes() == facecodec.encode(face_folder / "a.jpg")


@pytest.mark.parametrize("args, message", [
    (["encode", "{png}", "--jobs", "2"], "--jobs applies to a folder input"),
    (["decode", "{png}", "-r"], "--recursive applies to a folder input"),
    (["encode", "{dir}", "-o", "-"], "not standard output"),
    (["encode", "{dir}", "-o", "{png}"], "is a file"),
    (["encode", "{dir}", "--jobs", "2", "--scheduler", "tcp://127.0.0.1:1"], "--jobs starts local processes"),
])
def test_folder_options_without_a_folder_are_usage_errors(runner, face_folder, args, message):
    args = [a.format(png=face_folder / "a.png", dir=face_folder) for a in args]
    result = runner.invoke(main, args)
    assert result.exit_code == 2 and result.output.startswith("error: ") and message in result.output
    assert not list(face_folder.glob("*.fcz"))


def test_one_output_folder_takes_one_run_at_a_time(runner, face_folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    lock = _Lock(out)
    try:
        result = runner.invoke(main, ["encode", str(face_folder), "-o", str(out), "--jobs", "1"])
    finally:
        lock.release()
    assert result.exit_code == 1 and "another fcz run is writing into" in result.output
    assert runner.invoke(main, ["encode", str(face_folder), "-o", str(out), "--jobs", "1"]).exit_code == 0


# --- resuming -------------------------------------------------------------------------------------------------------

def test_a_rerun_skips_finished_files_and_does_the_rest(runner, face_folder, tmp_path):
    out = tmp_path / "out"
    assert runner.invoke(main, ["encode", str(face_folder), "-o", str(out), "-r", "--jobs", "1"]).exit_code == 0
    # Make it look like a run killed halfway: the manifest's last line cut off in the middle of an append (d.png,
    # whose output was written just before), g.png written but never recorded, e.png and f.png never done.
    lines = (out / MANIFEST_NAME).read_text().splitlines(keepends=True)
    kept = [line for line in lines if line.startswith(("input,", "a.png", "b.png", "c.jpg"))]
    (out / MANIFEST_NAME).write_text("".join(kept) + "d.png,d.fcz,31")
    (out / "e.fcz").unlink()
    (out / "sub" / "f.fcz").unlink()
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.fcz")}

    result = runner.invoke(main, ["encode", str(face_folder), "-o", str(out), "-r", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert "7 of 7 files done (5 already there)" in result.output
    manifest = rows(out)
    assert {name: (row["status"], row["run"]) for name, row in manifest.items()} == {
        "a.png": ("ok", "1"), "b.png": ("ok", "1"), "c.jpg": ("ok", "1"),  # finished in run 1: kept as they were
        "d.png": ("exists", "2"), "sub/deeper/g.png": ("exists", "2"),      # there, never recorded: not redone
        "e.png": ("ok", "2"), "sub/f.png": ("ok", "2")}                     # the rest
    assert manifest["d.png"]["bytes"] == str((out / "d.fcz").stat().st_size) and manifest["d.png"]["bpp"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # no finished file was written again

    result = runner.invoke(main, ["encode", str(face_folder), "-o", str(out), "-r", "--jobs", "1", "--force"])
    assert result.exit_code == 0 and "7 of 7 files done;" in result.output
    assert {row["status"] + row["run"] for row in rows(out).values()} == {"ok3"}


def _gated(gate: str, conversion, jobs, batch_size):
    """convert_chunk, except that a chunk holding a copy*.png waits until the file ``gate`` exists (60 s at most)."""
    if any(Path(job.source).name.startswith("copy") for job in jobs):
        deadline = time.monotonic() + 60
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.01)
    return convert_chunk(conversion, jobs, batch_size)


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_interrupted_run_keeps_what_it_finished(face_folder, tmp_path, jobs, monkeypatch):
    """Ctrl-C after two files: the run stops (no worker left, no temporary file), the manifest holds every file
    recorded so far, and the rerun converts only what has no output yet."""
    for i in range(13):  # 20 files, in this order: a.png, b.png, c.jpg, copy00.png .. copy12.png, d.png, ...
        (face_folder / f"copy{i:02}.png").write_bytes((face_folder / "e.png").read_bytes())
    out, gate = tmp_path / "out", tmp_path / "gate"
    # The copies wait for the gate, which opens with the interrupt: however fast the workers, only a.png, b.png
    # and c.jpg can be done before it, and after it only the chunks a pool already holds (2 running, 3 queued).
    monkeypatch.setattr("facecodec.runner.folder.convert_chunk", partial(_gated, str(gate)))
    seen, running_before = [], set(multiprocessing.active_children())  # a Dask cluster of test_cluster.py, say

    def interrupt_after_two(result):
        seen.append(result.job.name)
        if len(seen) == 2:
            gate.touch()
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        encode_folder(face_folder, out, recursive=True, jobs=jobs, chunk_size=1, device="cpu",
                            progress=interrupt_after_two)
    monkeypatch.undo()
    assert not set(multiprocessing.active_children()) - running_before  # no worker of this run is left
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]
    first = rows(out)
    assert set(seen) <= set(first) and all(row["status"] == "ok" for row in first.values())
    written = {p: p.stat().st_mtime_ns for p in out.rglob("*.fcz")}
    assert (2 <= len(written) < 20) if jobs == 2 else (len(written) == 2)

    report = encode_folder(face_folder, out, recursive=True, jobs=1, device="cpu")
    assert (report.total, report.converted, report.already, report.failed) == (20, 20 - len(written), len(written), [])
    assert {p: p.stat().st_mtime_ns for p in written} == written
    assert all(rows(out)[name]["run"] == "1" for name in first)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.isdigit() and int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# More files than the run can finish once its workers are stopped: those recorded (9 or so), the chunks of 4 files
# that the pool holds (2 running, 3 queued) and what the test's own few milliseconds between reading the manifest
# and stopping the workers let through (on a quiet 2-core machine the whole run takes about 4 s, the workers' start
# included).
FILES = 200


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the workers through /proc")
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT])
def test_a_killed_run_resumes_without_redoing_a_file(tmp_path, stop):
    """SIGKILL (or Ctrl-C's SIGINT) the fcz process (2 workers) once the manifest lists some files: its workers go
    too, and a rerun does the rest without writing any finished file again. The workers are stopped (SIGSTOP) as
    soon as the manifest lists 8 files, and go on (SIGCONT) once the signal is sent: however fast or slow the
    machine, the run cannot finish first. About 5 s each."""
    folder, out = tmp_path / "many", tmp_path / "out"
    folder.mkdir()
    picture = astronaut()
    for i in range(FILES):
        Image.fromarray(picture[i % 120:i % 120 + 48, 150 + i // 10:198 + i // 10]).save(folder / f"{i:03}.png")
    # the network model: slower per file than the wavelet default, so the test's few milliseconds before the workers
    # stop let few files through
    # Ctrl-C's default action, even where this test was started in the background (a shell then hands its
    # children SIGINT ignored, and the run would just finish)
    process = subprocess.Popen(FCZ + ["encode", str(folder), "-o", str(out), "--jobs", "2", "--model", "gained-q8-v1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    manifest = out / MANIFEST_NAME
    deadline = time.monotonic() + 60  # a safeguard against a hang: the run normally lists 8 files in seconds
    workers = []
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if manifest.exists() and len(manifest.read_text().splitlines()) > 8:  # a header and 8 files
                workers = _children(process.pid)
                for pid in workers:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGSTOP)
                break
            time.sleep(0.005)
        process.send_signal(stop)
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    process.wait()
    stderr = process.stderr.read().decode()
    if stop == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL, stderr
    else:  # the running chunks finish, their results are recorded, and fcz says what to do
        assert process.returncode == 130, stderr
        assert stderr.splitlines()[-1] == ("error: interrupted; the files finished are kept: run the same command "
                                           "again to do the rest")
        assert not [p for p in out.iterdir() if p.name.endswith(".part")]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.1)
    assert workers and not any(_alive(pid) for pid in workers)  # no orphan goes on working

    first = rows(out)
    written = {p: p.stat().st_mtime_ns for p in out.glob("*.fcz")}
    assert 8 <= len(first) <= len(written) < FILES, "the run finished before it could be stopped"
    (out / f".{FILES - 1:03}.fcz.k1ll3d0x.part").write_bytes(b"half a file")  # what a worker killed mid-write leaves
    result = subprocess.run(FCZ + ["encode", str(folder), "-o", str(out), "--jobs", "2", "--model", "gained-q8-v1"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"{FILES} of {FILES} files done ({len(written)} already there)" in result.stdout
    assert {p: p.stat().st_mtime_ns for p in written} == written
    final = rows(out)
    assert all(final[name] == row for name, row in first.items())
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]
    assert sum(row["status"] == "ok" and row["run"] == "2" for row in final.values()) == FILES - len(written)


# --- worker processes and batches ------------------------------------------------------------------------------

def test_two_worker_processes_write_the_bytes_of_one(runner, face_folder, tmp_path, monkeypatch):
    started, real_init = [], Processes.__init__
    monkeypatch.setattr(Processes, "__init__",
                        lambda self, *args: started.append(args) or real_init(self, *args))
    outputs = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"jobs{jobs}"
        # one image per batch: 7 files make 2 chunks of at most 4, one per worker process
        result = runner.invoke(main, ["encode", str(face_folder), "-o", str(out), "-r", "--jobs", jobs,
                                      "--batch-size", "1"])
        assert result.exit_code == 0, result.output
        outputs[jobs] = {name: (out / fcz_name(name)).read_bytes() for name in INPUTS}
    assert outputs["1"] == outputs["2"]
    assert started == [(2, threads_per_job(2))]  # --jobs 1 ran here, --jobs 2 in two processes


@pytest.mark.parametrize("setting", [{"quality": 2}, {"bits": 6}]
                         + [{"weights_id": weights_id} for weights_id in zoo.pixel_codec_ids()])
def test_batches_give_the_bytes_of_one_at_a_time(face_folder, tmp_path, setting, keep_threads):
    set_threads(1)  # quicker on a busy machine; the thread count changes nothing (the test below)
    jobs, _, _ = plan(face_folder, tmp_path, ".fcz", "encode", recursive=True)
    encode = Conversion("encode", ".fcz", encode_settings(**setting), device="cpu")
    decode = Conversion("decode", ".png", device="cpu")
    files, pictures = {}, {}
    for size in (1, 3, 8):
        encoded = [replace(job, target=str(tmp_path / f"bs{size}" / job.output)) for job in jobs]
        assert [r.status for r in convert_chunk(encode, encoded, size)] == ["ok"] * len(jobs)
        files[size] = [Path(job.target).read_bytes() for job in encoded]
        decoded = [Job(job.output, job.target, job.name, str(tmp_path / f"png{size}" / f"{job.name}.png"))
                   for job in encoded]
        assert [r.status for r in convert_chunk(decode, decoded, size)] == ["ok"] * len(jobs)
        pictures[size] = [np.asarray(Image.open(job.target)) for job in decoded]
    assert files[1] == files[3] == files[8] == [facecodec.encode(job.source, **setting) for job in jobs]
    for size in (3, 8):
        assert all(np.array_equal(a, b) for a, b in zip(pictures[1], pictures[size]))


@pytest.mark.parametrize("weights_id", zoo.pixel_codec_ids())
def test_network_outputs_do_not_depend_on_batch_or_threads(weights_id, keep_threads):
    """The reason the bytes match: an image's features are the same bits alone, in a batch, on 1 or 2 threads
    (PyTorch alone picks other convolution kernels for those, see facecodec.numerics); the decoder's pixels are
    the same alone and in a batch at one thread count."""
    weights = load_weights(weights_id, "cpu")
    x = np.stack([astronaut()[i:i + 48, 150 + 7 * i:198 + 7 * i] for i in range(5)])
    x = x.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)
    features = {}
    for count in (1, 2):
        with using_threads(count):
            alone = np.concatenate([analyse(weights, x[i:i + 1]) for i in range(5)])
            assert np.array_equal(analyse(weights, x), alone)
            features[count] = alone
            # the decoder's input, as a .fcz file gives it (the wavelet family's carries the quality level too)
            files = [pack(*to_payload(weights, *_quantized(weights, alone[i:i + 1]), (48, 48), "RGB", 0, 0))
                     for i in range(5)]
            inputs = np.concatenate([open_fcz(data)[2][0][1]() for data in files])
            pixels = np.concatenate([synthesise(weights, inputs[i:i + 1]) for i in range(5)])
            assert np.array_equal(synthesise(weights, inputs), pixels)
    assert np.array_equal(features[1], features[2])


def _quantized(weights, y: np.ndarray) -> tuple[np.ndarray, dict]:
    symbols, fields = weights.family.quantize(weights.model, y, weights.family.default)
    return symbols[0], fields[0]


def _crash_on_a_file_named_crash(conversion, jobs, batch_size):
    """A worker task that dies, as a crash in an image library would, on any file named crash.png."""
    if any(Path(job.source).name == "crash.png" for job in jobs):
        os._exit(3)
    return convert_chunk(conversion, jobs, batch_size)


def test_a_file_that_kills_its_worker_is_reported_and_the_rest_finish(face_folder, tmp_path):
    """About 8 s: three pools start (the first, the one-by-one rerun, and one after the crash)."""
    (face_folder / "crash.png").write_bytes((face_folder / "a.png").read_bytes())
    jobs, _, _ = plan(face_folder, tmp_path / "out", ".fcz", "encode")
    conversion = Conversion("encode", ".fcz", encode_settings(), device="cpu")
    chunks = [jobs[i:i + 2] for i in range(0, len(jobs), 2)]
    task = partial(_crash_on_a_file_named_crash, conversion, batch_size=1)
    results = [r for chunk in Processes(2, 1).run(task, chunks) for r in chunk]
    assert sorted((r.job.name, r.status, r.error) for r in results) == sorted(
        [(job.name, "ok", "") for job in jobs if job.name != "crash.png"]
        + [("crash.png", "error", "the worker process died converting this file")])


def test_decoding_into_the_encode_folder_says_which_command_wrote_each_row(runner, face_folder, tmp_path):
    out = tmp_path / "out"
    assert runner.invoke(main, ["encode", str(face_folder), "-o", str(out), "--jobs", "1"]).exit_code == 0
    assert runner.invoke(main, ["decode", str(out), "-o", str(out), "--jobs", "1"]).exit_code == 0
    commands = {name: row["command"] for name, row in rows(out).items()}
    assert commands == {"a.png": "encode", "b.png": "encode", "c.jpg": "encode", "d.png": "encode", "e.png": "encode",
                        "a.fcz": "decode", "b.fcz": "decode", "c.fcz": "decode", "d.fcz": "decode", "e.fcz": "decode"}


def test_a_manifest_from_before_the_command_column_is_read_and_resumed(runner, face_folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.fcz").write_bytes(facecodec.encode(face_folder / "a.png"))
    (out / MANIFEST_NAME).write_text("input,output,bytes,bpp,status,error,run\n"
                                     f"a.png,a.fcz,{(out / 'a.fcz').stat().st_size},1.0,ok,,1\n")
    result = runner.invoke(main, ["encode", str(face_folder), "-o", str(out), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert "5 of 5 files done (1 already there)" in result.output
    manifest = rows(out)
    assert (manifest["a.png"]["run"], manifest["a.png"]["command"]) == ("1", "")
    assert (manifest["b.png"]["run"], manifest["b.png"]["command"]) == ("2", "encode")
