"""Probe (issue 14, fourteenth study): which of the liquid's energy errors do the forces imply?

    python bench/force_implied_energies.py                      # trains both committees, ~5 min on 2 cores
    python bench/force_implied_energies.py --reference s0.pt s1.pt s2.pt   # defaults trained before (seeds)

A committee trained with the energy weight lowered 100-fold (``--weight-energy 0.01``, all else
``TrainConfig()``) learns its energies almost only as the integral of the forces (and stresses);
the defaults fit the energy labels too. Per split and phase (crystal / liquid, as
``bench/accuracy.py`` splits them) the script prints both committees' energy RMSE, their mean
error (the phase's offset), the scatter about it (the frame-to-frame part) and the correlation
of the two committees' errors frame by frame. Where the energy labels carry what the forces
do not, the defaults' scatter falls below the force-led committee's and the two decorrelate;
where they stay alike, fitting the labels does not move the frames' energies off what the
committee makes of the forces. With several ``--reference`` committees (the defaults with other
seeds) it also prints their scatter and correlations: how much the defaults differ from
themselves. Reads the shared mlearn set (``--data``) with the shear stresses fixed as
``bench/accuracy.py`` does. Prints the tables and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from accuracy import DEFAULT_DATA, ground_energy, phase, read_mlearn, split_errors, subset  # noqa: E402


def phase_stats(err_low: np.ndarray, err_ref: np.ndarray, phases: list[str]) -> dict[str, dict[str, float]]:
    """Per phase: n, each model's RMSE, mean and scatter about the mean (population standard
    deviation) of the per-frame errors, and the correlation of the two models' errors."""
    err_low, err_ref, phases = np.asarray(err_low, float), np.asarray(err_ref, float), np.asarray(phases)
    out: dict[str, dict[str, float]] = {}
    for p in sorted(set(phases.tolist())):
        m = phases == p
        a, b = err_low[m], err_ref[m]
        out[p] = {
            "n": int(m.sum()),
            "rmse_low": float(np.sqrt(np.mean(a**2))),
            "mean_low": float(a.mean()),
            "scatter_low": float(a.std()),
            "rmse_ref": float(np.sqrt(np.mean(b**2))),
            "mean_ref": float(b.mean()),
            "scatter_ref": float(b.std()),
            "correlation": float(np.corrcoef(a, b)[0, 1]) if m.sum() > 1 else float("nan"),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA, help="mlearn-si directory (train.extxyz, test.extxyz)")
    p.add_argument("--stored-shear", action="store_true", help="read the files as stored (else the shear fix)")
    p.add_argument("--weight-energy", type=float, default=0.01, help="the force-led committee's energy weight")
    p.add_argument(
        "--reference",
        nargs="*",
        default=[],
        help="committee files trained with the defaults (e.g. `alip train` with seeds 0, 1, 2): the first is "
        "the table's, the others the seed control (else the defaults are trained here with --seed)",
    )
    p.add_argument("--model", help="a committee file trained with --weight-energy (else trained here)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from alip.models.calculator import Calculator
    from alip.models.committee import Committee
    from alip.models.training import TrainConfig, train_committee

    train = read_mlearn(os.path.join(args.data, "train.extxyz"), not args.stored_shear)
    test = read_mlearn(os.path.join(args.data, "test.extxyz"), not args.stored_shear)
    e_ground = ground_energy(train)

    def trained(**overrides: float) -> Committee:
        t0 = time.perf_counter()
        res = train_committee(train, None, TrainConfig(seed=args.seed, **overrides))
        print(
            f"trained {overrides or 'the defaults'} (seed {args.seed}) in {time.perf_counter() - t0:.1f} s", flush=True
        )
        return res.committee

    low = Committee.load(args.model) if args.model else trained(weight_energy=args.weight_energy)
    refs = [Committee.load(f) for f in args.reference] or [trained()]
    result: dict[str, dict] = {
        "weight_energy": {
            "low": low.metadata.get("train_config", {}).get("weight_energy", args.weight_energy),
            "references": [c.metadata.get("train_config", {}).get("weight_energy") for c in refs],
        }
    }
    rows, control, family_rows = [], [], []
    for name, frames in (("train", train), ("test", test)):
        phases = [phase(f, e_ground) for f in frames]
        a = split_errors(lambda atoms: Calculator(low), frames, e_ground)
        bs = [split_errors(lambda atoms, c=c: Calculator(c), frames, e_ground) for c in refs]
        stats = phase_stats(a["energy_errors"], bs[0]["energy_errors"], phases)
        result[name] = {"phases": stats, "force_rmse_low": a["force_rmse"], "force_rmse_ref": bs[0]["force_rmse"]}
        result[name] |= {"energy_rmse_low": a["energy_rmse"], "energy_rmse_ref": bs[0]["energy_rmse"]}
        families = [f"{phase(f, e_ground)}: {subset(f, e_ground)}" for f in frames]
        within = phase_stats(a["energy_errors"], bs[0]["energy_errors"], families)
        result[name]["families"] = within
        family_rows.extend(
            f"| {name} | {fam} | {st['n']} | {st['mean_low']:+.2f} / {st['mean_ref']:+.2f} | "
            f"{st['scatter_low']:.2f} / {st['scatter_ref']:.2f} | {st['correlation']:+.3f} |"
            for fam, st in within.items()
        )
        for ph, st in stats.items():
            rows.append(
                f"| {name} | {ph} | {st['n']} | {st['rmse_low']:.2f} / {st['rmse_ref']:.2f} | "
                f"{st['mean_low']:+.2f} / {st['mean_ref']:+.2f} | {st['scatter_low']:.2f} / {st['scatter_ref']:.2f} | "
                f"{st['correlation']:+.3f} |"
            )
        if len(bs) > 1:  # the seed control: how much the defaults differ from themselves
            seeds = {}
            with_low = [phase_stats(a["energy_errors"], b["energy_errors"], phases) for b in bs]
            between = [phase_stats(bs[0]["energy_errors"], b["energy_errors"], phases) for b in bs[1:]]
            for ph in stats:
                seeds[ph] = {
                    "scatter_refs": [s[ph]["scatter_ref"] for s in with_low],
                    "correlation_low_refs": [s[ph]["correlation"] for s in with_low],
                    "correlation_first_ref_others": [s[ph]["correlation"] for s in between],
                }
                control.append(
                    f"| {name} | {ph} | {' / '.join(f'{x:.2f}' for x in seeds[ph]['scatter_refs'])} | "
                    f"{' / '.join(f'{x:+.3f}' for x in seeds[ph]['correlation_low_refs'])} | "
                    f"{' / '.join(f'{x:+.3f}' for x in seeds[ph]['correlation_first_ref_others'])} |"
                )
            result[name]["seed_control"] = seeds
    print(f"| split | phase | n | E RMSE w_E = {args.weight_energy:g} / defaults | offset | scatter | correlation |")
    print("|---|---|---:|---|---|---|---:|")
    print("\n".join(rows))
    print("\n| split | phase: family | n | offset, force-led / defaults | scatter | correlation |")
    print("|---|---|---:|---|---|---:|")
    print("\n".join(family_rows))
    if control:
        print(
            "\n| split | phase | scatter, each reference | correlation with the force-led | with the first reference |"
        )
        print("|---|---|---|---|---|")
        print("\n".join(control))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
