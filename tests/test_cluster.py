"""The folder job on a Dask cluster (facecodec.runner.cluster): a LocalCluster of 2 worker processes, 1 thread each.

The cluster takes about 5 s to start (once for this module); its workers load torch and the weights on
their first task. Skipped when dask.distributed is not installed (it comes with the test extra).
"""
from __future__ import annotations

import csv

import pytest

import facecodec
from facecodec.bitstream import FczError
from facecodec.cli import main
from facecodec.runner import MANIFEST_NAME, encode_folder

pytestmark = pytest.mark.cluster

INPUTS = ["a.png", "b.png", "c.jpg", "d.png", "e.png", "sub/deeper/g.png", "sub/f.png"]


def rows(out):
    with open(out / MANIFEST_NAME, newline="") as f:
        return {row["input"]: row for row in csv.DictReader(f)}


def test_a_cluster_run_writes_the_bytes_of_one_at_a_time(dask_client, face_folder, tmp_path):
    from distributed import get_task_stream

    out = tmp_path / "out"
    with get_task_stream(dask_client) as stream:  # the scheduler's record of every task: its key and its worker
        report = encode_folder(face_folder, out, recursive=True, client=dask_client, batch_size=4, chunk_size=2,
                               device="cpu")
    assert (report.total, report.converted, report.failed) == (7, 7, [])
    for name in INPUTS:
        target = out / (name.rsplit(".", 1)[0] + ".fcz")
        assert target.read_bytes() == facecodec.encode(face_folder / name), name
    assert {row["status"] for row in rows(out).values()} == {"ok"}
    # both workers took part: the 4 chunks (7 files, 2 a chunk) ran as 4 tasks, on both workers of the cluster
    ran = {entry["key"]: entry["worker"] for entry in stream.data if str(entry["key"]).startswith("fcz-")}
    assert len(ran) == 4
    workers = set(dask_client.scheduler_info()["workers"])
    assert len(workers) == 2 and set(ran.values()) == workers, ran


def test_fcz_with_scheduler_lists_a_bad_file_and_resumes(runner, dask_client, face_folder, tmp_path):
    (face_folder / "bad.png").write_bytes(b"not an image at all")
    out = tmp_path / "out"
    address = dask_client.scheduler.address
    result = runner.invoke(main, ["encode", str(face_folder), "-o", str(out), "-r",
                                  "--scheduler", address])
    assert result.exit_code == 1
    manifest = rows(out)
    assert manifest["bad.png"]["status"] == "error" and manifest["bad.png"]["error"] == "not an image Pillow can read"
    assert all(manifest[name]["status"] == "ok" for name in INPUTS)
    assert f"7 of 8 files done; failed: {face_folder / 'bad.png'}" in result.output

    (face_folder / "bad.png").unlink()
    (out / "a.fcz").unlink()
    result = runner.invoke(main, ["encode", str(face_folder), "-o", str(out), "-r", "--scheduler", address])
    assert result.exit_code == 0 and "7 of 7 files done (6 already there)" in result.output
    assert rows(out)["a.png"]["run"] == "2" and rows(out)["b.png"]["run"] == "1"

    decoded = tmp_path / "decoded"  # and back, on the cluster too
    result = runner.invoke(main, ["decode", str(out), "-o", str(decoded), "-r", "--scheduler", address])
    assert result.exit_code == 0, result.output
    assert (decoded / "sub" / "deeper" / "g.png").is_file()


def test_an_unreachable_scheduler_is_one_error():
    from facecodec.runner.cluster import DaskExecutor

    with pytest.raises(FczError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:1"):
        DaskExecutor("tcp://127.0.0.1:1", timeout=1)
