"""The compiled core's Python side: the ACSF descriptor and its derivatives, neighbor
lists, the structure batch and species map, the CPU/GPU device path, build info and threads.
Names load lazily (:mod:`alip._lazy`); the modules themselves hold the full API."""

from alip._lazy import lazy_exports as _lazy_exports

_LAZY = {
    "ACSF": "alip.core.descriptors",
    "Descriptors": "alip.core.descriptors",
    "neighbor_list": "alip.core.neighbors",
    "Batch": "alip.core.batch",
    "BatchTensors": "alip.core.batch",
    "species_index": "alip.core.batch",
    "select_device": "alip.core.device",
    "cuda_available": "alip.core.device",
    "build_info": "alip.core.build",
    "get_num_threads": "alip.core.build",
    "set_num_threads": "alip.core.build",
}

__all__ = list(_LAZY)
__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)
