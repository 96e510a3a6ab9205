"""PyTorch side of the descriptors: differentiable force/virial assembly from the
core's sparse gradients, an autograd bridge for ACSF as a function of positions and
cell, and a pure-torch reference implementation (slow, differentiable to any order)
that serves as the test oracle and supplies second derivatives to the bridge.

torch is imported here only; ``alip.core.descriptors`` works without it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms

from alip.core.batch import species_index
from alip.core.descriptors import ACSF, Descriptors
from alip.core.neighbors import neighbor_list

__all__ = ["sparse_forces", "sparse_virial", "acsf_torch", "reference_acsf", "DescriptorTensors"]


def sparse_forces(
    dE_dG: torch.Tensor,
    grad_values: torch.Tensor,
    grad_centers: torch.Tensor,
    grad_neighbors: torch.Tensor,
    n_atoms: int,
) -> torch.Tensor:
    """Forces (n_atoms, 3) = -sum_i dE/dG_i . dG_i/dr_j from sparse gradient rows.

    Pure torch ops, linear in `dE_dG`, so a force loss backpropagates through it
    (double backward when dE_dG came from autograd.grad(..., create_graph=True))."""
    contrib = torch.einsum("raf,rf->ra", grad_values, dE_dG.index_select(0, grad_centers))
    out = torch.zeros((n_atoms, 3), dtype=contrib.dtype, device=contrib.device)
    return -out.index_add(0, grad_neighbors, contrib)


def sparse_virial(
    dE_dG: torch.Tensor, strain_grad: torch.Tensor, structure_index: torch.Tensor, n_structures: int
) -> torch.Tensor:
    """Virials (n_structures, 3, 3) = -dE/deps per structure; ASE stress = -W / volume."""
    per_atom = torch.einsum("iabf,if->iab", strain_grad, dE_dG)
    out = torch.zeros((n_structures, 3, 3), dtype=per_atom.dtype, device=per_atom.device)
    return -out.index_add(0, structure_index, per_atom)


class DescriptorTensors:
    """A :class:`Descriptors` batch as torch tensors (float64 unless `dtype` says otherwise)."""

    def __init__(self, d: Descriptors, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"):
        def t(a: np.ndarray | None, dt: torch.dtype = dtype) -> torch.Tensor | None:
            return None if a is None else torch.as_tensor(a, dtype=dt, device=device)

        self.values = t(d.values)
        self.offsets = t(d.offsets, torch.int64)
        self.grad_values = t(d.grad_values)
        self.grad_centers = t(d.grad_centers, torch.int64)
        self.grad_neighbors = t(d.grad_neighbors, torch.int64)
        self.strain_grad = t(d.strain_grad)
        self.structure_index = t(d.structure_index, torch.int64)
        self.n_atoms = int(d.offsets[-1])
        self.n_structures = d.n_structures

    def forces(self, dE_dG: torch.Tensor) -> torch.Tensor:
        return sparse_forces(dE_dG, self.grad_values, self.grad_centers, self.grad_neighbors, self.n_atoms)

    def virials(self, dE_dG: torch.Tensor) -> torch.Tensor:
        return sparse_virial(dE_dG, self.strain_grad, self.structure_index, self.n_structures)


# ---------------------------------------------------------------------------
# pure-torch reference
# ---------------------------------------------------------------------------
def _cutoff(acsf: ACSF, r: torch.Tensor) -> torch.Tensor:
    rc = acsf.cutoff
    inside = r < rc
    if acsf.cutoff_function == "cosine":
        f = 0.5 * (torch.cos(torch.pi * r / rc) + 1.0)
    else:
        x = r / rc
        f = 1.0 + x**3 * (-10.0 + x * (15.0 - 6.0 * x))
    return torch.where(inside, f, torch.zeros_like(f))


def _triplets(i: np.ndarray, n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (p1 < p2) of neighbor-list entries sharing a center."""
    starts = np.searchsorted(i, np.arange(n_atoms + 1))
    first, second = [], []
    for c in range(n_atoms):
        a, b = starts[c], starts[c + 1]
        u, v = np.triu_indices(b - a, k=1)
        first.append(u + a)
        second.append(v + a)
    return np.concatenate(first).astype(np.int64), np.concatenate(second).astype(np.int64)


def reference_acsf(
    acsf: ACSF, positions: torch.Tensor, cell: torch.Tensor, numbers: Sequence[int], pbc
) -> torch.Tensor:
    """ACSF values (n_atoms, F) with torch ops only, differentiable to any order in
    positions and cell. The neighbor list (piecewise constant) comes from the core."""
    atoms = Atoms(
        numbers=list(numbers), positions=positions.detach().cpu().numpy(), cell=cell.detach().cpu().numpy(), pbc=pbc
    )
    i, j, S, _, _ = neighbor_list(atoms, acsf.cutoff)
    n, F = len(atoms), acsf.n_features
    sp = torch.as_tensor(species_index(acsf.species, np.asarray(numbers)), dtype=torch.int64)
    if (sp < 0).any():
        raise ValueError(f"elements outside the descriptor species {list(acsf.species)}")
    ti, tj = torch.as_tensor(i), torch.as_tensor(j)
    D = positions[tj] - positions[ti] + torch.as_tensor(S, dtype=positions.dtype) @ cell
    r = torch.linalg.norm(D, dim=1)
    fc = _cutoff(acsf, r)
    flat = torch.zeros(n * F, dtype=positions.dtype)
    ng2 = len(acsf.g2)
    if ng2:
        eta = torch.as_tensor(acsf.g2[:, 0], dtype=positions.dtype)
        rs = torch.as_tensor(acsf.g2[:, 1], dtype=positions.dtype)
        vals = torch.exp(-eta * (r[:, None] - rs) ** 2) * fc[:, None]
        idx = ti[:, None] * F + sp[tj][:, None] * ng2 + torch.arange(ng2)
        flat = flat.index_add(0, idx.reshape(-1), vals.reshape(-1))
    n_ang = len(acsf.g4) + len(acsf.g5)
    if n_ang and len(i):
        p1, p2 = (torch.as_tensor(x) for x in _triplets(i, n))
        if len(p1):
            v1, v2 = D[p1], D[p2]
            r1, r2 = r[p1], r[p2]
            cos = (v1 * v2).sum(1) / (r1 * r2)
            r12 = torch.linalg.norm(v2 - v1, dim=1)
            ns = len(acsf.species)
            pair_table = torch.zeros((ns, ns), dtype=torch.int64)
            q = 0
            for a in range(ns):
                for b in range(a, ns):
                    pair_table[a, b] = pair_table[b, a] = q
                    q += 1
            base = len(acsf.species) * ng2 + pair_table[sp[tj[p1]], sp[tj[p2]]] * n_ang
            center = ti[p1]
            cols = []
            for kind, params in (("g4", acsf.g4), ("g5", acsf.g5)):
                for eta, zeta, lam, rs, rs2 in params:
                    if kind == "g4":  # one window (the core refuses rs2 != rs for G4)
                        sq = (r1 - rs) ** 2 + (r2 - rs) ** 2 + (r12 - rs) ** 2
                        term = torch.exp(-eta * sq) * fc[p1] * fc[p2] * _cutoff(acsf, r12)
                    elif rs2 == rs:
                        term = torch.exp(-eta * ((r1 - rs) ** 2 + (r2 - rs) ** 2)) * fc[p1] * fc[p2]
                    else:  # two windows, symmetrized over the legs
                        radial = 0.5 * (
                            torch.exp(-eta * ((r1 - rs) ** 2 + (r2 - rs2) ** 2))
                            + torch.exp(-eta * ((r1 - rs2) ** 2 + (r2 - rs) ** 2))
                        )
                        term = radial * fc[p1] * fc[p2]
                    cols.append(2.0 ** (1.0 - zeta) * (1.0 + lam * cos) ** zeta * term)
            vals = torch.stack(cols, dim=1)
            idx = center[:, None] * F + base[:, None] + torch.arange(n_ang)
            flat = flat.index_add(0, idx.reshape(-1), vals.reshape(-1))
    return flat.reshape(n, F)


# ---------------------------------------------------------------------------
# autograd bridge over the compiled core
# ---------------------------------------------------------------------------
def _cell_gradient(
    dL_deps: torch.Tensor, positions: torch.Tensor, g_pos: torch.Tensor, cell: torch.Tensor, pbc: np.ndarray
) -> torch.Tensor:
    """dL/dcell from the strain derivative: dL/deps = r^T dL/dr + h^T dL/dh, where only
    periodic rows of h enter the structure."""
    periodic = np.flatnonzero(pbc)
    g_cell = torch.zeros_like(cell)
    if len(periodic) == 0:
        return g_cell
    rhs = dL_deps - positions.T @ g_pos
    hp = cell[periodic]  # (m, 3)
    g_cell[periodic] = torch.linalg.pinv(hp.T) @ rhs
    return g_cell


class _ACSFFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, positions, cell, acsf, numbers, pbc):
        atoms = Atoms(
            numbers=list(numbers),
            positions=positions.detach().cpu().double().numpy(),
            cell=cell.detach().cpu().double().numpy(),
            pbc=pbc,
        )
        d = acsf.compute(atoms, gradients=True)
        dt = DescriptorTensors(d, dtype=positions.dtype, device=positions.device)
        ctx.save_for_backward(positions, cell)
        ctx.dt, ctx.acsf, ctx.numbers, ctx.pbc = dt, acsf, numbers, np.asarray(pbc, dtype=bool)
        return dt.values

    @staticmethod
    def backward(ctx, grad_G):
        positions, cell = ctx.saved_tensors
        dt = ctx.dt
        g_pos = -dt.forces(grad_G)  # J^T grad_G, linear in grad_G
        dL_deps = -dt.virials(grad_G)[0]
        g_cell = _cell_gradient(dL_deps, positions.detach(), g_pos, cell.detach(), ctx.pbc)
        if torch.is_grad_enabled() and (positions.requires_grad or cell.requires_grad):
            # create_graph: second derivatives in positions/cell from the torch reference;
            # the correction is zero in value and carries only those derivatives.
            with torch.enable_grad():
                G = reference_acsf(ctx.acsf, positions, cell, ctx.numbers, ctx.pbc)
                gp, gc = torch.autograd.grad(
                    G, (positions, cell), grad_G.detach(), create_graph=True, allow_unused=True
                )
            if gp is not None:
                g_pos = g_pos + (gp - gp.detach())
            if gc is not None:
                g_cell = g_cell + (gc - gc.detach())
        return g_pos, g_cell, None, None, None


def acsf_torch(acsf: ACSF, positions: torch.Tensor, cell: torch.Tensor, numbers: Sequence[int], pbc) -> torch.Tensor:
    """ACSF values (n_atoms, F) as a differentiable function of positions and cell,
    computed by the compiled core. First derivatives use the core's exact sparse
    gradients; second derivatives in positions/cell (create_graph) use the torch
    reference. Derivatives in the upstream gradient (force training) are exact torch ops."""
    return _ACSFFunction.apply(positions, cell, acsf, tuple(int(z) for z in numbers), tuple(bool(p) for p in pbc))
