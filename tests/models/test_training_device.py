"""Where committees train and predict (issue 8): the fused force mode of training, the
torch path of prediction, the calculator's device, and the errors when no GPU is usable.

On the CPU the fused mode and the torch prediction path run through the compiled core
(``alip.core.device``'s CPU path), so every line of the GPU wiring except the kernels is
exercised here against the sparse-gradient and numpy paths. With a CUDA build and a GPU,
the same comparisons run between the GPU and the CPU (the only skips).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

import alip
from alip.core import device as dev
from alip.models.calculator import Calculator
from alip.models.training import TrainConfig, featurize, member_losses, train_committee

requires_gpu = pytest.mark.skipif(
    not dev.cuda_available(), reason="needs a CUDA build of alip (ALIP_CUDA=ON) and an NVIDIA GPU"
)


def _structures(n: int, seed: int) -> list:
    """Strained, rattled diamond Si cells of 2, 8 and 16 atoms (ASE only, so this file runs on
    the GPU image of cuda/gpu_session.sh, which has no matscipy)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        atoms = bulk("Si", "diamond", a=5.43, cubic=k % 3 != 0)
        if k % 3 == 2:
            atoms = atoms.repeat((2, 1, 1))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + rng.normal(0, 0.03, (3, 3))), scale_atoms=True)
        atoms.positions += rng.normal(0, 0.1, atoms.positions.shape)
        out.append(atoms)
    return out


@pytest.fixture(scope="module")
def pool() -> list:
    """24 structures labelled (energy, forces, stress) by ASE's Lennard-Jones calculator:
    the numbers only need to be smooth functions of the geometry here."""
    from ase.calculators.lj import LennardJones

    structures = _structures(24, seed=5)
    for atoms in structures:
        atoms.calc = LennardJones(sigma=2.1, epsilon=0.5, rc=5.0, smooth=True)
        e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f, stress=s)
    return structures


@pytest.fixture(scope="module")
def acsf():
    return alip.ACSF.default_si()


@pytest.fixture(scope="module")
def committee(pool, acsf):
    cfg = TrainConfig(n_members=3, hidden=(8, 8), epochs=3, dtype="float64", seed=4)
    return train_committee(pool, acsf, cfg).committee


def _loss_and_grads(net, data, cfg):
    weights = (
        torch.arange(1.0, 1.0 + net.n_members * data.n_structures, dtype=torch.float64, device=data.device).reshape(
            net.n_members, -1
        )
        % 3
    )
    loss, parts = member_losses(net, data, weights, cfg)
    grads = torch.autograd.grad(loss.sum(), list(net.parameters()))
    return loss.detach().cpu(), {k: v.cpu() for k, v in parts.items()}, [g.cpu() for g in grads]


def _compare_modes(net, pool, acsf, device_a, mode_a, device_b, mode_b, tol):
    cfg = TrainConfig(weight_energy=1.0, weight_forces=1.0, weight_stress=1.0, dtype="float64")
    out = []
    for device, mode in ((device_a, mode_a), (device_b, mode_b)):
        data = featurize(acsf, pool, forces=mode, device=device)
        assert data.fused == (mode == "fused") and data.device.type == torch.device(device).type
        out.append(_loss_and_grads(net.to(data.device), data, cfg))
    (la, pa, ga), (lb, pb, gb) = out
    assert set(pa) == set(pb) == {"energy", "forces", "stress"}
    torch.testing.assert_close(la, lb, rtol=tol, atol=0)
    for k in pa:
        torch.testing.assert_close(pa[k], pb[k], rtol=tol, atol=0)
    for a, b in zip(ga, gb):  # the force/stress terms backpropagate through the JVP in fused mode
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * float(b.abs().max()))


def test_fused_and_sparse_losses_and_weight_gradients_agree(committee, pool, acsf):
    _compare_modes(committee.network, pool, acsf, "cpu", "fused", "cpu", "sparse", 1e-10)


def test_fused_batches_carry_their_own_geometry(pool, acsf):
    data = featurize(acsf, pool, forces="fused")
    idx = np.array([5, 0, 17])
    sub = data.batch(idx)
    assert sub.fused and sub.geometry.n_structures == 3 and sub.geometry.n_atoms == sub.values.shape[0]
    single = featurize(acsf, [pool[i] for i in idx], forces="fused")
    for name in ("positions", "species", "offsets", "cells", "pbc"):
        assert torch.equal(getattr(sub.geometry, name), getattr(single.geometry, name)), name
    torch.testing.assert_close(sub.values, single.values, rtol=0, atol=0)
    torch.testing.assert_close(sub.forces, single.forces, rtol=0, atol=0)


def test_training_in_fused_mode_follows_sparse_mode(pool, acsf):
    """Same seed, float64: the two force modes give the same training trajectory."""
    base = dict(n_members=2, hidden=(8,), epochs=4, batch_size=6, dtype="float64", seed=7, lbfgs_steps=2)
    a = train_committee(pool, acsf, TrainConfig(forces="sparse", **base))
    b = train_committee(pool, acsf, TrainConfig(forces="fused", **base))
    assert len(a.history) == len(b.history)
    for ha, hb in zip(a.history[1:], b.history[1:]):
        np.testing.assert_allclose(hb["val"], ha["val"], rtol=1e-8)
    for (name, pa), pb in zip(a.committee.network.state_dict().items(), b.committee.network.state_dict().values()):
        torch.testing.assert_close(pb, pa, rtol=1e-7, atol=1e-9, msg=name)
    assert b.committee.metadata["train_config"]["forces"] == "fused"


def test_mismatched_data_and_bad_options_raise(pool, acsf):
    data = featurize(acsf, pool[:6])
    with pytest.raises(ValueError, match="featurized for sparse forces"):
        train_committee(pool[:6], acsf, TrainConfig(forces="fused", epochs=1), data=data)
    with pytest.raises(ValueError, match="forces must be one of"):
        TrainConfig(forces="dense")
    with pytest.raises(ValueError, match="forces must be one of"):
        featurize(acsf, pool[:2], forces="dense")
    for bad in ("tpu", "gpu0", 3.5):
        with pytest.raises(ValueError, match="device must be"):
            TrainConfig(device=bad)


def test_torch_prediction_path_equals_numpy_path(committee, pool):
    """Committee._predict_torch is what runs on a GPU; on the CPU it must equal the core path."""
    structures = pool[:7] + [bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)]
    numbers = np.concatenate([a.numbers for a in structures])
    offsets = np.concatenate([[0], np.cumsum([len(a) for a in structures])])
    values, E, e_atom, F, W = committee._predict_torch(structures, numbers, offsets, "cpu")
    ref, ref_values = committee.predict_batch(structures)
    np.testing.assert_allclose(values, ref_values, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(E, ref.energies, rtol=1e-12)
    np.testing.assert_allclose(e_atom, ref.atomic_energies, rtol=1e-12)
    np.testing.assert_allclose(F, ref.forces, atol=1e-11)
    np.testing.assert_allclose(W, ref.virials, atol=1e-10)


@pytest.mark.skipif(dev.cuda_available(), reason="checks the error raised without a usable GPU")
def test_gpu_requests_without_gpu_fail_early_and_clearly(committee, pool, acsf):
    message = "built without CUDA" if not dev.cuda_compiled() else "no CUDA device|sees no GPU"
    with pytest.raises(RuntimeError, match=message):
        Calculator(committee, device="cuda")
    with pytest.raises(RuntimeError, match=message):
        train_committee(pool[:6], acsf, TrainConfig(device="cuda", epochs=1))
    with pytest.raises(RuntimeError, match=message):
        committee.predict(pool[:2], device="cuda")


# --------------------------------------------------------------------------- with a GPU
@requires_gpu
@pytest.mark.parametrize("mode", ["fused", "sparse"])
def test_gpu_losses_and_gradients_equal_cpu(committee, pool, acsf, mode):
    _compare_modes(committee.network, pool, acsf, "cuda", mode, "cpu", "sparse", 1e-10)
    committee.network.to("cpu")


@requires_gpu
def test_gpu_prediction_and_calculator_equal_cpu(committee, pool):
    structures = pool[:7] + [bulk("Si", "diamond", a=5.43, cubic=True).repeat(3)]
    gpu, cpu = committee.predict(structures, device="cuda"), committee.predict(structures)
    np.testing.assert_allclose(gpu.energies, cpu.energies, rtol=1e-10)
    np.testing.assert_allclose(gpu.forces, cpu.forces, atol=1e-10)
    np.testing.assert_allclose(gpu.virials, cpu.virials, atol=1e-9)
    atoms = structures[-1].copy()
    atoms.calc = Calculator(committee, device="cuda")
    e_gpu, f_gpu, s_gpu = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    atoms.calc = Calculator(committee)
    np.testing.assert_allclose(e_gpu, atoms.get_potential_energy(), rtol=1e-10)
    np.testing.assert_allclose(f_gpu, atoms.get_forces(), atol=1e-10)
    np.testing.assert_allclose(s_gpu, atoms.get_stress(), atol=1e-10)


@requires_gpu
def test_gpu_training_runs_and_matches_cpu_fused(pool, acsf):
    base = dict(n_members=2, hidden=(8,), epochs=3, batch_size=6, dtype="float64", seed=7, forces="fused")
    gpu = train_committee(pool, acsf, TrainConfig(device="cuda", **base))
    cpu = train_committee(pool, acsf, TrainConfig(device="cpu", **base))
    assert next(gpu.committee.network.parameters()).device.type == "cpu"  # returned on the CPU
    for hg, hc in zip(gpu.history[1:], cpu.history[1:]):
        np.testing.assert_allclose(hg["val"], hc["val"], rtol=1e-8)


@requires_gpu
def test_gpu_streamed_featurization_and_scoring_equal_cpu(committee, pool, acsf, tmp_path):
    from ase.io import write

    from alip.al.pool_scoring import score_pool_streamed
    from alip.data.feature_store import FeatureStore
    from alip.data.featurize import featurize_pool

    structures = pool + [pool[0].repeat((2, 2, 2))]
    structures[3] = structures[3].copy()
    structures[3].positions[1] = structures[3].positions[0]  # a frame the core rejects
    write(tmp_path / "pool.extxyz", [a.copy() for a in structures], format="extxyz")
    for device in ("cuda", None):
        featurize_pool(
            tmp_path / "pool.extxyz", tmp_path / f"store_{device}", acsf, chunk=5, on_bad="skip", device=device
        )
    gpu, cpu = FeatureStore(tmp_path / "store_cuda"), FeatureStore(tmp_path / "store_None")
    assert gpu.skipped.keys() == cpu.skipped.keys() == {3}
    np.testing.assert_allclose(gpu.values(), cpu.values(), rtol=1e-10, atol=1e-10)
    g = score_pool_streamed(committee, tmp_path / "pool.extxyz", chunk=5, device="cuda")
    c = score_pool_streamed(committee, tmp_path / "pool.extxyz", chunk=5)
    assert g.skipped.keys() == c.skipped.keys() == {3}
    for name in ("energy_std", "max_force_dev", "energy_mean", "features"):
        np.testing.assert_allclose(getattr(g, name), getattr(c, name), rtol=1e-9, atol=1e-12, equal_nan=True)


@requires_gpu
@pytest.mark.parametrize("forces", [True, False])
def test_gpu_emc_scores_equal_cpu(committee, pool, forces):
    from alip.al.acquisition import emc_chunk

    cpu = emc_chunk(committee, pool[:9], 1.0, 0.1, forces)
    committee.device = "cuda"
    try:
        gpu = emc_chunk(committee, pool[:9], 1.0, 0.1, forces)
    finally:
        committee.device = "cpu"
    np.testing.assert_allclose(gpu[0], cpu[0], rtol=1e-9)
    np.testing.assert_allclose(gpu[1], cpu[1], rtol=1e-10, atol=1e-12)
