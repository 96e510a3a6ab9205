"""Reports: plots, the HTML report of runs, ``alip demo``.
Names load lazily (:mod:`alip._lazy`); the modules themselves hold the full API."""

from alip._lazy import lazy_exports as _lazy_exports

_LAZY = {
    "build_report": "alip.reports.report",
    "load_run": "alip.reports.report",
    "find_runs": "alip.reports.report",
    "run_demo": "alip.reports.demo",
    "DemoResult": "alip.reports.demo",
}

__all__ = list(_LAZY)
__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)
