"""Two parts of a training step, each compiled path against its PyTorch reference.

``--compare contraction`` (the default): the force contraction, the compiled one that reads
the set's padded Jacobian and strain rows in place, forces and virials in one pass
(``alip.core.jacobian.shared_padded_forces``, what CPU training runs) against the pure-PyTorch
one on gathered rows (``LabeledSet.gathered``, then ``padded_forces``: one small matrix product
per center, a scatter, and the virials by ``committee_virials``; what training ran before and
the GPU path runs).

``--compare networks``: the committee's networks, outputs, dE/dG and their backward on the
compiled core (``alip._core.mlp_forward`` / ``mlp_backward``, what CPU training runs) against
the PyTorch code of ``alip.models.input_gradient`` (what training ran before and the GPU path
runs); both with the compiled contraction.

Same process, same network, same batches, alternating: per round two Adam epochs (batches of
``--batch`` structures, as the defaults) and two full-batch passes with backward (L-BFGS's
evaluation, in training's chunks of ``FULL_PASS_CHUNK`` structures) per path. Prints the median
times and the median of the paired ratios (compiled or core / PyTorch), the first step's losses of both
paths (equal up to float32 summation order) and the extra memory of the gathered chunks, which
the compiled path does not need.

    python bench/accuracy.py --write-data /tmp/mlearn        # the mlearn Si training set
    python bench/training_step.py /tmp/mlearn/train.extxyz --rounds 6
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from ase.io import read

from alip import ACSF
from alip.models import input_gradient
from alip.models import training as T
from alip.models.networks import CommitteeNetwork
from alip.models.training_data import LabeledSet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("extxyz", help="labelled structures (energies, forces)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compare", choices=("contraction", "networks"), default="contraction")
    args = ap.parse_args()
    on_core = input_gradient._on_core
    networks = args.compare == "networks"
    first = "core" if networks else "compiled"

    def use(path: str) -> None:  # the networks' path; the contraction's is chosen per call below
        input_gradient._on_core = on_core if path != "pytorch" or not networks else (lambda *a: False)

    torch.set_num_threads(args.threads)
    frames = read(args.extxyz, ":")
    acsf, cfg = ACSF.training_default(), T.TrainConfig(n_members=args.members)
    data = T.featurize(acsf, frames, dtype=torch.float32).padded()
    S = data.n_structures
    net = CommitteeNetwork(acsf.n_features, acsf.species, args.members, cfg.hidden, cfg.activation, seed=0)
    T._initialise_scaling(net, data, cfg)
    net = net.float()
    params = list(net.parameters())
    opt = torch.optim.Adam(params, lr=1e-4, fused=True)
    weights = torch.ones(args.members, S)
    rng = np.random.default_rng(0)
    chunks = {first: data.chunks(T.FULL_PASS_CHUNK)}
    rss0 = _rss_mb()
    chunks["pytorch"] = (
        chunks[first] if networks else [(cols, sub.gathered()) for cols, sub in data.chunks(T.FULL_PASS_CHUNK)]
    )
    print(
        f"{len(frames)} structures, {len(data.values)} atoms; padded Jacobian {tuple(data.grad_padded.shape)} "
        f"({data.grad_padded.numel() * 4 / 1e6:.0f} MB); the gathered chunks add {_rss_mb() - rss0:.0f} MB RSS"
    )

    def step(batch: LabeledSet, idx: np.ndarray) -> torch.Tensor:
        loss, _ = T.member_losses(net, batch, weights[:, torch.from_numpy(idx)], cfg)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        return loss.detach()

    idx = np.arange(min(args.batch, S))
    state = [p.detach().clone() for p in params]
    one = data.batch(idx)
    use(first)
    a = step(one, idx)
    with torch.no_grad():
        for p, s in zip(params, state):
            p.copy_(s)
    use("pytorch")
    b = step(one if networks else one.gathered(), idx)
    print(f"first step's losses, {first} {a.numpy()} / pytorch {b.numpy()}")

    def epoch(path: str) -> float:
        use(path)
        t0 = time.perf_counter()
        for start in range(0, S, args.batch):
            sel = perm[start : start + args.batch]
            batch = data.batch(sel)
            step(batch if path != "pytorch" or networks else batch.gathered(), sel)
        return time.perf_counter() - t0

    def full(path: str) -> float:
        use(path)
        t0 = time.perf_counter()
        for p in params:
            p.grad = None
        for cols, sub in chunks[path]:
            loss, _ = T.member_losses(net, sub, weights[:, cols], cfg)
            loss.sum().backward()
        return time.perf_counter() - t0

    times: dict[tuple[str, str], list[float]] = {}
    for r in range(args.rounds + 1):  # round 0 warms up
        perm = rng.permutation(S)
        for path in (first, "pytorch") if r % 2 else ("pytorch", first):
            e = (epoch(path) + epoch(path)) / 2
            f = (full(path) + full(path)) / 2
            if r:
                times.setdefault(("Adam epoch", path), []).append(e)
                times.setdefault(("full pass", path), []).append(f)
    print(
        f"\n{args.rounds} alternating rounds, {args.threads} threads, K = {args.members}, batch {args.batch}, "
        f"load {os.getloadavg()[0]:.2f}\n"
    )
    label = "PyTorch networks" if networks else "PyTorch gathered"
    print(f"| pass | {first} (s) | {label} (s) | {first} / PyTorch (median of paired ratios) |")
    print("|---|---:|---:|---:|")
    for what in ("Adam epoch", "full pass"):
        c, p = np.array(times[(what, first)]), np.array(times[(what, "pytorch")])
        print(f"| {what} | {np.median(c):.3f} | {np.median(p):.3f} | {np.median(c / p):.3f} |")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


if __name__ == "__main__":
    main()
