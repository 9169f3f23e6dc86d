"""Writing outputs safely: all or nothing, never over an input, never over a file without being told to,
never over anything that is not a regular file (a link, a FIFO, a device)."""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from facecodec.bitstream.errors import FczError


def check_output(path: Path, inputs: list[Path], overwrite: bool) -> None:
    """Refuse an output that is one of the inputs, is not a regular file, already exists (unless ``overwrite``),
    or has no directory."""
    if any(path.resolve() == p.resolve() for p in inputs):
        raise FczError(f"{path}: refusing to overwrite an input file")
    if os.path.lexists(path) and not stat.S_ISREG(path.lstat().st_mode):  # a link is refused, not followed
        raise FczError(f"{path} is not a regular file: refusing to replace it")
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
    partial write; the temporary file is removed if anything fails. A replaced file
    keeps its permission bits; a new one gets those the umask allows, as ``open`` would.
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0o022)  # the only way to read it is to set it: put it straight back
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise FczError(f"cannot write in {path.parent}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # mkstemp made it 0600
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        os.unlink(tmp)
        if isinstance(exc, OSError):  # a full disk, say: name the output, not only the input being converted
            raise FczError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
