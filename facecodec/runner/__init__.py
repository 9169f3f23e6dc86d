"""Folder runs: every file of a folder through the codec, in worker processes or on a Dask cluster, with a manifest.

    >>> from facecodec.runner import encode_folder
    >>> report = encode_folder("faces/", "coded/", quality=30, jobs=2)   # fcz encode faces/ -o coded/ -q 30 -j 2

The modules, in the order a run uses them: ``jobs`` (what to do to which files: the walk), ``manifest``
(``OUT/fcz-manifest.csv``), ``folder`` (the run: plan, executor, report), ``executors`` and ``cluster`` (where
chunks run), ``convert`` (one chunk in a worker: read, the codec's batch path, write).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from facecodec.bitstream import FczError
from facecodec.image_io import DEFAULT_MAX_PIXELS, FORMAT_SUFFIXES
from facecodec.runner.jobs import ERROR, EXISTS, MANIFEST_NAME, OK, Conversion, Result

if TYPE_CHECKING:
    from facecodec.runner.folder import Report

# A run's machinery (worker processes, executors, the manifest) loads when a folder run starts, not with the
# command line: a one-file `fcz decode` never needs it.
_RUN = ("Report", "run_folder")


def __getattr__(name: str) -> Any:
    if name in _RUN:
        from facecodec.runner import folder

        return getattr(folder, name)
    raise AttributeError(f"module 'facecodec.runner' has no attribute {name!r}")

__all__ = ["ERROR", "EXISTS", "MANIFEST_NAME", "OK", "Conversion", "Report", "Result", "decode_folder",
           "encode_folder", "output_format", "restore_folder", "restored_suffix", "run_folder"]


def encode_folder(source_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                  quality: int | None = None, bits: int | None = None, weights_id: str | None = None,
                  device: str = "auto", max_pixels: int | None = DEFAULT_MAX_PIXELS, force: bool = False,
                  effort: int | None = None, size: int | None = None, bpp: float | None = None,
                  tile: int | None = None, **options: Any) -> Report:
    """``fcz encode DIR -o OUT``: every image in ``source_dir`` to a .fcz file in ``out_dir``.

    The settings are facecodec.encode's (``size`` / ``bpp``: each file at the best setting that fits).
    ``options`` are :func:`run_folder`'s: ``recursive``, ``jobs``, ``batch_size``, ``threads``, ``client``
    (a ``distributed.Client`` or a scheduler address), ``progress``, ...
    """
    from facecodec.codec import encode_settings

    settings = encode_settings(quality, bits, weights_id, effort, size, bpp, tile)
    conversion = Conversion("encode", ".fcz", settings, device=device, max_pixels=max_pixels, force=force)
    from facecodec.runner.folder import run_folder

    return run_folder(conversion, source_dir, out_dir, **options)


def decode_folder(source_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                  fmt: str = "PNG", quality: int | None = None, device: str = "auto",
                  max_pixels: int | None = DEFAULT_MAX_PIXELS, force: bool = False, reduce: int = 0,
                  **options: Any) -> Report:
    """``fcz decode DIR -o OUT``: every .fcz file in ``source_dir`` to an image (``fmt``: PNG, JPEG, WEBP, TIFF,
    BMP; ``quality`` for JPEG and WebP) in ``out_dir``. ``options`` as for :func:`encode_folder`."""
    fmt = output_format(fmt)
    conversion = Conversion("decode", FORMAT_SUFFIXES[fmt], device=device, max_pixels=max_pixels, fmt=fmt,
                            save_quality=quality, force=force, reduce=reduce)
    from facecodec.runner.folder import run_folder

    return run_folder(conversion, source_dir, out_dir, **options)


def restore_folder(source_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *, task: str,
                   scale: int | None = None, fmt: str = "PNG", quality: int | None = None, device: str = "auto",
                   max_pixels: int | None = DEFAULT_MAX_PIXELS, force: bool = False, **options: Any) -> Report:
    """``fcz restore DIR -o OUT --task TASK``: every image in ``source_dir`` restored (facecodec.restoration) to
    ``NAME-TASK.png`` (or ``fmt``) in ``out_dir``. ``options`` as for :func:`encode_folder`."""
    from facecodec.damage import condition_of

    fmt = output_format(fmt)
    condition_of(task, scale)
    conversion = Conversion("restore", restored_suffix(task, scale, fmt), device=device, max_pixels=max_pixels,
                            fmt=fmt, save_quality=quality, force=force, task=task, scale=scale)
    from facecodec.runner.folder import run_folder

    return run_folder(conversion, source_dir, out_dir, **options)


def output_format(fmt: str) -> str:
    """An output format's name as Pillow spells it, or FczError naming those decode and restore write."""
    if fmt.upper() not in FORMAT_SUFFIXES:
        raise FczError(f"unknown output format {fmt!r}: use one of {', '.join(FORMAT_SUFFIXES)}")
    return fmt.upper()


def restored_suffix(task: str, scale: int | None, fmt: str) -> str:
    """What a restored file's name ends in: ``-denoise.png``, ``-superres4.png``, ..."""
    return f"-{task}{scale or ''}{FORMAT_SUFFIXES[fmt]}"
