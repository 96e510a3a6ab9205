"""Training a committee of Behler–Parrinello networks on energies, forces and stresses.

Descriptors and their sparse gradients are computed once per dataset; forces are
F = −Jᵀ dE/dG with dE/dG from autograd (create_graph=True), so the force loss
backpropagates into the weights.  All K members train in the same pass (stacked
weights); members differ by initialisation and by bootstrap weights over the
training structures.  Early stopping keeps, per member, the weights with the
lowest validation loss.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError

from .committee import Committee
from .models import CommitteeNetwork, torch_threads


@dataclass
class TrainConfig:
    """Hyper-parameters of committee training (defaults suit small Si cells)."""

    n_members: int = 5
    hidden: tuple[int, ...] = (32, 32)
    activation: str = "tanh"
    feature_scaling: str = "standard"   # "standard" (mean/std), "minmax" (to [-1, 1]) or "none"
    weight_energy: float = 1.0          # on (ΔE / n_atoms)², eV²
    weight_forces: float = 0.1          # on ΔF² per component, (eV/Å)²
    weight_stress: float = 0.1          # on (ΔW / n_atoms)² per component (W = −σV), eV²
    epochs: int = 300
    batch_size: int = 16                # structures per mini-batch
    lr: float = 5e-3
    lr_final: float = 2e-4              # exponential decay from lr to lr_final over the epochs
    lbfgs_steps: int = 0                # optional full-batch L-BFGS iterations after Adam
    val_fraction: float = 0.1
    patience: int = 100                 # epochs without validation improvement (all members)
    bootstrap: bool = True
    energy_weighting: float | None = None  # Δ (eV/atom): structure weight 1 / (1 + (e − e_min) / Δ)
    seed: int = 0
    dtype: str = "float32"              # training precision; the returned committee is float64
    threads: int | None = 1             # torch intra-op threads while training (None: unchanged)
    verbose: bool = False

    def __post_init__(self) -> None:
        if self.n_members < 1 or self.epochs < 0 or self.batch_size < 1:
            raise ValueError("n_members and batch_size must be >= 1, epochs >= 0")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError("val_fraction must be in [0, 1)")
        if self.feature_scaling not in ("standard", "minmax", "none"):
            raise ValueError(f"unknown feature_scaling {self.feature_scaling!r}")
        if self.energy_weighting is not None and not self.energy_weighting > 0:
            raise ValueError("energy_weighting must be a positive energy per atom or None")
        if self.dtype not in ("float32", "float64"):
            raise ValueError("dtype must be 'float32' or 'float64'")
        self.hidden = tuple(int(h) for h in self.hidden)


def read_labels(atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray | None]:
    """(energy, forces, stress or None) from the attached calculator or from info/arrays."""
    if atoms.calc is not None:
        energy = float(atoms.get_potential_energy())
        forces = np.asarray(atoms.get_forces(), dtype=np.float64)
        stress = None
        if atoms.pbc.all():
            try:
                stress = np.asarray(atoms.get_stress(voigt=False), dtype=np.float64)
            except (PropertyNotImplementedError, NotImplementedError):
                stress = None
        return energy, forces, stress
    try:
        energy = float(atoms.info["energy"])
        forces = np.asarray(atoms.arrays["forces"], dtype=np.float64)
    except KeyError as exc:
        raise ValueError(f"structure has no calculator and no {exc.args[0]!r} label") from None
    stress = atoms.info.get("stress")
    if stress is not None:
        stress = np.asarray(stress, dtype=np.float64)
        if stress.shape == (6,):
            from ase.stress import voigt_6_to_full_3x3_stress
            stress = voigt_6_to_full_3x3_stress(stress)
    return energy, forces, stress


@dataclass
class LabeledSet:
    """Descriptors, sparse gradients and labels of a list of structures, as tensors."""

    values: torch.Tensor          # (N, F)
    species_index: torch.Tensor   # (N,)
    offsets: np.ndarray           # (S + 1,)
    row_offsets: np.ndarray       # (S + 1,) gradient-row offsets per structure
    grad_values: torch.Tensor     # (R, 3, F)
    grad_centers: torch.Tensor    # (R,)
    grad_neighbors: torch.Tensor  # (R,)
    strain_grad: torch.Tensor | None  # (N, 3, 3, F) when any structure has a stress label
    energies: torch.Tensor        # (S,)
    forces: torch.Tensor          # (N, 3)
    virials: torch.Tensor         # (S, 3, 3), W = −σV (zeros where no stress)
    has_stress: torch.Tensor      # (S,) bool

    @property
    def n_structures(self) -> int:
        return len(self.offsets) - 1

    def n_atoms(self) -> torch.Tensor:
        return torch.from_numpy(np.diff(self.offsets)).to(self.values.dtype)

    def batch(self, idx: np.ndarray) -> "LabeledSet":
        """The sub-set of structures ``idx`` with local atom indices."""
        o, ro = self.offsets, self.row_offsets
        na, nr = o[idx + 1] - o[idx], ro[idx + 1] - ro[idx]
        new_off = np.concatenate([[0], np.cumsum(na)])
        new_roff = np.concatenate([[0], np.cumsum(nr)])
        atom_idx = torch.from_numpy(np.repeat(o[idx] - new_off[:-1], na) + np.arange(new_off[-1]))
        row_idx = torch.from_numpy(np.repeat(ro[idx] - new_roff[:-1], nr) + np.arange(new_roff[-1]))
        shift = torch.from_numpy(np.repeat(o[idx] - new_off[:-1], nr))
        sidx = torch.from_numpy(idx)
        take = lambda x, i: None if x is None else x.index_select(0, i)  # noqa: E731
        return LabeledSet(
            values=take(self.values, atom_idx), species_index=take(self.species_index, atom_idx),
            offsets=new_off, row_offsets=new_roff, grad_values=take(self.grad_values, row_idx),
            grad_centers=take(self.grad_centers, row_idx) - shift,
            grad_neighbors=take(self.grad_neighbors, row_idx) - shift,
            strain_grad=take(self.strain_grad, atom_idx), energies=take(self.energies, sidx),
            forces=take(self.forces, atom_idx), virials=take(self.virials, sidx),
            has_stress=take(self.has_stress, sidx))


def featurize(committee_or_acsf: Any, atoms_list: Sequence[Atoms], species_index: np.ndarray | None = None,
              dtype: torch.dtype = torch.float64) -> LabeledSet:
    """Compute descriptors with sparse gradients (one core call) and collect the labels."""
    acsf = committee_or_acsf.acsf if isinstance(committee_or_acsf, Committee) else committee_or_acsf
    atoms_list = list(atoms_list)
    if not atoms_list:
        raise ValueError("no structures to featurize")
    labels = [read_labels(a) for a in atoms_list]
    d = acsf.compute(atoms_list, gradients=True)
    numbers = np.concatenate([a.numbers for a in atoms_list])
    if species_index is None:
        lookup = {z: i for i, z in enumerate(acsf.species)}
        species_index = np.array([lookup[int(z)] for z in numbers], dtype=np.int64)
    has_stress = np.array([s is not None for _, _, s in labels])
    virials = np.zeros((len(atoms_list), 3, 3))
    for s, (a, (_, _, stress)) in enumerate(zip(atoms_list, labels)):
        if stress is not None:
            virials[s] = -stress * a.get_volume()
    offsets = np.asarray(d.offsets, dtype=np.int64)
    centers = np.asarray(d.grad_centers, dtype=np.int64)
    if np.any(np.diff(centers) < 0):
        raise ValueError("gradient rows are not grouped by center")
    t = lambda x: torch.as_tensor(np.asarray(x), dtype=dtype)  # noqa: E731
    return LabeledSet(
        values=t(d.values), species_index=torch.as_tensor(species_index, dtype=torch.int64),
        offsets=offsets, row_offsets=np.searchsorted(centers, offsets).astype(np.int64),
        grad_values=t(d.grad_values), grad_centers=torch.as_tensor(centers),
        grad_neighbors=torch.as_tensor(np.asarray(d.grad_neighbors, dtype=np.int64)),
        strain_grad=t(d.strain_grad) if has_stress.any() else None,
        energies=t([e for e, _, _ in labels]), forces=t(np.concatenate([f for _, f, _ in labels])),
        virials=t(virials), has_stress=torch.as_tensor(has_stress))


def committee_forces(dE_dG: torch.Tensor, grad_values: torch.Tensor, grad_centers: torch.Tensor,
                     grad_neighbors: torch.Tensor, n_atoms: int) -> torch.Tensor:
    """Forces (K, N, 3) = −Jᵀ dE_k/dG for all K members at once (differentiable)."""
    contrib = torch.einsum("raf,krf->kra", grad_values, dE_dG.index_select(1, grad_centers))
    return dE_dG.new_zeros(dE_dG.shape[0], n_atoms, 3).index_add(1, grad_neighbors, -contrib)


def committee_virials(dE_dG: torch.Tensor, strain_grad: torch.Tensor, structure_index: torch.Tensor,
                      n_structures: int) -> torch.Tensor:
    """Virials (K, S, 3, 3) = −∂E_k/∂ε for all K members at once (differentiable)."""
    per_atom = -torch.einsum("iabf,kif->kiab", strain_grad, dE_dG)
    return dE_dG.new_zeros(dE_dG.shape[0], n_structures, 3, 3).index_add(1, structure_index, per_atom)


def member_losses(net: CommitteeNetwork, data: LabeledSet, weights: torch.Tensor, cfg: TrainConfig,
                  create_graph: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted loss per member (K,) on ``data``; ``weights`` (K, S) are bootstrap counts."""
    S = data.n_structures
    n_atoms = data.n_atoms()
    struct = torch.from_numpy(np.repeat(np.arange(S), np.diff(data.offsets)))
    E, _, dE_dG = net.energies_and_gradients(data.values, data.species_index, struct, S,
                                             create_graph=create_graph)
    w = weights.to(E.dtype)
    dE = (E - data.energies) / n_atoms
    loss_e = (w * dE ** 2).sum(1) / S
    F = committee_forces(dE_dG, data.grad_values, data.grad_centers, data.grad_neighbors, len(struct))
    w_atom = w[:, struct]
    loss_f = (w_atom * ((F - data.forces) ** 2).sum(-1)).sum(1) / (3 * len(struct))
    total = cfg.weight_energy * loss_e + cfg.weight_forces * loss_f
    parts = {"energy": loss_e.detach(), "forces": loss_f.detach()}
    if data.strain_grad is not None and cfg.weight_stress > 0 and bool(data.has_stress.any()):
        W = committee_virials(dE_dG, data.strain_grad, struct, S)
        dW = ((W - data.virials) / n_atoms[:, None, None]) ** 2
        m = data.has_stress.to(E.dtype)
        loss_s = (w * m * dW.sum((-1, -2))).sum(1) / (9 * m.sum().clamp_min(1.0))
        total = total + cfg.weight_stress * loss_s
        parts["stress"] = loss_s.detach()
    return total, parts


def _initialise_scaling(net: CommitteeNetwork, train: LabeledSet, cfg: TrainConfig) -> None:
    """Feature shift/scale per element and per-element energy reference from the training split."""
    ns = len(net.species)
    with torch.no_grad():
        for s in range(ns):
            G = train.values[train.species_index == s].double()
            if len(G) == 0:
                continue
            if cfg.feature_scaling == "standard":
                shift, scale = G.mean(0), G.std(0, unbiased=False)
            elif cfg.feature_scaling == "minmax":
                lo, hi = G.min(0).values, G.max(0).values
                shift, scale = (hi + lo) / 2, (hi - lo) / 2
            else:
                shift, scale = torch.zeros_like(G[0]), torch.ones_like(G[0])
            scale = torch.where(scale > 1e-12 * (1 + shift.abs()), scale, torch.ones_like(scale))
            net.feature_shift[s] = shift
            net.feature_scale[s] = scale
        S = train.n_structures
        counts = torch.zeros(S, ns, dtype=torch.float64)
        struct = torch.from_numpy(np.repeat(np.arange(S), np.diff(train.offsets)))
        counts.index_put_((struct, train.species_index), torch.ones(len(struct), dtype=torch.float64),
                          accumulate=True)
        E = train.energies.double()
        ref = torch.linalg.lstsq(counts, E[:, None], driver="gelsd").solution[:, 0]
        net.energy_ref.copy_(ref)
        resid = (E - counts @ ref) / counts.sum(1)
        net.energy_scale.fill_(max(float(resid.std(unbiased=False)) if S > 1 else 1.0, 1e-2))


def _split(n: int, cfg: TrainConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    perm = rng.permutation(n)
    n_val = int(round(cfg.val_fraction * n))
    if n - n_val < 1:
        n_val = n - 1
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def structure_weights(data: LabeledSet, cfg: TrainConfig) -> torch.Tensor:
    """Per-structure loss weights (S,): ones, or energy-based 1 / (1 + (e − e_min)/Δ) per atom."""
    if cfg.energy_weighting is None:
        return torch.ones(data.n_structures, dtype=data.values.dtype)
    e = data.energies.double() / data.n_atoms().double()
    return (1.0 / (1.0 + (e - e.min()) / cfg.energy_weighting)).to(data.values.dtype)


def _evaluate(net: CommitteeNetwork, data: LabeledSet, weights: torch.Tensor, cfg: TrainConfig,
              chunk: int) -> torch.Tensor:
    """Loss per member (K,) over ``data`` (structure weights (S,), no bootstrap) in chunks."""
    K, S = net.n_members, data.n_structures
    total = torch.zeros(K, dtype=torch.float64)
    for start in range(0, S, chunk):
        idx = np.arange(start, min(S, start + chunk))
        sub = data.batch(idx)
        w = weights[idx].unsqueeze(0).expand(K, -1)
        loss, _ = member_losses(net, sub, w, cfg, create_graph=False)
        total += loss.detach().double() * len(idx)
    return total / S


@dataclass
class TrainResult:
    """A trained committee with its training history."""

    committee: Committee
    history: list[dict] = field(default_factory=list)
    train_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    val_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    seconds: float = 0.0


def train_committee(atoms_list: Sequence[Atoms], acsf: Any | None = None,
                    config: TrainConfig | None = None, data: LabeledSet | None = None) -> TrainResult:
    """Train K members on labelled structures; returns the committee (float64) and its history.

    ``acsf`` defaults to ``ACSF.default_si()``; ``data`` may pass a precomputed
    :func:`featurize` result for ``atoms_list`` (any dtype; it is cast to ``config.dtype``).
    """
    cfg = config or TrainConfig()
    with torch_threads(cfg.threads):
        return _train(atoms_list, acsf, cfg, data)


def _train(atoms_list: Sequence[Atoms], acsf: Any | None, cfg: TrainConfig,
           data: LabeledSet | None) -> TrainResult:
    t0 = time.perf_counter()
    if acsf is None:
        from .descriptors import ACSF
        acsf = ACSF.default_si()
    atoms_list = list(atoms_list)
    dtype = torch.float32 if cfg.dtype == "float32" else torch.float64
    if data is None:
        data = featurize(acsf, atoms_list, dtype=dtype)
    data = _cast(data, dtype)
    rng = np.random.default_rng(cfg.seed)
    train_idx, val_idx = _split(data.n_structures, cfg, rng)
    train, val = data.batch(train_idx), (data.batch(val_idx) if len(val_idx) else None)
    K, S = cfg.n_members, train.n_structures
    boot = (rng.multinomial(S, np.full(S, 1.0 / S), size=K) if cfg.bootstrap
            else np.ones((K, S), dtype=np.int64))
    weights = structure_weights(data, cfg)
    boot = torch.as_tensor(boot, dtype=dtype) * weights[train_idx]

    torch_gen = torch.Generator().manual_seed(cfg.seed)
    net = CommitteeNetwork(acsf.n_features, acsf.species, K, cfg.hidden, cfg.activation,
                           seed=int(torch.randint(0, 2**62, (1,), generator=torch_gen)))
    _initialise_scaling(net, train, cfg)
    net = net.to(dtype)
    params = [p for p in net.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    gamma = (cfg.lr_final / cfg.lr) ** (1.0 / max(cfg.epochs - 1, 1))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
    monitor = val if val is not None else train
    monitor_w = weights[val_idx] if val is not None else weights[train_idx]
    best = _evaluate(net, monitor, monitor_w, cfg, cfg.batch_size * 4)
    best_params = [p.detach().clone() for p in params]
    since_best = torch.zeros(K, dtype=torch.int64)
    history: list[dict] = [{"epoch": 0, "train": None, "val": best.tolist()}]
    for epoch in range(1, cfg.epochs + 1):
        perm = rng.permutation(S)
        running = torch.zeros(K, dtype=torch.float64)
        for start in range(0, S, cfg.batch_size):
            idx = perm[start:start + cfg.batch_size]
            loss, _ = member_losses(net, train.batch(idx), boot[:, idx], cfg)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            running += loss.detach().double() * len(idx)
        sched.step()
        current = _evaluate(net, monitor, monitor_w, cfg, cfg.batch_size * 4)
        since_best = _keep_best(params, best_params, current, best, since_best)
        history.append({"epoch": epoch, "train": float(running.mean() / S), "val": current.tolist(),
                        "lr": opt.param_groups[0]["lr"]})
        if cfg.verbose and (epoch % 10 == 0 or epoch == 1):
            print(f"epoch {epoch:4d} train {running.mean() / S:.3e} val {current.mean():.3e}")
        if bool((since_best >= cfg.patience).all()):
            break
    _restore(params, best_params)
    if cfg.lbfgs_steps > 0:
        _lbfgs(net, params, train, boot, cfg)
        current = _evaluate(net, monitor, monitor_w, cfg, cfg.batch_size * 4)
        history.append({"epoch": "lbfgs", "val": current.tolist()})
        _keep_best(params, best_params, current, best, since_best)
        _restore(params, best_params)
    elapsed = time.perf_counter() - t0
    meta = {"train_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
            "n_train": int(len(train_idx)), "n_val": int(len(val_idx)),
            "best_val_loss": best.tolist(), "train_seconds": elapsed}
    committee = Committee(acsf, net.double(), meta)
    return TrainResult(committee, history, train_idx, val_idx, elapsed)


def _cast(data: LabeledSet, dtype: torch.dtype) -> LabeledSet:
    if data.values.dtype == dtype:
        return data
    c = lambda x: None if x is None else x.to(dtype)  # noqa: E731
    return LabeledSet(c(data.values), data.species_index, data.offsets, data.row_offsets,
                      c(data.grad_values), data.grad_centers, data.grad_neighbors, c(data.strain_grad),
                      c(data.energies), c(data.forces), c(data.virials), data.has_stress)


@torch.no_grad()
def _keep_best(params: list[torch.Tensor], best_params: list[torch.Tensor], current: torch.Tensor,
               best: torch.Tensor, since_best: torch.Tensor) -> torch.Tensor:
    """Copy the members whose loss improved into ``best_params``; update ``best`` in place."""
    improved = current < best
    for p, bp in zip(params, best_params):
        bp[improved] = p[improved]
    best[improved] = current[improved]
    return torch.where(improved, torch.zeros_like(since_best), since_best + 1)


@torch.no_grad()
def _restore(params: list[torch.Tensor], best_params: list[torch.Tensor]) -> None:
    for p, bp in zip(params, best_params):
        p.copy_(bp)


def _lbfgs(net: CommitteeNetwork, params: list[torch.Tensor], train: LabeledSet, boot: torch.Tensor,
           cfg: TrainConfig) -> None:
    """Full-batch L-BFGS on the summed member losses (members couple only via the line search)."""
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=cfg.lbfgs_steps, history_size=20,
                            line_search_fn="strong_wolfe")
    S = train.n_structures

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        total = torch.zeros((), dtype=boot.dtype)
        for start in range(0, S, cfg.batch_size * 4):
            idx = np.arange(start, min(S, start + cfg.batch_size * 4))
            loss, _ = member_losses(net, train.batch(idx), boot[:, idx], cfg)
            scaled = loss.sum() * len(idx) / S
            scaled.backward()
            total = total + scaled.detach()
        return total

    opt.step(closure)


def errors(committee: Committee, atoms_list: Sequence[Atoms]) -> dict[str, float]:
    """RMSE of the committee mean vs labels: energy per atom (eV), forces (eV/Å), stress (eV/Å³)."""
    atoms_list = list(atoms_list)
    pred = committee.predict(atoms_list)
    labels = [read_labels(a) for a in atoms_list]
    n = pred.n_atoms
    e_ref = np.array([e for e, _, _ in labels])
    f_ref = np.concatenate([f for _, f, _ in labels])
    out = {"energy_rmse": float(np.sqrt(np.mean(((pred.energies.mean(0) - e_ref) / n) ** 2))),
           "force_rmse": float(np.sqrt(np.mean((pred.forces.mean(0) - f_ref) ** 2)))}
    s_err = [(-pred.virials.mean(0)[s] / a.get_volume() - st) for s, (a, (_, _, st))
             in enumerate(zip(atoms_list, labels)) if st is not None]
    out["stress_rmse"] = float(np.sqrt(np.mean(np.square(s_err)))) if s_err else math.nan
    return out
