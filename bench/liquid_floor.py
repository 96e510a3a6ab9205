"""Probe (issue 14, eighteenth study): is the liquid's energy error one that other descriptors
or more liquid frames remove?

    python bench/liquid_floor.py mix s0.pt s1.pt s2.pt windows.pt shells.pt n2p2.pt   # committees trained before
    python bench/liquid_floor.py curve --fraction 0.33 --subset-seed 0 --log curve.jsonl   # ~2.5 min on one core

``mix`` evaluates committee files on the mlearn test set (``alip train --spec D`` with other
descriptors, other seeds, ``alip import-n2p2``): each one's energy RMSE over all frames and per
phase (crystal / liquid, as ``bench/accuracy.py`` splits them), the correlation of every two
models' per-frame energy errors on the liquid frames, and the errors of the mean prediction of
every pair and of all of them. Models whose liquid errors correlate little would cancel in a
mean (a committee of mixed descriptors); models that share them would not.

``curve`` trains the default committee (``TrainConfig(seed=--seed, threads=1)``) on every
training frame of the other phase and a random ``--fraction`` of the ``--phase`` frames
(``--subset-seed`` draws them) and prints the test errors per phase: the liquid's learning
curve in its own frames. Both read the shared mlearn set (``--data``) with the shear stresses
fixed as ``bench/accuracy.py`` does.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from accuracy import DEFAULT_DATA, ground_energy, phase, read_mlearn  # noqa: E402


def energy_errors(energies: np.ndarray, frames: list) -> np.ndarray:
    """Per-frame energy error (meV/atom) of predicted total energies (eV) against the labels."""
    n = np.array([len(a) for a in frames], float)
    labels = np.array([a.get_potential_energy() for a in frames], float)
    return 1e3 * (np.asarray(energies, float) - labels) / n


def rmse_by_phase(err: np.ndarray, phases: list[str]) -> dict[str, float]:
    """RMSE over all frames (``"all"``) and over each phase's frames."""
    err, phases_a = np.asarray(err, float), np.asarray(phases)
    out = {"all": float(np.sqrt(np.mean(err**2)))}
    for p in sorted(set(phases)):
        out[p] = float(np.sqrt(np.mean(err[phases_a == p] ** 2)))
    return out


def mix_table(energies: dict[str, np.ndarray], frames: list, phases: list[str]) -> dict:
    """Each model alone, the correlation of every two models' liquid errors, and the mean
    prediction of every pair and of all: ``{"alone": {name: rmse_by_phase}, "correlation":
    {"a ~ b": r}, "mean": {"a + b": rmse_by_phase, ...}}`` (total energies in eV per frame)."""
    names = list(energies)
    errs = {n: energy_errors(energies[n], frames) for n in names}
    liquid = np.asarray(phases) == "liquid"
    out: dict = {"alone": {n: rmse_by_phase(errs[n], phases) for n in names}, "correlation": {}, "mean": {}}
    for a, b in itertools.combinations(names, 2):
        out["correlation"][f"{a} ~ {b}"] = float(np.corrcoef(errs[a][liquid], errs[b][liquid])[0, 1])
    combos = list(itertools.combinations(names, 2)) + ([tuple(names)] if len(names) > 2 else [])
    for combo in combos:
        mean = np.mean([energies[n] for n in combo], axis=0)
        out["mean"][" + ".join(combo)] = rmse_by_phase(energy_errors(mean, frames), phases)
    return out


def phase_fraction(phases: list[str], which: str, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of every frame not in phase ``which`` and a random ``fraction`` of those
    in it (rounded; at least one)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    phases_a = np.asarray(phases)
    inside = np.flatnonzero(phases_a == which)
    if not len(inside):
        raise ValueError(f"no frame of phase {which!r}")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(inside, size=max(1, int(round(fraction * len(inside)))), replace=False)
    return np.sort(np.concatenate([np.flatnonzero(phases_a != which), chosen]))


def _print_mix(table: dict) -> None:
    def row(name: str, r: dict[str, float]) -> str:
        cells = [r.get(k, float("nan")) for k in ("all", "crystal", "liquid")]
        return f"| {name} | " + " | ".join(f"{x:.2f}" for x in cells) + " |"

    print("| model | test E RMSE (meV/atom) | crystal | liquid |\n|---|---:|---:|---:|")
    print("\n".join(row(n, r) for n, r in table["alone"].items()))
    print("\n| liquid errors of | correlation |\n|---|---:|")
    print("\n".join(f"| {k} | {v:+.3f} |" for k, v in table["correlation"].items()))
    print("\n| mean prediction of | test E RMSE (meV/atom) | crystal | liquid |\n|---|---:|---:|---:|")
    print("\n".join(row(n, r) for n, r in sorted(table["mean"].items(), key=lambda kv: kv[1]["all"])))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA, help="mlearn-si directory (train.extxyz, test.extxyz)")
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("mix", help="committees alone and averaged, and their liquid errors' correlations")
    m.add_argument("models", nargs="+", help="committee files (alip train, alip import-n2p2); two or more")
    c = sub.add_parser("curve", help="the defaults on a fraction of one phase's training frames")
    c.add_argument("--phase", default="liquid", choices=("liquid", "crystal"))
    c.add_argument("--fraction", type=float, required=True, help="of that phase's training frames, in (0, 1]")
    c.add_argument("--subset-seed", type=int, default=0, help="draws the frames")
    c.add_argument("--seed", type=int, default=0, help="the committee's (TrainConfig.seed)")
    c.add_argument("--log", help="append the result (one JSON line) here")
    args = p.parse_args(argv)
    if args.cmd == "mix" and len(args.models) < 2:
        p.error("mix needs two or more committee files")
    if args.cmd == "curve" and not 0 < args.fraction <= 1:
        p.error(f"--fraction must be in (0, 1], got {args.fraction}")
    for path in getattr(args, "models", []):
        if not os.path.isfile(path):
            p.error(f"no committee file {path!r}")

    from alip.models.committee import Committee

    train = read_mlearn(os.path.join(args.data, "train.extxyz"))
    test = read_mlearn(os.path.join(args.data, "test.extxyz"))
    e_ground = ground_energy(train)
    test_phases = [phase(a, e_ground) for a in test]
    if args.cmd == "mix":
        energies = {
            os.path.splitext(os.path.basename(f))[0]: Committee.load(f).predict(test).energies.mean(0)
            for f in args.models
        }
        table = mix_table(energies, test, test_phases)
        _print_mix(table)
        print(json.dumps(table))
        return 0

    from alip.models.training import TrainConfig, errors, train_committee

    keep = phase_fraction([phase(a, e_ground) for a in train], args.phase, args.fraction, args.subset_seed)
    frames = [train[i] for i in keep]
    t0 = time.perf_counter()
    committee = train_committee(frames, None, TrainConfig(seed=args.seed, threads=1)).committee
    wall = time.perf_counter() - t0
    pred = committee.predict(test)
    rec = {
        "phase": args.phase,
        "fraction": args.fraction,
        "subset_seed": args.subset_seed,
        "seed": args.seed,
        "n_train": len(frames),
        "n_phase": int(sum(phase(a, e_ground) == args.phase for a in frames)),
        "test_energy": rmse_by_phase(energy_errors(pred.energies.mean(0), test), test_phases),
        "test_force_rmse": errors(committee, test)["force_rmse"],
        "wall_s": round(wall, 1),
    }
    print(json.dumps(rec))
    if args.log:
        with open(args.log, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
