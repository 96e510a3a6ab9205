"""`alip demo`: the whole mission in one command, on the embedded defaults.

Generates Si structure families, labels them with Stillinger–Weber (no set-up),
runs query-by-committee, expected model change and random selection on the same
pool and test set with a small label budget, fits the E–V curve of each final
committee against the oracle's and writes the report.  ``quick=True`` is the
smaller budget the test suite runs.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from alip.al.compare import compare
from alip.config import Config
from alip.reports.report import build_report, subset_table, summary_table

MARKER = "alip_demo.json"
STRATEGIES: tuple[str, ...] = ("qbc", "emc", "random")

#: The demo's configuration (every other key at its default): a 400-structure pool of
#: cells of at most 16 atoms, a 40 + 12-structure test set, 16 initial labels and
#: five batches of 16 (96 labels), committees of 4 small networks.  The physical window is
#: off (max_energy_above = 0) so that the README's demo numbers stay reproducible.  The test
#: set also holds the physical MD test set ([test] md: 64-atom Si at 300/900/1500 K, vacancy,
#: liquid; generated once per oracle and cached), its errors printed per subset.
FULL: dict[str, dict[str, Any]] = {
    "run": {"n_initial": 16, "batch_size": 16, "budget": 96, "threads": 1},
    "oracle": {"spec": "sw"},
    "labeling": {"executor": "serial"},
    "pool": {"n": 400, "seed": 0, "max_atoms": 16, "random_atoms": [8, 16], "max_energy_above": 0.0},
    "test": {"n": 40, "n_volume": 12, "seed": 1000, "md": True},
    "training": {
        "n_members": 4,
        "hidden": [24, 24],
        "epochs": 120,
        "patience": 40,
        "lbfgs_steps": 40,
        "lr": 0.01,
        "lr_final": 0.001,
        "batch_size": 16,
        "energy_weighting": 0.1,
    },
    "acquisition": {"qbc_score": "force", "diversity": "fps"},
}
#: ``--quick``: the same mission at toy size (for the tests; the numbers mean little); its MD
#: test set has 2 frames per subset after a tenth of the equilibration (md_scale 0.1).
QUICK: dict[str, dict[str, Any]] = {
    "run": {"n_initial": 8, "batch_size": 8, "budget": 24, "threads": 1},
    "oracle": {"spec": "sw"},
    "labeling": {"executor": "serial"},
    "pool": {"n": 80, "seed": 0, "max_atoms": 16, "random_atoms": [8, 12], "max_energy_above": 0.0},
    "test": {"n": 12, "n_volume": 8, "seed": 1000, "md": True, "md_frames": 2, "md_scale": 0.1},
    "training": {
        "n_members": 3,
        "hidden": [12],
        "epochs": 25,
        "patience": 25,
        "lbfgs_steps": 100,
        "lr": 0.01,
        "lr_final": 0.001,
        "batch_size": 16,
        "energy_weighting": 0.1,
    },
}


@dataclass
class DemoResult:
    """Where the demo wrote its comparison and report, what it found, and how long it took."""

    out: Path
    report: Path
    summary: dict[str, Any]
    seconds: float

    def table(self) -> str:
        """The summary as plain-text tables: final errors and E–V fit, then errors per test subset."""
        subsets = format_subsets(self.summary)
        return format_table(self.summary) + (f"\n\n{subsets}" if subsets else "")


def demo_config(quick: bool = False) -> Config:
    """The validated :class:`alip.config.Config` of the demo."""
    return Config.from_dict(json.loads(json.dumps(QUICK if quick else FULL)))


def _prepare(out: Path, quick: bool, seeds: int, fresh: bool) -> None:
    """Refuse to reuse a directory the demo did not write; start over with ``fresh``."""
    marker = out / MARKER
    mode = {"quick": quick, "seeds": seeds}
    if out.exists() and any(out.iterdir()):
        if not marker.is_file():
            raise FileExistsError(f"{out} exists and was not written by `alip demo`; choose another --out")
        if fresh or json.loads(marker.read_text()) != mode:
            shutil.rmtree(out)  # a demo directory of another size: its runs cannot be resumed
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(mode))


def run_demo(
    out_dir: str | os.PathLike = "alip_demo",
    quick: bool = False,
    seeds: int | None = None,
    jobs: int | None = None,
    progress: bool = True,
    fresh: bool = False,
) -> DemoResult:
    """Generate → compare qbc/emc/random → report; prints where the report is and a summary.

    ``seeds`` defaults to 2 (1 with ``quick``); ``jobs`` (parallel runs) to the number
    of CPU cores, at most 2.  Running the demo again in the same directory resumes it
    (finished runs are kept); ``fresh`` starts over.
    """
    t0 = time.perf_counter()
    out = Path(out_dir).resolve()
    seeds = (1 if quick else 2) if seeds is None else int(seeds)
    jobs = max(1, min(2, os.cpu_count() or 1)) if jobs is None else int(jobs)
    _prepare(out, quick, seeds, fresh)
    cfg = demo_config(quick)
    (out / "demo.toml").write_text(cfg.to_toml())
    say = print if progress else (lambda *_a, **_k: None)
    say(
        f"alip demo: {len(STRATEGIES)} strategies × {seeds} seed(s), budget {cfg.run.budget} labels, "
        f"pool {cfg.pool.n} Si structures, oracle Stillinger–Weber → {out}"
    )
    n_iter = 1 + -(-(cfg.run.budget - cfg.run.n_initial) // cfg.run.batch_size)
    with _IterationProgress(out, len(STRATEGIES) * seeds * n_iter, enabled=progress and jobs > 1):
        compare(cfg, STRATEGIES, seeds, out, jobs=jobs, progress=progress and jobs == 1)
    say("building the report …")
    index = build_report(out, progress=progress, descriptor_sample=150 if quick else 400)
    summary = json.loads((index.parent / "summary.json").read_text())
    result = DemoResult(out, index, summary, time.perf_counter() - t0)
    say("")
    say(result.table())
    say(f"\nreport: {index}")
    say(
        f"finished in {result.seconds:.0f} s; rerun any part with `alip compare {out / 'demo.toml'}` "
        f"or `alip report {out}`"
    )
    return result


class _IterationProgress:
    """A progress bar fed by the iteration files the runs write (parallel runs print nothing)."""

    def __init__(self, out: Path, total: int, enabled: bool) -> None:
        self.out, self.total, self.enabled = out, total, enabled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _count(self) -> int:
        return len(list(self.out.glob("*_seed*/iterations/iter_*.json")))

    def _watch(self) -> None:
        with tqdm(total=self.total, desc="active learning", unit="iteration") as bar:
            while True:
                stopping = self._stop.wait(1.0)
                bar.update(max(0, min(self._count(), self.total) - bar.n))
                if stopping:
                    break

    def __enter__(self) -> _IterationProgress:
        if self.enabled:
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def format_table(summary: dict[str, Any]) -> str:
    """Fixed-width text of :func:`alip.reports.report.summary_table` (final labels, errors, E–V fit)."""
    rows = summary_table(summary)
    head = [
        "strategy",
        "seeds",
        "labels",
        "E RMSE meV/atom",
        "F RMSE eV/Å",
        "E–V RMSE meV/atom",
        "a0 Å",
        "B0 GPa",
        "E0 eV/atom",
    ]
    rows = [head] + [[c.replace(" ± ", "±") for c in r] for r in rows[1:]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def format_subsets(summary: dict[str, Any]) -> str:
    """Fixed-width text of :func:`alip.reports.report.subset_table` ("" without per-family errors)."""
    rows = [[c.replace(" ± ", "±") for c in r] for r in subset_table(summary)]
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "errors per test subset (final committees; md_*: frames of the oracle's own MD)\n" + "\n".join(lines)
