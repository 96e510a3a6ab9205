"""CUR selection of symmetry functions (alip.core.selection): what it picks on matrices whose
answer is known, and that a selected ACSF computes exactly the pool's columns it names."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from alip.core.descriptors import ACSF
from alip.core.selection import _groups, candidate_pool, cur_select, select_acsf


def test_cur_spans_the_columns_and_never_takes_a_copy_or_a_constant():
    rng = np.random.default_rng(0)
    u, v, w = rng.normal(size=(3, 400))
    X = np.stack([u, 2 * u + 1, v, u + v, np.full(400, 3.0), w], axis=1)
    chosen = cur_select(X, 3)
    assert len(set(chosen)) == 3 and not {0, 1} <= set(chosen) and 4 not in chosen
    assert np.linalg.matrix_rank(X[:, chosen] - X[:, chosen].mean(0)) == 3  # u, v and w are all described
    assert 5 in chosen  # w is independent of everything else: it must be taken


def test_cur_takes_the_strongest_direction_first():
    rng = np.random.default_rng(1)
    common = rng.normal(size=500)
    X = np.stack([common + 0.01 * rng.normal(size=500) for _ in range(5)] + [rng.normal(size=500)], axis=1)
    assert cur_select(X, 1)[0] < 5  # five columns share one direction: it dominates the first singular vector


def test_cur_fills_up_in_index_order_once_everything_is_described():
    rng = np.random.default_rng(4)
    u, v = rng.normal(size=(2, 200))
    X = np.stack([u, v, u - v, 2 * v, np.ones(200)], axis=1)  # rank 2
    chosen = cur_select(X, 5)
    assert sorted(chosen) == [0, 1, 2, 3, 4] and np.linalg.matrix_rank(X[:, chosen[:2]]) == 2


def test_cur_groups_are_taken_whole_and_bad_sizes_are_refused():
    rng = np.random.default_rng(2)
    u, v, w, z = rng.normal(size=(4, 300))
    # group 2 repeats group 0's two directions; group 1 alone holds w and z
    X = np.stack([u, w, u + 0.01 * rng.normal(size=300), v, z, v + 0.01 * rng.normal(size=300)], axis=1)
    groups = [[0, 3], [1, 4], [2, 5]]
    chosen = cur_select(X, 2, groups)
    assert len(chosen) == 2 and 1 in chosen and set(chosen) != {0, 2}  # a group's span is removed whole
    with pytest.raises(ValueError, match="n must be in"):
        cur_select(X, 4, groups)
    with pytest.raises(ValueError, match="n must be in"):
        cur_select(X, 0)


def test_candidate_pool_sizes_and_checks():
    pool = candidate_pool(["Si"])
    assert (len(pool.g2), len(pool.g4), len(pool.g5), pool.n_features) == (48, 0, 148, 196)
    assert pool.g2[:, 1].max() <= 5.3 + 1e-9 and pool.g2[9:, 1].min() == pytest.approx(1.8)
    shifts = pool.g5[100:, 3]  # windows on the neighbor shells: 1.8, 2.3, .., 4.3 Å
    assert (pool.g5[:100, 3] == 0).all() and np.allclose(np.unique(shifts), np.arange(1.8, 4.31, 0.5))
    with pytest.raises(ValueError, match="r_min"):
        candidate_pool(["Si"], cutoff=2.0)


def _two_element_frames() -> list[Atoms]:
    rng = np.random.default_rng(3)
    frames = []
    for _ in range(4):
        cell = np.eye(3) * 6.0
        pos = np.array([[i, j, m] for i in range(2) for j in range(2) for m in range(2)], float) * 3.0
        a = Atoms("Si4O4", positions=pos + rng.normal(scale=0.15, size=pos.shape), cell=cell, pbc=True)
        frames.append(a)
    return frames


def test_selected_acsf_computes_exactly_the_pool_columns_it_names():
    frames = _two_element_frames()
    pool = candidate_pool(["O", "Si"], cutoff=4.5, r_min=1.2)
    chosen = select_acsf(frames, 10, pool=pool)
    assert len(chosen.g2) + len(chosen.g5) == 10 and list(chosen.species) == [8, 14]
    assert select_acsf(frames, 10, pool=pool).to_dict() == chosen.to_dict()  # deterministic
    groups, n2 = _groups(pool)
    g2_rows = [int(np.flatnonzero((pool.g2 == p).all(1))[0]) for p in chosen.g2]
    g5_rows = [n2 + int(np.flatnonzero((pool.g5 == p).all(1))[0]) for p in chosen.g5]
    # the pool's columns of those parameter sets, in ACSF order: G2 per element, then G5 per pair
    n_el, n_pairs = 2, 3
    cols = [groups[j][s] for s in range(n_el) for j in g2_rows]
    cols += [groups[j][p] for p in range(n_pairs) for j in g5_rows]
    np.testing.assert_allclose(chosen.compute(frames), pool.compute(frames)[:, cols], rtol=1e-12, atol=1e-14)


def test_select_acsf_needs_structures_and_a_g4_free_pool():
    with pytest.raises(ValueError, match="at least one structure"):
        select_acsf([])
    g4_pool = ACSF(species=["Si"], cutoff=5.0, g2=[(0.1, 0.0)], g4=[(0.1, 1.0, 1.0)])
    with pytest.raises(ValueError, match="G2 and G5"):
        select_acsf(_two_element_frames()[:1], 1, pool=g4_pool)
