"""The CUDA path (issue 8) on real hardware: nvcc compilation and GPU parity. (The CPU
autograd and emulator parts of the former test_cuda.py are test_device_cpu.py and
test_cuda_emulator.py.)

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
  kernels are queued, bitwise repeatability, host pointers refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from conftest import STRUCTURES, make_acsf
from cuda_cases import (
    CASE_IDS,
    CASES,
    CUDA_DIR,
    ROOT,
    ase_pool,
    close,
    close32,
    large_spec_params,
    many_species_box,
    random_inputs,
    reference,
    requires_gpu,
    sorted_pairs,
)

import alip
from alip.core import device as dev
from alip.core.batch import Batch, BatchTensors


# =========================================================================== nvcc compiles
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
def test_cuda_sources_compile_with_nvcc(tmp_path):
    """Compile (not link) every cuda/*.cu for sm_90 in parallel (both sm_80 and sm_90, and
    the link of the module, are in .ci/cuda_compile_check.sh)."""
    procs = []
    for src in sorted(CUDA_DIR.glob("*.cu")):
        cmd = [
            "nvcc",
            "-std=c++17",
            "-O3",
            f"-I{CUDA_DIR}",
            f"-I{ROOT / 'cpp'}",
            "-gencode",
            "arch=compute_90,code=sm_90",
            "-Xcompiler",
            "-Wall",
            "-c",
            str(src),
            "-o",
            str(tmp_path / (src.stem + ".o")),
        ]
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
    batch = Batch.from_atoms(atoms_list).to(gpu, acsf.species)
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
@pytest.mark.parametrize(
    "name",
    [
        "si_small_cell",
        "sio_triclinic",
        "si216_triclinic_binned",
        "si216_windows_si",
        "si216_two_windows_si",
        "batch_three_species_two_windows",
    ],
)
def test_gpu_equals_cpu_float32(gpu, name):
    _, atoms_list, acsf = CASES[CASE_IDS.index(name)]
    w, u, U = random_inputs(acsf, atoms_list, seed=6)
    values, F, W, jvp = reference(acsf, atoms_list, w, u, U)
    batch = Batch.from_atoms(atoms_list).to(gpu, acsf.species)
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
        batch = Batch.from_atoms(atoms_list).to(d, acsf.species)
        pos = batch.positions.clone().requires_grad_(True)
        theta = torch.randn(acsf.n_features, dtype=torch.float64, device=d, requires_grad=True)
        G = dev.acsf_values(acsf, pos, batch)
        E = (torch.tanh(G) @ theta).sum()
        (F,) = torch.autograd.grad(-E, pos, create_graph=True)
        (g,) = torch.autograd.grad((F**2).sum(), theta)
        results.append((F.detach().cpu().numpy(), g.cpu().numpy()))
    close(results[1][0], results[0][0])
    close(results[1][1], results[0][1])
    batch = Batch.from_atoms(atoms_list).to(gpu, acsf.species)
    w = torch.randn(batch.n_atoms, acsf.n_features, dtype=torch.float64, device=gpu, requires_grad=True)
    torch.autograd.gradgradcheck(lambda x: dev.forces_and_virial(acsf, batch, x), (w,))


@requires_gpu
def test_gpu_prepared_batch(gpu):
    _, atoms_list, acsf = CASES[CASE_IDS.index("batch_three_species")]
    w, u, U = random_inputs(acsf, atoms_list, seed=9)
    values, F, W, jvp = reference(acsf, atoms_list, w, u, U)
    p = dev.prepare(acsf, Batch.from_atoms(atoms_list).to(gpu, acsf.species))
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
                dev.compute(acsf, Batch.from_atoms(structures).to(gpu, acsf.species))
    batch = Batch.from_atoms(good).to(gpu, acsf.species)
    batch.species[2] = 5
    with pytest.raises(ValueError, match="out of range"):
        dev.compute(acsf, batch)
    # the device still works after errors
    close(dev.compute(acsf, Batch.from_atoms(good).to(gpu, acsf.species)).cpu().numpy(), acsf.compute(good))


@requires_gpu
def test_gpu_large_pool_and_streams(gpu):
    """A pool of 300 small cells (periodic, open, slabs) and one 4096-atom cell in one call;
    a side stream. ASE alone builds them (no matscipy on the GPU machine)."""
    pool = ase_pool(300, seed=0)
    acsf = alip.ACSF.default_si()
    batch = Batch.from_atoms(pool).to(gpu, acsf.species)
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
        G = dev.compute(acsf, Batch.from_atoms(big).to(gpu, acsf.species))
    s.synchronize()
    close(G.cpu().numpy(), acsf.compute(big))


def _gpu_equals_cpu(gpu, acsf, atoms_list, seed=11, dtype=torch.float64):
    """values, forces, virials, JVP and the pairs of one prepared batch vs the CPU core."""
    w, u, U = random_inputs(acsf, atoms_list, seed=seed)
    values, F, W, jvp = reference(acsf, atoms_list, w, u, U)
    batch = Batch.from_atoms(atoms_list).to(gpu, acsf.species)
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
    batch = Batch.from_atoms([dimer, lone]).to(gpu, acsf.species)
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
    atoms.set_cell(atoms.cell[:] @ np.array([[1.0, 0.0, 0.0], [0.13, 1.0, 0.0], [-0.07, 0.11, 1.0]]), scale_atoms=True)
    atoms.rattle(0.05, seed=3)
    acsf = make_acsf(["Si"], 6.0)
    cpu_batch = Batch.from_atoms(atoms).to("cpu", acsf.species)
    gpu_batch = cpu_batch.to(gpu)
    d = np.unique(dev.neighbor_list(6.0, cpu_batch, n_species=1)[4].numpy())
    for rc in d[:: max(1, len(d) // 40)]:
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
    host = Batch.from_atoms(atoms_list).to("cpu", acsf.species)
    host = [t.pin_memory() for t in (host.positions, host.species, host.offsets, host.cells, host.pbc)]
    s = torch.cuda.Stream(gpu)  # torch's side streams do not synchronize with the default stream
    torch.cuda.synchronize(gpu)
    with torch.cuda.stream(s):
        torch.cuda._sleep(int(1e8))
        # asynchronous copies (no host synchronization): the batch exists only in s's order
        batch = BatchTensors(*(t.to(gpu, non_blocking=True) for t in host))
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
    p = dev.prepare(acsf, Batch.from_atoms(atoms_list).to(gpu, acsf.species))
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
    b = Batch.from_atoms(big).to(gpu, acsf.species)
    arrays = (
        b.positions.contiguous(),
        b.species.to(torch.int32).contiguous(),
        b.offsets.contiguous(),
        b.cells.contiguous(),
        b.pbc.to(torch.uint8).contiguous(),
    )
    other_acsf = make_acsf(["Si"], 4.5, g2=[(0.7, 1.5), (0.1, 0.0)], g4=[(0.02, 1.0, -1.0)], g5=[])
    other = Batch.from_atoms(ase_pool(40, seed=3)).to(gpu, other_acsf.species)
    s = torch.cuda.Stream(gpu)
    outs = []
    torch.cuda.synchronize(gpu)
    for _ in range(2):
        with torch.cuda.stream(s):
            kernels = core.AcsfKernels(acsf._core, gpu.index)
            nl = core.build_neighbor_list(
                *(a.data_ptr() for a in arrays), b.n_structures, b.n_atoms, acsf.cutoff, 1, s.cuda_stream
            )
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
        batch = Batch.from_atoms(atoms_list).to(gpu, acsf.species)
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
    b = Batch.from_atoms(bulk("Si", "diamond", a=5.431, cubic=True)).to("cpu", acsf.species)
    arrays = [
        b.positions.contiguous(),
        b.species.to(torch.int32).contiguous(),
        b.offsets.contiguous(),
        b.cells.contiguous(),
        b.pbc.to(torch.uint8).contiguous(),
    ]
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
