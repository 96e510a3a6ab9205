"""Pool scoring per iteration with and without the run's feature store (RUN/features).

    OMP_NUM_THREADS=1 python bench/score_from_store.py --n 1000 --committee RUN/checkpoints/committee_000.pt

Times :func:`alip.al.pool_scoring.score_pool` on a generated Si pool, once computing the
descriptors (as the loop did before) and once from stored values, checks that the scores
are the same, and prints the one-off cost of featurizing the pool into a store.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from alip.al.pool_scoring import score_pool
from alip.data.featurize import featurize_structures
from alip.data.structures import generate_si_pool
from alip.models.committee import Committee


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="pool size")
    ap.add_argument("--committee", required=True, help="a Committee.save() file, e.g. a run's checkpoint")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    com = Committee.load(args.committee)
    pool = generate_si_pool(args.n, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store = featurize_structures(pool, f"{tmp}/features", com.acsf)
        t_feat = time.perf_counter() - t0
        values = [store.structure(i) for i in range(len(pool))]
        print(f"pool {len(pool)} structures, {sum(map(len, pool))} atoms; featurize once: {t_feat:.2f} s")
        for strategy, kw in (("qbc", {}), ("emc", {"emc_forces": True}), ("emc", {"emc_forces": False})):
            times = {}
            for name, vals in (("compute", None), ("store", values)):
                best = np.inf
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    res = score_pool(com, pool, strategy, values=vals, **kw)
                    best = min(best, time.perf_counter() - t0)
                times[name], times[name + "_scores"] = best, res.scores
            same = np.array_equal(times["compute_scores"], times["store_scores"])
            print(
                f"{strategy:3s} {kw!s:22s} compute G: {times['compute']:.2f} s   read G: {times['store']:.2f} s   "
                f"ratio {times['compute'] / times['store']:.2f}   same scores: {same}"
            )


if __name__ == "__main__":
    main()
