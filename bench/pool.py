"""Large-pool featurization benchmark (issue 7): file -> feature store.

    python bench/pool.py                 # 10^6-atom pools (several minutes on 2 cores)
    python bench/pool.py --quick         # 10^5-atom pools (smoke run)
    python bench/pool.py --json out.json --dir /tmp/alip-bench-pool

Pools (extxyz, written once into --dir and reused): A = 125,000 rattled 8-atom Si
cells (10^6 atoms), B = 2,000 rattled 512-atom cells (1,024,000 atoms). Descriptor:
ACSF.default_si() (36 features, cutoff 5.5 Å).

Sections:
1. readers: CPU time of ase.io.iread, the C-backed ``extxyz`` package (if installed),
   alip's own reader (index + parse), and of the featurizer on the same frames;
2. stores (``--stores``): writing and reading 10^6 x 36 float64 values in 8192-row
   chunks as per-chunk .npy files, Zarr v3 and HDF5 (each if installed:
   ``pip install zarr h5py extxyz`` for the peers of sections 1 and 2);
3. file -> store, each run in a fresh subprocess: local (threads of the core, reading /
   featurizing / writing pipelined or serial) against a Dask LocalCluster with 2 worker
   processes of 1 thread; wall time, atoms/s, peak RSS (kernel counter), CPU time and
   the share of stage time spent reading / featurizing / writing;
4. scaling: wall time for 10^3 ... 10^6 atoms (prefixes of pool A), fitted exponent.

The machine's load average is printed: the 2 cores are shared, so timings are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np


# ----------------------------------------------------------------------------- pools
def write_pool(path: str, n_frames: int, rep: int, seed: int) -> None:
    """Rattled (0.05 Å), isotropically strained (1 %) diamond Si supercells, extxyz."""
    from ase.build import bulk

    base = bulk("Si", "diamond", a=5.431, cubic=True).repeat(rep)
    n = len(base)
    rng = np.random.default_rng(seed)
    line = "Si %16.8f %16.8f %16.8f\n" * n
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for _ in range(n_frames):
            s = 1.0 + 0.01 * rng.standard_normal()
            cell = base.cell.array * s
            pos = base.positions * s + rng.normal(0.0, 0.05, (n, 3))
            lat = " ".join(f"{v:.8f}" for v in cell.ravel())
            f.write(f'{n}\nLattice="{lat}" Properties=species:S:1:pos:R:3 pbc="T T T"\n')
            f.write(line % tuple(pos.ravel()))
    os.replace(tmp, path)


def prefix_pool(src: str, dst: str, n_frames: int) -> None:
    from alip.data.pool_reader import open_pool

    hi = open_pool(src).ref(0, n_frames).hi
    with open(src, "rb") as f, open(dst, "wb") as g:
        g.write(f.read(hi))


# ----------------------------------------------------------------------------- 1. readers
def bench_readers(path: str, n_frames: int) -> dict:
    import alip
    from alip.data.featurize import core_values
    from alip.data.pool_reader import open_pool

    sub = path + f".first{n_frames}"
    if not os.path.exists(sub):
        prefix_pool(path, sub, n_frames)
    out: dict = {}

    def cpu(fn):
        t, w = time.process_time(), time.perf_counter()
        r = fn()
        return r, time.process_time() - t, time.perf_counter() - w

    from ase.io import iread

    atoms, out["ase_cpu"], _ = cpu(lambda: list(iread(sub, index=":", format="extxyz")))
    n_atoms = sum(len(a) for a in atoms)
    try:
        import extxyz

        _, out["extxyz_c_cpu"], _ = cpu(lambda: extxyz.read_dicts(sub))
    except ImportError:
        out["extxyz_c_cpu"] = None
    frames, out["alip_cpu"], _ = cpu(lambda: open_pool(sub).read(0, n_frames))
    acsf = alip.ACSF.default_si()
    for th in (1, 2):
        alip.set_num_threads(th)
        _, out[f"featurize_cpu_{th}"], out[f"featurize_wall_{th}"] = cpu(lambda: core_values(acsf, frames))
    out["atoms"], out["frames"] = n_atoms, n_frames
    return out


# ----------------------------------------------------------------------------- 2. stores
def bench_stores(values: np.ndarray, work: str, rows: int = 8192) -> list[tuple]:
    chunks = [values[i : i + rows] for i in range(0, len(values), rows)]
    F = values.shape[1]
    results = []

    def size(p):
        if os.path.isfile(p):
            return os.path.getsize(p)
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(p) for f in fs)

    def npy_w(p):
        from alip.data.feature_store import save_npy

        os.makedirs(p)
        for k, c in enumerate(chunks):
            save_npy(os.path.join(p, f"{k}.npy"), c)

    def npy_r(p):
        return np.concatenate([np.load(os.path.join(p, f"{k}.npy"), mmap_mode="r") for k in range(len(chunks))])

    cases = [("npy per chunk (alip)", npy_w, npy_r)]
    try:
        import zarr

        def zarr_w(compressors):
            def w(p):
                z = zarr.create_array(p, shape=(0, F), chunks=(rows, F), dtype="f8", compressors=compressors)
                n = 0
                for c in chunks:
                    z.resize((n + len(c), F))
                    z[n : n + len(c)] = c
                    n += len(c)

            return w

        cases += [
            ("zarr v3, uncompressed", zarr_w(None), lambda p: zarr.open_array(p, mode="r")[:]),
            ("zarr v3, zstd (default)", zarr_w("auto"), lambda p: zarr.open_array(p, mode="r")[:]),
        ]
    except ImportError:
        pass
    try:
        import h5py

        def h5_w(comp):
            def w(p):
                with h5py.File(p, "w") as f:
                    d = f.create_dataset(
                        "v", shape=(0, F), maxshape=(None, F), chunks=(rows, F), dtype="f8", compression=comp
                    )
                    n = 0
                    for c in chunks:
                        d.resize((n + len(c), F))
                        d[n : n + len(c)] = c
                        n += len(c)

            return w

        def h5_r(p):
            with h5py.File(p, "r") as f:
                return f["v"][:]

        cases += [("hdf5, uncompressed", h5_w(None), h5_r), ("hdf5, lzf", h5_w("lzf"), h5_r)]
    except ImportError:
        pass
    for name, w, r in cases:
        best = None
        for _ in range(3):
            p = os.path.join(work, "store_bench")
            shutil.rmtree(p, ignore_errors=True)
            if os.path.exists(p):
                os.remove(p)
            t, c = time.perf_counter(), time.process_time()
            w(p)
            ws, wc = time.perf_counter() - t, time.process_time() - c
            t = time.perf_counter()
            back = r(p)
            rs = time.perf_counter() - t
            assert np.array_equal(back, values)
            row = (name, ws, wc, rs, size(p) / 1e6)
            best = row if best is None or row[1] < best[1] else best
            shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else os.remove(p)
        results.append(best)
    return results


# ----------------------------------------------------------------------------- 3. one run
def peak_rss_mb() -> float:
    """VmHWM of this process (the kernel's peak RSS of the current address space; unlike
    ru_maxrss it does not carry over the parent's peak through fork + exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_one(cfg: dict) -> dict:
    """One featurization in this (fresh) process; prints a JSON line."""
    import psutil

    import alip
    from alip.data.featurize import featurize_pool

    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    client = cluster = None
    startup = 0.0
    threads = cfg["threads"]
    if cfg["mode"] == "dask":
        from distributed import Client, LocalCluster

        t = time.perf_counter()
        cluster = LocalCluster(
            n_workers=cfg["workers"], threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
        )
        client = Client(cluster)
        startup = time.perf_counter() - t
        threads = 1
    else:
        alip.set_num_threads(threads)
    cpu0 = proc.cpu_times()
    worker_cpu0 = client.run(lambda: sum(psutil.Process().cpu_times()[:2])) if client else {}
    t = time.perf_counter()
    s = featurize_pool(
        cfg["pool"],
        cfg["out"],
        chunk=cfg["chunk"],
        client=client,
        threads=threads,
        pipeline=cfg["mode"] == "local-pipelined",
        overwrite=True,
    )
    wall = time.perf_counter() - t
    cpu1 = proc.cpu_times()
    res = {
        "mode": cfg["mode"],
        "wall": wall,
        "startup": startup,
        "atoms": s.atoms_run,
        "structures": s.structures_run,
        "shares": s.shares(),
        "index_s": s.index_s,
        "peak_rss_mb": peak_rss_mb(),
        "rss0_mb": rss0 / 2**20,
        "cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
    }
    if client is not None:
        cpu_w = client.run(lambda: sum(psutil.Process().cpu_times()[:2]))
        res["cpu_s"] += sum(cpu_w[w] - worker_cpu0[w] for w in cpu_w)
        res["worker_peak_rss_mb"] = max(client.run(peak_rss_mb).values())
        client.close()
        cluster.close()
    print("RESULT " + json.dumps(res), flush=True)
    return res


def spawn(cfg: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--run-one", json.dumps(cfg)], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"run failed: {cfg}\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="10^5-atom pools instead of 10^6")
    p.add_argument("--dir", default="/tmp/alip-bench-pool", help="where pools and stores go")
    p.add_argument("--chunk", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2, help="core threads of the local runs")
    p.add_argument("--stores", action="store_true", help="also compare npy / zarr / hdf5 stores")
    p.add_argument(
        "--sections",
        default="readers,runs,scaling",
        help="comma-separated: readers, runs, scaling (default all; --stores adds stores)",
    )
    p.add_argument("--json", default=None)
    p.add_argument("--run-one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.run_one:
        run_one(json.loads(args.run_one))
        return 0

    os.makedirs(args.dir, exist_ok=True)
    scale = 10 if args.quick else 1
    pools = {"A": (125_000 // scale, 1), "B": (2_000 // scale, 4)}
    paths = {}
    print(
        f"# alip pool benchmark  (load average at start: {os.getloadavg()}, cores: {os.cpu_count()}, "
        f"alip threads: {args.threads})\n"
    )
    for name, (n, rep) in pools.items():
        paths[name] = os.path.join(args.dir, f"pool_{name}_{n}x{8 * rep**3}.extxyz")
        if not os.path.exists(paths[name]):
            t = time.perf_counter()
            write_pool(paths[name], n, rep, seed=ord(name))
            print(
                f"wrote {paths[name]} ({os.path.getsize(paths[name]) / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s"
            )
    report: dict = {"load_start": os.getloadavg()}

    sections = set(args.sections.split(","))
    if "readers" in sections:
        bench_reader_table(paths, scale, report)
    if args.stores:
        bench_store_table(paths, scale, args.dir, report)
    if "runs" in sections:
        bench_run_table(paths, args, report)
    if "scaling" in sections:
        bench_scaling_table(paths, args, report)
    report["load_end"] = os.getloadavg()
    print(f"\nload average at end: {report['load_end']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=str)
    return 0


def bench_reader_table(paths: dict, scale: int, report: dict) -> None:
    print("\n## 1. Reading against featurizing (CPU seconds, same frames)\n")
    print(
        "| pool subset | atoms | ase.io.iread | extxyz (C) | alip reader | featurize 1 thr (CPU) | "
        "featurize 2 thr (wall) | alip read share | ASE read share |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    report["readers"] = {}
    for name, n in (("A", 20_000 // scale), ("B", 200 // scale)):
        r = bench_readers(paths[name], n)
        report["readers"][name] = r
        ext = f"{r['extxyz_c_cpu']:.3f}" if r["extxyz_c_cpu"] is not None else "n/a"
        f1 = r["featurize_cpu_1"]
        print(
            f"| {name}: first {n} frames | {r['atoms']} | {r['ase_cpu']:.3f} | {ext} | {r['alip_cpu']:.3f} | "
            f"{f1:.3f} | {r['featurize_wall_2']:.3f} | {r['alip_cpu'] / (r['alip_cpu'] + f1):.0%} | "
            f"{r['ase_cpu'] / (r['ase_cpu'] + f1):.0%} |"
        )


def bench_store_table(paths: dict, scale: int, work: str, report: dict) -> None:
    import alip
    from alip.data.featurize import core_values
    from alip.data.pool_reader import open_pool

    print("\n## 2. Store formats: 10^6 x 36 float64 in 8192-row chunks (best of 3)\n")
    frames = open_pool(paths["A"]).read(0, 5000 // scale)
    vals = core_values(alip.ACSF.default_si(), frames)
    vals = np.tile(vals, (-(-(10**6) // len(vals)), 1))[: 10**6]
    print("| store | write wall s | write CPU s | read wall s | MB on disk |")
    print("|---|---|---|---|---|")
    report["stores"] = []
    for row in bench_stores(vals, work):
        report["stores"].append(row)
        print(f"| {row[0]} | {row[1]:.2f} | {row[2]:.2f} | {row[3]:.2f} | {row[4]:.0f} |")


def bench_run_table(paths: dict, args: argparse.Namespace, report: dict) -> None:
    print("\n## 3. File -> feature store (fresh process per run)\n")
    print(
        "| pool | mode | wall s | atoms/s | structures/s | CPU s | peak RSS MB (client / worker; after imports) | "
        "read / featurize / write share | cluster start s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    report["runs"] = []
    for name in ("A", "B"):
        for mode in ("local-pipelined", "local-serial", "dask"):
            cfg = {
                "pool": paths[name],
                "out": os.path.join(args.dir, f"store_{name}_{mode}"),
                "mode": mode,
                "threads": args.threads,
                "workers": 2,
                "chunk": args.chunk,
            }
            r = spawn(cfg)
            r["pool"] = name
            report["runs"].append(r)
            sh = r["shares"]
            rss = (
                f"{r['peak_rss_mb']:.0f}"
                + (f" / {r['worker_peak_rss_mb']:.0f}" if "worker_peak_rss_mb" in r else "")
                + f"; {r['rss0_mb']:.0f}"
            )
            start = f"{r['startup']:.1f}" if mode == "dask" else "-"
            print(
                f"| {name} ({r['structures']} x {r['atoms'] // r['structures']}) | {mode} | {r['wall']:.1f} | "
                f"{r['atoms'] / r['wall']:,.0f} | {r['structures'] / r['wall']:,.0f} | {r['cpu_s']:.1f} | {rss} | "
                f"{sh['read']:.0%} / {sh['featurize']:.0%} / {sh['write']:.0%} | {start} |",
                flush=True,
            )
        same = _same_tree(
            os.path.join(args.dir, f"store_{name}_local-pipelined"), os.path.join(args.dir, f"store_{name}_dask")
        )
        print(f"| {name} | Dask store == local store byte for byte | {same} | | | | | | |")


def bench_scaling_table(paths: dict, args: argparse.Namespace, report: dict) -> None:
    print("\n## 4. Scaling with pool size (pool A prefixes, local pipelined, best of 3)\n")
    print("| atoms | structures | wall s | CPU s | atoms/s (wall) | µs CPU per atom | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    sizes = [10**3, 10**4, 10**5] + ([] if args.quick else [10**6])
    walls, cpus = [], []
    report["scaling"] = []
    for n_atoms in sizes:
        n = n_atoms // 8
        sub = paths["A"] + f".first{n}"
        if not os.path.exists(sub):
            prefix_pool(paths["A"], sub, n)
        runs = [
            spawn(
                {
                    "pool": sub,
                    "out": os.path.join(args.dir, f"store_scaling_{n}"),
                    "mode": "local-pipelined",
                    "threads": args.threads,
                    "workers": 0,
                    "chunk": args.chunk,
                }
            )
            for _ in range(3)
        ]
        wall, cpu = min(r["wall"] for r in runs), min(r["cpu_s"] for r in runs)
        walls.append(wall)
        cpus.append(cpu)
        report["scaling"].append({"atoms": n_atoms, "wall": wall, "cpu": cpu, "runs": runs})
        print(
            f"| {n_atoms} | {n} | {wall:.3f} | {cpu:.3f} | {n_atoms / wall:,.0f} | {1e6 * cpu / n_atoms:.1f} | "
            f"{max(r['peak_rss_mb'] for r in runs):.0f} |",
            flush=True,
        )
    fit = lambda y, k=0: float(np.polyfit(np.log(sizes[k:]), np.log(y[k:]), 1)[0])  # noqa: E731
    report["scaling_exponent"] = {
        "wall_all": fit(walls),
        "wall_from_1e4": fit(walls, 1),
        "cpu_all": fit(cpus),
        "cpu_from_1e4": fit(cpus, 1),
    }
    e = report["scaling_exponent"]
    print(
        f"\nfitted exponent p (time ∝ atoms^p), {sizes[0]}..{sizes[-1]} atoms: wall {e['wall_all']:.3f}, "
        f"CPU {e['cpu_all']:.3f}; from {sizes[1]} atoms on: wall {e['wall_from_1e4']:.3f}, "
        f"CPU {e['cpu_from_1e4']:.3f}"
    )


def _same_tree(a: str, b: str) -> bool:
    files = lambda root: sorted(
        os.path.relpath(os.path.join(d, f), root)  # noqa: E731
        for d, _, fs in os.walk(root)
        for f in fs
    )
    if files(a) != files(b):
        return False
    for rel in files(a):
        with open(os.path.join(a, rel), "rb") as f, open(os.path.join(b, rel), "rb") as g:
            if f.read() != g.read():
                return False
    return True


if __name__ == "__main__":
    sys.exit(main())
