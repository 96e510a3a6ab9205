"""Committee networks: forces/stress against finite differences, invariances, multi-species,
TorchScript export, save/load round trip and compatibility errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from finite_differences import fd_virial

import alip
from alip.models.calculator import Calculator
from alip.models.committee import Committee
from alip.models.networks import ACTIVATIONS, CommitteeNetwork


def _committee(species=("Si",), n_members=3, hidden=(12, 10), activation="tanh", seed=0) -> Committee:
    """An untrained committee whose feature scaling comes from a few reference structures."""
    acsf = (
        alip.ACSF.default_si()
        if list(species) == ["Si"]
        else alip.ACSF(
            species=list(species),
            cutoff=5.0,
            g2=[(0.0, 0.0), (0.3, 0.0), (2.0, 2.4)],
            g4=[(0.01, 1.0, 1.0), (0.01, 2.0, -1.0)],
            g5=[(0.02, 1.0, -1.0)],
        )
    )
    net = CommitteeNetwork(acsf.n_features, acsf.species, n_members, hidden, activation, seed=seed)
    refs = [_rattled(8, 0.1, seed=s, symbols=species) for s in range(3)]
    G = torch.as_tensor(acsf.compute(refs))
    with torch.no_grad():
        net.feature_shift[:] = G.mean(0)
        net.feature_scale[:] = G.std(0).clamp_min(1e-3)
        net.energy_ref[:] = torch.linspace(-4.3, -3.9, len(acsf.species), dtype=torch.float64)
        net.energy_scale.fill_(0.5)
    return Committee(acsf, net)


def _rattled(n_rep: int = 8, amp: float = 0.1, seed: int = 0, symbols=("Si",)) -> Atoms:
    """Diamond Si (8-atom cubic cell), sheared, rattled; alternating symbols if several."""
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    rng = np.random.default_rng(seed)
    strain = np.eye(3) + 0.03 * rng.standard_normal((3, 3))
    atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
    atoms.positions += amp * rng.standard_normal(atoms.positions.shape)
    if len(symbols) > 1:
        atoms.set_chemical_symbols([symbols[i % len(symbols)] for i in range(len(atoms))])
    return atoms


def _cluster(seed: int = 0) -> Atoms:
    """Non-periodic 10-atom Si cluster cut from diamond, rattled."""
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    center = atoms.positions.mean(0)
    order = np.argsort(np.linalg.norm(atoms.positions - center, axis=1))[:10]
    cluster = Atoms("Si10", positions=atoms.positions[order], pbc=False)
    cluster.positions += 0.08 * np.random.default_rng(seed).standard_normal((10, 3))
    return cluster


def _energy(committee: Committee, atoms: Atoms) -> np.ndarray:
    """Per-member energies (K,) from descriptor values only (no force path involved)."""
    E, _, _ = committee.evaluate(committee.acsf.compute(atoms), atoms.numbers, np.array([0, len(atoms)]))
    return E[:, 0]


@pytest.mark.parametrize(
    "make", [lambda: _rattled(), _cluster, lambda: _rattled(symbols=("Si", "Ge"))], ids=["periodic", "cluster", "SiGe"]
)
def test_forces_are_minus_energy_gradient(make):
    atoms = make()
    species = sorted(set(atoms.get_chemical_symbols()))
    committee = _committee(species=species)
    pred = committee.predict(atoms)
    h = 1e-4
    fd = np.zeros((committee.n_members, len(atoms), 3))
    for i in range(len(atoms)):
        for a in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, a] += h
            minus.positions[i, a] -= h
            fd[:, i, a] = -(_energy(committee, plus) - _energy(committee, minus)) / (2 * h)
    assert np.abs(fd).max() > 0.05  # the check is not vacuous
    np.testing.assert_allclose(pred.forces, fd, atol=2e-6, rtol=0)


def test_stress_is_strain_derivative():
    atoms = _rattled(seed=3)
    committee = _committee()
    pred = committee.predict(atoms)
    dE = -fd_virial(lambda a: _energy(committee, a), atoms, h=1e-5)  # (K, 3, 3)
    assert dE.shape == (committee.n_members, 3, 3)
    assert np.abs(dE).max() > 0.1
    np.testing.assert_allclose(pred.virials[:, 0], -dE, atol=2e-5, rtol=0)
    calc = Calculator(committee)
    atoms.calc = calc
    sym = 0.5 * (dE + dE.transpose(0, 2, 1)).mean(0) / atoms.get_volume()
    expected = sym[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    np.testing.assert_allclose(atoms.get_stress(), expected, atol=1e-8, rtol=0)


def test_energy_invariant_under_rotation_translation_permutation():
    atoms = _rattled(seed=5)
    committee = _committee()
    ref = committee.predict(atoms)
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell.array @ q.T, scale_atoms=False)
    rotated.positions = atoms.positions @ q.T
    shifted = atoms.copy()
    shifted.positions += np.array([0.37, -1.2, 2.9])
    perm = rng.permutation(len(atoms))
    permuted = atoms[perm]
    for other, forces in ((rotated, ref.forces @ q.T), (shifted, ref.forces), (permuted, ref.forces[:, perm])):
        pred = committee.predict(other)
        np.testing.assert_allclose(pred.energies, ref.energies, rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(pred.forces, forces, atol=1e-9)
    # the committee does respond to geometry: a different structure gives a different energy
    assert np.abs(committee.predict(_rattled(seed=6)).energies - ref.energies).max() > 1e-3


def test_members_differ_and_member_network_matches():
    committee = _committee(n_members=4, activation="silu")
    atoms = _rattled(seed=2)
    E = _energy(committee, atoms)
    assert np.ptp(E) > 1e-3  # different initialisations
    G = torch.as_tensor(committee.acsf.compute(atoms))
    sidx = torch.zeros(len(atoms), dtype=torch.int64)
    for k in range(committee.n_members):
        member = committee.network.member(k)
        assert member(G, sidx).sum().item() == pytest.approx(E[k], rel=1e-12)


@pytest.mark.filterwarnings("ignore:`torch\\.jit.*deprecated:DeprecationWarning")
def test_torchscript_export(tmp_path):
    committee = _committee(species=("Si", "Ge"))
    atoms = _rattled(symbols=("Si", "Ge"))
    E = _energy(committee, atoms)
    path = tmp_path / "member1.pt"
    committee.export_member(1, path)
    scripted = torch.jit.load(str(path))
    G = torch.as_tensor(committee.acsf.compute(atoms))
    sidx = torch.as_tensor(committee.species_index(atoms.numbers))
    assert scripted(G, sidx).sum().item() == pytest.approx(E[1], rel=1e-12)


def test_save_load_gives_identical_predictions(tmp_path):
    committee = _committee(species=("Si", "Ge"), n_members=2)
    committee.metadata["note"] = {"numpy": np.float64(1.5), "array": np.arange(3)}
    path = tmp_path / "committee.pt"
    committee.save(path)
    loaded = Committee.load(path, acsf=committee.acsf)
    structures = [_rattled(symbols=("Si", "Ge")), _rattled(seed=4, symbols=("Si", "Ge"))]
    a, b = committee.predict(structures), loaded.predict(structures)
    assert np.array_equal(a.energies, b.energies)
    assert np.array_equal(a.forces, b.forces)
    assert np.array_equal(a.virials, b.virials)
    assert loaded.metadata["note"] == {"numpy": 1.5, "array": [0, 1, 2]}
    assert loaded.network.architecture() == committee.network.architecture()


def test_load_rejects_mismatched_files(tmp_path):
    committee = _committee(n_members=2)
    path = tmp_path / "committee.pt"
    committee.save(path)
    other = alip.ACSF.from_dict({**committee.acsf.to_dict(), "cutoff": 5.0})
    with pytest.raises(ValueError, match="cutoff"):
        Committee.load(path, acsf=other)
    payload = torch.load(path, weights_only=True)
    bad = {
        "newer": {**payload, "format_version": 99},
        "foreign": {"state_dict": payload["state_dict"]},
        "shapes": {**payload, "architecture": {**payload["architecture"], "hidden": [7, 7]}},
        "species": {**payload, "architecture": {**payload["architecture"], "species": [14, 32]}},
    }
    messages = {
        "newer": "version",
        "foreign": "not an alip committee",
        "shapes": "do not match",
        "species": "do not match|species",
    }
    for name, content in bad.items():
        p = tmp_path / f"{name}.pt"
        torch.save(content, p)
        with pytest.raises(ValueError, match=messages[name]):
            Committee.load(p)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file at all")
    with pytest.raises(ValueError, match="not a readable"):
        Committee.load(junk)


def test_unknown_element_raises():
    committee = _committee()
    with pytest.raises(ValueError, match="not in"):
        committee.species_index(np.array([14, 32]))


@pytest.mark.parametrize("path", ["core", "pytorch"])  # the compiled core (CPU) and the PyTorch reference
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))  # a new one needs its slope and curvature
@pytest.mark.parametrize(
    "species,hidden",
    [(("Si",), (12, 10)), (("Si", "Ge"), (12, 10)), (("Si",), (12,)), (("Si",), (9, 8, 7)), (("Si",), ())],
)
def test_written_out_input_gradient_matches_autograd(activation, species, hidden, path, monkeypatch):
    """dE/dG from the chain rule written out equals autograd's (the reference), and so do
    the weight gradients of a loss on it, on the energies and on both (the written-out backward,
    σ'' included, against autograd's double backward), for no to three hidden layers, on the
    compiled core and in PyTorch."""
    from alip.models import input_gradient

    if path == "pytorch":
        monkeypatch.setattr(input_gradient, "_on_core", lambda *args: False)
    calls = []
    monkeypatch.setattr(input_gradient._core, "mlp_forward", _counted(input_gradient._core.mlp_forward, calls))
    committee = _committee(species=species, activation=activation, hidden=hidden)
    net = committee.network
    atoms = [_rattled(seed=s, symbols=species) for s in (7, 8)]
    G = torch.as_tensor(committee.acsf.compute(atoms))
    G = G + 0.5 * torch.randn(G.shape, generator=torch.Generator().manual_seed(0), dtype=G.dtype)  # both signs of z
    sidx = torch.as_tensor(committee.species_index(np.concatenate([a.numbers for a in atoms])))
    struct = torch.repeat_interleave(torch.arange(2), torch.tensor([len(a) for a in atoms]))
    E, e_atom, dE_dG = net.energies_and_gradients(G, sidx, struct, 2, create_graph=True)

    X = G.unsqueeze(0).expand(net.n_members, -1, -1).clone().requires_grad_(True)
    e_ref = net.atomic_energies(X, sidx)
    (ref,) = torch.autograd.grad(e_ref.sum(), X, create_graph=True)
    torch.testing.assert_close(e_atom, e_ref, rtol=1e-14, atol=1e-14)
    assert ref.abs().max() > 1e-2  # not vacuous
    torch.testing.assert_close(dE_dG, ref, rtol=1e-12, atol=1e-14)
    weights = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=ref.dtype)
    params = list(net.parameters())
    for on_forces, on_energies in ((True, True), (True, False), (False, True)):
        E, _, dE_dG = net.energies_and_gradients(G, sidx, struct, 2, create_graph=True)

        def loss_of(energies, gradient, on_forces=on_forces, on_energies=on_energies):
            # a term left out is not in the graph: its gradient comes as None
            terms = ([(weights * gradient).sum()] if on_forces else []) + ([energies.sum()] if on_energies else [])
            return sum(terms)

        got = torch.autograd.grad(loss_of(E, dE_dG), params, allow_unused=True)
        e_ref = net.atomic_energies(X, sidx)
        (ref,) = torch.autograd.grad(e_ref.sum(), X, create_graph=True)
        want = torch.autograd.grad(loss_of(e_ref, ref), params, allow_unused=True)
        for a, b in zip(got, want):
            if a is None and b is None:  # a parameter the loss does not reach (the bias, under dE/dG alone)
                continue
            a = torch.zeros_like(b) if a is None else a
            b = torch.zeros_like(a) if b is None else b
            torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-13 * max(1.0, float(b.abs().max())))
    if hidden:  # the written-out backward (a linear model keeps autograd, which differentiates x too)
        with pytest.raises(ValueError, match="differentiable in the weights only"):  # never a silent zero in x
            net.nets[0].value_and_input_gradient(G.clone().requires_grad_(True), create_graph=True)
    _, _, plain = net.energies_and_gradients(G, sidx, struct, 2)  # create_graph=False: no graph
    assert plain.grad_fn is None and torch.equal(plain, dE_dG.detach())
    assert bool(calls) == (path == "core" and bool(hidden))  # the path the test names is the one that ran


def _counted(fn, calls):
    def wrapper(*args, **kwargs):
        calls.append(1)
        return fn(*args, **kwargs)

    return wrapper
