"""``alip select committee.pt POOL -n 50 -o next.extxyz``: the next batch to label yourself.

Streams QBC scores of POOL (extxyz or ASE ``*.db``, larger than memory is fine; unusable
frames are skipped and reported), keeps frames whose max force deviation lies in the
trust window [--trust-lo, --trust-hi] (DP-GEN: below lo the model is already accurate,
above hi the structure is probably unphysical), drops frames already in --exclude files
(same numbers; positions and cell within 1e-8 Å), and picks a diverse batch
(``alip.al.acquisition.select_batch``). Selected frames are copied from POOL without labels,
with info pool_index, qbc_score, max_force_dev, energy_std_per_atom; --scores writes a
CSV row per frame. Outputs are written atomically. Exit status: 0 done (also when
nothing is left to select), 2 bad arguments or input.

Examples::

    alip select committee.pt md.extxyz -n 50 -o next.extxyz --trust-lo 0.05 --trust-hi 0.5
    alip select committee.pt pool.db -n 20 -o next.extxyz --exclude labeled.extxyz --scores scores.csv
    python -m alip.cli.select select committee.pt pool.extxyz -n 50 -o next.extxyz
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms

from alip.cli._common import cli_error
from alip.cli.train import InputError, read_structures
from alip.config import QBC_KINDS
from alip.files import atomic_write

if TYPE_CHECKING:  # the CLI imports torch only when a command needs it
    from distributed import Client

    from alip.al.pool_scoring import StreamedScores
    from alip.data.pool_reader import PoolReader
    from alip.models.committee import Committee

SELECT_COSTS = ("none", "atoms3")  # "measured" needs the run's label times: alip run only


MATCH_TOL = 1e-8  # Å: positions and cell of an excluded structure
CSV_COLUMNS = ("frame", "n_atoms", "ok", "energy_std_per_atom", "max_force_dev", "score", "selected", "skipped_reason")


@dataclass
class Selection:
    """Scores of every pool frame, why frames were left out, and the chosen frames."""

    scores: StreamedScores  # in pool order
    score: np.ndarray  # (S,) the acquisition score (NaN for skipped frames)
    reason: np.ndarray  # (S,) str: "" for candidates, else why the frame was left out
    candidates: np.ndarray  # frames eligible for selection
    selected: np.ndarray  # chosen frames, in selection order
    n_excluded: int = 0
    n_below: int = 0  # max_force_dev < trust_lo
    n_above: int = 0  # max_force_dev > trust_hi
    kind: str = "force"  # the --score used
    reader: PoolReader | None = None  # the pool's (its index is reused to read the selected frames)


def excluded_frames(
    reader: PoolReader, structures: Sequence[Atoms], chunk: int = 1024, tol: float = MATCH_TOL
) -> np.ndarray:
    """Pool frames equal to one of ``structures`` (same numbers; positions and cell within ``tol``)."""
    from alip.data.pool_reader import chunk_bounds

    if not structures:
        return np.zeros(0, dtype=np.int64)
    known: dict[bytes, list[tuple[np.ndarray, np.ndarray]]] = {}
    for a in structures:
        known.setdefault(a.numbers.astype(np.int64).tobytes(), []).append((a.positions, a.cell.array))
    sizes = np.array(sorted({len(a) for a in structures}), dtype=np.int64)
    found: list[int] = []
    for frames in reader.iter_chunks(chunk_bounds(reader.counts, chunk)):
        off = frames.offsets
        for k in np.flatnonzero(np.isin(frames.counts, sizes)):
            sl = slice(off[k], off[k + 1])
            for pos, cell in known.get(frames.numbers[sl].tobytes(), ()):
                if np.allclose(pos, frames.positions[sl], rtol=0.0, atol=tol) and np.allclose(
                    cell, frames.cells[k], rtol=0.0, atol=tol
                ):
                    found.append(int(frames.frame_ids[k]))
                    break
    return np.array(found, dtype=np.int64)


def read_frame(reader: PoolReader, i: int) -> Atoms:
    """Frame ``i`` of the pool as ASE reads it (all info and arrays), by its byte range or row id."""
    ref = reader.ref(int(i), int(i) + 1)
    if ref.kind == "db":
        import ase.db

        with ase.db.connect(ref.path, type="db", use_lock_file=False) as db:
            row = db.get(id=ref.lo)
            atoms = row.toatoms()
            atoms.info.update(row.key_value_pairs)
            return atoms
    from ase.io import read

    with open(ref.path, "rb") as fh:
        fh.seek(ref.lo)
        text = fh.read(ref.hi - ref.lo).decode()
    return read(io.StringIO(text), index=0, format="extxyz")


def select_from_pool(
    committee: Committee,
    pool: str | os.PathLike,
    n: int,
    *,
    score: str = "force",
    diversity: str = "fps",
    candidates: float = 4.0,
    trust_lo: float | None = None,
    trust_hi: float | None = None,
    exclude: Sequence[str | os.PathLike] = (),
    device: str | None = None,
    chunk: int = 256,
    client: Client | None = None,
    seed: int = 0,
    random_fraction: float = 0.0,
    cost: str = "none",
    progress: bool = False,
) -> Selection:
    """Score POOL with ``committee`` (:func:`alip.score_pool_streamed`) and choose ``n`` frames.

    Order of filters: skipped (unusable) frames, then frames in ``exclude``, then the trust
    window on the max force deviation (closed interval). ``score="combined"``/``"all"`` divide by the
    medians over all scored frames. ``device`` "cpu" or None: the compiled core.
    ``random_fraction`` of the batch is drawn uniformly from the candidates (exploration).
    ``cost="atoms3"`` ranks by score / n_atoms³ (:mod:`alip.al.cost`; plane-wave DFT scales
    so); the scores reported stay the raw ones.
    """
    from alip.al.acquisition import qbc_from_parts, select_batch
    from alip.al.cost import cost_aware_scores, cost_model
    from alip.al.pool_scoring import score_pool_streamed
    from alip.data.pool_reader import open_pool

    if score not in QBC_KINDS:
        raise InputError(f"unknown score {score!r}; choose from {QBC_KINDS}")
    if n < 1:
        raise InputError(f"-n must be >= 1, got {n}")
    if cost not in SELECT_COSTS:
        raise InputError(f"--cost must be one of {list(SELECT_COSTS)}, got {cost!r}")
    if trust_lo is not None and trust_hi is not None and trust_lo > trust_hi:
        raise InputError(f"--trust-lo {trust_lo} is above --trust-hi {trust_hi}")
    reader = open_pool(pool)  # FileNotFoundError: no such pool file
    if reader.n_frames == 0:
        raise InputError(f"{pool}: no structures")
    known = [a for path in exclude for a in read_structures(path)]
    dev = None if device in (None, "cpu") else device
    s = score_pool_streamed(committee, reader, chunk=chunk, client=client, on_bad="skip", device=dev, progress=progress)
    value = np.full(len(s), np.nan)
    value[s.ok] = qbc_from_parts(score, s.energy_std[s.ok], s.max_force_dev[s.ok], s.virial_dev[s.ok])
    free = s.ok.copy()
    excl = np.isin(s.frame_ids, excluded_frames(reader, known, chunk)) & free
    free &= ~excl
    below = free & (s.max_force_dev < trust_lo) if trust_lo is not None else np.zeros(len(s), bool)
    above = free & (s.max_force_dev > trust_hi) if trust_hi is not None else np.zeros(len(s), bool)
    free &= ~(below | above)
    reason = np.select(
        [excl, below, above],
        ["already labelled (--exclude)", "max_force_dev < trust_lo", "max_force_dev > trust_hi"],
        "",
    ).astype(object)
    reason[~s.ok] = [s.skipped.get(int(f), "unusable frame") for f in s.frame_ids[~s.ok]]
    cand = np.flatnonzero(free)
    ranked = cost_aware_scores(value[cand], cost_model(cost).cost(s.n_atoms[cand])) if cost != "none" else value[cand]
    chosen = (
        cand[select_batch(ranked, s.features[cand], n, diversity, candidates, seed, random_fraction)]
        if len(cand)
        else np.zeros(0, dtype=np.int64)
    )
    return Selection(
        s,
        value,
        reason,
        s.frame_ids[cand],
        s.frame_ids[chosen],
        int(excl.sum()),
        int(below.sum()),
        int(above.sum()),
        score,
        reader,
    )


def selected_atoms(selection: Selection) -> list[Atoms]:
    """The selected frames read from the pool, without labels, with their scores in ``info``."""
    reader, s = selection.reader, selection.scores
    pos = {int(f): k for k, f in enumerate(s.frame_ids)}
    out = []
    for f in selection.selected:
        atoms, k = read_frame(reader, f), pos[int(f)]
        atoms.calc = None
        atoms.info.update(
            pool_index=int(f),
            qbc_score=float(selection.score[k]),
            max_force_dev=float(s.max_force_dev[k]),
            energy_std_per_atom=float(s.energy_std[k]),
        )
        out.append(atoms)
    return out


def write_outputs(selection: Selection, out: str | os.PathLike, scores_csv: str | os.PathLike | None = None) -> None:
    """Write the selected structures (extxyz) and, if asked, the CSV of every frame, each atomically."""
    from ase.io import write

    def text(fn: Any) -> Any:
        def body(raw: Any) -> None:  # atomic_write's binary temporary file, seen as UTF-8 text
            fh = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            fn(fh)
            fh.flush()
            fh.detach()

        return body

    atoms, s = selected_atoms(selection), selection.scores
    atomic_write(os.fspath(out), text(lambda fh: write(fh, atoms, format="extxyz") if atoms else None))
    if scores_csv is None:
        return
    chosen = np.isin(s.frame_ids, selection.selected).astype(int)
    rows = zip(
        s.frame_ids.tolist(),
        s.n_atoms.tolist(),
        s.ok.astype(int).tolist(),
        map(repr, s.energy_std.tolist()),
        map(repr, s.max_force_dev.tolist()),
        map(repr, selection.score.tolist()),
        chosen.tolist(),
        selection.reason,
    )
    atomic_write(os.fspath(scores_csv), text(lambda fh: csv.writer(fh).writerows(itertools.chain([CSV_COLUMNS], rows))))


def _summary(sel: Selection, args: argparse.Namespace) -> None:
    s, ok = sel.scores, sel.score[sel.scores.ok]
    print(f"pool {len(s)} frames ({int(s.n_atoms.sum())} atoms), scored in {s.seconds:.1f} s; skipped {len(s.skipped)}")
    for frame, why in sorted(s.skipped.items())[:20]:
        print(f"  skipped frame {frame}: {why}")
    if len(s.skipped) > 20:
        print(f"  ... {len(s.skipped) - 20} more (see --scores)")
    if args.exclude:
        print(f"excluded {sel.n_excluded} already labelled")
    window = (
        ""
        if args.trust_lo is None and args.trust_hi is None
        else (
            f"trust window [{args.trust_lo}, {args.trust_hi}] eV/Å on max force deviation: {sel.n_below} below "
            f"(accurate), {sel.n_above} above (likely unphysical), "
        )
    )
    print(f"{window}{len(sel.candidates)} candidates")
    if len(ok):
        print(f"{sel.kind} score over scored frames: {ok.min():.4g} .. {ok.max():.4g}")
    picked = sel.score[np.isin(s.frame_ids, sel.selected)]
    print(
        f"selected {len(picked)} -> {args.out}"
        + (
            f" (score {picked.min():.4g} .. {picked.max():.4g})"
            if len(picked)
            else ": no candidates left, the file is empty"
        )
    )
    if args.scores:
        print(f"scores of every frame -> {args.scores}")


def _run(args: argparse.Namespace) -> int:
    from alip.cli.featurize import _client
    from alip.models.committee import Committee

    close = lambda: None  # noqa: E731
    try:
        for path in [args.out] + ([args.scores] if args.scores else []):
            if os.path.exists(path) and not args.force:
                raise InputError(f"{path} exists; pass --force to overwrite")
        committee = Committee.load(args.committee)
        client, close = _client(args)
        sel = select_from_pool(
            committee,
            args.pool,
            args.n,
            score=args.score,
            diversity=args.diversity,
            candidates=args.candidates,
            trust_lo=args.trust_lo,
            trust_hi=args.trust_hi,
            exclude=args.exclude or (),
            device=args.device,
            chunk=args.chunk,
            client=client,
            seed=args.seed,
            random_fraction=args.random_fraction,
            cost=args.cost,
            progress=not args.no_progress,
        )
        write_outputs(sel, args.out, args.scores)
    except (ValueError, FileNotFoundError, OSError, RuntimeError) as exc:
        print(cli_error("select", exc), file=sys.stderr)
        return 2
    finally:
        close()
    _summary(sel, args)
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``select`` (score a pool with a committee and write the next batch to label)."""

    p = subparsers.add_parser(
        "select",
        help="pick the next structures to label (QBC, trust window, diversity)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("committee", help="committee file (alip train -o ...)")
    p.add_argument("pool", help="candidate structures: extxyz or ASE *.db")
    p.add_argument("-n", type=int, required=True, help="how many structures to select")
    p.add_argument("-o", "--out", required=True, help="extxyz file for the selected structures")
    p.add_argument("--scores", help="CSV with one row per pool frame")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument(
        "--score",
        choices=QBC_KINDS,
        default="force",
        help="max force deviation (eV/Å, default), energy std per atom, virial deviation per atom, "
        "energy+force (combined) or energy+force+virial (all) over their medians",
    )
    p.add_argument("--diversity", choices=("fps", "kmeans", "none"), default="fps", help="batch diversity")
    p.add_argument("--candidates", type=float, default=4.0, help="diversity among the top CANDIDATES × n")
    p.add_argument(
        "--random-fraction",
        type=float,
        default=0.0,
        help="this fraction of the n is drawn uniformly from the candidates (exploration; default 0)",
    )
    p.add_argument(
        "--cost",
        choices=SELECT_COSTS,
        default="none",
        help="rank by score / label cost: none (default) or atoms3 (score / n_atoms^3, plane-wave DFT)",
    )
    p.add_argument("--trust-lo", type=float, help="drop frames with max force deviation below this (eV/Å)")
    p.add_argument("--trust-hi", type=float, help="drop frames with max force deviation above this (eV/Å)")
    p.add_argument(
        "--exclude", action="append", metavar="FILE", help="structures already labelled (extxyz or db; repeatable)"
    )
    p.add_argument("--device", default="cpu", help="cpu (default: the compiled core) or cuda[:N]")
    p.add_argument("--chunk", type=int, default=256, help="structures per scoring chunk (default 256)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address (e.g. tcp://host:8786)")
    p.add_argument("--workers", type=int, help="start a local Dask cluster with this many worker processes")
    p.add_argument("--seed", type=int, default=0, help="seed of k-means (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m alip.cli.select select ...``."""
    from alip.cli._common import run_parser, subcommand_parser

    return run_parser(subcommand_parser(__doc__, add_parser), argv)


if __name__ == "__main__":
    raise SystemExit(main())
