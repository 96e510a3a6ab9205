"""Short trajectories driven by the committee itself: where exploration finds its candidates.

A :class:`TrajectoryTask` is a small picklable description (seed structure, ensemble,
temperature, pressure, steps, frame interval, random seed, committee path) so that
trajectories run on the labeling executor (a process pool or Dask workers) exactly as
labels do.  :func:`run_trajectory` runs one with :class:`alip.calculator.Calculator`
(committee mean forces; its spread at every step) and returns a
:class:`TrajectoryResult`: the frames collected every ``every`` steps, each with its
max force deviation, and why the trajectory stopped.

Ensembles (ASE integrators, time step ``timestep`` fs):

``nvt``    Langevin (``ase.md.langevin.Langevin``, friction ``friction`` 1/fs);
``nvt_biased``  the same Langevin dynamics on the committee energy plus the uncertainty
           bias of :mod:`alip.explore.biased` (``bias_strength`` A, ``bias_width`` B, eV):
           pushed toward high committee variance ("pure exploration"); the frames carry
           the unbiased committee spread, which the trust window judges;
``npt``    isotropic Martyna–Tobias–Klein (``ase.md.nose_hoover_chain.IsotropicMTKNPT``,
           thermostat 100 and barostat 1000 time steps), 3-D periodic cells only;
``relax``  FIRE, with ``ase.filters.FrechetCellFilter`` at ``pressure`` for 3-D periodic
           cells (positions only otherwise), until max force < ``fmax`` or ``steps``.

Stopping rules, checked at every step (the frame where a rule fires is kept, flagged,
so that statistics can count it): max force deviation > ``trust_hi`` (DP-GEN: beyond it
the model is in a region it knows nothing about, and what follows is not physics);
two atoms closer than ``min_distance`` or non-finite positions (``exploded``);
non-finite energy or forces (``non_finite``).  Everything random (velocities, Langevin
noise, the optional rattle) comes from ``numpy.random.default_rng(seed)``, so a task
gives the same frames wherever and however often it runs.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.data import covalent_radii

from alip.config import ENSEMBLES, ExploreSection

__all__ = [
    "ENSEMBLES",
    "STOP_REASONS",
    "TrajectoryTask",
    "TrajectoryResult",
    "run_trajectory",
    "run_trajectories",
    "check_seeds",
    "default_min_distance",
    "FRAME_KEYS",
]

#: why a trajectory ended: ran all its steps, relaxation converged, left the trust
#: region, atoms collapsed or the run became non-finite, or the calculator raised.
STOP_REASONS: tuple[str, ...] = ("completed", "converged", "trust_hi", "exploded", "non_finite", "error")
#: info keys of every collected frame: its origin and the committee's spread on it
FRAME_KEYS: tuple[str, ...] = (
    "explore_trajectory",
    "explore_seed",
    "explore_ensemble",
    "explore_temperature",
    "explore_pressure",
    "explore_step",
    "max_force_dev",
    "energy_std_per_atom",
    "model_energy",
    "bias_energy",
)
GPA = units.GPa  # eV/Å³ per GPa


def default_min_distance(numbers: Iterable[int]) -> float:
    """Explosion threshold (Å): 0.7 × the shortest covalent bond (sum of covalent radii)
    among the elements.

    Si: 1.55 Å (the Si–Si bond is 2.35 Å; SW MD at 1500 K stays above ~2.0 Å); C: 1.06 Å
    (C–C bonds are 1.2–1.54 Å).  Frames that close are not physics at these temperatures,
    and labeling the frames just before them would teach the model collapse.
    """
    radii = sorted(float(covalent_radii[z]) for z in set(int(z) for z in numbers))
    if not radii:
        raise ValueError("no atoms")
    return 0.7 * 2 * radii[0]


@dataclass
class TrajectoryTask:
    """One trajectory to run; picklable, validated on construction.

    ``structure`` is the seed (already in its supercell); ``committee`` the path of a
    saved committee (``Committee.save``; what workers should get), a Committee, or a
    calculator factory (see :func:`_calculator`).  ``temperature`` in K,
    ``pressure`` in GPa, ``timestep`` in fs, ``friction`` in 1/fs, ``rattle`` (Å) the std
    of Gaussian displacements applied before the start (useful for relaxing a perfect
    crystal), ``fmax`` (eV/Å) the relaxation's convergence criterion, ``bias_strength``
    and ``bias_width`` (eV) A and B of ``nvt_biased`` (:mod:`alip.explore.biased`).  ``origin`` is
    copied into every frame's info (e.g. the seed's index and the iteration).
    """

    structure: Atoms
    committee: Any
    ensemble: str = "nvt"
    temperature: float = 300.0
    pressure: float = 0.0
    steps: int = 1000
    every: int = 10
    seed: int = 0
    trust_hi: float = math.inf
    timestep: float = 1.0
    friction: float = 0.01
    min_distance: float | None = None
    rattle: float = 0.0
    fmax: float = 0.05
    bias_strength: float = ExploreSection.bias_strength
    bias_width: float = ExploreSection.bias_width
    trajectory_id: str = "traj"
    origin: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.structure, Atoms) or len(self.structure) == 0:
            raise ValueError(f"trajectory {self.trajectory_id}: the seed must be a non-empty ase.Atoms")
        if not (np.isfinite(self.structure.positions).all() and np.isfinite(self.structure.cell.array).all()):
            raise ValueError(f"trajectory {self.trajectory_id}: the seed has non-finite positions or cell")
        if self.ensemble not in ENSEMBLES:
            raise ValueError(
                f"trajectory {self.trajectory_id}: ensemble must be one of {ENSEMBLES}, got {self.ensemble!r}"
            )
        if self.ensemble != "relax" and not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"trajectory {self.trajectory_id}: temperature must be > 0 K, got {self.temperature!r}")
        if not math.isfinite(self.pressure):
            raise ValueError(f"trajectory {self.trajectory_id}: pressure must be finite, got {self.pressure!r}")
        if self.ensemble == "npt" and not self.structure.pbc.all():
            raise ValueError(f"trajectory {self.trajectory_id}: npt needs a 3-D periodic seed")
        for name in ("steps", "every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"trajectory {self.trajectory_id}: {name} must be an int >= 1, got {value!r}")
        for name in ("timestep", "friction", "fmax"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"trajectory {self.trajectory_id}: {name} must be > 0, got {getattr(self, name)!r}")
        if not self.trust_hi > 0:
            raise ValueError(f"trajectory {self.trajectory_id}: trust_hi must be > 0, got {self.trust_hi!r}")
        if not (math.isfinite(self.rattle) and self.rattle >= 0):
            raise ValueError(f"trajectory {self.trajectory_id}: rattle must be >= 0, got {self.rattle!r}")
        if self.ensemble == "nvt_biased":
            from alip.explore.biased import check_bias

            try:
                check_bias(self.bias_strength, self.bias_width)
            except ValueError as exc:
                raise ValueError(f"trajectory {self.trajectory_id}: {exc}") from None
            if not self.bias_strength > 0:
                raise ValueError(f"trajectory {self.trajectory_id}: nvt_biased needs bias_strength > 0 eV (0: use nvt)")
        if self.min_distance is not None and not self.min_distance > 0:
            raise ValueError(f"trajectory {self.trajectory_id}: min_distance must be > 0, got {self.min_distance!r}")


@dataclass
class TrajectoryResult:
    """What one trajectory produced.

    ``frames``: the collected structures (no calculator) with :data:`FRAME_KEYS` in
    their info; ``stop_reason`` one of :data:`STOP_REASONS`, ``detail`` says more (the
    deviation or distance that stopped it, the error text); ``stopped_frame`` is True
    when the last frame is the one that triggered the stop (beyond ``trust_hi``,
    exploded or non-finite: never a candidate); ``steps`` the steps run.
    """

    trajectory_id: str
    frames: list[Atoms]
    stop_reason: str
    detail: str = ""
    steps: int = 0
    stopped_frame: bool = False
    wall_time: float = 0.0
    task: dict = field(default_factory=dict)

    @property
    def max_force_deviations(self) -> np.ndarray:
        """(n_frames,) max force deviation of each frame (eV/Å; NaN where not finite)."""
        return np.array([f.info["max_force_dev"] for f in self.frames], dtype=float)


_COMMITTEES: dict[tuple, Any] = {}


def _calculator(ref: Any) -> Any:
    """The ASE calculator of a task.

    A path is loaded once per worker process and file version (one committee per
    iteration, so only the newest is kept); a Committee is wrapped as is; any other
    callable is a factory returning an ASE calculator whose ``results`` carry
    ``max_force_deviation`` and ``energy_std_per_atom`` (another committee engine, or a
    hand-made calculator in tests).
    """
    from alip.models.calculator import Calculator
    from alip.models.committee import Committee

    if isinstance(ref, Committee):
        return Calculator(ref)
    if callable(ref):
        return ref()
    path = os.path.abspath(os.fspath(ref))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"committee file not found: {path}")
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size)
    if key not in _COMMITTEES:
        _COMMITTEES.clear()
        _COMMITTEES[key] = Committee.load(path)
    return Calculator(_COMMITTEES[key])


def check_seeds(seeds: Sequence[Atoms], species: Sequence[int]) -> None:
    """Raise ValueError naming the problem when seeds cannot be explored with ``species``.

    Checked before anything runs: no seeds, a seed that is not a non-empty Atoms,
    non-finite positions, elements the descriptor lacks.
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("no seed structures to explore from (the seeds file is empty)")
    known = set(int(z) for z in species)
    from ase.data import chemical_symbols

    for i, atoms in enumerate(seeds):
        if not isinstance(atoms, Atoms) or len(atoms) == 0:
            raise ValueError(f"seed {i} is not a non-empty ase.Atoms")
        if not np.isfinite(atoms.positions).all():
            raise ValueError(f"seed {i} ({atoms.get_chemical_formula()}) has non-finite positions")
        missing = sorted(set(int(z) for z in atoms.numbers) - known)
        if missing:
            raise ValueError(
                f"seed {i} ({atoms.get_chemical_formula()}) contains "
                f"{[chemical_symbols[z] for z in missing]}, which the descriptor lacks "
                f"(its species: {[chemical_symbols[z] for z in sorted(known)]})"
            )


def _min_pair_distance(atoms: Atoms, cutoff: float) -> float:
    """Smallest interatomic distance if below ``cutoff`` (periodic images included), else inf."""
    from ase.neighborlist import neighbor_list

    if len(atoms) < 2 and not atoms.pbc.any():
        return math.inf
    d = neighbor_list("d", atoms, cutoff)
    return float(d.min()) if len(d) else math.inf


def thermalize(atoms: Atoms, temperature: float, rng: np.random.Generator) -> None:
    """Maxwell–Boltzmann momenta at ``temperature`` K from ``rng``, total momentum removed."""
    from ase.md.velocitydistribution import Stationary

    try:
        from ase.md.velocitydistribution import thermalize_momenta  # ASE >= 3.28
    except ImportError:  # pragma: no cover - older ASE
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)


def _make_dynamics(task: TrajectoryTask, atoms: Atoms, rng: np.random.Generator) -> Any:
    dt = task.timestep * units.fs
    if task.ensemble == "relax":
        from ase.optimize import FIRE

        target = atoms
        if atoms.pbc.all():
            from ase.filters import FrechetCellFilter

            target = FrechetCellFilter(atoms, scalar_pressure=task.pressure * GPA)
        return FIRE(target, logfile=None)
    thermalize(atoms, task.temperature, rng)
    if task.ensemble in ("nvt", "nvt_biased"):
        from ase.constraints import FixCom
        from ase.md.langevin import Langevin

        atoms.set_constraint(FixCom())  # ASE's recommendation over the deprecated fixcm=True
        return Langevin(
            atoms,
            dt,
            temperature_K=task.temperature,
            friction=task.friction / units.fs,
            fixcm=False,
            rng=rng,
            logfile=None,
        )
    from ase.md.nose_hoover_chain import IsotropicMTKNPT

    return IsotropicMTKNPT(
        atoms,
        dt,
        temperature_K=task.temperature,
        pressure_au=task.pressure * GPA,
        tdamp=100 * dt,
        pdamp=1000 * dt,
        logfile=None,
    )


def _frame(atoms: Atoms, task: TrajectoryTask, step: int, results: dict) -> Atoms:
    frame = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    frame.info.update(task.origin)
    frame.info.update(
        {
            "explore_trajectory": task.trajectory_id,
            "explore_ensemble": task.ensemble,
            "explore_temperature": float(task.temperature) if task.ensemble != "relax" else 0.0,
            "explore_pressure": float(task.pressure),
            "explore_step": int(step),
            "max_force_dev": float(results.get("max_force_deviation", math.nan)),
            "energy_std_per_atom": float(results.get("energy_std_per_atom", math.nan)),
            "model_energy": float(results.get("unbiased_energy", results.get("energy", math.nan))),
            "bias_energy": float(results.get("bias_energy", 0.0)),
        }
    )
    frame.info.setdefault("explore_seed", task.origin.get("explore_seed", -1))
    return frame


def _integrate(
    task: TrajectoryTask, atoms: Atoms, rng: np.random.Generator, min_distance: float, frames: list[Atoms]
) -> tuple[str, str, bool, int]:
    """Run the dynamics, appending frames; (stop reason, detail, stopped frame?, steps run)."""
    reason, detail, stopped, step = "completed", "", False, 0
    atoms.calc = _calculator(task.committee)
    if task.ensemble == "nvt_biased":
        from alip.explore.biased import BiasedCalculator

        atoms.calc = BiasedCalculator(atoms.calc, task.bias_strength, task.bias_width)
    dyn = _make_dynamics(task, atoms, rng)
    run = dyn.irun(fmax=task.fmax, steps=task.steps) if task.ensemble == "relax" else dyn.irun(steps=task.steps)
    for step, converged in enumerate(run):
        if not np.isfinite(atoms.positions).all():
            reason, detail, stopped = "exploded", f"non-finite positions at step {step}", True
            break
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        results = atoms.calc.results
        if not (np.isfinite(energy) and np.isfinite(forces).all()):
            frames.append(_frame(atoms, task, step, results))
            reason, detail, stopped = "non_finite", f"non-finite energy or forces at step {step}", True
            break
        dmin = _min_pair_distance(atoms, min_distance)
        if dmin < min_distance:
            frames.append(_frame(atoms, task, step, results))
            reason, stopped = "exploded", True
            detail = f"atoms {dmin:.3f} Å apart (< {min_distance:.3f} Å) at step {step}"
            break
        eps = float(results["max_force_deviation"])
        if eps > task.trust_hi:
            frames.append(_frame(atoms, task, step, results))
            reason, stopped = "trust_hi", True
            detail = f"max force deviation {eps:.3g} eV/Å > trust_hi {task.trust_hi:g} at step {step}"
            break
        if step % task.every == 0:
            frames.append(_frame(atoms, task, step, results))
        if task.ensemble == "relax" and converged:
            if step % task.every:
                frames.append(_frame(atoms, task, step, results))
            reason, detail = "converged", f"max force < {task.fmax:g} eV/Å at step {step}"
            break
    return reason, detail, stopped, step


def run_trajectory(task: TrajectoryTask) -> TrajectoryResult:
    """Run ``task`` with its committee; never raises for a trajectory that goes wrong.

    A calculator error ends the trajectory with ``stop_reason="error"`` and the frames
    collected so far; invalid tasks raise on construction, before anything runs.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(task.seed)
    atoms = task.structure.copy()
    atoms.calc = None
    if task.rattle > 0:
        atoms.positions = atoms.positions + rng.normal(0.0, task.rattle, atoms.positions.shape)
    min_distance = task.min_distance or default_min_distance(atoms.numbers)
    frames: list[Atoms] = []
    reason, detail, stopped, step = "error", "", False, 0
    summary = {
        "trajectory_id": task.trajectory_id,
        "ensemble": task.ensemble,
        "temperature": task.temperature,
        "pressure": task.pressure,
        "steps": task.steps,
        "every": task.every,
        "seed": task.seed,
        "origin": dict(task.origin),
    }
    if task.ensemble == "nvt_biased":
        summary.update(bias_strength=task.bias_strength, bias_width=task.bias_width)
    try:
        with warnings.catch_warnings():
            # FrechetCellFilter's matrix logarithm warns about 1e-12 inaccuracies
            warnings.filterwarnings("ignore", message="logm result may be inaccurate")
            reason, detail, stopped, step = _integrate(task, atoms, rng, min_distance, frames)
    except Exception as exc:  # noqa: BLE001 - a failing trajectory is recorded, not raised
        reason, detail = "error", f"{type(exc).__name__}: {exc}"
    return TrajectoryResult(
        task.trajectory_id, frames, reason, detail, step, stopped, time.perf_counter() - t0, summary
    )


def run_trajectories(
    tasks: Sequence[TrajectoryTask], executor: Any = None, progress: bool = False
) -> list[TrajectoryResult]:
    """Run ``tasks`` on ``executor`` (None: in this process; any ``concurrent.futures``
    Executor, e.g. alip's process pool; or a Dask ``Client``) and return the results in
    task order.  A task whose worker dies is returned as an ``error`` result, frames empty.
    """
    from tqdm.auto import tqdm

    tasks = list(tasks)
    ids = [t.trajectory_id for t in tasks]
    if len(set(ids)) != len(ids):
        raise ValueError("trajectory ids must be unique within a batch")
    for t in tasks:
        if isinstance(t.committee, (str, os.PathLike)) and not os.path.isfile(t.committee):
            raise FileNotFoundError(f"trajectory {t.trajectory_id}: committee file not found: {t.committee}")
    bar = tqdm(total=len(tasks), desc="exploring", unit="traj", disable=not progress)
    results: list[TrajectoryResult] = []
    try:
        if executor is None:
            for t in tasks:
                results.append(run_trajectory(t))
                bar.update(1)
            return results
        if callable(getattr(executor, "get_executor", None)):  # dask.distributed.Client
            executor = executor.get_executor()
        futures = [executor.submit(run_trajectory, t) for t in tasks]
        for t, fut in zip(tasks, futures):
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - worker died, pickling failed, ...
                res = TrajectoryResult(t.trajectory_id, [], "error", f"worker error: {type(exc).__name__}: {exc}")
            results.append(res)
            bar.update(1)
        return results
    finally:
        bar.close()
