"""Seeded pools of silicon structures, tagged by family.

Four families, as in the seed work:

* ``"volume"`` -- ideal crystals (diamond by default; beta-tin, sc, bcc, fcc and
  hcp on request) uniformly scaled over a volume range, for the E--V curve;
* ``"small_distortion"`` -- diamond supercells (8--64 atoms) with a random
  symmetric strain of a few percent and small Gaussian atomic displacements;
* ``"large_distortion"`` -- any polymorph with a volume change, larger strain
  and one of three treatments: ``"strain"`` (larger displacements),
  ``"vacancy"`` (1--2 atoms removed, then displaced) or ``"snapshot"``
  (thermal-like displacements drawn from an Einstein model at a random
  temperature, a cheap stand-in for short MD snapshots);
* ``"random"`` -- random positions in random cells at sensible densities with
  a minimum interatomic distance (random sequential addition).

Every structure has ``info["family"]`` and, once placed in a pool by
:func:`generate_si_pool`, a unique integer ``info["pool_id"]``.  Each structure
draws from its own random stream ``(seed, family, index)``, so a family's
``k``-th structure does not depend on how many others are generated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.units import _amu, _e, _hbar, _k, kB
from matscipy.neighbours import neighbour_list
from tqdm.auto import tqdm

from alip.config import FAMILIES, POLYMORPHS

#: Approximate equilibrium volumes per atom (A^3).  They only centre the volume
#: ranges; diamond uses the experimental a0 = 5.431 A (also SW's minimum).
REFERENCE_VOLUME: dict[str, float] = {
    "diamond": 5.431**3 / 8,
    "beta_tin": 15.3,
    "sc": 15.9,
    "bcc": 14.8,
    "fcc": 14.6,
    "hcp": 14.4,
}

#: Supercell repeats of each polymorph's conventional cell that give 8--64 atoms.
REPEATS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "diamond": ((1, 1, 1), (2, 1, 1), (2, 2, 1), (2, 2, 2)),
    "beta_tin": ((1, 1, 2), (1, 1, 4), (2, 2, 2), (2, 2, 4)),
    "sc": ((2, 2, 2), (2, 2, 4), (3, 3, 3), (4, 4, 4)),
    "bcc": ((2, 2, 1), (2, 2, 2), (3, 3, 2), (4, 4, 2)),
    "fcc": ((2, 1, 1), (2, 2, 1), (2, 2, 2)),
    "hcp": ((2, 2, 1), (2, 2, 2), (3, 3, 2), (4, 4, 2)),
}

_FAMILY_CODE = {name: i + 1 for i, name in enumerate(FAMILIES)}
_SI_MASS_AMU = 28.0855
#: Einstein temperature of Si (K) for the thermal-snapshot displacements.
_SI_EINSTEIN_TEMPERATURE = 640.0


def _rng(seed: int, family: str, index: int) -> np.random.Generator:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng([int(seed), _FAMILY_CODE[family], int(index)])


def _check_count(n: int) -> None:
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")


def _check_polymorphs(names: Sequence[str]) -> tuple[str, ...]:
    names = tuple(names)
    if not names:
        raise ValueError("at least one polymorph is required")
    for name in names:
        if name not in REFERENCE_VOLUME:
            raise ValueError(f"unknown polymorph {name!r}; choose from {POLYMORPHS}")
    return names


def _check_range(name: str, pair: Sequence[float], positive: bool = True) -> tuple[float, float]:
    lo, hi = (float(v) for v in pair)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi or (positive and lo <= 0):
        raise ValueError(f"{name} must be a finite (low, high) pair with 0 < low <= high, got {pair!r}")
    return lo, hi


def si_polymorph(name: str, volume_per_atom: float | None = None, repeat: tuple[int, int, int] | None = None) -> Atoms:
    """Ideal Si crystal ``name`` at ``volume_per_atom`` (A^3), repeated ``repeat``.

    ``repeat`` defaults to the smallest entry of :data:`REPEATS` (8--16 atoms).
    """
    _check_polymorphs([name])
    v = REFERENCE_VOLUME[name] if volume_per_atom is None else float(volume_per_atom)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"volume_per_atom must be positive, got {volume_per_atom!r}")
    if name == "diamond":
        atoms = bulk("Si", "diamond", a=(8 * v) ** (1 / 3), cubic=True)
    elif name == "beta_tin":
        c_over_a = 0.552
        a = (4 * v / c_over_a) ** (1 / 3)
        frac = [(0, 0, 0), (0.5, 0.5, 0.5), (0, 0.5, 0.25), (0.5, 0, 0.75)]
        atoms = Atoms("Si4", scaled_positions=frac, cell=[a, a, c_over_a * a], pbc=True)
    elif name == "sc":
        atoms = bulk("Si", "sc", a=v ** (1 / 3))
    elif name == "bcc":
        atoms = bulk("Si", "bcc", a=(2 * v) ** (1 / 3), cubic=True)
    elif name == "fcc":
        atoms = bulk("Si", "fcc", a=(4 * v) ** (1 / 3), cubic=True)
    else:  # hcp, ideal c/a
        c_over_a = np.sqrt(8 / 3)
        a = (2 * v / (np.sqrt(3) / 2 * c_over_a)) ** (1 / 3)
        atoms = bulk("Si", "hcp", a=a, c=c_over_a * a)
    rep = REPEATS[name][0] if repeat is None else tuple(int(r) for r in repeat)
    if len(rep) != 3 or min(rep) < 1:
        raise ValueError(f"repeat must be three positive integers, got {repeat!r}")
    atoms = atoms.repeat(rep)
    atoms.wrap()
    return atoms


def min_distance(atoms: Atoms, cutoff: float = 4.0) -> float:
    """Smallest interatomic distance including periodic images (inf if none < cutoff)."""
    if len(atoms) < 2 and not atoms.pbc.any():
        return float("inf")
    d = neighbour_list("d", atoms, float(cutoff))
    return float(d.min()) if len(d) else float("inf")


def _heights(cell: np.ndarray) -> np.ndarray:
    """Perpendicular widths of a cell (distance between opposite faces)."""
    vol = abs(np.linalg.det(cell))
    return np.array([vol / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)])


def _random_strain(rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """Symmetric strain tensor with entries uniform in [-amplitude, amplitude]."""
    e = rng.uniform(-amplitude, amplitude, size=(3, 3))
    return 0.5 * (e + e.T)


def _apply_strain(atoms: Atoms, strain: np.ndarray) -> None:
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)


def _family_iter(n: int, family: str, seed: int, make: Callable[[np.random.Generator], Atoms]) -> Iterator[Atoms]:
    for i in range(n):
        atoms = make(_rng(seed, family, i))
        atoms.info["family"] = family
        atoms.wrap()
        yield atoms


# ----------------------------------------------------------------------------- volume
def _iter_volume(
    n: int, seed: int = 0, polymorphs: Sequence[str] = ("diamond",), volume_range: tuple[float, float] = (0.85, 1.15)
) -> Iterator[Atoms]:
    _check_count(n)
    polymorphs = _check_polymorphs(polymorphs)
    lo, hi = _check_range("volume_range", volume_range)
    counts = [len(range(k, n, len(polymorphs))) for k in range(len(polymorphs))]
    for name, count in zip(polymorphs, counts):
        scales = np.linspace(lo, hi, count) if count > 1 else np.array([0.5 * (lo + hi)])
        for s in scales:
            v = REFERENCE_VOLUME[name] * s
            atoms = si_polymorph(name, v)
            atoms.info.update(family="volume", parent=name, scale=float(s), volume_per_atom=float(v))
            yield atoms


def volume_series(
    n: int, seed: int = 0, polymorphs: Sequence[str] = ("diamond",), volume_range: tuple[float, float] = (0.85, 1.15)
) -> list[Atoms]:
    """Ideal crystals uniformly scaled over ``volume_range`` (V/V0).

    ``n`` points are shared round-robin among ``polymorphs``; each polymorph gets
    an evenly spaced grid of volumes (the series is deterministic; ``seed`` is
    accepted for a uniform signature).  ``info["scale"]`` is V/V0 and
    ``info["parent"]`` the polymorph.  Cells are the smallest of :data:`REPEATS`.
    """
    return list(_iter_volume(n, seed, polymorphs, volume_range))


# ----------------------------------------------------------------------------- small distortions
def _iter_small(
    n: int,
    seed: int = 0,
    parents: Sequence[str] = ("diamond",),
    max_strain: float = 0.03,
    displacement: float = 0.05,
    max_atoms: int = 64,
    min_dist: float = 1.9,
    max_tries: int = 100,
) -> Iterator[Atoms]:
    _check_count(n)
    parents = _check_polymorphs(parents)
    if max_strain < 0 or displacement < 0:
        raise ValueError("max_strain and displacement must be non-negative")

    def make(rng: np.random.Generator) -> Atoms:
        name = parents[rng.integers(len(parents))]
        reps = [r for r in REPEATS[name] if np.prod(r) * len(si_polymorph(name, repeat=(1, 1, 1))) <= max_atoms]
        if not reps:
            raise ValueError(f"max_atoms={max_atoms} is below the smallest {name} cell")
        rep = reps[rng.integers(len(reps))]
        for _ in range(max_tries):
            atoms = si_polymorph(name, repeat=rep)
            strain = _random_strain(rng, max_strain)
            _apply_strain(atoms, strain)
            atoms.positions += rng.normal(0.0, displacement, size=(len(atoms), 3))
            if min_distance(atoms) >= min_dist:
                atoms.info.update(parent=name, strain=float(np.abs(strain).max()), displacement=float(displacement))
                return atoms
        raise RuntimeError(
            f"no small distortion of {name} above min_dist={min_dist} A "
            f"in {max_tries} tries; lower displacement or min_dist"
        )

    return _family_iter(n, "small_distortion", seed, make)


def small_distortions(
    n: int,
    seed: int = 0,
    parents: Sequence[str] = ("diamond",),
    max_strain: float = 0.03,
    displacement: float = 0.05,
    max_atoms: int = 64,
    min_dist: float = 1.9,
) -> list[Atoms]:
    """Supercells of ``parents`` (8..``max_atoms`` atoms) with small random strain.

    Strain: symmetric tensor with entries uniform in ``[-max_strain, max_strain]``;
    atomic displacements: Gaussian with standard deviation ``displacement`` (A).
    Structures with any distance below ``min_dist`` are redrawn.
    """
    return list(_iter_small(n, seed, parents, max_strain, displacement, max_atoms, min_dist))


# ----------------------------------------------------------------------------- large distortions
LARGE_KINDS: tuple[str, ...] = ("strain", "vacancy", "snapshot")


def einstein_sigma(temperature: float) -> float:
    """Std. dev. (A) of one Cartesian displacement of Si in an Einstein solid at T (K).

    Classical equipartition: sigma^2 = k_B T / (m omega_E^2), with the Einstein
    temperature 640 K (omega_E = k_B Theta_E / hbar).
    """
    omega = _k * _SI_EINSTEIN_TEMPERATURE / _hbar  # rad/s
    k_spring = _SI_MASS_AMU * _amu * omega**2 / _e * 1e-20  # eV/A^2
    return float(np.sqrt(kB * temperature / k_spring))


def _iter_large(
    n: int,
    seed: int = 0,
    parents: Sequence[str] = POLYMORPHS,
    kinds: Sequence[str] = LARGE_KINDS,
    volume_range: tuple[float, float] = (0.9, 1.1),
    max_strain: float = 0.10,
    displacement: float = 0.12,
    temperature_range: tuple[float, float] = (300.0, 2500.0),
    max_vacancies: int = 2,
    max_atoms: int = 64,
    min_dist: float = 1.9,
    max_tries: int = 200,
) -> Iterator[Atoms]:
    _check_count(n)
    parents = _check_polymorphs(parents)
    kinds = tuple(kinds)
    for k in kinds:
        if k not in LARGE_KINDS:
            raise ValueError(f"unknown large-distortion kind {k!r}; choose from {LARGE_KINDS}")
    if not kinds:
        raise ValueError("at least one large-distortion kind is required")
    vlo, vhi = _check_range("volume_range", volume_range)
    tlo, thi = _check_range("temperature_range", temperature_range)
    if max_vacancies < 1:
        raise ValueError("max_vacancies must be >= 1")

    def make(rng: np.random.Generator) -> Atoms:
        name = parents[rng.integers(len(parents))]
        kind = kinds[rng.integers(len(kinds))]
        base = len(si_polymorph(name, repeat=(1, 1, 1)))
        smallest = 8 + max_vacancies if kind == "vacancy" else 1
        reps = [r for r in REPEATS[name] if smallest <= np.prod(r) * base <= max_atoms]
        if not reps:
            raise ValueError(f"no {name} supercell fits kind={kind!r} with max_atoms={max_atoms}")
        rep = reps[rng.integers(len(reps))]
        for _ in range(max_tries):
            scale = rng.uniform(vlo, vhi)
            atoms = si_polymorph(name, REFERENCE_VOLUME[name] * scale, repeat=rep)
            strain = _random_strain(rng, max_strain)
            _apply_strain(atoms, strain)
            info: dict[str, Any] = dict(parent=name, kind=kind, scale=float(scale), strain=float(np.abs(strain).max()))
            if kind == "vacancy":
                nv = int(rng.integers(1, max_vacancies + 1))
                del atoms[rng.choice(len(atoms), size=nv, replace=False).tolist()]
                info["n_vacancies"] = nv
            if kind == "snapshot":
                temperature = rng.uniform(tlo, thi)
                sigma = einstein_sigma(temperature)
                info["temperature"] = float(temperature)
            else:
                sigma = displacement
            atoms.positions += rng.normal(0.0, sigma, size=(len(atoms), 3))
            info["displacement"] = float(sigma)
            if min_distance(atoms) >= min_dist:
                atoms.info.update(info)
                return atoms
        raise RuntimeError(
            f"no large distortion of {name} above min_dist={min_dist} A "
            f"in {max_tries} tries; lower displacement or min_dist"
        )

    return _family_iter(n, "large_distortion", seed, make)


def large_distortions(
    n: int,
    seed: int = 0,
    parents: Sequence[str] = POLYMORPHS,
    kinds: Sequence[str] = LARGE_KINDS,
    volume_range: tuple[float, float] = (0.9, 1.1),
    max_strain: float = 0.10,
    displacement: float = 0.12,
    temperature_range: tuple[float, float] = (300.0, 2500.0),
    max_vacancies: int = 2,
    max_atoms: int = 64,
    min_dist: float = 1.9,
) -> list[Atoms]:
    """Strongly distorted supercells of any polymorph.

    Each structure picks a parent polymorph, a supercell (8..``max_atoms`` atoms),
    a volume scale in ``volume_range`` and a strain with entries up to
    ``max_strain``, then one ``kind``: ``"strain"`` (Gaussian displacements of
    std ``displacement``), ``"vacancy"`` (1..``max_vacancies`` atoms removed,
    then displaced likewise) or ``"snapshot"`` (Einstein-model thermal
    displacements at a temperature uniform in ``temperature_range``).
    Structures with any distance below ``min_dist`` are redrawn.
    """
    return list(
        _iter_large(
            n,
            seed,
            parents,
            kinds,
            volume_range,
            max_strain,
            displacement,
            temperature_range,
            max_vacancies,
            max_atoms,
            min_dist,
        )
    )


# ----------------------------------------------------------------------------- random
def _images_min_distance(cand: np.ndarray, pos: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Min distance from each candidate to any existing atom over the 27 nearest images."""
    if len(pos) == 0:
        return np.full(len(cand), np.inf)
    inv = np.linalg.inv(cell)
    df = (cand[:, None, :] - pos[None, :, :]) @ inv
    df -= np.round(df)
    shifts = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
    d = (df[:, :, None, :] + shifts[None, None]) @ cell
    return np.sqrt((d**2).sum(-1)).min(axis=(1, 2))


def _iter_random(
    n: int,
    seed: int = 0,
    n_atoms: tuple[int, int] = (8, 32),
    volume_per_atom: tuple[float, float] = (14.0, 24.0),
    min_dist: float = 2.0,
    cell_strain: float = 0.2,
    max_tries: int = 50,
) -> Iterator[Atoms]:
    _check_count(n)
    nlo, nhi = (int(v) for v in n_atoms)
    if nlo < 1 or nlo > nhi:
        raise ValueError(f"n_atoms must be (low, high) with 1 <= low <= high, got {n_atoms!r}")
    vlo, vhi = _check_range("volume_per_atom", volume_per_atom)
    if min_dist <= 0:
        raise ValueError("min_dist must be positive")

    def attempt(rng: np.random.Generator, natoms: int, vpa: float) -> Atoms | None:
        cell = np.eye(3) + _random_strain(rng, cell_strain)
        cell *= (natoms * vpa / np.linalg.det(cell)) ** (1 / 3)
        if _heights(cell).min() <= min_dist:
            return None
        pos = np.empty((0, 3))
        for _ in range(natoms):
            placed = False
            for _ in range(20):
                cand = rng.random((64, 3)) @ cell
                ok = np.nonzero(_images_min_distance(cand, pos, cell) >= min_dist)[0]
                if len(ok):
                    pos = np.vstack([pos, cand[ok[0]]])
                    placed = True
                    break
            if not placed:
                return None
        return Atoms(f"Si{natoms}", positions=pos, cell=cell, pbc=True)

    def make(rng: np.random.Generator) -> Atoms:
        for _ in range(max_tries):
            natoms = int(rng.integers(nlo, nhi + 1))
            vpa = float(rng.uniform(vlo, vhi))
            atoms = attempt(rng, natoms, vpa)
            if atoms is not None and min_distance(atoms) >= min_dist:
                atoms.info["volume_per_atom"] = vpa
                return atoms
        raise RuntimeError(
            f"could not place atoms {min_dist} A apart at {volume_per_atom} A^3/atom "
            f"in {max_tries} tries; lower min_dist or raise the volume"
        )

    return _family_iter(n, "random", seed, make)


def random_structures(
    n: int,
    seed: int = 0,
    n_atoms: tuple[int, int] = (8, 32),
    volume_per_atom: tuple[float, float] = (14.0, 24.0),
    min_dist: float = 2.0,
    cell_strain: float = 0.2,
) -> list[Atoms]:
    """Random positions in random periodic cells.

    Atom count uniform in ``n_atoms`` (inclusive), volume per atom uniform in
    ``volume_per_atom`` (A^3; diamond Si is 20.0), cell = cube distorted by a
    symmetric random strain with entries up to ``cell_strain``.  Atoms are added
    one at a time at uniformly random points at least ``min_dist`` A from every
    atom and image already placed.
    """
    return list(_iter_random(n, seed, n_atoms, volume_per_atom, min_dist, cell_strain))


# ----------------------------------------------------------------------------- pools
_ITERS: dict[str, Callable[..., Iterator[Atoms]]] = {
    "volume": _iter_volume,
    "small_distortion": _iter_small,
    "large_distortion": _iter_large,
    "random": _iter_random,
}


def family_counts(
    n: int, families: Sequence[str] = FAMILIES, fractions: Sequence[float] | None = None
) -> dict[str, int]:
    """Split ``n`` among ``families`` by ``fractions`` (equal by default), largest remainder."""
    _check_count(n)
    families = tuple(families)
    if not families or len(set(families)) != len(families):
        raise ValueError(f"families must be non-empty and distinct, got {families!r}")
    for f in families:
        if f not in FAMILIES:
            raise ValueError(f"unknown family {f!r}; choose from {FAMILIES}")
    w = np.ones(len(families)) if fractions is None else np.asarray(fractions, dtype=float)
    if w.shape != (len(families),) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"fractions must be {len(families)} non-negative numbers with a positive sum")
    exact = n * w / w.sum()
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return {f: int(c) for f, c in zip(families, counts)}


def generate_si_pool(
    n: int,
    seed: int = 0,
    families: Sequence[str] = FAMILIES,
    fractions: Sequence[float] | None = None,
    start_id: int = 0,
    family_kwargs: dict[str, dict[str, Any]] | None = None,
    progress: bool = False,
) -> list[Atoms]:
    """A pool of ``n`` Si structures from ``families``, with unique ``info["pool_id"]``.

    ``fractions`` weights the families (equal by default); ``family_kwargs`` maps
    a family name to keyword arguments of its generator (e.g.
    ``{"volume": {"polymorphs": POLYMORPHS}}``).  Pool ids run from ``start_id``.
    """
    counts = family_counts(n, families, fractions)
    family_kwargs = dict(family_kwargs or {})
    for key in family_kwargs:
        if key not in counts:
            raise ValueError(f"family_kwargs names {key!r}, which is not among families {tuple(counts)}")

    pool: list[Atoms] = []
    with tqdm(total=n, desc="generating Si pool", disable=not progress, unit="struct") as bar:
        for fam, count in counts.items():
            for atoms in _ITERS[fam](count, seed, **family_kwargs.get(fam, {})):
                atoms.info["pool_id"] = start_id + len(pool)
                pool.append(atoms)
                bar.update(1)
    return pool
