"""Folder encode throughput: faces per second of ``fcz encode DIR -o OUT`` by worker processes, batch size, and on Dask.

    python benchmarks/throughput.py [FOLDER] [--faces 200] [--out benchmarks/results]

Every configuration encodes the same first ``--faces`` images of FOLDER (default ``../shared/data/lfw-test``)
into a fresh temporary folder through ``facecodec.runner.run_folder``, the engine of ``fcz encode DIR -o OUT``,
timed from the call to its return, so worker start-up (spawning, importing torch, loading the weights) is
included as a user meets it. The inputs are symbolic links in a temporary folder: the data is never copied.
Each configuration's files are compared byte for byte with one-at-a-time encodes (``facecodec.encode`` of
each face, one call per face, in this process), which is also the first row.

The Dask rows run on a ``LocalCluster`` of 2 worker processes with 1 thread each, started before the clock
(spawned from this script, they import it, and so torch, as they start): "cold" is the first run on fresh
workers (they load the weights inside the timed run; one run only), "warm" later runs on the same workers.
The ``--jobs 2`` worker processes start inside every timed run: spawning, importing torch, loading weights. The machine's load average is recorded before and after: on a
shared machine the numbers move with what else runs.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import json
import logging
import os
import tempfile
import time
from typing import Any

import click
import torch

import facecodec
from facecodec import runner
from facecodec.runner.executors import default_jobs, threads_per_job

from benchmarks.common import DEFAULT_FOLDER, DEFAULT_OUT, IMAGE_SUFFIXES, cpu_model

BATCH_SIZES = (1, 8, 32)


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.fcz"))}


def run(folder: Path, faces: int, repeats: int, work: Path) -> dict[str, Any]:
    sources = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:faces]
    if len(sources) < faces:
        raise click.ClickException(f"{folder} has {len(sources)} images, fewer than --faces {faces}")
    inputs = work / "inputs"
    inputs.mkdir()
    for source in sources:
        (inputs / source.name).symlink_to(source.resolve())
    rows: list[dict[str, Any]] = []

    # The reference files, and a warm-up of this process: weights loaded, oneDNN's kernels built for each batch
    # shape the in-process rows use (the worker processes and Dask workers start cold: that is part of their time).
    reference = {source.stem + ".fcz": facecodec.encode(source, device="cpu") for source in sources}
    for batch_size in BATCH_SIZES:
        warm = work / f"warm-{batch_size}"
        warm.mkdir()
        for source in sources[:batch_size]:
            (warm / source.name).symlink_to(source.resolve())
        runner.encode_folder(warm, work / f"warm-out-{batch_size}", jobs=1, batch_size=batch_size, device="cpu")
    runs, identical = [], faces
    for _ in range(repeats):  # into memory only: no files written
        started = time.perf_counter()
        same = [facecodec.encode(sources[0], device="cpu") == reference[sources[0].stem + ".fcz"]]
        first = time.perf_counter()
        same += [facecodec.encode(source, device="cpu") == reference[source.stem + ".fcz"] for source in sources[1:]]
        runs.append((time.perf_counter() - started, first - started))
        identical = min(identical, sum(same))
    seconds, first = sorted(runs)[len(runs) // 2]
    rows.append({"configuration": "one at a time (facecodec.encode per face in this process; no files written)",
                 "jobs": 1, "threads": torch.get_num_threads(), "batch": 1, "seconds": seconds, "first": first,
                 "all_seconds": [round(r[0], 2) for r in runs], "identical": identical})

    def folder_run(label: str, jobs: int | None, batch_size: int, client: Any = None, times: int = repeats) -> None:
        runs = []  # (seconds, seconds to the first file), one per repeat; the median run is reported
        identical = faces
        for repeat in range(times):
            out = work / f"out-{len(rows)}-{repeat}"
            stamps: list[float] = []
            begun = time.perf_counter()
            report = runner.encode_folder(inputs, out, jobs=jobs, batch_size=batch_size, client=client,
                                         device="cpu", progress=lambda result: stamps.append(time.perf_counter()))
            if report.failed or report.converted != faces:
                raise click.ClickException(f"{label}: {report.failed[:3]}")
            runs.append((report.seconds, stamps[0] - begun))
            produced = _outputs(out)
            identical = min(identical, sum(produced.get(name) == data for name, data in reference.items()))
        seconds, first = sorted(runs)[len(runs) // 2]
        threads = "Dask's (1)" if client is not None else (torch.get_num_threads() if jobs == 1
                                                            else threads_per_job(jobs))
        rows.append({"configuration": label, "jobs": jobs or 2, "threads": threads, "batch": batch_size,
                     "seconds": seconds, "first": first, "all_seconds": [round(r[0], 2) for r in runs],
                     "identical": identical})
        click.echo(f"{label}, batch {batch_size}: {faces / seconds:.1f} faces/s", err=True)

    for jobs in (1, 2):
        for batch_size in BATCH_SIZES:
            folder_run(f"--jobs {jobs}" + (" (in this process)" if jobs == 1 else " (worker processes)"), jobs,
                       batch_size)
    try:
        import distributed
    except ImportError:
        click.echo("dask.distributed is not installed: no Dask rows (pip install -e '.[cluster]')", err=True)
    else:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                      silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as client:
            folder_run("Dask LocalCluster, 2 workers x 1 thread, cold (one run)", None, 1, client, times=1)
            folder_run("Dask LocalCluster, 2 workers x 1 thread, warm", None, 1, client)
            folder_run("Dask LocalCluster, 2 workers x 1 thread, warm", None, 8, client)
    for row in rows:
        row["faces_per_second"] = round(faces / row["seconds"], 1)
        # after the first file is done (start-up, and for batches the first chunk, behind): the steady rate
        row["steady_faces_per_second"] = round((faces - 1) / (row["seconds"] - row["first"]), 1)
        row["seconds"], row["first"] = round(row["seconds"], 2), round(row["first"], 2)
    return {"rows": rows}


def markdown(result: dict[str, Any]) -> str:
    meta = result["metadata"]
    lines = [
        f"Folder encode throughput, {meta['date']}: {meta['faces']} faces of {meta['folder']} "
        f"({meta['size']}), weights {meta['weights_id']} at the default setting, device cpu; "
        f"{meta['cpu']}, {meta['cpus']} CPUs, torch {meta['torch']}. "
        f"Load average before / after: {meta['load_before']:.2f} / {meta['load_after']:.2f} "
        "(a shared machine: other work moves these numbers).",
        "",
        "Each run is `facecodec.runner.run_folder` (the engine of `fcz encode DIR -o OUT`) into an empty folder, "
        "timed from the call to its return: worker start-up included; the median of "
        f"{meta['repeats']} runs. *identical*: files byte-identical to encoding each face alone "
        "(`facecodec.encode`), in every run. Command: `nice python benchmarks/throughput.py "
        f"--faces {meta['faces']} --repeats {meta['repeats']}`.",
        "",
        "*first file*: seconds until the first file was done (worker start-up; for batches, the first chunk); "
        "*steady*: faces per second after it.",
        "",
        "| configuration | jobs | torch threads each | batch size | seconds | first file s | faces/s | steady faces/s "
        "| identical |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["rows"]:
        lines.append(f"| {row['configuration']} | {row['jobs']} | {row['threads']} | {row['batch']} | "
                     f"{row['seconds']:.2f} | {row['first']:.2f} | {row['faces_per_second']:.1f} | "
                     f"{row['steady_faces_per_second']:.1f} | {row['identical']}/{meta['faces']} |")
    return "\n".join(lines) + "\n"


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path), default=DEFAULT_FOLDER)
@click.option("--faces", type=click.IntRange(min=1), default=200, show_default=True,
              help="How many faces (the first by name) each configuration encodes.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Runs of each configuration; the median is reported (all are in throughput.json).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT, show_default=True,
              help="Where throughput.md and throughput.json go.")
def main(folder: Path, faces: int, repeats: int, out: Path) -> None:
    """Faces per second of folder encodes: 1 and 2 jobs, batch sizes 1/8/32, a 2-worker Dask LocalCluster."""
    from PIL import Image

    from facecodec import zoo

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="fcz-throughput-") as work:
        result = run(folder, faces, repeats, Path(work))
    first = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[0]
    with Image.open(first) as image:
        size = f"{image.width}x{image.height}"
    result["metadata"] = {
        "date": time.strftime("%Y-%m-%d"), "folder": str(folder.name), "faces": faces, "repeats": repeats,
        "size": size,
        "weights_id": zoo.default_weights_id(), "cpu": cpu_model(), "cpus": default_jobs(),
        "torch": torch.__version__, "load_before": load_before, "load_after": os.getloadavg()[0]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "throughput.md").write_text(markdown(result))
    click.echo(markdown(result))


if __name__ == "__main__":
    main()
