"""Structures and their labels: Si structure families, oracles, the label store, extxyz/db
pool reading, featurization into the feature store, and extxyz I/O helpers.
Names load lazily (:mod:`alip._lazy`); the modules themselves hold the full API."""

from alip._lazy import lazy_exports as _lazy_exports

_LAZY = {
    "generate_si_pool": "alip.data.structures",
    "Oracle": "alip.data.oracles",
    "Label": "alip.data.oracles",
    "make_oracle": "alip.data.oracles",
    "LabelStore": "alip.data.store",
    "PoolReader": "alip.data.pool_reader",
    "open_pool": "alip.data.pool_reader",
    "featurize_pool": "alip.data.featurize",
    "FeatureStore": "alip.data.feature_store",
    "read_extxyz": "alip.data.io",
    "write_extxyz": "alip.data.io",
    "read_labeled": "alip.data.io",
}

__all__ = list(_LAZY)
__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)
