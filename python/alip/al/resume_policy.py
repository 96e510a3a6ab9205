"""Which configuration changes a started run accepts when it is resumed.

A run compares the configuration it is resumed with (``RUN/config.toml`` as the user
left it, or a Config given to ``run(..., resume=True)``) with the one it ran under
(kept in ``labels.db``'s meta).  Keys that only say how far, where or how fast the
run goes are *safe*: applied and logged.  Every other key changes what the labels
and iterations so far mean (strategy, seed, pool, test set, descriptor, oracle,
training, acquisition): *unsafe*, refused naming the key and both values unless
``force``; a forced change is written to the log and to the run's meta.
``run.out`` is never compared: a run lives where it is resumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alip.config import Config, ConfigError

#: Keys a resumed run may change freely. run.batch_size is safe: it sets the size of the
#: selections still to come and changes nothing already selected or labeled;
#: training.processes only splits the members over processes (each member's result does
#: not depend on the split: tests/models/test_training_processes.py).
SAFE_KEYS: frozenset[str] = frozenset(
    {
        "run.budget",
        "run.target_force_rmse",
        "run.target_energy_rmse",
        "run.max_iterations",
        "run.batch_size",
        "run.threads",
        "run.device",
        "run.progress",
        "training.processes",
        "labeling.executor",
        "labeling.max_workers",
        "labeling.dask_address",
        "oracle.timeout",
    }
)
IGNORED_KEYS: frozenset[str] = frozenset({"run.out"})


@dataclass(frozen=True)
class Change:
    """One key whose value differs between the run's configuration and the resumed one."""

    key: str
    old: Any
    new: Any

    @property
    def safe(self) -> bool:
        return self.key in SAFE_KEYS

    def __str__(self) -> str:
        return f"{self.key}: {self.old!r} -> {self.new!r}"


def changes(old: Config, new: Config) -> list[Change]:
    """Every key (``table.key``) whose value differs, in table order (run.out left out)."""
    a, b = old.to_dict(), new.to_dict()
    out = []
    for table, entries in b.items():
        for key, value in entries.items():
            name = f"{table}.{key}"
            if name not in IGNORED_KEYS and a.get(table, {}).get(key) != value:
                out.append(Change(name, a.get(table, {}).get(key), value))
    return out


def check_changes(found: list[Change], source: str, force: bool) -> list[Change]:
    """The unsafe changes that ``force`` lets through; ConfigError naming the first one without it."""
    unsafe = [c for c in found if not c.safe]
    if unsafe and not force:
        c = unsafe[0]
        more = f" (and {', '.join(u.key for u in unsafe[1:])})" if len(unsafe) > 1 else ""
        raise ConfigError(
            f"{c.key} changed from {c.old!r} to {c.new!r} in {source}{more}: a started run cannot change it "
            f"(the labels and iterations so far were made with {c.old!r}). Restore it, start a new run, or "
            f"resume with --force to apply it anyway (recorded in the log and the run's meta)"
        )
    return unsafe
