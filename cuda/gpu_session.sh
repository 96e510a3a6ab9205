#!/usr/bin/env bash
# Issue 8's GPU verification in ONE call of the device tool (< 10 min), on an H100/H200:
#   run(command="bash cuda/gpu_session.sh", carry=[".gpu_wheels"], timeout_s=600)
# Before the call, on the development machine (the device machine has no network):
#   mkdir -p .gpu_wheels && pip download ase==3.29.0 torchani==2.9.0 --no-deps -d .gpu_wheels
#   grep -qx '/.gpu_wheels/' .git/info/exclude || echo '/.gpu_wheels/' >> .git/info/exclude
# Steps (each with its own time limit): install the carried wheels; build and install
# alip with ALIP_CUDA=ON for sm_90; tests/test_cuda.py (GPU parity runs here);
# compute-sanitizer memcheck on two parity cases; TorchANI's cuaev extension; the
# benchmark. Logs and bench.json go to $OUT; the last lines printed are the summary.
set -uo pipefail
OUT="${OUT:-/tmp/alip-gpu-out}"
mkdir -p "$OUT"
PY=python3
export TORCHANI_NO_WARN_EXTENSIONS=1
step() { echo; echo "== $* ($(date +%T))"; }
summary=()

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
nvcc --version | tail -1

step "carried wheels"
if ls .gpu_wheels/*.whl >/dev/null 2>&1; then
  $PY -m pip install --no-deps --no-index .gpu_wheels/*.whl 2>&1 | tail -1
else
  echo "no .gpu_wheels/ (ase is required): see the header of this script"
fi

step "build alip with ALIP_CUDA=ON (sm_90)"
if timeout 240 $PY -m pip install --no-deps --no-build-isolation -e . -C cmake.define.ALIP_CUDA=ON \
     -C cmake.define.CMAKE_CUDA_ARCHITECTURES=90 -C build-dir=/tmp/alip-build >"$OUT/build.log" 2>&1; then
  summary+=("build: ok")
else
  tail -40 "$OUT/build.log"; echo "BUILD FAILED"; exit 1
fi
$PY -c "import alip; from alip import device; print(alip.build_info()); print('cuda_available', device.cuda_available(), alip._core.cuda.describe())"

step "tests/test_cuda.py"
timeout 200 $PY -m pytest -q -rs tests/test_cuda.py -p no:cacheprovider >"$OUT/test_cuda.log" 2>&1
rc=$?; tail -25 "$OUT/test_cuda.log"; summary+=("tests/test_cuda.py: rc=$rc ($(tail -1 "$OUT/test_cuda.log"))")

step "compute-sanitizer memcheck (two parity cases)"
if command -v compute-sanitizer >/dev/null; then
  timeout 120 compute-sanitizer --tool memcheck --error-exitcode 9 $PY -m pytest -q -x -p no:cacheprovider \
    tests/test_cuda.py -k "gpu_equals_cpu_float64 and (si_small_cell or batch_three_species)" >"$OUT/memcheck.log" 2>&1
  rc=$?; tail -6 "$OUT/memcheck.log"; summary+=("memcheck: rc=$rc (0 clean, 9 errors, 124 timeout)")
fi

step "TorchANI cuaev extension"
timeout 150 ani build-extensions -s 9.0 >"$OUT/cuaev_build.log" 2>&1
rc=$?; tail -5 "$OUT/cuaev_build.log"; summary+=("cuaev build: rc=$rc")

step "benchmark"
timeout 200 $PY bench/featurize_cuda.py --min-time 0.5 --json "$OUT/bench.json" >"$OUT/bench.txt" 2>"$OUT/bench.err"
rc=$?; cat "$OUT/bench.txt"; tail -3 "$OUT/bench.err"; summary+=("bench: rc=$rc")

step "summary"
printf '%s\n' "${summary[@]}"
