"""The folder job (facecodec.batch) on a Dask cluster: ``fcz encode DIR -o OUT --scheduler tcp://HOST:8786``.

Each chunk of files is one Dask task, ``facecodec.batch.convert_chunk``, run by whichever
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

from facecodec.batch import Conversion, Job, Result, _failed, convert_chunk
from facecodec.bitstream import FczError


def _distributed():
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
        distributed = _distributed()
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

    def run(self, conversion: Conversion, chunks: list[list[Job]], batch_size: int) -> Iterator[list[Result]]:
        distributed = _distributed()
        run_id = uuid.uuid4().hex[:12]
        futures = {self.client.submit(convert_chunk, conversion, chunk, batch_size, pure=False,
                                      key=f"fcz-{conversion.direction}-{run_id}-{i}"): chunk
                   for i, chunk in enumerate(chunks)}
        try:
            for future in distributed.as_completed(futures):
                try:
                    yield future.result()
                except Exception as exc:  # noqa: BLE001  (KilledWorker, a lost scheduler, a worker without facecodec)
                    yield _failed(futures[future], f"cluster task failed: {type(exc).__name__}: {exc}")
        finally:  # interrupted, or done: nothing of this run may keep running on the cluster
            self.client.cancel([future for future in futures if not future.done()])
