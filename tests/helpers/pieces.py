"""Bytes cut into pieces, as a socket or a stream might deliver them."""

from __future__ import annotations

from collections.abc import Iterator


def cut(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """``data`` in consecutive pieces of the given sizes (the rest in one last piece)."""
    start = 0
    for size in sizes:
        if start >= len(data):
            return
        yield data[start : start + size]
        start += size
    if start < len(data):
        yield data[start:]
