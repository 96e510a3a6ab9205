#!/usr/bin/env bash
# Issue 8's GPU verification in ONE call of the device tool, on an H100/H200:
#   run(command="bash cuda/gpu_session.sh", carry=[".gpu_wheels"], timeout_s=600)
# Before the call, on the development machine (the device machine has no network; its
# image has torch, pytest, cmake, ninja, pybind11 and scikit-build-core, not ase):
#   grep -qsx '/.gpu_wheels/' .git/info/exclude || echo '/.gpu_wheels/' >> .git/info/exclude
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .gpu_wheels ase==3.29.0 torchani==2.9.0
# (both are pure-Python wheels; torchani is optional: the benchmark skips its rows without it.)
#
# The whole script keeps to BUDGET_S seconds (default 560: the tool stops a command at
# 600 s), giving each step what is left after reserving time for the later, more
# important ones. Order: build alip with ALIP_CUDA=ON for sm_90; check that the GPU path
# is really available (else every GPU test would merely skip: that is a failure here);
# tests/core/test_{device_cpu,cuda_emulator,cuda_gpu}.py + tests/models/test_training_device.py; compute-sanitizer memcheck, racecheck (shared memory) and synccheck
# (__syncwarp) on small cases; the benchmark; TorchANI's cuaev extension.
# $OUT receives at most 7 files (the tool returns 8): summary.txt, build.log,
# test_cuda.log, sanitizers.log, bench.log, bench.json, cuaev_build.log. The last lines
# printed are the summary.
set -uo pipefail
OUT="${OUT:-/tmp/alip-gpu-out}"
mkdir -p "$OUT"
PY=python3
export TORCHANI_NO_WARN_EXTENSIONS=1 PYTHONUNBUFFERED=1
export CMAKE_BUILD_PARALLEL_LEVEL="$(nproc 2>/dev/null || echo 8)"
deadline=$((SECONDS + ${BUDGET_S:-560}))
# seconds for a step: at most $1, leaving $2 for the steps after it (at least 5)
budget() { local l=$((deadline - SECONDS - ${2:-0})); [ "$l" -gt "$1" ] && l=$1; [ "$l" -lt 5 ] && l=5; echo "$l"; }
step() { echo; echo "== $* ($(date +%T), $((deadline - SECONDS)) s left)"; }
summary=()
finish() {
  step "summary"
  printf '%s\n' "${summary[@]}" | tee -a "$OUT/summary.txt"
}
trap finish EXIT

step "machine"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
  nvcc --version | tail -1; } 2>&1 | tee "$OUT/summary.txt"

step "carried wheels"
if ls .gpu_wheels/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-deps --no-index .gpu_wheels/*.whl 2>&1 | tail -2
else
  echo "no .gpu_wheels/ (ase is required): see the header of this script"
fi
$PY -c "import ase" 2>/dev/null || { summary+=("ase missing: carry .gpu_wheels (see the header)"); exit 1; }

step "build alip with ALIP_CUDA=ON (sm_90)"
if timeout "$(budget 240 300)" $PY -m pip install --no-deps --no-build-isolation -e . -C cmake.define.ALIP_CUDA=ON \
     -C cmake.define.CMAKE_CUDA_ARCHITECTURES=90 -C build-dir=/tmp/alip-build >"$OUT/build.log" 2>&1; then
  summary+=("build: ok")
else
  tail -40 "$OUT/build.log"; summary+=("build: FAILED (build.log)"); exit 1
fi
# Without this check a broken runtime (driver too old for the toolkit, no device) would
# only make every GPU test skip, and the run would look green.
if ! $PY - <<'EOF' 2>&1 | tee -a "$OUT/summary.txt"
import sys
import alip
from alip import device
print("build_info", alip.build_info())
print("describe", alip._core.cuda.describe(), "device_count", alip._core.cuda.device_count())
sys.exit(0 if device.cuda_available() else 1)
EOF
then
  summary+=("GPU path NOT available (see the lines above): nothing was tested on the GPU"); exit 1
fi

step "tests/core tests/models/test_training_device.py"
timeout "$(budget 200 200)" $PY -m pytest -q -rs -p no:cacheprovider tests/core/test_device_cpu.py tests/core/test_cuda_emulator.py tests/core/test_cuda_gpu.py tests/models/test_training_device.py >"$OUT/test_cuda.log" 2>&1
rc=$?; tail -30 "$OUT/test_cuda.log"
gpu_skips=$(grep -c "needs a CUDA build" "$OUT/test_cuda.log")
summary+=("GPU tests (test_cuda, test_training_device): rc=$rc ($(tail -1 "$OUT/test_cuda.log")); GPU tests skipped: $gpu_skips (must be 0)")

step "compute-sanitizer (memcheck, racecheck, synccheck)"
if command -v compute-sanitizer >/dev/null; then
  : >"$OUT/sanitizers.log"
  sanitize() {  # tool, seconds, pytest -k expression, extra options...
    local tool=$1 t=$2 k=$3; shift 3
    echo "---- $tool: -k '$k'" >>"$OUT/sanitizers.log"
    timeout "$t" compute-sanitizer --tool "$tool" --error-exitcode 9 "$@" $PY -m pytest -q -x -p no:cacheprovider \
      tests/core/test_device_cpu.py tests/core/test_cuda_emulator.py tests/core/test_cuda_gpu.py -k "$k" >>"$OUT/sanitizers.log" 2>&1
    local r=$?
    summary+=("$tool: rc=$r (0 clean, 9 errors found, 124 timeout)")
  }
  sanitize memcheck "$(budget 90 140)" \
    "(gpu_equals_cpu_float64 and (si_small_cell or batch_three_species)) or gpu_objects_dropped or gpu_edge_batches"
  # our kernels only (their mangled names hold the namespace alip): torch's are not under review
  only_alip=()
  compute-sanitizer --help 2>&1 | grep -q -- "--kernel-name" && only_alip=(--kernel-name kns=alip)
  sanitize racecheck "$(budget 60 90)" "gpu_equals_cpu_float64 and (si_small_cell or batch_three_species)" \
    "${only_alip[@]}"
  sanitize synccheck "$(budget 40 60)" "gpu_equals_cpu_float64 and batch_three_species" "${only_alip[@]}"
  tail -5 "$OUT/sanitizers.log"
else
  summary+=("compute-sanitizer: not found")
fi

step "benchmark"
timeout "$(budget 150 50)" $PY bench/featurize_cuda.py --min-time 0.3 --json "$OUT/bench.json" >"$OUT/bench.log" 2>&1
rc=$?; tail -30 "$OUT/bench.log"; summary+=("bench: rc=$rc (bench.json is written after every case)")

step "TorchANI cuaev extension"
if [ $((deadline - SECONDS)) -gt 40 ] && command -v ani >/dev/null; then
  timeout "$(budget 150 0)" ani build-extensions -s 9.0 >"$OUT/cuaev_build.log" 2>&1
  rc=$?; tail -5 "$OUT/cuaev_build.log"; summary+=("cuaev build: rc=$rc")
else
  summary+=("cuaev build: skipped (no time left or no torchani)")
fi
