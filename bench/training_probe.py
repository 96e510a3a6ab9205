"""Which training reaches 0.10 eV/Å crystal force RMSE, with how many labels, at what cost?

Retrains committees on the first N labels of an existing run (labels in the order the run
paid them: iteration 0, 1, ...) with several [training] tables and measures, on the run's
own MD test set, the force / energy RMSE of the 300–1500 K crystal frames (and the other
MD subsets) and the training time.  The run's descriptor and its labels are reused; no
oracle call is made.

    OMP_NUM_THREADS=1 python bench/training_probe.py RUN_DIR --labels 60 100 140 \
        --variants fast default between --out probe.json

Results are appended to ``--out`` (one JSON object per line) as each training finishes, so an
interrupted probe keeps what it measured and a rerun skips the (labels, variant) pairs done.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from explore_evidence import CRYSTAL, SUBSETS, TRAINING, crystal_force_rmse  # noqa: E402

#: Training tables compared, each a change of the pinned fast TRAINING of the evidence runs.
#: ``default``: the package's current defaults (alip.config.TrainingSection).
VARIANTS: dict[str, dict] = {
    "fast": {},
    "default": "defaults",  # type: ignore[dict-item]
    # the defaults' network and batch, a third of their Adam epochs, with L-BFGS
    "between": {
        "hidden": [32, 32],
        "activation": "silu",
        "batch_size": 4,
        "epochs": 100,
        "lr": 5e-3,
        "lr_final": 2e-4,
        "lbfgs_steps": 100,
        "patience": 100,
    },
    # the fast Adam schedule followed by an L-BFGS polish (100 steps: the defaults' until issue 14's third study)
    "fast-lbfgs": {"lbfgs_steps": 100},
    # the fast training with SiLU and the defaults' network
    "fast-silu": {"hidden": [32, 32], "activation": "silu"},
    # the fast training with forces weighted 10x more
    "fast-wf1": {"weight_forces": 1.0},
}


def training_table(variant: str) -> dict:
    """The [training] table of one variant (the package defaults for ``default``)."""
    from alip.config import TrainingSection

    change = VARIANTS[variant]
    if change == "defaults":
        import dataclasses

        table = dataclasses.asdict(TrainingSection())
    else:
        table = {**TRAINING, **change}
    table["energy_weighting"] = table["energy_weighting"] or None  # 0 in a TOML table means off
    return table


def first_labels(run: str, n: int) -> list | None:
    """The first ``n`` labeled structures of ``run`` in the order they were paid for (None: fewer)."""
    from alip.data.store import LabelStore

    store = LabelStore(os.path.join(run, "labels.db"))
    out: list = []
    it = 0
    while len(out) < n:
        got = store.structures("labeled", iteration=it)
        if not got and it > 100:
            break
        out += got
        it += 1
    return out[:n] if len(out) >= n else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="alip run directories (labels.db, config.toml, test.extxyz)")
    ap.add_argument("--labels", nargs="+", type=int, default=[60, 100, 140])
    ap.add_argument("--variants", nargs="+", default=["fast", "default", "between"], choices=list(VARIANTS))
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    ap.add_argument("--out", default="training_probe.jsonl")
    ap.add_argument("--target", type=float, default=0.10, help="crystal force RMSE goal, eV/Å")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()

    done = []
    if os.path.isfile(args.out):
        with open(args.out) as fh:
            done = [json.loads(line) for line in fh if line.strip()]
    if not args.report_only:
        import torch

        from alip.al.loop import evaluate_test_set, make_acsf
        from alip.config import load_config
        from alip.data.io import read_extxyz
        from alip.models.training import TrainConfig, train_committee

        torch.set_num_threads(1)
        inputs: dict[str, tuple] = {}
        for n in args.labels:
            for run in args.runs:
                todo = [
                    v
                    for v in args.variants
                    if not any(
                        d["run"] == run and d["labels"] == n and d["variant"] == v and d["seed"] == args.seed
                        for d in done
                    )
                ]
                if not todo:
                    continue
                if run not in inputs:
                    cfg = load_config(os.path.join(run, "config.toml"))
                    test = [a for a in read_extxyz(os.path.join(run, "test.extxyz")) if a.info["family"] in SUBSETS]
                    inputs[run] = (make_acsf(cfg), test)
                acsf, test = inputs[run]
                atoms = first_labels(run, n)
                if atoms is None:
                    print(f"{run}: fewer than {n} labels, skipped", flush=True)
                    continue
                for variant in todo:
                    tc = TrainConfig(**training_table(variant), seed=args.seed, threads=1)
                    t0 = time.perf_counter()
                    result = train_committee(atoms, acsf, tc)
                    wall = time.perf_counter() - t0
                    _, by_family = evaluate_test_set(result.committee, test)
                    rec = {
                        "run": run,
                        "labels": n,
                        "variant": variant,
                        "seed": args.seed,
                        "train_s": wall,
                        "load": os.getloadavg()[0],
                        "crystal_force": crystal_force_rmse(by_family),
                        "crystal_energy": float(
                            np.sqrt(np.mean([by_family[k]["energy_rmse_mev_per_atom"] ** 2 for k in CRYSTAL]))
                        ),
                        "by_family": by_family,
                    }
                    done.append(rec)
                    with open(args.out, "a") as fh:
                        fh.write(json.dumps(rec) + "\n")
                    print(
                        f"{run} {n:4d} labels {variant:>10}: crystal F {rec['crystal_force']:.3f} eV/Å, "
                        f"E {rec['crystal_energy']:.1f} meV/atom, train {wall:.0f} s (load {rec['load']:.1f})",
                        flush=True,
                    )
    print(tables(done, args.target))


def strategy_of(run: str) -> str:
    """``.../explore_s0`` -> ``explore``: the strategy of an explore_evidence run directory."""
    return os.path.basename(os.path.normpath(run)).rsplit("_s", 1)[0]


def tables(done: list[dict], target: float) -> str:
    """Markdown: crystal force RMSE (mean ± std over the runs of a strategy) per label count
    and training, the labels to ``target`` per run, and the training times."""
    groups: dict[tuple[str, str], dict[int, list[dict]]] = {}
    for d in done:
        groups.setdefault((strategy_of(d["run"]), d["variant"]), {}).setdefault(d["labels"], []).append(d)
    counts = sorted({d["labels"] for d in done})
    lines = [
        "Crystal 300–1500 K force RMSE, eV/Å (mean ± std over runs; (k): k runs), and mean training time, s:",
        "",
        "| label set | training | " + " | ".join(str(n) for n in counts) + f" | labels to ≤ {target:.2f} per run |",
        "|---|---|" + "---|" * len(counts) + "---|",
    ]
    for (strat, variant), by_n in sorted(groups.items(), key=lambda kv: (kv[0][0], list(VARIANTS).index(kv[0][1]))):
        runs = sorted({d["run"] for ds in by_n.values() for d in ds})
        cells = []
        for n in counts:
            ds = by_n.get(n, [])
            f = [d["crystal_force"] for d in ds]
            if not f:
                cells.append("–")
                continue
            txt = f"{np.mean(f):.3f}" + (f" ± {np.std(f, ddof=1):.3f}" if len(f) > 1 else "")
            txt += f" ({len(f)})" if len(f) < len(runs) else ""
            cells.append(txt + f" [{np.mean([d['train_s'] for d in ds]):.0f} s]")
        reach = []
        for run in runs:
            curve = sorted((d["labels"], d["crystal_force"]) for ds in by_n.values() for d in ds if d["run"] == run)
            hit = next((n for n, f in curve if f <= target), None)
            reach.append(str(hit) if hit is not None else f"> {curve[-1][0]}")
        lines.append(f"| {strat} | {variant} | " + " | ".join(cells) + " | " + ", ".join(reach) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
