"""Probe (issue 14, fourteenth study): which of the liquid's energy errors do the forces imply?

    python bench/accuracy.py --write-data /tmp/mlearn          # the files with the shear stresses fixed
    python bench/force_implied_energies.py                      # trains both committees, ~5 min on 2 cores
    python bench/force_implied_energies.py --reference ref.pt --model low.pt   # committees trained before

A committee trained with the energy weight lowered 100-fold (``--weight-energy 0.01``, all else
``TrainConfig()``) learns its energies almost only as the integral of the forces (and stresses);
the defaults fit the energy labels too. Per split and phase (crystal / liquid, as
``bench/accuracy.py`` splits them) the script prints both committees' energy RMSE, their mean
error (the phase's offset), the scatter about it (the frame-to-frame part) and the correlation
of the two committees' errors frame by frame. Where the energy labels carry what the forces
do not, the defaults' scatter falls below the force-led committee's and the two decorrelate;
where they stay alike, fitting the labels does not move the frames' energies off what the
forces imply. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from accuracy import ground_energy, phase, read_mlearn, split_errors  # noqa: E402


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
    p.add_argument("--data", default="/tmp/mlearn", help="directory of the fixed train.extxyz and test.extxyz")
    p.add_argument("--weight-energy", type=float, default=0.01, help="the force-led committee's energy weight")
    p.add_argument("--reference", help="a committee file trained with the defaults (else trained here)")
    p.add_argument("--model", help="a committee file trained with --weight-energy (else trained here)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from alip.models.calculator import Calculator
    from alip.models.committee import Committee
    from alip.models.training import TrainConfig, train_committee

    train = read_mlearn(os.path.join(args.data, "train.extxyz"), fix_shear=False)
    test = read_mlearn(os.path.join(args.data, "test.extxyz"), fix_shear=False)
    e_ground = ground_energy(train)

    def committee(path: str | None, **overrides: float) -> Committee:
        if path:
            return Committee.load(path)
        return train_committee(train, None, TrainConfig(seed=args.seed, **overrides)).committee

    low, ref = committee(args.model, weight_energy=args.weight_energy), committee(args.reference)
    result: dict[str, dict] = {"weight_energy": {"low": args.weight_energy, "reference": TrainConfig().weight_energy}}
    print(f"| split | phase | n | E RMSE w_E = {args.weight_energy:g} / defaults | mean | scatter | correlation |")
    print("|---|---|---:|---|---|---|---:|")
    for name, frames in (("train", train), ("test", test)):
        a = split_errors(lambda atoms: Calculator(low), frames, e_ground)
        b = split_errors(lambda atoms: Calculator(ref), frames, e_ground)
        stats = phase_stats(a["energy_errors"], b["energy_errors"], [phase(f, e_ground) for f in frames])
        result[name] = {"phases": stats, "force_rmse_low": a["force_rmse"], "force_rmse_ref": b["force_rmse"]}
        result[name] |= {"energy_rmse_low": a["energy_rmse"], "energy_rmse_ref": b["energy_rmse"]}
        for ph, s in stats.items():
            print(
                f"| {name} | {ph} | {s['n']} | {s['rmse_low']:.2f} / {s['rmse_ref']:.2f} | "
                f"{s['mean_low']:+.2f} / {s['mean_ref']:+.2f} | {s['scatter_low']:.2f} / {s['scatter_ref']:.2f} | "
                f"{s['correlation']:+.3f} |"
            )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
