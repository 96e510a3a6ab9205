"""Atomic file writes: a reader sees the old file or the new one, never a partial one.

Every writer of run directories, feature stores and committees goes through here. The
temporary file sits beside the target (same file system, so the rename is atomic) and
is named ``<path>.tmp-<12 hex><suffix>``; ``suffix`` keeps an extension for writers that
infer the format from the name (``.extxyz``, ``.png``). A failed write removes it.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import numpy as np

__all__ = ["TMP_MARK", "atomic_path", "atomic_write", "atomic_write_json", "atomic_write_text", "json_safe"]

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


def json_safe(o: Any) -> Any:
    """``o`` as strict JSON values: numpy to Python, NaN and ±inf to None (JSON has no NaN)."""
    if isinstance(o, dict):
        return {str(k): json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [json_safe(v) for v in o]
    if isinstance(o, (np.generic, np.ndarray)):
        return json_safe(o.tolist())
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 1) -> None:
    """Write ``obj`` to ``path`` atomically as strict JSON (:func:`json_safe`: null, never NaN)."""
    atomic_write_text(path, json.dumps(json_safe(obj), indent=indent, allow_nan=False))
