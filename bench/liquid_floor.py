"""Probe (issue 14, eighteenth and nineteenth studies): is the liquid's energy error one that other
descriptors, more liquid frames or a physical baseline remove?

    python bench/liquid_floor.py mix s0.pt s1.pt s2.pt windows.pt shells.pt n2p2.pt   # committees trained before
    python bench/liquid_floor.py curve --fraction 0.33 --subset-seed 0 --log curve.jsonl   # ~2.5 min on one core
    python bench/liquid_floor.py baseline --potential sw --scale 0.5 --log delta.jsonl    # ~3 min on one core
    python bench/liquid_floor.py split --fraction 0.667 --out /tmp/fold      # a held-out third of the liquid
    python bench/accuracy.py --data /tmp/fold --models default,mace --save-dir /tmp/fold/save
    python bench/liquid_floor.py --data /tmp/fold mix --frames /tmp/fold/heldout.extxyz \
        /tmp/fold/save/alip_default.pt /tmp/fold/save/mace/model/mace_stagetwo.model

``mix`` evaluates committee files on the mlearn test set (``alip train --spec D`` with other
descriptors, other seeds, ``alip import-n2p2``): each one's energy RMSE over all frames and per
phase (crystal / liquid, as ``bench/accuracy.py`` splits them), the correlation of every two
models' per-frame energy errors on the liquid frames, and the errors of the mean prediction of
every pair and of all of them. Models whose liquid errors correlate little would cancel in a
mean (a committee of mixed descriptors); models that share them would not. ``--frames FILE``
judges them on other frames than the test set's (a fold's held-out frames); a ``.model`` file is a
MACE model (``bench/accuracy.py --models mace --save-dir``), evaluated through its calculator.

``curve`` trains the default committee (``TrainConfig(seed=--seed, threads=1)``) on every
training frame of the other phase and a random ``--fraction`` of the ``--phase`` frames
(``--subset-seed`` draws them) and prints the test errors per phase: the liquid's learning
curve in its own frames.

``baseline`` (Δ-learning) trains the default committee on the labels minus ``--scale`` times a
published potential (``--potential``: alip's ``manybody`` oracle, Stillinger–Weber, Kumagai or
Tersoff; ``none`` is the control) and predicts committee + baseline: training, cross-validation
(each held-out frame by the members that held it out: 105 frames, 32 of them liquid with seed 0)
and test errors per phase; ``--train`` changes other training settings (``--potential none
--train '{"weight_forces": 0.3}'``: a setting judged on the cross-validation's liquid frames, more
than the test's 9).

``split`` writes a fold for any model (twenty-third study): ``--out``/train.extxyz, the training
frames ``curve`` would train on (every frame of the other phase and ``--fraction`` of the
``--phase`` frames), heldout.extxyz, the rest of that phase's training frames, and test.extxyz,
all as the shared files store them (so every bench reads them as it reads those), and split.json
with the training indices of both. All read the shared mlearn set (``--data``); ``mix``, ``curve`` and
``baseline`` with the shear stresses fixed as ``bench/accuracy.py`` does, ``split`` as stored.
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

from accuracy import (  # noqa: E402
    DEFAULT_DATA,
    ground_energy,
    labels,
    mace_calculator,
    phase,
    read_mlearn,
    split_errors,
)


def energy_errors(energies: np.ndarray, frames: list) -> np.ndarray:
    """Per-frame energy error (meV/atom) of predicted total energies (eV) against the labels."""
    n = np.array([len(a) for a in frames], float)
    label_energies = np.array([a.get_potential_energy() for a in frames], float)
    return 1e3 * (np.asarray(energies, float) - label_energies) / n


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
    for a, b in itertools.combinations(names, 2) if liquid.sum() > 1 else ():  # none without liquid frames
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


def write_split(data: str, out: str, which: str, fraction: float, seed: int) -> dict[str, list[int]]:
    """The fold ``split`` writes (see the module docstring): ``{"kept": [...], "held_out": [...]}``,
    indices into the training frames of ``data``."""
    from ase.io import write

    train = read_mlearn(os.path.join(data, "train.extxyz"), fix_shear=False)  # as stored: written back as such
    test = read_mlearn(os.path.join(data, "test.extxyz"), fix_shear=False)
    e_ground = ground_energy(train)
    phases = [phase(a, e_ground) for a in train]
    kept = [int(i) for i in phase_fraction(phases, which, fraction, seed)]
    held_out = sorted(set(range(len(train))) - set(kept))
    if not held_out:
        raise ValueError(f"a fraction of {fraction} holds out no {which} frame")
    os.makedirs(out, exist_ok=True)
    write(os.path.join(out, "train.extxyz"), [train[i] for i in kept])
    write(os.path.join(out, "heldout.extxyz"), [train[i] for i in held_out])
    write(os.path.join(out, "test.extxyz"), test)
    split = {"kept": kept, "held_out": held_out}
    with open(os.path.join(out, "split.json"), "w") as fh:
        json.dump({"phase": which, "fraction": fraction, "subset_seed": seed, "data": data, **split}, fh)
    return split


def model_energies(path: str, frames: list) -> np.ndarray:
    """Total energies (eV) of ``frames``: a committee file's mean, or a MACE model's (``.model``)."""
    if path.endswith(".model"):
        calc = mace_calculator(path)
        out = []
        for atoms in frames:
            a = atoms.copy()
            a.calc = calc
            out.append(a.get_potential_energy())
        return np.array(out)
    from alip.models.committee import Committee

    return Committee.load(path).predict(frames).energies.mean(0)


def baseline_labels(atoms, potential: str, scale: float) -> tuple[float, np.ndarray, np.ndarray]:
    """``scale`` × (energy, forces, Voigt stress) of a published potential (alip's ``manybody``
    oracle) on ``atoms``; zeros for ``"none"``."""
    if potential == "none":
        return 0.0, np.zeros((len(atoms), 3)), np.zeros(6)
    from alip.data.oracles import make_oracle

    b = atoms.copy()
    b.calc = make_oracle({"type": "manybody", "potential": potential}).make_calculator(b)
    return scale * b.get_potential_energy(), scale * b.get_forces(), scale * b.get_stress(voigt=True)


def residual_frames(frames: list, base) -> list:
    """Copies of ``frames`` labelled with their labels minus ``base(atoms)`` (energy, forces, stress)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    out = []
    for a in frames:
        e, f, s = labels(a)
        eb, fb, sb = base(a)
        b = a.copy()
        b.calc = SinglePointCalculator(b, energy=e - eb, forces=f - fb, stress=s - sb)
        out.append(b)
    return out


def plus_baseline(committee, base):
    """A calculator factory (for ``accuracy.split_errors``): ``committee`` + ``base``."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from alip.models.calculator import Calculator

    def factory(atoms):
        eb, fb, sb = base(atoms)
        b = atoms.copy()
        b.calc = Calculator(committee)
        e, f, s = b.get_potential_energy(), b.get_forces(), b.get_stress(voigt=True)
        return SinglePointCalculator(atoms, energy=e + eb, forces=f + fb, stress=s + sb)

    return factory


def _print_mix(table: dict, judged: str = "test") -> None:
    def row(name: str, r: dict[str, float]) -> str:
        cells = [f"{r[k]:.2f}" if k in r else "—" for k in ("all", "crystal", "liquid")]  # a phase without frames: —
        return f"| {name} | " + " | ".join(cells) + " |"

    print(f"| model | {judged} E RMSE (meV/atom) | crystal | liquid |\n|---|---:|---:|---:|")
    print("\n".join(row(n, r) for n, r in table["alone"].items()))
    print("\n| liquid errors of | correlation |\n|---|---:|")
    print("\n".join(f"| {k} | {v:+.3f} |" for k, v in table["correlation"].items()))
    print(f"\n| mean prediction of | {judged} E RMSE (meV/atom) | crystal | liquid |\n|---|---:|---:|---:|")
    print("\n".join(row(n, r) for n, r in sorted(table["mean"].items(), key=lambda kv: kv[1]["all"])))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA, help="mlearn-si directory (train.extxyz, test.extxyz)")
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("mix", help="committees alone and averaged, and their liquid errors' correlations")
    m.add_argument(
        "models", nargs="+", help="committee files (alip train, alip import-n2p2) or MACE .model files; two or more"
    )
    m.add_argument("--frames", help="an extxyz to judge them on instead of the test set (split's heldout.extxyz)")
    c = sub.add_parser("curve", help="the defaults on a fraction of one phase's training frames")
    c.add_argument("--phase", default="liquid", choices=("liquid", "crystal"))
    c.add_argument("--fraction", type=float, required=True, help="of that phase's training frames, in (0, 1]")
    c.add_argument("--subset-seed", type=int, default=0, help="draws the frames")
    c.add_argument("--seed", type=int, default=0, help="the committee's (TrainConfig.seed)")
    c.add_argument("--log", help="append the result (one JSON line) here")
    b = sub.add_parser("baseline", help="the defaults on the labels minus a published potential (Δ-learning)")
    b.add_argument("--potential", required=True, choices=("none", "sw", "kumagai", "tersoff"))
    b.add_argument("--scale", type=float, default=1.0, help="of the potential, > 0 (default 1)")
    b.add_argument("--seed", type=int, default=0, help="the committee's (TrainConfig.seed)")
    b.add_argument("--train", default="{}", help="other TrainConfig settings as JSON, e.g. '{\"weight_forces\": 0.3}'")
    b.add_argument("--log", help="append the result (one JSON line) here")
    s_ = sub.add_parser("split", help="write a fold: training frames without a held-out part of one phase")
    s_.add_argument("--phase", default="liquid", choices=("liquid", "crystal"))
    s_.add_argument("--fraction", type=float, required=True, help="of that phase's training frames kept, in (0, 1)")
    s_.add_argument("--subset-seed", type=int, default=0, help="draws the frames")
    s_.add_argument("--out", required=True, help="directory for train.extxyz, heldout.extxyz, test.extxyz, split.json")
    args = p.parse_args(argv)
    if args.cmd == "baseline" and not args.scale > 0:
        p.error(f"--scale must be > 0, got {args.scale}")
    if args.cmd == "baseline":
        try:
            args.train = json.loads(args.train)
        except json.JSONDecodeError as exc:
            p.error(f"--train is not JSON: {exc}")
        if not isinstance(args.train, dict) or {"seed", "threads"} & set(args.train):
            p.error("--train must be a JSON object of TrainConfig settings other than seed and threads")
    if args.cmd == "mix" and len(args.models) < 2:
        p.error("mix needs two or more model files")
    if args.cmd == "curve" and not 0 < args.fraction <= 1:
        p.error(f"--fraction must be in (0, 1], got {args.fraction}")
    if args.cmd == "split" and not 0 < args.fraction < 1:
        p.error(f"--fraction must be in (0, 1) (what is not kept is held out), got {args.fraction}")
    for path in getattr(args, "models", []):
        if not os.path.isfile(path):
            p.error(f"no model file {path!r}")
    if getattr(args, "frames", None) and not os.path.isfile(args.frames):
        p.error(f"no frames file {args.frames!r}")
    if args.cmd == "split" and os.path.realpath(args.out) == os.path.realpath(args.data):
        p.error("--out must not be the --data directory (split would overwrite its input)")
    if args.cmd == "split":
        try:
            split = write_split(args.data, args.out, args.phase, args.fraction, args.subset_seed)
        except (OSError, ValueError) as exc:
            print(f"bench/liquid_floor.py: {exc}", file=sys.stderr)
            return 2
        print(
            f"{len(split['kept'])} training frames kept, {len(split['held_out'])} {args.phase} held out -> {args.out}"
        )
        return 0

    train = read_mlearn(os.path.join(args.data, "train.extxyz"))
    test = read_mlearn(os.path.join(args.data, "test.extxyz"))
    e_ground = ground_energy(train)
    test_phases = [phase(a, e_ground) for a in test]
    if args.cmd == "mix":
        judged = read_mlearn(args.frames) if args.frames else test
        names = [os.path.splitext(os.path.basename(f))[0] for f in args.models]
        if len(set(names)) < len(names):  # e.g. two runs' mace_stagetwo.model: name them by their paths
            names = [os.path.splitext(os.path.relpath(f))[0] for f in args.models]
        if len(set(names)) < len(names):
            p.error("a model file is named twice")
        energies = {n: model_energies(f, judged) for n, f in zip(names, args.models, strict=True)}
        table = mix_table(energies, judged, [phase(a, e_ground) for a in judged])
        _print_mix(table, os.path.basename(args.frames) if args.frames else "test")
        print(json.dumps(table))
        return 0

    from alip.models.training import TrainConfig, errors, train_committee

    if args.cmd == "baseline":
        return _baseline(args, train, test, e_ground)
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


def _baseline(args, train: list, test: list, e_ground: float) -> int:
    from alip.models.committee import Committee
    from alip.models.training import TrainConfig, train_committee

    base = lambda atoms: baseline_labels(atoms, args.potential, args.scale)  # noqa: E731
    t0 = time.perf_counter()
    res = train_committee(residual_frames(train, base), None, TrainConfig(seed=args.seed, threads=1, **args.train))
    wall = time.perf_counter() - t0
    c, held = res.committee, {}
    cv_calcs = []
    for j in range(len(res.val_indices)):  # each held-out frame by the members that held it out
        members = tuple(np.flatnonzero(res.held_out[:, j]).tolist())
        held.setdefault(members, Committee(c.acsf, c.network.select(members), c.metadata))
        cv_calcs.append(plus_baseline(held[members], base))
    rec: dict = {"potential": args.potential, "scale": args.scale, "seed": args.seed, "train_config": args.train}
    rec["wall_s"] = round(wall, 1)
    for split, frames, calcs in (
        ("train", train, plus_baseline(c, base)),
        ("cv", [train[i] for i in res.val_indices], cv_calcs),
        ("test", test, plus_baseline(c, base)),
    ):
        err = split_errors(calcs, frames, e_ground)
        rec[split] = {k: err[k] for k in ("n", "energy_rmse", "force_rmse", "stress_rmse")} | {
            "phases": {p: {k: v[k] for k in ("n", "energy_rmse", "force_rmse")} for p, v in err["phases"].items()}
        }
        ph = ", ".join(f"{p} {v['energy_rmse']:.2f}" for p, v in rec[split]["phases"].items())
        print(f"{split}: E {err['energy_rmse']:.2f} meV/atom ({ph}), F {err['force_rmse']:.4f} eV/Å")
    print(json.dumps(rec))
    if args.log:
        with open(args.log, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
