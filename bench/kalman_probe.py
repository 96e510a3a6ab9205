"""Probe (issue 14, thirteenth study): train the default committee with an extended Kalman filter.

    python bench/accuracy.py --write-data /tmp/mlearn      # the files with the shear stresses fixed
    python bench/kalman_probe.py --epochs 15 --force-groups 16  # EKF, then the defaults' 200 L-BFGS steps
    python bench/kalman_probe.py --epochs 20 --p-dtype float64 --lbfgs-steps 0

n2p2 trains its networks with a global extended Kalman filter, DeePMD's RLEKF with a
reorganised one; both report lower errors than first-order optimisers on small data. Here each
member of alip's default committee (``ACSF.training_default()``, 32-32 SiLU, ``TrainConfig()``'s
validation folds, feature scaling and energy reference, the same initial weights) is its own
filter over all its weights w (n = 3,425): per training structure, one update with m
measurements h(w): the energy per atom, the forces of ``--force-groups`` random groups of its
atoms, each reduced to one number with DeePMD's sign trick (h = mean over the group's components
of sign(error) · F, so that the innovation is the mean absolute error), and the virial per atom
the same way, scaled by the square roots of the defaults' loss weights. With H = ∂h/∂w (m × n,
one backward pass per measurement) and the forgetting factor λ (``--lambda0`` → 1 as
λ ← ν λ + 1 − ν):

    A = H P Hᵀ + λ I,  K = P Hᵀ A⁻¹,  w ← w + K (y − h),  P ← (P − K H P) / λ,  P₀ = ``--p0`` · I

λ is kept in float64 (in float32 it stalls at 0.99993; the study's float32 runs ran so).
``--per-update`` stacks the measurements of several structures into one update: fewer passes
over P and fewer steps, with the forgetting and the λ schedule applied once per update. Members
skip the structures of their own validation fold. After every epoch each member keeps its
weights if its loss on its fold improved (the defaults' early stopping); then, as the defaults
do after Adam, ``--lbfgs-steps`` full-batch L-BFGS steps. Prints per epoch the members' mean
loss on their folds and the seconds, then one JSON line: train / cross-validation / test RMSEs
(meV/atom, eV/Å, GPa over the 9 stress components), the test per phase and family, and the
wall time; the defaults' row in the same units comes from ``python bench/accuracy.py --screen
'{"n_members": 5, "threads": "auto"}'``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from accuracy import ground_energy, read_mlearn, split_errors, split_rmses  # noqa: E402

from alip.core.descriptors import ACSF  # noqa: E402
from alip.core.jacobian import shared_padded_forces  # noqa: E402
from alip.models.calculator import Calculator  # noqa: E402
from alip.models.committee import Committee  # noqa: E402
from alip.models.training import (  # noqa: E402
    FULL_PASS_CHUNK,
    TrainConfig,
    TrainResult,
    _evaluate,
    _initial_network,
    _initialise_scaling,
    _keep_best,
    _lbfgs,
    _restore,
    _validation_split,
    featurize,
)


def measurements(net, b, cfg: TrainConfig, groups: int, rng: np.random.Generator, want_stress: bool):
    """(h, y): the K members' m measurements of one structure ``b`` (K, m) with their graphs,
    and their targets (K, m); force groups and stress reduced by the sign trick."""
    n = len(b.values)
    struct = b.structure_index()
    E, _, dE_dG = net.energies_and_gradients(b.values, b.species_index, struct, 1, create_graph=True)
    if want_stress:
        F, W = shared_padded_forces(dE_dG, b.grad_padded, b.grad_targets, b.grad_atoms, b.strain_grad, struct, 1)
    else:
        F, W = shared_padded_forces(dE_dG, b.grad_padded, b.grad_targets, b.grad_atoms), None
    ce, cf, cs = math.sqrt(cfg.weight_energy), math.sqrt(cfg.weight_forces), math.sqrt(cfg.weight_stress)
    h = [ce * E[:, 0] / n]
    y = [ce * b.energies[0].expand(E.shape[0]) / n]
    order = torch.from_numpy(rng.permutation(n))
    for atoms in torch.tensor_split(order, min(groups, n)):
        f, f0 = F[:, atoms].reshape(F.shape[0], -1), b.forces[atoms].reshape(-1)
        sign = torch.sign(f0 - f.detach())
        h.append(cf * (sign * f).mean(1))
        y.append(cf * (sign * f0).mean(1))
    if W is not None:
        w, w0 = W[:, 0].reshape(W.shape[0], -1) / n, b.virials[0].reshape(-1) / n
        sign = torch.sign(w0 - w.detach())
        h.append(cs * (sign * w).mean(1))
        y.append(cs * (sign * w0).mean(1))
    return torch.stack(h, 1), torch.stack(y, 1)


@torch.no_grad()
def filter_update(
    P: torch.Tensor, H: torch.Tensor, xi: torch.Tensor, lam: torch.Tensor, on: torch.Tensor
) -> torch.Tensor:
    """One extended-Kalman update of K filters: covariances ``P`` (K, n, n) updated in place,
    the weight step K ξ (K, n) returned, for measurement Jacobians ``H`` (K, m, n), innovations
    ``xi`` (K, m) = y − h and forgetting factors ``lam`` (K,); a member not ``on`` (K,) bool must
    have zero rows and innovations and keeps its P unscaled."""
    PH = torch.bmm(P, H.transpose(1, 2))  # (K, n, m)
    A = torch.bmm(H, PH) + lam.to(P.dtype)[:, None, None] * torch.eye(H.shape[1], dtype=P.dtype)
    gain = torch.linalg.solve(A, PH.transpose(1, 2)).transpose(1, 2)  # P Hᵀ A⁻¹ (A symmetric)
    for k in range(P.shape[0]):  # P ← (P − K H P) / λ in one pass over P
        inv = 1.0 / float(lam[k]) if bool(on[k]) else 1.0
        P[k].addmm_(gain[k], PH[k].T, beta=inv, alpha=-inv)
    return torch.bmm(gain, xi.to(P.dtype)[:, :, None])[:, :, 0]


def kalman_epoch(net, params, P, lam, train, trains_member, cfg, args, rng) -> tuple[float, float]:
    """One pass over the training structures in random order, ``--per-update`` structures per
    filter update (their measurements stacked; with λ = 1 the same as one at a time up to the
    linearisation point); returns (seconds in the Jacobians, seconds in the updates). ``lam``
    (K,) is updated in place."""
    K = net.n_members
    sizes = [p[0].numel() for p in params]
    want_stress = cfg.weight_stress > 0 and bool(train.has_stress.any())
    t_jac = t_upd = 0.0
    order = rng.permutation(train.n_structures)
    for start in range(0, len(order), args.per_update):
        t0 = time.perf_counter()
        rows, xis, ons = [], [], []
        for s in order[start : start + args.per_update]:
            b = train.batch(np.array([s]))
            h, y = measurements(net, b, cfg, args.force_groups, rng, want_stress and bool(b.has_stress[0]))
            m = h.shape[1]
            H = torch.empty(K, m, sum(sizes), dtype=P.dtype)
            for j in range(m):
                grads = torch.autograd.grad(h[:, j].sum(), params, retain_graph=j < m - 1)
                H[:, j] = torch.cat([g.reshape(K, -1) for g in grads], 1)
            on = trains_member[:, s]  # members whose fold holds s out do not see it
            H[~on] = 0.0
            xi = (y - h).detach().to(P.dtype)
            xi[~on] = 0.0
            rows.append(H)
            xis.append(xi)
            ons.append(on)
        H, xi, on = torch.cat(rows, 1), torch.cat(xis, 1), torch.stack(ons).any(0)
        t1 = time.perf_counter()
        step = filter_update(P, H, xi, lam, on)
        with torch.no_grad():
            for p, d in zip(params, torch.split(step, sizes, 1)):
                p.add_(d.reshape(p.shape).to(p.dtype))
            lam.copy_(torch.where(on, args.nu * lam + 1 - args.nu, lam))
        t_upd += time.perf_counter() - t1
        t_jac += t1 - t0
    with torch.no_grad():  # keep P symmetric against rounding
        P.copy_(0.5 * (P + P.transpose(1, 2)))
    return t_jac, t_upd


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/tmp/mlearn", help="directory of train.extxyz and test.extxyz")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lbfgs-steps", type=int, default=200)
    p.add_argument("--force-groups", type=int, default=4, help="force measurements per structure")
    p.add_argument("--per-update", type=int, default=1, help="structures per filter update")
    p.add_argument("--p0", type=float, default=1.0, help="initial P = p0 I")
    p.add_argument("--lambda0", type=float, default=0.98, help="initial forgetting factor")
    p.add_argument("--nu", type=float, default=0.9987, help="λ ← ν λ + 1 − ν per update")
    p.add_argument("--p-dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    t_start = time.perf_counter()
    train_atoms = read_mlearn(os.path.join(args.data, "train.extxyz"), fix_shear=False)
    test_atoms = read_mlearn(os.path.join(args.data, "test.extxyz"), fix_shear=False)
    cfg = TrainConfig(seed=args.seed, lbfgs_steps=args.lbfgs_steps)
    acsf = ACSF.training_default()
    data = featurize(acsf, train_atoms, dtype=torch.float32).padded()
    S, K = data.n_structures, cfg.n_members

    # as alip.models.training._train draws them: the folds, then the initial weights (its own seed)
    rng = np.random.default_rng(cfg.seed)
    train_idx, val_idx, held_out = _validation_split(S, cfg, rng)
    trains_member = torch.ones(K, S, dtype=torch.bool)
    trains_member[:, torch.from_numpy(val_idx)] = torch.from_numpy(~held_out)
    net = _initial_network(acsf, cfg)
    _initialise_scaling(net, data, cfg)
    net = net.to(dtype=torch.float32)
    params = list(net.parameters())
    n_weights = sum(q[0].numel() for q in params)
    dtype = torch.float32 if args.p_dtype == "float32" else torch.float64
    P = args.p0 * torch.eye(n_weights, dtype=dtype).repeat(K, 1, 1)
    lam = torch.full((K,), args.lambda0, dtype=torch.float64)  # in float32 λ stalls at 0.99993

    val = data.batch(val_idx)
    ones = torch.ones(S, dtype=torch.float32)
    mask = torch.from_numpy(held_out).float()
    best = _evaluate(net, val, ones[val_idx], mask, cfg, FULL_PASS_CHUNK)
    best_params = [q.detach().clone() for q in params]
    since = torch.zeros(K, dtype=torch.int64)
    history = [{"epoch": 0, "val": best.tolist()}]
    print(f"epoch 0: fold loss {best.mean():.4e}, {n_weights} weights per member", flush=True)
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        t_jac, t_upd = kalman_epoch(net, params, P, lam, data, trains_member, cfg, args, rng)
        current = _evaluate(net, val, ones[val_idx], mask, cfg, FULL_PASS_CHUNK)
        since = _keep_best(params, best_params, current, best, since, torch.ones(K, dtype=torch.bool))
        history.append({"epoch": epoch, "val": current.tolist()})
        print(
            f"epoch {epoch}: fold loss {current.mean():.4e} (best {best.mean():.4e}), λ {float(lam.mean()):.5f}, "
            f"{time.perf_counter() - t0:.1f} s (Jacobians {t_jac:.1f}, updates {t_upd:.1f})",
            flush=True,
        )
    _restore(params, best_params)
    if args.lbfgs_steps > 0:
        boot = trains_member.float()
        _lbfgs(net, params, data, boot, cfg)
        current = _evaluate(net, val, ones[val_idx], mask, cfg, FULL_PASS_CHUNK)
        history.append({"epoch": "lbfgs", "val": current.tolist()})
        _keep_best(params, best_params, current, best, since, torch.ones(K, dtype=torch.bool))
        _restore(params, best_params)
        print(f"L-BFGS: fold loss {current.mean():.4e} (kept per member: {best.mean():.4e})", flush=True)
    wall = time.perf_counter() - t_start
    committee = Committee(acsf, net.to(dtype=torch.float64), {})
    res = TrainResult(committee, history, train_idx, val_idx, held_out, wall)
    out = {"args": vars(args), "wall_s": wall}
    out |= split_rmses(res, {"train": train_atoms, "val": [train_atoms[i] for i in val_idx], "test": test_atoms})
    detail = split_errors(lambda atoms: Calculator(committee), test_atoms, ground_energy(train_atoms))
    out["test"] |= {"phases": detail["phases"], "subsets": detail["subsets"]}
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
