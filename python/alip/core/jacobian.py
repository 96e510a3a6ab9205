"""Forces F = −Jᵀ dE/dG from the stored descriptor Jacobian, for K right-hand sides (the
members of a committee) at once: the contraction every training step runs.

The sparse gradient rows are padded per center atom once (:func:`padded_gradients`).
Two contractions of that layout, equal up to summation order:

* :func:`padded_forces`: pure PyTorch (one small matrix product per center, then a
  scatter onto the rows' atoms), any device, differentiable to any order; the reference.
* :func:`shared_padded_forces`: the compiled core (``alip._core.jacobian_forces`` and its
  VJP, float32 or float64, CPU) reading each center's rows where the whole data set keeps
  them, so a training batch needs no gathered copy of its Jacobian. The product and its
  backward each read the rows once; on the mlearn set an Adam epoch takes 0.82 of the
  time of the gather + :func:`padded_forces` path (``bench/training_step.py``, docs/accuracy_studies.md, tenth study).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from alip import _core

__all__ = ["padded_gradients", "padded_forces", "committee_forces", "shared_padded_forces"]


def padded_gradients(
    grad_values: torch.Tensor, grad_centers: torch.Tensor, grad_neighbors: torch.Tensor, n_atoms: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The sparse gradient rows (sorted by center atom) padded per center: values
    (N, M, 3, F) with zero rows and targets (N, M), the neighbor of each row or N (one
    past the last atom) for padding; M is the most rows of any center."""
    if len(grad_centers) > 1 and bool((grad_centers[1:] < grad_centers[:-1]).any()):
        raise ValueError("gradient rows are not sorted by center atom")
    F = grad_values.shape[-1]
    counts = torch.bincount(grad_centers, minlength=n_atoms)
    M = int(counts.max()) if len(grad_centers) else 0
    first = torch.cumsum(counts, 0) - counts
    slot = grad_centers * M + torch.arange(len(grad_centers), device=grad_centers.device) - first[grad_centers]
    padded = grad_values.new_zeros(n_atoms * M, 3, F).index_copy_(0, slot, grad_values).view(n_atoms, M, 3, F)
    targets = torch.full((n_atoms * M,), n_atoms, dtype=grad_neighbors.dtype, device=grad_neighbors.device)
    targets.index_copy_(0, slot, grad_neighbors)
    return padded, targets.view(n_atoms, M)


def padded_forces(dE_dG: torch.Tensor, padded: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Forces (K, N, 3) = −Jᵀ dE_k/dG from the layout of :func:`padded_gradients`: one
    (M·3, F) @ (F, K) product per center, instead of one per row (differentiable)."""
    K, (N, M, _, F) = dE_dG.shape[0], padded.shape
    contrib = torch.bmm(padded.view(N, M * 3, F), dE_dG.permute(1, 2, 0)).view(N * M, 3 * K)
    # summed along dim 0 of contiguous (rows, 3·K) blocks: half the time of a dim-1 index_add
    # on the permuted (K, rows, 3) view, forward and backward
    summed = dE_dG.new_zeros(N + 1, 3 * K).index_add(0, targets.reshape(-1), contrib)  # row N: padding
    return -summed[:N].view(N, 3, K).permute(2, 0, 1)


def committee_forces(
    dE_dG: torch.Tensor,
    grad_values: torch.Tensor,
    grad_centers: torch.Tensor,
    grad_neighbors: torch.Tensor,
    n_atoms: int,
) -> torch.Tensor:
    """Forces (K, N, 3) = −Jᵀ dE_k/dG for all K members at once (differentiable), from
    sparse rows sorted by center atom (as :func:`alip.models.training_data.featurize` stores them).

    The rows are padded per center (:func:`padded_gradients`) so that the contraction is
    one matrix product per center: −27 % CPU for a whole training run (README, "Training
    speed and the second core"). Training pads its data set once (``LabeledSet.padded``).
    """
    return padded_forces(dE_dG, *padded_gradients(grad_values, grad_centers, grad_neighbors, n_atoms))


class _SharedPaddedForces(torch.autograd.Function):
    """The compiled contraction (with strain rows: forces and virials in one pass); its backward
    is the compiled VJP (J and the strain rows are data: no gradient)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        dE_dG: torch.Tensor,
        rows: torch.Tensor,
        targets: torch.Tensor,
        atoms: torch.Tensor,
        strain: torch.Tensor | None,
        structure: torch.Tensor | None,
        n_structures: int,
    ):
        ctx.save_for_backward(rows, targets, atoms, strain, structure)
        ctx.n_structures = n_structures
        ctx.set_materialize_grads(False)  # an unused output's gradient comes as None
        extra = () if strain is None else (strain.numpy(), structure.numpy(), n_structures)
        out = _core.jacobian_forces(
            rows.numpy(), targets.numpy(), atoms.numpy(), dE_dG.detach().contiguous().numpy(), *extra
        )
        return torch.from_numpy(out) if strain is None else tuple(torch.from_numpy(t) for t in out)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_forces: torch.Tensor | None, grad_virials: torch.Tensor | None = None):  # type: ignore[override]
        rows, targets, atoms, strain, structure = ctx.saved_tensors
        none = (None,) * 6
        if grad_forces is None and grad_virials is None:
            return (None, *none)
        K, n = (grad_forces if grad_forces is not None else grad_virials).shape[0], len(atoms)
        if grad_forces is None:
            grad_forces = rows.new_zeros(K, n, 3)
        extra = ()
        if strain is not None:
            if grad_virials is None:
                grad_virials = rows.new_zeros(K, ctx.n_structures, 3, 3)
            extra = (strain.numpy(), structure.numpy(), grad_virials.contiguous().numpy())
        grad = _core.jacobian_forces_vjp(
            rows.numpy(), targets.numpy(), atoms.numpy(), grad_forces.contiguous().numpy(), *extra
        )
        return (torch.from_numpy(grad), *none)


def shared_padded_forces(
    dE_dG: torch.Tensor,
    rows: torch.Tensor,
    targets: torch.Tensor,
    atoms: torch.Tensor,
    strain: torch.Tensor | None = None,
    structure: torch.Tensor | None = None,
    n_structures: int = 0,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Forces (K, n, 3) of a batch of n atoms (whole structures, their atoms consecutive) =
    −Jᵀ dE_k/dG, differentiable in ``dE_dG`` (K, n, F), from a data set's padded Jacobian
    ``rows`` (N, M, 3, F) and ``targets`` (N, M) (:func:`padded_gradients`, in the set's atom
    numbering), read in place: ``atoms`` (n,) is each batch atom's index in them. CPU
    tensors; ``rows`` and ``dE_dG`` of one dtype (float32 or float64).

    With the set's strain derivatives ``strain`` (N, 3, 3, F) (read in place too) and each
    batch atom's structure ``structure`` (n,) in [0, ``n_structures``): (forces, virials
    (K, n_structures, 3, 3) = −Σ strain · dE_k/dG per structure), in the same pass."""
    tensors = {"dE_dG": dE_dG, "rows": rows, "targets": targets, "atoms": atoms}
    if strain is not None:
        if structure is None:
            raise ValueError("strain needs structure: each batch atom's structure index")
        tensors |= {"strain": strain, "structure": structure}
    for name, t in tensors.items():
        if t.device.type != "cpu":
            raise ValueError(f"shared_padded_forces runs on the CPU; {name} is on {t.device} (use padded_forces)")
    if dE_dG.dtype != rows.dtype:
        raise ValueError(f"dE_dG is {dE_dG.dtype} but the Jacobian rows are {rows.dtype}")
    if strain is not None and strain.dtype != rows.dtype:
        raise ValueError(f"strain is {strain.dtype} but the Jacobian rows are {rows.dtype}")
    return _SharedPaddedForces.apply(
        dE_dG,
        rows,
        targets.contiguous(),
        atoms.contiguous(),
        strain,
        None if structure is None else structure.contiguous(),
        int(n_structures),
    )
