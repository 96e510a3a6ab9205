"""Acquisition scores and batch selection: hand-made committees and pools with known answers,
EMC against a per-structure autograd reference, QBC against the sparse-gradient force path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

import alip
from alip.al.acquisition import combine_qbc, emc_chunk, farthest_point, qbc_scores, select_batch
from alip.al.pool_scoring import score_pool
from alip.models.committee import Committee, Prediction
from alip.models.networks import CommitteeNetwork
from alip.models.training import committee_forces

SMALL_G2 = [(0.5, 0.0), (1.0, 2.2), (0.2, 3.5)]
SMALL_G4 = [(0.01, 1.0, 1.0), (0.02, 2.0, -1.0)]


def _si(n_cells: tuple[int, int, int] = (1, 1, 1), rattle: float = 0.1, seed: int = 0, strain: float = 0.0) -> Atoms:
    a = bulk("Si", "diamond", a=5.431, cubic=True).repeat(n_cells)
    a.set_cell(a.cell[:] * (1 + strain), scale_atoms=True)
    a.rattle(rattle, seed=seed)
    return a


def _sic(seed: int = 0) -> Atoms:
    a = bulk("Si", "diamond", a=5.431, cubic=True)
    a.numbers[[1, 4]] = 6
    a.rattle(0.1, seed=seed)
    return a


def _committee(species: list[str], n_members: int = 3, hidden: tuple = (6, 5), seed: int = 0) -> Committee:
    acsf = alip.ACSF(species=species, cutoff=4.5, g2=SMALL_G2, g4=SMALL_G4)
    net = CommitteeNetwork(acsf.n_features, acsf.species, n_members, hidden, "tanh", seed=seed).double()
    with torch.no_grad():  # non-trivial scaling so that every buffer enters the scores
        net.feature_scale.uniform_(0.5, 2.0, generator=torch.Generator().manual_seed(seed))
        net.energy_scale.fill_(0.8)
        net.energy_ref.copy_(torch.linspace(-4.0, -3.0, len(acsf.species)))
    return Committee(acsf, net)


def _copy_member(committee: Committee, species_slot: int | None = None) -> None:
    """Make every member equal to member 0 (for one species network, or all)."""
    with torch.no_grad():
        for s, mlp in enumerate(committee.network.nets):
            if species_slot is not None and s != species_slot:
                continue
            for p in list(mlp.weights) + list(mlp.biases):
                p[1:] = p[0]


# ----------------------------------------------------------------------------- QBC
def _prediction(energies: np.ndarray, forces: np.ndarray, n_atoms: list[int]) -> Prediction:
    offsets = np.concatenate([[0], np.cumsum(n_atoms)])
    K = energies.shape[0]
    return Prediction(energies, forces, np.zeros((K, len(n_atoms), 3, 3)), offsets)


def test_qbc_hand_made_values_and_selection():
    # 3 members, 4 structures of 2, 3, 1, 2 atoms; members agree everywhere except structure 2
    n_atoms = [2, 3, 1, 2]
    E = np.tile(np.array([-8.0, -12.0, -4.0, -8.5]), (3, 1))
    F = np.tile(np.arange(24, dtype=float).reshape(8, 3), (3, 1, 1))
    E[:, 2] = [-4.0, -4.3, -3.7]  # std (ddof 0) = sqrt(0.06), 1 atom
    F[:, 5] = [[1, 0, 0], [-1, 0, 0], [0, 0, 0]] + F[0, 5]  # atom 5 = the atom of structure 2
    pred = _prediction(E, F, n_atoms)
    force = qbc_scores(pred, "force")
    energy = qbc_scores(pred, "energy")
    # ε_F = sqrt(mean_k |F_k - <F>|²) = sqrt((1 + 1 + 0) / 3)
    np.testing.assert_allclose(force, [0, 0, np.sqrt(2 / 3), 0], atol=1e-12)
    np.testing.assert_allclose(energy, [0, 0, np.sqrt(0.06), 0], atol=1e-12)
    for kind in ("force", "energy", "combined"):
        scores = qbc_scores(pred, kind)
        assert select_batch(scores, None, 1, diversity="none").tolist() == [2]
    with pytest.raises(ValueError, match="unknown QBC"):
        qbc_scores(pred, "forces")


def test_qbc_combined_normalisation():
    e = np.array([1.0, 2.0, 3.0, 0.5])
    f = np.array([0.1, 0.4, 0.2, 0.3])
    # medians 1.5 and 0.25
    np.testing.assert_allclose(combine_qbc(e, f), e / 1.5 + f / 0.25)
    np.testing.assert_allclose(combine_qbc(np.zeros(3), np.array([1.0, 2.0, 3.0])), [0.5, 1.0, 1.5])


def test_real_committee_agreeing_except_one_structure_selects_it():
    # members share the Si network and differ only in the C network:
    # only the structure that contains carbon has any disagreement
    com = _committee(["C", "Si"], n_members=4)
    _copy_member(com, species_slot=1)
    pool = [_si(seed=i) for i in range(5)]
    pool.insert(3, _sic(seed=9))
    for strategy, kind in (("qbc", "force"), ("qbc", "energy"), ("emc", "force")):
        res = score_pool(com, pool, strategy, qbc_kind=kind)
        others = np.delete(res.scores, 3)
        assert res.scores[3] > 1e-3
        assert np.all(others <= 1e-9 * res.scores[3]), (strategy, kind, res.scores)
        assert select_batch(res.scores, res.features, 1).tolist() == [3]


def test_virial_deviation_by_hand_and_where_forces_vanish():
    """ε_W from its definition (loops over members and components), and the reason for it:
    a strained ideal crystal has zero force deviation by symmetry but a virial spread."""
    com = _committee(["Si"], n_members=4, seed=7)
    pool = [_si(rattle=0.0, strain=s) for s in (-0.04, 0.05)] + [
        _si(seed=3),
        _si((2, 1, 1), seed=4),
        _si(seed=5, strain=0.02),
        _si(seed=6),
    ]
    pred = com.predict(pool)
    K = com.n_members
    for s, atoms in enumerate(pool):
        W = pred.virials[:, s]
        mean = sum(W[k] for k in range(K)) / K
        ref = np.sqrt(sum(((W[k] - mean) ** 2).sum() for k in range(K)) / K) / len(atoms)
        assert pred.virial_deviation_per_atom()[s] == pytest.approx(ref, rel=1e-12)
    ideal = pred.max_force_deviation()[:2]
    assert np.all(ideal < 1e-10) and np.all(pred.virial_deviation_per_atom()[:2] > 1e-4)
    e, f, w = pred.energy_std_per_atom(), pred.max_force_deviation(), pred.virial_deviation_per_atom()
    np.testing.assert_allclose(qbc_scores(pred, "virial"), w)
    np.testing.assert_allclose(qbc_scores(pred, "all"), e / np.median(e) + f / np.median(f) + w / np.median(w))
    np.testing.assert_allclose(qbc_scores(pred, "combined"), e / np.median(e) + f / np.median(f))
    got = score_pool(com, pool, "qbc", qbc_kind="all", chunk_atoms=9)
    np.testing.assert_allclose(got.virial_dev, w, rtol=1e-12)
    np.testing.assert_allclose(got.scores, qbc_scores(pred, "all"), rtol=1e-12)


def test_qbc_scores_match_sparse_gradient_forces_in_any_chunking():
    com = _committee(["Si"], n_members=3, seed=2)
    pool = [_si((1, 1, 1), seed=i) for i in range(4)] + [_si((2, 1, 1), seed=10 + i) for i in range(3)]
    pool = [pool[i] for i in (5, 0, 3, 6, 1, 4, 2)]  # mixed sizes: chunks sort by size internally
    ref_f, ref_e = [], []
    for a in pool:
        d = com.acsf.compute(a, gradients=True)
        E, _, dEdG = com.evaluate(d.values, a.numbers, d.offsets)
        F = committee_forces(
            torch.tensor(dEdG),
            torch.tensor(d.grad_values),
            torch.tensor(d.grad_centers),
            torch.tensor(d.grad_neighbors),
            len(a),
        ).numpy()
        dev = F - F.mean(0)
        ref_f.append(np.sqrt((dev**2).sum(-1).mean(0)).max())
        ref_e.append(E[:, 0].std() / len(a))
    for chunk_atoms in (1, 20, 10_000):
        res = score_pool(com, pool, "qbc", qbc_kind="force", chunk_atoms=chunk_atoms)
        np.testing.assert_allclose(res.scores, ref_f, rtol=1e-9)
        np.testing.assert_allclose(res.energy_std, ref_e, rtol=1e-9)
        np.testing.assert_allclose(res.features, [com.acsf.compute(a).mean(0) for a in pool], rtol=1e-12)


# ----------------------------------------------------------------------------- EMC
def _emc_reference(com: Committee, atoms: Atoms, w_e: float, w_f: float, forces: bool, last: bool) -> float:
    """(1/K) Σ_k ‖ ½ ∇_θ loss(y = f_k) ‖ with f = committee mean, one autograd pass per k."""
    net = com.network
    params = [
        p for mlp in net.nets for p in ((mlp.weights[-1], mlp.biases[-1]) if last else (*mlp.weights, *mlp.biases))
    ]
    d = com.acsf.compute(atoms, gradients=True)
    n = len(atoms)
    sidx = torch.as_tensor(com.species_index(atoms.numbers))
    with torch.enable_grad():
        E, _, dEdG = net.energies_and_gradients(
            torch.tensor(d.values), sidx, torch.zeros(n, dtype=torch.long), 1, create_graph=True
        )
        F = committee_forces(
            dEdG, torch.tensor(d.grad_values), torch.tensor(d.grad_centers), torch.tensor(d.grad_neighbors), n
        )
        E_mean, F_mean = E.mean(0), F.mean(0)
        norms = []
        for k in range(com.n_members):
            obj = w_e * (E_mean - E[k]).detach() / n**2 * E_mean.sum()
            if forces:
                obj = obj + w_f / (3 * n) * ((F_mean - F[k]).detach() * F_mean).sum()
            grads = torch.autograd.grad(obj, params, retain_graph=True, allow_unused=True)
            norms.append(float(torch.sqrt(sum((g**2).sum() for g in grads if g is not None))))
    return float(np.mean(norms))


@pytest.mark.parametrize("forces,params", [(True, "all"), (False, "all"), (True, "last")])
def test_emc_matches_per_structure_autograd(forces, params):
    com = _committee(["C", "Si"], n_members=3, seed=5)
    pool = [_si(seed=1), _sic(seed=2), _si((2, 1, 1), seed=3), _sic(seed=4), _si(strain=0.03, seed=5)]
    ref = [_emc_reference(com, a, 1.3, 0.4, forces, params == "last") for a in pool]
    scores, pooled = emc_chunk(com, pool, 1.3, 0.4, forces, params)
    np.testing.assert_allclose(scores, ref, rtol=1e-10)
    assert min(ref) > 0
    np.testing.assert_allclose(pooled, [com.acsf.compute(a).mean(0) for a in pool], rtol=1e-12)
    chunked = score_pool(
        com, pool, "emc", emc_forces=forces, emc_params=params, weight_energy=1.3, weight_forces=0.4, chunk_atoms=9
    ).scores
    np.testing.assert_allclose(chunked, ref, rtol=1e-10)
    # "cpu:0" takes the alip.core.device path (fused VJP + JVP instead of stored gradients), as
    # "cuda" does, with the compiled core underneath
    com.device = "cpu:0"
    on_device, pooled_dev = emc_chunk(com, pool, 1.3, 0.4, forces, params)
    np.testing.assert_allclose(on_device, ref, rtol=1e-10)
    np.testing.assert_allclose(pooled_dev, pooled, rtol=1e-12)


def test_emc_is_zero_where_members_agree():
    com = _committee(["Si"], n_members=4, seed=3)
    pool = [_si(seed=i) for i in range(3)]
    assert np.all(emc_chunk(com, pool)[0] > 1e-4)
    _copy_member(com)
    scores = emc_chunk(com, pool)[0]
    assert np.all(np.abs(scores) < 1e-12), scores


def test_emc_rejects_bad_settings():
    com = _committee(["Si"])
    with pytest.raises(ValueError, match="emc_params"):
        emc_chunk(com, [_si()], params="first")
    with pytest.raises(ValueError, match="non-negative"):
        emc_chunk(com, [_si()], weight_forces=-1.0)


# ----------------------------------------------------------------------------- random
def test_random_scores_are_seeded_and_cover_the_pool():
    pool = [_si(seed=i) for i in range(50)]
    a = score_pool(None, pool, "random", seed=4)
    b = score_pool(None, pool, "random", seed=4)
    c = score_pool(None, pool, "random", seed=5)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert not np.array_equal(a.scores, c.scores)
    assert a.features is None and a.scores.shape == (50,)
    assert np.all((a.scores >= 0) & (a.scores < 1))
    with pytest.raises(ValueError, match="unknown strategy"):
        score_pool(None, pool, "uncertainty")


# ----------------------------------------------------------------------------- batch selection
def test_farthest_point_on_a_line():
    X = np.array([[0.0], [1.0], [2.0], [10.0], [4.0]])
    # start at row 1 (best score); farthest is 10, then 4 (min dist 3 to {1, 10}) ... then 0 vs 2: tie at 1 -> earlier
    assert farthest_point(X, np.array([1, 0, 2, 3, 4]), 5) == [1, 3, 4, 0, 2]
    assert farthest_point(X, np.array([1, 2, 0, 3, 4]), 5) == [1, 3, 4, 2, 0]


@pytest.mark.parametrize("diversity", ["fps", "kmeans"])
def test_batch_skips_duplicates(diversity):
    # 8 copies of the highest-scoring structure, then 6 distinct ones with lower scores
    dup = _si(seed=0)
    pool = [dup.copy() for _ in range(8)] + [_si(seed=1 + i, strain=0.01 * i) for i in range(6)]
    acsf = alip.ACSF.default_si()
    features = np.stack([acsf.compute(a).mean(0) for a in pool])
    scores = np.concatenate([np.full(8, 10.0), np.linspace(5.0, 1.0, 6)])
    pick = select_batch(scores, features, 4, diversity=diversity, candidates=3.0, seed=1)
    assert len(pick) == 4 and len(set(pick.tolist())) == 4
    assert sum(int(i) < 8 for i in pick) == 1, pick  # one copy, never two
    # without diversity the batch is four copies: the test above can fail
    assert select_batch(scores, features, 4, diversity="none").tolist() == [0, 1, 2, 3]
    # fewer distinct structures than the batch: copies only fill what is left
    few = select_batch(scores[:10], features[:10], 4, diversity=diversity, candidates=1.0, seed=1)
    assert sorted(int(i) >= 8 for i in few) == [False, False, True, True]


def test_batch_selection_through_the_pool_scores_avoids_copies():
    com = _committee(["Si"], n_members=3, seed=7)
    hot = _si((1, 1, 1), rattle=0.25, seed=3)
    pool = [hot.copy() for _ in range(6)] + [_si(seed=20 + i, rattle=0.05 + 0.02 * i) for i in range(6)]
    res = score_pool(com, pool, "qbc")
    pick = select_batch(res.scores, res.features, 3, "fps", candidates=4.0)
    keys = {pool[i].positions.round(6).tobytes() for i in pick}
    assert len(keys) == 3


def test_select_batch_rejects_bad_input():
    s = np.array([1.0, 2.0, 3.0])
    X = np.eye(3)
    with pytest.raises(ValueError, match="diversity"):
        select_batch(s, X, 2, diversity="greedy")
    with pytest.raises(ValueError, match="NaN"):
        select_batch(np.array([1.0, np.nan, 0.0]), X, 2)
    with pytest.raises(ValueError, match="batch_size"):
        select_batch(s, X, 0)
    with pytest.raises(ValueError, match="feature row"):
        select_batch(s, None, 2, diversity="fps")
    with pytest.raises(ValueError, match="candidates"):
        select_batch(s, X, 2, candidates=0.5)
    assert select_batch(s, X, 5).tolist() == [2, 1, 0]  # batch larger than the pool: everything


def test_random_fraction_mixes_top_scores_with_uniform_draws():
    rng = np.random.default_rng(0)
    scores = rng.random(200)
    X = rng.normal(size=(200, 4))
    top = select_batch(scores, X, 15, "fps", 4.0, seed=3)
    mixed = select_batch(scores, X, 20, "fps", 4.0, seed=3, random_fraction=0.25)
    assert len(mixed) == len(set(mixed.tolist())) == 20
    np.testing.assert_array_equal(mixed[:15], top)  # the scored part is the plain selection
    drawn = mixed[15:]
    assert not set(drawn.tolist()) & set(top.tolist())
    np.testing.assert_array_equal(drawn, select_batch(scores, X, 20, "fps", 4.0, seed=3, random_fraction=0.25)[15:])
    # uniform over the rest: the drawn scores are not the top ones (their mean is near 0.5)
    draws = np.concatenate([select_batch(scores, X, 20, "none", seed=s, random_fraction=0.5)[10:] for s in range(40)])
    assert abs(scores[draws].mean() - 0.5) < 0.05 and len(np.unique(draws)) > 150
    np.testing.assert_array_equal(
        select_batch(scores, X, 20, "none", random_fraction=0.0), select_batch(scores, X, 20, "none")
    )
    assert len(select_batch(scores, None, 4, "none", random_fraction=1.0)) == 4
    with pytest.raises(ValueError, match="random_fraction"):
        select_batch(scores, X, 5, random_fraction=1.5)
    with pytest.raises(ValueError, match="NaN"):  # validated even when nothing is picked by score
        select_batch(np.r_[scores[:-1], np.nan], X, 4, "none", random_fraction=1.0)


# ----------------------------------------------------------------------------- stored descriptors
@pytest.mark.parametrize(
    "strategy,kw",
    [("qbc", {"qbc_kind": "all"}), ("emc", {"emc_forces": False}), ("emc", {"emc_forces": True}), ("random", {})],
)
def test_scoring_from_stored_values_matches_computing_them_and_reads_them(strategy, kw):
    com = _committee(["C", "Si"], n_members=3, seed=2)
    pool = [_si(seed=1), _sic(seed=2), _si((2, 1, 1), seed=3), _sic(seed=4)]
    stored = [com.acsf.compute(a) for a in pool]
    plain = score_pool(com, pool, strategy, chunk_atoms=9, **kw)
    got = score_pool(com, pool, strategy, chunk_atoms=9, values=stored, **kw)
    np.testing.assert_array_equal(got.scores, plain.scores)  # the same numbers, bit for bit
    pooled = np.stack([v.mean(0) for v in stored])
    np.testing.assert_allclose(got.features, pooled, rtol=1e-12)
    if strategy == "random" or (strategy == "emc" and kw["emc_forces"]):
        return  # random needs no G; EMC's force pass yields G with its gradients
    # the scores come from the values given, not from recomputing them
    shifted = score_pool(com, pool, strategy, chunk_atoms=9, values=[v * 1.01 for v in stored], **kw)
    assert not np.allclose(shifted.scores, plain.scores)


def test_stored_values_must_cover_the_pool():
    com = _committee(["Si"])
    pool = [_si(seed=i) for i in range(3)]
    with pytest.raises(ValueError, match="values holds 2 structures, the pool 3"):
        score_pool(com, pool, "qbc", values=[com.acsf.compute(a) for a in pool[:2]])
