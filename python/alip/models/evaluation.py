"""A committee against labelled structures: errors per frame, per group and over all, with the
committee's own spread beside them (what ``dp test``, ``nequip-evaluate`` or MACE's
evaluation give their users).

Conventions (those of the README's benchmark tables): energy per atom in meV/atom, forces per
Cartesian component in eV/Å, stress over the 6 Voigt components (xx yy zz yz xz xy) in GPa,
each error the committee mean minus the label; the spread is the committee's standard
deviation of the energy per atom (meV/atom) and DP-GEN's force deviation ε_F,i (eV/Å).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.stress import full_3x3_to_voigt_6_stress
from ase.units import GPa

from alip.models.committee import Committee
from alip.models.training_data import read_labels

__all__ = ["Evaluation", "evaluate", "group_labels", "error_table", "markdown_rows", "GROUP_KEYS"]

#: ``info`` keys that name a frame's group, tried in this order by ``by="auto"``: MACE's and
#: nequip's ``config_type``, the mlearn benchmark's ``group``, alip's own ``family``.
GROUP_KEYS: tuple[str, ...] = ("config_type", "group", "family")


@dataclass
class Evaluation:
    """Per-frame errors of a committee on S labelled frames (N atoms in all)."""

    n_atoms: np.ndarray  # (S,)
    energy_error: np.ndarray  # (S,) meV/atom, committee mean − label
    energy_std: np.ndarray  # (S,) meV/atom, committee spread
    force_error: np.ndarray  # (N, 3) eV/Å
    force_deviation: np.ndarray  # (N,) eV/Å, ε_F,i
    stress_error: np.ndarray  # (S, 6) GPa, NaN rows where a frame has no stress label
    predicted_energy: np.ndarray  # (S,) eV, committee mean
    predicted_forces: np.ndarray  # (N, 3) eV/Å, committee mean
    predicted_stress: np.ndarray  # (S, 6) eV/Å³, committee mean (NaN without a cell)

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.n_atoms)])

    def summary(self, frames: Sequence[int] | np.ndarray | None = None) -> dict[str, float]:
        """RMSE and MAE of energy, forces and stress (over the frames with a stress label:
        ``n_stress``), the mean energy error (the offset) and the spread (mean energy std, largest
        ε_F,i) over ``frames`` (indices or a boolean mask; default all)."""
        if frames is None:
            idx = np.arange(len(self.n_atoms))
        else:
            idx = np.asarray(frames)
            if idx.dtype == bool:  # a mask over the frames, not indices 0 and 1
                if idx.shape != self.n_atoms.shape:
                    raise ValueError(f"a frame mask needs {len(self.n_atoms)} entries, got {idx.shape}")
                idx = np.flatnonzero(idx)
            idx = idx.astype(int)
        off = self.offsets
        atoms = np.concatenate([np.arange(off[s], off[s + 1]) for s in idx]) if len(idx) else np.zeros(0, int)
        de, df = self.energy_error[idx], self.force_error[atoms]
        ds = self.stress_error[idx]
        ds = ds[np.isfinite(ds).all(axis=1)]
        nan = float("nan")
        return {
            "n": int(len(idx)),
            "energy_rmse": float(np.sqrt(np.mean(de**2))) if len(idx) else nan,
            "energy_mae": float(np.mean(np.abs(de))) if len(idx) else nan,
            "energy_mean": float(np.mean(de)) if len(idx) else nan,
            "force_rmse": float(np.sqrt(np.mean(df**2))) if df.size else nan,
            "force_mae": float(np.mean(np.abs(df))) if df.size else nan,
            "stress_rmse": float(np.sqrt(np.mean(ds**2))) if ds.size else nan,
            "n_stress": int(len(ds)),
            "energy_std_mean": float(np.mean(self.energy_std[idx])) if len(idx) else nan,
            "force_deviation_max": float(self.force_deviation[atoms].max()) if len(atoms) else nan,
        }

    def by_group(self, groups: Sequence[str]) -> dict[str, dict[str, float]]:
        """:meth:`summary` of each group's frames (``groups``: one name per frame), sorted by name."""
        if len(groups) != len(self.n_atoms):
            raise ValueError(f"{len(groups)} group names for {len(self.n_atoms)} frames")
        names = np.asarray([str(g) for g in groups])
        return {g: self.summary(np.flatnonzero(names == g)) for g in sorted(set(names.tolist()))}


def group_labels(frames: Sequence[Atoms], by: str = "auto") -> tuple[str, list[str]] | None:
    """The key and one group name per frame from ``info[key]`` (``"(none)"`` where a frame lacks
    it); ``by="auto"``: the first of :data:`GROUP_KEYS` that any frame carries, or None if none
    does; ``by="none"``: None."""
    if by == "none":
        return None
    if by == "auto":
        by = next((k for k in GROUP_KEYS if any(k in a.info for a in frames)), "")
        if not by:
            return None
    return by, [str(a.info.get(by, "(none)")) for a in frames]


def error_table(ev: Evaluation, groups: tuple[str, list[str]] | None) -> dict[str, dict[str, float]]:
    """``{"all": summary, "KEY: name": summary, ...}`` for the groups of :func:`group_labels`."""
    table = {"all": ev.summary()}
    if groups is not None:
        key, names = groups
        table |= {f"{key}: {g}": r for g, r in ev.by_group(names).items()}
    return table


def markdown_rows(table: dict[str, dict[str, float]]) -> list[str]:
    """:func:`error_table` as a Markdown table (— where a group has no such label)."""

    def num(x: float, fmt: str) -> str:
        return "—" if not np.isfinite(x) else format(x, fmt)

    out = [
        "| group | n | E RMSE (meV/atom) | E MAE | E mean | F RMSE (eV/Å) | F MAE | σ RMSE (GPa) | E std (meV/atom) "
        "| max εF (eV/Å) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in table.items():
        cells = [
            num(r["energy_rmse"], ".2f"),
            num(r["energy_mae"], ".2f"),
            num(r["energy_mean"], "+.2f"),
            num(r["force_rmse"], ".4f"),
            num(r["force_mae"], ".4f"),
            num(r["stress_rmse"], ".3f"),
            num(r["energy_std_mean"], ".2f"),
            num(r["force_deviation_max"], ".3f"),
        ]
        out.append(f"| {name} | {r['n']} | " + " | ".join(cells) + " |")
    return out


def evaluate(committee: Committee, frames: Sequence[Atoms], chunk_size: int = 64) -> Evaluation:
    """The committee's predictions on ``frames`` against their labels (energy and forces
    required; stress where the frame has one and a cell)."""
    frames = list(frames)
    if not frames:
        raise ValueError("no frames to evaluate")
    labels = [read_labels(a) for a in frames]
    pred = committee.predict(frames, chunk_size=chunk_size)
    n = pred.n_atoms
    energy = pred.energies.mean(axis=0)
    forces = pred.forces.mean(axis=0)
    virial = pred.virials.mean(axis=0)
    stress = np.full((len(frames), 6), np.nan)
    stress_error = np.full((len(frames), 6), np.nan)
    for s, (a, (_, _, st)) in enumerate(zip(frames, labels, strict=True)):
        volume = abs(np.linalg.det(a.cell.array)) if a.pbc.all() else 0.0
        if volume > 0:
            stress[s] = full_3x3_to_voigt_6_stress(-virial[s] / volume)
            if st is not None:
                stress_error[s] = (stress[s] - full_3x3_to_voigt_6_stress(np.asarray(st))) / GPa
    return Evaluation(
        n_atoms=n,
        energy_error=1e3 * (energy - np.array([e for e, _, _ in labels])) / n,
        energy_std=1e3 * pred.energy_std_per_atom(),
        force_error=forces - np.concatenate([f for _, f, _ in labels]),
        force_deviation=pred.force_deviation(),
        stress_error=stress_error,
        predicted_energy=energy,
        predicted_forces=forces,
        predicted_stress=stress,
    )
