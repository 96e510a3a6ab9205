"""Structures, tolerances and reference helpers shared by the device tests (CPU autograd,
CUDA emulator, GPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from conftest import STRUCTURES, make_acsf

from alip.core import device as dev

ROOT = Path(__file__).resolve().parents[2]
CUDA_DIR = ROOT / "cuda"
TOL = 1e-10  # float64: |a - b| <= TOL * (1 + |b|) elementwise
FLOAT32_RTOL = 2e-5  # float32: max |a - b| <= FLOAT32_RTOL * max |b| per array

requires_gpu = pytest.mark.skipif(
    not dev.cuda_available(), reason="needs a CUDA build of alip (ALIP_CUDA=ON) and an NVIDIA GPU"
)


def close(a, b, tol=TOL):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    err = np.abs(a - b) / (1.0 + np.abs(b))
    assert err.size == 0 or err.max() <= tol, f"max relative error {err.max():.3g} > {tol:g}"


def close32(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    scale = max(np.abs(b).max(initial=0.0), 1e-30)
    assert np.abs(a - b).max(initial=0.0) <= FLOAT32_RTOL * scale


def case_list():
    """(name, list of Atoms, acsf): every conftest structure, plus batches."""
    cases = []
    for name, (factory, species, cutoff) in sorted(STRUCTURES.items()):
        cases.append((name, [factory()], make_acsf(species, cutoff)))
    si = [n for n, (_, sp, _) in sorted(STRUCTURES.items()) if sp == ["Si"]]
    cases.append(("batch_si_mixed_pbc", [STRUCTURES[n][0]() for n in si], make_acsf(["Si"], 5.0)))
    big = bulk("Si", "diamond", a=5.431, cubic=True).repeat(3)
    big.set_cell(big.cell[:] @ np.array([[1.0, 0.0, 0.0], [0.2, 1.0, 0.0], [-0.1, 0.15, 1.0]]), scale_atoms=True)
    big.rattle(0.07, seed=7)
    cases.append(("si216_triclinic_binned", [big], make_acsf(["Si"], 5.0, cutoff_function="polynomial")))
    multi = [STRUCTURES[n][0]() for n in ("sio_triclinic", "sioh_molecule")]
    cases.append(("batch_three_species", multi, make_acsf(["H", "O", "Si"], 4.5)))
    # shifted angular functions (rs > 0), sharing an eta with unshifted ones, a non-integer zeta
    g4 = [(0.5, 1.0, 1.0, 2.3), (1.0, 2.0, -1.0, 3.0), (0.5, 1.0, -1.0, 0.0), (0.8, 1.5, -1.0, 2.0)]
    g5 = [(0.7, 1.0, -1.0, 2.4), (0.03, 2.0, 1.0), (2.0, 3.0, 1.0, 3.5)]
    cases.append(("batch_three_species_shifted", multi, make_acsf(["H", "O", "Si"], 4.5, g4=g4, g5=g5)))
    # G5 on two windows (rs, rs2), among one-window ones sharing their eta and rs; (rs2, rs) rows share a group
    g5_two = [*g5, (0.7, 2.0, 1.0, 1.0, 2.4), (0.7, 3.0, -1.0, 2.4, 1.0), (1.0, 1.5, 1.0, 0.0, 3.0)]
    cases.append(("batch_three_species_two_windows", multi, make_acsf(["H", "O", "Si"], 4.5, g4=g4, g5=g5_two)))
    from alip import ACSF

    cases.append(("si216_shells_si", [big], ACSF.shells_si()))  # windows on the two shells
    cases.append(("si216_windows_si", [big], ACSF.windows_si()))  # the training default
    default = ACSF.windows_si()
    two = [(2.0, 1.0, 1.0, 2.3, 3.8), (2.0, 8.0, -1.0, 2.3, 3.3), (2.0, 3.0, 1.0, 3.8, 2.3), (2.0, 1.0, -1.0, 3.8, 2.3)]
    two += [(2.0, 1.5, -1.0, 1.8, 2.8), (0.3, 2.0, 1.0, 0.0, 2.35)]
    two_windows = ACSF(species=["Si"], cutoff=default.cutoff, g2=default.g2, g5=[*default.g5.tolist(), *two])
    cases.append(("si216_two_windows_si", [big], two_windows))  # the default plus G5 across two windows
    return cases


CASES = case_list()
CASE_IDS = [c[0] for c in CASES]


def reference(acsf, atoms_list, w, u, U):
    """CPU core: values, fused forces/virials, and the JVP from the sparse gradients."""
    values = acsf.compute(atoms_list)
    F, W = acsf.forces_and_virial(atoms_list, w)
    d = acsf.compute(atoms_list, gradients=True)
    jvp = np.zeros_like(values)
    np.add.at(jvp, d.grad_centers, np.einsum("raf,ra->rf", d.grad_values, u[d.grad_neighbors]))
    jvp += np.einsum("iabf,iab->if", d.strain_grad, U[d.structure_index])
    return values, F, W.reshape(len(atoms_list), 3, 3), jvp


def random_inputs(acsf, atoms_list, seed=0):
    rng = np.random.default_rng(seed)
    n = sum(len(a) for a in atoms_list)
    return (rng.normal(size=(n, acsf.n_features)), rng.normal(size=(n, 3)), rng.normal(size=(len(atoms_list), 3, 3)))


def sorted_pairs(i, j, S, D, d):
    i, j, S = (np.asarray(x, dtype=np.int64) for x in (i, j, S))
    order = np.lexsort((S[:, 2], S[:, 1], S[:, 0], j, i))
    return i[order], j[order], S[order], np.asarray(D)[order], np.asarray(d)[order]


def many_species_box(seed=3, n=40, symbols=("H", "C", "N", "O", "Si", "Ge"), pbc=True):
    """Random atoms of six species in a triclinic box (no two closer than 1.2 Å, minimum
    image); periodic or an open cluster."""
    rng = np.random.default_rng(seed)
    cell = np.array([[7.5, 0.0, 0.0], [0.6, 7.2, 0.0], [-0.4, 0.5, 7.8]])
    frac = []
    while len(frac) < n:
        f = rng.random(3)
        if frac:
            df = np.asarray(frac) - f
            df -= np.round(df)
            if np.linalg.norm(df @ cell, axis=1).min() < 1.2:
                continue
        frac.append(f)
    atoms = Atoms([symbols[k % len(symbols)] for k in range(n)], cell=cell, pbc=True, scaled_positions=frac)
    if not pbc:
        atoms.pbc = False
    return atoms


def large_spec_params():
    """200 radial and 2 x 450 angular functions: one warp's accumulator table needs more
    than 48 KB of shared memory (double: 200 x 33 x 8 = 52.8 KB; 900 x 33 x 8 = 237.6 KB,
    more than any GPU's shared memory per block)."""
    etas = np.geomspace(0.001, 0.1, 75)
    ang = [(float(e), z, lam) for e in etas for z in (1.0, 2.0, 4.0) for lam in (1.0, -1.0)]
    g2 = [(float(e), float(r)) for e, r in zip(np.geomspace(0.05, 4.0, 200), np.linspace(0.0, 4.5, 200))]
    return g2, ang


def ase_pool(n, seed=0):
    """Small Si cells of several kinds (primitive and cubic diamond, strained; open
    clusters; slabs), from ASE alone."""
    rng = np.random.default_rng(seed)
    pool = []
    for k in range(n):
        if k % 4 == 0:
            a = bulk("Si", "diamond", a=5.431 * rng.uniform(0.97, 1.03))
        else:
            a = bulk("Si", "diamond", a=5.431, cubic=True)
        a.set_cell(a.cell[:] @ (np.eye(3) + rng.normal(scale=0.02, size=(3, 3))), scale_atoms=True)
        a.rattle(0.05, seed=int(rng.integers(1 << 30)))
        if k % 4 == 2:
            a.pbc = False
        elif k % 4 == 3:
            a.pbc = [True, True, False]
        pool.append(a)
    return pool


# =========================================================================== build flag, stub
