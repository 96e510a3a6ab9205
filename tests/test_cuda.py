"""The CUDA path (issue 8): build flag, stub, dispatch, CPU emulation of the kernels,
nvcc compilation, and GPU parity.

- Everywhere: ``alip.build_info()["cuda"]`` agrees with the build; a build without CUDA
  raises "alip was built without CUDA" from every GPU entry point; CPU tensors go to the
  CPU core (equal to ``ACSF.compute`` / ``forces_and_virial``); the autograd wrappers of
  ``alip.core.device`` are exact on the CPU path (gradcheck, adjoint identities).
- Everywhere with a C++ compiler: ``cuda/host_emulation.cpp`` runs the kernels' own
  functions (``cuda/acsf_math.cuh``, ``cuda/nl_logic.cuh``) lane by lane on the CPU; its
  neighbor list, values, forces, virials and JVP equal the CPU core to 1e-10 (float64)
  on every structure of conftest (triclinic, cutoff larger than the cell, 1-3 species,
  partial periodicity) and on batches.
- With nvcc on PATH: the CUDA sources compile (one architecture here; both sm_80 and
  sm_90 in .ci/cuda_compile_check.sh).
- With a CUDA build and a GPU (the only skips): GPU == CPU to 1e-10 in float64, and
  within FLOAT32_RTOL (relative to the largest magnitude of the compared array) in float32,
  also for what the emulation cannot reach: batches without pairs and one-atom
  structures, seven species, accumulator tables beyond 48 KB of shared memory and beyond
  the device's limit, cutoffs equal to pair distances (rounding of d²), side streams
  (ordering after producers, four threads sharing one list), objects dropped while their
  kernels are queued, bitwise repeatability, host pointers refused.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from conftest import STRUCTURES, make_acsf

import alip
from alip.core import device as dev

ROOT = Path(__file__).resolve().parents[1]
CUDA_DIR = ROOT / "cuda"
TOL = 1e-10          # float64: |a - b| <= TOL * (1 + |b|) elementwise
FLOAT32_RTOL = 2e-5  # float32: max |a - b| <= FLOAT32_RTOL * max |b| per array

requires_gpu = pytest.mark.skipif(not dev.cuda_available(),
                                  reason="needs a CUDA build of alip (ALIP_CUDA=ON) and an NVIDIA GPU")


def close(a, b, tol=TOL):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    err = np.abs(a - b) / (1.0 + np.abs(b))
    assert err.size == 0 or err.max() <= tol, f"max relative error {err.max():.3g} > {tol:g}"


def close32(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    scale = max(np.abs(b).max(initial=0.0), 1e-30)
    assert np.abs(a - b).max(initial=0.0) <= FLOAT32_RTOL * scale


def case_list():
    """(name, list of Atoms, acsf): every conftest structure, plus batches."""
    cases = []
    for name, (factory, species, cutoff) in sorted(STRUCTURES.items()):
        cases.append((name, [factory()], make_acsf(species, cutoff)))
    si = [n for n, (_, sp, _) in sorted(STRUCTURES.items()) if sp == ["Si"]]
    cases.append(("batch_si_mixed_pbc", [STRUCTURES[n][0]() for n in si], make_acsf(["Si"], 5.0)))
    big = bulk("Si", "diamond", a=5.431, cubic=True).repeat(3)
    big.set_cell(big.cell[:] @ np.array([[1.0, 0.0, 0.0], [0.2, 1.0, 0.0], [-0.1, 0.15, 1.0]]), scale_atoms=True)
    big.rattle(0.07, seed=7)
    cases.append(("si216_triclinic_binned", [big], make_acsf(["Si"], 5.0, cutoff_function="polynomial")))
    multi = [STRUCTURES[n][0]() for n in ("sio_triclinic", "sioh_molecule")]
    cases.append(("batch_three_species", multi, make_acsf(["H", "O", "Si"], 4.5)))
    return cases


CASES = case_list()
CASE_IDS = [c[0] for c in CASES]


def reference(acsf, atoms_list, w, u, U):
    """CPU core: values, fused forces/virials, and the JVP from the sparse gradients."""
    values = acsf.compute(atoms_list)
    F, W = acsf.forces_and_virial(atoms_list, w)
    d = acsf.compute(atoms_list, gradients=True)
    jvp = np.zeros_like(values)
    np.add.at(jvp, d.grad_centers, np.einsum("raf,ra->rf", d.grad_values, u[d.grad_neighbors]))
    jvp += np.einsum("iabf,iab->if", d.strain_grad, U[d.structure_index])
    return values, F, W.reshape(len(atoms_list), 3, 3), jvp


def random_inputs(acsf, atoms_list, seed=0):
    rng = np.random.default_rng(seed)
    n = sum(len(a) for a in atoms_list)
    return (rng.normal(size=(n, acsf.n_features)), rng.normal(size=(n, 3)),
            rng.normal(size=(len(atoms_list), 3, 3)))


def sorted_pairs(i, j, S, D, d):
    i, j, S = (np.asarray(x, dtype=np.int64) for x in (i, j, S))
    order = np.lexsort((S[:, 2], S[:, 1], S[:, 0], j, i))
    return i[order], j[order], S[order], np.asarray(D)[order], np.asarray(d)[order]


def many_species_box(seed=3, n=40, symbols=("H", "C", "N", "O", "Si", "Ge"), pbc=True):
    """Random atoms of six species in a triclinic box (no two closer than 1.2 Å, minimum
    image); periodic or an open cluster."""
    rng = np.random.default_rng(seed)
    cell = np.array([[7.5, 0.0, 0.0], [0.6, 7.2, 0.0], [-0.4, 0.5, 7.8]])
    frac = []
    while len(frac) < n:
        f = rng.random(3)
        if frac:
            df = np.asarray(frac) - f
            df -= np.round(df)
            if np.linalg.norm(df @ cell, axis=1).min() < 1.2:
                continue
        frac.append(f)
    atoms = Atoms([symbols[k % len(symbols)] for k in range(n)], cell=cell, pbc=True, scaled_positions=frac)
    if not pbc:
        atoms.pbc = False
    return atoms


def large_spec_params():
    """200 radial and 2 x 450 angular functions: one warp's accumulator table needs more
    than 48 KB of shared memory (double: 200 x 33 x 8 = 52.8 KB; 900 x 33 x 8 = 237.6 KB,
    more than any GPU's shared memory per block)."""
    etas = np.geomspace(0.001, 0.1, 75)
    ang = [(float(e), z, lam) for e in etas for z in (1.0, 2.0, 4.0) for lam in (1.0, -1.0)]
    g2 = [(float(e), float(r)) for e, r in zip(np.geomspace(0.05, 4.0, 200), np.linspace(0.0, 4.5, 200))]
    return g2, ang


def ase_pool(n, seed=0):
    """Small Si cells of several kinds (primitive and cubic diamond, strained; open
    clusters; slabs), from ASE alone."""
    rng = np.random.default_rng(seed)
    pool = []
    for k in range(n):
        if k % 4 == 0:
            a = bulk("Si", "diamond", a=5.431 * rng.uniform(0.97, 1.03))
        else:
            a = bulk("Si", "diamond", a=5.431, cubic=True)
        a.set_cell(a.cell[:] @ (np.eye(3) + rng.normal(scale=0.02, size=(3, 3))), scale_atoms=True)
        a.rattle(0.05, seed=int(rng.integers(1 << 30)))
        if k % 4 == 2:
            a.pbc = False
        elif k % 4 == 3:
            a.pbc = [True, True, False]
        pool.append(a)
    return pool


# =========================================================================== build flag, stub
def test_build_info_reports_cuda_consistently():
    info = alip.build_info()
    assert info["cuda"] == dev.cuda_compiled() == alip._core.cuda.compiled()
    if not info["cuda"]:
        assert alip._core.cuda.describe() == "built without CUDA"
        assert alip._core.cuda.device_count() == 0
        assert not dev.cuda_available()


@pytest.mark.skipif(dev.cuda_available(), reason="a GPU is available: the GPU tests below cover it")
def test_gpu_entry_points_fail_cleanly_without_gpu():
    """Without CUDA in the build: the stub's "alip was built without CUDA" from every entry
    point. With CUDA but no GPU or driver: a RuntimeError naming that, never a crash."""
    core = alip._core
    acsf = make_acsf(["Si"], 5.0)
    si = bulk("Si", "diamond", a=5.431)
    via_device = [
        lambda: dev.compute(acsf, si, device="cuda"),
        lambda: dev.forces_and_virial(acsf, si, np.zeros((2, acsf.n_features)), device="cuda"),
        lambda: dev.jvp(acsf, si, displacement=torch.zeros(2, 3), device="cuda"),
    ]
    if not dev.cuda_compiled():
        direct = [lambda: core.cuda.build_neighbor_list(0, 0, 0, 0, 0, 1, 1, 5.0, 1, 0),
                  lambda: core.cuda.AcsfKernels(acsf._core, 0)]
        for call in direct + via_device:
            with pytest.raises(RuntimeError, match="alip was built without CUDA"):
                call()
        return
    with pytest.raises(RuntimeError, match="NVIDIA|CUDA device"):
        core.cuda.AcsfKernels(acsf._core, 0)
    with pytest.raises((RuntimeError, ValueError), match="NVIDIA|CUDA device|GPU memory"):
        core.cuda.build_neighbor_list(12345678, 0, 0, 0, 0, 1, 1, 5.0, 1, 0)
    for call in via_device:
        with pytest.raises(RuntimeError, match="no CUDA device|sees no GPU"):
            call()


# =========================================================================== dispatch (CPU)
def test_select_device():
    assert dev.select_device(torch.zeros(3)).type == "cpu"
    assert dev.select_device(np.zeros(3), None).type == "cpu"
    assert dev.select_device(torch.zeros(3), device="cpu").type == "cpu"
    with pytest.raises(ValueError, match="device must be"):
        dev.select_device(device="meta")


@pytest.mark.parametrize("name,atoms_list,acsf", CASES[:4] + CASES[-3:], ids=CASE_IDS[:4] + CASE_IDS[-3:])
def test_cpu_tensors_go_to_cpu_core(name, atoms_list, acsf):
    batch = dev.TorchBatch.from_atoms(atoms_list, acsf)
    G = dev.compute(acsf, batch)
    assert G.device.type == "cpu" and G.dtype == torch.float64
    assert np.array_equal(G.numpy(), acsf.compute(atoms_list))
    w, u, U = random_inputs(acsf, atoms_list)
    F, W = dev.forces_and_virial(acsf, batch, torch.from_numpy(w))
    F_ref, W_ref = acsf.forces_and_virial(atoms_list, w)
    # not bit-equal: with OpenMP, atoms of large cells are summed in a run-dependent order
    close(F.numpy(), F_ref, 1e-12)
    close(W.numpy(), W_ref.reshape(len(atoms_list), 3, 3), 1e-12)
    J = dev.jvp(acsf, batch, torch.from_numpy(u), torch.from_numpy(U))
    close(J.numpy(), reference(acsf, atoms_list, w, u, U)[3])
    # ASE input dispatches the same way
    assert np.array_equal(dev.compute(acsf, atoms_list).numpy(), acsf.compute(atoms_list))
    assert dev.compute(acsf, batch, dtype=torch.float32).dtype == torch.float32


def test_prepared_batch_reuses_one_list_cpu():
    _, atoms_list, acsf = CASES[CASE_IDS.index("batch_three_species")]
    w, u, U = (torch.from_numpy(x) for x in random_inputs(acsf, atoms_list, seed=8))
    p = dev.prepare(acsf, atoms_list)
    assert not p.on_gpu and p.device.type == "cpu"
    assert np.array_equal(p.values().numpy(), acsf.compute(atoms_list))
    F, W = p.forces_and_virial(w)
    F1, W1 = dev.forces_and_virial(acsf, atoms_list, w)
    close(F.numpy(), F1.numpy(), 1e-12)
    close(W.numpy(), W1.numpy(), 1e-12)
    close(p.jvp(u, U).numpy(), dev.jvp(acsf, atoms_list, u, U).numpy(), 1e-12)
    Fk, Wk = p.forces_and_virial(torch.stack([w, 2 * w]))  # committee members
    close(Fk[1].numpy(), 2 * F.numpy(), 1e-12)


def test_forces_adjoint_of_jvp_cpu():
    """<J u + J_eps U, w> = <u, -F(w)> + <U, -W(w)>: fused VJP and JVP are adjoint."""
    factory, species, cutoff = STRUCTURES["sio_triclinic"]
    atoms_list = [factory(), STRUCTURES["sioh_molecule"][0]()]
    acsf = make_acsf(species, cutoff)
    batch = dev.TorchBatch.from_atoms(atoms_list, acsf)
    w, u, U = (torch.from_numpy(x) for x in random_inputs(acsf, atoms_list, seed=3))
    F, W = dev.forces_and_virial(acsf, batch, w)
    J = dev.jvp(acsf, batch, u, U)
    lhs = float((J * w).sum())
    rhs = float(-(u * F).sum() - (U * W).sum())
    assert abs(lhs - rhs) <= 1e-10 * (abs(lhs) + 1)


def test_forces_differentiable_in_dE_dG_cpu():
    """Training on forces: gradcheck/gradgradcheck of (F, W) in dE/dG (committee dims too)."""
    factory, species, cutoff = STRUCTURES["sic_zincblende"]
    atoms = factory()
    acsf = make_acsf(species, cutoff, g2=[(0.5, 1.0)], g4=[(0.01, 2.0, -1.0)], g5=[(0.02, 1.0, 1.0)])
    batch = dev.TorchBatch.from_atoms(atoms, acsf)
    w = torch.randn(2, len(atoms), acsf.n_features, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda x: dev.forces_and_virial(acsf, batch, x), (w,))
    torch.autograd.gradgradcheck(lambda x: dev.forces_and_virial(acsf, batch, x), (w,))
    u = torch.randn(len(atoms), 3, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda x: dev.jvp(acsf, batch, displacement=x), (u,))


def test_acsf_values_autograd_cpu():
    """First derivatives in positions and cells (gradcheck), and force training through
    autograd.grad(E, positions, create_graph=True) reaching the weights."""
    factory, species, cutoff = STRUCTURES["si_triclinic"]
    atoms = factory()
    acsf = make_acsf(species, cutoff)
    batch = dev.TorchBatch.from_atoms(atoms, acsf)
    pos = batch.positions.clone().requires_grad_(True)
    cell = batch.cells.clone().requires_grad_(True)
    torch.autograd.gradcheck(lambda p, c: dev.acsf_values(acsf, p, batch, cells=c), (pos, cell), atol=1e-7)

    theta = torch.randn(acsf.n_features, dtype=torch.float64, requires_grad=True)
    G = dev.acsf_values(acsf, pos, batch)
    E = (torch.tanh(G) @ theta).sum()
    (F,) = torch.autograd.grad(-E, pos, create_graph=True)
    loss = (F ** 2).sum()
    (g_theta,) = torch.autograd.grad(loss, theta)
    # reference: F = -J^T dE/dG with dE/dG = (1 - tanh^2) theta, exact in theta
    Gd = torch.from_numpy(acsf.compute(atoms))

    def loss_of(th):
        wt = (1 - torch.tanh(Gd) ** 2) * th
        Fr, _ = dev.forces_and_virial(acsf, batch, wt)
        return (Fr ** 2).sum()

    (g_ref,) = torch.autograd.grad(loss_of(theta), theta)
    close(g_theta.detach().numpy(), g_ref.numpy())
    close(F.detach().numpy(), acsf.forces_and_virial(atoms, ((1 - np.tanh(Gd.numpy()) ** 2)
                                                             * theta.detach().numpy()))[0])


# =========================================================================== CPU emulation
def _compiler():
    for cxx in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if cxx and shutil.which(cxx):
            return shutil.which(cxx)
    return None


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    cxx = _compiler()
    if cxx is None:
        pytest.skip("no C++ compiler to build cuda/host_emulation.cpp")
    exe = tmp_path_factory.mktemp("emu") / "host_emulation"
    subprocess.run([cxx, "-std=c++17", "-O2", f"-I{CUDA_DIR}", f"-I{ROOT / 'cpp'}",
                    str(CUDA_DIR / "host_emulation.cpp"), "-o", str(exe)], check=True, capture_output=True)
    return exe


def run_emulator(exe, tmp_path, acsf, atoms_list, w=None, u=None, U=None, float32=False):
    b = dev.TorchBatch.from_atoms(atoms_list, acsf)
    N, S, ns, F = b.n_atoms, b.n_structures, len(acsf.species), acsf.n_features
    header = np.array([N, S, ns, len(acsf.g2), len(acsf.g4), len(acsf.g5), acsf.cutoff_function == "polynomial",
                       float32, w is not None, u is not None, U is not None], dtype=np.int64)
    src, out = tmp_path / "in.bin", tmp_path / "out.bin"
    with open(src, "wb") as f:
        for arr in (header, np.array([acsf.cutoff]), b.positions.numpy(), b.species.numpy().astype(np.int32),
                    b.offsets.numpy(), b.cells.numpy(), b.pbc.numpy().astype(np.uint8), acsf.g2, acsf.g4, acsf.g5):
            f.write(np.ascontiguousarray(arr).tobytes())
        for arr in (w, u, U):
            if arr is not None:
                f.write(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    subprocess.run([str(exe), str(src), str(out)], check=True, capture_output=True)
    raw = out.read_bytes()
    n = int(np.frombuffer(raw[:8], dtype=np.int64)[0])
    pos = 8
    res = {}
    for key, dt, count, shape in (("i", np.int64, n, (n,)), ("j", np.int64, n, (n,)), ("S", np.int64, 3 * n, (n, 3)),
                                  ("D", np.float64, 3 * n, (n, 3)), ("d", np.float64, n, (n,)),
                                  ("values", np.float64, N * F, (N, F))):
        res[key] = np.frombuffer(raw[pos:pos + 8 * count], dtype=dt).reshape(shape)
        pos += 8 * count
    if w is not None:
        res["forces"] = np.frombuffer(raw[pos:pos + 8 * 3 * N]).reshape(N, 3)
        pos += 8 * 3 * N
        res["virials"] = np.frombuffer(raw[pos:pos + 8 * 9 * S]).reshape(S, 3, 3)
        pos += 8 * 9 * S
    if u is not None or U is not None:
        res["jvp"] = np.frombuffer(raw[pos:pos + 8 * N * F]).reshape(N, F)
        pos += 8 * N * F
    assert pos == len(raw)
    return res


@pytest.mark.parametrize("name,atoms_list,acsf", CASES, ids=CASE_IDS)
def test_emulated_kernels_equal_cpu(emulator, tmp_path, name, atoms_list, acsf):
    w, u, U = random_inputs(acsf, atoms_list, seed=1)
    r = run_emulator(emulator, tmp_path, acsf, atoms_list, w, u, U)
    # neighbor list: the same pairs (i, j, shift), vectors and distances
    b = dev.TorchBatch.from_atoms(atoms_list, acsf)
    ref = sorted_pairs(*(x.numpy() for x in dev.neighbor_list(acsf, b)))
    got = sorted_pairs(r["i"], r["j"], r["S"], r["D"], r["d"])
    for x, y in zip(got[:3], ref[:3]):
        assert np.array_equal(x, y)
    close(got[3], ref[3])
    close(got[4], ref[4])
    # grouped by center, then by neighbor species
    assert np.all(np.diff(r["i"]) >= 0)
    species = b.species.numpy()
    for c in np.unique(r["i"]):
        assert np.all(np.diff(species[r["j"][r["i"] == c]]) >= 0)
    values, F, W, jvp = reference(acsf, atoms_list, w, u, U)
    close(r["values"], values)
    close(r["forces"], F)
    close(r["virials"], W)
    close(r["jvp"], jvp)


@pytest.mark.parametrize("name", ["si_small_cell", "sio_triclinic", "si216_triclinic_binned"])
def test_emulated_kernels_float32(emulator, tmp_path, name):
    _, atoms_list, acsf = CASES[CASE_IDS.index(name)]
    w, u, U = random_inputs(acsf, atoms_list, seed=2)
    r = run_emulator(emulator, tmp_path, acsf, atoms_list, w, u, U, float32=True)
    values, F, W, jvp = reference(acsf, atoms_list, w, u, U)
    close32(r["values"], values)
    close32(r["forces"], F)
    close32(r["virials"], W)
    close32(r["jvp"], jvp)


def test_emulated_jvp_strain_only_and_displacement_only(emulator, tmp_path):
    _, atoms_list, acsf = CASES[CASE_IDS.index("batch_three_species")]
    w, u, U = random_inputs(acsf, atoms_list, seed=4)
    ref = reference(acsf, atoms_list, w, u, np.zeros_like(U))[3]
    close(run_emulator(emulator, tmp_path, acsf, atoms_list, u=u)["jvp"], ref)
    ref = reference(acsf, atoms_list, w, np.zeros_like(u), U)[3]
    close(run_emulator(emulator, tmp_path, acsf, atoms_list, U=U)["jvp"], ref)


@pytest.mark.parametrize("kind", ["many_species", "large_feature_count"])
def test_emulated_many_species_and_large_feature_counts(emulator, tmp_path, kind):
    """Seven species (one absent: empty species blocks) in a periodic box and a cluster;
    a spec with 200 radial and 900 angular functions per species pair."""
    if kind == "many_species":
        atoms_list = [many_species_box(), many_species_box(seed=5, n=24, pbc=False)]
        acsf = make_acsf(["H", "C", "N", "O", "Si", "Ge", "Sn"], 4.0)
    else:
        g2, ang = large_spec_params()
        atoms_list = [STRUCTURES["si_rattled"][0]()]
        acsf = make_acsf(["Si"], 5.0, g2=g2, g4=ang, g5=ang)
    w, u, U = random_inputs(acsf, atoms_list, seed=13)
    r = run_emulator(emulator, tmp_path, acsf, atoms_list, w, u, U)
    values, F, W, jvp = reference(acsf, atoms_list, w, u, U)
    close(r["values"], values)
    close(r["forces"], F)
    close(r["virials"], W)
    close(r["jvp"], jvp)


# =========================================================================== nvcc compiles
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
def test_cuda_sources_compile_with_nvcc(tmp_path):
    """Compile (not link) every cuda/*.cu for sm_90 in parallel (both sm_80 and sm_90, and
    the link of the module, are in .ci/cuda_compile_check.sh)."""
    procs = []
    for src in sorted(CUDA_DIR.glob("*.cu")):
        cmd = ["nvcc", "-std=c++17", "-O3", f"-I{CUDA_DIR}", f"-I{ROOT / 'cpp'}",
               "-gencode", "arch=compute_90,code=sm_90", "-Xcompiler", "-Wall", "-c", str(src),
               "-o", str(tmp_path / (src.stem + ".o"))]
        procs.append((src.name, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    for name, p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, f"{name} failed to compile:\n{out}"
        assert "warning" not in out.lower(), f"{name} compiles with warnings:\n{out}"


# =========================================================================== GPU parity
@pytest.fixture(scope="module")
def gpu():
    return torch.device("cuda", torch.cuda.current_device())


@requires_gpu
@pytest.mark.parametrize("name,atoms_list,acsf", CASES, ids=CASE_IDS)
def test_gpu_equals_cpu_float64(gpu, name, atoms_list, acsf):
    w, u, U = random_inputs(acsf, atoms_list, seed=5)
    values, F, W, jvp = reference(acsf, atoms_list, w, u, U)
    batch = dev.TorchBatch.from_atoms(atoms_list, acsf, device=gpu)
    G = dev.compute(acsf, batch)
    assert G.is_cuda and G.dtype == torch.float64
    close(G.cpu().numpy(), values)
    Fg, Wg = dev.forces_and_virial(acsf, batch, torch.from_numpy(w).to(gpu))
    close(Fg.cpu().numpy(), F)
    close(Wg.cpu().numpy(), W)
    Jg = dev.jvp(acsf, batch, torch.from_numpy(u).to(gpu), torch.from_numpy(U).to(gpu))
    close(Jg.cpu().numpy(), jvp)
    ref = sorted_pairs(*(x.numpy() for x in dev.neighbor_list(acsf, batch.to("cpu"))))
    got = sorted_pairs(*(x.cpu().numpy() for x in dev.neighbor_list(acsf, batch)))
    for x, y in zip(got[:3], ref[:3]):
        assert np.array_equal(x, y)
    close(got[3], ref[3])


@requires_gpu
@pytest.mark.parametrize("name", ["si_small_cell", "sio_triclinic", "si216_triclinic_binned"])
def test_gpu_equals_cpu_float32(gpu, name):
    _, atoms_list, acsf = CASES[CASE_IDS.index(name)]
    w, u, U = random_inputs(acsf, atoms_list, seed=6)
    values, F, W, jvp = reference(acsf, atoms_list, w, u, U)
    batch = dev.TorchBatch.from_atoms(atoms_list, acsf, device=gpu)
    close32(dev.compute(acsf, batch, dtype=torch.float32).cpu().numpy(), values)
    Fg, Wg = dev.forces_and_virial(acsf, batch, torch.from_numpy(w).float().to(gpu))
    assert Fg.dtype == torch.float32
    close32(Fg.cpu().numpy(), F)
    close32(Wg.cpu().numpy(), W)
    Jg = dev.jvp(acsf, batch, torch.from_numpy(u).float().to(gpu), torch.from_numpy(U).float().to(gpu))
    close32(Jg.cpu().numpy(), jvp)


@requires_gpu
def test_gpu_autograd_matches_cpu(gpu):
    """Force training on the GPU: gradients of a force loss in the weights equal the CPU
    path's; acsf_values' position gradient equals the CPU one; gradgradcheck in dE/dG."""
    _, atoms_list, acsf = CASES[CASE_IDS.index("batch_three_species")]
    results = []
    for d in ("cpu", gpu):
        torch.manual_seed(0)
        batch = dev.TorchBatch.from_atoms(atoms_list, acsf, device=d)
        pos = batch.positions.clone().requires_grad_(True)
        theta = torch.randn(acsf.n_features, dtype=torch.float64, device=d, requires_grad=True)
        G = dev.acsf_values(acsf, pos, batch)
        E = (torch.tanh(G) @ theta).sum()
        (F,) = torch.autograd.grad(-E, pos, create_graph=True)
        (g,) = torch.autograd.grad((F ** 2).sum(), theta)
        results.append((F.detach().cpu().numpy(), g.cpu().numpy()))
    close(results[1][0], results[0][0])
    close(results[1][1], results[0][1])
    batch = dev.TorchBatch.from_atoms(atoms_list, acsf, device=gpu)
    w = torch.randn(batch.n_atoms, acsf.n_features, dtype=torch.float64, device=gpu, requires_grad=True)
    torch.autograd.gradgradcheck(lambda x: dev.forces_and_virial(acsf, batch, x), (w,))


@requires_gpu
def test_gpu_prepared_batch(gpu):
    _, atoms_list, acsf = CASES[CASE_IDS.index("batch_three_species")]
    w, u, U = random_inputs(acsf, atoms_list, seed=9)
    values, F, W, jvp = reference(acsf, atoms_list, w, u, U)
    p = dev.prepare(acsf, dev.TorchBatch.from_atoms(atoms_list, acsf, device=gpu))
    assert p.on_gpu
    for _ in range(2):  # the list is reused
        close(p.values().cpu().numpy(), values)
        Fg, Wg = p.forces_and_virial(torch.from_numpy(w).to(gpu))
        close(Fg.cpu().numpy(), F)
        close(Wg.cpu().numpy(), W)
        close(p.jvp(torch.from_numpy(u).to(gpu), torch.from_numpy(U).to(gpu)).cpu().numpy(), jvp)


@requires_gpu
def test_gpu_bad_input_raises(gpu):
    acsf = make_acsf(["Si"], 5.0)
    good = bulk("Si", "diamond", a=5.431, cubic=True)
    nan = good.copy()
    nan.positions[3, 1] = np.nan
    overlap = good.copy()
    overlap.positions[1] = overlap.positions[0]
    flat = good.copy()
    flat.set_cell([[5.4, 0, 0], [0, 5.4, 0], [0, 0, 0]])
    for atoms, pattern in ((nan, "not finite"), (overlap, "overlap"), (flat, "zero")):
        for structures in ([atoms], [good, atoms]):
            with pytest.raises(ValueError, match=pattern):
                dev.compute(acsf, dev.TorchBatch.from_atoms(structures, acsf, device=gpu))
    batch = dev.TorchBatch.from_atoms(good, acsf, device=gpu)
    batch.species[2] = 5
    with pytest.raises(ValueError, match="out of range"):
        dev.compute(acsf, batch)
    # the device still works after errors
    close(dev.compute(acsf, dev.TorchBatch.from_atoms(good, acsf, device=gpu)).cpu().numpy(), acsf.compute(good))


@requires_gpu
def test_gpu_large_pool_and_streams(gpu):
    """A pool of 300 small cells (periodic, open, slabs) and one 4096-atom cell in one call;
    a side stream. ASE alone builds them (no matscipy on the GPU machine)."""
    pool = ase_pool(300, seed=0)
    acsf = alip.ACSF.default_si()
    batch = dev.TorchBatch.from_atoms(pool, acsf, device=gpu)
    close(dev.compute(acsf, batch).cpu().numpy(), acsf.compute(pool))
    w = np.random.default_rng(0).normal(size=(batch.n_atoms, acsf.n_features))
    F, W = dev.forces_and_virial(acsf, batch, torch.from_numpy(w).to(gpu))
    F_ref, W_ref = acsf.forces_and_virial(pool, w)
    close(F.cpu().numpy(), F_ref)
    close(W.cpu().numpy(), W_ref.reshape(len(pool), 3, 3))
    big = bulk("Si", "diamond", a=5.431, cubic=True).repeat(8)
    big.rattle(0.05, seed=1)
    s = torch.cuda.Stream(gpu)
    with torch.cuda.stream(s):
        G = dev.compute(acsf, dev.TorchBatch.from_atoms(big, acsf, device=gpu))
    s.synchronize()
    close(G.cpu().numpy(), acsf.compute(big))


def _gpu_equals_cpu(gpu, acsf, atoms_list, seed=11, dtype=torch.float64):
    """values, forces, virials, JVP and the pairs of one prepared batch vs the CPU core."""
    w, u, U = random_inputs(acsf, atoms_list, seed=seed)
    values, F, W, jvp = reference(acsf, atoms_list, w, u, U)
    batch = dev.TorchBatch.from_atoms(atoms_list, acsf, device=gpu)
    p = dev.prepare(acsf, batch)
    assert p.on_gpu
    cmp = close if dtype == torch.float64 else close32
    G = p.values(dtype)
    assert G.dtype == dtype
    cmp(G.cpu().numpy(), values)
    Fg, Wg = p.forces_and_virial(torch.from_numpy(w).to(gpu, dtype))
    cmp(Fg.cpu().numpy(), F)
    cmp(Wg.cpu().numpy(), W)
    cmp(p.jvp(torch.from_numpy(u).to(gpu, dtype), torch.from_numpy(U).to(gpu, dtype)).cpu().numpy(), jvp)
    ref = sorted_pairs(*(x.numpy() for x in dev.neighbor_list(acsf, batch.to("cpu"))))
    got = sorted_pairs(*(x.cpu().numpy() for x in dev.neighbor_list(acsf, batch)))
    for x, y in zip(got[:3], ref[:3]):
        assert np.array_equal(x, y)


@requires_gpu
def test_gpu_edge_batches(gpu):
    """Batches without any pair (one isolated atom), one atom with only its own images,
    a dimer, and all of them with a bulk cell in one batch; an empty structure is refused
    as on the CPU."""
    acsf = make_acsf(["Si"], 5.0)
    lone = Atoms("Si", positions=[[0.1, 0.2, 0.3]])
    tiny = STRUCTURES["si_tiny_cell"][0]()
    dimer = Atoms("Si2", positions=[[0.0, 0.0, 0.0], [2.3, 0.1, -0.2]])
    bulk_si = STRUCTURES["si_rattled"][0]()
    for atoms_list in ([lone], [lone, lone], [tiny], [dimer], [lone, bulk_si, tiny, dimer, lone]):
        _gpu_equals_cpu(gpu, acsf, atoms_list)
        _gpu_equals_cpu(gpu, acsf, atoms_list, dtype=torch.float32)
    batch = dev.TorchBatch.from_atoms([dimer, lone], acsf, device=gpu)
    batch.offsets = torch.tensor([0, 0, 3], dtype=torch.int64, device=gpu)  # structure 0 is empty
    with pytest.raises(ValueError, match="no atoms"):
        dev.compute(acsf, batch)


@requires_gpu
def test_gpu_many_species(gpu):
    """Seven species, one absent (empty species blocks, 28 species pairs), periodic and open."""
    acsf = make_acsf(["H", "C", "N", "O", "Si", "Ge", "Sn"], 4.0)
    atoms_list = [many_species_box(), many_species_box(seed=5, n=24, pbc=False)]
    _gpu_equals_cpu(gpu, acsf, atoms_list)
    _gpu_equals_cpu(gpu, acsf, atoms_list, dtype=torch.float32)


@requires_gpu
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_gpu_large_feature_counts(gpu, dtype):
    """Accumulator tables above 48 KB (the opt-in to more shared memory) and above the
    device's shared memory per block (tables in global memory), for values and the JVP."""
    g2, ang = large_spec_params()
    atoms_list = [STRUCTURES["si_rattled"][0](), STRUCTURES["si_small_cell"][0]()]
    for kw in (dict(g2=g2, g4=[], g5=[]), dict(g2=g2[:8], g4=ang, g5=ang)):
        _gpu_equals_cpu(gpu, make_acsf(["Si"], 5.0, **kw), atoms_list, dtype=dtype)


@requires_gpu
def test_gpu_neighbor_list_at_the_cutoff(gpu):
    """Cutoffs equal to pair distances: whether a pair at the cutoff is in depends on the
    last bit of d², so the GPU must round as the CPU list does (no fused multiply-add)."""
    atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat(2)
    atoms.set_cell(atoms.cell[:] @ np.array([[1.0, 0.0, 0.0], [0.13, 1.0, 0.0], [-0.07, 0.11, 1.0]]),
                   scale_atoms=True)
    atoms.rattle(0.05, seed=3)
    acsf = make_acsf(["Si"], 6.0)
    cpu_batch = dev.TorchBatch.from_atoms(atoms, acsf)
    gpu_batch = cpu_batch.to(gpu)
    d = np.unique(dev.neighbor_list(6.0, cpu_batch, n_species=1)[4].numpy())
    for rc in d[::max(1, len(d) // 40)]:
        ref = sorted_pairs(*(x.numpy() for x in dev.neighbor_list(float(rc), cpu_batch, n_species=1)))
        got = sorted_pairs(*(x.cpu().numpy() for x in dev.neighbor_list(float(rc), gpu_batch, n_species=1)))
        for x, y in zip(got[:3], ref[:3]):
            assert np.array_equal(x, y), f"cutoff {rc!r}"


@requires_gpu
def test_gpu_side_stream_orders_after_producers(gpu):
    """Every kernel, copy and allocation is on torch's current stream: inputs written on a
    side stream behind a ~50 ms spin are read only once written, by the list build and the
    JVP; the outputs are complete when that stream is."""
    _, atoms_list, acsf = CASES[CASE_IDS.index("batch_three_species")]
    w, u, U = random_inputs(acsf, atoms_list, seed=12)
    values, F, W, jvp = reference(acsf, atoms_list, w, u, U)
    host_u, host_U = torch.from_numpy(u).pin_memory(), torch.from_numpy(U).pin_memory()
    host = dev.TorchBatch.from_atoms(atoms_list, acsf)
    host = [t.pin_memory() for t in (host.positions, host.species, host.offsets, host.cells, host.pbc)]
    s = torch.cuda.Stream(gpu)  # torch's side streams do not synchronize with the default stream
    torch.cuda.synchronize(gpu)
    with torch.cuda.stream(s):
        torch.cuda._sleep(int(1e8))
        # asynchronous copies (no host synchronization): the batch exists only in s's order
        batch = dev.TorchBatch(*(t.to(gpu, non_blocking=True) for t in host))
        p = dev.prepare(acsf, batch)
        torch.cuda._sleep(int(1e8))
        G = p.values()
        Fg, Wg = p.forces_and_virial(torch.from_numpy(w).to(gpu))
        torch.cuda._sleep(int(1e8))
        J = p.jvp(host_u.to(gpu, non_blocking=True), host_U.to(gpu, non_blocking=True))
        pairs = dev.neighbor_list(acsf, batch)
        G2, J2 = G.clone(), J.clone()  # consumers on the same stream
    s.synchronize()
    close(G2.cpu().numpy(), values)
    close(Fg.cpu().numpy(), F)
    close(Wg.cpu().numpy(), W)
    close(J2.cpu().numpy(), jvp)
    ref = sorted_pairs(*(x.numpy() for x in dev.neighbor_list(acsf, batch.to("cpu"))))
    got = sorted_pairs(*(x.cpu().numpy() for x in pairs))
    for x, y in zip(got[:3], ref[:3]):
        assert np.array_equal(x, y)


@requires_gpu
def test_gpu_threads_share_one_list(gpu):
    """Four Python threads, each on its own stream, use one prepared batch (one neighbor
    list, one set of kernels) at the same time: the bindings release the GIL."""
    _, atoms_list, acsf = CASES[CASE_IDS.index("batch_three_species")]
    w, u, U = random_inputs(acsf, atoms_list, seed=14)
    values, F, W, jvp = reference(acsf, atoms_list, w, u, U)
    p = dev.prepare(acsf, dev.TorchBatch.from_atoms(atoms_list, acsf, device=gpu))
    wg, ug, Ug = (torch.from_numpy(x).to(gpu) for x in (w, u, U))
    p.forces_and_virial(wg)  # first use (autograd classes) outside the threads
    torch.cuda.synchronize(gpu)
    results, errors = {}, []

    def work(k):
        try:
            s = torch.cuda.Stream(gpu)
            with torch.cuda.stream(s):
                for _ in range(10):
                    out = (p.values(), *p.forces_and_virial(wg), p.jvp(ug, Ug))
            s.synchronize()
            results[k] = [x.cpu().numpy() for x in out]
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for G, Fg, Wg, J in results.values():
        close(G, values)
        close(Fg, F)
        close(Wg, W)
        close(J, jvp)


@requires_gpu
def test_gpu_objects_dropped_while_kernels_run(gpu):
    """The neighbor list and the kernel tables may be dropped while a kernel that reads
    them is still queued on a side stream: their destructors wait for it, so the memory is
    not handed to the lists and tables that other work on the default stream allocates
    and writes meanwhile."""
    core = alip._core.cuda
    acsf = make_acsf(["Si"], 5.0)
    big = bulk("Si", "diamond", a=5.431, cubic=True).repeat(5)
    big.rattle(0.05, seed=2)
    b = dev.TorchBatch.from_atoms(big, acsf, device=gpu)
    arrays = (b.positions.contiguous(), b.species.to(torch.int32).contiguous(), b.offsets.contiguous(),
              b.cells.contiguous(), b.pbc.to(torch.uint8).contiguous())
    other_acsf = make_acsf(["Si"], 4.5, g2=[(0.7, 1.5), (0.1, 0.0)], g4=[(0.02, 1.0, -1.0)], g5=[])
    other = dev.TorchBatch.from_atoms(ase_pool(40, seed=3), other_acsf, device=gpu)
    s = torch.cuda.Stream(gpu)
    outs = []
    torch.cuda.synchronize(gpu)
    for _ in range(2):
        with torch.cuda.stream(s):
            kernels = core.AcsfKernels(acsf._core, gpu.index)
            nl = core.build_neighbor_list(*(a.data_ptr() for a in arrays), b.n_structures, b.n_atoms, acsf.cutoff,
                                          1, s.cuda_stream)
            out = torch.empty((b.n_atoms, acsf.n_features), dtype=torch.float64, device=gpu)
            torch.cuda._sleep(int(2e8))  # the values kernel queues behind this
            kernels.values(nl, "float64", out.data_ptr(), s.cuda_stream)
            del kernels, nl
            outs.append(out)
        for _ in range(3):  # default stream: allocations and writes of other lists and tables
            dev.compute(other_acsf, other)
    s.synchronize()
    ref = acsf.compute(big)
    for out in outs:
        close(out.cpu().numpy(), ref)


@requires_gpu
def test_gpu_repeatable(gpu):
    """Values, JVP, virials and the neighbor list (its order too) are the same bits in
    every run; forces are summed with atomics (equal to rounding, not bitwise)."""
    _, atoms_list, acsf = CASES[CASE_IDS.index("si216_triclinic_binned")]
    w, u, U = (torch.from_numpy(x).to(gpu) for x in random_inputs(acsf, atoms_list, seed=15))
    runs = []
    for _ in range(2):
        batch = dev.TorchBatch.from_atoms(atoms_list, acsf, device=gpu)
        p = dev.prepare(acsf, batch)
        F, W = p.forces_and_virial(w)
        runs.append((p.values(), W, p.jvp(u, U), F, *dev.neighbor_list(acsf, batch)))
    a, b = runs
    for x, y in zip(a[:3] + a[4:], b[:3] + b[4:]):
        assert torch.equal(x, y)
    close(a[3].cpu().numpy(), b[3].cpu().numpy(), 1e-13)


@requires_gpu
def test_gpu_rejects_host_pointers(gpu):
    """A host pointer never reaches a kernel: a ValueError names the argument."""
    core = alip._core.cuda
    acsf = make_acsf(["Si"], 5.0)
    b = dev.TorchBatch.from_atoms(bulk("Si", "diamond", a=5.431, cubic=True), acsf)
    arrays = [b.positions.contiguous(), b.species.to(torch.int32).contiguous(), b.offsets.contiguous(),
              b.cells.contiguous(), b.pbc.to(torch.uint8).contiguous()]
    with pytest.raises(ValueError, match="positions is not in GPU memory"):
        core.build_neighbor_list(*(a.data_ptr() for a in arrays), 1, b.n_atoms, 5.0, 1, 0)
    on_gpu = [a.to(gpu) for a in arrays]
    nl = core.build_neighbor_list(*(a.data_ptr() for a in on_gpu), 1, b.n_atoms, 5.0, 1, 0)
    kernels = core.AcsfKernels(acsf._core, gpu.index)
    host_out = torch.empty((b.n_atoms, acsf.n_features), dtype=torch.float64)
    with pytest.raises(ValueError, match="out is not in GPU memory"):
        kernels.values(nl, "float64", host_out.data_ptr(), 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
