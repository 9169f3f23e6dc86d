"""Folders in one command: plan, keep the manifest, run the chunks on an executor, report.

``fcz encode DIR -o OUT``, ``fcz decode DIR -o OUT`` and ``fcz restore DIR -o OUT`` call :func:`run_folder`::

    walk DIR (--recursive: the tree, mirrored in OUT) -> one job per input, skipping outputs that exist
      -> chunks of files -> an executor: this process (--jobs 1), worker processes (--jobs N),
         or a Dask cluster (facecodec.runner.cluster) -> convert_chunk in each worker (facecodec.runner.convert)
      -> every result appended to OUT/fcz-manifest.csv as it arrives, the manifest rewritten whole at the end

A rerun skips every input whose output exists, so an interrupted run finishes the rest without
redoing a file; rows of finished files keep the run that made them. Nothing here imports torch
until a worker converts files.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from facecodec.bitstream import FczError
from facecodec.models.threads import using_threads
from facecodec.runner.convert import convert_chunk
from facecodec.runner.executors import Executor, InProcess, Processes, default_jobs, threads_per_job
from facecodec.runner.jobs import EXISTS, MANIFEST_NAME, OK, Conversion, Job, Result, plan
from facecodec.runner.manifest import Manifest


@dataclass
class Report:
    """What a folder run did: counts for the summary line, and the failures by input name."""

    total: int = 0
    converted: int = 0
    already: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    ignored: int = 0        # files in the folder that are not inputs of this direction (by extension)
    manifest: Path | None = None
    run: int = 0
    seconds: float = 0.0


class _Lock:
    """An exclusive lock on the output folder itself (no lock file), so two runs cannot share one manifest."""

    def __init__(self, directory: Path) -> None:
        self.fd = os.open(directory, os.O_RDONLY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise FczError(f"another fcz run is writing into {directory}; wait for it to finish") from None

    def release(self) -> None:
        os.close(self.fd)


def _remove_stale_parts(jobs: list[Job]) -> None:
    """Remove the temporary files (``.NAME.*.part``, facecodec.files.write_atomic's) that a killed run left beside
    this run's outputs: under the folder's lock no other fcz run is writing them."""
    by_folder: dict[str, set[str]] = {}
    for job in jobs:
        folder, name = os.path.split(job.target)
        by_folder.setdefault(folder, set()).add(name)
    for folder, names in by_folder.items():
        try:
            entries = os.listdir(folder)
        except OSError:
            continue
        for entry in entries:
            if entry.startswith(".") and entry.endswith(".part") and entry[1:].rsplit(".", 2)[0] in names:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, entry))


def _existing(job: Job, conversion: Conversion) -> Result:
    """A row for an output that was already there: its size, and the .fcz's bpp where a header says it."""
    from facecodec.metrics import bits_per_pixel
    from facecodec.reading import read_header

    size = os.path.getsize(job.target)
    fcz = job.target if conversion.direction == "encode" else job.source
    try:
        header = read_header(fcz)
        bpp = bits_per_pixel(os.path.getsize(fcz), header.width, header.height)
    except (FczError, OSError):
        bpp = None
    return Result(job, EXISTS, size, bpp)


def run_folder(conversion: Conversion, source_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
               recursive: bool = False, jobs: int | None = None, batch_size: int = 1,
               threads: int | None = None,
               chunk_size: int | None = None, client: Any = None,
               progress: Callable[[Result], None] | None = None,
               started: Callable[[int, int], None] | None = None) -> Report:
    """Convert every input in ``source_dir`` into ``out_dir`` (default: beside the inputs); see the module docstring.

    ``jobs`` worker processes (default: the machine's cores; 1 runs in this process) with ``threads``
    torch threads each (default: the cores shared out), or a Dask ``client`` (a ``distributed.Client``
    or a scheduler address) instead of local processes. ``batch_size`` images of one size go through the
    network together (default 1: on the CPU batches keep every file's bytes but gained no speed on 150x150
    faces on 2 cores, benchmarks/results/throughput.md; on CUDA cuDNN picks kernels by batch size, unmeasured);
    tasks are ``chunk_size`` files (default: ``max(batch_size, 4)``). ``started(to_do,
    already)`` is called once the walk is done, ``progress(result)`` for every file converted or failed.
    Raises FczError when the folders cannot be used; a file that fails is only reported.
    """
    begun = time.perf_counter()
    source = Path(source_dir)
    if not source.is_dir():
        raise FczError(f"{source} is not a directory")
    out = Path(out_dir) if out_dir is not None else source
    if out.exists() and not out.is_dir():
        raise FczError(f"{out} exists and is not a directory: a folder's outputs go into a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FczError(f"cannot create output directory {out}: {exc.strerror}") from None
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    lock = _Lock(out)
    manifest = None
    try:
        manifest = Manifest(out / MANIFEST_NAME, conversion.direction)
        report = Report(manifest=manifest.path, run=manifest.last_run + 1)
        todo, planned_errors, report.ignored = plan(source, out, conversion.suffix, conversion.direction, recursive)
        report.total = len(todo) + len(planned_errors)
        _remove_stale_parts(todo)
        manifest.open()
        chunks_todo = []
        for job in todo:
            if not conversion.force and os.path.isfile(job.target) and not os.path.islink(job.target):
                report.already += 1
                if not manifest.done(job):
                    manifest.record(_existing(job, conversion), report.run)
            else:
                chunks_todo.append(job)
        if started is not None:
            started(len(chunks_todo) + len(planned_errors), report.already)

        def take(result: Result) -> None:
            manifest.record(result, report.run)
            if result.status == OK:
                report.converted += 1
            else:
                report.failed.append((result.job.name, result.error))
            if progress is not None:
                progress(result)

        for result in planned_errors:
            take(result)
        size = chunk_size or max(batch_size, 4)
        chunks = [chunks_todo[i:i + size] for i in range(0, len(chunks_todo), size)]
        if chunks:
            with _executor(client, jobs, threads, len(chunks)) as executor:
                running = executor.run(partial(convert_chunk, conversion, batch_size=batch_size), chunks)
                try:
                    for results in running:
                        for result in results:
                            take(result)
                finally:
                    running.close()  # stops the workers now, not whenever the generator is collected
        report.seconds = time.perf_counter() - begun
        return report
    finally:
        try:
            if manifest is not None:
                manifest.close()
        finally:
            lock.release()




@contextlib.contextmanager
def _executor(client: Any, jobs: int | None, threads: int | None, chunks: int) -> Iterator[Executor]:
    if client is not None:
        from facecodec.runner.cluster import DaskExecutor

        with DaskExecutor(client) as executor:
            yield executor
        return
    jobs = jobs or default_jobs()
    if jobs > 1 and chunks > 1:
        yield Processes(min(jobs, chunks), threads or threads_per_job(jobs))
        return
    if threads is None:
        yield InProcess()
        return
    with using_threads(threads):
        yield InProcess()
