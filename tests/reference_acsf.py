"""Brute-force NumPy reference for the descriptor contract (docs/descriptor_api.md).

Slow and written to be obviously correct, not fast:

* neighbours come from an explicit loop over every pair (i, j) and every integer
  image shift S that can possibly bring j within the cutoff of i;
* G2/G4/G5 are summed term by term straight from the formulas of the contract (G5 rows may
  carry a second window rs2: 1/2 [g(r_ij; rs) g(r_ik; rs2) + g(r_ij; rs2) g(r_ik; rs)]);
* the feature order is built from the contract's description, one label per column.

No code is shared with alip: this module only needs numpy (and optionally an
``ase.Atoms`` to read positions/cell/pbc/numbers from).
"""

from __future__ import annotations

import itertools
import math

import numpy as np


# ----------------------------------------------------------------------------
# Structures
# ----------------------------------------------------------------------------
def unpack(atoms):
    """(positions, cell, pbc, numbers) as float64/bool/int64 arrays from an ase.Atoms."""
    return (
        np.asarray(atoms.get_positions(), dtype=np.float64),
        np.asarray(atoms.get_cell()[:], dtype=np.float64),
        np.asarray(atoms.get_pbc(), dtype=bool),
        np.asarray(atoms.get_atomic_numbers(), dtype=np.int64),
    )


def _completed_cell(cell, pbc):
    """The cell with every non-periodic row replaced by a unit vector orthogonal to
    the periodic rows, so that it is invertible. Only periodic rows are ever used
    as image shifts; the completion only serves to bound the number of shifts."""
    cell = np.array(cell, dtype=np.float64)
    periodic_rows = [cell[a] for a in range(3) if pbc[a]]
    basis = []  # orthonormal basis of the periodic span
    for v in periodic_rows:
        w = v - sum(np.dot(v, b) * b for b in basis)
        basis.append(w / np.linalg.norm(w))
    for a in range(3):
        if pbc[a]:
            continue
        for trial in np.eye(3):
            w = trial - sum(np.dot(trial, b) * b for b in basis)
            if np.linalg.norm(w) > 1e-3:
                w = w / np.linalg.norm(w)
                basis.append(w)
                cell[a] = w
                break
    return cell


def reference_neighbor_list(positions, cell, pbc, cutoff):
    """All (i, j, S) with |positions[j] + S @ cell - positions[i]| < cutoff, except
    (i, i, 0). Returns (i, j, S, D, d) sorted by (i, j, S) lexicographically.

    For each pair, the shifts along a periodic axis a range over every integer n_a
    with |n_a + f_a| <= cutoff / h_a, where f is the fractional difference of the
    pair and h_a the height of the cell along axis a (|D| >= |frac_a(D)| * h_a)."""
    positions = np.asarray(positions, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool)
    n = len(positions)
    if pbc.any():
        full = _completed_cell(cell, pbc)
        volume = abs(np.linalg.det(full))
        heights = np.array([volume / np.linalg.norm(np.cross(full[(a + 1) % 3], full[(a + 2) % 3])) for a in range(3)])
        inv = np.linalg.inv(full)
    out_i, out_j, out_S, out_D = [], [], [], []
    for i in range(n):
        for j in range(n):
            r = positions[j] - positions[i]
            ranges = []
            if pbc.any():
                f = r @ inv
            for a in range(3):
                if not pbc[a]:
                    ranges.append([0])
                    continue
                lim = cutoff / heights[a]
                lo = math.floor(-f[a] - lim) - 1
                hi = math.ceil(-f[a] + lim) + 1
                ranges.append(range(lo, hi + 1))
            for S in itertools.product(*ranges):
                if i == j and S == (0, 0, 0):
                    continue
                D = r + np.asarray(S, dtype=np.float64) @ np.asarray(cell, dtype=np.float64)
                if np.dot(D, D) < cutoff * cutoff:
                    out_i.append(i)
                    out_j.append(j)
                    out_S.append(S)
                    out_D.append(D)
    i_arr = np.asarray(out_i, dtype=np.int64)
    j_arr = np.asarray(out_j, dtype=np.int64)
    S_arr = np.asarray(out_S, dtype=np.int64).reshape(-1, 3)
    D_arr = np.asarray(out_D, dtype=np.float64).reshape(-1, 3)
    order = np.lexsort((S_arr[:, 2], S_arr[:, 1], S_arr[:, 0], j_arr, i_arr))
    D_arr = D_arr[order]
    return i_arr[order], j_arr[order], S_arr[order], D_arr, np.sqrt((D_arr**2).sum(axis=1))


# ----------------------------------------------------------------------------
# ACSF
# ----------------------------------------------------------------------------
def cutoff_cosine(r, rc):
    r = np.asarray(r, dtype=np.float64)
    return np.where(r < rc, 0.5 * (np.cos(np.pi * r / rc) + 1.0), 0.0)


def species_pairs(n_species):
    """Unordered species-index pairs in the contract's order:
    (0,0),(0,1),...,(0,n-1),(1,1),...,(n-1,n-1)."""
    return [(a, b) for a in range(n_species) for b in range(a, n_species)]


def n_features(n_species, n_g2, n_g4, n_g5):
    return n_species * n_g2 + n_species * (n_species + 1) // 2 * (n_g4 + n_g5)


def _atomic_number(z):
    if isinstance(z, str):
        from ase.data import atomic_numbers

        return int(atomic_numbers[z])
    return int(z)


class ReferenceACSF:
    """Plain-Python ACSF with the contract's conventions (cosine cutoff only)."""

    def __init__(self, species, cutoff, g2=(), g4=(), g5=()):
        self.species = sorted(_atomic_number(z) for z in species)
        self.cutoff = float(cutoff)
        self.g2 = [tuple(map(float, p)) for p in g2]
        # G4: (eta, zeta, lambda, rs), rs = 0 when a row leaves it out
        self.g4 = [tuple(map(float, p)) + (0.0,) * (4 - len(p)) for p in g4]
        if any(len(p) != 4 for p in self.g4):
            raise ValueError("reference G4 rows are (eta, zeta, lambda[, rs])")
        # G5: (eta, zeta, lambda, rs, rs2), rs = 0 and rs2 = rs when a row leaves them out
        self.g5 = []
        for p in g5:
            row = tuple(map(float, p))
            if not 3 <= len(row) <= 5:
                raise ValueError("reference G5 rows are (eta, zeta, lambda[, rs[, rs2]])")
            rs = row[3] if len(row) > 3 else 0.0
            rs2 = row[4] if len(row) > 4 else rs
            self.g5.append(row[:3] + (rs, rs2))
        ns = len(self.species)
        self.pairs = species_pairs(ns)
        self.n_features = n_features(ns, len(self.g2), len(self.g4), len(self.g5))
        self.g2_offset = {s: s * len(self.g2) for s in range(ns)}
        base = ns * len(self.g2)
        self.pair_offset = {p: base + k * (len(self.g4) + len(self.g5)) for k, p in enumerate(self.pairs)}

    def column_kinds(self):
        """One (kind, param_index, species_tuple) per column in order, e.g.
        ("g2", 3, (14,)) or ("g5", 0, (1, 8)). Built independently of the offsets."""
        out = []
        for s in self.species:
            out += [("g2", k, (s,)) for k in range(len(self.g2))]
        for a, b in self.pairs:
            zz = (self.species[a], self.species[b])
            out += [("g4", k, zz) for k in range(len(self.g4))]
            out += [("g5", k, zz) for k in range(len(self.g5))]
        assert len(out) == self.n_features
        return out

    def compute(self, atoms=None, *, positions=None, cell=None, pbc=None, numbers=None):
        if atoms is not None:
            positions, cell, pbc, numbers = unpack(atoms)
        positions = np.asarray(positions, dtype=np.float64)
        cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
        pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
        numbers = np.asarray(numbers, dtype=np.int64)
        sidx = np.array([self.species.index(int(z)) for z in numbers], dtype=np.int64)
        rc = self.cutoff
        n = len(positions)
        ii, jj, _S, DD, dd = reference_neighbor_list(positions, cell, pbc, rc)
        out = np.zeros((n, self.n_features))
        for i in range(n):
            sel = ii == i
            js, Ds, ds = jj[sel], DD[sel], dd[sel]
            fcs = cutoff_cosine(ds, rc)
            # G2: every neighbour entry (image) once
            for p in range(len(js)):
                off = self.g2_offset[sidx[js[p]]]
                for k, (eta, rs) in enumerate(self.g2):
                    out[i, off + k] += math.exp(-eta * (ds[p] - rs) ** 2) * fcs[p]
            # G4/G5: every unordered pair of distinct neighbour entries once (j < k)
            for p in range(len(js)):
                for q in range(p + 1, len(js)):
                    a, b = sorted((sidx[js[p]], sidx[js[q]]))
                    off = self.pair_offset[(a, b)]
                    rij, rik = ds[p], ds[q]
                    rjk = float(np.linalg.norm(Ds[q] - Ds[p]))
                    # clamp: collinear image triplets give |cos| = 1 + 1 ulp, and
                    # (1 + lam cos)^zeta is NaN for a negative base and non-integer zeta
                    cos_t = min(1.0, max(-1.0, float(np.dot(Ds[p], Ds[q]) / (rij * rik))))
                    fij, fik = fcs[p], fcs[q]
                    fjk = float(cutoff_cosine(rjk, rc))
                    for k, (eta, zeta, lam, rs) in enumerate(self.g4):
                        out[i, off + k] += (
                            2.0 ** (1.0 - zeta)
                            * (1.0 + lam * cos_t) ** zeta
                            * math.exp(-eta * ((rij - rs) ** 2 + (rik - rs) ** 2 + (rjk - rs) ** 2))
                            * fij
                            * fik
                            * fjk
                        )
                    off5 = off + len(self.g4)
                    for k, (eta, zeta, lam, rs, rs2) in enumerate(self.g5):
                        # two windows: 1/2 [g(r_ij; rs) g(r_ik; rs2) + g(r_ij; rs2) g(r_ik; rs)]
                        radial = 0.5 * (
                            math.exp(-eta * ((rij - rs) ** 2 + (rik - rs2) ** 2))
                            + math.exp(-eta * ((rij - rs2) ** 2 + (rik - rs) ** 2))
                        )
                        out[i, off5 + k] += 2.0 ** (1.0 - zeta) * (1.0 + lam * cos_t) ** zeta * radial * fij * fik
        return out

    def compute_many(self, atoms_list):
        return np.concatenate([self.compute(a) for a in atoms_list], axis=0)


# ----------------------------------------------------------------------------
# Mapping to DScribe's column layout (for cross-checks)
# ----------------------------------------------------------------------------
def dscribe_columns(n_species, n_g2, n_g4, n_g5):
    """Index array `cols` such that dscribe_output[:, cols] is in the contract's order.

    DScribe 2.1 layout (read from its C++ source, checked numerically in the tests):
    per species s: [G1, G2 x n_g2, G3 x n_g3] (here n_g3 = 0), then per species pair
    in DScribe's pair order: [G4 x n_g4, G5 x n_g5]. DScribe's pair index for species
    indices (a <= b) is b*(b+1)/2 + a, i.e. the order (0,0),(0,1),(1,1),(0,2),(1,2),(2,2),...
    which equals the contract's order only for one or two species."""
    cols = []
    for s in range(n_species):
        base = s * (1 + n_g2)
        cols += [base + 1 + k for k in range(n_g2)]
    base3 = n_species * (1 + n_g2)
    for a, b in species_pairs(n_species):
        its = b * (b + 1) // 2 + a
        off = base3 + its * (n_g4 + n_g5)
        cols += [off + k for k in range(n_g4 + n_g5)]
    return np.asarray(cols, dtype=np.int64)


def dscribe_g1_columns(n_species, n_g2):
    """Columns of DScribe's implicit G1 = sum_j f_c(r_ij) per neighbour species."""
    return np.asarray([s * (1 + n_g2) for s in range(n_species)], dtype=np.int64)
