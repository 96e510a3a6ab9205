"""The C++ core's own tests (cpp/tests/, a dependency-free harness): configures the
repository with cmake -DALIP_BUILD_TESTS=ON in a temporary directory, builds the test
binary and runs it through ctest. Skipped where cmake or a C++ compiler is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

# the repository root (the file may sit in a subfolder of tests/)
REPO = next(p for p in Path(__file__).resolve().parents if (p / "CMakeLists.txt").is_file())


@pytest.mark.slow
def test_cpp_core_ctest(tmp_path: Path) -> None:
    cmake = shutil.which("cmake")
    ctest = shutil.which("ctest")
    if cmake is None or ctest is None:
        pytest.skip("cmake / ctest not installed (pip install cmake)")
    if shutil.which(os.environ.get("CXX", "c++")) is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler")
    build = tmp_path / "build"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("ALIP_KERNEL", None)

    def run(*cmd: str, timeout: float) -> None:
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"

    run(cmake, "-S", str(REPO), "-B", str(build), "-DALIP_BUILD_TESTS=ON", "-DCMAKE_BUILD_TYPE=Release", timeout=300)
    run(cmake, "--build", str(build), "--target", "alip_core_tests", "-j", "2", timeout=900)
    run(ctest, "--test-dir", str(build), "--output-on-failure", timeout=300)


def test_cpp_sources_pass_clang_format() -> None:
    """cpp/ follows .clang-format (written against clang-format 23; pip install clang-format)."""
    exe = shutil.which("clang-format")
    if exe is None:
        pytest.skip("clang-format not installed (pip install clang-format)")
    files = sorted(str(p) for p in (REPO / "cpp").rglob("*") if p.suffix in (".cpp", ".hpp"))
    proc = subprocess.run([exe, "--dry-run", "--Werror", *files], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"run clang-format -i on cpp/:\n{proc.stderr[-3000:]}"
