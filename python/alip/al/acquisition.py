"""Acquisition: score an unlabeled pool with a committee and pick a diverse batch.

Strategies
----------
``qbc``  query by committee. ``qbc_kind="force"`` (default): max over the atoms of
         ε_F,i = sqrt(⟨|F_i,k − ⟨F_i⟩_k|²⟩_k) (DP-GEN), eV/Å, members weighted
         equally, ddof = 0.  ``"energy"``: the committee std (ddof = 0) of the
         energy divided by the atom count, eV/atom.  ``"combined"``: each of the
         two divided by its median over the scored pool, then summed
         (dimensionless; a structure at the pool median of both scores 2).
``emc``  expected model change (Cai, Zhang & Zhou 2013).  The model being trained
         is the committee mean f̄ = (1/K) Σ_m f_m with parameters θ = (θ_1 … θ_K);
         each member's prediction f_k stands in for the unknown label.  With the
         training loss of one structure
         ℓ = w_E (ΔE/N)² + w_F/(3N) Σ_i |ΔF_i|², the score is
         (1/K) Σ_k ‖½ ∇_θ ℓ(y = f_k)‖ =
         (1/K) Σ_k ‖ w_E (Ē − E_k)/N² ∇_θ Ē + w_F/(3N) Σ_ia (F̄_ia − F_k,ia) ∇_θ F̄_ia ‖,
         i.e. ‖(f(x) − f_k(x)) ∇_θ f(x)‖ with the loss weights on the outputs.
         Without forces (``emc_forces=False``) only the energy term remains.
         Per-structure parameter gradients come from per-structure copies of the
         weights ("expanded weights"): per chunk of structures one forward pass,
         one input-gradient pass (for the force term) and one reverse pass per
         stand-in k yield the gradients of every structure and member at once --
         no backward pass per structure.  (A ``torch.func`` vmap/jacrev/jvp
         version gave the same numbers 5-8x slower on CPU.)
         ``emc_params="last"`` restricts θ to the output layer of every member
         (cheaper, an approximation).
``random`` uniform random scores: the baseline.

Batch selection (:func:`select_batch`): the top ``candidates × B`` structures by
score are kept and B of them are chosen by greedy farthest-point sampling
(``"fps"``, starting from the best score) or by k-means with B clusters, taking
the best-scoring structure of each cluster (``"kmeans"``), in mean-pooled
descriptor space standardised per feature over the scored pool; ``"none"`` takes
the top B.  Exact duplicates (distance 0) of a chosen structure are only taken
when nothing else is left.

The per-chunk scorers are :func:`qbc_chunk` and :func:`emc_chunk`; the pool is driven
through them by :func:`alip.al.pool_scoring.score_pool`, in chunks of at most ``chunk_atoms``
atoms, on ``committee.device``: QBC uses the committee's fused force path (no descriptor
Jacobian); EMC with forces needs J_r (F̄ − F_k), from the sparse descriptor gradients
of the current chunk on the CPU (freed before the next one) or from the JVP on a GPU.
Memory is bounded by the chunk, whatever the pool size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms
from scipy.cluster.vq import kmeans2

from alip.config import DIVERSITY, EMC_PARAMS, QBC_KINDS
from alip.core.device import DeviceLike, prepare, select_device
from alip.core.jacobian import committee_forces
from alip.models.committee import Committee, Prediction

_DUPLICATE_TOL = 1e-9


# ----------------------------------------------------------------------------- QBC
def qbc_scores(prediction: Prediction, kind: str = "force") -> np.ndarray:
    """QBC score per structure (S,) from a :class:`~alip.models.committee.Prediction` (see
    :func:`qbc_from_parts` for the kinds)."""
    return qbc_from_parts(
        kind, prediction.energy_std_per_atom(), prediction.max_force_deviation(), prediction.virial_deviation_per_atom()
    )


def qbc_from_parts(
    kind: str, energy_std: np.ndarray, max_force_dev: np.ndarray, virial_dev: np.ndarray | None = None
) -> np.ndarray:
    """The QBC score ``kind`` from the per-structure committee spreads.

    ``"force"``: max_i ε_F,i (eV/Å); ``"energy"``: std_k(E_k)/N (eV/atom); ``"virial"``:
    ε_W = sqrt(⟨‖W_k − ⟨W⟩‖²⟩_k)/N (eV/atom); ``"combined"``: energy and force, each
    divided by its median over these structures, summed; ``"all"``: the same over energy,
    force and virial.
    """
    if kind not in QBC_KINDS:
        raise ValueError(f"unknown QBC score {kind!r}; choose from {QBC_KINDS}")
    if kind in ("virial", "all") and virial_dev is None:
        raise ValueError(f"QBC score {kind!r} needs the virial deviation")
    parts = {"force": max_force_dev, "energy": energy_std, "virial": virial_dev}
    if kind in parts:
        return np.asarray(parts[kind], dtype=np.float64)
    if kind == "combined":
        return combine_qbc(energy_std, max_force_dev)
    return combine_qbc(energy_std, max_force_dev, virial_dev)


def combine_qbc(*spreads: np.ndarray) -> np.ndarray:
    """Σ_j x_j / median(x_j) over the given per-structure spreads (a zero median counts as 1)."""

    def scaled(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        med = float(np.median(x)) if len(x) else 0.0
        return x / med if med > 0 else x

    return sum(scaled(x) for x in spreads)


# ----------------------------------------------------------------------------- EMC
def _split_params(net: Any, params: str) -> tuple[dict, dict, list]:
    """(differentiated, fixed) parameter dicts of a CommitteeNetwork and the per-species layout."""
    import torch

    trainable: dict[str, torch.Tensor] = {}
    frozen: dict[str, torch.Tensor] = {}
    layout = []
    for s, mlp in enumerate(net.nets):
        n_layers = len(mlp.weights)
        names = []
        for layer, (w, b) in enumerate(zip(mlp.weights, mlp.biases)):
            wn, bn = f"w{s}_{layer}", f"b{s}_{layer}"
            target = trainable if (params == "all" or layer == n_layers - 1) else frozen
            target[wn] = w.detach()
            target[bn] = b.detach()
            names.append((wn, bn))
        layout.append((names, mlp.act))
    return trainable, frozen, layout


def _emc_sqnorms(net: Any, params: str, G: Any, V: Any | None, cE: Any, cF: Any, onehot: Any, mask: Any) -> Any:
    """‖J_m^T r_k‖² of every structure s, stand-in k and member m: (S, Kr, K).

    G (S, A, F) padded atoms, V (Kr, S, A, F) descriptor-space force residuals or
    None, cE (Kr, S) energy coefficients, cF (S,) force coefficients, onehot (S, A,
    n_species), mask (S, A).  Per-structure gradients come from per-structure copies
    of the weights (leaves of shape (S, K, ...)): one forward pass, one input-gradient
    pass and one reverse pass per stand-in k give the gradients of all S structures
    and K members at once.
    """
    import torch

    trainable, frozen, layout = _split_params(net, params)
    S, A, F = G.shape
    K = net.n_members
    with torch.enable_grad():
        leaves = {n: t.unsqueeze(0).expand(S, *t.shape).clone().requires_grad_(True) for n, t in trainable.items()}
        p = {**{n: t.unsqueeze(0) for n, t in frozen.items()}, **leaves}  # (S or 1, K, a, b)
        X = G.unsqueeze(1).expand(S, K, A, F)
        if V is not None:
            X = X.clone().requires_grad_(True)
        e = G.new_zeros(S, K, A)
        for s, (names, act) in enumerate(layout):
            x = (X - net.feature_shift[s]) / net.feature_scale[s]
            for layer, (wn, bn) in enumerate(names):
                x = torch.matmul(x, p[wn]) + p[bn]
                if layer < len(names) - 1:
                    x = act(x)
            e = e + (net.energy_ref[s] + net.energy_scale * x.squeeze(-1)) * onehot[:, None, :, s]
        e = e * mask[:, None, :]
        e_total = e.sum(-1)  # (S, K)
        if V is not None:
            (g,) = torch.autograd.grad(e.sum(), X, create_graph=True)  # (S, K, A, F) = ∂E_m/∂G
        names = list(leaves)
        out = G.new_zeros(S, cE.shape[0], K)
        for k in range(cE.shape[0]):  # one reverse pass per label stand-in, all structures at once
            psi = (cE[k][:, None] * e_total).sum()
            if V is not None:  # Σ_ia r_ia F_m,ia = −Σ_j v_j · ∂E_m/∂G_j
                psi = psi - (cF[:, None] * torch.einsum("skaf,saf->sk", g, V[k])).sum()
            grads = torch.autograd.grad(psi, [leaves[n] for n in names], retain_graph=True)
            out[:, k] = sum(gr.detach().pow(2).flatten(2).sum(-1) for gr in grads)
    return out


def _pad(x: Any, offsets: np.ndarray) -> Any:
    """Scatter atoms (..., N, F) into structures (..., S, A_max, F), zeros in the padding."""
    import torch

    counts = np.diff(offsets)
    struct = np.repeat(np.arange(len(counts)), counts)
    local = np.arange(offsets[-1]) - offsets[:-1][struct]
    out = x.new_zeros(x.shape[:-2] + (len(counts), int(counts.max()), x.shape[-1]))
    out[..., torch.from_numpy(struct).to(x.device), torch.from_numpy(local).to(x.device), :] = x
    return out


def _emc_inputs(
    committee: Committee, atoms_list: list[Atoms], use_forces: bool, values: np.ndarray | None = None
) -> tuple[Any, np.ndarray, Any, Any | None]:
    """Descriptors G (N, F), atom offsets, energies E (K, S) and, with forces, the
    descriptor-space force residuals V (K, N, F) = J_r (F̄ − F_k), as float64 tensors on
    ``committee.device``: the compiled core with stored sparse gradients on the CPU, one
    :mod:`alip.core.device` pass (fused VJP for F, JVP for V) elsewhere."""
    import torch

    offsets = np.concatenate([[0], np.cumsum([len(a) for a in atoms_list])]).astype(np.int64)
    numbers = np.concatenate([a.numbers for a in atoms_list])
    if str(committee.device) != "cpu":
        return _emc_inputs_device(committee, atoms_list, numbers, offsets, use_forces, committee.device)
    t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float64)  # noqa: E731
    if not use_forces:
        values = committee.acsf.compute(atoms_list) if values is None else values
        E, _, _ = committee.evaluate(values, numbers, offsets)
        return t(values), offsets, t(E), None
    d = committee.acsf.compute(atoms_list, gradients=True)  # the values come in the same pass
    values = np.asarray(d.values)
    E, _, dE_dG = committee.evaluate(values, numbers, offsets)
    gv = t(d.grad_values)
    gc = torch.as_tensor(np.asarray(d.grad_centers, dtype=np.int64))
    gn = torch.as_tensor(np.asarray(d.grad_neighbors, dtype=np.int64))
    F = committee_forces(t(dE_dG), gv, gc, gn, len(numbers))  # (K, N, 3)
    resid = F.mean(0, keepdim=True) - F  # (K, N, 3): r_k = F̄ − F_k
    V = torch.zeros(F.shape[0], len(numbers), values.shape[1], dtype=torch.float64)
    for k in range(F.shape[0]):  # v_k,j = Σ_rows(center j) grad_values[row] · r_k[neighbor]: (N, F)
        V[k].index_add_(0, gc, torch.einsum("raf,ra->rf", gv, resid[k].index_select(0, gn)))
    return t(values), offsets, t(E), V


def _emc_inputs_device(
    committee: Committee,
    atoms_list: list[Atoms],
    numbers: np.ndarray,
    offsets: np.ndarray,
    use_forces: bool,
    device: DeviceLike,
) -> tuple[Any, np.ndarray, Any, Any | None]:
    """:func:`_emc_inputs` through :mod:`alip.core.device` on ``device`` (one neighbor list)."""
    import torch

    dev = select_device(device=device)
    p = prepare(committee.acsf, atoms_list, dev)
    G = p.values(torch.float64)
    sidx = torch.as_tensor(committee.species_index(numbers), device=dev)
    struct = torch.as_tensor(np.repeat(np.arange(len(atoms_list)), np.diff(offsets)), device=dev)
    E, _, dE_dG = committee._network_on(dev).energies_and_gradients(G, sidx, struct, len(atoms_list))
    if not use_forces:
        return G, offsets, E.detach(), None
    F, _ = p.forces_and_virial(dE_dG.detach())
    return G, offsets, E.detach(), p.jvp(F.mean(0, keepdim=True) - F).detach()


def emc_chunk(
    committee: Committee,
    atoms_list: Sequence[Atoms],
    weight_energy: float = 1.0,
    weight_forces: float = 0.1,
    forces: bool = True,
    params: str = "all",
    values: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """EMC scores (S,) and mean-pooled descriptors (S, F) of one chunk of structures
    (on ``committee.device``). ``values``: the chunk's stored descriptors (N, F), used on
    the CPU instead of computing them when the force term is off (with it, the gradient
    pass that the force residuals need yields the values too)."""
    import torch

    if params not in EMC_PARAMS:
        raise ValueError(f"emc_params must be one of {EMC_PARAMS}, got {params!r}")
    if weight_energy < 0 or weight_forces < 0:
        raise ValueError("EMC loss weights must be non-negative")
    atoms_list = list(atoms_list)
    K = committee.n_members
    G, offsets, E, V = _emc_inputs(committee, atoms_list, forces and weight_forces > 0, values)
    dev = G.device
    n_atoms = torch.from_numpy(np.diff(offsets)).to(device=dev, dtype=torch.float64)
    cE = weight_energy * (E.mean(0, keepdim=True) - E) / n_atoms**2  # (K, S)
    cF = weight_forces / (3.0 * n_atoms)
    sidx = torch.as_tensor(committee.species_index(np.concatenate([a.numbers for a in atoms_list])), device=dev)
    onehot = torch.nn.functional.one_hot(sidx, len(committee.species)).to(torch.float64)
    mask = _pad(torch.ones((len(sidx), 1), dtype=torch.float64, device=dev), offsets)[..., 0]
    V_pad = None if V is None else _pad(V, offsets)  # (K, S, A, F)
    net = committee._network_on(dev)
    sq = _emc_sqnorms(net, params, _pad(G, offsets), V_pad, cE, cF, _pad(onehot, offsets), mask)
    scores = (torch.sqrt(sq.sum(-1)) / K).mean(-1)  # (1/K) Σ_k (1/K) sqrt(Σ_m ‖·‖²)
    pooled = _pad(G, offsets).sum(1) / n_atoms[:, None]
    return scores.cpu().numpy(), pooled.cpu().numpy()


def qbc_chunk(
    committee: Committee, atoms_list: list[Atoms], values: np.ndarray | None = None
) -> tuple[Prediction, np.ndarray]:
    """Committee Prediction (fused force path, on ``committee.device``) and mean-pooled
    descriptors of one chunk. ``values``: the chunk's stored descriptors (N, F), used on
    the CPU instead of computing them (the force pass still reads the geometry)."""
    if values is None or str(committee.device) != "cpu":
        pred, values = committee.predict_batch(atoms_list)
    else:
        offsets = np.concatenate([[0], np.cumsum([len(a) for a in atoms_list])]).astype(np.int64)
        E, e_atom, dE_dG = committee.evaluate(values, np.concatenate([a.numbers for a in atoms_list]), offsets)
        forces, virials = committee.acsf.forces_and_virial(atoms_list, dE_dG)
        pred = Prediction(E, forces, virials, offsets, e_atom)
    pooled = np.add.reduceat(values, pred.offsets[:-1], axis=0) / np.diff(pred.offsets)[:, None]
    return pred, pooled


# ----------------------------------------------------------------------------- batch selection
def standardise(features: np.ndarray) -> np.ndarray:
    """Features shifted and scaled to zero mean, unit std per column (constant columns kept at 0)."""
    X = np.asarray(features, dtype=np.float64)
    std = X.std(0)
    return (X - X.mean(0)) / np.where(std > 0, std, 1.0)


def farthest_point(X: np.ndarray, order: np.ndarray, k: int) -> list[int]:
    """Greedy farthest-point sampling of k rows of X among ``order`` (first = start).

    Ties (and exact duplicates, distance ≤ 1e-9) go to the earlier entry of ``order``;
    a duplicate of a chosen row is only taken when no other row is left.
    """
    order = np.asarray(order)
    chosen = [int(order[0])]
    dist = np.linalg.norm(X[order] - X[order[0]], axis=1)
    dist[0] = -np.inf
    while len(chosen) < min(k, len(order)):
        j = int(np.argmax(dist))  # argmax returns the first maximum: earlier = better score
        chosen.append(int(order[j]))
        dist = np.minimum(dist, np.linalg.norm(X[order] - X[order[j]], axis=1))
        dist[j] = -np.inf  # chosen rows stay at -inf under np.minimum
    return chosen


def _kmeans(X: np.ndarray, order: np.ndarray, k: int, seed: int) -> list[int]:
    """Best-scoring row of each of k k-means clusters of X[order] (empty clusters filled by FPS)."""
    sub = X[order]
    n_distinct = len(np.unique(np.round(sub, 9), axis=0))
    k_eff = min(k, n_distinct)
    _, labels = kmeans2(sub, k_eff, minit="++", seed=np.random.default_rng(seed), iter=20)
    chosen = []
    for c in range(k_eff):
        members = np.nonzero(labels == c)[0]
        if len(members):
            chosen.append(int(order[members.min()]))  # order is best-first
    if len(chosen) < k:  # empty clusters: continue farthest-point from what is chosen
        rest = [int(o) for o in order if int(o) not in chosen]
        chosen = farthest_point(X, np.array(chosen + rest), k)
    return chosen


def select_batch(
    scores: np.ndarray,
    features: np.ndarray | None,
    batch_size: int,
    diversity: str = "fps",
    candidates: float = 4.0,
    seed: int = 0,
    random_fraction: float = 0.0,
) -> np.ndarray:
    """Indices (into ``scores``) of a batch of ``batch_size`` high-scoring, diverse structures.

    The top ``ceil(candidates × batch_size)`` by score (ties: lower index first) are the
    candidates; ``"fps"`` picks by farthest-point sampling from the best one, ``"kmeans"``
    the best of each of ``batch_size`` clusters, ``"none"`` the top ``batch_size``.
    When the candidates hold fewer distinct structures than needed, the rest of the
    pool (best first) joins them.  ``features`` may be None only with ``"none"``.
    ``random_fraction``: round(fraction × batch_size) of the batch are instead drawn
    uniformly (``seed``) from the structures not picked by score (exploration).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError("scores must be a 1-d array")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or inf")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if diversity not in DIVERSITY:
        raise ValueError(f"unknown diversity {diversity!r}; choose from {DIVERSITY}")
    if not candidates >= 1:
        raise ValueError(f"candidates must be >= 1 (a multiple of the batch size), got {candidates!r}")
    if not 0.0 <= random_fraction <= 1.0:
        raise ValueError(f"random_fraction must be in [0, 1], got {random_fraction!r}")
    b = min(int(batch_size), len(scores))
    n_random = int(round(random_fraction * b))
    if n_random:
        by_score = (
            select_batch(scores, features, b - n_random, diversity, candidates, seed)
            if b > n_random
            else np.zeros(0, dtype=np.int64)
        )
        rest = np.setdiff1d(np.arange(len(scores)), by_score)
        drawn = np.random.default_rng(seed).choice(rest, n_random, replace=False)
        return np.concatenate([by_score, np.sort(drawn)]).astype(np.int64)
    order = np.lexsort((np.arange(len(scores)), -scores))
    if diversity == "none" or b == len(scores):
        return order[:b]
    if features is None or len(features) != len(scores):
        raise ValueError("diversity selection needs one feature row per score")
    X = standardise(features)
    m = min(len(scores), int(np.ceil(candidates * b)))
    top = order[:m]
    if len(np.unique(np.round(X[top], 9), axis=0)) < b:
        top = order  # not enough distinct candidates: widen to the whole pool
    pick = farthest_point(X, top, b) if diversity == "fps" else _kmeans(X, top, b, seed)
    return np.array(pick, dtype=np.int64)
