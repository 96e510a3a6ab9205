"""Automatic choice of symmetry functions: CUR selection from a candidate pool on the user's data.

Imbalzano et al., J. Chem. Phys. 148, 241730 (2018): standardise the candidate features over
the atoms of the data set, then repeatedly take the function whose columns carry the largest
leverage on the leading right singular vectors and project every column onto the orthogonal
complement of the ones taken, so that each new function adds what the taken ones do not
describe. A function's columns (one per neighbor element for G2, one per element pair for
G5) are chosen together, since an :class:`~alip.core.descriptors.ACSF` applies each parameter
set to every element or pair. On the mlearn Si benchmark (214 structures) 48 functions chosen
so from the pool without shifted G5 lowered the test energy error by 12 % and the force error
by 4 % against ``ACSF.fine_g5_si()`` but did worse trained on 18 of its structures (docs/accuracy_studies.md,
"Fourth study"); 64 chosen from the pool with shifted G5 give 3.69 meV/atom and 0.099 eV/Å
against ``ACSF.shells_si()``'s 3.76 and 0.103, for a longer training (docs/accuracy_studies.md, "Fifth study"), and
the fixed ``ACSF.windows_si()`` (windows every 0.5 Å, as CUR chose them) gets the same forces.
Training uses them only when asked (``alip train --select N``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

from alip.core.descriptors import ACSF

__all__ = ["candidate_pool", "cur_select", "select_acsf"]

#: standard deviations (Å) of the shifted radial Gaussians of the pool, and their spacing (Å)
SHIFTED_G2: tuple[tuple[float, float], ...] = ((0.25, 0.15), (0.4, 0.25))
#: G2 exponents (Å⁻²) of the pool's unshifted radial functions
CENTRED_G2_ETA: tuple[float, ...] = (0.0, 0.01, 0.02, 0.04, 0.08, 0.14, 0.25, 0.32, 0.5)
#: G5 exponents (Å⁻²) and ζ of the pool's angular functions (each with λ = +1 and −1)
G5_ETA: tuple[float, ...] = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5)
G5_ZETA: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
#: the pool's shifted G5 (windows on one neighbor shell, as in ACSF.shells_si): η (Å⁻²), ζ (each
#: with λ = ±1), and the spacing (Å) of their shifts r_s from r_min to cutoff − 1 Å
SHIFTED_G5_ETA: float = 2.0
SHIFTED_G5_ZETA: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
SHIFTED_G5_STEP: float = 0.5


def candidate_pool(species: Sequence[str | int], cutoff: float = 5.5, r_min: float = 1.8) -> ACSF:
    """The functions selection chooses from: 9 unshifted G2, Gaussians of σ = 0.25 and 0.4 Å
    centred every 0.15 and 0.25 Å from ``r_min`` (the shortest bond expected, Å) to ``cutoff``
    − 0.2 Å, 100 G5 centred at r = 0 (10 η × 5 ζ × λ = ±1) and G5 shifted onto windows every
    0.5 Å from ``r_min`` to ``cutoff`` − 1 Å (η = 2 Å⁻², 4 ζ × λ = ±1); 196 functions for Si
    with the defaults."""
    if not 0 < r_min < cutoff - 1.0:
        raise ValueError(f"r_min must be in (0, cutoff - 1), got {r_min} with cutoff {cutoff}")
    g2 = [(eta, 0.0) for eta in CENTRED_G2_ETA]
    for sigma, step in SHIFTED_G2:
        eta = round(1.0 / (2.0 * sigma**2), 4)
        g2 += [(eta, round(float(rs), 3)) for rs in np.arange(r_min, cutoff - 0.2 + 1e-9, step)]
    g5 = [(eta, zeta, lam, 0.0) for eta in G5_ETA for zeta in G5_ZETA for lam in (1.0, -1.0)]
    g5 += [
        (SHIFTED_G5_ETA, zeta, lam, round(float(rs), 3))
        for rs in np.arange(r_min, cutoff - 1.0 + 1e-9, SHIFTED_G5_STEP)
        for zeta in SHIFTED_G5_ZETA
        for lam in (1.0, -1.0)
    ]
    return ACSF(species=species, cutoff=cutoff, g2=g2, g5=g5)


def cur_select(X: np.ndarray, n: int, groups: Sequence[Sequence[int]] | None = None) -> list[int]:
    """Indices of ``n`` groups of columns of ``X`` (rows: samples) chosen by iterative CUR.

    Columns are standardised first (constant ones carry nothing); each step scores a group by
    the mean leverage of its columns on the top ``n − taken`` right singular vectors of the
    residual (so a group of many columns is not favoured for its size), takes the best and
    removes the span of its columns from the residual. It works on the Gram matrix XᵀX, so a
    step costs O(F³) for F columns whatever the number of rows. Once the chosen groups
    describe all of ``X``, the rest follow in index order. ``groups`` default to one per
    column. Returned in the order chosen."""
    X = np.asarray(X, dtype=np.float64)
    groups = [list(g) for g in (groups if groups is not None else [[j] for j in range(X.shape[1])])]
    if not 1 <= n <= len(groups):
        raise ValueError(f"n must be in [1, {len(groups)}] (the number of groups), got {n}")
    std = X.std(0)
    live = std > 1e-12 * (1.0 + np.abs(X.mean(0)))
    A = np.where(live, (X - X.mean(0)) / np.where(live, std, 1.0), 0.0)
    C = A.T @ A  # the residual's Gram matrix: its eigenvectors are the right singular vectors
    floor = 1e-10 * max(float(np.linalg.eigvalsh(C)[-1]), 1e-300)
    chosen: list[int] = []
    for taken in range(n):
        w, v = np.linalg.eigh(C)
        rank = int((w > floor).sum())
        if rank == 0:  # nothing left to describe
            chosen += [i for i in range(len(groups)) if i not in chosen][: n - taken]
            break
        top = v[:, ::-1][:, : min(rank, n - taken)]
        leverage = (top**2).sum(1)
        score = [float(leverage[g].mean()) if i not in chosen else -1.0 for i, g in enumerate(groups)]
        best = int(np.argmax(score))
        chosen.append(best)
        g = groups[best]
        C = C - C[:, g] @ np.linalg.pinv(C[np.ix_(g, g)], rcond=1e-10, hermitian=True) @ C[g, :]
        C = 0.5 * (C + C.T)
    return chosen


def _groups(acsf: ACSF) -> tuple[list[list[int]], int]:
    """Column indices of each G2 and G5 parameter set of ``acsf`` (G2 first), and the G2 count."""
    ns, n2, n4, n5 = len(acsf.species), len(acsf.g2), len(acsf.g4), len(acsf.g5)
    if n4:
        raise ValueError("the pool holds G2 and G5 functions only")
    pairs = len(acsf.species_pairs)
    g2 = [[s * n2 + j for s in range(ns)] for j in range(n2)]
    g5 = [[ns * n2 + p * (n4 + n5) + n4 + j for p in range(pairs)] for j in range(n5)]
    return g2 + g5, n2


def select_acsf(
    structures: Sequence[Atoms], n: int = 48, pool: ACSF | None = None, max_atoms: int = 20000, seed: int = 0
) -> ACSF:
    """An ACSF of ``n`` functions chosen by :func:`cur_select` from ``pool`` (default:
    :func:`candidate_pool` of the structures' elements) over their atoms (over whole
    structures drawn with ``seed`` up to ``max_atoms`` atoms where there are more); deterministic
    for given structures."""
    structures = list(structures)
    if not structures:
        raise ValueError("select_acsf needs at least one structure")
    if pool is None:
        species = sorted({int(z) for a in structures for z in a.numbers})
        pool = candidate_pool(species)
    groups, n2 = _groups(pool)
    if not 1 <= n <= len(groups):
        raise ValueError(f"n must be in [1, {len(groups)}] (the functions of the pool), got {n}")
    if sum(len(a) for a in structures) > max_atoms:  # whole structures, drawn until max_atoms
        order = np.random.default_rng(seed).permutation(len(structures))
        kept = order[np.cumsum([len(structures[i]) for i in order]) <= max_atoms]
        structures = [structures[i] for i in np.sort(kept if len(kept) else order[:1])]
    X = pool.compute(structures)
    chosen = sorted(cur_select(X, n, groups))
    return ACSF(
        species=list(pool.species),
        cutoff=pool.cutoff,
        g2=[tuple(pool.g2[j]) for j in chosen if j < n2],
        g5=[tuple(pool.g5[j - n2]) for j in chosen if j >= n2],
        cutoff_function=pool.cutoff_function,
    )
