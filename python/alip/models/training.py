"""Training a committee of Behler–Parrinello networks on energies, forces and stresses.

Forces are F = −Jᵀ dE/dG with dE/dG from the networks' chain rule written out with its
graph (:meth:`CommitteeNetwork.energies_and_gradients`), so the force loss backpropagates
into the weights in one backward pass; Jᵀ is either the stored sparse descriptor
gradients or the fused vector–Jacobian product (see :mod:`alip.models.training_data`).
``TrainConfig(device="cuda")`` trains on the GPU.  All K members train in the same pass (stacked
weights); members differ by initialisation, by the structures they hold out for validation
(``validation="folds"``: a fold per member, so that the committee trains on every structure) and,
with ``bootstrap=True``, by bootstrap weights over the training structures.  Early stopping keeps,
per member, the weights with the lowest loss on the structures that member held out.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from ase import Atoms

from alip.config import Config, TrainingSection
from alip.core.descriptors import ACSF
from alip.core.device import Prepared, parse_device, select_device
from alip.core.jacobian import committee_forces, padded_forces, shared_padded_forces
from alip.models.committee import Committee
from alip.models.member_processes import (
    resolve_processes,
    run_groups,
    split_members,
    training_threads,
    worker_threads,
)
from alip.models.networks import CommitteeNetwork, torch_threads
from alip.models.training_data import FORCE_MODES, LabeledSet, featurize, read_labels

__all__ = [
    "TrainConfig",
    "TrainResult",
    "train_committee",
    "member_losses",
    "committee_forces",
    "padded_forces",
    "committee_virials",
    "structure_weights",
    "errors",
    "featurize",
    "read_labels",
    "LabeledSet",
]


@dataclass
class TrainConfig(TrainingSection):
    """Hyper-parameters of one committee training: the [training] table of
    :class:`alip.config.TrainingSection` (whose defaults are the only ones) plus the
    seed, threads and device of the run and the force mode."""

    energy_weighting: float | None = None  # Δ (eV/atom): structure weight 1 / (1 + (e − e_min) / Δ); None: off
    seed: int = 0
    threads: int | str | None = "auto"  # torch intra-op threads while training: a number, None (unchanged) or
    # "auto": the usable cores up to AUTO_MAX_THREADS (2) in one process, 1 per worker process
    device: str = "cpu"  # "cpu" or "cuda[:i]": where the networks train
    forces: str = "auto"  # "sparse" | "fused" | "auto" (sparse on the CPU, fused on a GPU)
    verbose: bool = False

    def __post_init__(self) -> None:
        self.check()
        if self.energy_weighting is not None and not self.energy_weighting > 0:
            raise ValueError("energy_weighting must be a positive energy per atom or None")
        parse_device(self.device)
        if self.forces not in FORCE_MODES + ("auto",):
            raise ValueError(f"forces must be one of {FORCE_MODES + ('auto',)}, got {self.forces!r}")
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.threads not in (None, "auto") and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1
        ):
            raise ValueError(f"threads must be 'auto', None or an integer >= 1, got {self.threads!r}")

    @classmethod
    def from_config(cls, config: Config, seed: int) -> TrainConfig:
        """The training of one active-learning iteration: ``config.training`` with the run's
        threads and device (an energy_weighting of 0 in the TOML means off)."""
        kw = dataclasses.asdict(config.training)
        kw["energy_weighting"] = kw["energy_weighting"] or None
        return cls(**kw, seed=int(seed), threads=config.run.threads, device=config.run.device)

    def force_mode(self, device: torch.device) -> str:
        """The force mode on ``device`` ("auto" resolved)."""
        if self.forces != "auto":
            return self.forces
        return "fused" if device.type == "cuda" else "sparse"


MAX_PADDED_RATIO = 2.0  # padded over sparse gradient rows above which training keeps the sparse rows
# structures per chunk of a full-batch pass (validation every epoch, L-BFGS): 32 took 0.93 of the
# time of 16 (once 4 Adam batches) on mlearn, 24 and 48 more (docs/accuracy_studies.md, eleventh study)
FULL_PASS_CHUNK = 32


def committee_virials(
    dE_dG: torch.Tensor, strain_grad: torch.Tensor, structure_index: torch.Tensor, n_structures: int
) -> torch.Tensor:
    """Virials (K, S, 3, 3) = −∂E_k/∂ε for all K members at once (differentiable)."""
    per_atom = -torch.einsum("iabf,kif->kiab", strain_grad, dE_dG)
    return dE_dG.new_zeros(dE_dG.shape[0], n_structures, 3, 3).index_add(1, structure_index, per_atom)


def member_losses(
    net: CommitteeNetwork, data: LabeledSet, weights: torch.Tensor, cfg: TrainConfig, create_graph: bool = True
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted loss per member (K,) on ``data``; ``weights`` (K, S) are bootstrap counts."""
    S = data.n_structures
    n_atoms = data.n_atoms()
    struct = data.structure_index()
    E, _, dE_dG = net.energies_and_gradients(data.values, data.species_index, struct, S, create_graph=create_graph)
    w = weights.to(E.dtype)
    dE = (E - data.energies) / n_atoms
    loss_e = (w * dE**2).sum(1) / S
    want_stress = cfg.weight_stress > 0 and bool(data.has_stress.any())
    W = None
    if data.fused:
        F, W = Prepared(data.acsf, data.geometry, data.device).forces_and_virial(dE_dG)
    else:
        strain = data.strain_grad if want_stress else None
        if data.grad_atoms is not None:  # a CPU batch reads the set's padded rows (and strain rows) in place
            if strain is None:
                F = shared_padded_forces(dE_dG, data.grad_padded, data.grad_targets, data.grad_atoms)
            else:  # forces and virials in one pass
                F, W = shared_padded_forces(
                    dE_dG, data.grad_padded, data.grad_targets, data.grad_atoms, strain, struct, S
                )
        else:
            if data.grad_padded is not None:  # padded once per data set (LabeledSet.padded)
                F = padded_forces(dE_dG, data.grad_padded, data.grad_targets)
            else:
                F = committee_forces(dE_dG, data.grad_values, data.grad_centers, data.grad_neighbors, len(struct))
            if strain is not None:
                W = committee_virials(dE_dG, strain, struct, S)
    w_atom = w[:, struct]
    loss_f = (w_atom * ((F - data.forces) ** 2).sum(-1)).sum(1) / (3 * len(struct))
    total = cfg.weight_energy * loss_e + cfg.weight_forces * loss_f
    parts = {"energy": loss_e.detach(), "forces": loss_f.detach()}
    if want_stress and W is not None:
        dW = ((W - data.virials) / n_atoms[:, None, None]) ** 2
        m = data.has_stress.to(E.dtype)
        loss_s = (w * m * dW.sum((-1, -2))).sum(1) / (9 * m.sum().clamp_min(1.0))
        total = total + cfg.weight_stress * loss_s
        parts["stress"] = loss_s.detach()
    return total, parts


def _initialise_scaling(net: CommitteeNetwork, train: LabeledSet, cfg: TrainConfig) -> None:
    """Feature shift/scale per element and per-element energy reference from the training split."""
    ns = len(net.species)
    # on the CPU in float64 (lstsq with gelsd is CPU-only; this runs once): the values and
    # energies only, not a float64 copy of the stored Jacobian
    values, species = train.values.to("cpu", torch.float64), train.species_index.cpu()
    with torch.no_grad():
        for s in range(ns):
            G = values[species == s]
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
        struct = train.structure_index().cpu()
        counts.index_put_((struct, species), torch.ones(len(struct), dtype=torch.float64), accumulate=True)
        E = train.energies.to("cpu", torch.float64)
        ref = torch.linalg.lstsq(counts, E[:, None], driver="gelsd").solution[:, 0]
        net.energy_ref.copy_(ref)
        resid = (E - counts @ ref) / counts.sum(1)
        net.energy_scale.fill_(max(float(resid.std(unbiased=False)) if S > 1 else 1.0, 1e-2))


def _validation_split(n: int, cfg: TrainConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(training indices, validation indices, held_out (K, n_val) bool: which members hold each one out).

    "shared": one random ``val_fraction`` held out of every member.  "folds": member k holds out
    the k-th consecutive block of ``val_fraction`` of one random permutation (disjoint while
    K × blocks ≤ n, else wrapping around, and at most n (K − 1) / K each, so that every
    structure trains at least one member), and the training indices are all structures."""
    K = cfg.n_members
    perm = rng.permutation(n)
    n_val = int(round(cfg.val_fraction * n))
    if n - n_val < 1:
        n_val = n - 1
    if cfg.validation == "folds" and K > 1:
        n_val = min(n_val, n * (K - 1) // K)
    if cfg.validation == "shared" or n_val == 0:
        return np.sort(perm[n_val:]), np.sort(perm[:n_val]), np.ones((K, n_val), dtype=bool)
    folds = [perm[(k * n_val + np.arange(n_val)) % n] for k in range(K)]
    val_idx = np.unique(np.concatenate(folds))
    held_out = np.stack([np.isin(val_idx, f) for f in folds])
    return np.arange(n), val_idx, held_out


def structure_weights(data: LabeledSet, cfg: TrainConfig) -> torch.Tensor:
    """Per-structure loss weights (S,): ones, or energy-based 1 / (1 + (e − e_min)/Δ) per atom."""
    if cfg.energy_weighting is None:
        return torch.ones(data.n_structures, dtype=data.values.dtype, device=data.device)
    e = data.energies.double() / data.n_atoms().double()
    return (1.0 / (1.0 + (e - e.min()) / cfg.energy_weighting)).to(data.values.dtype)


@torch.no_grad()  # no graph: a forward pass over the held-out structures every epoch
def _evaluate(
    net: CommitteeNetwork, data: LabeledSet, weights: torch.Tensor, mask: torch.Tensor, cfg: TrainConfig, chunk: int
) -> torch.Tensor:
    """Loss per member (K,) over the structures of ``data`` in its ``mask`` (K, S) (the ones it
    held out), with structure weights ``weights`` (S,): what :func:`member_losses` gives for
    those structures in one batch, summed here chunk by chunk."""
    K = net.n_members
    sums = torch.zeros(3, K, dtype=torch.float64)  # energy, forces, stress: weighted sums of squares
    mask64 = mask.detach().double().cpu()
    n_atoms = data.n_atoms().double().cpu()
    has_stress = data.has_stress.double().cpu()
    for cols, sub in data.chunks(chunk):
        _, parts = member_losses(net, sub, weights[cols] * mask[:, cols], cfg, create_graph=False)
        n = cols.stop - cols.start
        sums[0] += parts["energy"].double().cpu() * n
        sums[1] += parts["forces"].double().cpu() * 3 * float(n_atoms[cols].sum())
        if "stress" in parts:
            sums[2] += parts["stress"].double().cpu() * 9 * max(float(has_stress[cols].sum()), 1.0)
    total = cfg.weight_energy * sums[0] / mask64.sum(1) + cfg.weight_forces * sums[1] / (3 * mask64 @ n_atoms)
    n_stress = mask64 @ has_stress
    if cfg.weight_stress > 0 and bool((n_stress > 0).any()):
        total = total + cfg.weight_stress * sums[2] / (9 * n_stress.clamp_min(1.0))
    return total


@dataclass
class TrainResult:
    """A trained committee with its training history.

    ``history``: one entry per Adam epoch (``epoch`` 0 is before training) with the mean
    training loss over the members (``train``; ``train_members`` per member), the validation
    loss per member (``val``) and the learning rate, then ``{"epoch": "lbfgs", "val": …}``.
    ``held_out`` (K, len(val_indices)) bool: the members that did not train on each validation
    structure (all of them with ``validation="shared"``, one fold per member with "folds").
    """

    committee: Committee
    history: list[dict] = field(default_factory=list)
    train_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    val_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    held_out: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))
    seconds: float = 0.0
    processes: int = 1  # worker processes that trained it (1: this process)
    threads: int | None = None  # torch threads per process (None: left as they were)


@dataclass
class _Part:
    """What training some of the members returns (from this or a worker process)."""

    network: CommitteeNetwork  # those members, float64 on the CPU
    history: list[dict]
    train_indices: np.ndarray
    val_indices: np.ndarray
    held_out: np.ndarray  # (members of this part, len(val_indices)) bool
    best_val: list[float]


def train_committee(
    atoms_list: Sequence[Atoms],
    acsf: ACSF | None = None,
    config: TrainConfig | None = None,
    data: LabeledSet | None = None,
) -> TrainResult:
    """Train K members on labelled structures; returns the committee (float64) and its history.

    ``acsf`` defaults to ``ACSF.training_default()`` (``cross_windows_si``; the active-learning
    loop passes its own; :func:`alip.core.selection.select_acsf` chooses one on the data);
    ``data`` may pass a precomputed :func:`featurize` result of ``acsf`` for ``atoms_list``
    (any dtype; it is cast to ``config.dtype``).
    ``config.processes`` > 1 (or "auto" on a big enough data set) trains sub-committees in
    worker processes (:mod:`alip.models.member_processes`); every member comes out as in
    one process, up to floating-point summation order.
    """
    t0 = time.perf_counter()
    cfg = config or TrainConfig()
    if acsf is None:
        acsf = ACSF.training_default()
    dev = select_device(device=cfg.device)  # a clear error now when the GPU is not usable
    n_atoms = data.values.shape[0] if data is not None else sum(len(a) for a in atoms_list)
    trained = 1 - cfg.val_fraction if cfg.validation == "shared" else 1  # folds: each step covers all
    atom_epochs = int(n_atoms * trained * (cfg.epochs + cfg.lbfgs_steps))
    sizes = [acsf.n_features, *cfg.hidden, 1]
    member_macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    n_proc = resolve_processes(cfg.processes, cfg.n_members, cfg.threads, atom_epochs, member_macs, dev.type == "cpu")
    threads = training_threads(cfg.threads, n_proc)
    with torch_threads(threads):
        data = _prepared(atoms_list, acsf, cfg, data, dev)
        if n_proc == 1:
            parts = [_train(data, acsf, cfg, list(range(cfg.n_members)))]
    if n_proc > 1:
        parts = run_groups(_train_in_worker, split_members(cfg.n_members, n_proc), data, acsf, cfg)
    elapsed = time.perf_counter() - t0
    first = parts[0]
    net = CommitteeNetwork.join([p.network for p in parts]) if len(parts) > 1 else first.network
    meta = {
        "train_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "n_train": int(len(first.train_indices)),
        "n_val": int(len(first.val_indices)),
        "best_val_loss": [b for p in parts for b in p.best_val],
        "train_seconds": elapsed,
        "processes": n_proc,
        "threads": threads,  # per process
    }
    committee = Committee(acsf, net, meta)
    history = _merged_history([p.history for p in parts])
    held_out = np.concatenate([p.held_out for p in parts])
    return TrainResult(committee, history, first.train_indices, first.val_indices, held_out, elapsed, n_proc, threads)


def _prepared(
    atoms_list: Sequence[Atoms], acsf: ACSF, cfg: TrainConfig, data: LabeledSet | None, dev: torch.device
) -> LabeledSet:
    """``data`` (or the featurized ``atoms_list``) checked against ``acsf``, on ``dev`` in ``cfg.dtype``."""
    dtype = torch.float32 if cfg.dtype == "float32" else torch.float64
    mode = cfg.force_mode(dev)
    if data is None:
        data = featurize(acsf, list(atoms_list), dtype=dtype, forces=mode, device=dev)
    elif data.values.shape[1] != acsf.n_features:
        raise ValueError(
            f"data has {data.values.shape[1]} features per atom but the descriptor has {acsf.n_features}: "
            "pass the ACSF that featurized it"
        )
    elif data.fused != (mode == "fused"):
        raise ValueError(
            f"data was featurized for {'fused' if data.fused else 'sparse'} forces, but the config asks for {mode!r}"
        )
    return data.to(dev, dtype)


def _train_in_worker(members: list[int], data: LabeledSet, acsf: ACSF, cfg: TrainConfig) -> _Part:
    """:func:`_train` in a worker process (what :func:`run_groups` calls there)."""
    with torch_threads(worker_threads(cfg.threads)):
        return _train(data, acsf, cfg, members)


def _merged_history(histories: list[list[dict]]) -> list[dict]:
    """One history from those of sub-committees (member order); a sub-committee that stopped
    early repeats its last epoch (its members stay frozen at their best weights)."""
    adam = [[h for h in hist if isinstance(h["epoch"], int)] for hist in histories]
    out: list[dict] = []
    for e in range(max(len(a) for a in adam)):
        rows = [a[min(e, len(a) - 1)] for a in adam]
        entry: dict = {"epoch": e, "train": None}
        if e > 0:
            train = [x for r in rows for x in r["train_members"]]
            entry.update(train=float(np.mean(train)), train_members=train, lr=max(adam, key=len)[e]["lr"])
        entry["val"] = [x for r in rows for x in r["val"]]
        out.append(entry)
    tails = [[h for h in hist if not isinstance(h["epoch"], int)] for hist in histories]
    if tails[0]:
        out.append({"epoch": "lbfgs", "val": [x for t in tails for x in t[0]["val"]]})
    return out


def _initial_network(acsf: ACSF, cfg: TrainConfig) -> CommitteeNetwork:
    """All ``cfg.n_members`` members with their initial weights, drawn from ``cfg.seed`` alone
    (unscaled: :func:`_initialise_scaling` fits the features and energies next)."""
    torch_gen = torch.Generator().manual_seed(cfg.seed)
    seed = int(torch.randint(0, 2**62, (1,), generator=torch_gen))
    return CommitteeNetwork(acsf.n_features, acsf.species, cfg.n_members, cfg.hidden, cfg.activation, seed=seed)


def _train(data: LabeledSet, acsf: ACSF, cfg: TrainConfig, members: list[int]) -> _Part:
    """Train the members ``members`` of the K-member committee that ``cfg`` describes.

    Every random draw is made for all K members and then sliced, and members never
    interact (per-member early stopping and L-BFGS), so a member comes out the same
    whichever others train beside it.
    """
    dev, dtype = data.device, data.values.dtype
    rng = np.random.default_rng(cfg.seed)
    train_idx, val_idx, held_out = _validation_split(data.n_structures, cfg, rng)
    if data.grad_centers is not None and data.padded_ratio() <= MAX_PADDED_RATIO:  # pad once, not every step
        data = data.padded()  # on the CPU train, val and their batches read these rows in place
    train, val = data.batch(train_idx), (data.batch(val_idx) if len(val_idx) else None)
    K, S = cfg.n_members, train.n_structures
    boot = rng.multinomial(S, np.full(S, 1.0 / S), size=K) if cfg.bootstrap else np.ones((K, S), dtype=np.int64)
    if cfg.validation == "folds" and len(val_idx):  # a member does not train on its own fold
        cols = np.searchsorted(train_idx, val_idx)
        boot[:, cols] *= ~held_out
    weights = structure_weights(data, cfg)
    boot = torch.as_tensor(boot[members], dtype=dtype, device=dev) * weights[torch.from_numpy(train_idx).to(dev)]
    held_out = held_out[members]

    net = _initial_network(acsf, cfg)
    _initialise_scaling(net, train, cfg)
    net = net.select(members).to(device=dev, dtype=dtype)
    K = len(members)
    label = f"members {members[0]}-{members[-1]}: " if K < cfg.n_members else ""
    params = [p for p in net.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.lr, fused=True)  # one kernel per step: a third of the optimizer's time
    gamma = (cfg.lr_final / cfg.lr) ** (1.0 / max(cfg.epochs - 1, 1))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
    monitor = val if val is not None else train  # each member's loss over the structures it held out
    monitor_w = weights[torch.from_numpy(val_idx if val is not None else train_idx).to(dev)]
    monitor_mask = torch.as_tensor(
        held_out if val is not None else np.ones((K, S), dtype=bool), dtype=dtype, device=dev
    )
    best = _evaluate(net, monitor, monitor_w, monitor_mask, cfg, FULL_PASS_CHUNK)
    best_params = [p.detach().clone() for p in params]
    since_best = torch.zeros(K, dtype=torch.int64)
    frozen = torch.zeros(K, dtype=torch.bool)  # out of patience: held at their best weights
    history: list[dict] = [{"epoch": 0, "val": best.tolist()}]
    for epoch in range(1, cfg.epochs + 1):
        perm = rng.permutation(S)
        running = torch.zeros(K, dtype=torch.float64)
        for start in range(0, S, cfg.batch_size):
            idx = perm[start : start + cfg.batch_size]
            loss, _ = member_losses(net, train.batch(idx), boot[:, torch.from_numpy(idx).to(dev)], cfg)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            if frozen.any():
                _restore(params, best_params, frozen)
            running += loss.detach().double().cpu() * len(idx)
        sched.step()
        current = _evaluate(net, monitor, monitor_w, monitor_mask, cfg, FULL_PASS_CHUNK)
        since_best = _keep_best(params, best_params, current, best, since_best, ~frozen)
        newly = ~frozen & (since_best >= cfg.patience)
        if newly.any():
            frozen |= newly
            _restore(params, best_params, newly)
        current = torch.where(frozen, best, current)
        history.append(
            {
                "epoch": epoch,
                "train_members": (running / S).tolist(),
                "val": current.tolist(),
                "lr": opt.param_groups[0]["lr"],
            }
        )
        if cfg.verbose and (epoch % 10 == 0 or epoch == 1 or epoch == cfg.epochs):
            print(
                f"{label}epoch {epoch:4d}/{cfg.epochs} loss (mean over {K} members): train {running.mean() / S:.3e}, "
                f"{'validation' if val is not None else 'train set'} {current.mean():.3e}",
                flush=True,
            )
        if bool(frozen.all()):
            break
    _restore(params, best_params)
    if cfg.lbfgs_steps > 0:
        _lbfgs(net, params, train, boot, cfg)
        current = _evaluate(net, monitor, monitor_w, monitor_mask, cfg, FULL_PASS_CHUNK)
        history.append({"epoch": "lbfgs", "val": current.tolist()})
        _keep_best(params, best_params, current, best, since_best, torch.ones(K, dtype=torch.bool))
        _restore(params, best_params)
    return _Part(net.to(device="cpu", dtype=torch.float64), history, train_idx, val_idx, held_out, best.tolist())


@torch.no_grad()
def _keep_best(
    params: list[torch.Tensor],
    best_params: list[torch.Tensor],
    current: torch.Tensor,
    best: torch.Tensor,
    since_best: torch.Tensor,
    eligible: torch.Tensor,
) -> torch.Tensor:
    """Copy the ``eligible`` members whose loss improved into ``best_params``; update ``best`` in place."""
    improved = (current < best) & eligible
    for p, bp in zip(params, best_params):
        mask = improved.to(p.device)
        bp[mask] = p[mask]
    best[improved] = current[improved]
    return torch.where(improved, torch.zeros_like(since_best), since_best + 1)


@torch.no_grad()
def _restore(params: list[torch.Tensor], best_params: list[torch.Tensor], members: torch.Tensor | None = None) -> None:
    """Copy ``best_params`` into ``params`` (only the members in the mask ``members`` where given)."""
    for p, bp in zip(params, best_params):
        if members is None:
            p.copy_(bp)
        else:
            mask = members.to(p.device)
            p[mask] = bp[mask]


def _lbfgs(
    net: CommitteeNetwork, params: list[torch.Tensor], train: LabeledSet, boot: torch.Tensor, cfg: TrainConfig
) -> None:
    """Full-batch L-BFGS, one optimisation per member, run side by side.

    Each member has its own curvature history (its last 20 steps), step and backtracking
    (Armijo) line search, and stops on its own (``cfg.lbfgs_steps`` steps, 12 failed trials,
    a vanishing gradient or loss change), so its path does not depend on the other members.
    One batched evaluation gives every member's loss and gradient at its own trial point, and
    the line searches run on their own clocks: a member that backtracks retries in the same
    evaluation as the others' next steps, instead of every member waiting for it (about 1.5
    evaluations per step before, 1.2 now on mlearn).
    """
    K, S = net.n_members, train.n_structures
    chunk = FULL_PASS_CHUNK
    sizes = [p[0].numel() for p in params]
    memory = 20

    def flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat([t.reshape(K, -1) for t in tensors], 1)

    @torch.no_grad()
    def assign(x: torch.Tensor) -> None:
        for p, v in zip(params, torch.split(x, sizes, 1)):
            p.copy_(v.reshape(p.shape))

    def evaluate(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assign(x)
        for p in params:
            p.grad = None
        total = torch.zeros(K, dtype=x.dtype, device=x.device)
        for cols, sub in train.chunks(chunk):
            loss, _ = member_losses(net, sub, boot[:, cols], cfg)
            scaled = loss * ((cols.stop - cols.start) / S)
            scaled.sum().backward()
            total += scaled.detach()
        return total, flat([p.grad for p in params])

    def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b).sum(1)

    x = flat([p.detach() for p in params]).clone()
    f, g = evaluate(x)
    members = torch.arange(K, device=x.device)
    # each member's last `memory` pairs (s, y, rho) in a ring; rho 0: no pair (an empty slot or ys <= 0)
    ring_s, ring_y = x.new_zeros(memory, *x.shape), x.new_zeros(memory, *x.shape)
    ring_rho = x.new_zeros(memory, K)
    n_pairs = torch.zeros(K, dtype=torch.int64, device=x.device)
    gamma = torch.ones_like(f)
    has_pairs = torch.zeros_like(f, dtype=torch.bool)

    def direction() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every member's L-BFGS direction at its current point, dE·d, and first trial step."""
        q, kept = -g, []
        for j in range(memory):  # the two-loop recursion, newest pair first
            slot = (n_pairs - 1 - j) % memory
            s, y = ring_s[slot, members], ring_y[slot, members]
            rho = torch.where(n_pairs > j, ring_rho[slot, members], torch.zeros_like(f))
            a = rho * dot(s, q)
            q = q - a[:, None] * y
            kept.append((s, y, rho, a))
        d = gamma[:, None] * q
        for s, y, rho, a in reversed(kept):
            d = d + s * (a - rho * dot(y, d))[:, None]
        gd = dot(g, d)
        uphill = gd >= 0  # a bad curvature estimate: that member restarts from steepest descent
        d = torch.where(uphill[:, None], -g, d)
        gd = torch.where(uphill, -dot(g, g), gd)
        # without curvature pairs the step is scaled as torch.optim.LBFGS scales its first one
        t = torch.where(has_pairs & ~uphill, torch.ones_like(f), (1.0 / g.abs().sum(1)).clamp(max=1.0))
        return d, gd, t

    steps = torch.zeros(K, dtype=torch.int64, device=x.device)
    trials = torch.zeros(K, dtype=torch.int64, device=x.device)
    active = (g.abs().amax(1) > 1e-7) & (steps < cfg.lbfgs_steps)
    d, gd, t = direction()
    while bool(active.any()):
        f_try, g_try = evaluate(torch.where(active[:, None], x + t[:, None] * d, x))
        ok = active & torch.isfinite(f_try) & (f_try <= f + 1e-4 * t * gd)
        failed = active & ~ok
        trials = torch.where(failed, trials + 1, torch.zeros_like(trials))
        active = active & ~(trials >= 12)
        t = torch.where(failed, 0.5 * t, t)
        if not bool(ok.any()):
            continue
        x_new = torch.where(ok[:, None], x + t[:, None] * d, x)
        s, y = x_new - x, torch.where(ok[:, None], g_try - g, torch.zeros_like(g))
        ys = dot(s, y)
        valid = ok & (ys > 1e-10)
        slot = n_pairs % memory  # the members that stepped write their newest pair, the others keep theirs
        ring_s[slot, members] = torch.where(ok[:, None], s, ring_s[slot, members])
        ring_y[slot, members] = torch.where(ok[:, None], y, ring_y[slot, members])
        rho_new = torch.where(valid, 1.0 / ys.clamp(min=1e-30), torch.zeros_like(ys))
        ring_rho[slot, members] = torch.where(ok, rho_new, ring_rho[slot, members])
        n_pairs = n_pairs + ok.long()
        steps = steps + ok.long()
        gamma = torch.where(valid, ys / dot(y, y).clamp(min=1e-30), gamma)
        has_pairs = has_pairs | valid
        change = (f - f_try).abs()
        x, f, g = x_new, torch.where(ok, f_try, f), torch.where(ok[:, None], g_try, g)
        done = ok & ((g.abs().amax(1) <= 1e-7) | (change <= 1e-9) | (steps >= cfg.lbfgs_steps))
        active = active & ~done
        d_new, gd_new, t_new = direction()
        d = torch.where(ok[:, None], d_new, d)
        gd, t = torch.where(ok, gd_new, gd), torch.where(ok, t_new, t)
    assign(x)


def errors(committee: Committee, atoms_list: Sequence[Atoms], held_out: np.ndarray | None = None) -> dict[str, float]:
    """RMSE of the committee mean vs labels: energy per atom (eV), forces (eV/Å), stress (eV/Å³).

    ``held_out`` (K, S) bool (a :class:`TrainResult`'s, for its validation structures): average
    each structure over the members that did not train on it only, a cross-validation estimate
    (with one fold per member, a single member's error: higher than the committee's; the
    feature scaling and the energy reference per element were fitted on all structures)."""
    atoms_list = list(atoms_list)
    pred = committee.predict(atoms_list)
    labels = [read_labels(a) for a in atoms_list]
    n = pred.n_atoms
    K, S = pred.energies.shape
    w = np.ones((K, S)) if held_out is None else np.asarray(held_out, dtype=float)
    if w.shape != (K, S) or not (w.sum(0) > 0).all():
        raise ValueError(f"held_out must be ({K}, {S}) with a member for every structure")
    w = w / w.sum(0)
    atom_w = np.repeat(w, n, axis=1)[:, :, None]
    energies = (w * pred.energies).sum(0)
    forces = (atom_w * pred.forces).sum(0)
    virials = (w[:, :, None, None] * pred.virials).sum(0)
    e_ref = np.array([e for e, _, _ in labels])
    f_ref = np.concatenate([f for _, f, _ in labels])
    out = {
        "energy_rmse": float(np.sqrt(np.mean(((energies - e_ref) / n) ** 2))),
        "force_rmse": float(np.sqrt(np.mean((forces - f_ref) ** 2))),
    }
    s_err = [
        (-virials[s] / a.get_volume() - st)
        for s, (a, (_, _, st)) in enumerate(zip(atoms_list, labels))
        if st is not None
    ]
    out["stress_rmse"] = float(np.sqrt(np.mean(np.square(s_err)))) if s_err else math.nan
    return out
