"""Featurization benchmark of alip's compiled ACSF core against peers, in one run on
the same structures.

    python bench/featurize.py            # full run (a few minutes on 2 cores)
    python bench/featurize.py --quick    # smoke run: small sizes, short timings
    python bench/featurize.py --device cuda [--quick]   # the GPU benchmark (bench/featurize_cuda.py)

Structures: diamond Si supercells of 8, 64, 512, 4096 atoms (conventional cell
repeated, rattled 0.05 A) and one triclinic cell (3x3x3 conventional supercell under a
large shear, 216 atoms). Cutoff 6 A; 8 G2 + 16 G4 functions in the style of DScribe's
documentation example (G2: eta = 1 / A^2, r_s steps; G4: eta, zeta, lambda = +-1 grid).

Peers: DScribe ACSF values and derivatives (its only derivative method for ACSF is
numerical), TorchANI AEV forward and forward+backward on CPU with the same numbers of
radial (8) and angular (16) functions, and the ASE / matscipy / vesin neighbour lists.
All single-thread unless a row says otherwise. Timing: best of repeated calls (each
case runs until --min-time seconds are spent, at least --min-repeats times). With
--rounds N every case is measured N times, the rounds interleaving alip and its peers,
and the tables give the median rate and the median (range) of the per-round ratios:
ratios taken within a round see the same machine state, which a shared or throttling
machine changes between rounds.

Prints a markdown table of atoms/s, the ratios of alip to each peer, the thread
scaling at 4096 atoms and the peak memory with gradients at 4096 atoms (measured in a
fresh subprocess from the kernel's peak-RSS counter), then the targets of issue 2 with
PASS/FAIL.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable

os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")

import numpy as np  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.build import bulk  # noqa: E402

CUTOFF = 6.0
G2 = [(1.0, float(rs)) for rs in np.linspace(1.0, 4.5, 8)]
G4 = [(eta, zeta, lam) for eta in (0.005, 0.05) for zeta in (1.0, 2.0, 4.0, 16.0) for lam in (1.0, -1.0)]
# TorchANI: 8 radial shifts, 4 angular shifts x 4 angle sections = 16 angular terms.
ANI = dict(
    radial_eta=1.0,
    radial_shifts=[float(r) for r in np.linspace(1.0, 4.5, 8)],
    angular_eta=0.05,
    angular_zeta=4.0,
    angular_shifts=[1.0, 2.0, 3.0, 4.0],
    sections=[0.4, 1.2, 2.0, 2.8],
)


# ----------------------------------------------------------------------------- structures
def si_supercell(n_atoms: int, seed: int = 0) -> Atoms:
    rep = round((n_atoms / 8) ** (1 / 3))
    assert 8 * rep**3 == n_atoms, n_atoms
    atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat(rep)
    atoms.rattle(0.05, seed=seed)
    return atoms


def si_triclinic() -> Atoms:
    atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat(3)
    shear = np.array([[1.0, 0.0, 0.0], [0.25, 1.0, 0.0], [-0.2, 0.3, 1.0]])
    atoms.set_cell(atoms.cell[:] @ shear, scale_atoms=True)
    atoms.rattle(0.05, seed=1)
    return atoms


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("model name", "Model", "Hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ----------------------------------------------------------------------------- timing
# What best_time measures: wall time, or with --cpu-time the process's CPU time, which
# other jobs on a shared machine disturb far less (every case here runs on one thread).
CLOCK: Callable[[], float] = time.perf_counter


def best_time(fn: Callable[[], object], min_time: float, min_repeats: int, max_repeats: int = 1000) -> float:
    clock = CLOCK
    t0 = clock()
    fn()  # warm-up (imports, first allocations)
    first = clock() - t0
    if first > 3 * min_time:
        return first  # a slow peer: one call is a measurement, one-off costs are noise there
    times = []
    start = time.perf_counter()
    while len(times) < max_repeats and (len(times) < min_repeats or time.perf_counter() - start < min_time):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return min(times)


class Threads:
    """Thread limits for everything in the process: alip (OpenMP), torch, BLAS."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        import alip

        self._alip = alip.get_num_threads()
        alip.set_num_threads(self.n)
        try:
            import torch

            self._torch = torch.get_num_threads()
            torch.set_num_threads(self.n)
        except ImportError:
            self._torch = None
        try:
            from threadpoolctl import threadpool_limits

            self._pool = threadpool_limits(self.n)
        except ImportError:
            self._pool = None
        return self

    def __exit__(self, *exc):
        import alip

        alip.set_num_threads(self._alip)
        if self._torch is not None:
            import torch

            torch.set_num_threads(self._torch)
        if self._pool is not None:
            self._pool.restore_original_limits()


# ----------------------------------------------------------------------------- methods
def alternating(a: Atoms) -> Callable[[], Atoms]:
    """Successive calls return `a` and a copy moved by 1e-6 Å in turn: every alip call sees
    new positions, as in MD or a pool, so the neighbor list alip keeps for a repeat on the
    very same positions (forces right after values) never serves the next timed call."""
    moved = a.copy()
    moved.positions += 1e-6
    pair, k = (a, moved), [0]

    def next_structure() -> Atoms:
        k[0] ^= 1
        return pair[k[0]]

    return next_structure


def make_alip():
    import alip

    return alip.ACSF(species=["Si"], cutoff=CUTOFF, g2=G2, g4=G4, g5=[])


def alip_methods():
    import alip

    acsf = make_acsf_cached()
    rng = np.random.default_rng(0)

    def values(a):
        nxt = alternating(a)
        return lambda: acsf.compute(nxt())

    def grads(a):
        return lambda: acsf.compute(a, gradients=True)

    def fused(a):
        w = rng.normal(size=(len(a), acsf.n_features))
        nxt = alternating(a)

        def run():  # one step: values, then forces of the same positions
            b = nxt()
            acsf.compute(b)
            acsf.forces_and_virial(b, w)

        return run

    def nl(a):
        return lambda: alip.neighbor_list(a, CUTOFF)

    return {
        "alip values": values,
        "alip values+sparse grads": grads,
        "alip values+fused forces/virial": fused,
        "alip neighbor list": nl,
    }


_ACSF = None


def make_acsf_cached():
    global _ACSF
    if _ACSF is None:
        _ACSF = make_alip()
    return _ACSF


def dscribe_methods():
    from dscribe.descriptors import ACSF as DScribeACSF

    d = DScribeACSF(
        r_cut=CUTOFF, g2_params=[list(p) for p in G2], g4_params=[list(p) for p in G4], species=["Si"], periodic=True
    )

    def values(a):
        return lambda: d.create(a, n_jobs=1)

    def derivs(a):
        return lambda: d.derivatives(a, attach=True, method="numerical", n_jobs=1)

    return {"DScribe values": values, "DScribe derivatives (numerical)": derivs}


def torchani_methods(dtype_name: str):
    import torch
    from torchani.aev import AEVComputer

    dtype = getattr(torch, dtype_name)
    cache = {}

    def computer(nl):
        if nl not in cache:
            cache[nl] = AEVComputer.from_constants(
                radial_cutoff=CUTOFF, angular_cutoff=CUTOFF - 1e-6, num_species=1, neighborlist=nl, **ANI
            ).to(dtype)
        return cache[nl]

    def prepare(a):
        # TorchANI's pure-torch cell list needs every cell height >= cutoff
        heights = a.get_volume() / np.linalg.norm(np.cross(a.cell[[1, 2, 0]], a.cell[[2, 0, 1]]), axis=1)
        aev = computer("cell_list" if heights.min() >= CUTOFF else "all_pairs")
        sp = torch.zeros(1, len(a), dtype=torch.long)
        cell = torch.tensor(np.asarray(a.cell[:]), dtype=dtype)
        pbc = torch.tensor([True, True, True])
        w = torch.randn(1, len(a), 24, dtype=dtype)
        return aev, sp, cell, pbc, w

    def forward(a):
        aev, sp, cell, pbc, _w = prepare(a)
        x = torch.tensor(a.positions[None], dtype=dtype)

        def run():
            with torch.no_grad():
                aev(sp, x, cell, pbc)

        return run

    def fwd_bwd(a):
        aev, sp, cell, pbc, w = prepare(a)

        def run():
            x = torch.tensor(a.positions[None], dtype=dtype, requires_grad=True)
            e = (aev(sp, x, cell, pbc) * w).sum()
            e.backward()

        return run

    return {f"TorchANI AEV forward ({dtype_name})": forward, f"TorchANI AEV forward+backward ({dtype_name})": fwd_bwd}


def neighbor_methods():
    from ase.neighborlist import neighbor_list as ase_nl
    from matscipy.neighbours import neighbour_list as matscipy_nl
    from vesin import NeighborList

    vesin = NeighborList(cutoff=CUTOFF, full_list=True, n_threads=1)

    def ase(a):
        return lambda: ase_nl("ijSDd", a, CUTOFF)

    def matscipy(a):
        return lambda: matscipy_nl("ijSDd", a, CUTOFF)

    def ves(a):
        pos, box = a.positions, np.asarray(a.cell[:])
        return lambda: vesin.compute(pos, box, True, quantities="ijSDd")

    return {"ASE neighbor list": ase, "matscipy neighbor list": matscipy, "vesin neighbor list (1 thread)": ves}


# ----------------------------------------------------------------------------- memory
MEMORY_PROBE = r"""
import json, resource, sys
sys.path.insert(0, {bench_dir!r})
import featurize as F
import alip
alip.set_num_threads({threads})
atoms = F.si_supercell({n})
acsf = F.make_alip()
acsf.compute(F.si_supercell(8), gradients=True)   # load everything once

def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    return None

try:
    open('/proc/self/clear_refs', 'w').write('5')   # reset the peak-RSS counter
    reset = True
except OSError:
    reset = False
before = status('VmRSS:')
d = acsf.compute(atoms, gradients=True)
peak = status('VmHWM:') if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
grad = d.grad_values.nbytes + d.grad_centers.nbytes + d.grad_neighbors.nbytes + d.strain_grad.nbytes
out = grad + d.values.nbytes + d.offsets.nbytes
print(json.dumps(dict(peak_increase=peak - before, grad_bytes=grad, output_bytes=out,
                      grad_values_bytes=d.grad_values.nbytes, n_rows=int(len(d.grad_centers)),
                      peak_counter_reset=reset)))
"""


def measure_memory(n: int, threads: int = 1) -> dict:
    code = MEMORY_PROBE.format(bench_dir=os.path.dirname(os.path.abspath(__file__)), n=n, threads=threads)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- main
def fmt_rate(x: float | None) -> str:
    if x is None:
        return "—"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    if x >= 1e3:
        return f"{x / 1e3:.1f} k"
    return f"{x:.1f}"


def fmt_ratio(x: float | None) -> str:
    return "—" if x is None else (f"{x:.0f}×" if x >= 100 else f"{x:.1f}×" if x >= 10 else f"{x:.2f}×")


def round_ratios(rounds: list[dict[str, dict[str, float | None]]], a: str, b: str, case: str) -> list[float]:
    """alip ÷ peer rate of `case` in each round where both were measured."""
    out = []
    for r in rounds:
        x, y = r.get(a, {}).get(case), r.get(b, {}).get(case)
        if x is not None and y is not None:
            out.append(x / y)
    return out


def median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def fmt_ratio_range(values: list[float]) -> str:
    """The median ratio, with the range over rounds when there are several."""
    if not values:
        return "—"
    if len(values) == 1:
        return fmt_ratio(values[0])
    return f"{fmt_ratio(median(values))} ({min(values):.1f}–{max(values):.1f})"


def main(argv=None) -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--device", default="cpu")
    known, rest = pre.parse_known_args(argv)
    if known.device != "cpu":  # the GPU benchmark has its own cases and peers (cuaev)
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import featurize_cuda

        return featurize_cuda.main(["--device", known.device, *rest])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--device",
        default="cpu",
        help="cpu (this benchmark) or cuda (runs bench/featurize_cuda.py with the other arguments)",
    )
    p.add_argument("--quick", action="store_true", help="small sizes and short timings (smoke test)")
    p.add_argument("--min-time", type=float, default=None, help="seconds spent per case (default 1.0, quick 0.1)")
    p.add_argument("--min-repeats", type=int, default=3)
    p.add_argument("--sizes", type=int, nargs="*", default=None, help="supercell sizes (multiples of 8 cubed)")
    p.add_argument("--no-torchani", action="store_true")
    p.add_argument("--json", default=None, help="also write all timings to this file")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every case this many times, alip and peers interleaved per round; report median "
        "rates and the median (range) of the per-round ratios (default 1)",
    )
    p.add_argument(
        "--cpu-time",
        action="store_true",
        help="time by process CPU time (time.process_time) instead of wall time: steadier on a shared "
        "machine; the thread-scaling rows are then skipped (CPU time adds up over threads)",
    )
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error(f"--rounds must be at least 1, got {args.rounds}")
    global CLOCK
    CLOCK = time.process_time if args.cpu_time else time.perf_counter

    import alip

    load_start = os.getloadavg()
    sizes = args.sizes or ([8, 64] if args.quick else [8, 64, 512, 4096])
    min_time = args.min_time if args.min_time is not None else (0.1 if args.quick else 1.0)
    big = max(sizes)
    # Peers whose cost explodes are limited to sizes that run in reasonable time/memory
    # (DScribe's derivatives are numerical, O(N^2) time and a dense (n, n, 3, F) array).
    # DScribe derivatives: 8.6 s per call at 64 atoms, O(N^2): ~10 min at 512.
    limits = {
        "DScribe derivatives (numerical)": 64,
        "TorchANI AEV forward (float64)": 512,
        "TorchANI AEV forward+backward (float64)": 512,
    }

    structures = {f"Si {n}": si_supercell(n) for n in sizes}
    structures["triclinic 216"] = si_triclinic()
    batch = [si_supercell(8, seed=s) for s in range(64)]

    methods = {}
    methods.update(alip_methods())
    methods.update(dscribe_methods())
    have_torchani = False
    if not args.no_torchani:
        try:
            methods.update(torchani_methods("float32"))
            methods.update(torchani_methods("float64"))
            have_torchani = True
        except ImportError as err:
            print(f"(TorchANI not available: {err}; pip install torchani --no-deps)", file=sys.stderr)
    methods.update(neighbor_methods())

    # one dict of rates per round; every round measures every case, alip and peers in turn
    per_round: list[dict[str, dict[str, float | None]]] = []
    acsf = make_acsf_cached()
    n_batch = sum(len(a) for a in batch)
    with Threads(1):
        from dscribe.descriptors import ACSF as DScribeACSF

        dsc = DScribeACSF(
            r_cut=CUTOFF,
            g2_params=[list(q) for q in G2],
            g4_params=[list(q) for q in G4],
            species=["Si"],
            periodic=True,
        )
        for rnd in range(args.rounds):
            rates: dict[str, dict[str, float | None]] = {m: {} for m in methods}
            per_round.append(rates)
            for sname, atoms in structures.items():
                for mname, make in methods.items():
                    if len(atoms) > limits.get(mname, 10**9):
                        rates[mname][sname] = None
                        continue
                    t = best_time(make(atoms), min_time, args.min_repeats)
                    rates[mname][sname] = len(atoms) / t
                    print(
                        f"  {'' if args.rounds == 1 else f'round {rnd + 1}/{args.rounds} '}"
                        f"{mname:45s} {sname:14s} {t * 1e3:10.2f} ms  {len(atoms) / t:12.0f} atoms/s",
                        file=sys.stderr,
                        flush=True,
                    )
            # batched pool of small cells: one call for 64 structures of 8 atoms
            rates["alip values"]["64 × Si 8 (batch)"] = n_batch / best_time(
                lambda: acsf.compute(batch), min_time, args.min_repeats
            )
            rates["alip values+sparse grads"]["64 × Si 8 (batch)"] = n_batch / best_time(
                lambda: acsf.compute(batch, gradients=True), min_time, args.min_repeats
            )
            rates["DScribe values"]["64 × Si 8 (batch)"] = n_batch / best_time(
                lambda: dsc.create(batch, n_jobs=1), min_time, args.min_repeats
            )
    # the table's rates: per case, the median over rounds
    rates = {
        m: {c: median([r[m][c] for r in per_round if r[m][c] is not None]) for c in per_round[0][m]} for m in methods
    }

    # threads at the largest size
    threads = {}
    n_cores = os.cpu_count() or 1
    big_atoms = structures[f"Si {big}"]
    next_big = alternating(big_atoms)
    for nt in () if args.cpu_time else (1, 2):
        with Threads(nt):
            threads[nt] = {
                "values": len(big_atoms) / best_time(lambda: acsf.compute(next_big()), min_time, args.min_repeats),
                "values+sparse grads": len(big_atoms)
                / best_time(lambda: acsf.compute(big_atoms, gradients=True), min_time, args.min_repeats),
                "batch 64 × Si 8 values": n_batch / best_time(lambda: acsf.compute(batch), min_time, args.min_repeats),
            }

    memory = measure_memory(big)

    # ------------------------------------------------------------------ report
    cols = list(structures) + ["64 × Si 8 (batch)"]
    info = alip.build_info() if hasattr(alip, "build_info") else {}
    print(f"\n## alip featurization benchmark ({'quick' if args.quick else 'full'})\n")
    print(
        f"Machine: {cpu_model()}, {n_cores} cores, Python {platform.python_version()}; "
        f"alip kernel variant: **{info.get('kernel_variant', '?')}** (SIMD {info.get('kernel_simd', '?')}; "
        f"CPU supports {info.get('cpu_isa', '?')}; set ALIP_KERNEL to force one); alip core: {info}"
    )
    load_end = os.getloadavg()
    print(
        f"Load average (1 min) at start / end: {load_start[0]:.2f} / {load_end[0]:.2f} on {n_cores} cores"
        + (
            "  **WARNING: other processes were competing for the CPU; thread scaling and absolute rates "
            "are unreliable**"
            if max(load_start[0], load_end[0]) > 0.5 * n_cores
            else ""
        )
    )
    print(
        f"Cutoff {CUTOFF} Å, {len(G2)} G2 + {len(G4)} G4 = {make_acsf_cached().n_features} features; "
        f"TorchANI: {len(ANI['radial_shifts'])} radial + "
        f"{len(ANI['angular_shifts']) * len(ANI['sections'])} angular terms. Single thread unless stated.\n"
    )
    print(f"### Throughput (atoms/s{'' if args.rounds == 1 else f', median of {args.rounds} rounds'})\n")
    print("| method | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for m, r in rates.items():
        print(f"| {m} | " + " | ".join(fmt_rate(r.get(c)) for c in cols) + " |")

    def ratio(a, b, c):  # median of the per-round ratios
        return median(round_ratios(per_round, a, b, c))

    comparisons = [
        ("alip values", "DScribe values"),
        ("alip values+sparse grads", "DScribe derivatives (numerical)"),
        ("alip neighbor list", "ASE neighbor list"),
        ("alip neighbor list", "matscipy neighbor list"),
        ("alip neighbor list", "vesin neighbor list (1 thread)"),
    ]
    if have_torchani:
        for dt in ("float32", "float64"):
            comparisons += [
                ("alip values", f"TorchANI AEV forward ({dt})"),
                ("alip values+sparse grads", f"TorchANI AEV forward+backward ({dt})"),
                ("alip values+fused forces/virial", f"TorchANI AEV forward+backward ({dt})"),
            ]
    rounds_note = "" if args.rounds == 1 else f"; median (range) of {args.rounds} interleaved rounds"
    print(f"\n### Ratios (alip atoms/s ÷ peer atoms/s, same run, 1 thread{rounds_note})\n")
    print("| alip | peer | " + " | ".join(cols) + " |")
    print("|---|---|" + "---:|" * len(cols))
    for a, b in comparisons:
        print(f"| {a} | {b} | " + " | ".join(fmt_ratio_range(round_ratios(per_round, a, b, c)) for c in cols) + " |")

    if threads:
        print(f"\n### Threads (Si {big} and 64 × Si 8 batch; {n_cores} cores)\n")
        print("| case | 1 thread (atoms/s) | 2 threads (atoms/s) | speed-up |")
        print("|---|---:|---:|---:|")
        for k in threads[1]:
            t1, t2 = threads[1][k], threads[2][k]
            print(f"| {k} | {fmt_rate(t1)} | {fmt_rate(t2)} | {t2 / t1:.2f}× |")
    else:
        print("\n(thread scaling not measured: --cpu-time)")

    mib = 1024**2
    print(f"\n### Memory with gradients (Si {big}, 1 thread, fresh process)\n")
    print(
        f"- peak RSS increase during compute(gradients=True): {memory['peak_increase'] / mib:.1f} MiB"
        f"{'' if memory['peak_counter_reset'] else ' (ru_maxrss, counter not reset)'}"
    )
    print(
        f"- sparse gradient arrays (grad_values + grad_centers + grad_neighbors + strain_grad): "
        f"{memory['grad_bytes'] / mib:.1f} MiB ({memory['n_rows']} rows); grad_values alone "
        f"{memory['grad_values_bytes'] / mib:.1f} MiB; all returned arrays {memory['output_bytes'] / mib:.1f} MiB"
    )
    mem_ratio = memory["peak_increase"] / memory["grad_bytes"]
    print(f"- ratio peak increase / sparse gradient arrays: {mem_ratio:.2f}")

    # ------------------------------------------------------------------ targets
    ref = "Si 512" if "Si 512" in structures else f"Si {sizes[-1]}"
    targets = [(f"values ≥ 30× DScribe ACSF ({ref}, 1 thread)", ratio("alip values", "DScribe values", ref), 30.0)]
    if threads:
        targets += [
            (f"2 threads ≥ 1.7× 1 thread (Si {big}, values)", threads[2]["values"] / threads[1]["values"], 1.7),
            (
                f"2 threads ≥ 1.7× 1 thread (Si {big}, values+sparse grads)",
                threads[2]["values+sparse grads"] / threads[1]["values+sparse grads"],
                1.7,
            ),
        ]
    targets += [
        (
            f"neighbor list within 2× of vesin ({ref}): alip/vesin ≥ 0.5",
            ratio("alip neighbor list", "vesin neighbor list (1 thread)", ref),
            0.5,
        ),
        (
            f"memory with gradients ≤ 1.5× sparse gradient arrays (Si {big})",
            1.5 / mem_ratio if mem_ratio > 0 else None,  # 0: too small to register in the RSS (--quick)
            1.0,
        ),
    ]
    if have_torchani:
        for dt in ("float32", "float64"):
            targets += [
                (
                    f"values+sparse grads ≥ 20× TorchANI fwd+bwd {dt} ({ref})",
                    ratio("alip values+sparse grads", f"TorchANI AEV forward+backward ({dt})", ref),
                    20.0,
                ),
                (
                    f"values+fused forces ≥ 20× TorchANI fwd+bwd {dt} ({ref})",
                    ratio("alip values+fused forces/virial", f"TorchANI AEV forward+backward ({dt})", ref),
                    20.0,
                ),
            ]
        # issue 17: the same speed on AVX2 CPUs (run with ALIP_KERNEL=avx2 on an AVX-512 one)
        targets.append(
            (
                f"values+fused forces ≥ 25× TorchANI fwd+bwd float32 ({ref}; issue 17, on AVX2)",
                ratio("alip values+fused forces/virial", "TorchANI AEV forward+backward (float32)", ref),
                25.0,
            )
        )
    targets.insert(1, (f"values ≥ 40× DScribe ACSF ({ref}; issue 17, on AVX2)", targets[0][1], 40.0))
    print("\n### Targets (issue 2; issue 17's apply to the AVX2 variant)\n")
    print("| target | measured | status |")
    print("|---|---:|---|")
    for name, value, threshold in targets:
        shown = f"{1.5 / value:.2f}× (limit 1.5×)" if name.startswith("memory") and value else fmt_ratio(value)
        status = "—" if value is None else ("PASS" if value >= threshold else "FAIL")
        print(f"| {name} | {shown} | {status} |")

    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(rates=rates, rounds=per_round, threads=threads, memory=memory, sizes=sizes), fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
