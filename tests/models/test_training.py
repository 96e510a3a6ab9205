"""Committee training: determinism, loss decrease, generalisation against a constant predictor,
the force/stress loss gradient against finite differences, early stopping, label reading."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from ase.calculators.singlepoint import SinglePointCalculator

import alip
import alip.models.training as training_module
from alip.core.descriptors_torch import sparse_forces, sparse_virial
from alip.core.jacobian import shared_padded_forces
from alip.data.oracles import make_oracle
from alip.data.structures import generate_si_pool
from alip.models.training import (
    LabeledSet,
    TrainConfig,
    committee_forces,
    committee_virials,
    errors,
    featurize,
    member_losses,
    padded_forces,
    read_labels,
    structure_weights,
    train_committee,
)

SMALL = {"small_distortion": {"max_atoms": 16}, "large_distortion": {"max_atoms": 16}, "random": {"n_atoms": (8, 16)}}


def _labeled(n: int, seed: int) -> list:
    """n Si structures (<= 16 atoms, four families) labelled by Stillinger–Weber."""
    oracle = make_oracle("sw")
    pool = generate_si_pool(n, seed=seed, family_kwargs=SMALL)
    for atoms in pool:
        label = oracle.label(atoms)
        assert label.ok, label.error
        atoms.calc = SinglePointCalculator(atoms, energy=label.energy, forces=label.forces, stress=label.stress)
    return pool


@pytest.fixture(scope="module")
def pool() -> list:
    """100 labelled structures, shuffled so that any slice mixes the families."""
    structures = _labeled(100, seed=11)
    return [structures[i] for i in np.random.default_rng(0).permutation(len(structures))]


@pytest.fixture(scope="module")
def acsf():
    return alip.ACSF.default_si()


def test_training_is_deterministic_and_reduces_loss(pool, acsf):
    # lbfgs_steps=0: the history checked here is Adam's alone
    cfg = TrainConfig(n_members=2, hidden=(16, 16), epochs=15, batch_size=8, seed=3, val_fraction=0.25, lbfgs_steps=0)
    data = featurize(acsf, pool[:32], dtype=torch.float32)
    a = train_committee(pool[:32], acsf, cfg, data=data)
    b = train_committee(pool[:32], acsf, cfg, data=data)
    assert a.history == b.history
    for (name, x), y in zip(a.committee.network.state_dict().items(), b.committee.network.state_dict().values()):
        assert torch.equal(x, y), name
    train_losses = [h["train"] for h in a.history[1:]]
    assert train_losses[-1] < 0.5 * train_losses[0]
    assert np.all(np.array(a.history[-1]["val"]) < 0.8 * np.array(a.history[0]["val"]))
    c = train_committee(pool[:32], acsf, TrainConfig(**{**cfg.__dict__, "seed": 4}), data=data)
    w_a = a.committee.network.nets[0].weights[0]
    assert not torch.equal(w_a, c.committee.network.nets[0].weights[0])


def test_trained_committee_beats_constant_predictor(pool, acsf):
    train, test = pool[:80], pool[80:]
    cfg = TrainConfig(n_members=3, epochs=200, batch_size=8, seed=0)
    result = train_committee(train, acsf, cfg)
    err = errors(result.committee, test)
    labels = [read_labels(a) for a in test]
    e_train = np.mean([read_labels(a)[0] / len(a) for a in train])
    e_test = np.array([e / len(a) for a, (e, _, _) in zip(test, labels)])
    const_e = np.sqrt(np.mean((e_test - e_train) ** 2))  # constant energy per atom
    const_f = np.sqrt(np.mean(np.concatenate([f for _, f, _ in labels]) ** 2))  # zero forces
    const_s = np.sqrt(np.mean([s**2 for _, _, s in labels]))  # zero stress
    assert err["energy_rmse"] < 0.1 * const_e, (err, const_e)
    assert err["force_rmse"] < 0.3 * const_f, (err, const_f)
    assert err["stress_rmse"] < 0.15 * const_s, (err, const_s)
    pred = result.committee.predict(test)
    assert np.all(pred.energy_std_per_atom() > 0)  # the members disagree somewhat


def test_training_force_paths_equal_fused_and_core_sparse(pool, acsf):
    result = train_committee(pool[:16], acsf, TrainConfig(n_members=3, hidden=(8,), epochs=1, seed=1))
    committee = result.committee
    structures = pool[16:24]
    data = featurize(committee, structures)
    S = data.n_structures
    struct = torch.from_numpy(np.repeat(np.arange(S), np.diff(data.offsets)))
    E, _, dE_dG = committee.network.energies_and_gradients(data.values, data.species_index, struct, S)
    F = committee_forces(dE_dG, data.grad_values, data.grad_centers, data.grad_neighbors, len(struct))
    W = committee_virials(dE_dG, data.strain_grad, struct, S)
    fused = committee.predict(structures, chunk_size=3)
    np.testing.assert_allclose(E.detach().numpy(), fused.energies, rtol=1e-12)
    np.testing.assert_allclose(F.detach().numpy(), fused.forces, atol=1e-10)
    np.testing.assert_allclose(W.detach().numpy(), fused.virials, atol=1e-9)
    for k in range(committee.n_members):
        fk = sparse_forces(dE_dG[k], data.grad_values, data.grad_centers, data.grad_neighbors, len(struct))
        wk = sparse_virial(dE_dG[k], data.strain_grad, struct, S)
        np.testing.assert_allclose(fk.detach().numpy(), fused.forces[k], atol=1e-10)
        np.testing.assert_allclose(wk.detach().numpy(), fused.virials[k], atol=1e-9)


def test_padded_layout_batches_equal_the_sparse_rows(pool, acsf):
    """The once-padded data set (training's layout) gives, for any shuffled batch, the same
    forces as the core's sparse contraction and the same losses and weight gradients."""
    result = train_committee(pool[:16], acsf, TrainConfig(n_members=3, hidden=(8,), epochs=1, seed=1))
    net, cfg = result.committee.network, TrainConfig(n_members=3, hidden=(8,), weight_stress=0.1)
    data = featurize(result.committee, pool[16:30])
    padded = data.padded()
    assert padded.grad_values is None and not padded.fused
    assert padded.grad_padded.shape[:2] == padded.grad_targets.shape == (len(data.values), padded.grad_targets.shape[1])
    assert 1.0 <= data.padded_ratio() == padded.grad_targets.numel() / len(data.grad_centers)
    assert padded.padded() is padded
    idx = np.array([9, 2, 13, 5, 0])
    sparse_b, padded_b = data.batch(idx), padded.batch(idx)
    # on the CPU a batch reads the set's rows in place: the same tensors, and each atom's row
    assert padded_b.grad_padded is padded.grad_padded and padded_b.grad_targets is padded.grad_targets
    n = len(padded_b.values)
    assert torch.equal(padded.values[padded_b.grad_atoms], padded_b.values)
    # and its strain rows the same way; gathered, they are the sparse batch's
    assert padded_b.strain_grad is padded.strain_grad
    assert torch.equal(padded_b.gathered().strain_grad, sparse_b.strain_grad)
    S = len(idx)
    struct = sparse_b.structure_index()
    _, _, dE_dG = net.energies_and_gradients(sparse_b.values, sparse_b.species_index, struct, S)
    F = shared_padded_forces(dE_dG, padded_b.grad_padded, padded_b.grad_targets, padded_b.grad_atoms)
    # the pure-PyTorch contraction of the same rows gathered (the GPU's path), also of a batch of a batch
    gathered = padded_b.gathered()
    assert gathered.grad_atoms is None and gathered.grad_padded.shape[0] == n and gathered.gathered() is gathered
    F_ref = padded_forces(dE_dG, gathered.grad_padded, gathered.grad_targets)
    np.testing.assert_allclose(F.detach().numpy(), F_ref.detach().numpy(), rtol=0, atol=1e-12)
    sub = np.array([3, 1])  # structures 5 and 2 of the set
    nested, direct = padded_b.batch(sub).gathered(), padded.batch(idx[sub]).gathered()
    for name in ("values", "grad_padded", "grad_targets", "strain_grad"):
        assert torch.equal(getattr(nested, name), getattr(direct, name)), name
    for k in range(3):
        fk = sparse_forces(dE_dG[k], sparse_b.grad_values, sparse_b.grad_centers, sparse_b.grad_neighbors, len(struct))
        np.testing.assert_allclose(F[k].detach().numpy(), fk.detach().numpy(), rtol=0, atol=1e-12)
    weights = torch.rand(3, S, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    grads = []
    for b in (sparse_b, padded_b):
        net.zero_grad()
        loss, _ = member_losses(net, b, weights, cfg)
        loss.sum().backward()
        grads.append((loss.detach().clone(), [p.grad.clone() for p in net.parameters()]))
    np.testing.assert_allclose(grads[0][0].numpy(), grads[1][0].numpy(), rtol=1e-12)
    for a, b in zip(grads[0][1], grads[1][1]):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-9, atol=1e-14)


def test_training_falls_back_to_sparse_rows_with_the_same_result(pool, acsf, monkeypatch):
    """Above MAX_PADDED_RATIO training keeps the sparse rows (padded per step): same committee
    (in float64: the compiled contraction and the fallback's bmm sum in different orders)."""
    cfg = TrainConfig(n_members=2, hidden=(6,), epochs=3, lbfgs_steps=2, seed=3, dtype="float64")
    calls, pad = [], LabeledSet.padded
    monkeypatch.setattr(LabeledSet, "padded", lambda self: calls.append(1) or pad(self))
    padded = train_committee(pool[:12], acsf, cfg).committee.network.state_dict()
    assert calls  # the default trains on the padded layout
    calls.clear()
    monkeypatch.setattr(training_module, "MAX_PADDED_RATIO", 0.5)
    sparse = train_committee(pool[:12], acsf, cfg).committee.network.state_dict()
    assert not calls  # the fallback really ran on the sparse rows
    for name, value in padded.items():
        torch.testing.assert_close(sparse[name], value, rtol=1e-10, atol=1e-12)


def test_loss_gradient_matches_finite_differences(pool, acsf):
    """The force and stress terms backpropagate correctly into the weights (double backward)."""
    structures = pool[40:46]
    cfg = TrainConfig(
        n_members=2,
        hidden=(6, 5),
        epochs=0,
        weight_energy=1.0,
        weight_forces=1.0,
        weight_stress=1.0,
        dtype="float64",
        seed=2,
    )
    net = train_committee(structures, acsf, cfg).committee.network
    data = featurize(acsf, structures)
    assert data.strain_grad is not None and bool(data.has_stress.all())
    weights = torch.tensor([[1.0, 2.0, 0.0, 1.0, 3.0, 1.0], [1.0] * 6], dtype=torch.float64)
    loss, parts = member_losses(net, data, weights, cfg)
    assert set(parts) == {"energy", "forces", "stress"}
    params = list(net.parameters())
    grads = torch.autograd.grad(loss.sum(), params)
    rng = np.random.default_rng(0)
    h = 1e-6
    for p, g in zip(params, grads):
        for _ in range(3):
            idx = tuple(int(rng.integers(n)) for n in p.shape)
            with torch.no_grad():  # also checks that the loss works inside no_grad blocks
                p[idx] += h
                up = member_losses(net, data, weights, cfg, create_graph=False)[0].sum().item()
                p[idx] -= 2 * h
                down = member_losses(net, data, weights, cfg, create_graph=False)[0].sum().item()
                p[idx] += h
            assert g[idx].item() == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("validation", ["shared", "folds"])
def test_early_stopping_keeps_best_weights(pool, acsf, validation):
    cfg = TrainConfig(
        n_members=2,
        hidden=(16,),
        epochs=400,
        lr=3e-2,
        lr_final=3e-2,
        patience=4,
        batch_size=1,  # the validation loss is summed over chunks of 4 structures
        seed=5,
        val_fraction=0.3,
        validation=validation,
    )
    result = train_committee(pool[:24], acsf, cfg)
    assert len(result.history) - 1 < cfg.epochs  # stopped early
    best = np.min([h["val"] for h in result.history], axis=0)
    for k in range(2):  # each member's best loss is over the structures it held out, recomputed here
        held_out = [pool[i] for i, h in zip(result.val_indices, result.held_out[k]) if h]
        data = featurize(acsf, held_out)
        w = structure_weights(data, cfg).unsqueeze(0).expand(2, -1)
        loss, _ = member_losses(result.committee.network, data, w, cfg, create_graph=False)
        assert float(loss[k].detach()) == pytest.approx(best[k], rel=1e-4)


def test_validation_folds_hold_out_a_block_per_member_and_train_on_the_rest(pool, acsf, monkeypatch):
    import alip.models.training as training

    cfg = TrainConfig(n_members=3, hidden=(8,), epochs=2, batch_size=5, seed=1, val_fraction=0.2, lbfgs_steps=2)
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    original = training.member_losses

    def recording(net, data, weights, cfg, create_graph=True):
        if create_graph:  # the training steps (Adam and L-BFGS), not the validation
            seen.append((data.energies.double().numpy().copy(), weights.detach().double().numpy().copy()))
        return original(net, data, weights, cfg, create_graph)

    monkeypatch.setattr(training, "member_losses", recording)
    structures = pool[:20]
    result = train_committee(structures, acsf, cfg)
    assert list(result.train_indices) == list(range(20))  # the committee trains on every structure
    assert result.held_out.shape == (3, len(result.val_indices)) and (result.held_out.sum(1) == 4).all()
    assert (result.held_out.sum(0) == 1).all() and len(result.val_indices) == 12  # disjoint folds of 4
    fold_of = {int(i): int(np.flatnonzero(result.held_out[:, j])[0]) for j, i in enumerate(result.val_indices)}
    labels = np.array([a.get_potential_energy() for a in structures])
    assert np.diff(np.sort(labels)).min() > 1e-4  # a batch's structures are told apart by their energies
    trained = np.zeros((3, 20))
    for energies, weights in seen:
        for col, e in enumerate(energies):
            trained[:, np.abs(labels - e).argmin()] += weights[:, col]
    for i in range(20):
        for k in range(3):
            assert (trained[k, i] > 0) == (fold_of.get(i) != k), (i, k)
    for n, k, fraction in [(16, 8, 0.1), (15, 8, 0.1), (3, 2, 0.9), (8, 1, 0.5), (24, 5, 0.3)]:
        c = dataclasses.replace(cfg, n_members=k, val_fraction=fraction)
        train_idx, val_idx, held = training._validation_split(n, c, np.random.default_rng(0))
        assert list(train_idx) == list(range(n)) and (held.sum(0) < max(k, 2)).all()  # each one trains a member
        assert len(set(held.sum(1))) == 1  # the same number held out by every member
        if k * held.sum(1)[0] <= n:
            assert (held.sum(0) == 1).all()  # disjoint
    shared = train_committee(structures, acsf, dataclasses.replace(cfg, validation="shared"))
    assert result.held_out.all(0).sum() == 0 and shared.held_out.all()
    assert len(shared.train_indices) == 16 and len(shared.val_indices) == 4


def test_structure_weights_formula(pool, acsf):
    data = featurize(acsf, pool[:10])
    e = np.array([read_labels(a)[0] / len(a) for a in pool[:10]])
    w = structure_weights(data, TrainConfig(energy_weighting=0.2)).numpy()
    np.testing.assert_allclose(w, 1.0 / (1.0 + (e - e.min()) / 0.2), rtol=1e-12)
    assert np.all(structure_weights(data, TrainConfig()).numpy() == 1.0)


def test_read_labels_from_info_and_arrays(pool):
    atoms = pool[3]
    energy, forces, stress = read_labels(atoms)
    plain = atoms.copy()
    plain.calc = None
    plain.info["energy"] = energy
    plain.arrays["forces"] = forces
    plain.info["stress"] = atoms.get_stress()  # Voigt
    e2, f2, s2 = read_labels(plain)
    assert e2 == energy and np.array_equal(f2, forces)
    np.testing.assert_allclose(s2, stress, atol=1e-15)
    del plain.info["energy"]
    with pytest.raises(ValueError, match="energy"):
        read_labels(plain)


def test_config_validation():
    with pytest.raises(ValueError):
        TrainConfig(n_members=0)
    with pytest.raises(ValueError):
        TrainConfig(val_fraction=1.0)
    with pytest.raises(ValueError):
        TrainConfig(feature_scaling="robust")
    with pytest.raises(ValueError):
        TrainConfig(energy_weighting=0.0)
    with pytest.raises(ValueError, match="activation"):
        train_committee(_labeled(4, seed=0), None, TrainConfig(activation="relu6", epochs=1))


def test_default_descriptor_is_cross_windows_si_and_data_must_match_it(pool, acsf):
    """Without a descriptor, training uses ACSF.cross_windows_si() (72 functions: windows_si and 8 G5
    with legs on two windows); windows_si is fine_g5_si's G2, its centred G5 but eta 0.1, and 24 G5 on
    windows every 0.5 Å; data featurized with another descriptor is refused with the two feature
    counts, not a shape error."""
    cfg = TrainConfig(n_members=1, hidden=(8,), epochs=1, lbfgs_steps=0)
    result = train_committee(pool[:6], None, cfg)
    cross, windows = alip.ACSF.cross_windows_si(), alip.ACSF.windows_si()
    fine, shells = alip.ACSF.fine_g5_si(), alip.ACSF.shells_si()
    assert result.committee.acsf.to_dict() == cross.to_dict() == alip.ACSF.training_default().to_dict()
    assert cross.n_features == 72 and windows.n_features == shells.n_features == 64 and fine.n_features == 48
    np.testing.assert_array_equal(cross.g5[:48], windows.g5)
    assert sorted({(a, b) for a, b in cross.g5[48:, 3:]}) == [(2.3, 3.3), (2.3, 3.8)]
    assert set(cross.g5[48:, 0]) == {2.0} and sorted(set(cross.g5[48:, 1])) == [1.0, 8.0]
    np.testing.assert_array_equal(windows.g2, fine.g2)
    np.testing.assert_array_equal(windows.g5[:24], fine.g5[fine.g5[:, 0] != 0.1])
    assert sorted(set(windows.g5[24:, 3])) == [1.8, 2.3, 2.8, 3.3, 3.8, 4.3]
    assert set(windows.g5[24:, 0]) == {2.0} and sorted(set(windows.g5[24:, 1])) == [1.0, 8.0]
    np.testing.assert_array_equal(shells.g5[:32], fine.g5)
    assert sorted(set(shells.g5[32:, 3])) == [2.35, 3.84]
    data = featurize(acsf, pool[:6], dtype=torch.float32)
    with pytest.raises(ValueError, match="36 features per atom but the descriptor has 72"):
        train_committee(pool[:6], None, cfg, data=data)


def test_chunks_are_the_consecutive_batches_built_once(pool, acsf):
    """Full-batch passes (validation, L-BFGS) reuse one gather of each block: the chunks are
    batch() of consecutive structures, in order, covering the set, and the same objects on every call."""
    result = train_committee(pool[:16], acsf, TrainConfig(n_members=2, hidden=(8,), epochs=1, seed=1))
    data = featurize(result.committee, pool[16:30]).padded()
    chunks = data.chunks(4)
    assert [c for c, _ in chunks] == [slice(0, 4), slice(4, 8), slice(8, 12), slice(12, 14)]
    assert data.chunks(4) is chunks and all(a is b for (_, a), (_, b) in zip(chunks, data.chunks(4)))
    for cols, sub in chunks:
        ref = data.batch(np.arange(cols.start, cols.stop))
        for name in ("values", "energies", "forces", "grad_padded", "grad_targets", "grad_atoms", "strain_grad"):
            assert torch.equal(getattr(sub, name), getattr(ref, name)), name
        assert sub.grad_padded is data.grad_padded  # shared, not gathered (CPU)
    assert len(data.chunks(5)) == 3
