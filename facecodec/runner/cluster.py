"""A folder run on a Dask cluster: ``fcz encode DIR -o OUT --scheduler tcp://HOST:8786``.

Each chunk of files is one Dask task (facecodec.runner.convert.convert_chunk), run by whichever
worker the scheduler picks. The worker reads the inputs and writes the outputs itself, at
the paths this process planned (absolute paths), so every worker must see DIR and OUT at
the same paths, i.e. on shared storage mounted alike; only the small results (sizes,
errors) travel back. This process gathers them into the same manifest as a local run,
so an interrupted cluster run resumes like any other, locally or on the cluster.

Dask retries a task whose worker died (by default up to 3 times); a chunk that still
fails, or that the cluster cannot run at all, is reported file by file with the reason,
and the other chunks go on. Needs ``pip install 'facecodec[cluster]'`` (dask.distributed)
here and, with the same facecodec and weights, on every worker.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from facecodec.bitstream import FczError
from facecodec.runner.executors import Task
from facecodec.runner.jobs import Job, Result, failed


def dask_distributed():
    """The dask.distributed module, or FczError saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise FczError("running on a Dask cluster needs dask.distributed: pip install 'facecodec[cluster]'") from None
    return distributed


class DaskExecutor:
    """Chunks as tasks on a Dask cluster, given a ``distributed.Client`` or a scheduler's address.

    A client made here from an address is closed afterwards; a client passed in stays open.
    """

    def __init__(self, client: Any, timeout: float = 30) -> None:
        distributed = dask_distributed()
        self.owned = isinstance(client, str)
        if self.owned:
            try:
                client = distributed.Client(client, timeout=timeout)
            except (OSError, TimeoutError, ValueError) as exc:
                raise FczError(f"cannot reach the Dask scheduler at {client}: {exc}") from None
        self.client = client

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self.owned:
            self.client.close()

    def run(self, task: Task, chunks: list[list[Job]]) -> Iterator[list[Result]]:
        distributed = dask_distributed()
        run_id = uuid.uuid4().hex[:12]
        futures = {self.client.submit(task, chunk, pure=False, key=f"fcz-{run_id}-{i}"): chunk
                   for i, chunk in enumerate(chunks)}
        try:
            for future in distributed.as_completed(futures):
                try:
                    yield future.result()
                except Exception as exc:  # noqa: BLE001  (KilledWorker, a lost scheduler, a worker without facecodec)
                    yield failed(futures[future], f"cluster task failed: {type(exc).__name__}: {exc}")
        finally:  # interrupted, or done: nothing of this run may keep running on the cluster
            self.client.cancel([future for future in futures if not future.done()])
