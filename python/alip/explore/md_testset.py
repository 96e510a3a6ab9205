"""The physical test set: frames of the oracle's own molecular dynamics, errors per subset.

Structures that simulations actually visit: Langevin NVT with the *oracle* as the
calculator from a seed structure, a few frames per subset after equilibration, each
labelled with the oracle's energy, forces and stress computed along the way (no extra
calls) and tagged ``info["subset"]``.  The default silicon set
(:func:`si_md_subsets`, 64 atoms, 2 fs steps) is

==================  ==============================================================
``crystal_300K``    diamond, 300 K
``crystal_900K``    diamond, 900 K
``crystal_1500K``   diamond, 1500 K
``vacancy_900K``    diamond with one vacancy (63 atoms), 900 K
``liquid_2000K``    melted at 4000 K for 2 ps, then 2000 K (above SW's melting point,
                    ~1690 K), at the crystal's volume (a stretched liquid)
==================  ==============================================================

10 frames per subset, 50 fs apart, after 0.5 ps of equilibration.  With
Stillinger–Weber the whole set costs ~3500 oracle calls on 64 atoms (about a minute);
with DFT every MD step is a DFT call, so generate it once on a cluster.  Either way it is
generated once per oracle and settings and cached: the file name is a hash of the
oracle's spec, the subsets and the seed (:func:`md_test_set`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.build import bulk

__all__ = [
    "MDSubset",
    "si_md_subsets",
    "subsets_from_seeds",
    "generate_md_test_set",
    "md_test_set",
    "errors_by_subset",
    "default_cache_dir",
    "CACHE_VERSION",
]

#: bump when the generation procedure changes, so old caches are not reused
CACHE_VERSION = 1


@dataclass(frozen=True)
class MDSubset:
    """One subset: NVT from ``structure`` at ``temperature`` K, ``frames`` frames ``every``
    steps apart after ``equilibration`` steps; optionally melted first at
    ``melt_temperature`` for ``melt_steps``.  ``timestep`` in fs, ``friction`` in 1/fs."""

    name: str
    structure: Atoms
    temperature: float
    frames: int = 10
    every: int = 25
    equilibration: int = 250
    melt_temperature: float | None = None
    melt_steps: int = 0
    timestep: float = 2.0
    friction: float = 0.02

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError("a subset needs a name")
        if not isinstance(self.structure, Atoms) or len(self.structure) == 0:
            raise ValueError(f"subset {self.name}: structure must be a non-empty ase.Atoms")
        for key in ("temperature", "timestep", "friction"):
            if not (math.isfinite(getattr(self, key)) and getattr(self, key) > 0):
                raise ValueError(f"subset {self.name}: {key} must be > 0, got {getattr(self, key)!r}")
        if self.melt_temperature is not None and not self.melt_temperature > 0:
            raise ValueError(f"subset {self.name}: melt_temperature must be > 0")
        if self.frames < 1 or self.every < 1 or self.equilibration < 0 or self.melt_steps < 0:
            raise ValueError(f"subset {self.name}: frames and every must be >= 1, step counts >= 0")

    def key(self) -> dict[str, Any]:
        """JSON-able description (the structure by its numbers, cell and positions)."""
        d = {k: v for k, v in asdict(self).items() if k != "structure"}
        s = self.structure
        d["structure"] = {
            "numbers": s.numbers.tolist(),
            "cell": np.round(s.cell.array, 10).tolist(),
            "pbc": s.pbc.tolist(),
            "positions": np.round(s.positions, 10).tolist(),
        }
        return d


def si_md_subsets(n_frames: int = 10, scale: float = 1.0) -> list[MDSubset]:
    """The default silicon subsets (module docstring); ``scale`` multiplies the step counts
    (tests use a small one), ``n_frames`` the frames per subset."""
    crystal = bulk("Si", "diamond", a=5.431, cubic=True).repeat(2)
    vacancy = crystal.copy()
    del vacancy[0]
    steps = lambda n: max(1, int(round(n * scale)))  # noqa: E731
    common = dict(frames=n_frames, every=steps(25), equilibration=steps(250))
    return [
        MDSubset("crystal_300K", crystal, 300.0, **common),
        MDSubset("crystal_900K", crystal, 900.0, **common),
        MDSubset("crystal_1500K", crystal, 1500.0, **common),
        MDSubset("vacancy_900K", vacancy, 900.0, **common),
        MDSubset("liquid_2000K", crystal, 2000.0, melt_temperature=4000.0, melt_steps=steps(1000), **common),
    ]


def _label(atoms: Atoms, oracle: Any) -> tuple[float, np.ndarray, np.ndarray | None]:
    energy = atoms.get_potential_energy(force_consistent=oracle.force_consistent)
    forces = atoms.get_forces()
    stress = atoms.get_stress(voigt=True) if atoms.pbc.all() else None
    return float(energy), forces, stress


def _run_subset(subset: MDSubset, oracle: Any, rng: np.random.Generator) -> list[Atoms]:
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin

    from alip.data.io import attach_label
    from alip.explore.trajectories import thermalize

    atoms = subset.structure.copy()
    atoms.calc = oracle.make_calculator(atoms)
    atoms.set_constraint(FixCom())
    dt = subset.timestep * units.fs
    out: list[Atoms] = []
    if subset.melt_temperature is not None and subset.melt_steps:
        thermalize(atoms, subset.melt_temperature, rng)
        Langevin(
            atoms,
            dt,
            temperature_K=subset.melt_temperature,
            friction=subset.friction / units.fs,
            fixcm=False,
            rng=rng,
            logfile=None,
        ).run(subset.melt_steps)
    else:
        thermalize(atoms, subset.temperature, rng)
    dyn = Langevin(
        atoms,
        dt,
        temperature_K=subset.temperature,
        friction=subset.friction / units.fs,
        fixcm=False,
        rng=rng,
        logfile=None,
    )
    dyn.run(subset.equilibration)
    for i in range(subset.frames):
        if i:
            dyn.run(subset.every)
        energy, forces, stress = _label(atoms, oracle)
        if not (np.isfinite(energy) and np.isfinite(forces).all()):
            raise FloatingPointError(f"subset {subset.name}: the oracle's MD became non-finite")
        frame = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        frame = attach_label(frame, energy, forces, stress)
        frame.info.update(
            {"subset": subset.name, "family": f"md_{subset.name}", "md_temperature": subset.temperature, "md_frame": i}
        )
        out.append(frame)
    return out


def generate_md_test_set(
    oracle: Any, subsets: Sequence[MDSubset] | None = None, seed: int = 0, progress: bool = False
) -> list[Atoms]:
    """Run the oracle's MD for each subset; labelled frames tagged ``info["subset"]``.

    ``oracle``: anything :func:`alip.oracles.make_oracle` accepts, whose oracle can build an
    ASE calculator (not ``stored:``: stored labels cannot run dynamics).
    """
    from tqdm.auto import tqdm

    from alip.data.oracles import StoredLabelOracle, make_oracle

    oracle = make_oracle(oracle)
    if isinstance(oracle, StoredLabelOracle):
        raise ValueError(
            "an MD test set needs an oracle that computes (stored labels cannot run MD); "
            "give the MD frames as [test] file instead"
        )
    subsets = list(si_md_subsets() if subsets is None else subsets)
    if not subsets:
        raise ValueError("no MD subsets given")
    names = [s.name for s in subsets]
    if len(set(names)) != len(names):
        raise ValueError(f"subset names must be unique, got {names}")
    frames: list[Atoms] = []
    for k, subset in enumerate(tqdm(subsets, desc="oracle MD test set", disable=not progress)):
        with warnings.catch_warnings():  # matscipy's Tersoff form: a np.where warning it handles itself
            warnings.filterwarnings("ignore", message=".*'where' used without 'out'.*")
            frames.extend(_run_subset(subset, oracle, np.random.default_rng([int(seed), k])))
    for i, f in enumerate(frames):
        f.info["test_id"] = i
    return frames


def default_cache_dir() -> Path:
    """``$ALIP_CACHE_DIR``, else ``$XDG_CACHE_HOME/alip``, else ``~/.cache/alip``."""
    if os.environ.get("ALIP_CACHE_DIR"):
        return Path(os.environ["ALIP_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "alip"


def cache_key(oracle: Any, subsets: Sequence[MDSubset], seed: int) -> str:
    """Hash of everything that determines the frames: oracle spec, subsets, seed, version."""
    from alip.data.oracles import make_oracle

    spec = make_oracle(oracle).spec()
    blob = json.dumps(
        {"oracle": spec, "subsets": [s.key() for s in subsets], "seed": int(seed), "version": CACHE_VERSION},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def md_test_set(
    oracle: Any = "sw",
    subsets: Sequence[MDSubset] | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> list[Atoms]:
    """The physical test set, generated once per oracle and settings, then read from the cache.

    The cache file is ``cache_dir/md_testset-<hash>.extxyz`` (:func:`cache_key`; default
    directory :func:`default_cache_dir`), written to a temporary name and renamed, so an
    interrupted generation leaves no partial file.
    """
    from alip.data.io import read_extxyz, write_extxyz
    from alip.files import atomic_path

    subsets = list(si_md_subsets() if subsets is None else subsets)
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = directory / f"md_testset-{cache_key(oracle, subsets, seed)}.extxyz"
    if path.is_file():
        return read_extxyz(path)
    frames = generate_md_test_set(oracle, subsets, seed, progress)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, ".extxyz") as tmp:
        write_extxyz(tmp, frames)
    return frames


def errors_by_subset(committee: Any, frames: Sequence[Atoms]) -> dict[str, dict[str, float]]:
    """RMSE of the committee mean per ``info["subset"]`` (and ``"all"``): energy per atom
    (eV), forces (eV/Å), stress (eV/Å³) and the frame count ``n``, via
    :func:`alip.training.errors`."""
    from alip.models.training import errors

    frames = list(frames)
    if not frames:
        raise ValueError("no frames to evaluate")
    groups: dict[str, list[Atoms]] = {}
    for f in frames:
        groups.setdefault(str(f.info.get("subset", "unknown")), []).append(f)
    out = {name: {**errors(committee, group), "n": len(group)} for name, group in groups.items()}
    out["all"] = {**errors(committee, frames), "n": len(frames)}
    return out


def subsets_from_seeds(
    seeds: Sequence[Atoms], temperatures: Sequence[float], n_frames: int = 10, scale: float = 1.0
) -> list[MDSubset]:
    """Subsets for any elements: each seed (already a supercell) at each temperature,
    named ``seed<i>_<T>K``; the same step counts as :func:`si_md_subsets`."""
    steps = lambda n: max(1, int(round(n * scale)))  # noqa: E731
    return [
        MDSubset(f"seed{i}_{float(t):g}K", s, float(t), frames=n_frames, every=steps(25), equilibration=steps(250))
        for i, s in enumerate(seeds)
        for t in temperatures
    ]
