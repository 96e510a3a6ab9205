"""`alip featurize POOL -o OUT`: ACSF values of every structure of an extxyz file or ASE
database, streamed chunk by chunk into a feature store directory (bounded memory).

OUT holds per-chunk .npy files with the values, the species and per-structure
offsets, and the descriptor spec in meta.json, so a reader can never mix specs
(alip.data.feature_store.FeatureStore reads it; dask.array.from_npy_stack(OUT/values)
too). An interrupted run continues with --resume without recomputing finished
chunks. --scheduler ADDRESS spreads the chunks over a Dask cluster (pool and OUT on
a filesystem the workers share).

Exit status: 0 done, 2 bad arguments or input, 3 a bad frame with --on-bad stop.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

from alip.cli._common import add_allow_nonperiodic, cli_error


def _client(args: argparse.Namespace) -> tuple[Client | None, Callable[[], None]]:
    """(distributed.Client or None, close function)."""
    if args.scheduler and args.workers:
        raise ValueError("give either --scheduler or --workers, not both")
    if not (args.scheduler or args.workers):
        return None, lambda: None
    from distributed import Client, LocalCluster

    if args.scheduler:
        client = Client(args.scheduler)
        return client, client.close
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    return client, lambda: (client.close(), cluster.close())


def _run(args: argparse.Namespace) -> int:
    from alip.core.descriptors import ACSF
    from alip.data.featurize import BadFrameError, featurize_pool

    if str(args.out).endswith(".npz"):
        print(
            "alip featurize: error: the output is a feature store directory (e.g. pool.features), not an "
            ".npz file; read it with alip.data.feature_store.FeatureStore",
            file=sys.stderr,
        )
        return 2
    close = lambda: None  # noqa: E731
    try:
        acsf = ACSF.from_spec(args.spec) if args.spec else ACSF.default_si()
        client, close = _client(args)
        threads = args.threads or (1 if client is not None and args.workers else None)
        summary = featurize_pool(
            args.pool,
            args.out,
            acsf,
            chunk=args.chunk,
            client=client,
            resume=args.resume,
            on_bad=args.on_bad,
            chunk_atoms=args.chunk_atoms or None,
            dtype=args.dtype,
            overwrite=args.overwrite,
            allow_nonperiodic=args.allow_nonperiodic,
            threads=threads,
            progress=not args.no_progress,
            device=args.device,
        )
    except BadFrameError as exc:
        print(cli_error("featurize", exc).replace(": error:", ": stopped:", 1), file=sys.stderr)
        return 3
    except (ValueError, FileNotFoundError, OSError, RuntimeError) as exc:
        print(cli_error("featurize", exc), file=sys.stderr)
        return 2
    finally:
        close()
    shares = summary.shares()
    print(
        f"featurized {summary.n_structures - summary.n_skipped} of {summary.n_structures} structures "
        f"({summary.n_atoms} atoms, {summary.n_features} features) -> {summary.out}"
    )
    if summary.chunks_resumed:
        print(f"resumed: {summary.chunks_resumed} of {summary.n_chunks} chunks were already done")
    print(
        f"this run: {summary.structures_run} structures, {summary.atoms_run} atoms in {summary.seconds:.2f} s "
        f"({summary.structures_per_second:,.0f} structures/s, {summary.atoms_per_second:,.0f} atoms/s); "
        f"read {shares['read']:.0%} / featurize {shares['featurize']:.0%} / write {shares['write']:.0%}"
    )
    for frame, reason in list(summary.skipped.items())[:20]:
        print(f"skipped frame {frame}: {reason}")
    if len(summary.skipped) > 20:
        print(f"... {len(summary.skipped) - 20} more skipped frames in {summary.out}/skipped.json")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "featurize",
        help="ACSF descriptors of a pool (extxyz or ASE db) into a feature store",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("pool", help="extxyz file or ASE database (*.db)")
    p.add_argument("-o", "--out", required=True, help="output feature store (a directory)")
    p.add_argument(
        "--spec",
        help="descriptor: a preset (default_si, fine_si, fine_g5_si, shells_si, windows_si, cross_windows_si), "
        "a JSON file of ACSF.to_dict() or that JSON inline; default: ACSF.default_si()",
    )
    p.add_argument("--chunk", type=int, default=1024, help="structures per chunk (one core call; default 1024)")
    p.add_argument(
        "--chunk-atoms",
        type=int,
        default=65536,
        help="at most this many atoms per chunk, beyond one structure (default 65536; 0: no limit)",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in OUT")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store OUT")
    p.add_argument(
        "--on-bad",
        choices=("stop", "skip"),
        default="stop",
        help="a frame that cannot be featurized (NaN, missing cell, ...): stop (default) or skip it "
        "(recorded in OUT/skipped.json)",
    )
    add_allow_nonperiodic(p)
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="stored value type")
    p.add_argument("--threads", type=int, help="OpenMP threads of the core (per Dask task with a cluster)")
    p.add_argument("--device", help="cpu (default: the compiled core) or cuda[:N] (needs a CUDA build)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address (e.g. tcp://host:8786)")
    p.add_argument("--workers", type=int, help="start a local Dask cluster with this many worker processes")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
    return p
