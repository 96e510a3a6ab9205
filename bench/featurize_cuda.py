"""GPU featurization benchmark (issue 8): alip's CUDA kernels against TorchANI's CUDA
AEV (cuaev) on the same card, in the same run, on the same structures.

    python bench/featurize_cuda.py                 # full run: 512 ... 1e6 atoms
    python bench/featurize_cuda.py --quick         # 512 and 4096 atoms, short timings
    python bench/featurize_cuda.py --device cpu --quick   # smoke test of the script on the CPU path

Structures: rattled diamond Si supercells of 512, 4096, 32768, 262144 and 1,000,000 atoms
(bench/featurize.py's si_supercell), and a pool of 2048 rattled 64-atom cells in one
call. Descriptors of bench/featurize.py: cutoff 6 A, 8 G2 + 16 G4 (24 features); TorchANI
with 8 radial + 16 angular terms (24), cutoff 6 A (angular cutoff 6 A - 1e-6).

Rows (atoms/s; median of repeated calls after a warm-up, each call synchronized):
- alip neighbor list: the GPU cell list alone;
- alip values: neighbor list + values (what featurizing a pool costs);
- alip values + fused forces: neighbor list + values + forces and virial from a given
  dE/dG (fused VJP, no Jacobian), i.e. one MD / pool-scoring step without the network;
- cuaev forward / forward+backward (float32; cuaev has no float64): TorchANI's AEV with
  strategy "cuaev" and its cell list (all-pairs below a cell height of 6 A), backward
  from a random dE/dAEV to positions.
alip is timed in float64 and float32. Inputs are on the GPU before timing.

Targets (H100): values >= 1e7 atoms/s on large pools; values + fused forces faster than
cuaev forward+backward at equal function counts. Printed as PASS/FAIL with the card name.
TorchANI's CUDA extensions must be built first (`ani build-extensions`, needs nvcc and a
CUDA torch); without them the cuaev rows are skipped and the comparison says so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import featurize as F  # noqa: E402  (bench/featurize.py: structures and parameters)
import numpy as np  # noqa: E402
import torch  # noqa: E402

SIZES = [512, 4096, 32768, 262144, 1_000_000]
QUICK_SIZES = [512, 4096]


def pool(n_structures: int, seed: int = 0) -> list:
    base = F.si_supercell(64)
    out = []
    for k in range(n_structures):
        a = base.copy()
        a.rattle(0.05, seed=seed + k)
        out.append(a)
    return out


def timed(fn: Callable[[], object], device: torch.device, min_time: float, min_repeats: int) -> float:
    """Median seconds of fn() (synchronized) after one warm-up call."""
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    fn()
    sync()
    times = []
    start = time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
        if len(times) >= 200:
            break
    return statistics.median(times)


def alip_cases(acsf, structures, device, dtype):
    from alip.core import device as dev
    from alip.core.batch import Batch

    batch = Batch.from_atoms(structures).to(device, acsf.species)
    w = torch.randn(batch.n_atoms, acsf.n_features, dtype=dtype, device=device)

    def nl():
        if device.type == "cuda":
            return dev.prepare(acsf, batch)  # builds the neighbor list on the GPU
        return dev.neighbor_list(acsf, batch)  # the CPU path keeps no list: time the core's

    def values():
        return dev.compute(acsf, batch, dtype=dtype)

    def fused():
        p = dev.prepare(acsf, batch)
        return p.values(dtype), p.forces_and_virial(w)

    out = {"alip neighbor list": nl} if dtype == torch.float64 else {}
    out.update(
        {f"alip values ({dtype_name(dtype)})": values, f"alip values + fused forces ({dtype_name(dtype)})": fused}
    )
    return out


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def cuaev_cases(structures, device, strategy="cuaev"):
    """TorchANI cuaev (float32) forward and forward+backward on one structure (the pool
    is skipped: its molecules-of-equal-size padding is not the same workload).
    strategy="pyaev": TorchANI's pure-torch AEV on the GPU (the fallback peer when the
    cuaev extension is not built; not the comparison the issue asks for)."""
    from torchani.aev import AEVComputer

    if len(structures) != 1:
        return {}
    a = structures[0]
    heights = a.get_volume() / np.linalg.norm(np.cross(a.cell[[1, 2, 0]], a.cell[[2, 0, 1]]), axis=1)
    nl_name = "cell_list" if heights.min() >= F.CUTOFF else "all_pairs"
    aev = AEVComputer.from_constants(
        radial_cutoff=F.CUTOFF,
        angular_cutoff=F.CUTOFF - 1e-6,
        num_species=1,
        neighborlist=nl_name,
        strategy=strategy,
        **F.ANI,
    ).to(device)
    sp = torch.zeros(1, len(a), dtype=torch.long, device=device)
    x0 = torch.tensor(a.positions[None], dtype=torch.float32, device=device)
    cell = torch.tensor(np.asarray(a.cell[:]), dtype=torch.float32, device=device)
    pbc = torch.tensor([True, True, True], device=device)
    w = None

    def forward():
        with torch.no_grad():
            return aev(sp, x0, cell, pbc)

    def fwd_bwd():
        nonlocal w
        x = x0.clone().requires_grad_(True)
        out = aev(sp, x, cell, pbc)
        if w is None:
            w = torch.randn_like(out)
        (out * w).sum().backward()
        return x.grad

    name = "cuaev" if strategy == "cuaev" else f"TorchANI {strategy}"
    return {f"{name} forward (float32)": forward, f"{name} forward+backward (float32)": fwd_bwd}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="512 and 4096 atoms, a 64-cell pool, short timings")
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (smoke test of the script)")
    p.add_argument("--sizes", default=None, help="comma-separated atom counts (8 * k^3)")
    p.add_argument("--pool", type=int, default=None, help="number of 64-atom cells in the pool case")
    p.add_argument("--min-time", type=float, default=None, help="seconds per case (default 1.0, quick 0.2)")
    p.add_argument("--no-torchani", action="store_true")
    p.add_argument("--json", default=None, help="write all timings to this file")
    args = p.parse_args(argv)

    import alip
    from alip.core import device as dev

    device = torch.device(args.device)
    if device.type == "cuda":
        if not dev.cuda_available():
            print(
                "no CUDA: this benchmark needs a CUDA build of alip (pip install . -C "
                "cmake.define.ALIP_CUDA=ON) and an NVIDIA GPU; alip.core.device.cuda_compiled() = "
                f"{dev.cuda_compiled()}, torch.cuda.is_available() = {torch.cuda.is_available()}",
                file=sys.stderr,
            )
            return 2
        device = torch.device("cuda", torch.cuda.current_device())
        card = torch.cuda.get_device_name(device)
    else:
        card = "CPU"
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else (QUICK_SIZES if args.quick else SIZES)
    n_pool = args.pool if args.pool is not None else (64 if args.quick else 2048)
    min_time = args.min_time if args.min_time is not None else (0.2 if args.quick else 1.0)
    acsf = F.make_alip()

    have_cuaev = have_torchani = False
    if not args.no_torchani and device.type == "cuda":
        try:
            from torchani.csrc import CUAEV_IS_INSTALLED

            have_torchani = True
            have_cuaev = bool(CUAEV_IS_INSTALLED)
            if not have_cuaev:
                print(
                    "(TorchANI's cuaev extension is not built: run `ani build-extensions`; cuaev rows skipped, "
                    "TorchANI pyaev on the GPU timed instead)",
                    file=sys.stderr,
                )
        except ImportError as err:
            print(f"(TorchANI not available: {err}; cuaev rows skipped)", file=sys.stderr)

    cases = [(f"{n} atoms", [F.si_supercell(n)]) for n in sizes]
    if n_pool:
        cases.append((f"pool {n_pool}×64", pool(n_pool)))
    results: dict = {}
    for label, structures in cases:
        n_atoms = sum(len(a) for a in structures)
        methods = {}
        for dtype in (torch.float64, torch.float32):
            methods.update(alip_cases(acsf, structures, device, dtype))
        if have_cuaev:
            methods.update(cuaev_cases(structures, device))
        elif have_torchani and n_atoms <= 32768:
            methods.update(cuaev_cases(structures, device, strategy="pyaev"))
        for name, fn in methods.items():
            try:
                t = timed(fn, device, min_time, 3)
                results.setdefault(name, {})[label] = {"seconds": t, "atoms_per_s": n_atoms / t}
            except Exception as err:  # report (e.g. out of memory) and go on
                results.setdefault(name, {})[label] = {"error": f"{type(err).__name__}: {err}"[:200]}
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        print(f"done: {label}", file=sys.stderr)
        if args.json:  # after every case, so that a run cut short keeps what it measured
            with open(args.json, "w") as f:
                json.dump({"card": card, "results": results, "complete": False}, f, indent=1)

    labels = [c[0] for c in cases]
    print(
        f"\n## GPU featurization, {card} — atoms/s (alip {alip.__version__}, torch {torch.__version__}, "
        f"{alip._core.cuda.describe()})\n"
    )
    print("| method | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for name, row in results.items():
        cells = []
        for lab in labels:
            r = row.get(lab)
            cells.append("—" if r is None else ("error" if "error" in r else F.fmt_rate(r["atoms_per_s"])))
        print(f"| {name} | " + " | ".join(cells) + " |")
    errors = [(n, lab, r["error"]) for n, row in results.items() for lab, r in row.items() if "error" in r]
    for n, lab, e in errors:
        print(f"- {n}, {lab}: {e}")

    # ratios and targets
    def rate(name, lab):
        r = results.get(name, {}).get(lab)
        return None if r is None or "error" in r else r["atoms_per_s"]

    print()
    verdicts = []
    big = [lab for lab in labels if lab.startswith("pool") or int(lab.split()[0]) >= 262144]
    if device.type == "cuda" and big:
        best = max((rate("alip values (float64)", lab) or 0.0) for lab in big)
        verdicts.append(
            (
                "values >= 1e7 atoms/s on large pools (float64, best of " + ", ".join(big) + ")",
                best >= 1e7,
                f"{best / 1e6:.2f} M atoms/s",
            )
        )
    if have_cuaev:
        for lab in labels:
            ref = rate("cuaev forward+backward (float32)", lab)
            for dt in ("float32", "float64"):
                ours = rate(f"alip values + fused forces ({dt})", lab)
                if ref and ours:
                    verdicts.append(
                        (
                            f"values + fused forces ({dt}) faster than cuaev fwd+bwd, {lab}",
                            ours > ref,
                            f"{ours / ref:.2f}×",
                        )
                    )
    elif device.type == "cuda":
        print("cuaev comparison: NOT RUN (TorchANI cuaev unavailable)")
    for what, ok, detail in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}  {what}: {detail}  [{card}]")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"card": card, "results": results, "verdicts": verdicts, "complete": True}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
