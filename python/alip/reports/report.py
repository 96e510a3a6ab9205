"""`alip report`: rebuild every figure of a run (or a comparison) from its files alone.

:func:`build_report` reads a run directory or an ``alip compare`` directory as laid out
in docs/run_directory.md (iteration jsons, learning curves, committee checkpoints,
labels.db, test.extxyz, config.toml), draws the figures of :mod:`alip.reports.plots` into
``DIR/report/`` and writes ``index.html`` (linking every image) and ``summary.json``.
Nothing comes from in-memory state of the loop, so old runs can be re-plotted.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
import time
import tomllib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase.build import bulk
from tqdm.auto import tqdm

from alip.al.run_dir import CHECKPOINTS, CONFIG, CURVE, ITERATIONS, LABELS, TEST, checkpoint_name, is_run_dir
from alip.config import Config, ConfigError
from alip.core.descriptors import ACSF
from alip.data.io import read_extxyz
from alip.data.store import LabelStore
from alip.files import atomic_write_json
from alip.models.committee import Committee
from alip.models.eos import fit_eos
from alip.models.training import read_labels
from alip.reports import plots

REPORT_DIR = "report"
#: MD stability of a run's final committee, when a script measured it (bench/explore_evidence.py)
MD_STABILITY = "md_stability.json"
_RUN_NAME = re.compile(r"^(?P<strategy>.+)_seed(?P<seed>\d+)$")


# ----------------------------------------------------------------------------- run discovery
@dataclass
class Run:
    """One run directory with its iteration records (sorted by iteration)."""

    path: Path
    strategy: str
    seed: int
    iterations: list[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.strategy} seed {self.seed}"

    @property
    def final(self) -> dict | None:
        return self.iterations[-1] if self.iterations else None

    def checkpoint(self) -> Path | None:
        """The committee of the last finished iteration that has a checkpoint file."""
        for rec in reversed(self.iterations):
            p = self.path / str(rec.get("checkpoint", checkpoint_name(int(rec["iteration"]))))
            if p.is_file():
                return p
        found = sorted((self.path / CHECKPOINTS).glob("committee_*.pt"))
        return found[-1] if found else None


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """config.toml of a run as a dict ({} when absent or unreadable)."""
    p = Path(run_dir) / CONFIG
    if not p.is_file():
        return {}
    try:
        return tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        warnings.warn(f"cannot read {p}: {exc}")
        return {}


def load_run(path: str | os.PathLike) -> Run:
    """A run's iteration records; strategy and seed from them, the config or the directory name."""
    p = Path(path)
    records = []
    for f in sorted((p / ITERATIONS).glob("iter_*.json")):
        try:
            records.append(json.loads(f.read_text()))
        except json.JSONDecodeError as exc:  # a run killed while writing: skip that record
            warnings.warn(f"skipping unreadable {f}: {exc}")
    records.sort(key=lambda r: int(r["iteration"]))
    cfg = read_config(p).get("run", {})
    m = _RUN_NAME.match(p.name)
    first = records[0] if records else {}
    strategy = first.get("strategy") or cfg.get("strategy") or (m.group("strategy") if m else p.name)
    seed = first.get("seed", cfg.get("seed", int(m.group("seed")) if m else 0))
    return Run(p, str(strategy), int(seed), records)


def find_runs(path: str | os.PathLike) -> list[Run]:
    """The run itself, or every run directory directly below a compare directory."""
    p = Path(path)
    if is_run_dir(p):
        return [load_run(p)]
    runs = [load_run(d) for d in sorted(p.iterdir()) if d.is_dir() and is_run_dir(d)]
    if not runs:
        raise FileNotFoundError(f"{p} is neither a run directory nor a directory of runs (see docs/run_directory.md)")
    return sorted(runs, key=lambda r: (plots.strategy_rank(r.strategy), r.seed))


def by_strategy(runs: list[Run]) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    for r in runs:
        out.setdefault(r.strategy, []).append(r)
    return out


# ----------------------------------------------------------------------------- learning curves
def _number(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def learning_rows(path: str | os.PathLike, runs: list[Run]) -> list[dict[str, Any]]:
    """Learning-curve records with strategy and seed: the compare CSV, else each run's CSV."""
    combined = Path(path) / "learning_curves.csv"
    rows: list[dict[str, Any]] = []
    if combined.is_file() and not is_run_dir(path):
        with open(combined, newline="") as fh:
            for r in csv.DictReader(fh):
                rows.append({k: (v if k == "strategy" else _number(v)) for k, v in r.items()})
        return rows
    for run in runs:
        f = run.path / CURVE
        if f.is_file():
            with open(f, newline="") as fh:
                for r in csv.DictReader(fh):
                    rows.append({**{k: _number(v) for k, v in r.items()}, "strategy": run.strategy, "seed": run.seed})
        else:  # fall back to the iteration records
            for rec in run.iterations:
                rows.append(
                    {
                        "strategy": run.strategy,
                        "seed": run.seed,
                        "iteration": rec["iteration"],
                        "n_labels": rec["n_labels"],
                        **rec.get("errors", {}),
                    }
                )
    return rows


# ----------------------------------------------------------------------------- test set, committee
def load_committee(path: Path) -> Committee:
    return Committee.load(path)


def read_test_set(run: Run) -> list:
    f = run.path / TEST
    return read_extxyz(f) if f.is_file() else []


def predict_test_set(committee: Committee, test: list, label: str) -> plots.TestSetPrediction:
    """Committee mean, spread and oracle labels on the test set."""
    pred = committee.predict(test)
    n = pred.n_atoms.astype(float)
    labels = [read_labels(a) for a in test]
    fams = np.array([str(a.info.get("family", "unknown")) for a in test])
    return plots.TestSetPrediction(
        label=label,
        families=fams,
        e_true=np.array([e for e, _, _ in labels]) / n,
        e_pred=pred.energies.mean(0) / n,
        e_std=pred.energy_std_per_atom(),
        atom_families=np.repeat(fams, pred.n_atoms),
        f_true=np.concatenate([f for _, f, _ in labels]),
        f_pred=pred.forces.mean(0),
        f_dev=pred.force_deviation(),
    )


# ----------------------------------------------------------------------------- E–V curve
def diamond_cells(volumes: np.ndarray | None = None, a0: float = 5.431, rel_range: float = 0.05, n: int = 15) -> list:
    """2-atom diamond cells at ``volumes`` (Å³/atom), or a0·(1 ± rel_range) in ``n`` steps."""
    a = (
        np.cbrt(8 * np.asarray(volumes, dtype=float))
        if volumes is not None
        else a0 * np.linspace(1 - rel_range, 1 + rel_range, int(n))
    )
    return [bulk("Si", "diamond", a=float(x)) for x in a]


def _fit(volumes: np.ndarray, energies: np.ndarray) -> dict[str, float] | None:
    try:
        return fit_eos(volumes, energies)
    except (ValueError, RuntimeError):  # e.g. no minimum inside the series: shown as "no EOS fit"
        return None


def model_ev(committee: Committee, cells: list, label: str) -> plots.EVSeries:
    """Committee mean ± std (per atom) over the diamond series, with the EOS fit of the mean."""
    pred = committee.predict(cells)
    e = pred.energies / pred.n_atoms
    v = np.array([c.get_volume() / len(c) for c in cells])
    mean = e.mean(0)
    return plots.EVSeries(label, v, mean, e.std(0), _fit(v, mean))


def run_oracle_spec(run_dir: str | os.PathLike) -> str | dict[str, Any] | None:
    """The oracle spec of a run (:meth:`alip.config.Config.oracle_spec`); None when its
    config has no [oracle] table, cannot be read, or replays stored labels."""
    raw = read_config(run_dir)
    if "oracle" not in raw:
        return None
    try:
        cfg = Config.from_dict(raw)
    except ConfigError as exc:
        warnings.warn(f"{Path(run_dir) / CONFIG}: {exc}")
        return None
    return None if cfg.oracle.spec == "stored" else cfg.oracle_spec()


def reference_ev(run: Run, cache: Path, min_points: int = 7) -> plots.EVSeries | None:
    """The oracle's E–V curve of diamond Si, preferring labels already in the run's files.

    With at least ``min_points`` labeled diamond volume-series structures (test set and
    label store) those are used, so no oracle is called; otherwise the run's oracle is
    evaluated on a grid (a0 = 5.431 Å ± 5 %, 15 points) and the result
    cached in ``cache`` (keyed by oracle spec and volumes) so that a DFT oracle is not
    called again when the report is rebuilt.
    """
    spec = run_oracle_spec(run.path)
    stored = stored_ev(run)
    if stored is not None and spec is not None:
        name = spec.get("type", "?") if isinstance(spec, dict) else str(spec)
        stored.label = f"oracle ({name}, stored labels)"
    if (stored is not None and len(stored.volumes) >= min_points) or spec is None:
        return stored
    cells = diamond_cells()
    v = np.array([c.get_volume() / len(c) for c in cells])
    key = json.dumps(spec, sort_keys=True)
    if cache.is_file():
        data = json.loads(cache.read_text())
        if data.get("spec") == key and len(data.get("volumes", [])) == len(v) and np.allclose(data["volumes"], v):
            e = np.array(data["energies"])
            return plots.EVSeries(f"oracle ({data['name']})", v, e, None, _fit(v, e))
    try:
        from alip.data.oracles import make_oracle

        oracle = make_oracle(spec)
        labels = [oracle.label(c) for c in cells]
    except Exception as exc:  # noqa: BLE001 - an oracle we cannot build here: use what is stored
        warnings.warn(f"cannot evaluate the oracle {spec!r} for the E–V curve: {exc}")
        return stored
    if not all(lab.ok for lab in labels):
        warnings.warn(f"the oracle failed on the E–V series: {[lab.error for lab in labels if not lab.ok][0]}")
        return stored
    e = np.array([lab.energy / len(c) for lab, c in zip(labels, cells)])
    name = getattr(oracle, "name", str(spec))
    cache.write_text(json.dumps({"spec": key, "name": name, "volumes": v.tolist(), "energies": e.tolist()}))
    return plots.EVSeries(f"oracle ({name})", v, e, None, _fit(v, e))


def stored_ev(run: Run) -> plots.EVSeries | None:
    """Oracle E–V points from labeled diamond volume-series structures of the test set and store."""
    points: dict[float, float] = {}
    structures = read_test_set(run)
    if (run.path / LABELS).is_file():
        structures += LabelStore(run.path / LABELS).structures("labeled", family="volume")
    for a in structures:
        if a.info.get("family") == "volume" and a.info.get("parent", "diamond") == "diamond":
            try:
                e, _, _ = read_labels(a)
            except ValueError:
                continue
            points[round(a.get_volume() / len(a), 6)] = e / len(a)
    if len(points) < 2:
        return None
    v = np.array(sorted(points))
    e = np.array([points[x] for x in v])
    return plots.EVSeries("oracle (stored labels)", v, e, None, _fit(v, e) if len(v) >= 5 else None)


# ----------------------------------------------------------------------------- selections, descriptors
def selections(runs: list[Run]) -> tuple[dict[str, dict[int, dict[str, float]]], dict[str, int]]:
    """Mean number of structures of each family selected per iteration, per strategy."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    n_runs: dict[str, int] = {}
    for strategy, group in by_strategy(runs).items():
        acc: dict[int, dict[str, float]] = {}
        for run in group:
            for rec in run.iterations:
                fams = rec.get("selected_families") or []
                slot = acc.setdefault(int(rec["iteration"]), {})
                for f in fams:
                    slot[f] = slot.get(f, 0.0) + 1.0 / len(group)
        if any(acc.values()):
            out[strategy] = {i: c for i, c in acc.items() if c or i < max(acc)}
            n_runs[strategy] = len(group)
    return out, n_runs


def pool_structures(run: Run) -> list:
    f = run.path / LABELS
    return LabelStore(f).structures() if f.is_file() else []


def family_groups(acsf: ACSF, structures: list) -> dict[str, np.ndarray]:
    """Per-atom descriptor values of ``structures`` split by ``info["family"]``."""
    fams = [str(a.info.get("family", "unknown")) for a in structures]
    out: dict[str, np.ndarray] = {}
    for fam in plots._ordered_families(fams):
        members = [a for a, f in zip(structures, fams) if f == fam]
        out[fam] = np.asarray(acsf.compute(members))
    return out


def iteration_groups(
    acsf: ACSF, run: Run, pool: list, sample: int = 600, max_groups: int = 12
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Descriptor values of the pool (``sample`` structures), the initial set and each selection.

    More than ``max_groups`` selecting iterations are merged into consecutive blocks.
    Returns the groups and their colors (grays, then viridis from early to late).
    """
    import matplotlib

    by_id = {int(a.info["pool_id"]): a for a in pool if "pool_id" in a.info}
    groups = {"pool (all)": np.asarray(acsf.compute(_subsample(pool, sample)))} if pool else {}
    colors = {"pool (all)": "#b5b5b5", "initial set": "#5a5a5a"}
    first = run.iterations[0] if run.iterations else {}
    initial = [by_id[i] for i in first.get("labeled_this_iteration", []) if i in by_id]
    if initial:
        groups["initial set"] = np.asarray(acsf.compute(initial))
    its = [r for r in run.iterations if r.get("selected")]
    blocks = np.array_split(np.arange(len(its)), min(len(its), max_groups)) if its else []
    cmap = matplotlib.colormaps["viridis"]
    for b, idx in enumerate(blocks):
        recs = [its[i] for i in idx]
        lo, hi = recs[0]["iteration"], recs[-1]["iteration"]
        name = f"iter {lo}" if lo == hi else f"iters {lo}–{hi}"
        chosen = [by_id[i] for r in recs for i in r["selected"] if i in by_id]
        if chosen:
            groups[name] = np.asarray(acsf.compute(chosen))
            colors[name] = matplotlib.colors.to_hex(cmap(0.05 + 0.85 * b / max(len(blocks) - 1, 1)))
    return groups, colors


# ----------------------------------------------------------------------------- exploration
def explore_trust(run: Run) -> list[dict[str, Any]]:
    """The DP-GEN trust statistics of each iteration that explored (``explore.trust`` of the
    iteration files, with ``iteration`` and ``n_candidates``); [] for a pool run."""
    out = []
    for rec in run.iterations:
        ex = rec.get("explore")
        if ex and "trust" in ex:
            out.append({"iteration": int(rec["iteration"]), "n_candidates": ex.get("n_candidates"), **ex["trust"]})
    return out


def explore_origins(run: Run) -> dict[int, dict[str, int]]:
    """Explored frames selected per iteration, counted by origin (ensemble, temperature,
    pressure; :func:`alip.reports.plots.origin_label`), from ``selected_origins``."""
    out: dict[int, dict[str, int]] = {}
    for rec in run.iterations:
        origins = rec.get("selected_origins")
        if not origins:
            continue
        slot = out.setdefault(int(rec["iteration"]), {})
        for o in origins:
            lab = plots.origin_label(
                str(o.get("explore_ensemble")), o.get("explore_temperature"), o.get("explore_pressure")
            )
            slot[lab] = slot.get(lab, 0) + 1
    return out


def read_md_stability(run: Run) -> dict[str, Any] | None:
    """``RUN/md_stability.json`` (MD stability of the final committee) when present."""
    p = run.path / MD_STABILITY
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        warnings.warn(f"cannot read {p}: {exc}")
        return None
    return data if isinstance(data, dict) else None


def summarize_explore(runs: list[Run]) -> dict[str, dict[str, Any]]:
    """Per exploring run: trust statistics per iteration, origins of the selected frames
    (per iteration and in total, and per temperature) and the MD stability record."""
    out = {}
    for run in runs:
        trust = explore_trust(run)
        if not trust:
            continue
        origins = explore_origins(run)
        total: dict[str, int] = {}
        for counts in origins.values():
            for lab, k in counts.items():
                total[lab] = total.get(lab, 0) + k
        out[run.name] = {
            "trust": [
                {
                    k: t.get(k)
                    for k in (
                        "iteration",
                        "n_trajectories",
                        "n_frames",
                        "accurate_fraction",
                        "candidate_fraction",
                        "failed_fraction",
                        "trust_lo",
                        "trust_hi",
                        "n_candidates",
                        "stop_reasons",
                    )
                }
                for t in trust
            ],
            "origins_by_iteration": {str(i): c for i, c in sorted(origins.items())},
            "origins": dict(sorted(total.items(), key=lambda kv: -kv[1])),
            "md_stability": read_md_stability(run),
        }
    return out


def format_explore(summary: dict[str, Any]) -> str:
    """Plain text of the exploration part of a report summary ("" without exploring runs)."""
    lines: list[str] = []
    for name, ex in (summary.get("explore") or {}).items():
        lines.append(f"exploration: {name}")
        lines.append("  iteration  trajectories  frames  accurate  candidate  failed  trust_lo-trust_hi eV/Å  stops")
        for t in ex["trust"]:
            frac = [t.get(f"{c}_fraction") for c in ("accurate", "candidate", "failed")]
            pct = ["    –" if f is None else f"{100 * f:4.0f}%" for f in frac]
            stops = ", ".join(f"{k} {v}" for k, v in (t.get("stop_reasons") or {}).items())
            lines.append(
                f"  {t['iteration']:>9}  {t.get('n_trajectories') or 0:>12}  {t.get('n_frames') or 0:>6}"
                f"     {pct[0]}      {pct[1]}   {pct[2]}  {t['trust_lo']:>8.3g}-{t['trust_hi']:<12.3g}  {stops}"
            )
        if ex["origins"]:
            lines.append(
                "  labeled explored frames by origin: " + ", ".join(f"{lab} {k}" for lab, k in ex["origins"].items())
            )
        stab = ex.get("md_stability")
        if stab:
            lines.append(
                "  MD stability of the final committee: " + ", ".join(f"{k} {_short(v)}" for k, v in stab.items())
            )
    return "\n".join(lines)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# ----------------------------------------------------------------------------- summary
def _stats(values: list[float]) -> dict[str, float]:
    a = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if not len(a):
        return {"mean": math.nan, "std": math.nan, "n": 0}
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": int(len(a))}


def summarize(runs: list[Run], ev_fits: dict[str, dict | None]) -> dict[str, dict[str, Any]]:
    """Per strategy: final labels and errors, E–V fit parameters (mean/std over seeds)."""
    out = {}
    for strategy, group in by_strategy(runs).items():
        finals = [r.final for r in group if r.final]
        errs = [f.get("errors", {}) for f in finals]
        fits = [ev_fits.get(r.name) for r in group]
        fits = [f for f in fits if f]
        out[strategy] = {
            "n_seeds": len(group),
            "iterations": _stats([f["iteration"] for f in finals]),
            "n_labels": _stats([f["n_labels"] for f in finals]),
            **{k: _stats([_number(e.get(k)) for e in errs]) for k in plots.CURVE_METRICS},
            **{k: _stats([f[k] for f in fits]) for k in ("a0", "B0", "e0")},
            "by_family": _family_stats(finals),
        }
    return out


_FORCE = "force_rmse_ev_per_ang"


def _family_stats(finals: list[dict]) -> dict[str, dict[str, Any]]:
    """Final test errors per family / MD subset (``errors_by_family``), mean ± std over seeds."""
    fams = sorted({f for rec in finals for f in rec.get("errors_by_family") or {}}, key=_subset_order)
    out = {}
    for fam in fams:
        errs = [(rec.get("errors_by_family") or {}).get(fam, {}) for rec in finals]
        out[fam] = {
            "n": max(int(e.get("n") or 0) for e in errs),
            **{k: _stats([_number(e.get(k)) for e in errs]) for k in ("energy_rmse_mev_per_atom", _FORCE)},
        }
    return out


def _subset_order(name: str) -> tuple[int, float, str]:
    """Families first (generation order), then the MD subsets by temperature."""
    if name in plots.FAMILY_COLORS:
        return (0, float(list(plots.FAMILY_COLORS).index(name)), name)
    m = re.search(r"_(\d+(?:\.\d+)?)K$", name)
    return (1 if name.startswith("md_") else 2, float(m.group(1)) if m else math.inf, name)


def subset_table(summary: dict[str, Any]) -> list[list[str]]:
    """Header and rows of the per-subset table: one row per test family / MD subset, force
    RMSE (eV/Å) and energy RMSE (meV/atom) of each strategy's final committee."""
    strategies = list(summary["strategies"])
    fams: list[str] = []
    for st in summary["strategies"].values():
        fams += [f for f in st.get("by_family") or {} if f not in fams]
    fams.sort(key=_subset_order)
    head = ["test subset", "n"] + [f"{s} F (eV/Å)" for s in strategies] + [f"{s} E (meV/atom)" for s in strategies]
    rows = [head]
    for fam in fams:
        cells = [(summary["strategies"][s].get("by_family") or {}).get(fam) for s in strategies]
        n = max((c or {}).get("n", 0) for c in cells)
        rows.append(
            [fam, str(n)]
            + [_fmt((c or {}).get("force_rmse_ev_per_ang"), 3) for c in cells]
            + [_fmt((c or {}).get("energy_rmse_mev_per_atom"), 1) for c in cells]
        )
    return rows if len(rows) > 1 else []


# ----------------------------------------------------------------------------- driver
class _Steps:
    """Named report steps with a progress bar; failures are kept unless ``strict``."""

    def __init__(self, total: int, progress: bool, strict: bool) -> None:
        self.bar = tqdm(total=total, desc="report", unit="step", disable=not progress, file=sys.stderr)
        self.strict = strict
        self.failures: dict[str, str] = {}

    def __call__(self, name: str, fn: Callable[[], Any]) -> Any:
        self.bar.set_postfix_str(name)
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - one broken figure must not lose the others
            if self.strict:
                raise
            self.failures[name] = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"report step {name!r} failed: {exc}")
            return None
        finally:
            self.bar.update(1)


def build_report(
    path: str | os.PathLike, progress: bool = True, strict: bool = False, descriptor_sample: int = 600
) -> Path:
    """Write ``PATH/report/`` (PNGs, index.html, summary.json) for a run or compare directory.

    The lowest seed of each strategy is drawn in the E–V, parity, uncertainty and
    per-iteration violin figures; learning curves and the summary use every seed.
    ``descriptor_sample`` caps the pool structures featurized for the family violins.
    With ``strict`` a failing figure raises; otherwise the failure is shown on the page
    and the other figures are still drawn.  PNGs already in ``report/`` are removed first,
    so the page shows exactly the current figures.  Returns the path of index.html.
    """
    t0 = time.perf_counter()
    root = Path(path)
    runs = find_runs(root)
    out = root / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    shown = {s: g[0] for s, g in by_strategy(runs).items()}
    step = _Steps(10 + len(runs) + 3 * len(shown), progress, strict)
    fig: dict[str, str | None] = {}
    rows = step("learning curves", lambda: learning_rows(root, runs)) or []
    fig["learning_curves"] = step(
        "learning curves", lambda: plots.plot_learning_curves(rows, out / "learning_curves.png") if rows else None
    )
    committees = {r.name: step(f"load {r.name}", lambda r=r: _maybe(load_committee, r.checkpoint())) for r in runs}
    oracle = step("oracle E–V", lambda: reference_ev(runs[0], out / "ev_oracle.json"))
    cells = diamond_cells(volumes=oracle.volumes) if oracle else diamond_cells()
    ev = {r.name: model_ev(committees[r.name], cells, _label(r)) for r in runs if committees[r.name]}
    fig["ev_curve"] = step(
        "E–V curve",
        lambda: (
            plots.plot_ev_curve(oracle, [ev[r.name] for r in shown.values() if r.name in ev], out / "ev_curve.png")
            if oracle or ev
            else None
        ),
    )
    preds = [
        step(f"test set {s}", lambda r=r: predict_test_set(committees[r.name], read_test_set(r), _label(r)))
        for s, r in shown.items()
        if committees[r.name] and (r.path / TEST).is_file()
    ]
    preds = [p for p in preds if p is not None]
    fig["parity"] = step("parity", lambda: plots.plot_parity(preds, out / "parity.png") if preds else None)
    fig["uncertainty"] = step(
        "uncertainty vs error",
        lambda: plots.plot_uncertainty_vs_error(preds, out / "uncertainty_vs_error.png") if preds else None,
    )
    pools = {r.name: step(f"read pool {s}", lambda r=r: pool_structures(r)) or [] for s, r in shown.items()}
    first_pool = pools[next(iter(shown.values())).name]
    sel, n_runs = selections(runs)
    fracs = _fractions([str(a.info.get("family")) for a in first_pool])
    fig["selection"] = step(
        "selection over time",
        lambda: plots.plot_selection_over_time(sel, out / "selection_over_time.png", n_runs, fracs) if sel else None,
    )
    acsf = next((c.acsf for c in committees.values() if c is not None), None)
    if acsf is None:
        acsf = ACSF.default_si()
    sample = _subsample(first_pool, descriptor_sample)
    fig["violins_family"] = step(
        "violins by family",
        lambda: (
            plots.plot_descriptor_violins(
                family_groups(acsf, sample),
                acsf.feature_labels(),
                out / "violins_by_family.png",
                f"Descriptor activation by structure family (per atom, {len(sample)} pool structures)",
            )
            if sample
            else None
        ),
    )
    for s, r in shown.items():

        def draw(r: Run = r, s: str = s) -> str | None:
            groups, colors = iteration_groups(acsf, r, pools[r.name], descriptor_sample)
            if len(groups) < 2:
                return None
            return plots.plot_descriptor_violins(
                groups,
                acsf.feature_labels(),
                out / f"violins_selected_{_slug(s)}.png",
                f"Descriptor activation of the structures selected per iteration: {r.name}",
                colors=colors,
            )

        fig[f"violins_selected_{s}"] = step(f"violins selected {s}", draw)
    explore = step("exploration", lambda: summarize_explore(list(shown.values()))) or {}
    fig["explore_trust"] = step(
        "exploration trust",
        lambda: (
            plots.plot_explore_trust({n: e["trust"] for n, e in explore.items()}, out / "explore_trust.png")
            if explore
            else None
        ),
    )
    origins = {n: {int(i): c for i, c in e["origins_by_iteration"].items()} for n, e in explore.items()}
    fig["explore_origins"] = step(
        "exploration origins",
        lambda: plots.plot_explore_origins(origins, out / "explore_origins.png") if any(origins.values()) else None,
    )
    step.bar.close()
    summary = {
        "kind": "run" if is_run_dir(root) else "compare",
        "path": str(root.resolve()),
        "runs": [str(r.path.relative_to(root)) if r.path != root else "." for r in runs],
        "strategies": summarize(runs, {k: v.fit for k, v in ev.items()}),
        "oracle_ev": {"label": oracle.label, "fit": oracle.fit} if oracle else None,
        "ev_models": {k: v.fit for k, v in ev.items()},
        "explore": explore,
        "failures": step.failures,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    atomic_write_json(out / "summary.json", summary)
    return write_index(out, summary, {k: v for k, v in fig.items() if v})


def _maybe(fn: Callable[[Any], Any], arg: Any) -> Any:
    return fn(arg) if arg is not None else None


def _label(run: Run) -> str:
    n = run.final["n_labels"] if run.final else "?"
    return f"{run.strategy} (seed {run.seed}, {n} labels)"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _fractions(fams: list[str]) -> dict[str, float]:
    return {f: fams.count(f) / len(fams) for f in set(fams)} if fams else {}


def _subsample(structures: list, n: int) -> list:
    if len(structures) <= n:
        return structures
    idx = np.random.default_rng(0).choice(len(structures), n, replace=False)
    return [structures[i] for i in sorted(idx)]


# ----------------------------------------------------------------------------- the page
_CAPTIONS = {
    "ev_curve": (
        "Energy–volume curve",
        "Diamond Si over a range of lattice constants: the final committee of "
        "each strategy (its lowest seed; mean, band = ±1 committee std) against the oracle; lower panel: "
        "model − oracle. "
        "The legend gives the Birch–Murnaghan a₀, B₀ and E₀ of every curve.",
    ),
    "learning_curves": (
        "Learning curves",
        "Test-set errors of the committee mean versus the number of labels, "
        "one line per strategy, band = ±1 sample std over seeds.",
    ),
    "parity": (
        "Parity on the test set",
        "Committee-mean prediction against the oracle, colored by structure family; legend: RMSE per family.",
    ),
    "uncertainty": (
        "Uncertainty versus error",
        "Is the committee's spread calibrated? Points near the dashed "
        "line have an error equal to their spread; the black line is the RMS error in bins of the "
        "spread, ρ the rank correlation.",
    ),
    "selection": ("Selection over time", "Families of the structures each iteration selected for labeling."),
    "explore_trust": (
        "Exploration: trust statistics",
        "Per iteration, the share of the explored frames whose max force deviation was below trust_lo "
        "(accurate), inside the window (candidates) or beyond trust_hi / stopping a trajectory (failed); "
        "dashed and dotted: trust_lo and trust_hi. The accurate share should rise as the committee learns.",
    ),
    "explore_origins": (
        "Exploration: where the labeled frames came from",
        "Explored frames selected for labeling in each iteration, by ensemble, temperature and pressure "
        "(the initial set of distorted seeds is not shown).",
    ),
    "violins_family": (
        "Descriptor activation by family",
        "Per-atom distribution of every descriptor over the pool, one violin per structure family (median marked).",
    ),
}


def _fmt(stat: dict[str, float] | None, digits: int) -> str:
    if not stat or not stat.get("n") or stat.get("mean") is None:  # None: NaN read back from summary.json
        return "–"
    text = f"{stat['mean']:.{digits}f}"
    if stat.get("std") is None:
        return text
    spread = f"{stat['std']:.{digits}f}"
    return text + (f" ± {spread}" if stat["n"] > 1 and float(spread) != 0 else "")


def summary_table(summary: dict[str, Any]) -> list[list[str]]:
    """Header and rows of the summary table (strategies, then the oracle's E–V fit)."""
    head = [
        "",
        "seeds",
        "labels",
        "energy RMSE (meV/atom)",
        "force RMSE (eV/Å)",
        "E–V RMSE (meV/atom)",
        "a₀ (Å)",
        "B₀ (GPa)",
        "E₀ (eV/atom)",
    ]
    rows = [head]
    for s, st in summary["strategies"].items():
        rows.append(
            [
                s,
                str(st["n_seeds"]),
                _fmt(st["n_labels"], 0),
                _fmt(st["energy_rmse_mev_per_atom"], 1),
                _fmt(st["force_rmse_ev_per_ang"], 3),
                _fmt(st["ev_rmse_mev_per_atom"], 1),
                _fmt(st["a0"], 4),
                _fmt(st["B0"], 1),
                _fmt(st["e0"], 4),
            ]
        )
    fit = (summary.get("oracle_ev") or {}).get("fit")
    if fit:
        rows.append(
            [
                summary["oracle_ev"]["label"],
                "",
                "",
                "",
                "",
                "",
                f"{fit['a0']:.4f}",
                f"{fit['B0']:.1f}",
                f"{fit['e0']:.4f}",
            ]
        )
    return rows


def _explore_html(explore: dict[str, Any]) -> list[str]:
    """Tables of the exploration part of the summary: trust statistics, origins, MD stability."""
    from html import escape

    parts = []
    for name, ex in explore.items():
        parts.append(f"<h2>Exploration statistics: {escape(name)}</h2><table>")
        head = ["iteration", "trajectories", "frames", "accurate", "candidate", "failed", "trust_lo", "trust_hi"]
        parts.append("<tr>" + "".join(f"<th>{h}</th>" for h in head) + "<th>stops</th></tr>")
        for t in ex["trust"]:
            cells = [str(t["iteration"]), str(t.get("n_trajectories")), str(t.get("n_frames"))]
            cells += [
                "–" if t.get(f"{c}_fraction") is None else f"{100 * t[f'{c}_fraction']:.0f}%"
                for c in ("accurate", "candidate", "failed")
            ]
            cells += [f"{t['trust_lo']:.3g}", f"{t['trust_hi']:.3g}"]
            stops = ", ".join(f"{k} {v}" for k, v in (t.get("stop_reasons") or {}).items())
            parts.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells + [stops]) + "</tr>")
        parts.append("</table>")
        if ex["origins"]:
            parts.append(
                "<p>Labeled explored frames by origin: "
                + escape(", ".join(f"{lab}: {k}" for lab, k in ex["origins"].items()))
                + "</p>"
            )
        if ex.get("md_stability"):
            parts.append(
                "<p>MD stability of the final committee (md_stability.json): "
                + escape(", ".join(f"{k} = {_short(v)}" for k, v in ex["md_stability"].items()))
                + "</p>"
            )
    return parts


def write_index(out: Path, summary: dict[str, Any], figures: dict[str, str]) -> Path:
    """report/index.html: summary table, every figure with a caption, failures, other images."""
    from html import escape

    parts = [
        f"<h1>alip report: {escape(Path(summary['path']).name)}</h1>",
        f"<p class=meta>{escape(summary['path'])} · {len(summary['runs'])} run(s) · built "
        f"{time.strftime('%Y-%m-%d %H:%M')} in {summary['seconds']:.0f} s</p>",
        "<h2>Summary</h2><table>",
    ]
    for i, row in enumerate(summary_table(summary)):
        tag = "th" if i == 0 else "td"
        parts.append("<tr>" + "".join(f"<{tag}>{escape(c)}</{tag}>" for c in row) + "</tr>")
    parts.append("</table><p class=meta>Final iteration of each run; mean ± sample std over seeds.</p>")
    subsets = subset_table(summary)
    if subsets:
        parts.append("<h2>Errors per test subset</h2><table>")
        for i, row in enumerate(subsets):
            tag = "th" if i == 0 else "td"
            parts.append("<tr>" + "".join(f"<{tag}>{escape(c)}</{tag}>" for c in row) + "</tr>")
        parts.append(
            "</table><p class=meta>Final committee of each strategy on each structure family of the test set "
            "and each subset of the oracle's own MD (md_*; [test] md); mean ± sample std over seeds.</p>"
        )
    linked = set()
    order = list(_CAPTIONS)
    for key, file in sorted(figures.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)):
        name = Path(file).name
        title, caption = _CAPTIONS.get(key, (None, None))
        if key.startswith("violins_selected_"):
            title = f"Descriptor activation of the selected structures: {key[len('violins_selected_') :]}"
            caption = (
                "Per-atom descriptor distributions of the whole pool (gray), the initial training set "
                "(dark gray) and the structures selected in each iteration (viridis, early → late)."
            )
        parts.append(
            f"<h2>{escape(title or key)}</h2><p>{escape(caption or '')}</p>"
            f"<a href='{escape(name)}'><img src='{escape(name)}' alt='{escape(title or key)}'></a>"
        )
        linked.add(name)
    others = sorted(p.name for p in out.glob("*.png") if p.name not in linked)
    if others:
        parts.append(
            "<h2>Other images</h2>"
            + "".join(f"<a href='{escape(n)}'><img src='{escape(n)}' alt='{escape(n)}'></a>" for n in others)
        )
    parts.extend(_explore_html(summary.get("explore") or {}))
    if summary["failures"]:
        parts.append(
            "<h2>Figures that could not be drawn</h2><ul>"
            + "".join(f"<li>{escape(k)}: {escape(v)}</li>" for k, v in summary["failures"].items())
            + "</ul>"
        )
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1500px;margin:2em auto;padding:0 1em;color:#222}"
        "img{max-width:100%;border:1px solid #ddd;margin:.5em 0}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.3em .7em;text-align:right}th{background:#f3f3f3}"
        "td:first-child{text-align:left}.meta{color:#666;font-size:.9em}"
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>alip report</title><style>{style}"
        f"</style></head><body>{''.join(parts)}</body></html>\n"
    )
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
