"""Extended XYZ: a frame index in one pass, and a vectorised parser of byte ranges.

The index pass reads the file in 4 MiB blocks, finds line ends with NumPy and walks
the frame headers (atom counts) only, so its memory is bounded by the block and 16
bytes per frame. The parser reads what featurization needs (``Lattice``, ``pbc``,
``Properties`` with ``species`` or ``Z`` and ``pos``) and converts the atom lines of
many frames at once; a frame that does not parse is reported with its line number.
"""

from __future__ import annotations

import re

import numpy as np
from ase.data import atomic_numbers

from alip.core.batch import Batch

__all__ = ["PoolFormatError", "index_extxyz", "parse_extxyz", "count_lines"]

_INDEX_BLOCK = 1 << 22  # 4 MiB read per step of the index pass: its memory bound


class PoolFormatError(ValueError):
    """The pool file cannot be split into frames (e.g. an atom-count line that is not a number)."""


def index_extxyz(path: str, block: int = _INDEX_BLOCK) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """(byte starts (n + 1,), declared atom counts (n,), frames bad already: truncated last frame)."""
    done_starts: list[np.ndarray] = []  # per block: few Python ints alive at a time
    done_counts: list[np.ndarray] = []
    n_done = 0
    bad: dict[int, str] = {}
    base, line_base, buf, eof = 0, 0, b"", False
    with open(path, "rb") as f:
        while not eof:
            starts: list[int] = []
            counts: list[int] = []
            more = f.read(block)
            eof = not more
            buf += more
            nl = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) == 10)
            line_start = np.concatenate([[0], nl + 1])
            line_end = nl
            if eof and line_start[-1] < len(buf):  # last line without a newline
                line_end = np.concatenate([nl, [len(buf)]])
            n_lines = len(line_end)
            p = 0
            while p < n_lines:
                head = buf[line_start[p] : line_end[p]]
                if not head.strip():
                    if eof and not buf[line_start[p] :].strip():
                        p = n_lines
                        break
                    if not eof:
                        break  # decide once the rest of the file is known
                    raise PoolFormatError(f"{path}: blank line {line_base + p + 1} between frames")
                try:
                    n = int(head)
                except ValueError:
                    raise PoolFormatError(
                        f"{path}: frame {n_done + len(starts)} (line {line_base + p + 1}) should start with its atom "
                        f"count, found {head[:60].decode(errors='replace')!r}; the file cannot be split into "
                        f"frames past this point"
                    ) from None
                if n < 0:
                    raise PoolFormatError(
                        f"{path}: frame {n_done + len(starts)} (line {line_base + p + 1}) declares {n} atoms"
                    )
                if p + n + 2 > n_lines:
                    if eof:
                        got = max(n_lines - p - 2, 0)
                        bad[n_done + len(starts)] = f"truncated: declares {n} atoms, the file ends after {got}"
                        starts.append(base + int(line_start[p]))
                        counts.append(n)
                        p = n_lines
                    break
                starts.append(base + int(line_start[p]))
                counts.append(n)
                p += n + 2
            if eof:
                starts.append(base + len(buf))
            done_starts.append(np.array(starts, dtype=np.int64))
            done_counts.append(np.array(counts, dtype=np.int64))
            n_done += len(counts)
            if eof:
                break
            cut = int(line_start[p]) if p < len(line_start) else len(buf)
            base += cut
            line_base += p
            buf = buf[cut:]
    return np.concatenate(done_starts), np.concatenate(done_counts), bad


# ----------------------------------------------------------------------------- extxyz: parsing
_KV = re.compile(rb'([A-Za-z_][^\s=]*)\s*(?:=\s*("(?:[^"\\]|\\.)*"|\{[^}]*\}|\[[^\]]*\]|[^\s"]+))?')
_DEFAULT_PROPS = b"species:S:1:pos:R:3"
_TRUE = {b"T", b"TRUE", b"1"}
_FALSE = {b"F", b"FALSE", b"0"}


def _strip(value: bytes) -> bytes:
    if value[:1] in (b'"', b"{", b"["):
        value = value[1:-1]
    return value.replace(b",", b" ")


def _parse_comment(line: bytes) -> tuple[bytes | None, bytes | None, bytes]:
    """Raw (Lattice, pbc, Properties) values of an extxyz comment line (None when absent)."""
    lattice = pbc = None
    props = _DEFAULT_PROPS
    for key, value in _KV.findall(line):
        k = key.lower()
        if k == b"lattice":
            lattice = _strip(value)
        elif k == b"pbc":
            pbc = _strip(value)
        elif k == b"properties":
            props = _strip(value)
    return lattice, pbc, props


_PBC_CACHE: dict[bytes, np.ndarray] = {}


def _parse_pbc(value: bytes) -> np.ndarray:
    if value not in _PBC_CACHE:
        flags = value.upper().split()
        if len(flags) != 3 or any(f not in _TRUE | _FALSE for f in flags):
            raise ValueError(f"pbc={value.decode(errors='replace')!r} is not three T/F flags")
        _PBC_CACHE[value] = np.array([f in _TRUE for f in flags])
    return _PBC_CACHE[value]


def _parse_lattice(value: bytes) -> np.ndarray:
    vals = value.split()
    if len(vals) != 9:
        raise ValueError(f"Lattice has {len(vals)} numbers, expected 9")
    return np.array(vals).astype(np.float64).reshape(3, 3)


def _columns(props: bytes) -> tuple[int, int, bool, int]:
    """(number of columns, species/Z column, whether it is Z, first pos column) of a Properties string."""
    parts = props.split(b":")
    if len(parts) % 3:
        raise ValueError(f"Properties={props.decode(errors='replace')} is not name:type:count triplets")
    col, species, is_z, pos = 0, -1, False, -1
    for name, kind, n in zip(parts[0::3], parts[1::3], parts[2::3]):
        width = int(n)
        if name.lower() == b"species" and kind == b"S":
            species, is_z = col, False
        elif name == b"Z" and kind == b"I" and species < 0:
            species, is_z = col, True
        elif name == b"pos" and width == 3:
            pos = col
        col += width
    if species < 0 or pos < 0:
        raise ValueError(f"Properties={props.decode(errors='replace')} lacks species (or Z) and pos:R:3")
    return col, species, is_z, pos


def _symbols_to_numbers(tokens: np.ndarray) -> np.ndarray:
    uniq, inverse = np.unique(tokens, return_inverse=True)
    z = np.empty(len(uniq), dtype=np.int64)
    for i, s in enumerate(uniq):
        name = s.decode(errors="replace")
        if name not in atomic_numbers:
            raise ValueError(f"unknown element symbol {name!r}")
        z[i] = atomic_numbers[name]
    return z[inverse]


def _parse_atoms(lines: list[bytes], props: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(positions (n, 3), numbers (n,)) of atom lines sharing one Properties layout (vectorised)."""
    ncol, scol, is_z, pcol = _columns(props)
    tokens = b" ".join(lines).split()
    if len(tokens) != len(lines) * ncol:
        raise ValueError(f"expected {ncol} columns per atom line ({props.decode(errors='replace')})")
    table = np.array(tokens).reshape(len(lines), ncol)
    try:
        positions = table[:, pcol : pcol + 3].astype(np.float64)
    except ValueError:
        raise ValueError("a position is not a number") from None
    # a line with too few tokens followed by one with too many shifts a number into the
    # species column, which is then not an element: caught here, then located per frame
    numbers = table[:, scol].astype(np.int64) if is_z else _symbols_to_numbers(table[:, scol])
    if is_z and len(numbers) and (numbers.min() < 1 or numbers.max() > 118):
        raise ValueError("atomic number outside 1..118 in the Z column")
    return positions, numbers


def _locate(body: list[bytes], props: bytes, line0: int, exc: Exception) -> str:
    """Reason naming the first atom line (1-based file line number) that does not parse."""
    for i, line in enumerate(body):
        try:
            _parse_atoms([line], props)
        except ValueError as err:
            return f"line {line0 + i}: {err}: {line[:80].decode(errors='replace')!r}"
    return f"atom lines from line {line0}: {exc}"


def parse_extxyz(data: bytes, first_frame: int, first_line: int) -> Batch:
    """Parse whole frames from ``data`` (a byte range of the file starting at a frame)."""
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the file's final newline
    metas, bodies, bad = [], [], {}
    i, fid = 0, first_frame
    while i < len(lines) and lines[i].strip():
        n = int(lines[i])
        body = lines[i + 2 : i + 2 + n]
        try:
            if len(body) < n:
                raise ValueError(f"truncated: declares {n} atoms, the file ends after {len(body)}")
            metas.append((fid, n, i, *_parse_comment(lines[i + 1])))
            bodies.append(body)
        except ValueError as exc:
            bad[fid] = f"line {first_line + i + 2}: {exc}"
        i += n + 2
        fid += 1
    # vectorised over runs of frames sharing one Properties string; per frame on error
    parsed: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    k = 0
    while k < len(metas):
        j = k
        while j < len(metas) and metas[j][5] == metas[k][5]:
            j += 1
        try:
            pos, num = _parse_atoms([ln for b in bodies[k:j] for ln in b], metas[k][5])
            off = np.concatenate([[0], np.cumsum([m[1] for m in metas[k:j]])])
            for q in range(k, j):
                parsed[q] = (pos[off[q - k] : off[q - k + 1]], num[off[q - k] : off[q - k + 1]])
        except ValueError:
            for q in range(k, j):
                try:
                    parsed[q] = _parse_atoms(bodies[q], metas[q][5])
                except ValueError as exc:
                    bad[metas[q][0]] = _locate(bodies[q], metas[q][5], first_line + metas[q][2] + 3, exc)
        k = j
    good = [q for q in range(len(metas)) if q in parsed]
    cells = np.zeros((len(good), 3, 3))
    pbcs = np.zeros((len(good), 3), dtype=bool)
    lat = [g for g, q in enumerate(good) if metas[q][3] is not None]
    try:
        toks = [metas[good[g]][3].split() for g in lat]
        if any(len(t) != 9 for t in toks):
            raise ValueError("a Lattice without 9 numbers")
        cells[lat] = np.array([x for t in toks for x in t]).astype(np.float64).reshape(-1, 3, 3)
    except ValueError:  # per frame, to name the bad one
        for g in lat:
            try:
                cells[g] = _parse_lattice(metas[good[g]][3])
            except ValueError as exc:
                bad[metas[good[g]][0]] = f"frame at line {first_line + metas[good[g]][2] + 1}: {exc}"
    for g, q in enumerate(good):
        try:
            pbcs[g] = (metas[q][3] is not None) if metas[q][4] is None else _parse_pbc(metas[q][4])
        except ValueError as exc:
            bad[metas[q][0]] = f"frame at line {first_line + metas[q][2] + 1}: {exc}"

    frames = Batch(
        np.array([metas[q][0] for q in good], dtype=np.int64),
        np.array([metas[q][1] for q in good], dtype=np.int64),
        np.concatenate([parsed[q][0] for q in good]) if good else np.zeros((0, 3)),
        np.concatenate([parsed[q][1] for q in good]) if good else np.zeros(0, dtype=np.int64),
        cells,
        pbcs,
        bad,
    )
    if bad:
        frames = frames.select(~np.isin(frames.frame_ids, np.fromiter(bad, dtype=np.int64)))
    return frames


def count_lines(path: str, stop: int, block: int = _INDEX_BLOCK) -> int:
    """Newlines in the first ``stop`` bytes of a file."""
    n = 0
    with open(path, "rb") as f:
        while stop > 0:
            data = f.read(min(block, stop))
            if not data:
                break
            n += data.count(b"\n")
            stop -= len(data)
    return n
