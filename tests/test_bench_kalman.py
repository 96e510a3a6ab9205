"""bench/kalman_probe.py: the filter update is recursive least squares; the measurements' innovations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bench_scripts import load_bench


@pytest.fixture(scope="module")
def kal():
    return load_bench("kalman_probe")


@pytest.mark.parametrize("per_update", [1, 3, 12])
def test_update_without_forgetting_is_ridge_regression(kal, per_update):
    """With λ = 1 and P₀ = p₀ I, updates over all rows of a linear model give w = (HᵀH + I/p₀)⁻¹ Hᵀ y
    and P = (HᵀH + I/p₀)⁻¹, whether the rows come one at a time or stacked; a member that is
    off keeps its P and gets no step."""
    rng = np.random.default_rng(0)
    n, rows, p0 = 7, 12, 3.0
    Hall = torch.as_tensor(rng.normal(size=(2, rows, n)))
    y = torch.as_tensor(rng.normal(size=(2, rows)))
    P = p0 * torch.eye(n, dtype=torch.float64).repeat(2, 1, 1)
    w = torch.zeros(2, n, dtype=torch.float64)
    on = torch.tensor([True, False])
    lam = torch.ones(2, dtype=torch.float64)
    for a in range(0, rows, per_update):
        H = Hall[:, a : a + per_update].clone()
        xi = y[:, a : a + per_update] - torch.einsum("kmn,kn->km", H, w)
        H[~on], xi[~on] = 0.0, 0.0
        w += kal.filter_update(P, H, xi, lam, on)
    H0 = Hall[0]
    cov = torch.linalg.inv(H0.T @ H0 + torch.eye(n, dtype=torch.float64) / p0)
    torch.testing.assert_close(w[0], cov @ H0.T @ y[0], rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(P[0], cov, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(P[1], p0 * torch.eye(n, dtype=torch.float64))
    assert torch.all(w[1] == 0)


@pytest.mark.parametrize("per_update", [1, 3])
def test_update_with_forgetting_is_exponentially_weighted_least_squares(kal, per_update):
    """With a constant λ < 1, after N updates P⁻¹ = λᴺ P₀⁻¹ + Σ_t λ^(N−t) H_tᵀH_t and
    w = P Σ_t λ^(N−t) H_tᵀ y_t (t the update, its rows weighted alike); a member that is off
    keeps its P unscaled and gets no step."""
    rng = np.random.default_rng(1)
    n, rows, p0, lam0 = 5, 12, 2.0, 0.9
    Hall = torch.as_tensor(rng.normal(size=(2, rows, n)))
    y = torch.as_tensor(rng.normal(size=(2, rows)))
    P = p0 * torch.eye(n, dtype=torch.float64).repeat(2, 1, 1)
    w = torch.zeros(2, n, dtype=torch.float64)
    on = torch.tensor([True, False])
    lam = torch.tensor([lam0, 0.5], dtype=torch.float64)
    n_updates = rows // per_update
    for a in range(0, rows, per_update):
        H = Hall[:, a : a + per_update].clone()
        xi = y[:, a : a + per_update] - torch.einsum("kmn,kn->km", H, w)
        H[~on], xi[~on] = 0.0, 0.0
        w += kal.filter_update(P, H, xi, lam, on)
    t = torch.arange(rows) // per_update  # each row's update
    decay = lam0 ** (n_updates - 1 - t).double()
    H0 = Hall[0]
    info = lam0**n_updates * torch.eye(n, dtype=torch.float64) / p0 + H0.T @ (decay[:, None] * H0)
    cov = torch.linalg.inv(info)
    torch.testing.assert_close(P[0], cov, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(w[0], cov @ H0.T @ (decay * y[0]), rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(P[1], p0 * torch.eye(n, dtype=torch.float64))
    assert torch.all(w[1] == 0)


def test_forgetting_scales_the_covariance(kal):
    """P ← (P − K H P) / λ: with a zero measurement row only the 1/λ inflation remains."""
    P = torch.eye(3, dtype=torch.float64).repeat(1, 1, 1) * 2.0
    step = kal.filter_update(
        P, torch.zeros(1, 1, 3, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64),
        torch.tensor([0.5], dtype=torch.float64), torch.tensor([True]),
    )  # fmt: skip
    torch.testing.assert_close(P[0], 4.0 * torch.eye(3, dtype=torch.float64))
    assert torch.all(step == 0)


def test_measurements_innovations_are_the_weighted_errors(kal):
    """The energy innovation is √w_E (E₀ − E)/N, each force group's √w_F times the mean absolute
    error of its components (the sign trick), the virial's √w_σ times that of W/N; the groups
    cover every atom once."""
    from ase.build import bulk

    from alip.core.descriptors import ACSF
    from alip.core.jacobian import shared_padded_forces
    from alip.data.oracles import make_oracle
    from alip.models.networks import CommitteeNetwork
    from alip.models.training import TrainConfig, _initialise_scaling, featurize

    oracle = make_oracle("sw")
    frames = []
    for seed in (1, 2):
        a = bulk("Si", "diamond", a=5.43, cubic=True)
        a.rattle(0.05, seed=seed)
        a.set_cell(a.cell * 1.01, scale_atoms=True)
        frames.append(_labelled(oracle, a))
    acsf = ACSF.training_default()
    data = featurize(acsf, frames, dtype=torch.float64).padded()
    cfg = TrainConfig(n_members=2, weight_energy=4.0, weight_forces=0.2, weight_stress=0.3)
    net = CommitteeNetwork(acsf.n_features, acsf.species, 2, cfg.hidden, cfg.activation, seed=3)
    _initialise_scaling(net, data, cfg)
    b = data.batch(np.array([1]))
    h, y = kal.measurements(net, b, cfg, 3, np.random.default_rng(0), True)
    assert h.shape == y.shape == (2, 1 + 3 + 1)
    n = len(frames[1])
    E, _, dE_dG = net.energies_and_gradients(b.values, b.species_index, b.structure_index(), 1)
    struct = b.structure_index()
    F, W = shared_padded_forces(dE_dG, b.grad_padded, b.grad_targets, b.grad_atoms, b.strain_grad, struct, 1)
    xi = (y - h).detach()
    torch.testing.assert_close(xi[:, 0], 2.0 * (b.energies[0] - E[:, 0]) / n)
    err_f = (b.forces - F).abs()  # (K, n, 3); 8 atoms in groups of 3, 3, 2
    sizes = [3, 3, 2]
    assert sum(sizes) == n
    total = sum(xi[:, 1 + g] * 3 * s for g, s in enumerate(sizes))  # mean |err| x components per group
    torch.testing.assert_close(total / np.sqrt(cfg.weight_forces), err_f.sum((1, 2)))
    assert torch.all(xi[:, 1:4] >= 0)
    err_w = ((b.virials[0] - W[:, 0]) / n).abs().reshape(2, -1).mean(1)
    torch.testing.assert_close(xi[:, 4], np.sqrt(cfg.weight_stress) * err_w)


@pytest.mark.parametrize("per_update", [1, 2])
def test_epoch_trains_a_member_only_on_its_structures(kal, per_update):
    """One epoch lowers the loss of the member that trains on the structures, moves its
    weights, P and λ, and leaves a member that holds every structure out as it was."""
    import argparse

    from alip.core.descriptors import ACSF
    from alip.data.oracles import make_oracle
    from alip.models.networks import CommitteeNetwork
    from alip.models.training import TrainConfig, _initialise_scaling, featurize, member_losses

    oracle = make_oracle("sw")
    frames = []
    for seed in (1, 2, 3):
        a = bulk_si()
        a.rattle(0.08, seed=seed)
        frames.append(_labelled(oracle, a))
    acsf = ACSF.training_default()
    data = featurize(acsf, frames, dtype=torch.float64).padded()
    cfg = TrainConfig(n_members=2, hidden=[8])
    net = CommitteeNetwork(acsf.n_features, acsf.species, 2, cfg.hidden, cfg.activation, seed=5).double()
    _initialise_scaling(net, data, cfg)
    params = list(net.parameters())
    n = sum(p[0].numel() for p in params)
    P = torch.eye(n, dtype=torch.float64).repeat(2, 1, 1)
    lam = torch.full((2,), 0.98, dtype=torch.float64)
    trains_member = torch.tensor([[True] * 3, [False] * 3])
    before = [p.detach().clone() for p in params]
    ones = torch.ones(2, 3, dtype=torch.float64)
    loss0 = member_losses(net, data, ones, cfg, create_graph=False)[0].detach()
    args = argparse.Namespace(per_update=per_update, force_groups=2, nu=0.9987)
    kal.kalman_epoch(net, params, P, lam, data, trains_member, cfg, args, np.random.default_rng(0))
    loss1 = member_losses(net, data, ones, cfg, create_graph=False)[0].detach()
    assert loss1[0] < 0.95 * loss0[0]
    assert loss1[1] == loss0[1]
    for p, q in zip(params, before):
        assert not torch.equal(p[0], q[0])
        assert torch.equal(p[1], q[1])
    assert not torch.equal(P[0], torch.eye(n, dtype=torch.float64))
    assert torch.equal(P[1], torch.eye(n, dtype=torch.float64))
    assert lam[0] > 0.98 and lam[1] == 0.98


def bulk_si():
    from ase.build import bulk

    return bulk("Si", "diamond", a=5.43, cubic=True)


def _labelled(oracle, atoms):
    from ase.calculators.singlepoint import SinglePointCalculator

    e, f, s = oracle.compute(atoms.copy())
    atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f, stress=s)
    return atoms
