"""``alip compare``: strategies side by side over several seeds, with identical inputs.

Every (strategy, seed) run uses the same pool and the same labeled test set,
prepared once in ``OUT/shared/`` (so the test set is labeled once), and for a given
seed the same initial random set and the same first committee.  Each run is an
ordinary run directory ``OUT/<strategy>_seed<k>/``; an interrupted comparison is
continued by running the same command again (finished runs are kept, unfinished
ones resumed).

Outputs (docs/run_directory.md):

* ``learning_curves.csv``: strategy,seed,iteration,n_labels,energy_rmse_mev_per_atom,
  force_rmse_ev_per_ang,ev_rmse_mev_per_atom -- every run, every iteration;
* ``learning_curves_summary.csv``: per strategy and iteration the mean n_labels and,
  for each error, the mean, the sample std (ddof = 1), min and max over seeds;
* ``labels_to_target.csv``: per strategy, the labels its mean force-RMSE curve needs
  to reach random's mean final force RMSE (and the same per seed against the same
  seed's random run);
* ``learning_curves.png``: mean ± std bands of the three errors against labels.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alip.al.loop import label_missing, make_pool_and_test, open_executor, resolve_paths, run
from alip.al.run_dir import read_curve
from alip.config import STRATEGIES, Config, ConfigError, load_config
from alip.data.io import read_extxyz, write_extxyz
from alip.files import atomic_path, atomic_write_text

METRICS: tuple[str, ...] = ("energy_rmse_mev_per_atom", "force_rmse_ev_per_ang", "ev_rmse_mev_per_atom")
COLUMNS: tuple[str, ...] = ("strategy", "seed", "iteration", "n_labels") + METRICS


@dataclass
class CompareResult:
    """Where the comparison lies and what it found."""

    out: str
    rows: list[dict] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)
    labels_to_target: list[dict] = field(default_factory=list)
    plot: str | None = None


def prepare_shared(cfg: Config, shared: str, progress: bool = False) -> Config:
    """Write the pool and the labeled test set once; the config every run then uses."""
    os.makedirs(shared, exist_ok=True)
    pool_path, test_path = os.path.join(shared, "pool.extxyz"), os.path.join(shared, "test.extxyz")
    spec = cfg.oracle_spec()  # resolve 'stored' against the original pool file
    if not (os.path.exists(pool_path) and os.path.exists(test_path)):
        pool, test = make_pool_and_test(cfg)
        if not os.path.exists(test_path):
            executor, close = open_executor(cfg)
            try:
                test = label_missing(
                    test,
                    cfg,
                    os.path.join(shared, "test.db"),
                    executor,
                    log=(print if progress else (lambda _m: None)),
                    progress=progress,
                )
            finally:
                close()
            with atomic_path(test_path, ".extxyz") as tmp:
                write_extxyz(tmp, test)
        if not os.path.exists(pool_path):
            with atomic_path(pool_path, ".extxyz") as tmp:
                write_extxyz(tmp, pool)
    if not read_extxyz(pool_path):
        raise ConfigError(f"{pool_path} holds no structure")
    return cfg.replace(oracle={"spec": spec}, pool={"file": pool_path}, test={"file": test_path, "split": 0.0})


def _run_one(cfg_dict: dict) -> str:
    """Run (or resume) one comparison member in a worker process."""
    return run(Config.from_dict(cfg_dict), resume=True).run_dir


def run_dir_name(strategy: str, seed: int) -> str:
    """``<strategy>_seed<k>``."""
    return f"{strategy}_seed{seed}"


def compare(
    config: Config | dict | str | os.PathLike,
    strategies: Sequence[str] = ("qbc", "emc", "random"),
    seeds: int | Sequence[int] = 3,
    out: str | os.PathLike = "alip_compare",
    jobs: int = 1,
    progress: bool | None = None,
) -> CompareResult:
    """Run every strategy with every seed (same pool, test set and initial sets) and aggregate.

    ``seeds``: a count n (seeds run.seed … run.seed + n − 1) or explicit seeds.
    ``jobs`` runs that many runs in parallel (spawned) processes, each with
    run.threads torch threads; a script calling this with jobs > 1 needs the usual
    ``if __name__ == "__main__":`` guard of multiprocessing.
    """
    cfg = resolve_paths(load_config(config))
    progress = cfg.run.progress if progress is None else bool(progress)  # None: the config's [run] progress
    cfg = cfg.replace(run={"progress": progress})
    strategies = [s.strip() for s in strategies]
    bad = [s for s in strategies if s not in STRATEGIES]
    if not strategies or bad or len(set(strategies)) != len(strategies):
        raise ConfigError(f"strategies must be distinct names from {list(STRATEGIES)}, got {strategies}")
    if isinstance(seeds, (int, np.integer)):
        if seeds < 1:
            raise ConfigError(f"seeds must be at least 1, got {seeds}")
        seed_list = [cfg.run.seed + i for i in range(int(seeds))]
    else:
        seed_list = [int(s) for s in seeds]
        if not seed_list or len(set(seed_list)) != len(seed_list):
            raise ConfigError(f"seeds must be distinct, got {seed_list}")
    if not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs must be a positive integer, got {jobs!r}")
    out = os.path.abspath(os.fspath(out))
    os.makedirs(out, exist_ok=True)
    shared_cfg = prepare_shared(cfg, os.path.join(out, "shared"), progress)
    configs = []
    for strategy in strategies:
        for seed in seed_list:
            run_cfg = shared_cfg.replace(
                run={
                    "strategy": strategy,
                    "seed": seed,
                    "progress": progress and jobs == 1,
                    "out": os.path.join(out, run_dir_name(strategy, seed)),
                }
            )
            configs.append(run_cfg.to_dict())
    say = print if progress else (lambda _m: None)
    names = [f"{d['run']['strategy']} seed {d['run']['seed']}" for d in configs]
    if jobs == 1:
        for k, d in enumerate(configs):
            say(f"run {k + 1} of {len(configs)}: {names[k]} -> {d['run']['out']}")
            _run_one(d)
    else:
        import multiprocessing

        say(f"{len(configs)} runs, {jobs} at a time: {', '.join(names)}")
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as ex:
            for k, _ in enumerate(ex.map(_run_one, configs)):
                say(f"run {k + 1} of {len(configs)} finished: {names[k]}")
    return aggregate(out, strategies, seed_list)


# ----------------------------------------------------------------------------- aggregation
def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return repr(float(x)) if isinstance(x, (float, np.floating)) else str(x)


def _write_csv(path: str, columns: Sequence[str], rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_fmt(r.get(c)) for c in columns])
    atomic_write_text(path, buf.getvalue())


def summarise(rows: list[dict]) -> list[dict]:
    """Mean / std (ddof = 1) / min / max over seeds per (strategy, iteration)."""
    groups: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["strategy"], r["iteration"])].append(r)
    out = []
    for (strategy, iteration), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        item: dict[str, Any] = {
            "strategy": strategy,
            "iteration": iteration,
            "n_seeds": len(rs),
            "n_labels": float(np.mean([r["n_labels"] for r in rs])),
        }
        for m in METRICS:
            v = np.array([r[m] for r in rs], dtype=float)
            v = v[np.isfinite(v)]
            item[f"{m}_mean"] = float(v.mean()) if v.size else math.nan
            item[f"{m}_std"] = float(v.std(ddof=1)) if v.size > 1 else math.nan
            item[f"{m}_min"] = float(v.min()) if v.size else math.nan
            item[f"{m}_max"] = float(v.max()) if v.size else math.nan
        out.append(item)
    return out


def first_reaching(n_labels: Sequence[float], values: Sequence[float], target: float) -> float | None:
    """The smallest n_labels whose value is at most ``target`` (None if never)."""
    for n, v in zip(n_labels, values):
        if np.isfinite(v) and v <= target:
            return float(n)
    return None


def labels_to_target(
    rows: list[dict], summary: list[dict], metric: str = "force_rmse_ev_per_ang", reference: str = "random"
) -> list[dict]:
    """Labels each strategy needs to reach the reference strategy's final error.

    ``labels_mean``: on the mean curves, against the reference's mean final error.
    ``labels_per_seed``: seed by seed, against the same seed's reference run.
    """
    ref = [s for s in summary if s["strategy"] == reference]
    if not ref:
        return []
    target = ref[-1][f"{metric}_mean"]
    ref_final = {}
    for r in rows:
        if r["strategy"] == reference:
            ref_final[r["seed"]] = r  # rows are in iteration order: the last one stays
    out = []
    for strategy in sorted({s["strategy"] for s in summary}):
        mean_rows = [s for s in summary if s["strategy"] == strategy]
        need = first_reaching([s["n_labels"] for s in mean_rows], [s[f"{metric}_mean"] for s in mean_rows], target)
        per_seed = []
        for seed in sorted(ref_final):
            mine = [r for r in rows if r["strategy"] == strategy and r["seed"] == seed]
            per_seed.append(
                first_reaching([r["n_labels"] for r in mine], [r[metric] for r in mine], ref_final[seed][metric])
            )
        out.append(
            {
                "strategy": strategy,
                "metric": metric,
                "target": target,
                "reference_labels": ref[-1]["n_labels"],
                "labels_mean": need,
                "fraction_of_reference": None if need is None else need / ref[-1]["n_labels"],
                "labels_per_seed": " ".join("-" if x is None else str(int(x)) for x in per_seed),
            }
        )
    return out


def plot_curves(summary: list[dict], path: str) -> None:
    """Mean ± std bands of the test errors against the number of labels, one line per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {
        "energy_rmse_mev_per_atom": "energy RMSE (meV/atom)",
        "force_rmse_ev_per_ang": "force RMSE (eV/Å)",
        "ev_rmse_mev_per_atom": "E–V RMSE (meV/atom)",
    }
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, m in zip(axes, METRICS):
        for strategy in sorted({s["strategy"] for s in summary}):
            rs = [s for s in summary if s["strategy"] == strategy]
            n = np.array([s["n_labels"] for s in rs])
            mean = np.array([s[f"{m}_mean"] for s in rs])
            std = np.nan_to_num(np.array([s[f"{m}_std"] for s in rs]))
            if not np.isfinite(mean).any():
                continue
            (line,) = ax.plot(n, mean, marker="o", ms=3, label=f"{strategy} (n={rs[0]['n_seeds']})")
            ax.fill_between(n, np.maximum(mean - std, mean * 0.05), mean + std, color=line.get_color(), alpha=0.2)
        ax.set_xlabel("labels")
        ax.set_ylabel(titles[m])
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle("test error vs labels: mean ± std over seeds")
    fig.tight_layout()
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def aggregate(out: str, strategies: Sequence[str], seeds: Sequence[int]) -> CompareResult:
    """Collect the runs' learning curves into the comparison files (rebuilt from run files alone)."""
    rows = []
    for strategy in strategies:
        for seed in seeds:
            for r in read_curve(os.path.join(out, run_dir_name(strategy, seed))):
                rows.append({"strategy": strategy, "seed": seed, **{k: r[k] for k in COLUMNS[2:]}})
    _write_csv(os.path.join(out, "learning_curves.csv"), COLUMNS, rows)
    summary = summarise(rows)
    cols = ["strategy", "iteration", "n_seeds", "n_labels"] + [
        f"{m}_{s}" for m in METRICS for s in ("mean", "std", "min", "max")
    ]
    _write_csv(os.path.join(out, "learning_curves_summary.csv"), cols, summary)
    targets = labels_to_target(rows, summary)
    if targets:
        _write_csv(os.path.join(out, "labels_to_target.csv"), list(targets[0]), targets)
    plot = os.path.join(out, "learning_curves.png")
    plot_curves(summary, plot)
    return CompareResult(out, rows, summary, targets, plot)
