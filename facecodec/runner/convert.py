"""One chunk of a folder run, in a worker: read each input, put the chunk through the codec's batch path, write.

The codec itself is ``facecodec.codec.encode_many`` / ``decode_many`` and ``facecodec.restoration.restore_many``:
this module only does the files. A worker writes its outputs itself (atomically, as facecodec.files does for every
output), so with Dask the workers need the folders at the same paths (shared storage). A bad file is a result
with status ``error``, never an exception that stops the others.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from facecodec.files import check_output, write_atomic
from facecodec.image_io import FczWarning, image_file
from facecodec.messages import reason
from facecodec.metrics import bits_per_pixel
from facecodec.runner.jobs import ERROR, OK, Conversion, Job, Result


def convert_chunk(conversion: Conversion, jobs: Sequence[Job], batch_size: int = 1) -> list[Result]:
    """Convert ``jobs`` (writing each output) -> one Result per job, in order."""
    results = {job: Result(job, ERROR) for job in jobs}
    try:
        if conversion.direction == "encode":
            _encode(conversion, jobs, batch_size, results)
        elif conversion.direction == "decode":
            _decode(conversion, jobs, batch_size, results)
        else:
            _restore(conversion, jobs, batch_size, results)
    except Exception as exc:  # noqa: BLE001  (weights that cannot load, say: every file not done says why)
        for job, result in results.items():
            if result.status == ERROR and not result.error:
                result.error = _reason(job, exc)
    return [results[job] for job in jobs]


def _encode(conversion: Conversion, jobs: Sequence[Job], batch_size: int, results: dict[Job, Result]) -> None:
    from facecodec.codec import encode_many
    from facecodec.image_io import open_image

    read = _read(conversion, jobs, results, lambda job: open_image(job.source, conversion.max_pixels))
    coded = encode_many([image for _, image in read], conversion.settings, conversion.device, batch_size)
    for (job, (rgb, _)), data in zip(read, coded):
        _finish(results, job, data, lambda data: bits_per_pixel(len(data), rgb.width, rgb.height))


def _decode(conversion: Conversion, jobs: Sequence[Job], batch_size: int, results: dict[Job, Result]) -> None:
    from facecodec.codec import decode_many
    from facecodec.reading import fcz_bytes, read_header

    read = _read(conversion, jobs, results, lambda job: fcz_bytes(job.source))
    images = decode_many([data for _, data in read], conversion.device, conversion.max_pixels, conversion.reduce,
                         batch_size)
    for (job, data), image in zip(read, images):
        header = None if isinstance(image, Exception) else read_header(data)
        _finish(results, job, _saved(image, conversion),
                lambda _: bits_per_pixel(len(data), header.width, header.height))


def _restore(conversion: Conversion, jobs: Sequence[Job], batch_size: int, results: dict[Job, Result]) -> None:
    from facecodec.restoration import prepare, restore_many

    read = _read(conversion, jobs, results,
                 lambda job: prepare(job.source, conversion.task, conversion.scale, conversion.max_pixels))
    images = restore_many([image for _, image in read], conversion.task, conversion.scale, device=conversion.device,
                          batch_size=batch_size)
    for (job, _), image in zip(read, images):
        _finish(results, job, _saved(image, conversion), None)


def _read(conversion: Conversion, jobs: Sequence[Job], results: dict[Job, Result],
          read: Callable[[Job], Any]) -> list[tuple[Job, Any]]:
    """Each job's target checked and its input read (``read(job)``, its FczWarnings kept on the job's result) ->
    (job, what was read) for the jobs that could be; a bad file fails alone."""
    ready = []
    for job in jobs:
        try:
            target = Path(job.target)
            target.parent.mkdir(parents=True, exist_ok=True)
            check_output(target, [Path(job.source)], conversion.force)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", FczWarning)
                ready.append((job, read(job)))
            results[job].warnings = [str(w.message) for w in caught if issubclass(w.category, FczWarning)]
        except Exception as exc:  # noqa: BLE001  (a bad file: listed, and the others go on)
            results[job].error = _reason(job, exc)
    return ready


def _saved(image: Any, conversion: Conversion) -> bytes | Exception:
    """A decoded or restored image as the bytes of its output file (or the exception that stopped it)."""
    if isinstance(image, Exception):
        return image
    try:
        return image_file(image, conversion.fmt, conversion.save_quality, conversion.strip)
    except Exception as exc:  # noqa: BLE001
        return exc


def _finish(results: dict[Job, Result], job: Job, data: bytes | Exception,
            bpp: Callable[[bytes], float] | None) -> None:
    """Write one output (or record why there is none)."""
    try:
        if isinstance(data, Exception):
            raise data
        write_atomic(Path(job.target), data)
        results[job] = Result(job, OK, len(data), bpp(data) if bpp else None, warnings=results[job].warnings)
    except Exception as exc:  # noqa: BLE001
        results[job].error = _reason(job, exc)


def _reason(job: Job, exc: BaseException) -> str:
    """The one-line reason, without the input's path in front (the manifest's input column names it)."""
    text = reason(exc)
    for prefix in (f"{job.source}: ", f"{job.name}: "):
        text = text.removeprefix(prefix)
    return text
