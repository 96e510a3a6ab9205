"""How the compiled core was built, and its OpenMP thread count."""

from __future__ import annotations

from alip import _core


def build_info() -> dict:
    """How the compiled core was built: version, compiler, OpenMP, CUDA, threads.

    ``kernel_variants`` lists the CPU variants of the kernels compiled in (e.g.
    ``["baseline", "avx2", "avx512"]``), ``kernel_variant`` the one running (the best this
    CPU supports, chosen once at import; the environment variable ``ALIP_KERNEL`` forces
    one) and ``cpu_isa`` what this CPU supports.
    """
    return dict(_core.build_info())


def get_num_threads() -> int:
    """Threads the compiled core uses (OpenMP); 1 in a serial build."""
    return int(_core.get_num_threads())


def set_num_threads(n: int) -> None:
    """Sets the number of OpenMP threads of the compiled core."""
    _core.set_num_threads(int(n))
