"""Probe (issue 14, twelfth and twenty-second studies): do message passes lower the mlearn liquid's energy error?

    python bench/accuracy.py --write-data /tmp/mlearn          # the files with the shear stresses fixed
    python bench/neighbor_features_probe.py G                  # E = sum_i NN(Gs_i), the control
    python bench/neighbor_features_probe.py GH                 # E = sum_i NN([Gs_i, H_i])
    HNORM=1 NSHELL=1 python bench/neighbor_features_probe.py GH   # H as a weighted mean, first shell only
    python bench/neighbor_features_probe.py GM                 # E = sum_i NN([Gs_i, M_i]), a learned message
    python bench/neighbor_features_probe.py GMV                # ... and |V_i|^2, a learned vector message
    python bench/neighbor_features_probe.py GMV2               # two such passes (a receptive field of 10 Å)
    FD=1 python bench/neighbor_features_probe.py GH 1          # also check the forces by finite differences

Gs_i: the default descriptor (``ACSF.cross_windows_si``) standardised on the training set.
H_i = sum_j phi_m(r_ij) Gs_j over neighbors within 5 Å, phi_m a Gaussian on the first (2.4 Å)
and second (3.8 Å) neighbor shell times a cosine cutoff (``HNORM=1``: divided by sum_j phi_m,
a weighted mean), so H_i sees its neighbors' environments: a receptive field of 10.5 Å and a
higher body order. GM (twenty-second study) learns the message instead: M_i = sum_j
R(r_ij) * psi(Gs_j) / 25, R a linear map of 8 sine-Bessel functions times the cosine cutoff
to ``MSG`` (32) channels, psi a SiLU layer of the neighbor's descriptor to the same channels,
both trained with the network (a continuous-filter convolution on alip's descriptors, as
SchNet's on learned embeddings). GMV adds a vector message V_i = sum_j R'(r_ij) * psi(Gs_j) *
rhat_ij / 25 (its own radial map, the same psi) and feeds its squares per channel, |V_i|^2, an
invariant of the neighbors' environments and the angles between them (L = 1, as MACE's
messages). GMV2 runs two such passes, the second's neighbors sending [Gs_j, M_j, |V_j|^2]
(a receptive field of 10 Å, as MACE's two layers); the readout sees all passes' features.
Forces are exact: G = G0 + J u at u = 0 (J the core's sparse Jacobian, one
autograd Function whose backward is the padded contraction), r_ij(u) = |D_ij + u_j − u_i|,
F = −dE/du (double backward for training). K = 4 members in one stack, 32-32 SiLU, Adam 5e-3 →
2e-4 over the epochs in batches of 4, energy weight 1 and force weight 0.1, no stress, no
L-BFGS: compare the arms with each other, not with alip's defaults. Prints one JSON line:
the committee's energy RMSE (meV/atom) on train and test, crystal and liquid (more than 0.4
eV/atom above the training set's lowest energy), and the force RMSE (eV/Å). Arguments: arm,
epochs (200), seed (0); ``DATA`` the directory of train.extxyz and test.extxyz (/tmp/mlearn).
"""

import json
import os
import sys
import time

import numpy as np
import torch
from ase.io import read
from matscipy.neighbours import neighbour_list

from alip.core.descriptors import ACSF
from alip.core.jacobian import padded_forces, padded_gradients
from alip.models.training_data import featurize

torch.set_num_threads(int(os.environ.get("NT", "2")))
ARMS = ("G", "GH", "GM", "GMV", "GMV2")
if len(sys.argv) < 2 or sys.argv[1] not in ARMS or not all(a.isdigit() for a in sys.argv[2:4]) or len(sys.argv) > 4:
    sys.exit(f"usage: python bench/neighbor_features_probe.py {{{'|'.join(ARMS)}}} [EPOCHS] [SEED] (see the docstring)")
arm = sys.argv[1]
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 200
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
K = 4
RC2 = 5.0
SHELLS = [(2.4, 2.0), (3.8, 1.0)][: int(os.environ.get("NSHELL", "2"))]  # (rs, eta) of the pair weights
HNORM = bool(int(os.environ.get("HNORM", "0")))  # H as a weighted mean, not a sum
MSG = int(os.environ.get("MSG", "32"))  # channels of the learned message (arm GM)
NBESSEL = 8

DATA = os.environ.get("DATA", "/tmp/mlearn")
train_atoms = read(os.path.join(DATA, "train.extxyz"), ":")
test_atoms = read(os.path.join(DATA, "test.extxyz"), ":")
acsf = ACSF.cross_windows_si()


class Data:
    def __init__(self, frames):
        d = featurize(acsf, frames, dtype=torch.float32)
        self.G = d.values
        self.N = len(self.G)
        self.pad, self.tgt = padded_gradients(d.grad_values, d.grad_centers, d.grad_neighbors, self.N)
        self.off = d.offsets
        self.E = d.energies.double()
        self.F = d.forces
        self.nat = torch.as_tensor(np.diff(self.off), dtype=torch.float64)
        pi, pj, pD, poff = [], [], [], [0]
        for s, a in enumerate(frames):
            i, j, D = neighbour_list("ijD", a, RC2)
            pi.append(i + self.off[s])
            pj.append(j + self.off[s])
            pD.append(D)
            poff.append(poff[-1] + len(i))
        self.pi = torch.as_tensor(np.concatenate(pi))
        self.pj = torch.as_tensor(np.concatenate(pj))
        self.pD = torch.as_tensor(np.concatenate(pD), dtype=torch.float32)
        self.poff = np.array(poff)

    def batch(self, idx):
        o, po = self.off, self.poff
        atoms = np.concatenate([np.arange(o[s], o[s + 1]) for s in idx])
        pairs = np.concatenate([np.arange(po[s], po[s + 1]) for s in idx])
        g2l = torch.full((self.N + 1,), len(atoms), dtype=torch.int64)
        g2l[torch.as_tensor(atoms)] = torch.arange(len(atoms))
        at = torch.as_tensor(atoms)
        pr = torch.as_tensor(pairs)
        struct = torch.as_tensor(np.repeat(np.arange(len(idx)), np.diff(o)[idx]))
        return dict(
            G=self.G[at],
            pad=self.pad[at],
            tgt=g2l[self.tgt[at]],
            pi=g2l[self.pi[pr]],
            pj=g2l[self.pj[pr]],
            D=self.pD[pr],
            struct=struct,
            S=len(idx),
            E=self.E[torch.as_tensor(idx)],
            F=self.F[at],
            nat=self.nat[torch.as_tensor(idx)],
            n=len(atoms),
        )


class LinG(torch.autograd.Function):
    """G = G0 + J u at u = 0 (value G0, gradient J^T); the backward stays differentiable."""

    @staticmethod
    def forward(ctx, u, G0, pad, tgt):
        ctx.save_for_backward(pad, tgt)
        return G0.expand(u.shape[0], *G0.shape).clone()

    @staticmethod
    def backward(ctx, gG):
        pad, tgt = ctx.saved_tensors
        return -padded_forces(gG, pad, tgt), None, None, None


def pair_weights(r):
    fc = 0.5 * (torch.cos(torch.pi * r / RC2) + 1) * (r < RC2)
    return torch.stack([fc * torch.exp(-eta * (r - rs) ** 2) for rs, eta in SHELLS], -1)  # (K, P, M)


tr, te = Data(train_atoms), Data(test_atoms)
mu, sd = tr.G.mean(0), tr.G.std(0).clamp_min(1e-6)
e_ref = float((tr.E / tr.nat).mean())


def features(b, u):
    G = (LinG.apply(u, b["G"], b["pad"], b["tgt"]) - mu) / sd  # (K, n, F)
    if arm == "G":
        return G
    d = b["D"] + u[:, b["pj"]] - u[:, b["pi"]]  # (K, P, 3)
    r = d.norm(dim=-1)  # (K, P)
    if PASSES:
        return torch.cat([G, *learned_message(G, d, r, b)], -1)
    w = pair_weights(r)  # (K, P, M)
    msg = (w[..., :, None] * G[:, b["pj"], None, :]).flatten(-2)  # (K, P, M*F)
    H = G.new_zeros(K, b["n"], msg.shape[-1]).index_add(1, b["pi"], msg)
    if HNORM:
        wsum = G.new_zeros(K, b["n"], w.shape[-1]).index_add(1, b["pi"], w)  # (K, n, M)
        H = (H.view(K, b["n"], w.shape[-1], -1) / wsum.clamp_min(1e-3)[..., None]).flatten(-2)
    return torch.cat([G, (H - hmu) / hsd], -1)


# H scaling from the train set (no grad)
hmu, hsd = 0.0, 1.0
if arm == "GH":
    with torch.no_grad():
        hs = []
        for s0 in range(0, len(train_atoms), 16):
            b = tr.batch(np.arange(s0, min(s0 + 16, len(train_atoms))))
            f = features(b, torch.zeros(K, b["n"], 3))
            hs.append(f[0, :, tr.G.shape[1] :])
        hs = torch.cat(hs)
        hmu, hsd = hs.mean(0), hs.std(0).clamp_min(1e-6)

F0 = tr.G.shape[1]
PASSES = {"GM": 1, "GMV": 1, "GMV2": 2}.get(arm, 0)
VECTOR = arm in ("GMV", "GMV2")
PER_PASS = MSG * (2 if VECTOR else 1)  # features each pass adds
Fin = F0 * (1 + (len(SHELLS) if arm == "GH" else 0)) + PASSES * PER_PASS
gen = torch.Generator().manual_seed(seed)


def pass_parameters(f_in):
    """One message pass: radial maps (scalar; vector for GMV, GMV2) and the neighbor's SiLU layer psi."""
    radial = torch.nn.Parameter(torch.randn(K, NBESSEL, MSG, generator=gen) * (1 / NBESSEL) ** 0.5)
    psi_w = torch.nn.Parameter(torch.randn(K, f_in, MSG, generator=gen) * (1 / f_in) ** 0.5)
    psi_b = torch.nn.Parameter(torch.zeros(K, 1, MSG))
    if not VECTOR:
        return [radial, psi_w, psi_b]
    radial_vec = torch.nn.Parameter(torch.randn(K, NBESSEL, MSG, generator=gen) * (1 / NBESSEL) ** 0.5)
    return [radial, psi_w, psi_b, radial_vec]


passes = [pass_parameters(F0 + p * PER_PASS) for p in range(PASSES)]


def learned_message(G, d, r, b):
    """Per pass [M_i] (GM) or [M_i, |V_i|^2] (GMV, GMV2), each (K, n, MSG); a pass's neighbors
    send their descriptor and the earlier passes' features."""
    fc = 0.5 * (torch.cos(torch.pi * r / RC2) + 1) * (r < RC2)
    n = torch.arange(1, NBESSEL + 1, dtype=r.dtype)
    bessel = torch.sin(n * torch.pi * r[..., None] / RC2) / r[..., None] * fc[..., None]  # (K, P, NB)
    rhat = d / r[..., None] if VECTOR else None  # (K, P, 3)
    out = []
    for radial, psi_w, psi_b, *radial_vec in passes:
        x = torch.cat([G, *out], -1)
        psi = torch.nn.functional.silu(torch.baddbmm(psi_b, x, psi_w))[:, b["pj"]]  # (K, P, MSG)
        msg = torch.bmm(bessel, radial) * psi
        out.append(G.new_zeros(K, b["n"], MSG).index_add(1, b["pi"], msg) / 25.0)
        if VECTOR:
            vec = (torch.bmm(bessel, radial_vec[0]) * psi)[..., None] * rhat[:, :, None, :]  # (K, P, MSG, 3)
            V = G.new_zeros(K, b["n"], MSG, 3).index_add(1, b["pi"], vec) / 25.0
            out.append(10.0 * (V**2).sum(-1))
    return out


sizes = [Fin, 32, 32, 1]
Ws = [torch.nn.Parameter(torch.randn(K, a, b, generator=gen) * (1 / a) ** 0.5) for a, b in zip(sizes[:-1], sizes[1:])]
Bs = [torch.nn.Parameter(torch.zeros(K, 1, b)) for b in sizes[1:]]
params = Ws + Bs + [w for p in passes for w in p]


def energies_forces(b, graph):
    u = torch.zeros(K, b["n"], 3, requires_grad=True)
    x = features(b, u)
    for l, (W, B) in enumerate(zip(Ws, Bs)):
        x = torch.baddbmm(B, x, W)
        if l < len(Ws) - 1:
            x = torch.nn.functional.silu(x)
    e_atom = x.squeeze(-1)  # (K, n)
    E = e_atom.new_zeros(K, b["S"]).index_add(1, b["struct"], e_atom)
    (g,) = torch.autograd.grad(E.sum(), u, create_graph=graph)
    return E.double() + e_ref * b["nat"], -g


def loss_of(b):
    E, F = energies_forces(b, True)
    le = (((E - b["E"]) / b["nat"]) ** 2).mean(1)
    lf = ((F - b["F"]) ** 2).mean((1, 2))
    return (le + 0.1 * lf).sum()


opt = torch.optim.Adam(params, lr=5e-3)
gamma = (2e-4 / 5e-3) ** (1 / max(epochs - 1, 1))
sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
rng = np.random.default_rng(seed)
t0 = time.time()
for ep in range(epochs):
    perm = rng.permutation(len(train_atoms))
    for s0 in range(0, len(train_atoms), 4):
        b = tr.batch(perm[s0 : s0 + 4])
        opt.zero_grad()
        loss_of(b).backward()
        opt.step()
    sched.step()
    if ep % 25 == 0:
        print(ep, f"{time.time() - t0:.0f}s", flush=True)


def evaluate(data, frames):
    e_err, f_err = [], []
    for s in range(len(frames)):
        b = data.batch(np.array([s]))
        E, F = energies_forces(b, False)
        e_err.append(float((E.detach().mean(0) - b["E"])[0] / b["nat"][0]))
        f_err.append((F.detach().mean(0) - b["F"]).numpy().ravel())
    return np.array(e_err), np.concatenate(f_err)


tr_e, tr_f = evaluate(tr, train_atoms)
te_e, te_f = evaluate(te, test_atoms)
e0 = float(min((tr.E / tr.nat).tolist()))
liq_tr = (tr.E / tr.nat).numpy() - e0 > 0.4
liq_te = (te.E / te.nat).numpy() - e0 > 0.4
rms = lambda x: 1e3 * float(np.sqrt(np.mean(np.square(x))))  # noqa: E731
out = dict(
    msg=MSG if PASSES else 0,
    nshell=len(SHELLS),
    hnorm=HNORM,
    arm=arm,
    epochs=epochs,
    seed=seed,
    wall=time.time() - t0,
    train=rms(tr_e),
    train_crystal=rms(tr_e[~liq_tr]),
    train_liquid=rms(tr_e[liq_tr]),
    train_f=rms(tr_f) / 1e3,
    test=rms(te_e),
    test_crystal=rms(te_e[~liq_te]),
    test_liquid=rms(te_e[liq_te]),
    test_f=rms(te_f) / 1e3,
)
print(json.dumps(out))

if os.environ.get("FD"):
    a = test_atoms[0]
    b = te.batch(np.array([0]))
    _, F = energies_forces(b, False)
    for atom, comp in [(3, 0), (10, 2), (40, 1)]:
        Es = []
        for h in (0.01, -0.01):
            c = a.copy()
            c.positions[atom, comp] += h
            from ase.calculators.singlepoint import SinglePointCalculator

            c.calc = SinglePointCalculator(c, energy=0.0, forces=np.zeros((len(c), 3)))
            d = Data([c])
            bb = d.batch(np.array([0]))
            E, _ = energies_forces(bb, False)
            Es.append(E[:, 0].detach())
        print("FD", atom, comp, (-(Es[0] - Es[1]) / 0.02).numpy(), F[:, atom, comp].detach().numpy())
