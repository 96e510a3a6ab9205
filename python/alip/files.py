"""Atomic file writes: a reader sees the old file or the new one, never a partial one.

Every writer of run directories, feature stores and committees goes through here. The
temporary file sits beside the target (same file system, so the rename is atomic) and
is named ``<path>.tmp-<12 hex><suffix>``; ``suffix`` keeps an extension for writers that
infer the format from the name (``.extxyz``, ``.png``). A failed write removes it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

__all__ = ["TMP_MARK", "atomic_path", "atomic_write", "atomic_write_text"]

#: What every temporary name contains (left-overs of a killed writer can be found by it).
TMP_MARK = ".tmp-"


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """A temporary path to write; renamed over ``path`` when the block ends without error."""
    path = os.fspath(path)
    tmp = f"{path}{TMP_MARK}{uuid.uuid4().hex[:12]}{suffix}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], durable: bool = True) -> None:
    """Write through ``write(file)`` (binary) to a temporary name, then rename over ``path``.
    ``durable`` fsyncs before the rename (survives a power loss, not only a killed process)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write(fh)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
