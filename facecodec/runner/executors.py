"""Where a folder run's chunks run: this process, or worker processes (facecodec.runner.cluster: a Dask cluster).

An executor takes a task, a picklable function from a chunk of jobs to their results, and yields each
chunk's results as they finish (in any order).
"""
from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Protocol

from facecodec.models.threads import set_threads
from facecodec.runner.jobs import Job, Result, failed

Task = Callable[[list[Job]], list[Result]]


class Executor(Protocol):
    """Runs ``task`` over chunks and yields each chunk's results as they finish (any order)."""

    def run(self, task: Task, chunks: list[list[Job]]) -> Iterator[list[Result]]: ...


class InProcess:
    """Chunks one after another in this process (``--jobs 1``), with torch's own thread count."""

    def run(self, task: Task, chunks: list[list[Job]]) -> Iterator[list[Result]]:
        for chunk in chunks:
            yield task(chunk)


def _worker_start(threads: int) -> None:
    """A pool worker: Ctrl-C is the parent's to handle; ``threads`` torch threads; gone when the parent is."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def watch() -> None:  # a parent killed with SIGKILL cannot tell its pool to stop: don't linger as an orphan
        while os.getppid() == parent:
            time.sleep(0.25)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    set_threads(threads)


class Processes:
    """``jobs`` worker processes (spawned, so they share no torch state with this one), ``threads`` torch threads
    each. A worker that dies (a crash in an image library, the OOM killer) breaks the pool and takes the results of
    every unfinished chunk with it: those files are then run again one at a time in a one-worker pool, where the
    file running when a worker dies is the one that killed it; it is reported as an error, and the rest go on."""

    def __init__(self, jobs: int, threads: int) -> None:
        self.jobs, self.threads = jobs, threads

    def run(self, task: Task, chunks: list[list[Job]]) -> Iterator[list[Result]]:
        existed = {job.target for chunk in chunks for job in chunk if os.path.exists(job.target)}
        crashed = yield from self._round(task, chunks, self.jobs)
        while crashed:
            # A lost chunk's surviving worker may have written some of its files before the pool broke (whole
            # files: writes are atomic). They are this run's own, so they go and are made again; a file that
            # was there before the run is never touched.
            for job in crashed:
                if job.target not in existed:
                    Path(job.target).unlink(missing_ok=True)
            again = yield from self._round(task, [[job] for job in crashed], 1)
            if again:
                yield failed(again[:1], "the worker process died converting this file")
            crashed = again[1:]

    def _round(self, task: Task, chunks: list[list[Job]], workers: int) -> Iterator[list[Result]]:
        """Run ``chunks`` in a fresh pool; yield their results; return the jobs of chunks lost to a dead worker,
        in submission order."""
        import multiprocessing

        pool = ProcessPoolExecutor(max_workers=min(workers, len(chunks)),
                                   mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_start, initargs=(self.threads,))
        futures = {pool.submit(task, chunk): i for i, chunk in enumerate(chunks)}
        lost: list[int] = []
        waiting = set(futures)
        try:
            while waiting:
                finished, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        yield future.result()
                    except BrokenProcessPool:
                        lost.append(futures[future])
                    except Exception as exc:  # noqa: BLE001  (a result that cannot come back, say)
                        yield failed(chunks[futures[future]], f"worker failed: {exc}")
        except KeyboardInterrupt:  # Ctrl-C: no new chunks; those running finish, and their results count
            _stop(pool)
            for future in waiting:
                if future.done() and not future.cancelled() and future.exception() is None:
                    yield future.result()
            raise
        except BaseException:  # the consumer stopped (GeneratorExit) or failed
            _stop(pool)
            raise
        pool.shutdown(wait=True)
        return [job for i in sorted(lost) for job in chunks[i]]


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel the chunks not started and wait for the running ones; at a second Ctrl-C, kill the workers."""
    try:
        pool.shutdown(wait=True, cancel_futures=True)
    except BaseException:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
        raise


def default_jobs() -> int:
    """The machine's cores (those this process may run on)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads_per_job(jobs: int) -> int:
    """torch threads for each of ``jobs`` worker processes: the cores shared out, so jobs x threads <= cores."""
    return max(1, default_jobs() // jobs)

