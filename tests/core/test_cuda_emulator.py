"""The CUDA kernels' own functions (cuda/acsf_math.cuh, cuda/nl_logic.cuh) run lane by lane on
the CPU by cuda/host_emulation.cpp: neighbor list, values, forces, virials and JVP equal
the CPU core to 1e-10 (float64) on every structure of conftest and on batches."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from conftest import STRUCTURES, make_acsf
from cuda_cases import (
    CASE_IDS,
    CASES,
    CUDA_DIR,
    ROOT,
    close,
    close32,
    large_spec_params,
    many_species_box,
    random_inputs,
    reference,
    sorted_pairs,
)

from alip.core import device as dev
from alip.core.batch import Batch


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
    subprocess.run(
        [
            cxx,
            "-std=c++17",
            "-O2",
            f"-I{CUDA_DIR}",
            f"-I{ROOT / 'cpp'}",
            str(CUDA_DIR / "host_emulation.cpp"),
            "-o",
            str(exe),
        ],
        check=True,
        capture_output=True,
    )
    return exe


def run_emulator(exe, tmp_path, acsf, atoms_list, w=None, u=None, U=None, float32=False):
    b = Batch.from_atoms(atoms_list).to("cpu", acsf.species)
    N, S, ns, F = b.n_atoms, b.n_structures, len(acsf.species), acsf.n_features
    header = np.array(
        [
            N,
            S,
            ns,
            len(acsf.g2),
            len(acsf.g4),
            len(acsf.g5),
            acsf.cutoff_function == "polynomial",
            float32,
            w is not None,
            u is not None,
            U is not None,
        ],
        dtype=np.int64,
    )
    src, out = tmp_path / "in.bin", tmp_path / "out.bin"
    with open(src, "wb") as f:
        for arr in (
            header,
            np.array([acsf.cutoff]),
            b.positions.numpy(),
            b.species.numpy().astype(np.int32),
            b.offsets.numpy(),
            b.cells.numpy(),
            b.pbc.numpy().astype(np.uint8),
            acsf.g2,
            acsf.g4,
            acsf.g5,
        ):
            f.write(np.ascontiguousarray(arr).tobytes())
        for arr in (w, u, U):
            if arr is not None:
                f.write(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    subprocess.run([str(exe), str(src), str(out)], check=True, capture_output=True)
    raw = out.read_bytes()
    n = int(np.frombuffer(raw[:8], dtype=np.int64)[0])
    pos = 8
    res = {}
    for key, dt, count, shape in (
        ("i", np.int64, n, (n,)),
        ("j", np.int64, n, (n,)),
        ("S", np.int64, 3 * n, (n, 3)),
        ("D", np.float64, 3 * n, (n, 3)),
        ("d", np.float64, n, (n,)),
        ("values", np.float64, N * F, (N, F)),
    ):
        res[key] = np.frombuffer(raw[pos : pos + 8 * count], dtype=dt).reshape(shape)
        pos += 8 * count
    if w is not None:
        res["forces"] = np.frombuffer(raw[pos : pos + 8 * 3 * N]).reshape(N, 3)
        pos += 8 * 3 * N
        res["virials"] = np.frombuffer(raw[pos : pos + 8 * 9 * S]).reshape(S, 3, 3)
        pos += 8 * 9 * S
    if u is not None or U is not None:
        res["jvp"] = np.frombuffer(raw[pos : pos + 8 * N * F]).reshape(N, F)
        pos += 8 * N * F
    assert pos == len(raw)
    return res


@pytest.mark.parametrize("name,atoms_list,acsf", CASES, ids=CASE_IDS)
def test_emulated_kernels_equal_cpu(emulator, tmp_path, name, atoms_list, acsf):
    w, u, U = random_inputs(acsf, atoms_list, seed=1)
    r = run_emulator(emulator, tmp_path, acsf, atoms_list, w, u, U)
    # neighbor list: the same pairs (i, j, shift), vectors and distances
    b = Batch.from_atoms(atoms_list).to("cpu", acsf.species)
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


@pytest.mark.parametrize(
    "name",
    [
        "si_small_cell",
        "sio_triclinic",
        "si216_triclinic_binned",
        "si216_shells_si",
        "si216_windows_si",
        "si216_two_windows_si",
        "batch_three_species_two_windows",
    ],
)
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
