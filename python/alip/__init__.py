"""alip: active learning of machine-learned interatomic potentials.

The compiled core (neighbor lists, ACSF descriptors with exact derivatives) is
``alip._core``; everything else is Python, in layers that import only downward:
``alip.config`` (defaults) < ``alip.core`` < ``alip.data`` < ``alip.models`` < ``alip.al``
< ``alip.reports`` < ``alip.cli`` (see the README's Layout section).

The names below are imported lazily so that ``import alip`` stays cheap and torch remains
optional for featurization.
"""

from alip._lazy import lazy_exports as _lazy_exports
from alip._version import __version__

_LAZY = {
    "build_info": "alip.core.build",
    "get_num_threads": "alip.core.build",
    "set_num_threads": "alip.core.build",
    "ACSF": "alip.core.descriptors",
    "Descriptors": "alip.core.descriptors",
    "neighbor_list": "alip.core.neighbors",
    "featurize_pool": "alip.data.featurize",
    "FeatureStore": "alip.data.feature_store",
    "Calculator": "alip.models.calculator",
    "Committee": "alip.models.committee",
    "score_pool_streamed": "alip.al.pool_scoring",
}

__all__ = ["__version__", *_LAZY]
__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)
