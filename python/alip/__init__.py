"""alip: active learning of machine-learned interatomic potentials.

The compiled core (neighbor lists, ACSF descriptors with exact derivatives) is
``alip._core``; everything else is Python. Submodules are imported lazily so that
``import alip`` stays cheap and torch remains optional for featurization.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "ACSF": ("alip.descriptors", "ACSF"),
    "Descriptors": ("alip.descriptors", "Descriptors"),
    "neighbor_list": ("alip.neighbors", "neighbor_list"),
    "Calculator": ("alip.calculator", "Calculator"),
    "Committee": ("alip.committee", "Committee"),
    "featurize_pool": ("alip.featurize", "featurize_pool"),
    "FeatureStore": ("alip.feature_store", "FeatureStore"),
    "score_pool_streamed": ("alip.pool_scoring", "score_pool_streamed"),
}


def build_info() -> dict:
    """How the compiled core was built: version, compiler, OpenMP, CUDA, threads.

    ``kernel_variants`` lists the CPU variants of the kernels compiled in (e.g.
    ``["baseline", "avx2", "avx512"]``), ``kernel_variant`` the one running (the best this
    CPU supports, chosen once at import; the environment variable ``ALIP_KERNEL`` forces
    one) and ``cpu_isa`` what this CPU supports.
    """
    from . import _core

    return dict(_core.build_info())


def get_num_threads() -> int:
    """Threads the compiled core uses (OpenMP); 1 in a serial build."""
    from . import _core

    return int(_core.get_num_threads())


def set_num_threads(n: int) -> None:
    """Sets the number of OpenMP threads of the compiled core."""
    from . import _core

    _core.set_num_threads(int(n))


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'alip' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
