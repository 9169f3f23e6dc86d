"""Folders in one command: walk a folder, convert every file in worker processes, batch the networks, keep a manifest.

``fcz encode DIR -o OUT``, ``fcz decode DIR -o OUT`` and ``fcz restore DIR -o OUT`` call :func:`run_folder`::

    walk DIR (--recursive: the tree, mirrored in OUT) -> one job per input, skipping outputs that exist
      -> chunks of files -> an executor: this process (--jobs 1), worker processes (--jobs N),
         or a Dask cluster (facecodec.cluster) -> convert_chunk in each worker
      -> every result appended to OUT/fcz-manifest.csv as it arrives, the manifest rewritten whole at the end

A worker reads its inputs, puts same-size images through the networks together
(``batch_size`` at a time), and writes its outputs itself (atomically, as
facecodec.files does for every output), so with Dask the workers need the
folders at the same paths (shared storage). It returns one :class:`Result` per
file; a bad file is a result with status ``error``, never an exception that
stops the others.

Each file's bytes are those ``facecodec.encode`` gives for it alone: the
networks' convolutions run on one kernel family whatever the batch size and
thread count (facecodec.numerics), quantization and entropy coding are per
image, and tests/test_batch.py checks it for both shipped models.

The manifest (CSV: input, output, bytes, bpp, status, error, run) has one row per input
(paths relative to DIR and OUT). ``status`` is ``ok`` (converted, in run ``run``),
``exists`` (the output was already there and no earlier run recorded it: not redone), or
``error`` (the one-line reason in ``error``). ``bytes`` is the output's size; ``bpp`` is the
.fcz file's bits per pixel (the output's for encode, the input's for decode). A rerun
skips every input whose output exists, so an interrupted run finishes the rest without
redoing a file; rows of finished files keep the run that made them.

Nothing here imports torch until a worker converts files.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import os
import signal
import threading
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any, Protocol

from facecodec.bitstream import FczError
from facecodec.files import check_output, write_atomic
from facecodec.image_io import DEFAULT_MAX_PIXELS

MANIFEST_NAME = "fcz-manifest.csv"
FIELDS = ("input", "output", "bytes", "bpp", "status", "error", "run")
OK, EXISTS, ERROR = "ok", "exists", "error"
# decode's output formats (Pillow's names) and the extension each output gets
FORMAT_SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}
# Images per network pass. On the CPU batches keep every file's bytes (facecodec.numerics; measured and tested)
# but gained no speed on 150x150 faces on 2 cores (benchmarks/results/throughput.md); on CUDA cuDNN picks its
# kernels by batch size and nothing here could measure it. So one image at a time unless asked.
DEFAULT_BATCH_SIZE = {"cpu": 1, "cuda": 1}
BATCH_PIXELS = 1 << 20  # at most this many input pixels per batched network pass (one image alone may have more)


# --- what to do, to which files --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Conversion:
    """What every worker does to each file: picklable, sent along with each chunk."""

    direction: str                      # "encode", "decode" or "restore"
    suffix: str                         # the outputs' extension: ".fcz", ".png", ".jpg", ...
    quality: int | None = None          # encode: the weights' quality level
    bits: int | None = None             # encode: the seed's fixed bit depth
    weights_id: str | None = None       # encode: which weights
    effort: int | None = None           # encode: the encoder's search effort (None: the weights' default)
    target: Any = None                  # encode: a facecodec.codec.SizeTarget to fit instead of a quality
    device: str = "auto"
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    fmt: str = "PNG"                    # decode, restore: Pillow's name of the output format
    save_quality: int | None = None     # decode, restore: JPEG / WebP quality
    reduce: int = 0                     # decode: output 1 / 2^reduce of the size (facecodec.codec.decode)
    force: bool = False                 # replace existing outputs
    task: str | None = None             # restore: facecodec.damage.TASKS
    scale: int | None = None            # restore: superres's scale

    def __post_init__(self) -> None:
        if self.direction not in ("encode", "decode", "restore"):
            raise ValueError(f"direction must be 'encode', 'decode' or 'restore', not {self.direction!r}")


@dataclass(frozen=True)
class Job:
    """One input and its output. ``name`` (relative to the input folder) is the manifest's key."""

    name: str
    source: str   # absolute path, as workers open it
    output: str   # relative to the output folder
    target: str   # absolute path of the output


@dataclass
class Result:
    job: Job
    status: str                          # ok, exists or error
    size: int | None = None              # bytes of the output
    bpp: float | None = None             # of the .fcz file
    error: str = ""                      # one line, for status error
    warnings: list[str] = field(default_factory=list)


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


def input_suffixes(direction: str) -> set[str]:
    """File extensions a folder walk takes: every image format Pillow opens for encode and restore, .fcz for decode."""
    if direction == "decode":
        return {".fcz"}
    from PIL import Image

    Image.init()
    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN and fmt != "FCZ"}


def plan(source_dir: Path, out_dir: Path, suffix: str, direction: str,
         recursive: bool = False) -> tuple[list[Job], list[Result], int]:
    """Walk ``source_dir`` -> (jobs in sorted order, errors found while planning, number of files ignored).

    Hidden files and folders (a leading '.') are skipped, and so is ``out_dir`` when it lies inside
    ``source_dir``. Two inputs that would write the same output (``a.jpg`` and ``a.png``) are an error for
    the second one: nothing is overwritten by a namesake.
    """
    accepted = input_suffixes(direction)
    source_dir, out_dir = Path(os.path.abspath(source_dir)), Path(os.path.abspath(out_dir))
    jobs: list[Job] = []
    errors: list[Result] = []
    ignored = 0
    owners: dict[str, str] = {}
    for folder, dirs, files in os.walk(source_dir):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d) != out_dir) if recursive else []
        for name in sorted(files):
            path = here / name
            if name.startswith(".") or name == MANIFEST_NAME:  # hidden, or a manifest (of this run or another)
                continue
            if direction == "restore" and name.endswith(suffix):  # restored beside its input by an earlier run
                continue
            if path.suffix.lower() not in accepted:
                ignored += path.suffix.lower() != suffix  # outputs written beside their inputs are not "ignored"
                continue
            relative = path.relative_to(source_dir)
            output = relative.with_name(relative.stem + suffix).as_posix()
            job = Job(relative.as_posix(), str(path), output, str(out_dir / output))
            if output in owners:
                errors.append(Result(job, ERROR, error=f"same output {output} as {owners[output]}: rename one of them"))
                continue
            owners[output] = job.name
            jobs.append(job)
    return jobs, errors, ignored


# --- the manifest -------------------------------------------------------------------------------------------------

class Manifest:
    """``OUT/fcz-manifest.csv``: one row per input, appended as results arrive, rewritten whole at start and end.

    A process killed mid-append leaves at most one cut-off last line, which loading drops; a
    later row for the same input replaces an earlier one. The whole-file rewrites are atomic
    (facecodec.files.write_atomic).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, dict[str, str]] = self.load(path)
        self._file: io.TextIOBase | None = None

    @staticmethod
    def load(path: Path) -> dict[str, dict[str, str]]:
        try:
            with open(path, encoding="utf-8", newline="") as f:
                text = f.read()
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise FczError(f"cannot read the manifest {path}: {exc}") from None
        records = list(csv.reader(io.StringIO(text)))
        if text and not text.endswith("\n") and records:
            records.pop()  # cut off by a kill in the middle of an append
        if not records or tuple(records[0][:len(FIELDS)]) != FIELDS:
            raise FczError(f"{path} is not a manifest fcz wrote (its first line should be {','.join(FIELDS)}); "
                           f"move it away")
        rows = {}
        for record in records[1:]:
            if len(record) >= len(FIELDS):
                rows[record[0]] = dict(zip(FIELDS, record))
        return rows

    @property
    def last_run(self) -> int:
        return max((int(row["run"]) for row in self.rows.values() if row["run"].isdigit()), default=0)

    def done(self, job: Job) -> bool:
        row = self.rows.get(job.name)
        return row is not None and row["status"] in (OK, EXISTS) and row["output"] == job.output

    def _text(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(FIELDS)
        for name in sorted(self.rows):
            writer.writerow([self.rows[name][f] for f in FIELDS])
        return buffer.getvalue()

    def open(self) -> None:
        write_atomic(self.path, self._text().encode())
        self._file = open(self.path, "a", encoding="utf-8", newline="")

    def record(self, result: Result, run: int) -> None:
        row = {"input": result.job.name, "output": result.job.output,
               "bytes": "" if result.size is None else str(result.size),
               "bpp": "" if result.bpp is None else f"{result.bpp:.4f}",
               "status": result.status, "error": result.error, "run": str(run)}
        self.rows[result.job.name] = row
        if self._file is not None:
            csv.writer(self._file, lineterminator="\n").writerow([row[f] for f in FIELDS])
            self._file.flush()  # a killed process loses nothing written so far; a power cut may

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            write_atomic(self.path, self._text().encode())


# --- one chunk of files, in a worker -------------------------------------------------------------------------------

def _reason(job: Job, exc: BaseException) -> str:
    """The one-line reason, without the input's path in front (the manifest's input column names it). An error
    facecodec does not expect (a library's TypeError on a strange file, say) keeps its type's name."""
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    elif isinstance(exc, (FczError, OSError)):
        reason = str(exc) or type(exc).__name__
    else:
        reason = f"{type(exc).__name__}: {exc}"
    for prefix in (f"{job.source}: ", f"{job.name}: "):
        reason = reason.removeprefix(prefix)
    return " ".join(reason.split())


def _prepare_target(job: Job, force: bool) -> Path:
    target = Path(job.target)
    target.parent.mkdir(parents=True, exist_ok=True)
    check_output(target, [Path(job.source)], force)
    return target


def convert_chunk(conversion: Conversion, jobs: Sequence[Job], batch_size: int = 1) -> list[Result]:
    """Convert ``jobs`` (writing each output) -> one Result per job, in order. Runs in a worker; a bad file is a
    result with status error, never an exception. Same-size images go through the network ``batch_size`` at a
    time, as they are read: memory holds one batch (at most ``BATCH_PIXELS`` pixels past its first image)."""
    import torch

    results = {job: Result(job, ERROR) for job in jobs}
    with torch.inference_mode():
        try:
            if conversion.direction == "encode":
                _encode_chunk(conversion, jobs, batch_size, results)
            elif conversion.direction == "decode":
                _decode_chunk(conversion, jobs, batch_size, results)
            else:
                _restore_chunk(conversion, jobs, batch_size, results)
        except Exception as exc:  # noqa: BLE001  (weights that cannot load, say: every file not done says why)
            for job, result in results.items():
                if result.status == ERROR and not result.error:
                    result.error = _reason(job, exc)
    return [results[job] for job in jobs]


class _Batches:
    """Collects loaded items by ``key``; runs ``convert`` on a group once it holds ``batch_size`` items or, past its
    first, ``BATCH_PIXELS`` pixels (``pixels(item)`` each), and on what is left at ``flush``."""

    def __init__(self, batch_size: int, key: Callable[[Any], Any], pixels: Callable[[Any], int],
                 convert: Callable[[list], None]) -> None:
        self.batch_size, self.key, self.pixels, self.convert = batch_size, key, pixels, convert
        self.groups: dict[Any, list] = {}

    def add(self, item: Any) -> None:
        group = self.groups.setdefault(self.key(item), [])
        group.append(item)
        if len(group) >= max(1, min(self.batch_size, BATCH_PIXELS // self.pixels(item))):
            self.convert(self.groups.pop(self.key(item)))

    def flush(self) -> None:
        while self.groups:
            self.convert(self.groups.pop(next(iter(self.groups))))


def _fail(results: dict[Job, Result], jobs: Iterable[Job], exc: BaseException) -> None:
    for job in jobs:
        results[job].error = _reason(job, exc)


def _encode_chunk(conversion: Conversion, jobs: Sequence[Job], batch_size: int, results: dict[Job, Result]) -> None:
    import torch

    from facecodec.codec import analyse, features_to_fcz, image_to_fcz, resolve_device
    from facecodec.image_io import open_image
    from facecodec.metrics import bits_per_pixel
    from facecodec.tensors import to_padded_tensor
    from facecodec.zoo import choose, load_weights

    spec, setting = choose(conversion.quality, conversion.bits, conversion.weights_id)
    effort = spec.latent.choose_effort(conversion.effort)
    weights = load_weights(spec.weights_id, resolve_device(conversion.device))

    def finish(job: Job, rgb: Any, code: Callable[[], bytes]) -> None:
        try:
            data = code()
            write_atomic(Path(job.target), data)
            results[job] = Result(job, OK, len(data), bits_per_pixel(len(data), rgb.width, rgb.height),
                                  warnings=results[job].warnings)
        except Exception as exc:  # noqa: BLE001
            _fail(results, [job], exc)

    def convert(batch: list) -> None:  # items: (job, rgb image, mode, padded tensor, pad_right, pad_bottom)
        if batch[0][3] is None:  # an image coded in tiles (``read``): alone, tile by tile
            job, rgb, mode = batch[0][:3]
            return finish(job, rgb, lambda: image_to_fcz(weights, rgb, mode, setting, effort, conversion.target))
        try:
            y = analyse(weights, torch.cat([item[3] for item in batch]).to(weights.device))
        except Exception as exc:  # noqa: BLE001  (out of memory, say)
            return _fail(results, [item[0] for item in batch], exc)
        for i, (job, rgb, mode, _, pad_right, pad_bottom) in enumerate(batch):
            finish(job, rgb, partial(features_to_fcz, weights, y[i:i + 1], setting, effort, rgb.size, mode, pad_right,
                                     pad_bottom, conversion.target))

    def read(job: Job) -> tuple:  # as facecodec.codec.encode starts one file
        rgb, mode = open_image(job.source, conversion.max_pixels)
        if weights.latent.tile_boxes(*rgb.size) is not None:  # no whole-image tensor: its tiles make their own
            return (job, rgb, mode, None, 0, 0)
        return (job, rgb, mode, *to_padded_tensor(rgb, weights.stride))

    def key(item: tuple) -> Any:  # a tiled image is a batch of its own
        return item[0] if item[3] is None else tuple(item[3].shape)

    batches = _Batches(batch_size, key, lambda item: item[1].width * item[1].height, convert)
    _read_images(conversion, jobs, results, read, batches)


def _read_images(conversion: Conversion, jobs: Sequence[Job], results: dict[Job, Result],
                 read: Callable[[Job], tuple], batches: _Batches) -> None:
    """Each job's target checked and its image read (``read(job)`` -> a batch item, its FczWarnings kept on the
    job's result) into ``batches``, then what is left of them converted; a bad file fails alone."""
    from facecodec.image_io import FczWarning

    for job in jobs:
        try:
            _prepare_target(job, conversion.force)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", FczWarning)
                item = read(job)
            results[job].warnings = [str(w.message) for w in caught if issubclass(w.category, FczWarning)]
            batches.add(item)
        except Exception as exc:  # noqa: BLE001  (a bad file: listed, and the others go on)
            _fail(results, [job], exc)
    batches.flush()


def _decode_chunk(conversion: Conversion, jobs: Sequence[Job], batch_size: int, results: dict[Job, Result]) -> None:
    import torch

    from facecodec.codec import open_fcz, parts_to_pixels, reduced_size, resolve_device, synthesise
    from facecodec.header import fcz_bytes
    from facecodec.metrics import bits_per_pixel
    from facecodec.tensors import to_image

    device = resolve_device(conversion.device)

    def finish(job: Job, header: Any, pixels: torch.Tensor, bpp: float) -> None:
        try:  # as facecodec.codec.decode finishes one file, then the CLI saves it
            size = reduced_size(header.width, header.height, conversion.reduce)
            data = image_file(to_image(pixels, *size, header.mode), conversion.fmt, conversion.save_quality)
            write_atomic(Path(job.target), data)
            results[job] = Result(job, OK, len(data), bpp)
        except Exception as exc:  # noqa: BLE001
            _fail(results, [job], exc)

    def convert(batch: list) -> None:  # items: (job, header, weights, features 1 x C x h x w, bpp)
        try:
            pixels = synthesise(batch[0][2], torch.cat([item[3] for item in batch]), conversion.reduce)
        except Exception as exc:  # noqa: BLE001
            return _fail(results, [item[0] for item in batch], exc)
        for i, (job, header, _, _, bpp) in enumerate(batch):
            finish(job, header, pixels[i:i + 1], bpp)

    batches = _Batches(batch_size, lambda item: (item[2].weights_id, tuple(item[3].shape)),
                       lambda item: item[3][0, 0].numel() * item[2].stride ** 2, convert)
    for job in jobs:
        try:  # as facecodec.codec.decode starts one file
            _prepare_target(job, conversion.force)
            data = fcz_bytes(job.source)
            header, weights, parts = open_fcz(data, device, conversion.max_pixels, conversion.reduce)
            bpp = bits_per_pixel(len(data), header.width, header.height)
            if len(parts) > 1:  # a file coded in tiles: alone, tile by tile
                finish(job, header, parts_to_pixels(weights, parts, header, conversion.reduce), bpp)
            else:
                batches.add((job, header, weights, parts[0][1](), bpp))
        except Exception as exc:  # noqa: BLE001
            _fail(results, [job], exc)
    batches.flush()


def _restore_chunk(conversion: Conversion, jobs: Sequence[Job], batch_size: int, results: dict[Job, Result]) -> None:
    import torch

    from facecodec.restoration import condition_of, load, prepare, restore_pixels
    from facecodec.tensors import to_image, to_padded_tensor

    condition = condition_of(conversion.task, conversion.scale)
    weights = load(conversion.device, condition=condition)

    def convert(batch: list) -> None:  # items: (job, rgb image, output mode, padded tensor)
        try:
            pixels = restore_pixels(weights, torch.cat([item[3] for item in batch]).to(weights.device), condition)
        except Exception as exc:  # noqa: BLE001  (out of memory, say)
            return _fail(results, [item[0] for item in batch], exc)
        for i, (job, rgb, mode, _) in enumerate(batch):
            try:  # as facecodec.restoration.restore finishes one file, then the CLI saves it
                data = image_file(to_image(pixels[i:i + 1], rgb.width, rgb.height, mode), conversion.fmt,
                                  conversion.save_quality)
                write_atomic(Path(job.target), data)
                results[job] = Result(job, OK, len(data), warnings=results[job].warnings)
            except Exception as exc:  # noqa: BLE001
                _fail(results, [job], exc)

    def read(job: Job) -> tuple:  # as facecodec.restoration.restore starts one file
        rgb, mode = prepare(job.source, conversion.task, conversion.scale, conversion.max_pixels)
        return job, rgb, mode, to_padded_tensor(rgb, weights.model.stride)[0]

    batches = _Batches(batch_size, lambda item: tuple(item[3].shape), lambda item: item[3][0, 0].numel(), convert)
    _read_images(conversion, jobs, results, read, batches)


def image_file(image: Any, fmt: str, quality: int | None = None) -> bytes:
    """The bytes of ``image`` saved as ``fmt`` (Pillow's name), at ``quality`` for JPEG and WebP."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": quality} if quality is not None else {}))
    return buffer.getvalue()


# --- executors: where chunks run ------------------------------------------------------------------------------------

class Executor(Protocol):
    """Runs ``convert_chunk`` over chunks and yields each chunk's results as they finish (any order)."""

    def run(self, conversion: Conversion, chunks: list[list[Job]], batch_size: int) -> Iterator[list[Result]]: ...


def _failed(chunk: Iterable[Job], message: str) -> list[Result]:
    return [Result(job, ERROR, error=" ".join(message.split())) for job in chunk]


class InProcess:
    """Chunks one after another in this process (``--jobs 1``), with torch's own thread count."""

    def run(self, conversion, chunks, batch_size):
        for chunk in chunks:
            yield convert_chunk(conversion, chunk, batch_size)


def _worker_start(threads: int) -> None:
    """A pool worker: Ctrl-C is the parent's to handle; ``threads`` torch threads; gone when the parent is."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def watch() -> None:  # a parent killed with SIGKILL cannot tell its pool to stop: don't linger as an orphan
        while os.getppid() == parent:
            time.sleep(0.25)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    import torch

    torch.set_num_threads(threads)


class Processes:
    """``jobs`` worker processes (spawned, so they share no torch state with this one), ``threads`` torch threads
    each. A worker that dies (a crash in an image library, the OOM killer) breaks the pool and takes the results of
    every unfinished chunk with it: those files are then run again one at a time in a one-worker pool, where the
    file running when a worker dies is the one that killed it; it is reported as an error, and the rest go on."""

    def __init__(self, jobs: int, threads: int, function: Callable[..., list[Result]] | None = None) -> None:
        self.jobs, self.threads = jobs, threads
        self.function = function or convert_chunk  # what each task runs (a test swaps in one that crashes)

    def run(self, conversion, chunks, batch_size):
        existed = {job.target for chunk in chunks for job in chunk if os.path.exists(job.target)}
        crashed = yield from self._round(conversion, chunks, batch_size, self.jobs)
        while crashed:
            # A lost chunk's surviving worker may have written some of its files before the pool broke (whole
            # files: writes are atomic). They are this run's own, so they go and are made again; a file that
            # was there before the run is never touched.
            for job in crashed:
                if job.target not in existed:
                    Path(job.target).unlink(missing_ok=True)
            again = yield from self._round(conversion, [[job] for job in crashed], batch_size, 1)
            if again:
                yield _failed(again[:1], "the worker process died converting this file")
            crashed = again[1:]

    def _round(self, conversion, chunks, batch_size, workers) -> Iterator[list[Result]]:
        """Run ``chunks`` in a fresh pool; yield their results; return the jobs of chunks lost to a dead worker,
        in submission order."""
        import multiprocessing

        pool = ProcessPoolExecutor(max_workers=min(workers, len(chunks)),
                                   mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_start, initargs=(self.threads,))
        futures = {pool.submit(self.function, conversion, chunk, batch_size): i for i, chunk in enumerate(chunks)}
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
                        yield _failed(chunks[futures[future]], f"worker failed: {exc}")
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


# --- the whole run --------------------------------------------------------------------------------------------------

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
    from facecodec.header import read_header
    from facecodec.metrics import bits_per_pixel

    size = os.path.getsize(job.target)
    fcz = job.target if conversion.direction == "encode" else job.source
    try:
        header = read_header(fcz)
        bpp = bits_per_pixel(os.path.getsize(fcz), header.width, header.height)
    except (FczError, OSError):
        bpp = None
    return Result(job, EXISTS, size, bpp)


def run_folder(conversion: Conversion, source_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
               recursive: bool = False, jobs: int | None = None, batch_size: int | None = None,
               threads: int | None = None,
               chunk_size: int | None = None, client: Any = None,
               progress: Callable[[Result], None] | None = None,
               started: Callable[[int, int], None] | None = None) -> Report:
    """Convert every input in ``source_dir`` into ``out_dir`` (default: beside the inputs); see the module docstring.

    ``jobs`` worker processes (default: the machine's cores; 1 runs in this process) with ``threads``
    torch threads each (default: the cores shared out), or a Dask ``client`` (a ``distributed.Client``
    or a scheduler address) instead of local processes. ``batch_size`` images of one size go through the
    network together (default: ``DEFAULT_BATCH_SIZE`` of the device ``conversion.device`` means here);
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
    if batch_size is None:
        from facecodec.codec import resolve_device

        batch_size = DEFAULT_BATCH_SIZE[resolve_device(conversion.device)]
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    lock = _Lock(out)
    manifest = None
    try:
        manifest = Manifest(out / MANIFEST_NAME)
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
                running = executor.run(conversion, chunks, batch_size)
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
        from facecodec.cluster import DaskExecutor

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
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield InProcess()
    finally:
        torch.set_num_threads(before)


# --- the Python API -------------------------------------------------------------------------------------------------

def encode_folder(source_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                  quality: int | None = None, bits: int | None = None, weights_id: str | None = None,
                  device: str = "auto", max_pixels: int | None = DEFAULT_MAX_PIXELS, force: bool = False,
                  effort: int | None = None, size: int | None = None, bpp: float | None = None,
                  **options: Any) -> Report:
    """``fcz encode DIR -o OUT``: every image in ``source_dir`` to a .fcz file in ``out_dir``.

    ``size`` / ``bpp``: each file at the best setting that fits (see facecodec.codec.encode).
    ``options`` are :func:`run_folder`'s: ``recursive``, ``jobs``, ``batch_size``, ``threads``, ``client``
    (a ``distributed.Client`` or a scheduler address), ``progress``, ...
    """
    from facecodec.zoo import size_target

    target = size_target(size, bpp, given=quality is not None or bits is not None)
    conversion = Conversion("encode", ".fcz", quality=quality, bits=bits, weights_id=weights_id, device=device,
                            max_pixels=max_pixels, force=force, effort=effort, target=target)
    return run_folder(conversion, source_dir, out_dir, **options)


def decode_folder(source_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                  fmt: str = "PNG", quality: int | None = None, device: str = "auto",
                  max_pixels: int | None = DEFAULT_MAX_PIXELS, force: bool = False, **options: Any) -> Report:
    """``fcz decode DIR -o OUT``: every .fcz file in ``source_dir`` to an image (``fmt``: PNG, JPEG, WEBP, TIFF,
    BMP; ``quality`` for JPEG and WebP) in ``out_dir``. ``options`` as for :func:`encode_folder`."""
    fmt = fmt.upper()
    if fmt not in FORMAT_SUFFIXES:
        raise FczError(f"unknown output format {fmt!r}: use one of {', '.join(FORMAT_SUFFIXES)}")
    conversion = Conversion("decode", FORMAT_SUFFIXES[fmt], device=device, max_pixels=max_pixels, fmt=fmt,
                            save_quality=quality, force=force)
    return run_folder(conversion, source_dir, out_dir, **options)


def restore_folder(source_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *, task: str,
                   scale: int | None = None, fmt: str = "PNG", quality: int | None = None, device: str = "auto",
                   max_pixels: int | None = DEFAULT_MAX_PIXELS, force: bool = False, **options: Any) -> Report:
    """``fcz restore DIR -o OUT --task TASK``: every image in ``source_dir`` restored (facecodec.restoration) to
    ``NAME-TASK.png`` (or ``fmt``) in ``out_dir``. ``options`` as for :func:`encode_folder`."""
    from facecodec.restoration import condition_of

    fmt = fmt.upper()
    if fmt not in FORMAT_SUFFIXES:
        raise FczError(f"unknown output format {fmt!r}: use one of {', '.join(FORMAT_SUFFIXES)}")
    condition_of(task, scale)
    conversion = Conversion("restore", restored_suffix(task, scale, fmt), device=device, max_pixels=max_pixels,
                            fmt=fmt, save_quality=quality, force=force, task=task, scale=scale)
    return run_folder(conversion, source_dir, out_dir, **options)


def restored_suffix(task: str, scale: int | None, fmt: str) -> str:
    """What a restored file's name ends in: ``-denoise.png``, ``-superres4.png``, ..."""
    return f"-{task}{scale or ''}{FORMAT_SUFFIXES[fmt]}"
