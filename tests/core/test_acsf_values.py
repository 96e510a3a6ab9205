"""ACSF values against two independent references.

1. DScribe's ACSF (a test-only dependency), after mapping its columns (it prepends a
   G1 per species and orders species pairs differently for >= 3 species, see
   reference_acsf.dscribe_columns).
2. The brute-force NumPy reference in reference_acsf.py (explicit image loops).

The reference itself is first checked against DScribe, so the two are not the same
code path twice. Then alip is checked against both, plus the documented feature order,
labels, serialisation, batching and invariances of the values.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from conftest import SMALL_G2, SMALL_G4, SMALL_G5, STRUCTURES, make_acsf, make_reference
from reference_acsf import ReferenceACSF, _completed_cell, cutoff_cosine, dscribe_columns, dscribe_g1_columns, unpack

RTOL = 1e-10


def dscribe_values(atoms, species, cutoff, g2=SMALL_G2, g4=SMALL_G4, g5=SMALL_G5):
    from ase.data import atomic_numbers
    from dscribe.descriptors import ACSF as DScribeACSF

    zs = sorted(atomic_numbers[s] if isinstance(s, str) else int(s) for s in species)
    d = DScribeACSF(
        r_cut=cutoff,
        g2_params=[list(p) for p in g2] or None,
        g4_params=[list(p) for p in g4] or None,
        g5_params=[list(p) for p in g5] or None,
        species=zs,
        periodic=bool(atoms.pbc.any()),
    )
    if atoms.pbc.any() and not atoms.pbc.all():
        # DScribe rejects zero-volume cells even when the zero rows are non-periodic:
        # give the open axes an orthogonal cell vector (values do not depend on it).
        atoms = atoms.copy()
        atoms.set_cell(_completed_cell(atoms.cell[:], atoms.pbc), scale_atoms=False)
    raw = d.create(atoms)
    return raw, raw[:, dscribe_columns(len(zs), len(g2), len(g4), len(g5))]


def assert_close_dscribe(actual, dscribe, g4=SMALL_G4, g5=SMALL_G5, n_species=1, what=""):
    """Compare with DScribe's mapped output. DScribe does not clamp cos(theta) to
    [-1, 1]: collinear image triplets (cutoff > cell) then give NaN in G4/G5 columns
    with non-integer zeta and lambda = -1. Those entries are skipped, after checking
    that this is the only place DScribe has NaN."""
    bad = ~np.isfinite(dscribe)
    if bad.any():
        n_g2 = dscribe.shape[1] - n_species * (n_species + 1) // 2 * (len(g4) + len(g5))
        params = (list(g4) + list(g5)) * (n_species * (n_species + 1) // 2)
        cols = np.unique(np.nonzero(bad)[1])
        for c in cols:
            assert c >= n_g2, f"{what}: DScribe NaN in G2 column {c}"
            zeta, lam = params[c - n_g2][1:]
            assert zeta != int(zeta) and lam < 0, f"{what}: unexpected DScribe NaN in column {c}"
        keep = np.setdiff1d(np.arange(dscribe.shape[1]), cols)
        actual, dscribe = actual[:, keep], dscribe[:, keep]
    assert_close(actual, dscribe, what=what)


def assert_close(actual, expected, rtol=RTOL, what=""):
    scale = max(np.abs(expected).max(), 1e-300)
    err = np.abs(actual - expected).max() / scale
    assert err < rtol, f"{what}: max |diff| / max |ref| = {err:.3e}"


# ---------------------------------------------------------------- reference vs DScribe
def test_reference_matches_dscribe(case):
    name, atoms, species, cutoff = case
    ref = make_reference(species, cutoff).compute(atoms)
    _, ds = dscribe_values(atoms, species, cutoff)
    assert ref.shape == ds.shape
    assert np.abs(ref).max() > 0.1  # the structure actually has neighbours
    assert_close_dscribe(ref, ds, n_species=len(species), what=f"reference vs DScribe on {name}")


def test_reference_g1_equals_dscribe_g1():
    """DScribe's implicit G1 is sum_j f_c(r_ij) per neighbour species: the contract's
    G2 with eta = 0, r_s = 0."""
    atoms, species, cutoff = STRUCTURES["sio_triclinic"][0](), ["H", "O", "Si"], 4.5
    ref = ReferenceACSF(species, cutoff, g2=[(0.0, 0.0)]).compute(atoms)
    raw, _ = dscribe_values(atoms, species, cutoff)
    assert_close(ref, raw[:, dscribe_g1_columns(3, len(SMALL_G2))], what="G1")


def test_reference_hand_computed_dimer():
    """Two atoms at distance r, no periodicity: closed forms, no sums to get wrong."""
    r, rc = 2.3, 5.0
    atoms = Atoms("Si2", positions=[[0, 0, 0], [r, 0, 0]])
    eta, rs = 0.7, 1.1
    ref = ReferenceACSF(["Si"], rc, g2=[(eta, rs)], g4=[(0.1, 1.0, 1.0)]).compute(atoms)
    fc = 0.5 * (np.cos(np.pi * r / rc) + 1)
    np.testing.assert_allclose(ref[:, 0], np.exp(-eta * (r - rs) ** 2) * fc, rtol=1e-14)
    np.testing.assert_array_equal(ref[:, 1], 0.0)  # a single neighbour has no triplet


def test_reference_hand_computed_trimer():
    """Equilateral triangle of side r: cos = 1/2, r_jk = r for every triplet."""
    r, rc, eta, zeta, lam = 2.0, 4.0, 0.05, 2.0, 1.0
    pos = np.array([[0, 0, 0], [r, 0, 0], [r / 2, r * np.sqrt(3) / 2, 0]])
    ref = ReferenceACSF(["Si"], rc, g4=[(eta, zeta, lam)], g5=[(eta, zeta, lam)]).compute(Atoms("Si3", positions=pos))
    fc = 0.5 * (np.cos(np.pi * r / rc) + 1)
    g4 = 2 ** (1 - zeta) * (1 + lam * 0.5) ** zeta * np.exp(-eta * 3 * r * r) * fc**3
    g5 = 2 ** (1 - zeta) * (1 + lam * 0.5) ** zeta * np.exp(-eta * 2 * r * r) * fc**2
    np.testing.assert_allclose(ref, np.tile([g4, g5], (3, 1)), rtol=1e-13)


# ---------------------------------------------------------------- alip vs references
def test_values_match_reference(case):
    name, atoms, species, cutoff = case
    got = make_acsf(species, cutoff).compute(atoms)
    ref = make_reference(species, cutoff).compute(atoms)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    assert got.shape == ref.shape == (len(atoms), make_acsf(species, cutoff).n_features)
    assert_close(got, ref, what=f"alip vs reference on {name}")


def test_values_match_dscribe(case):
    name, atoms, species, cutoff = case
    got = make_acsf(species, cutoff).compute(atoms)
    _, ds = dscribe_values(atoms, species, cutoff)
    assert_close_dscribe(got, ds, n_species=len(species), what=f"alip vs DScribe on {name}")


@pytest.mark.parametrize("cutoff", [3.0, 6.0, 9.0])
def test_values_match_dscribe_bulk_cutoffs(cutoff):
    """Rattled primitive Si cell at cutoffs below and far above the cell size."""
    atoms = bulk("Si", "diamond", a=5.431)
    atoms.rattle(0.07, seed=11)
    got = make_acsf(["Si"], cutoff).compute(atoms)
    _, ds = dscribe_values(atoms, ["Si"], cutoff)
    assert_close_dscribe(got, ds, what=f"cutoff {cutoff}")
    # alip (like the reference, which clamps cos) stays finite where DScribe gives NaN
    assert np.all(np.isfinite(got))
    assert_close(got, make_reference(["Si"], cutoff).compute(atoms), what=f"reference, cutoff {cutoff}")


def test_g1_column_matches_dscribe():
    atoms = STRUCTURES["sic_zincblende"][0]()
    acsf = make_acsf(["C", "Si"], 5.0, g2=[(0.0, 0.0)], g4=[], g5=[])
    raw, _ = dscribe_values(atoms, ["C", "Si"], 5.0)
    assert acsf.n_features == 2
    assert_close(acsf.compute(atoms), raw[:, dscribe_g1_columns(2, len(SMALL_G2))], what="G1")


def test_only_g2_and_only_g5():
    atoms, species, cutoff = STRUCTURES["sio_triclinic"][0](), ["H", "O", "Si"], 4.5
    for kw in ({"g4": [], "g5": []}, {"g2": [], "g4": []}):
        got = make_acsf(species, cutoff, **kw).compute(atoms)
        ref = make_reference(species, cutoff, **kw).compute(atoms)
        assert_close(got, ref, what=str(kw))


# ---------------------------------------------------------------- feature order & metadata
@pytest.mark.parametrize("species", [["Si"], ["C", "Si"], ["Si", "O", "H"], ["H", "C", "O", "Si"]])
def test_n_features_and_species_order(species):
    from ase.data import atomic_numbers

    acsf = make_acsf(species, 5.0)
    ns = len(species)
    assert acsf.n_features == ns * 3 + ns * (ns + 1) // 2 * (4 + 2)
    assert list(acsf.species) == sorted(atomic_numbers[s] for s in species)
    labels = acsf.feature_labels()
    assert len(labels) == acsf.n_features and len(set(labels)) == len(labels)
    assert all(isinstance(s, str) for s in labels)


def test_feature_order_single_neighbor_species():
    """Molecule H-O-Si where each column can be isolated by which atoms are present:
    a center with only O neighbours must be zero in every non-O G2 block and every
    triplet block other than (O, O)."""
    acsf = make_acsf(["H", "O", "Si"], 4.0)
    # Si center with two O neighbours far from each other's cutoff of anything else.
    atoms = Atoms("SiO2", positions=[[0, 0, 0], [1.6, 0, 0], [-0.5, 1.5, 0]])
    v = acsf.compute(atoms)[0]
    ng2, ng45 = len(SMALL_G2), len(SMALL_G4) + len(SMALL_G5)
    blocks_g2 = v[: 3 * ng2].reshape(3, ng2)  # species H, O, Si
    assert np.all(blocks_g2[[0, 2]] == 0) and np.all(blocks_g2[1] > 0)
    pairs = v[3 * ng2 :].reshape(6, ng45)  # (H,H),(H,O),(H,Si),(O,O),(O,Si),(Si,Si)
    assert np.all(pairs[[0, 1, 2, 4, 5]] == 0)
    assert np.any(pairs[3] != 0)


def test_feature_order_mixed_pair():
    """Si center with one H and one Si neighbour: only the (H, Si) triplet block, which
    is the third block in the contract's order (and the fourth in DScribe's)."""
    acsf = make_acsf(["H", "O", "Si"], 4.0)
    atoms = Atoms("SiHSi", positions=[[0, 0, 0], [1.5, 0, 0], [-0.6, 2.2, 0]])
    v = acsf.compute(atoms)[0]
    ng2, ng45 = len(SMALL_G2), len(SMALL_G4) + len(SMALL_G5)
    pairs = v[3 * ng2 :].reshape(6, ng45)
    nonzero = [k for k in range(6) if np.any(pairs[k] != 0)]
    assert nonzero == [2]


def test_to_dict_roundtrip_json():
    import alip

    acsf = make_acsf(["O", "Si"], 4.5)
    d = json.loads(json.dumps(acsf.to_dict()))
    back = alip.ACSF.from_dict(d)
    assert back.n_features == acsf.n_features
    assert back.feature_labels() == acsf.feature_labels()
    atoms = STRUCTURES["sio_triclinic"][0]()
    atoms = atoms[[a.symbol != "H" for a in atoms]]
    np.testing.assert_array_equal(back.compute(atoms), acsf.compute(atoms))


def test_default_si():
    import alip

    acsf = alip.ACSF.default_si()
    assert list(acsf.species) == [14]
    assert 20 <= acsf.n_features <= 60  # "of the order of the seed work's 37"
    atoms = bulk("Si", "diamond", a=5.431)
    atoms.rattle(0.05, seed=2)
    d = acsf.to_dict()
    ref = ReferenceACSF([14], d["cutoff"], d.get("g2", []), d.get("g4", []), d.get("g5", []))
    if d.get("cutoff_function", "cosine") == "cosine":
        assert_close(acsf.compute(atoms), ref.compute(atoms), what="default_si")
    assert np.all(np.isfinite(acsf.compute(atoms)))


# ---------------------------------------------------------------- batching
def test_batch_equals_single_and_offsets():
    import alip

    names = ["si_primitive", "si_triclinic", "si_cluster", "si_wire", "si_tiny_cell"]
    structs = [STRUCTURES[n][0]() for n in names]
    acsf = make_acsf(["Si"], 5.0)
    batch = acsf.compute(structs)
    single = np.concatenate([acsf.compute(a) for a in structs])
    np.testing.assert_allclose(batch, single, rtol=0, atol=1e-13 * np.abs(single).max())
    off = alip.core.descriptors.offsets(structs)
    np.testing.assert_array_equal(off, np.cumsum([0] + [len(a) for a in structs]))
    assert off.dtype == np.int64


def test_batch_many_small_structures_multi_species():
    rng = np.random.default_rng(7)
    structs = []
    for k in range(40):
        a = STRUCTURES["sio_triclinic"][0](seed=100 + k)
        a.rattle(0.02, seed=k)
        structs.append(a)
    acsf = make_acsf(["H", "O", "Si"], 4.5)
    batch = acsf.compute(structs)
    for k in rng.choice(len(structs), 3, replace=False):
        ref = make_reference(["H", "O", "Si"], 4.5).compute(structs[k])
        assert_close(batch[5 * k : 5 * k + 5], ref, what=f"structure {k} in batch")


# ---------------------------------------------------------------- invariances of values
def _random_rotation(seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def test_values_invariant_translation_rotation_permutation_wrap(fd_case):
    name, atoms, species, cutoff = fd_case
    acsf = make_acsf(species, cutoff)
    v0 = acsf.compute(atoms)
    scale = np.abs(v0).max()

    moved = atoms.copy()
    moved.positions += np.array([0.37, -1.21, 2.9])
    np.testing.assert_allclose(acsf.compute(moved), v0, atol=1e-11 * scale, err_msg="translation")

    rot = _random_rotation(3)
    turned = atoms.copy()
    turned.positions = atoms.positions @ rot.T
    turned.cell = atoms.cell[:] @ rot.T
    np.testing.assert_allclose(acsf.compute(turned), v0, atol=1e-11 * scale, err_msg="rotation")

    perm = np.random.default_rng(4).permutation(len(atoms))
    np.testing.assert_allclose(acsf.compute(atoms[perm]), v0[perm], atol=1e-11 * scale, err_msg="permutation")

    if atoms.pbc.all():
        shifted = atoms.copy()
        shifted.positions += np.array([2, -1, 3]) @ atoms.cell[:]
        np.testing.assert_allclose(acsf.compute(shifted), v0, atol=1e-11 * scale, err_msg="lattice shift")
        wrapped = shifted.copy()
        wrapped.positions += 0.5 * atoms.cell[0]
        wrapped.wrap()
        np.testing.assert_allclose(acsf.compute(wrapped), v0, atol=1e-11 * scale, err_msg="wrap")


def test_supercell_consistency():
    """A 2x2x2 supercell of a periodic cell has the same per-atom environments."""
    atoms = STRUCTURES["si_triclinic"][0]()
    acsf = make_acsf(["Si"], 5.0)
    v = acsf.compute(atoms)
    sup = acsf.compute(atoms.repeat((2, 2, 2)))
    np.testing.assert_allclose(sup, np.tile(v, (8, 1)), rtol=1e-10, atol=1e-12 * np.abs(v).max())


def test_cosine_cutoff_vanishes_at_edge():
    """A dimer exactly at / just inside / beyond the cutoff."""
    rc = 4.0
    acsf = make_acsf(["Si"], rc, g2=[(0.0, 0.0)], g4=[], g5=[])
    for r in (rc + 1e-9, rc + 0.5):
        assert np.all(acsf.compute(Atoms("Si2", positions=[[0, 0, 0], [r, 0, 0]])) == 0.0)
    r = rc - 1e-3
    got = acsf.compute(Atoms("Si2", positions=[[0, 0, 0], [r, 0, 0]]))
    np.testing.assert_allclose(got, cutoff_cosine(r, rc), rtol=1e-10)


def test_polynomial_cutoff_differs_but_shares_support():
    """The polynomial cutoff function (formula not fixed by the contract) must be a
    valid cutoff: 1 at r=0 limit-wise, 0 beyond rc, monotone decreasing in between."""
    rc = 4.0
    acsf = make_acsf(["Si"], rc, g2=[(0.0, 0.0)], g4=[], g5=[], cutoff_function="polynomial")
    rs = np.linspace(0.05, rc - 0.01, 60)
    vals = np.array([acsf.compute(Atoms("Si2", positions=[[0, 0, 0], [r, 0, 0]]))[0, 0] for r in rs])
    assert np.all(np.diff(vals) < 0)
    assert 0.99 < vals[0] <= 1.0 and 0 <= vals[-1] < 1e-3
    assert acsf.compute(Atoms("Si2", positions=[[0, 0, 0], [rc + 0.1, 0, 0]]))[0, 0] == 0.0
    assert not np.allclose(vals, cutoff_cosine(rs, rc))


def test_unpack_helper():
    pos, cell, pbc, z = unpack(bulk("Si", "diamond", a=5.431))
    assert pos.shape == (2, 3) and cell.shape == (3, 3) and pbc.all() and list(z) == [14, 14]


def test_pickle_roundtrip():
    """ACSF objects travel to worker processes (process pools) by pickle."""
    import pickle

    acsf = make_acsf(["C", "Si"], 5.0)
    back = pickle.loads(pickle.dumps(acsf))
    atoms = STRUCTURES["sic_zincblende"][0]()
    np.testing.assert_array_equal(back.compute(atoms), acsf.compute(atoms))


def test_thread_count_does_not_change_results():
    """1 and 2 OpenMP threads give the same values and gradients (batch and one big cell)."""
    import alip

    acsf = make_acsf(["Si"], 5.0)
    big = bulk("Si", "diamond", a=5.431, cubic=True).repeat((3, 3, 2))
    big.rattle(0.05, seed=3)
    batch = [STRUCTURES[n][0]() for n in ("si_primitive_rattled", "si_triclinic", "si_slab", "si_wire")] * 3
    old = alip.get_num_threads()
    try:
        out = {}
        for nt in (1, 2):
            alip.set_num_threads(nt)
            assert alip.get_num_threads() == nt or alip.build_info().get("openmp") is False
            out[nt] = (acsf.compute(big, gradients=True), acsf.compute(batch, gradients=True))
    finally:
        alip.set_num_threads(old)
    for a, b in zip(out[1], out[2]):
        np.testing.assert_allclose(b.values, a.values, rtol=1e-13, atol=0)
        np.testing.assert_array_equal(b.grad_centers, a.grad_centers)
        np.testing.assert_array_equal(b.grad_neighbors, a.grad_neighbors)
        np.testing.assert_allclose(b.grad_values, a.grad_values, rtol=0, atol=1e-13 * np.abs(a.grad_values).max())
        np.testing.assert_allclose(b.strain_grad, a.strain_grad, rtol=0, atol=1e-13 * np.abs(a.strain_grad).max())


def test_packed_batch_api_equals_atoms_api():
    """compute_packed / forces_and_virial_packed (readers that never build Atoms) give the
    Atoms API's numbers, and bad shapes raise ValueError."""
    from alip.core.batch import Batch
    from alip.core.descriptors import ACSF

    acsf = ACSF.default_si()
    structures = [bulk("Si", "diamond", a=5.43, cubic=True), bulk("Si", "diamond", a=5.5)]
    structures[0].rattle(0.05, seed=3)
    batch = Batch.from_atoms(structures)
    np.testing.assert_array_equal(acsf.compute_packed(batch), acsf.compute(structures))
    w = np.random.default_rng(0).normal(size=(10, acsf.n_features))
    f1, v1 = acsf.forces_and_virial_packed(batch, w)
    f2, v2 = acsf.forces_and_virial(structures, w)
    np.testing.assert_allclose(f1, f2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(v1, v2, rtol=0, atol=1e-12)
    bad = Batch(batch.frame_ids, batch.counts, batch.positions[:-1], batch.numbers, batch.cells, batch.pbc)
    with pytest.raises(ValueError, match="positions"):
        acsf.compute_packed(bad)


def test_from_spec_presets_files_and_inline_json(tmp_path):
    from alip.config import DESCRIPTOR_PRESETS
    from alip.core.descriptors import ACSF

    for name in (p for p in DESCRIPTOR_PRESETS if p != "seeds"):
        assert ACSF.from_spec(name) == getattr(ACSF, name)()
    spec = ACSF.windows_si()
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec.to_dict()))
    assert ACSF.from_spec(str(path)) == spec
    assert ACSF.from_spec(f"  {json.dumps(spec.to_dict())}\n") == spec
    for bad, message in (
        ("seeds", "is not a preset"),
        (str(tmp_path / "missing.json"), "is not a preset"),
        ("{not json", "inline JSON) is not valid JSON"),
        ("[1, 2]", "is not a preset"),
        ('{"species": [14], "cutoff": 5.0, "g9": []}', "unexpected keyword argument 'g9'"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            ACSF.from_spec(bad)
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must be a JSON object"):
        ACSF.from_spec(str(tmp_path / "list.json"))
