"""A small measured comparison of two exploration features against their plain versions:
uncertainty-biased MD (``nvt_biased``) vs plain NVT exploration, and cost-aware EMC
(``[acquisition] cost = "atoms3"``) vs plain EMC on the generated pool.  Stillinger–Weber
oracle, one seed, a tiny budget: a smoke-sized measurement, not the evidence runs
(bench/explore_evidence.py).

    python bench/explore_features.py --out feat_cmp                 # 4 runs, 2 at a time
    python bench/explore_features.py --out feat_cmp --report-only   # the table from the run files

Every run is an ordinary ``alip run`` directory (OUT/<variant>); the test set is the family
test set plus the oracle's MD test set ([test] md, cached). Printed: final force RMSE on
the 300–1500 K crystal frames, the vacancy and the liquid, the overall test errors, the
label cost spent (Σ n_atoms³ in units of one 8-atom label, and the oracle's own seconds),
and for the explore runs the mean max force deviation of the selected frames and the
mean accurate / candidate / failed shares of the explored frames.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

CRYSTAL = ("md_crystal_300K", "md_crystal_900K", "md_crystal_1500K")
VARIANTS = ("explore_nvt", "explore_biased", "pool_emc", "pool_emc_atoms3")


def config(variant: str, out: str, seed: int, budget: int) -> dict:
    cfg = {
        "run": {
            "out": out,
            "seed": seed,
            "n_initial": 10,
            "batch_size": 10,
            "budget": budget,
            "progress": False,
            "threads": 1,
            "strategy": "qbc" if variant.startswith("explore") else "emc",
        },
        "oracle": {"spec": "sw"},
        "labeling": {"executor": "serial"},
        "pool": {"n": 400, "seed": 0},
        "test": {"n": 40, "n_volume": 12, "md": True},
        "training": {"n_members": 4, "hidden": [24, 24], "epochs": 150, "patience": 50, "lbfgs_steps": 40},
    }
    if variant.startswith("explore"):
        cfg["explore"] = {
            "enabled": True,
            "supercell": [1, 1, 1],
            "temperatures": [300.0, 900.0, 1500.0],
            "ensembles": ["nvt_biased"] if variant == "explore_biased" else ["nvt"],
            "steps": 300,
            "growth": 1.5,
            "every": 10,
            "max_trajectories": 6,
            "trust_lo": 0.1,
            "trust_hi": 1.0,
            "initial_rattle": 0.1,
            "bias_strength": 0.5,
            "bias_width": 0.02,
        }
    if variant == "pool_emc_atoms3":
        cfg["acquisition"] = {"cost": "atoms3"}
    return cfg


def run_one(args: tuple[str, str, int, int]) -> tuple[str, float]:
    from alip.al.loop import run

    variant, out, seed, budget = args
    t0 = time.perf_counter()
    run(config(variant, out, seed, budget), resume=True)
    return variant, time.perf_counter() - t0


def _rms(values: list[float]) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if values else math.nan


def summarise(out: str) -> list[dict]:
    from alip.al.run_dir import read_iterations
    from alip.data.store import LabelStore

    rows = []
    for variant in VARIANTS:
        path = os.path.join(out, variant)
        if not os.path.isdir(path):
            continue
        recs = read_iterations(path)
        last = recs[-1]
        fam = last["errors_by_family"]
        store = LabelStore(os.path.join(path, "labels.db"))
        sizes = np.array([len(a) for a in store.labeled()])
        _, seconds = store.label_times()
        selected_eps = [o["max_force_dev"] for r in recs for o in r.get("selected_origins", [])]
        trust = [r["explore"]["trust"] for r in recs if "explore" in r]
        rows.append(
            {
                "variant": variant,
                "labels": last["n_labels"],
                "crystal_F": _rms([fam[k]["force_rmse_ev_per_ang"] for k in CRYSTAL if k in fam]),
                "vacancy_F": fam.get("md_vacancy_900K", {}).get("force_rmse_ev_per_ang", math.nan),
                "liquid_F": fam.get("md_liquid_2000K", {}).get("force_rmse_ev_per_ang", math.nan),
                "test_F": last["errors"]["force_rmse_ev_per_ang"],
                "test_E": last["errors"]["energy_rmse_mev_per_atom"],
                "cost_n3": float((sizes.astype(float) ** 3).sum() / 8**3),
                "mean_atoms": float(sizes.mean()),
                "oracle_s": float(seconds.sum()),
                "selected_eps": float(np.mean(selected_eps)) if selected_eps else math.nan,
                "accurate": float(np.mean([t["accurate_fraction"] for t in trust])) if trust else math.nan,
                "candidate": float(np.mean([t["candidate_fraction"] for t in trust])) if trust else math.nan,
                "failed": float(np.mean([t["failed_fraction"] for t in trust])) if trust else math.nan,
            }
        )
    return rows


def table(rows: list[dict]) -> str:
    head = (
        "| variant | labels | crystal 300–1500 K F | vacancy F | liquid F | test F / E | "
        "cost Σn³ (8-atom labels) | mean atoms | oracle s | selected ε mean | accurate / candidate / failed |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        shares = "–" if math.isnan(r["accurate"]) else f"{r['accurate']:.2f} / {r['candidate']:.2f} / {r['failed']:.2f}"
        eps = "–" if math.isnan(r["selected_eps"]) else f"{r['selected_eps']:.3f}"
        lines.append(
            f"| {r['variant']} | {r['labels']} | {r['crystal_F']:.3f} | {r['vacancy_F']:.3f} | {r['liquid_F']:.3f} | "
            f"{r['test_F']:.3f} / {r['test_E']:.1f} | {r['cost_n3']:.0f} | {r['mean_atoms']:.1f} | "
            f"{r['oracle_s']:.2f} | {eps} | {shares} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="feat_cmp")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget", type=int, default=60)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if not args.report_only:
        tasks = [(v, os.path.join(args.out, v), args.seed, args.budget) for v in args.variants]
        with ProcessPoolExecutor(args.jobs) as pool:
            for variant, seconds in pool.map(run_one, tasks):
                print(f"{variant}: {seconds:.0f} s", flush=True)
    rows = summarise(args.out)
    with open(os.path.join(args.out, "summary.json"), "w") as fh:
        json.dump(rows, fh, indent=1)
    print(table(rows))


if __name__ == "__main__":
    main()
