"""Exploration vs pool QBC vs pool random on the physical (oracle-MD) test set, and the MD
stability of the final committees.  Stillinger–Weber oracle; equal label budgets.

    python bench/explore_evidence.py --out explore_cmp --seeds 0 1 --budget 140
    python bench/explore_evidence.py --out explore_cmp --report-only     # tables from the run files

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

CRYSTAL = ("md_crystal_300K", "md_crystal_900K", "md_crystal_1500K")
SUBSETS = CRYSTAL + ("md_vacancy_900K", "md_liquid_2000K")


def config(strategy: str, seed: int, budget: int, out: str, workers: int) -> dict:
    cfg = {
        "run": {
            "out": out,
            "seed": seed,
            "n_initial": 20,
            "batch_size": 20,
            "budget": budget,
            "progress": False,
            "threads": 1,
            "strategy": "random" if strategy == "random" else "qbc",
        },
        "oracle": {"spec": "sw"},
        "labeling": {"executor": "process", "max_workers": workers},
        "test": {"md": True},
    }
    if strategy == "explore":
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
        }
    return cfg


def crystal_force_rmse(by_family: dict) -> float:
    """Force RMSE over the three crystal subsets together (same atoms and frames in each)."""
    vals = [by_family[k]["force_rmse_ev_per_ang"] for k in CRYSTAL if k in by_family]
    return float(np.sqrt(np.mean(np.square(vals)))) if vals else math.nan


def md_stability(committee_path: str, nvt_ps: float, nve_ps: float, seed: int = 0) -> dict:
    """Minimum pair distance over a 1500 K Langevin NVT run (64 atoms, 1 fs) and the energy
    drift of an NVE run (velocity Verlet, 1 fs, started at 600 K from diamond)."""
    from ase import units
    from ase.build import bulk
    from ase.md.langevin import Langevin
    from ase.md.verlet import VelocityVerlet
    from ase.neighborlist import neighbor_list

    from alip.explore.trajectories import thermalize
    from alip.models.calculator import Calculator

    calc = Calculator(committee_path)
    rng = np.random.default_rng(seed)
    atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat(2)
    atoms.calc = calc
    thermalize(atoms, 1500.0, rng)
    dyn = Langevin(atoms, 1.0 * units.fs, temperature_K=1500.0, friction=0.01 / units.fs, rng=rng, logfile=None)
    dmin, steps, ok = math.inf, int(nvt_ps * 1000), True
    for _ in range(0, steps, 10):
        dyn.run(10)
        d = neighbor_list("d", atoms, 3.0)
        dmin = min(dmin, float(d.min()) if len(d) else math.inf)
        if not np.isfinite(atoms.positions).all() or dmin < 1.0:
            ok = False
            break
    atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat(2)
    atoms.calc = calc
    thermalize(atoms, 600.0, rng)
    dyn = VelocityVerlet(atoms, 1.0 * units.fs, logfile=None)
    n = len(atoms)
    energies = []
    for _ in range(int(nve_ps * 1000) // 10):
        dyn.run(10)
        energies.append(atoms.get_total_energy() / n)
    e = np.array(energies)
    t = np.arange(len(e)) * 0.01  # ps
    slope = float(np.polyfit(t, e, 1)[0]) if len(e) > 2 else math.nan
    return {
        "nvt_ps": nvt_ps,
        "nvt_min_distance": dmin,
        "nvt_completed": ok,
        "nve_ps": nve_ps,
        "nve_drift_mev_per_atom": float((e[-1] - e[0]) * 1e3),
        "nve_max_dev_mev_per_atom": float(np.abs(e - e[0]).max() * 1e3),
        "nve_slope_mev_per_atom_per_ps": slope * 1e3,
    }


def summarise(out: str, strategies: list[str], seeds: list[int], target: float) -> dict:
    from alip.al.run_dir import read_iterations

    summary: dict = {}
    for strat in strategies:
        rows = []
        for s in seeds:
            run = os.path.join(out, f"{strat}_s{s}")
            recs = read_iterations(run)
            if not recs:
                continue
            curve = [(r["n_labels"], crystal_force_rmse(r["errors_by_family"])) for r in recs]
            reach = next((n for n, f in curve if f <= target), None)
            last = recs[-1]["errors_by_family"]
            stab_path = os.path.join(run, "md_stability.json")
            stab = json.load(open(stab_path)) if os.path.isfile(stab_path) else {}
            origins = [o.get("explore_temperature") for r in recs for o in r.get("selected_origins", [])]
            trust = [r["explore"]["trust"] for r in recs if "explore" in r]
            rows.append(
                {
                    "seed": s,
                    "labels": recs[-1]["n_labels"],
                    "curve": curve,
                    "labels_to_target": reach,
                    "final": {k: last.get(k) for k in SUBSETS},
                    "crystal_force": curve[-1][1],
                    "stability": stab,
                    "selected_temperatures": origins,
                    "trust": trust,
                }
            )
        summary[strat] = rows
    return summary


def _ms(vals: list[float], fmt: str = "{:.3f}") -> str:
    vals = [v for v in vals if v is not None and not math.isnan(v)]
    if not vals:
        return "–"
    if len(vals) == 1:
        return fmt.format(vals[0])
    return f"{fmt.format(np.mean(vals))} ± {fmt.format(np.std(vals, ddof=1))}"


def tables(summary: dict, target: float) -> str:
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
        reach_txt = ", ".join(str(x) if x is not None else f">{r['labels']}" for x, r in zip(reach, rows))
        cells = []
        for k in SUBSETS:
            f = [r["final"][k]["force_rmse_ev_per_ang"] for r in rows if r["final"].get(k)]
            e = [r["final"][k]["energy_rmse_mev_per_atom"] for r in rows if r["final"].get(k)]
            cells.append(f"{_ms(f)} / {_ms(e, '{:.1f}')}")
        lines.append(
            f"| {strat} | {len(rows)} | {rows[0]['labels']} | {reach_txt} | "
            f"{_ms([r['crystal_force'] for r in rows])} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "| strategy | seed | 1500 K NVT ps | min pair distance Å | NVE ps | NVE drift meV/atom | max dev. meV/atom |",
        "|---|---|---|---|---|---|---|",
    ]
    for strat, rows in summary.items():
        for r in rows:
            st = r["stability"]
            if st:
                lines.append(
                    f"| {strat} | {r['seed']} | {st['nvt_ps']:g}{'' if st['nvt_completed'] else ' (collapsed)'}"
                    f" | {st['nvt_min_distance']:.2f} | {st['nve_ps']:g} | "
                    f"{st['nve_drift_mev_per_atom']:.2f} | {st['nve_max_dev_mev_per_atom']:.2f} |"
                )
    lines += ["", "Force RMSE (eV/Å) on the 300–1500 K crystal frames against labels (mean over seeds):", ""]
    for strat, rows in summary.items():
        if rows:
            n = min(len(r["curve"]) for r in rows)
            pts = [(rows[0]["curve"][i][0], np.mean([r["curve"][i][1] for r in rows])) for i in range(n)]
            lines.append(f"- {strat}: " + ", ".join(f"{a}: {b:.3f}" for a, b in pts))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="explore_cmp")
    ap.add_argument("--strategies", nargs="+", default=["explore", "qbc", "random"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--budget", type=int, default=140)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--target", type=float, default=0.10, help="crystal force RMSE goal, eV/Å")
    ap.add_argument("--nvt-ps", type=float, default=5.0)
    ap.add_argument("--nve-ps", type=float, default=5.0)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    from alip.al.loop import run

    if not args.report_only:
        for s in args.seeds:
            for strat in args.strategies:
                out = os.path.join(args.out, f"{strat}_s{s}")
                t0 = time.time()
                run(config(strat, s, args.budget, out, args.workers), resume=True)
                stab_path = os.path.join(out, "md_stability.json")
                if not os.path.isfile(stab_path) and (args.nvt_ps > 0 or args.nve_ps > 0):
                    stab = md_stability(os.path.join(out, "committee.pt"), args.nvt_ps, args.nve_ps, seed=s)
                    with open(stab_path, "w") as fh:
                        json.dump(stab, fh, indent=1)
                print(f"{strat} seed {s}: {time.time() - t0:.0f} s", flush=True)
    summary = summarise(args.out, args.strategies, args.seeds, args.target)
    with open(os.path.join(args.out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1, default=str)
    print(tables(summary, args.target))


if __name__ == "__main__":
    main()
