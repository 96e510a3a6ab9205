# Cross-compiling the core for 64-bit ARM (aarch64, NEON kernels) with Debian's
# g++-aarch64-linux-gnu; the tests then run under qemu-aarch64 (cpp/tests/run_aarch64.sh).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(ALIP_TEST_LAUNCHER "qemu-aarch64;-L;/usr/aarch64-linux-gnu" CACHE STRING "runs the aarch64 test binary here")
