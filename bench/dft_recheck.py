"""Probe (issue 14, fifteenth study): do the mlearn energy labels agree with an independent DFT
where the models miss them?

    python bench/dft_recheck.py run --frames test:18,15 --out recheck.jsonl        # GPAW, one core
    python bench/dft_recheck.py compare recheck.jsonl --models s0.pt s1.pt s2.pt
    python bench/dft_recheck.py run --basis dzp --kpts 3 --frames test:15 --out lcao.jsonl   # and --kpts 2
    python bench/dft_recheck.py kpoints lcao.jsonl --basis dzp --kpts 2 3 --models s0.pt s1.pt s2.pt

``run`` recomputes chosen frames of the shared mlearn set (``split:index,index``, indices into
``train.extxyz`` / ``test.extxyz``) with GPAW: PBE, plane waves (``--ecut``), a Monkhorst–Pack
k-mesh (``--kpts``; Gamma alone for 1) on the Niggli-reduced cell, Fermi–Dirac smearing
(``--width``), no point-group symmetry (time reversal only). One JSON line per frame: the
energy extrapolated to zero width (VASP's "energy(sigma->0)"), the free energy (the one its
forces derive from), the forces, the label and the seconds it took. Frames already in
``--out`` with the same settings are skipped, so an interrupted run resumes without paying for
a frame twice. Run one process per core with ``OMP_NUM_THREADS=1`` (GPAW's PW mode is slower
with threads); a 64-atom frame takes 13–30 min on one core.

``compare`` reads those lines (one setting: ``--kpts`` etc.) and, per frame, sets the label, the
GPAW energy and each committee's prediction side by side. The two codes differ by a constant per
atom (their reference energies: pseudopotentials, cutoffs); :func:`label_consistency` removes
the one constant that best fits all frames and reports what is left per frame: where the labels
and an independent DFT agree, what is left is the recomputation's own noise; where a model's
error against the labels is the labels' own deviation, the model agrees with the recomputation
better than with the labels.

``kpoints`` (eighteenth study) reads frames recomputed at two k-meshes, the other settings equal
(``--basis dzp``: GPAW's LCAO mode, a 64-atom liquid frame at 2×2×2 in 645 s on one core where
plane waves took 1,311–1,782 s; its forces are further from the labels, 0.11–0.13 eV/Å, but it is
the energy's change with the mesh that is asked for), and prints per frame how far the energy moves
beside each committee's error against the labels: labels short of converged k-points that the
models see through would show as errors that follow the shifts. Needs ``gpaw`` for ``run`` only
(README, "Real DFT with GPAW").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from accuracy import DEFAULT_DATA, ground_energy, read_mlearn, subset  # noqa: E402

#: GPAW's SCF criteria: energy change per valence electron (eV; 2e-5 is 0.08 meV/atom for Si),
#: density change per electron, force change (eV/Å)
CONVERGENCE = {"energy": 2e-5, "density": 1e-4, "forces": 5e-3}

#: the keys that make two recomputations of a frame the same one
SETTING_KEYS = ("split", "index", "kpts", "ecut", "width", "basis")


def parse_frames(specs: list[str]) -> list[tuple[str, int]]:
    """``["test:18,15", "train:3"]`` -> ``[("test", 18), ("test", 15), ("train", 3)]``."""
    out = []
    for spec in specs:
        split, _, idx = spec.partition(":")
        if split not in ("train", "test") or not idx:
            raise SystemExit(f"--frames: expected split:index[,index...] with split train or test, got {spec!r}")
        out.extend((split, int(i)) for i in idx.split(","))
    return out


def read_records(path: str) -> list[dict]:
    """The JSON lines of ``path`` (none if it does not exist)."""
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def recompute(atoms, kpts: int, ecut: float, width: float, txt: str | None, basis: str | None = None) -> dict:
    """GPAW PBE energy (extrapolated to zero width and free) and forces of ``atoms``, set up by
    alip's own GPAW oracle with a fixed k-mesh in place of its k-point density; with ``basis``
    (e.g. ``"dzp"``) in GPAW's LCAO mode instead of plane waves (``ecut`` then unused)."""
    from ase.build import niggli_reduce

    from alip.data.oracles import GPAWOracle, limit_threads

    b = atoms.copy()
    niggli_reduce(b)  # the same lattice, atoms in their order; the mlearn vacancy cells are up to 57° skewed
    extra = {
        "kpts": {"size": (kpts, kpts, kpts), "gamma": kpts == 1},
        "symmetry": {"point_group": False, "time_reversal": True},
        "convergence": CONVERGENCE,
        "txt": txt,
    }
    if basis:
        extra |= {"mode": "lcao", "basis": basis}
    b.calc = GPAWOracle(ecut=ecut, xc="PBE", smearing=width, extra=extra).make_calculator(b)
    t0 = time.perf_counter()
    with limit_threads():
        energy = float(b.get_potential_energy())
        free = float(b.get_potential_energy(force_consistent=True))
        forces = b.get_forces()
    return {"energy": energy, "free_energy": free, "forces": forces.tolist(), "seconds": time.perf_counter() - t0}


def label_consistency(n_atoms, e_label, e_dft, e_model=None) -> dict:
    """Labels against an independent DFT, per atom, after the one constant per atom that best
    fits all frames (the codes' reference energies) is removed.

    ``e_*`` are total energies (eV) per frame. Returns meV/atom: ``offset`` (label - DFT, the
    constant), ``label_minus_dft`` per frame and its RMS (what the two DFTs disagree on, frame to
    frame); with ``e_model`` also the model's ``error`` against the labels, ``model_minus_dft``
    (against the recomputation shifted by the offset), their RMS, and the correlation of the
    model's error with the labels' deviation (-1 when the model's error is the labels' own)."""
    n = np.asarray(n_atoms, float)
    label, dft = np.asarray(e_label, float) / n, np.asarray(e_dft, float) / n
    offset = float(np.mean(label - dft))
    dev = 1e3 * (label - dft - offset)
    out = {"offset": 1e3 * offset, "label_minus_dft": dev.tolist(), "label_rms": float(np.sqrt(np.mean(dev**2)))}
    if e_model is not None:
        model = np.asarray(e_model, float) / n
        err = 1e3 * (model - label)
        vs_dft = 1e3 * (model - dft - offset)
        out |= {
            "error": err.tolist(),
            "model_minus_dft": vs_dft.tolist(),
            "error_rms": float(np.sqrt(np.mean(err**2))),
            "model_dft_rms": float(np.sqrt(np.mean(vs_dft**2))),
            "correlation": float(np.corrcoef(err, dev)[0, 1]) if len(n) > 2 else float("nan"),
        }
    return out


def pending(
    records: list[dict], todo: list[tuple[str, int]], kpts: int, ecut: float, width: float, basis: str | None
) -> list[tuple]:
    """The :data:`SETTING_KEYS` of the frames of ``todo`` not in ``records`` at these settings, in
    order, each once (records written before LCAO existed have no basis: plane waves)."""
    done = {tuple(r.get(k) for k in SETTING_KEYS) for r in records}
    keys = [(split, i, kpts, ecut, width, basis) for split, i in todo]
    return [k for k in dict.fromkeys(keys) if k not in done]


def cmd_run(args: argparse.Namespace) -> int:
    frames = {s: read_mlearn(os.path.join(args.data, f"{s}.extxyz")) for s in ("train", "test")}
    todo = parse_frames(args.frames)
    for split, i in todo:  # bad input stops the run before any DFT is paid for
        if not 0 <= i < len(frames[split]):
            raise SystemExit(f"--frames: {split} has {len(frames[split])} frames, no index {i}")
    records = read_records(args.out)
    keys = pending(records, todo, args.kpts, args.ecut, args.width, args.basis)
    for split, i in dict.fromkeys(todo):
        if (split, i, args.kpts, args.ecut, args.width, args.basis) not in keys:
            print(f"{split}[{i}]: in {args.out} already, skipped", flush=True)
    if not keys:
        return 0
    try:
        import gpaw
    except ImportError as exc:
        raise SystemExit(f"run needs GPAW ({exc}); README, 'Real DFT with GPAW'") from None

    for key in keys:
        split, i = key[0], key[1]
        atoms = frames[split][i]
        txt = (
            os.path.join(
                args.logs,
                f"{split}{i}_k{args.kpts}_e{args.ecut:g}_w{args.width:g}{'_' + args.basis if args.basis else ''}.txt",
            )
            if args.logs
            else None
        )
        if args.logs:
            os.makedirs(args.logs, exist_ok=True)
        rec = dict(zip(SETTING_KEYS, key)) | {
            "description": atoms.info.get("description"),
            "n": len(atoms),
            "label": float(atoms.get_potential_energy()),
            "gpaw": gpaw.__version__,
            "convergence": CONVERGENCE,
        }
        rec |= recompute(atoms, args.kpts, args.ecut, args.width, txt, args.basis)
        f_label = atoms.get_forces()
        rec["force_rmse_label"] = float(np.sqrt(np.mean((np.asarray(rec["forces"]) - f_label) ** 2)))
        with open(args.out, "a") as fh:  # one line per frame as soon as it is paid for
            fh.write(json.dumps(rec) + "\n")
        print(
            f"{split}[{i}] {rec['description']}: E - label {1e3 * (rec['energy'] - rec['label']) / rec['n']:+.2f} "
            f"meV/atom, forces vs label {rec['force_rmse_label']:.4f} eV/Å, {rec['seconds']:.0f} s",
            flush=True,
        )
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from alip.models.calculator import Calculator
    from alip.models.committee import Committee

    frames = {s: read_mlearn(os.path.join(args.data, f"{s}.extxyz")) for s in ("train", "test")}
    e_ground = ground_energy(frames["train"])
    setting = (args.kpts, args.ecut, args.width, args.basis)
    recs = [r for r in read_records(args.records) if (r["kpts"], r["ecut"], r["width"], r.get("basis")) == setting]
    recs.sort(key=lambda r: (r["split"], r["index"]))
    if len(recs) < 3:
        raise SystemExit(
            f"{args.records}: {len(recs)} frames with kpts, ecut, width, basis = {setting}; need 3 or more"
        )
    atoms = [frames[r["split"]][r["index"]] for r in recs]
    calcs = [Calculator(Committee.load(p)) for p in args.models]
    # the model: the mean of the committees given (e.g. the defaults with three seeds)
    e_model = [np.mean([c.get_potential_energy(a.copy()) for c in calcs]) for a in atoms] if calcs else None
    f_model = [np.mean([c.get_forces(a.copy()) for c in calcs], axis=0) for a in atoms] if calcs else None
    e_dft = [r["free_energy" if args.free else "energy"] for r in recs]
    res = label_consistency([r["n"] for r in recs], [r["label"] for r in recs], e_dft, e_model)

    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(np.square(x))))

    rows = []
    for k, (r, a) in enumerate(zip(recs, atoms)):
        f_dft, f_label = np.asarray(r["forces"]), a.get_forces()
        row = {
            "frame": f"{r['split']}[{r['index']}]",
            "family": subset(a, e_ground),
            "label_minus_dft": res["label_minus_dft"][k],
            "force_label_dft": rms(f_label - f_dft),
        }
        if calcs:
            row |= {
                "error": res["error"][k],
                "model_minus_dft": res["model_minus_dft"][k],
                "force_model_dft": rms(f_model[k] - f_dft),
                "force_model_label": rms(f_model[k] - f_label),
            }
        rows.append(row)
    energy = "free energy" if args.free else "energy extrapolated to zero width"
    print(f"GPAW PBE, {args.kpts}^3 k-points, {args.ecut:g} eV, width {args.width:g} eV, its {energy}")
    print(f"label - GPAW: {res['offset']:+.2f} meV/atom over the {len(recs)} frames, removed below")
    print(f"the model: the mean of {', '.join(args.models) or 'no committee'}")
    head = ["frame", "family", "E: label - GPAW", "model - label", "model - GPAW"]
    print("| " + " | ".join(head + ["F: label - GPAW", "model - GPAW", "model - label"]) + " |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        cells = [row.get(key) for key in ("label_minus_dft", "error", "model_minus_dft")]
        cells = [f"{x:+.2f}" if x is not None else "—" for x in cells]
        forces = [row.get(key) for key in ("force_label_dft", "force_model_dft", "force_model_label")]
        cells += [f"{x:.3f}" if x is not None else "—" for x in forces]
        print(f"| {row['frame']} | {row['family']} | " + " | ".join(cells) + " |")
    line = f"RMS over the frames (meV/atom): label - GPAW {res['label_rms']:.2f}"
    if calcs:
        line += f", model - label {res['error_rms']:.2f}, model - GPAW {res['model_dft_rms']:.2f}"
        line += f"; correlation of model - label with label - GPAW {res['correlation']:+.3f}"
    print(line + " (energies meV/atom, forces RMSE eV/Å)")
    summary = {k: v for k, v in res.items() if not isinstance(v, list)}
    setting_d = dict(zip(("kpts", "ecut", "width", "basis"), setting))
    print(json.dumps({"setting": setting_d, "free": args.free, "summary": summary, "frames": rows}))
    return 0


def kpoint_shifts(
    records: list[dict], kpts: tuple[int, int], ecut: float, width: float, basis: str | None
) -> list[dict]:
    """Per frame recomputed at both k-meshes (the other settings equal), sorted by split and index:
    ``shift`` = E(kpts[1]) - E(kpts[0]) in meV/atom (the energies extrapolated to zero width) and
    the RMS of the forces' change (eV/Å); frames at one mesh only are left out."""
    by_frame: dict[tuple[str, int], dict[int, dict]] = {}
    for r in records:
        if (r["ecut"], r["width"], r.get("basis")) == (ecut, width, basis) and r["kpts"] in kpts:
            by_frame.setdefault((r["split"], r["index"]), {})[r["kpts"]] = r
    out = []
    for (split, index), at in sorted(by_frame.items()):
        if len(at) < 2:
            continue
        a, b = at[kpts[0]], at[kpts[1]]
        df = np.asarray(b["forces"]) - np.asarray(a["forces"])
        out.append(
            {
                "split": split,
                "index": index,
                "n": a["n"],
                "label": a["label"],
                "shift": 1e3 * (b["energy"] - a["energy"]) / a["n"],
                "force_shift": float(np.sqrt(np.mean(df**2))),
            }
        )
    return out


def cmd_kpoints(args: argparse.Namespace) -> int:
    """How much the energies move from one k-mesh to the other, frame by frame, beside each
    committee's error against the labels: if the labels were not converged in k-points and the
    models fitted the converged surface, their errors would follow the shifts."""
    from alip.models.calculator import Calculator
    from alip.models.committee import Committee

    kpts = (args.kpts[0], args.kpts[1])
    rows = kpoint_shifts(read_records(args.records), kpts, args.ecut, args.width, args.basis)
    if not rows:
        raise SystemExit(f"{args.records}: no frame at both k-meshes {kpts} with the other settings given")
    frames = {s: read_mlearn(os.path.join(args.data, f"{s}.extxyz")) for s in ("train", "test")}
    calcs = [Calculator(Committee.load(p)) for p in args.models]
    mode = f"LCAO {args.basis}" if args.basis else f"PW {args.ecut:g} eV"
    print(f"GPAW PBE {mode}, width {args.width:g} eV: E({kpts[1]}^3) - E({kpts[0]}^3) per frame")
    print("| frame | k-shift (meV/atom) | forces' change (eV/Å) | model - label (meV/atom) |\n|---|---:|---:|---:|")
    for r in rows:
        atoms = frames[r["split"]][r["index"]]
        if calcs:
            e = np.mean([c.get_potential_energy(atoms.copy()) for c in calcs])
            r["error"] = 1e3 * (e - r["label"]) / r["n"]
        err = f"{r['error']:+.2f}" if "error" in r else "—"
        print(f"| {r['split']}[{r['index']}] | {r['shift']:+.2f} | {r['force_shift']:.3f} | {err} |")
    print(json.dumps({"kpts": kpts, "basis": args.basis, "frames": rows}))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA, help="mlearn-si directory (train.extxyz, test.extxyz)")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("run", "compare", "kpoints"):
        s = sub.add_parser(name)
        if name == "kpoints":
            s.add_argument("--kpts", type=int, nargs=2, default=[2, 3], help="the two k-meshes (default 2 3)")
        else:
            s.add_argument("--kpts", type=int, default=2, help="Monkhorst-Pack k-mesh n x n x n (1: Gamma only)")
        s.add_argument("--ecut", type=float, default=300.0, help="plane-wave cutoff (eV)")
        s.add_argument("--width", type=float, default=0.05, help="Fermi-Dirac width (eV)")
        s.add_argument(
            "--basis", default=None, help="GPAW's LCAO mode with this basis (e.g. dzp) instead of plane waves"
        )
        if name == "kpoints":
            s.add_argument("records", help="the JSON lines of `run` at both k-meshes")
            s.add_argument("--models", nargs="*", default=[], help="committee files; their mean is the model")
        elif name == "run":
            s.add_argument("--frames", nargs="+", required=True, help="split:index[,index...], e.g. test:18,15")
            s.add_argument("--out", required=True, help="JSON lines, appended; frames already there are skipped")
            s.add_argument("--logs", default=None, help="directory for GPAW's text logs (else none)")
        else:
            s.add_argument("records", help="the JSON lines of `run`")
            s.add_argument("--models", nargs="*", default=[], help="committee files; their mean is the model")
            s.add_argument("--free", action="store_true", help="compare GPAW's free energy (else extrapolated)")
    args = p.parse_args(argv)
    return {"run": cmd_run, "compare": cmd_compare, "kpoints": cmd_kpoints}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
