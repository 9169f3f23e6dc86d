"""Things a user must be able to rely on: same file whatever the thread count, no partial files, checked weights."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

import facecodec
from facecodec.bitstream import FczError


def _encode_with_threads(image: np.ndarray, threads: int, **setting) -> bytes:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return facecodec.encode(image, **setting)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("setting", [{"quality": 1}, {"quality": 8}, {"bits": 6}])
def test_file_does_not_depend_on_thread_count(face, setting):
    # Byte for byte (so the symbols too), as the README says: seen on AVX2 and AVX-512 CPUs alike.
    assert _encode_with_threads(face, 1, **setting) == _encode_with_threads(face, 2, **setting)


def test_decoded_pixels_agree_across_thread_counts(face):
    data = facecodec.encode(face)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = np.asarray(facecodec.decode(data), dtype=np.int16)
        torch.set_num_threads(2)
        two = np.asarray(facecodec.decode(data), dtype=np.int16)
    finally:
        torch.set_num_threads(before)
    assert np.abs(one - two).max() <= 1  # float rounding may move a pixel by one level, never more


# Run in a fresh interpreter: sets a file size limit and lets the kernel's SIGXFSZ (which Python ignores by
# default) kill the process at the first write past it, in the middle of write_atomic, before any cleanup runs.
_KILLED_MID_WRITE = """
import resource, signal, sys
from pathlib import Path
from facecodec.files import write_atomic
target, limit = Path(sys.argv[1]), int(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
write_atomic(target, bytes(range(256)) * (limit // 128))
"""


@pytest.mark.parametrize("previous", [b"the previous output", None])
def test_a_process_killed_mid_write_leaves_no_partial_output(tmp_path, previous):
    target, limit = tmp_path / "face.fcz", 64 * 1024
    if previous is not None:
        target.write_bytes(previous)
    killed = subprocess.run([sys.executable, "-c", _KILLED_MID_WRITE, str(target), str(limit)],
                            capture_output=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert killed.returncode == -signal.SIGXFSZ, killed.stderr.decode()  # killed, not finished nor failed
    if previous is None:
        assert not target.exists()
    else:
        assert target.read_bytes() == previous
    # Nothing of the process runs after such a death, so its temporary file stays: hidden, named after the
    # target, and cut off at the limit (which shows that the kill came in the middle of the write).
    (leftover,) = (p for p in tmp_path.iterdir() if p != target)
    assert leftover.name.startswith(".face.fcz.") and leftover.name.endswith(".part")
    assert leftover.stat().st_size == limit


def test_damaged_weights_are_refused(forged_checksums, face):
    with pytest.raises(FczError, match="damaged"):
        facecodec.encode(face)
