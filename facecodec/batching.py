"""Grouping images of one size into network batches, so that memory stays bounded."""
from __future__ import annotations

from typing import Callable, Hashable, Sequence, TypeVar

Item = TypeVar("Item")
BATCH_PIXELS = 1 << 20  # at most this many pixels per batched network pass (one image alone may have more)


def batches(items: Sequence[Item], key: Callable[[Item], Hashable], pixels: Callable[[Item], int],
            batch_size: int) -> list[list[Item]]:
    """``items`` in groups of equal ``key`` (images of one size stack into one tensor), each at most ``batch_size``
    items and, past its first, at most ``BATCH_PIXELS`` pixels (``pixels(item)`` each); in the order groups fill."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    open_groups: dict[Hashable, list[Item]] = {}
    full: list[list[Item]] = []
    for item in items:
        group = open_groups.setdefault(key(item), [])
        group.append(item)
        if len(group) >= max(1, min(batch_size, BATCH_PIXELS // max(1, pixels(item)))):
            full.append(open_groups.pop(key(item)))
    return full + list(open_groups.values())
