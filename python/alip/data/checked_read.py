"""Structures read and checked before anything is paid for.

The checks are those of ``alip featurize`` (:mod:`alip.data.pool_reader` and
:func:`alip.data.featurize.featurize_frames`): every frame parsed, finite positions
and cell, a cell vector on every periodic axis, elements the descriptor knows, and
whatever the compiled core refuses (overlapping atoms, a degenerate cell).  A bad
frame is named by file, frame index and line; ``on_bad="skip"`` leaves such frames
out instead of stopping.
"""

from __future__ import annotations

import io
import os
import re
from typing import Any

from ase import Atoms

from alip.core.batch import Batch
from alip.data.featurize import ON_BAD, featurize_frames
from alip.data.pool_extxyz import PoolFormatError, count_lines
from alip.data.pool_reader import check_frames, chunk_bounds, open_pool

__all__ = ["BadInputError", "read_checked", "check_structures"]

_ATOM = re.compile(r"position of atom (\d+)")
_SHOWN = 5  # bad frames named in one message


class BadInputError(ValueError):
    """Input structures that cannot be used (with ``on_bad="stop"``)."""


def _check_on_bad(on_bad: str) -> None:
    if on_bad not in ON_BAD:
        raise ValueError(f"on_bad must be one of {list(ON_BAD)}, got {on_bad!r}")


def _raise(what: str, described: list[str], n_bad: int) -> None:
    more = f" (and {n_bad - len(described)} more)" if n_bad > len(described) else ""
    raise BadInputError(f"{what}: {n_bad} unusable frame(s){more}: " + "; ".join(described))


def _line_of(path: str, reader: Any, frame: int, reason: str) -> int:
    """1-based line of the bad atom (NaN position) or of the frame's atom-count line."""
    line = count_lines(path, reader.ref(frame, frame + 1).lo) + 1
    m = _ATOM.search(reason)
    return line + 2 + int(m.group(1)) if m else line


def read_checked(
    path: str | os.PathLike,
    acsf: Any,
    on_bad: str = "stop",
    what: str | None = None,
    allow_nonperiodic: bool = False,
) -> tuple[list[Atoms], dict[int, str]]:
    """(usable structures as ase.Atoms in file order, {frame: reason} of the unusable ones).

    ``path``: extxyz or ASE ``*.db``. With ``on_bad="stop"`` any unusable frame raises
    :class:`BadInputError` naming up to five of them with their lines; ``allow_nonperiodic``
    accepts frames without a cell as clusters.
    """
    _check_on_bad(on_bad)
    path = os.fspath(path)
    what = what or path
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: no such file: {path}")
    try:
        reader = open_pool(path, allow_nonperiodic=allow_nonperiodic)
        bad = dict(reader.index_bad)
        for frames in reader.iter_chunks(chunk_bounds(reader.counts, 1024, 1 << 16)):
            frames, _ = featurize_frames(acsf, frames)
            bad.update(frames.bad)
    except PoolFormatError as exc:
        raise BadInputError(f"{what}: {exc}") from None
    if bad and on_bad == "stop":
        shown = sorted(bad)[:_SHOWN]
        if reader.kind == "extxyz":
            described = [f"frame {k} (line {_line_of(path, reader, k, bad[k])}): {bad[k]}" for k in shown]
        else:
            described = [f"row {k + 1} (frame {k}): {bad[k]}" for k in shown]
        _raise(what, described, len(bad))
    good = [k for k in range(reader.n_frames) if k not in bad]
    return _read_frames(path, reader, good, what), bad


def elements_in(path: str | os.PathLike, what: str | None = None) -> list[int]:
    """Sorted atomic numbers present in an extxyz file or ASE ``*.db`` (a format error names the file)."""
    path = os.fspath(path)
    what = what or path
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: no such file: {path}")
    found: set[int] = set()
    try:
        reader = open_pool(path)
        for frames in reader.iter_chunks(chunk_bounds(reader.counts, 1024, 1 << 16)):
            found.update(int(z) for z in set(frames.numbers.tolist()))
    except PoolFormatError as exc:
        raise BadInputError(f"{what}: {exc}") from None
    return sorted(found)


def _read_frames(path: str, reader: Any, frames: list[int], what: str) -> list[Atoms]:
    """The frames ``frames`` as ase.Atoms (with info and any labels) read by ASE."""
    from ase.io import read

    if not frames:
        return []
    try:
        if reader.kind == "db":
            everything = read(path, index=":")
            return [everything[k] for k in frames]
        with open(path, "rb") as fh:
            parts = []
            for k in frames:
                ref = reader.ref(k, k + 1)
                fh.seek(ref.lo)
                parts.append(fh.read(ref.hi - ref.lo).rstrip(b"\n") + b"\n")
        out = read(io.StringIO(b"".join(parts).decode()), index=":", format="extxyz")
    except Exception as exc:  # noqa: BLE001 - ASE's reader errors vary; name the file
        raise BadInputError(f"{what}: ASE cannot read the checked frames: {type(exc).__name__}: {exc}") from None
    return out if isinstance(out, list) else [out]


def check_structures(
    structures: list[Atoms],
    acsf: Any,
    on_bad: str = "stop",
    what: str = "structures",
    allow_nonperiodic: bool = False,
) -> tuple[list[Atoms], dict[int, str]]:
    """The same checks on structures in memory: (usable ones, {index: reason})."""
    _check_on_bad(on_bad)
    frames, _ = featurize_frames(acsf, check_frames(Batch.from_atoms(structures), allow_nonperiodic))
    bad = dict(frames.bad)
    if bad and on_bad == "stop":
        _raise(what, [f"structure {k}: {bad[k]}" for k in sorted(bad)[:_SHOWN]], len(bad))
    return [a for k, a in enumerate(structures) if k not in bad], bad
