"""Rate control: a file size to fit (``--size`` / ``--bpp``), and the one search that finds the setting for it.

Files grow with the setting (quality, bit depth, a classical codec's quality) almost everywhere, so
the largest file that fits is found by bisection over the settings, in about log2(settings) encodes
(7 for 100 qualities). Every file tried is remembered, so a setting whose size breaks the rise cannot
lose a fitting file found before it. fcz's encoder (facecodec.codec) and ``fcz compare``'s classical
codecs (facecodec.compare) both search with :func:`largest_fitting`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from facecodec.bitstream import FczError


@dataclass(frozen=True)
class SizeTarget:
    """A file size to fit, in bytes or in bits per pixel of the whole file."""

    size: int | None = None
    bpp: float | None = None

    def limit(self, width: int, height: int) -> int:
        """The largest file allowed for an image of ``width`` x ``height``, in bytes."""
        # The small tolerance keeps a bpp worked out from a file's own size (8 * bytes / pixels, a float) from
        # allowing one byte less than that file.
        return self.size if self.size is not None else math.floor(self.bpp * width * height / 8 + 1e-9)

    def describe(self, size: int, width: int, height: int) -> str:
        """A file size as this target speaks: "3,000 bytes", or "0.250 bpp (703 bytes)" for a bpp target."""
        if self.bpp is None:
            return f"{size:,} bytes"
        return f"{8 * size / (width * height):.3f} bpp ({size:,} bytes)"


def size_target(size: int | None, bpp: float | None, given: bool = False) -> SizeTarget | None:
    """Check a target file size (``size`` bytes or ``bpp``); None when neither is asked for.

    ``given``: a quality or bit depth was asked for too, which a target size replaces.
    """
    if size is None and bpp is None:
        return None
    if given or (size is not None and bpp is not None):
        raise FczError("give one of a quality (or bit depth), a size and a bpp, not several")
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1):
        raise FczError(f"size must be a whole number of bytes, at least 1, got {size!r}")
    if bpp is not None and (isinstance(bpp, bool) or not isinstance(bpp, (int, float)) or not 0 < bpp < 1000):
        raise FczError(f"bpp must be a number above 0, got {bpp!r}")
    return SizeTarget(size, bpp)


def largest_fitting(settings: Sequence[int], coded: Callable[[int], bytes], limit: int) -> tuple[int, bytes, bool]:
    """(setting, its file, over_limit): the largest file not above ``limit`` bytes among ``coded(setting)`` for
    ``settings`` (ascending), by bisection. Where even the first setting's file is larger, that smallest file comes
    back with over_limit True."""
    tried: dict[int, bytes] = {}
    low, high = 0, len(settings) - 1
    while low <= high:
        middle = (low + high) // 2
        tried[settings[middle]] = data = coded(settings[middle])
        if len(data) <= limit:
            low = middle + 1
        else:
            high = middle - 1
    fitting = [s for s, data in tried.items() if len(data) <= limit]
    if not fitting:  # every step went down, so the bisection ended on the first setting
        return settings[0], tried[settings[0]], True
    best = max(fitting, key=lambda s: (len(tried[s]), s))
    return best, tried[best], False
