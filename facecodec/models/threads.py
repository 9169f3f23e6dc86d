"""One thread count for every transform: torch's intra-op pool and ONNX Runtime's sessions follow it.

Folder runs give each worker process a share of the cores (facecodec.runner); a single decode leaves the
libraries' own defaults (None). torch is only told when it is already imported, or when a network loads:
setting a thread count never imports it.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

_threads: int | None = None


def threads() -> int | None:
    """The thread count set for the transforms, or None: each library's default."""
    return _threads


def set_threads(count: int | None) -> None:
    """Use ``count`` threads from now on (None: the libraries' defaults, for what starts from now)."""
    global _threads
    _threads = count
    torch = sys.modules.get("torch")
    if torch is not None and count is not None:
        torch.set_num_threads(count)


@contextlib.contextmanager
def using_threads(count: int | None) -> Iterator[None]:
    """``count`` threads inside the block, the setting before it after (torch keeps ``count`` if the block
    imported it)."""
    global _threads
    torch = sys.modules.get("torch")
    before, torch_before = _threads, torch.get_num_threads() if torch is not None else None
    set_threads(count)
    try:
        yield
    finally:
        _threads = before
        if torch_before is not None:
            torch.set_num_threads(torch_before)
