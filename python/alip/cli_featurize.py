"""`alip featurize POOL -o OUT.npz`: ACSF values of every structure in an extxyz or
ASE-database pool, computed in batched calls of the compiled core.

The output holds `values` (N, F), `offsets` (n_structures + 1), `numbers` (N,),
`feature_labels` and the descriptor spec as JSON, so a reader can never mix specs.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Iterator

import numpy as np


def _read_chunks(path: str, chunk: int) -> Iterator[list]:
    from ase.io import iread

    buf: list = []
    for atoms in iread(path, index=":"):
        buf.append(atoms)
        if len(buf) == chunk:
            yield buf
            buf = []
    if buf:
        yield buf


def featurize_file(path: str, out: str, acsf: Any = None, chunk: int = 1024, progress: bool = True) -> dict:
    """Featurizes every structure of `path` into `out` (.npz); returns a summary."""
    from tqdm import tqdm

    from .descriptors import ACSF

    acsf = acsf or ACSF.default_si()
    values, numbers, counts = [], [], []
    t0 = time.perf_counter()
    n_atoms = 0
    with tqdm(desc="featurize", unit=" structures", disable=not progress) as bar:
        for structures in _read_chunks(path, chunk):
            values.append(acsf.compute(structures))
            numbers.extend(a.numbers for a in structures)
            counts.extend(len(a) for a in structures)
            n_atoms += sum(counts[-len(structures):])
            bar.update(len(structures))
            bar.set_postfix(atoms=n_atoms)
    if not counts:
        raise ValueError(f"{path} contains no structures")
    elapsed = time.perf_counter() - t0
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    np.savez(out, values=np.concatenate(values), offsets=offsets, numbers=np.concatenate(numbers),
             feature_labels=np.array(acsf.feature_labels()), spec=json.dumps(acsf.to_dict()))
    return {"structures": len(counts), "atoms": int(offsets[-1]), "features": acsf.n_features,
            "seconds": elapsed, "atoms_per_second": offsets[-1] / max(elapsed, 1e-12)}


def _run(args: argparse.Namespace) -> int:
    from .descriptors import ACSF

    try:
        acsf = ACSF.from_dict(json.load(open(args.spec))) if args.spec else ACSF.default_si()
        summary = featurize_file(args.pool, args.out, acsf, chunk=args.chunk, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as exc:
        print(f"alip featurize: error: {exc}", file=sys.stderr)
        return 2
    print(f"featurized {summary['structures']} structures ({summary['atoms']} atoms, {summary['features']} "
          f"features) in {summary['seconds']:.2f} s ({summary['atoms_per_second']:.0f} atoms/s, reading included) "
          f"-> {args.out}")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("featurize", help="ACSF descriptors of a pool (extxyz or ASE db) into an .npz file",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pool", help="extxyz file or ASE database")
    p.add_argument("-o", "--out", required=True, help="output .npz")
    p.add_argument("--spec", help="descriptor spec as JSON (ACSF.to_dict()); default: ACSF.default_si()")
    p.add_argument("--chunk", type=int, default=1024, help="structures per batched core call (default 1024)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
    return p
