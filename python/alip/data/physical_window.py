"""The physical energy window: drop generated structures far above the lowest energy.

The embedded Si families reach far beyond where simulations go: with Stillinger–Weber
the large distortions sit a median 1.2 eV/atom above diamond (up to 7.6) and the random
structures a median 2.5 eV/atom.  :func:`physical_window` keeps the structures whose
energy per atom is at most ``max_above`` (default :data:`DEFAULT_MAX_ABOVE` = 1 eV/atom)
above the lowest in the set.

Where the energies come from is a question of cost:

* a cheap oracle (the matscipy potentials ``sw``, ``kumagai``, ``tersoff``, ...) or
  ``stored:`` labels: the oracle itself — milliseconds per structure, or free;
* an expensive oracle (DFT, user code): every filtered structure would be a paid label,
  most of them thrown away.  :func:`physical_window` then refuses unless given
  ``energies`` from elsewhere, e.g. a committee trained on the first labels
  (``committee.predict(pool).energies.mean(0)``), with the committee's own error in mind;
  or the window is skipped (``max_above = 0`` in the config).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms

__all__ = ["DEFAULT_MAX_ABOVE", "WindowResult", "physical_window", "oracle_energies_are_cheap", "within_window"]

#: eV/atom above the lowest energy of the set
DEFAULT_MAX_ABOVE = 1.0


def oracle_energies_are_cheap(oracle: Any) -> bool:
    """True for oracles whose energies cost (almost) nothing: the matscipy potentials and
    stored labels."""
    from alip.data.oracles import ManybodyOracle, StoredLabelOracle, make_oracle

    return isinstance(make_oracle(oracle), (ManybodyOracle, StoredLabelOracle))


def within_window(energy_per_atom: Sequence[float] | np.ndarray, max_above: float) -> np.ndarray:
    """Boolean mask: finite energies at most ``max_above`` eV/atom above the lowest finite one."""
    if not (math.isfinite(max_above) and max_above > 0):
        raise ValueError(f"max_above must be a positive energy per atom (eV), got {max_above!r}")
    e = np.asarray(energy_per_atom, dtype=float)
    ok = np.isfinite(e)
    if not ok.any():
        raise ValueError("no structure has a finite energy: nothing to anchor the window on")
    return ok & (e <= e[ok].min() + max_above)


@dataclass
class WindowResult:
    """The kept structures and what was seen: ``energy_per_atom`` of every input (NaN where
    the oracle failed), the ``kept`` mask, ``e_min`` the anchor, ``families`` of the inputs."""

    structures: list[Atoms]
    energy_per_atom: np.ndarray
    kept: np.ndarray
    e_min: float
    max_above: float
    families: tuple[str, ...] = ()

    def summary(self) -> dict[str, dict[str, int]]:
        """{family: {"kept": k, "dropped": d}} over the input structures."""
        out: dict[str, dict[str, int]] = {}
        for fam, keep in zip(self.families, self.kept):
            row = out.setdefault(fam, {"kept": 0, "dropped": 0})
            row["kept" if keep else "dropped"] += 1
        return out


def physical_window(
    structures: Sequence[Atoms],
    oracle: Any = "sw",
    max_above: float = DEFAULT_MAX_ABOVE,
    energies: Sequence[float] | None = None,
) -> WindowResult:
    """Keep the structures within ``max_above`` eV/atom of the lowest energy per atom.

    ``energies`` (total, eV, one per structure) come from elsewhere (e.g. a committee);
    otherwise the oracle computes them, which is refused for an oracle that is not cheap
    (:func:`oracle_energies_are_cheap`).  Structures the oracle fails on are dropped.
    Kept structures are the inputs themselves (same objects, order kept).
    """
    structures = list(structures)
    if not structures:
        raise ValueError("no structures to filter")
    n_atoms = np.array([len(a) for a in structures], dtype=float)
    if energies is None:
        from alip.data.oracles import make_oracle

        oracle = make_oracle(oracle)
        if not oracle_energies_are_cheap(oracle):
            raise ValueError(
                f"the physical window would label every structure with {oracle.name!r}, "
                f"an expensive oracle; pass energies from a committee, or switch the "
                f"window off (max_above = 0)"
            )
        labels = [oracle.label(a) for a in structures]
        total = np.array([lab.energy if lab.ok else math.nan for lab in labels], dtype=float)
    else:
        total = np.asarray(energies, dtype=float)
        if total.shape != n_atoms.shape:
            raise ValueError(f"got {total.shape[0] if total.ndim else 0} energies for {len(structures)} structures")
    e = total / n_atoms
    kept = within_window(e, max_above)
    return WindowResult(
        [a for a, k in zip(structures, kept) if k],
        e,
        kept,
        float(np.nanmin(e)),
        float(max_above),
        tuple(str(a.info.get("family", "unknown")) for a in structures),
    )
