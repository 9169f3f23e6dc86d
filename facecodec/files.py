"""Writing outputs safely: all or nothing, never over an input, never over a file without being told to."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from facecodec.bitstream.errors import FczError


def check_output(path: Path, inputs: list[Path], overwrite: bool) -> None:
    """Refuse an output that is one of the inputs, already exists (unless ``overwrite``), or has no directory."""
    if any(path.resolve() == p.resolve() for p in inputs):
        raise FczError(f"{path}: refusing to overwrite an input file")
    if path.exists() and not overwrite:
        raise FczError(f"{path} exists (use --force to overwrite)")
    directory = path.parent
    if not directory.is_dir():
        raise FczError(f"output directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise FczError(f"output directory {directory} is not writable")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place.

    A reader (or a crash) sees either the old file or the whole new one, never a
    partial write; the temporary file is removed if anything fails.
    """
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise FczError(f"cannot write in {path.parent}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
