"""The run directory's files (docs/run_directory.md): their names, the iteration records
and the learning curve. The loop writes through here; compare, the report and the
tests read through here, so the layout is defined once.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import math
import os
from typing import Any

from alip.files import atomic_write_text

__all__ = [
    "CONFIG",
    "CURVE",
    "LABELS",
    "TEST",
    "TEST_LABELS",
    "ITERATIONS",
    "CHECKPOINTS",
    "COMMITTEE",
    "EXPLORE",
    "FEATURES",
    "LOG",
    "CURVE_COLUMNS",
    "iteration_path",
    "checkpoint_name",
    "write_iteration",
    "iteration_files",
    "read_iterations",
    "curve_rows",
    "write_curve",
    "read_curve",
    "is_run_dir",
]

CONFIG = "config.toml"  # the resolved configuration (resume reads it)
CURVE = "learning_curve.csv"  # one row per finished iteration (CURVE_COLUMNS), rebuilt from the records
LABELS = "labels.db"  # pool and labels (alip.data.store.LabelStore)
TEST = "test.extxyz"  # the labeled test set
TEST_LABELS = "test.db"  # the test set's own label store (written before TEST)
ITERATIONS = "iterations"  # iter_NNN.json: an iteration is finished exactly when its file exists
CHECKPOINTS = "checkpoints"  # committee_NNN.pt
COMMITTEE = "committee.pt"  # the final committee (a copy of the last checkpoint), once the run is finished
EXPLORE = "explore"  # iter_NNN.extxyz + iter_NNN.json: the explore stage's frames and summary
FEATURES = "features"  # the pool's descriptors (alip.data.feature_store), frame k = k-th pool id
LOG = "log.txt"  # human-readable log

CURVE_COLUMNS: tuple[str, ...] = (
    "iteration",
    "n_labels",
    "energy_rmse_mev_per_atom",
    "force_rmse_ev_per_ang",
    "ev_rmse_mev_per_atom",
    "wall_label_s",
    "wall_train_s",
    "wall_score_s",
    "n_failed",
)


def iteration_path(run_dir: str | os.PathLike, n: int) -> str:
    """``RUN/iterations/iter_NNN.json``."""
    return os.path.join(os.fspath(run_dir), ITERATIONS, f"iter_{n:03d}.json")


def checkpoint_name(n: int) -> str:
    """The committee of iteration ``n``, relative to the run directory."""
    return os.path.join(CHECKPOINTS, f"committee_{n:03d}.pt")


def write_iteration(run_dir: str | os.PathLike, record: dict[str, Any]) -> str:
    """Write iteration ``record["iteration"]``'s record atomically; returns its path."""
    path = iteration_path(run_dir, int(record["iteration"]))
    atomic_write_text(path, json.dumps(record, indent=1))
    return path


def is_run_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a run directory (iteration records or a learning curve)."""
    p = os.fspath(path)
    return os.path.isdir(os.path.join(p, ITERATIONS)) or os.path.isfile(os.path.join(p, CURVE))


def iteration_files(run_dir: str | os.PathLike) -> list[str]:
    """``iterations/iter_NNN.json`` paths in order; raises if the numbering has a gap."""
    files = sorted(glob.glob(os.path.join(run_dir, ITERATIONS, "iter_[0-9][0-9][0-9].json")))
    for n, path in enumerate(files):
        if path != iteration_path(run_dir, n):
            raise RuntimeError(f"{run_dir}: iteration files are not contiguous at {path}")
    return files


def read_iterations(run_dir: str) -> list[dict]:
    """Every finished iteration's record."""
    out = []
    for path in iteration_files(run_dir):
        with open(path, encoding="utf-8") as fh:
            out.append(json.load(fh))
    return out


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def curve_rows(records: list[dict]) -> list[dict]:
    """Learning-curve rows (CURVE_COLUMNS) from iteration records."""
    rows = []
    for r in records:
        err, wall = r["errors"], r["wall_s"]
        rows.append(
            {
                "iteration": r["iteration"],
                "n_labels": r["n_labels"],
                "energy_rmse_mev_per_atom": err["energy_rmse_mev_per_atom"],
                "force_rmse_ev_per_ang": err["force_rmse_ev_per_ang"],
                "ev_rmse_mev_per_atom": err.get("ev_rmse_mev_per_atom"),
                "wall_label_s": wall["label"],
                "wall_train_s": wall["train"],
                "wall_score_s": wall["score"],
                "n_failed": r.get("n_failed"),
            }
        )
    return rows


def write_curve(run_dir: str) -> list[dict]:
    """Rebuild ``learning_curve.csv`` from the iteration files; returns the rows."""
    rows = curve_rows(read_iterations(run_dir))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CURVE_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in CURVE_COLUMNS])
    atomic_write_text(os.path.join(run_dir, CURVE), buf.getvalue())
    return rows


def read_curve(run_dir: str) -> list[dict]:
    """``learning_curve.csv`` as dicts of numbers (empty cells are NaN)."""
    with open(os.path.join(run_dir, CURVE), encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    conv = lambda k, v: (
        int(v)
        if k in ("iteration", "n_labels", "n_failed") and v  # noqa: E731
        else (float(v) if v else math.nan)
    )
    return [{k: conv(k, v) for k, v in row.items()} for row in rows]
