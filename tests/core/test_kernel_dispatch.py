"""Runtime CPU dispatch of the compiled kernels (cpp/dispatch.hpp).

* build_info() names the compiled variants and the one running;
* ALIP_KERNEL=baseline and =avx2 (forced in subprocesses: the variant is chosen once at
  import) give the default variant's values, sparse and strain gradients, and fused
  forces/virial to 1e-14 of each array's (or the values') largest magnitude: on an AVX-512
  machine this checks the scalar and AVX2 backends of cpp/simd.hpp against the AVX-512 one
  (a case with steep etas takes exp through its denormal and underflow ranges; shifted and
  two-window angular functions are among the cases);
* an unknown ALIP_KERNEL fails the import with the reason, and a variant is refused on
  a CPU without its ISA (the selection logic, run with a pretend CPU);
* the AVX2 and AVX-512 objects' copies of inline library functions (which the linker may
  keep for every TU) hold no AVX instructions.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

alip = pytest.importorskip("alip")
_core = pytest.importorskip("alip._core")

TESTS = Path(__file__).resolve().parents[1]  # tests/: conftest.py
REPO = TESTS.parent
INFO = alip.build_info()
VARIANTS = INFO["kernel_variants"]
HAS_AVX512_VARIANT = "avx512" in VARIANTS and INFO["cpu_isa"] == "avx512"

# Computes every array of every case with the variant ALIP_KERNEL selects and saves them.
SCRIPT = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[2])
import alip
from ase.build import bulk
from conftest import STRUCTURES, make_acsf

BENCH_G2 = [(1.0, float(rs)) for rs in np.linspace(1.0, 4.5, 8)]
BENCH_G4 = [(e, z, l) for e in (0.005, 0.05) for z in (1.0, 2.0, 4.0, 16.0) for l in (1.0, -1.0)]
cases = [(name, f(), sp, rc, {}) for name, (f, sp, rc) in sorted(STRUCTURES.items())]
big = bulk("Si", "diamond", a=5.431, cubic=True).repeat(2)  # 64 atoms, several chunks of pairs
big.rattle(0.05, seed=7)
cases.append(("si64_bench", big, ["Si"], 6.0, dict(g2=BENCH_G2, g4=BENCH_G4, g5=[])))
cases.append(("si64_polynomial", big, ["Si"], 5.0, dict(cutoff_function="polynomial")))
sheared = big.copy()
sheared.set_cell(big.cell[:] @ np.array([[1.0, 0.0, 0.0], [0.3, 1.0, 0.0], [-0.2, 0.25, 1.0]]), scale_atoms=True)
cases.append(("si64_triclinic_g5", sheared, ["Si"], 5.5, dict(g4=[(0.01, 3.0, 1.0), (0.02, 2.0, -1.0)])))
# steep etas: exp arguments from -159 to below -2000, through exp's denormal range
# (-745 < x < -708: AVX2's two-factor 2^n) and below the AVX2/NEON clamp at -1000
steep = dict(g2=[(1.0, 2.0), (30.0, 0.0), (60.0, 0.0)], g4=[(0.05, 1.0, 1.0), (30.0, 2.0, -1.0)], g5=[])
cases.append(("si64_steep_eta", big, ["Si"], 6.0, steep))
# shifted angular functions (rs > 0): power-of-two zetas (the fused ladder), then not
shifted = [(0.5, 1.0, 1.0, 2.35), (2.0, 4.0, -1.0, 3.8), (0.5, 2.0, 1.0)]
cases.append(("si64_shifted_pow2", big, ["Si"], 5.5, dict(g4=shifted, g5=shifted)))
cases.append(("si64_shifted_products", sheared, ["Si"], 5.5, dict(g4=[], g5=shifted + [(1.0, 3.0, -1.0, 2.35)])))
# two-window G5 (rs2 != rs) next to one-window and centred rows: the ladder, then products of rungs
windows = [(2.0, 1.0, 1.0, 2.35, 3.84), (0.5, 4.0, -1.0, 0.0, 2.35), (2.0, 2.0, 1.0, 2.35), (0.5, 2.0, 1.0)]
cases.append(("si64_two_windows_pow2", big, ["Si"], 5.5, dict(g4=shifted[:1], g5=windows)))
products = windows + [(1.0, 3.0, -1.0, 3.84, 2.35)]
cases.append(("si64_two_windows_products", sheared, ["Si"], 5.5, dict(g4=[], g5=products)))
out = {"variant": np.array(alip.build_info()["kernel_variant"])}
rng = np.random.default_rng(0)
for name, atoms, species, cutoff, kw in cases:
    acsf = make_acsf(species, cutoff, **kw)
    d = acsf.compute(atoms, gradients=True)
    w = rng.normal(size=d.values.shape)
    forces, virial = acsf.forces_and_virial(atoms, w)
    out[name + "/values"] = acsf.compute(atoms)
    out[name + "/grad_values"] = d.grad_values
    out[name + "/grad_rows"] = np.stack([d.grad_centers, d.grad_neighbors])
    out[name + "/strain_grad"] = d.strain_grad
    out[name + "/forces"] = forces
    out[name + "/virial"] = virial
np.savez(sys.argv[1], **out)
"""


def run_variant(kernel: str | None, path: Path) -> dict:
    env = dict(os.environ)
    env.pop("ALIP_KERNEL", None)
    if kernel is not None:
        env["ALIP_KERNEL"] = kernel
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(path), str(TESTS)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def import_with(kernel: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ALIP_KERNEL=kernel)
    code = "import alip; print(alip.build_info()['kernel_variant'])"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


# ------------------------------------------------------------------------- build_info
def test_build_info_reports_the_variant():
    assert VARIANTS and VARIANTS[0] == "baseline"
    assert INFO["kernel_variant"] in VARIANTS
    assert INFO["cpu_isa"] in ("baseline", "avx2", "avx512")
    if os.environ.get("ALIP_KERNEL", "auto") in ("", "auto"):
        expected = INFO["cpu_isa"] if INFO["cpu_isa"] in VARIANTS else VARIANTS[0]
        assert INFO["kernel_variant"] == expected


# ------------------------------------------------------------------------- selection
def test_selection_logic():
    pick = _core._select_kernel_variant
    assert VARIANTS[0] == "baseline"
    for requested in ("", "auto", "baseline"):
        assert pick(requested, "baseline") == "baseline"
    assert pick("baseline", "avx512") == "baseline"
    if VARIANTS == ["baseline", "avx2", "avx512"]:
        assert pick("", "avx2") == "avx2"
        assert pick("", "avx512") == "avx512"
        assert pick("avx2", "avx512") == "avx2"
        assert pick("avx512", "avx512") == "avx512"
        with pytest.raises(ValueError, match=r"ALIP_KERNEL=avx512: this CPU \(or its OS\) does not support avx512"):
            pick("avx512", "avx2")  # forcing AVX-512 on a CPU without it is refused
        with pytest.raises(ValueError, match="does not support avx2"):
            pick("avx2", "baseline")
    with pytest.raises(ValueError, match=r"ALIP_KERNEL='sse9' is not a kernel variant of this build"):
        pick("sse9", "avx512")


def test_unknown_alip_kernel_fails_the_import_with_the_reason():
    proc = import_with("fastest")
    assert proc.returncode != 0
    assert "ALIP_KERNEL='fastest' is not a kernel variant of this build" in proc.stderr
    assert VARIANTS[0] in proc.stderr.splitlines()[-1]


@pytest.mark.skipif(not HAS_AVX512_VARIANT, reason="needs the AVX-512 variant and an AVX-512 CPU")
def test_forced_variants_run():
    for kernel in ("baseline", "avx2", "avx512", "auto"):
        proc = import_with(kernel)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == ("avx512" if kernel == "auto" else kernel)


# ------------------------------------------------------------------------- numerics
@pytest.fixture(scope="module")
def default_arrays(tmp_path_factory):
    return run_variant(None, tmp_path_factory.mktemp("default") / "default.npz")


@pytest.mark.skipif(not HAS_AVX512_VARIANT, reason="needs the AVX-512 variant and an AVX-512 CPU")
@pytest.mark.parametrize("kernel", ["baseline", "avx2"])
def test_fallbacks_match_the_default_variant(kernel, default_arrays, tmp_path):
    fast = dict(default_arrays)
    other = run_variant(kernel, tmp_path / f"{kernel}.npz")
    assert str(fast.pop("variant")) == "avx512"
    assert str(other.pop("variant")) == kernel
    assert fast.keys() == other.keys() and len(fast) > 60
    for key, ref in fast.items():
        got = other[key]
        assert got.shape == ref.shape, key
        if key.endswith("/grad_rows"):
            np.testing.assert_array_equal(got, ref, err_msg=key)
            continue
        # an ideal crystal's gradients and forces are roundoff around zero: the scale is the
        # larger of the array's and the structure's descriptor values' largest magnitude
        values = fast[key.split("/")[0] + "/values"]
        scale = max(float(np.abs(ref).max(initial=0.0)), float(np.abs(values).max()))
        np.testing.assert_allclose(got, ref, rtol=1e-14, atol=1e-14 * scale, err_msg=key)


# ------------------------------------------------------------------------- the binary
@pytest.mark.parametrize("variant", ["avx2", "avx512"])
def test_variant_object_shares_no_avx_code(variant):
    objs = glob.glob(str(REPO / "build" / "*" / "CMakeFiles" / "alip_core.dir" / "cpp" / f"kernel_{variant}.cpp.o"))
    if not objs or not (shutil.which("nm") and shutil.which("objdump")):
        pytest.skip(f"no build tree with the {variant} object here (or no binutils)")
    obj = max(objs, key=os.path.getmtime)
    nm = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
    weak = {p[2] for p in (line.split() for line in nm.splitlines()) if len(p) == 3 and p[1] in "WV"}
    dis = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", obj], capture_output=True, text=True, check=True
    ).stdout
    shared, avx, current = set(), {}, None
    for line in dis.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if m:
            current = m.group(1)
            if current in weak and f"kernel_{variant}" not in current:
                shared.add(current)
            continue
        if current in shared and re.search(r"%[yz]mm|%k[0-7]|\tv[a-z]", line):
            avx[current] = avx.get(current, 0) + 1
    assert shared, "expected inline library functions (std::vector) in the object"
    assert not avx, f"AVX code in functions the linker may share with baseline TUs: {avx}"
