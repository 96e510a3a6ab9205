"""Active learning: scores and batch selection, pool scoring (local or Dask), labeling,
the loop, the run directory, strategy comparison.
Names load lazily (:mod:`alip._lazy`); the modules themselves hold the full API."""

from alip._lazy import lazy_exports as _lazy_exports

_LAZY = {
    "run": "alip.al.loop",
    "RunResult": "alip.al.loop",
    "qbc_scores": "alip.al.acquisition",
    "select_batch": "alip.al.acquisition",
    "score_pool": "alip.al.pool_scoring",
    "score_pool_streamed": "alip.al.pool_scoring",
    "StreamedScores": "alip.al.pool_scoring",
    "label_batch": "alip.al.labeling",
    "make_process_pool": "alip.al.labeling",
    "CompareResult": "alip.al.compare",
    "read_curve": "alip.al.run_dir",
    "read_iterations": "alip.al.run_dir",
}

__all__ = list(_LAZY)
__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)
