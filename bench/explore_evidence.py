"""Exploration vs pool QBC vs pool random on the physical (oracle-MD) test set, and the MD
stability of the final committees.  Stillinger–Weber oracle; equal label budgets.

    python bench/explore_evidence.py --out explore_cmp --seeds 0 1 2 --budget 140   # --training default
    python bench/explore_evidence.py --out cmp --training fast ...       # resume the first (fast) runs
    python bench/explore_evidence.py --out explore_cmp --strategies explore-rate --seeds 0 1
    python bench/explore_evidence.py --out explore_cmp --stability-only --strategies explore \
        --seeds 0 1 2 --nvt-ps 20 --nve-ps 10                        # MD stability of finished runs
    python bench/explore_evidence.py --out explore_cmp --report-only     # tables from the run files

Strategies: ``explore`` (fixed trust window), ``explore-rate`` / ``explore-error`` (the same
with ``adaptive = "rate"`` / ``"error"``), ``qbc`` and ``random`` (the default pool).
Runs are resumed when their directory exists (a larger ``--budget`` extends them).

Every run is an ordinary ``alip run`` directory (OUT/<strategy>_s<seed>); the test set of
every run is the family test set plus the oracle's MD frames (test.md), so the per-subset
errors are in each iteration record (errors_by_family["md_*"]).  Prints markdown tables:
force / energy RMSE per MD subset at the final budget (mean ± std over seeds), the labels
each strategy needed to reach ``--target`` eV/Å on the 300–1500 K crystal frames, and the
final committees' 1500 K NVT minimum pair distance and NVE energy drift.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

#: The [training] tables of the runs, pinned so that the comparison does not move with the
#: package defaults (and resuming a run made with these values is not refused).
#: ``fast``: the first runs' training (24-24 tanh, 100 Adam epochs, no L-BFGS), chosen so that
#: 14 runs fit on 2 cores; its noise (±0.05 eV/Å between iterations) kept every strategy
#: above 0.10 eV/Å (README).  ``default``: the package defaults of this writing
#: (alip.config.TrainingSection: 32-32 SiLU, batch 4, 300 Adam epochs with early stopping,
#: 100 L-BFGS steps); bench/training_probe.py measured it at 0.09 eV/Å on the first 60
#: labels of the fast explore run where the fast training gave 0.20, for 2x the time.
TRAININGS = {
    "fast": {
        "n_members": 5,
        "hidden": [24, 24],
        "activation": "tanh",
        "feature_scaling": "standard",
        "weight_energy": 1.0,
        "weight_forces": 0.1,
        "weight_stress": 0.1,
        "epochs": 100,
        "batch_size": 16,
        "lr": 0.01,
        "lr_final": 0.001,
        "lbfgs_steps": 0,
        "val_fraction": 0.1,
        "validation": "shared",
        "patience": 50,
        "bootstrap": True,
        "energy_weighting": 0.0,
        "dtype": "float32",
        "processes": "auto",  # how fast, not what: members do not depend on the split
    },
    "default": {
        "n_members": 5,
        "hidden": [32, 32],
        "activation": "silu",
        "feature_scaling": "standard",
        "weight_energy": 1.0,
        "weight_forces": 0.1,
        "weight_stress": 0.1,
        "epochs": 300,
        "batch_size": 4,
        "lr": 5e-3,
        "lr_final": 2e-4,
        "lbfgs_steps": 100,
        "val_fraction": 0.1,
        "validation": "shared",
        "patience": 100,
        "bootstrap": True,
        "energy_weighting": 0.0,
        "dtype": "float32",
        "processes": "auto",  # how fast, not what: members do not depend on the split
    },
}
#: The first runs' training (the old name; bench/training_probe.py and gpaw_loop.py start from it).
TRAINING = TRAININGS["fast"]
#: Strategy name -> (pool acquisition strategy, explore?, explore.adaptive).
STRATEGIES = {
    "explore": ("qbc", True, "fixed"),
    "explore-rate": ("qbc", True, "rate"),
    "explore-error": ("qbc", True, "error"),
    "qbc": ("qbc", False, None),
    "random": ("random", False, None),
}
CRYSTAL = ("md_crystal_300K", "md_crystal_900K", "md_crystal_1500K")
SUBSETS = CRYSTAL + ("md_vacancy_900K", "md_liquid_2000K")


def config(strategy: str, seed: int, budget: int, out: str, workers: int, training: str = "fast") -> dict:
    """The run configuration of one strategy and seed (every other key at its default)."""
    acquisition, explore, adaptive = STRATEGIES[strategy]
    cfg = {
        "run": {
            "out": out,
            "seed": seed,
            "n_initial": 20,
            "batch_size": 20,
            "budget": budget,
            "progress": False,
            "threads": 1,
            "strategy": acquisition,
        },
        "training": dict(TRAININGS[training]),
        "oracle": {"spec": "sw"},
        "labeling": {"executor": "process", "max_workers": workers},
        "test": {"md": True},
    }
    if explore:
        cfg["explore"] = {
            "enabled": True,
            "supercell": [2, 2, 2],
            "temperatures": [300.0, 900.0, 1500.0],
            "ensembles": ["nvt", "npt"],
            "ramp": 2,
            "steps": 200,
            "growth": 1.3,
            "max_steps": 1000,
            "every": 5,
            "max_trajectories": 8,
            "trust_lo": 0.1,
            "trust_hi": 1.0,
            "initial_rattle": 0.1,
            "adaptive": adaptive,
        }
    return cfg


def crystal_force_rmse(by_family: dict) -> float:
    """Force RMSE over the three crystal subsets together (same atoms and frames in each)."""
    vals = [by_family[k]["force_rmse_ev_per_ang"] for k in CRYSTAL if k in by_family]
    return float(np.sqrt(np.mean(np.square(vals)))) if vals else math.nan


def md_stability(committee_path: str, nvt_ps: float, nve_ps: float, seed: int = 0) -> dict:
    """MD with the committee's mean as calculator, 64-atom diamond Si, 1 fs steps: ``nvt_ps``
    of 1500 K Langevin NVT (friction 0.01/fs) with the smallest pair distance watched at every
    step, then ``nve_ps`` of velocity-Verlet NVE continued from the NVT run's last state
    (from diamond thermalized at 1500 K if the NVT run collapsed, i.e. a pair came
    closer than 1 Å or positions turned non-finite).  Drift: last minus first total energy
    per atom; also the largest excursion and the fitted slope."""
    from ase import units
    from ase.build import bulk
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.verlet import VelocityVerlet
    from ase.neighborlist import neighbor_list

    from alip.explore.trajectories import thermalize
    from alip.models.calculator import Calculator

    calc = Calculator(committee_path)
    rng = np.random.default_rng(seed)

    def diamond(temperature: float):
        atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat(2)
        atoms.calc = calc
        thermalize(atoms, temperature, rng)
        atoms.set_constraint(FixCom())  # instead of Langevin's fixcm (deprecated: biased sampling)
        return atoms

    t0 = time.time()
    atoms = diamond(1500.0)
    dyn = Langevin(
        atoms,
        1.0 * units.fs,
        temperature_K=1500.0,
        friction=0.01 / units.fs,
        fixcm=False,
        rng=rng,
        logfile=None,
    )
    dmin, nvt_steps, collapsed, temps = math.inf, 0, False, []
    for _ in range(int(round(nvt_ps * 1000))):
        dyn.run(1)
        nvt_steps += 1
        d = neighbor_list("d", atoms, 3.0)
        dmin = min(dmin, float(d.min()) if len(d) else math.inf)
        if nvt_steps % 10 == 0:
            temps.append(atoms.get_temperature())
        if not np.isfinite(atoms.positions).all() or dmin < 1.0:
            collapsed = True
            break
    if collapsed:
        atoms = diamond(1500.0)
    dyn = VelocityVerlet(atoms, 1.0 * units.fs, logfile=None)
    n = len(atoms)
    energies, nve_temps = [atoms.get_total_energy() / n], []
    for _ in range(int(round(nve_ps * 1000)) // 10):
        dyn.run(10)
        energies.append(atoms.get_total_energy() / n)
        nve_temps.append(atoms.get_temperature())
    e = np.array(energies)
    t = np.arange(len(e)) * 0.01  # ps
    slope = float(np.polyfit(t, e, 1)[0]) if len(e) > 2 else math.nan
    return {
        "nvt_ps": nvt_ps,
        "nvt_steps_done": nvt_steps,
        "nvt_min_distance": dmin,
        "nvt_completed": not collapsed,
        "nvt_mean_temperature": float(np.mean(temps)) if temps else math.nan,
        "nve_ps": nve_ps,
        "nve_start": "diamond at 1500 K" if collapsed else "end of the NVT run",
        "nve_mean_temperature": float(np.mean(nve_temps)) if nve_temps else math.nan,
        "nve_drift_mev_per_atom": float((e[-1] - e[0]) * 1e3),
        "nve_max_dev_mev_per_atom": float(np.abs(e - e[0]).max() * 1e3),
        "nve_slope_mev_per_atom_per_ps": slope * 1e3,
        "wall_s": time.time() - t0,
    }


def stability(run: str, nvt_ps: float, nve_ps: float, seed: int) -> dict | None:
    """``run``/md_stability.json, computed unless it holds these durations already."""
    path = os.path.join(run, "md_stability.json")
    if os.path.isfile(path):
        with open(path) as fh:
            old = json.load(fh)
        if old.get("nvt_ps") == nvt_ps and old.get("nve_ps") == nve_ps:
            return old
    committee = os.path.join(run, "committee.pt")
    if not os.path.isfile(committee):
        return None
    stab = md_stability(committee, nvt_ps, nve_ps, seed=seed)
    with open(path + ".tmp", "w") as fh:
        json.dump(stab, fh, indent=1)
    os.replace(path + ".tmp", path)
    return stab


def summarise(out: str, strategies: list[str], seeds: list[int], target: float, budget: int) -> dict:
    """Per strategy, one row per seed with a run: the crystal force learning curve, the labels
    it took to reach ``target``, the errors per MD subset at ``budget`` labels (or the last
    iteration before), the MD stability and the exploration's trust statistics."""
    from alip.al.run_dir import read_iterations

    summary: dict = {}
    for strat in strategies:
        rows = []
        for s in seeds:
            run = os.path.join(out, f"{strat}_s{s}")
            recs = read_iterations(run) if os.path.isdir(run) else []
            if not recs:
                continue
            curve = [(r["n_labels"], crystal_force_rmse(r["errors_by_family"])) for r in recs]
            reach = next((n for n, f in curve if f <= target), None)
            at = [r for r in recs if r["n_labels"] <= budget] or recs[:1]
            last = at[-1]["errors_by_family"]
            stab_path = os.path.join(run, "md_stability.json")
            stab = json.load(open(stab_path)) if os.path.isfile(stab_path) else {}
            origins = [o.get("explore_temperature") for r in recs for o in r.get("selected_origins", [])]
            trust = [dict(r["explore"]["trust"], n_labels=r["n_labels"]) for r in recs if "explore" in r]
            rows.append(
                {
                    "seed": s,
                    "labels": at[-1]["n_labels"],
                    "max_labels": recs[-1]["n_labels"],
                    "curve": curve,
                    "labels_to_target": reach,
                    "final": {k: last.get(k) for k in SUBSETS},
                    "crystal_force": crystal_force_rmse(last),
                    "stability": stab,
                    "selected_temperatures": origins,
                    "trust": trust,
                }
            )
        summary[strat] = rows
    return summary


def curve_at(curve: list[tuple[int, float]], n: int) -> tuple[int, float] | None:
    """The last point of ``curve`` with at most ``n`` labels (None if it starts above ``n``)."""
    below = [p for p in curve if p[0] <= n]
    return below[-1] if below else None


def _ms(vals: list[float], fmt: str = "{:.3f}") -> str:
    vals = [v for v in vals if v is not None and not math.isnan(v)]
    if not vals:
        return "–"
    if len(vals) == 1:
        return fmt.format(vals[0])
    return f"{fmt.format(np.mean(vals))} ± {fmt.format(np.std(vals, ddof=1))}"


def tables(summary: dict, target: float) -> str:
    """Markdown: errors at the budget, labels to target, learning curves, trust statistics, MD stability."""
    lines = [
        f"| strategy | seeds | labels | labels to crystal F ≤ {target:.2f} | crystal F | "
        + " | ".join(f"{k[3:]} F / E" for k in SUBSETS)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(SUBSETS),
    ]
    for strat, rows in summary.items():
        if not rows:
            continue
        reach = [r["labels_to_target"] for r in rows]
        reach_txt = ", ".join(str(x) if x is not None else f"> {r['max_labels']}" for x, r in zip(reach, rows))
        cells = []
        for k in SUBSETS:
            f = [r["final"][k]["force_rmse_ev_per_ang"] for r in rows if r["final"].get(k)]
            e = [r["final"][k]["energy_rmse_mev_per_atom"] for r in rows if r["final"].get(k)]
            cells.append(f"{_ms(f)} / {_ms(e, '{:.1f}')}")
        labels = sorted({r["labels"] for r in rows})
        lines.append(
            f"| {strat} | {len(rows)} | {'/'.join(map(str, labels))} | {reach_txt} | "
            f"{_ms([r['crystal_force'] for r in rows])} | " + " | ".join(cells) + " |"
        )
    # Learning curves at the label counts most runs share (20, 40, ...): a run that skipped a
    # count (fewer candidates than a batch) contributes its last iteration below it, marked *.
    all_rows = [r for rows in summary.values() for r in rows]
    counts: dict[int, int] = {}
    for r in all_rows:
        for n, _ in r["curve"]:
            counts[n] = counts.get(n, 0) + 1
    points = sorted(n for n, c in counts.items() if 2 * c >= len(all_rows))
    lines += [
        "",
        "Force RMSE (eV/Å) on the 300–1500 K crystal frames against labels (mean ± std over seeds; "
        "(k): only k seeds got there; *: some seed's value is from an iteration with fewer labels):",
        "",
        "| strategy | " + " | ".join(str(n) for n in points) + " |",
        "|---|" + "---|" * len(points),
    ]
    for strat, rows in summary.items():
        if not rows:
            continue
        cells = []
        for n in points:
            got = [curve_at(r["curve"], n) for r in rows if r["curve"][-1][0] >= n]
            got = [g for g in got if g is not None]
            txt = _ms([f for _, f in got])
            if got and any(m != n for m, _ in got):
                txt += "*"
            cells.append(txt + (f" ({len(got)})" if got and len(got) < len(rows) else ""))
        lines.append(f"| {strat} | " + " | ".join(cells) + " |")
    # Trust statistics of the exploring strategies, per iteration, mean over seeds.
    for strat, rows in summary.items():
        if not rows or not rows[0]["trust"]:
            continue
        n_it = max(len(r["trust"]) for r in rows)
        lines += [
            "",
            f"Trust statistics of `{strat}` per iteration (mean ± std over {len(rows)} seeds): the labels the "
            "exploring committee was trained on, trust_lo used (eV/Å), frames, accurate / candidate / failed "
            "(beyond trust_hi) fractions, trajectories stopped early (summed over the seeds):",
            "",
            "| iteration | labels | trust_lo | frames | accurate | candidate | failed | stopped early |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for i in range(n_it):
            ts = [r["trust"][i] for r in rows if i < len(r["trust"])]
            stopped = [sum(v for k, v in t.get("stop_reasons", {}).items() if k != "completed") for t in ts]
            ntraj = [t.get("n_trajectories", 0) for t in ts]
            lines.append(
                f"| {i} | {ts[0]['n_labels']} | {_ms([t['trust_lo'] for t in ts])} | "
                f"{np.mean([t['n_frames'] for t in ts]):.0f} | "
                f"{_ms([t['accurate_fraction'] for t in ts], '{:.2f}')} | "
                f"{_ms([t['candidate_fraction'] for t in ts], '{:.2f}')} | "
                f"{_ms([t['failed_fraction'] for t in ts], '{:.3f}')} | "
                f"{sum(stopped)} of {sum(ntraj)} |"
            )
    lines += [
        "",
        "| strategy | seed | 1500 K NVT ps | min pair distance Å | mean T K | NVE ps | NVE mean T K "
        "| NVE drift meV/atom | max dev. meV/atom | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for strat, rows in summary.items():
        for r in rows:
            st = r["stability"]
            if st:
                lines.append(
                    f"| {strat} | {r['seed']} | {st['nvt_ps']:g}{'' if st['nvt_completed'] else ' (collapsed)'}"
                    f" | {st['nvt_min_distance']:.2f} | {st.get('nvt_mean_temperature', math.nan):.0f} | "
                    f"{st['nve_ps']:g} | {st.get('nve_mean_temperature', math.nan):.0f} | "
                    f"{st['nve_drift_mev_per_atom']:.3f} | {st['nve_max_dev_mev_per_atom']:.3f} | "
                    f"{st.get('wall_s', math.nan):.0f} |"
                )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="explore_cmp")
    ap.add_argument("--strategies", nargs="+", default=["explore", "qbc", "random"], choices=list(STRATEGIES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--budget", type=int, default=140, help="labels per run; the tables report errors at it")
    ap.add_argument("--workers", type=int, default=1, help="labeling processes per run")
    ap.add_argument(
        "--training",
        choices=list(TRAININGS),
        default="default",
        help="pinned [training] table (fast: the first runs' cmp/ext, resume them with it)",
    )
    ap.add_argument("--target", type=float, default=0.10, help="crystal force RMSE goal, eV/Å")
    ap.add_argument(
        "--nvt-ps", type=float, default=20.0, help="1500 K NVT of the stability check (0 with --nve-ps 0: none)"
    )
    ap.add_argument("--nve-ps", type=float, default=10.0)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--report-only", action="store_true", help="only the tables, from the run files")
    mode.add_argument("--stability-only", action="store_true", help="only the MD stability of finished runs")
    args = ap.parse_args()
    if args.budget < 1 or args.nvt_ps < 0 or args.nve_ps < 0:
        ap.error("--budget must be >= 1, --nvt-ps and --nve-ps >= 0")

    if not args.report_only:
        for s in args.seeds:
            for strat in args.strategies:
                out = os.path.join(args.out, f"{strat}_s{s}")
                t0 = time.time()
                if not args.stability_only:
                    from alip.al.loop import run

                    run(config(strat, s, args.budget, out, args.workers, args.training), resume=True)
                    print(f"{strat} seed {s}: run {time.time() - t0:.0f} s", flush=True)
                if args.nvt_ps > 0 or args.nve_ps > 0:
                    t1 = time.time()
                    if stability(out, args.nvt_ps, args.nve_ps, seed=s) is None:
                        print(f"{strat} seed {s}: no committee.pt in {out}, stability skipped", flush=True)
                    else:
                        print(f"{strat} seed {s}: stability {time.time() - t1:.0f} s", flush=True)
        if not args.stability_only:
            return
    summary = summarise(args.out, args.strategies, args.seeds, args.target, args.budget)
    if args.report_only:
        with open(os.path.join(args.out, "summary.json"), "w") as fh:
            json.dump(summary, fh, indent=1, default=str)
    print(tables(summary, args.target))


if __name__ == "__main__":
    main()
