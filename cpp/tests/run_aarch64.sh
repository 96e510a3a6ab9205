#!/usr/bin/env bash
# Cross-compiles the C++ core and its tests for aarch64 (the NEON kernels) and runs the
# tests under user-mode emulation. Correctness only: emulated timings say nothing about
# speed on real ARM hardware. Needs (Debian/Ubuntu):
#   apt-get install -y g++-aarch64-linux-gnu qemu-user cmake
# Usage: cpp/tests/run_aarch64.sh [build-dir]   (default: build-aarch64)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$repo/build-aarch64}"
for tool in aarch64-linux-gnu-g++ qemu-aarch64 cmake ctest; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y g++-aarch64-linux-gnu qemu-user cmake" >&2; exit 2; }
done
cmake -S "$repo" -B "$build" -DCMAKE_TOOLCHAIN_FILE="$repo/cmake/aarch64-linux-gnu.cmake" \
      -DALIP_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" --target alip_core_tests -j "${JOBS:-2}"
file "$build/alip_core_tests" 2>/dev/null || true
OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" ctest --test-dir "$build" --output-on-failure
