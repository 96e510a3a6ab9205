"""Property-based fuzzing (hypothesis) of random cells / positions / species / pbc
through the bindings: valid input agrees with the brute-force reference and ASE's
neighbour list and satisfies the gradient sum rules; arbitrary (possibly invalid)
input either works or raises ValueError -- never another exception, never a crash."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list as ase_neighbor_list
from conftest import make_acsf, make_reference
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

SPECIES = [1, 8, 14]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)

finite = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)


@st.composite
def valid_structures(draw, max_atoms=4):
    n = draw(st.integers(1, max_atoms))
    pbc = tuple(draw(st.lists(st.booleans(), min_size=3, max_size=3)))
    lengths = draw(st.lists(st.floats(2.5, 6.0), min_size=3, max_size=3))
    skew = draw(st.lists(finite, min_size=3, max_size=3))
    cell = np.diag(lengths)
    cell[1, 0] = 0.8 * skew[0] * lengths[0]
    cell[2, 0] = 0.8 * skew[1] * lengths[0]
    cell[2, 1] = 0.8 * skew[2] * lengths[1]
    frac = np.array(draw(st.lists(st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3), min_size=n, max_size=n)))
    numbers = draw(st.lists(st.sampled_from(SPECIES), min_size=n, max_size=n))
    atoms = Atoms(numbers=numbers, positions=frac @ cell, cell=cell, pbc=pbc)
    if n > 1 or any(pbc):
        d = ase_neighbor_list("d", atoms, 1.2)
        assume(len(d) == 0)  # no atoms closer than 1.2 A (also through images)
    cutoff = draw(st.floats(2.0, 5.0))
    return atoms, cutoff


@FUZZ
@given(valid_structures())
def test_fuzz_values_match_reference(data):
    atoms, cutoff = data
    g4 = [(0.02, 2.0, -1.0), (0.01, 1.0, 1.0)]
    acsf = make_acsf(SPECIES, cutoff, g4=g4)
    ref = make_reference(SPECIES, cutoff, g4=g4).compute(atoms)
    got = acsf.compute(atoms)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12 * max(1.0, np.abs(ref).max()))


@FUZZ
@given(valid_structures(max_atoms=6))
def test_fuzz_neighbor_list_and_sum_rules(data):
    import alip

    atoms, cutoff = data
    # a pair at the cutoff to the last bits is in one list or the other by rounding (d < rc or d^2 < rc^2)
    assume(not np.any(np.abs(ase_neighbor_list("d", atoms, cutoff + 1e-9) - cutoff) < 1e-9))
    i, j, S, D, d = alip.neighbor_list(atoms, cutoff)
    ai, aj, aS, aD, ad = ase_neighbor_list("ijSDd", atoms, cutoff)
    o1 = np.lexsort((S[:, 2], S[:, 1], S[:, 0], j, i)) if len(i) else np.arange(0)
    o2 = np.lexsort((aS[:, 2], aS[:, 1], aS[:, 0], aj, ai)) if len(ai) else np.arange(0)
    np.testing.assert_array_equal(np.c_[i[o1], j[o1], S[o1]], np.c_[ai[o2], aj[o2], aS[o2]])
    np.testing.assert_allclose(d[o1], ad[o2], atol=1e-12)

    acsf = make_acsf(SPECIES, cutoff)
    g = acsf.compute(atoms, gradients=True)
    per_center = np.zeros((len(atoms), 3, acsf.n_features))
    np.add.at(per_center, g.grad_centers, g.grad_values)
    scale = max(1.0, np.abs(g.grad_values).max()) if len(g.grad_values) else 1.0
    np.testing.assert_allclose(per_center, 0.0, atol=1e-11 * scale)
    s = g.strain_grad
    np.testing.assert_allclose(s, s.transpose(0, 2, 1, 3), atol=1e-11 * max(1.0, np.abs(s).max()))
    w = np.random.default_rng(0).normal(size=g.values.shape)
    f, v = acsf.forces_and_virial(atoms, w)
    f_sparse = np.zeros_like(f)
    np.add.at(f_sparse, g.grad_neighbors, -np.einsum("raf,rf->ra", g.grad_values, w[g.grad_centers]))
    np.testing.assert_allclose(f, f_sparse, atol=1e-11 * max(1.0, np.abs(f).max()))
    np.testing.assert_allclose(v, -np.einsum("iabf,if->ab", s, w), atol=1e-11 * max(1.0, np.abs(v).max()))


def _thin_valid_cell(cell, pbc, min_height=0.5):
    pbc = np.asarray(pbc, dtype=bool)
    if not pbc.any() or not np.all(np.isfinite(cell[pbc])):
        return False
    rows = cell[pbc]
    sv = np.linalg.svd(rows, compute_uv=False)
    if sv.min() <= 1e-8 * max(sv.max(), 1e-300):
        return False  # degenerate periodic rows: invalid input, must raise
    # height of each periodic row above the span of the other periodic rows
    for k in range(len(rows)):
        others = np.delete(rows, k, axis=0)
        v = rows[k]
        if len(others):
            q, _ = np.linalg.qr(others.T)
            v = v - q @ (q.T @ v)
        if np.linalg.norm(v) < min_height:
            return True
    return False


any_float = st.one_of(st.floats(-20, 20), st.sampled_from([0.0, np.nan, np.inf, -np.inf, 1e300, -1e-300]))


SPECIAL = [0.0, np.nan, np.inf, -np.inf, 1e300, -1e-300]


@st.composite
def arbitrary_structures(draw):
    """Mostly sane structures with a few corrupted entries: special floats injected in
    positions or cell, exact overlaps, degenerate / left-handed cells, foreign species,
    zero atoms."""
    n = draw(st.integers(0, 4))
    pos = np.array(
        draw(st.lists(st.lists(st.floats(-8, 8), min_size=3, max_size=3), min_size=n, max_size=n)), dtype=float
    ).reshape(n, 3)
    cell = np.diag(draw(st.lists(st.floats(2.5, 8.0), min_size=3, max_size=3)))
    cell += np.tril(np.array(draw(st.lists(finite, min_size=9, max_size=9))).reshape(3, 3), -1)
    kind = draw(
        st.sampled_from(["sane", "bad_position", "bad_cell", "overlap", "flat_cell", "left_handed", "zero_row"])
    )
    if kind == "bad_position" and n:
        pos[draw(st.integers(0, n - 1)), draw(st.integers(0, 2))] = draw(st.sampled_from(SPECIAL))
    elif kind == "bad_cell":
        cell[draw(st.integers(0, 2)), draw(st.integers(0, 2))] = draw(st.sampled_from(SPECIAL))
    elif kind == "overlap" and n > 1:
        pos[1] = pos[0]
    elif kind == "flat_cell":
        cell[2] = cell[0] + cell[1]
    elif kind == "left_handed":
        cell[[0, 1]] = cell[[1, 0]]
    elif kind == "zero_row":
        cell[draw(st.integers(0, 2))] = 0.0
    pbc = tuple(draw(st.lists(st.booleans(), min_size=3, max_size=3)))
    numbers = draw(st.lists(st.sampled_from([1, 8, 14, 26]), min_size=n, max_size=n))
    cutoff = draw(st.sampled_from([-1.0, 0.0, 0.5, 3.0, np.nan]))
    # A valid periodic cell only a few picometres thick is legal but has ~1e9 images
    # within the cutoff: not what this test is about, keep those out.
    assume(not _thin_valid_cell(cell, pbc))
    return Atoms(numbers=numbers, positions=pos, cell=cell, pbc=pbc), cutoff, kind


@settings(max_examples=150, deadline=None, derandomize=True)
@given(arbitrary_structures())
def test_fuzz_arbitrary_input_never_crashes(data):
    """Either a finite result or ValueError, nothing else. Sane structures that are
    rejected are only allowed for a reason listed in the contract, checked here."""
    import alip

    atoms, cutoff, kind = data
    must_work = (
        kind == "sane"
        and len(atoms) > 0
        and set(atoms.numbers) <= set(SPECIES)
        and (len(atoms) == 1 and not atoms.pbc.any() or ase_neighbor_list("d", atoms, 1e-6).size == 0)
    )
    try:
        acsf = make_acsf(SPECIES, cutoff)
    except ValueError:
        assert not (cutoff > 0)
        acsf = make_acsf(SPECIES, 3.0)
    else:
        assert cutoff > 0
    event(f"{len(atoms)} atoms")
    for call in (
        lambda: acsf.compute(atoms),
        lambda: acsf.compute(atoms, gradients=True).values,
        lambda: acsf.forces_and_virial(atoms, np.ones((len(atoms), acsf.n_features)))[0],
        lambda: alip.neighbor_list(atoms, 3.0)[4],
    ):
        try:
            out = call()
        except ValueError as err:
            assert str(err), "ValueError without a message"
            assert not must_work, f"valid structure rejected: {err}"
            event("ValueError")
        except MemoryError:
            pass  # a finite but astronomically large system may not fit; not a crash
        else:
            assert np.all(np.isfinite(out))
            event("result")


@settings(max_examples=15, deadline=None, derandomize=True)
@given(st.lists(valid_structures(max_atoms=3), min_size=1, max_size=5))
def test_fuzz_batch_equals_single(items):
    acsf = make_acsf(SPECIES, 4.0)
    structs = [a for a, _c in items]
    b = acsf.compute(structs, gradients=True)
    off = np.cumsum([0] + [len(a) for a in structs])
    np.testing.assert_array_equal(b.offsets, off)
    for k, a in enumerate(structs):
        s = acsf.compute(a, gradients=True)
        np.testing.assert_allclose(b.values[off[k] : off[k + 1]], s.values, rtol=1e-13, atol=1e-300)
        rows = (b.grad_centers >= off[k]) & (b.grad_centers < off[k + 1])
        np.testing.assert_array_equal(b.grad_centers[rows] - off[k], s.grad_centers)
        np.testing.assert_array_equal(b.grad_neighbors[rows] - off[k], s.grad_neighbors)
        np.testing.assert_allclose(b.grad_values[rows], s.grad_values, rtol=1e-13, atol=1e-300)
