"""One explore stage of an active-learning iteration, resumable from its files.

After the committee of iteration ``n`` is trained, :func:`explore` plans the iteration's
trajectories (:func:`plan_tasks`: starts × ensembles × temperatures × pressures, the
temperature ladder climbed one rung every ``ramp`` iterations, steps × ``growth`` per
iteration, at most ``max_trajectories`` drawn evenly over the rungs reached), runs them on the executor, and records all
frames in ``OUT/iter_NNN.extxyz`` and the summary in ``iter_NNN.json`` (``OUT`` is
the run directory's ``explore/``) (written
last: the stage's commit point).  A stage whose JSON exists is read back, never rerun; an
interrupted one is rerun from scratch, with the same frames since every task is
deterministic.  The frames used afterwards are always those read back from the file, so
a resumed iteration selects exactly what the interrupted one would have.

The caller scores and selects among :attr:`ExploreResult.candidates` with the same code
as pool candidates, then :func:`register` adds the chosen frames to the label store
(with fixed, iteration-derived pool ids, so a repeated call adds nothing twice) before
queuing them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms

from alip.config import ExploreSection
from alip.explore.trajectories import TrajectoryResult, TrajectoryTask, run_trajectories
from alip.explore.trust import TrustPolicy, TrustStats, TrustWindow, candidates, trust_statistics

__all__ = [
    "physical_starts",
    "ExploreResult",
    "plan_tasks",
    "schedule",
    "explore",
    "register",
    "EXPLORE_ID_BASE",
    "explore_pool_id",
]

#: pool ids of explored frames: EXPLORE_ID_BASE + iteration × ID_STRIDE + index among the candidates
EXPLORE_ID_BASE = 1_000_000_000
ID_STRIDE = 1_000_000


def explore_pool_id(iteration: int, index: int) -> int:
    """The fixed pool id of candidate ``index`` of ``iteration``."""
    if not 0 <= index < ID_STRIDE:
        raise ValueError(f"candidate index {index} out of range (at most {ID_STRIDE} per iteration)")
    return EXPLORE_ID_BASE + int(iteration) * ID_STRIDE + int(index)


def schedule(settings: ExploreSection, iteration: int) -> tuple[list[float], int]:
    """(temperatures, steps) of ``iteration``: the ladder's rungs reached so far and the
    grown step count."""
    temps = sorted(float(t) for t in settings.temperatures)
    rungs = min(len(temps), 1 + iteration // settings.ramp)
    steps = min(settings.max_steps, int(round(settings.steps * settings.growth**iteration)))
    return temps[:rungs], max(1, steps)


def plan_tasks(
    settings: ExploreSection, iteration: int, starts: Sequence[Atoms], committee: Any, seed: int = 0
) -> list[TrajectoryTask]:
    """The trajectories of ``iteration`` from ``starts`` (already supercells), deterministic
    in (``seed``, ``iteration``)."""
    temps, steps = schedule(settings, iteration)
    combos: list[tuple[int, str, float, float]] = []
    for s in range(len(starts)):
        for ens in settings.ensembles:
            if ens == "relax":
                combos += [(s, ens, 0.0, float(p)) for p in settings.pressures]
            elif ens == "npt":
                combos += [(s, ens, t, float(p)) for t in temps for p in settings.pressures]
            else:  # nvt, nvt_biased
                combos += [(s, ens, t, 0.0) for t in temps]
    rng = np.random.default_rng([int(seed), 0xE7, int(iteration)])
    if len(combos) > settings.max_trajectories:
        # stratified over the temperature rungs, the hottest (newest) first in each round
        rungs = {}
        for c in combos:
            rungs.setdefault(c[2], []).append(c)
        for group in rungs.values():
            rng.shuffle(group)
        order = sorted(rungs, reverse=True)
        picked: list[tuple[int, str, float, float]] = []
        while len(picked) < settings.max_trajectories:
            for t in order:
                if rungs[t] and len(picked) < settings.max_trajectories:
                    picked.append(rungs[t].pop())
        combos = sorted(picked, key=combos.index)
    tasks = []
    for k, (s, ens, t, p) in enumerate(combos):
        start = starts[s]
        origin = {"explore_iteration": int(iteration), "explore_seed": int(start.info.get("explore_seed", -1))}
        start = Atoms(start.numbers, positions=start.positions, cell=start.cell, pbc=start.pbc)
        tasks.append(
            TrajectoryTask(
                structure=start,
                committee=committee,
                ensemble=ens,
                temperature=t if ens != "relax" else 0.0,
                pressure=p,
                steps=steps,
                every=settings.every,
                seed=int(rng.integers(2**31)),
                trust_hi=settings.trust_hi,
                timestep=settings.timestep,
                min_distance=settings.min_distance or None,
                rattle=0.05 if ens == "relax" else 0.0,
                bias_strength=settings.bias_strength,
                bias_width=settings.bias_width,
                trajectory_id=f"it{iteration:03d}-{k:03d}",
                origin=origin,
            )
        )
    return tasks


@dataclass
class ExploreResult:
    """The stage's outcome: the trajectories (frames read back from the file), the window
    used, its statistics and the candidates (frames inside it)."""

    iteration: int
    results: list[TrajectoryResult]
    window: TrustWindow
    stats: TrustStats
    candidates: list[Atoms]
    temperatures: list[float] = field(default_factory=list)
    steps: int = 0
    resumed: bool = False

    def record(self) -> dict:
        """JSON-able summary for the iteration file."""
        return {
            "trust": self.stats.as_dict(),
            "temperatures": self.temperatures,
            "steps": self.steps,
            "n_trajectories": len(self.results),
            "n_candidates": len(self.candidates),
            "trajectories": [
                {
                    "id": r.trajectory_id,
                    "stop_reason": r.stop_reason,
                    "detail": r.detail,
                    "steps": r.steps,
                    "n_frames": len(r.frames),
                    **{k: r.task.get(k) for k in ("ensemble", "temperature", "pressure", "seed")},
                }
                for r in self.results
            ],
        }


def _paths(out_dir: str, iteration: int) -> tuple[str, str]:
    base = os.path.join(out_dir, f"iter_{iteration:03d}")
    return base + ".extxyz", base + ".json"


def _write(out_dir: str, iteration: int, results: list[TrajectoryResult], summary: dict) -> None:
    from alip.data.io import write_extxyz
    from alip.files import atomic_path, atomic_write_text

    frames_path, json_path = _paths(out_dir, iteration)
    os.makedirs(os.path.dirname(frames_path), exist_ok=True)
    frames = []
    for res in results:
        for i, f in enumerate(res.frames):
            f = f.copy()
            f.info["explore_stopped"] = bool(res.stopped_frame and i == len(res.frames) - 1)
            frames.append(f)
    with atomic_path(frames_path, ".extxyz") as tmp:
        write_extxyz(tmp, frames)
    atomic_write_text(json_path, json.dumps(summary, indent=1))


def _read(out_dir: str, iteration: int) -> tuple[list[TrajectoryResult], dict] | None:
    from alip.data.io import read_extxyz

    frames_path, json_path = _paths(out_dir, iteration)
    if not os.path.isfile(json_path):
        return None
    with open(json_path, encoding="utf-8") as fh:
        summary = json.load(fh)
    frames = read_extxyz(frames_path) if os.path.getsize(frames_path) else []
    by_id: dict[str, list[Atoms]] = {}
    for f in frames:
        by_id.setdefault(str(f.info["explore_trajectory"]), []).append(f)
    results = []
    for t in summary["trajectories"]:
        fr = by_id.get(t["id"], [])
        results.append(
            TrajectoryResult(
                t["id"],
                fr,
                t["stop_reason"],
                t["detail"],
                t["steps"],
                bool(fr and fr[-1].info.get("explore_stopped")),
                0.0,
                t["task"],
            )
        )
    return results, summary


def explore(
    settings: ExploreSection,
    iteration: int,
    starts: Sequence[Atoms],
    committee_path: str,
    out_dir: str,
    executor: Any = None,
    seed: int = 0,
    force_rmse: float | None = None,
    progress: bool = False,
) -> ExploreResult:
    """Run (or read back) the explore stage of ``iteration`` and return its candidates.

    ``force_rmse``: the committee's force RMSE on its labeled data, for
    ``adaptive = "error"``.
    """
    stored = _read(out_dir, iteration)
    temps, steps = schedule(settings, iteration)
    resumed = stored is not None
    if stored is None:
        tasks = plan_tasks(settings, iteration, starts, committee_path, seed)
        results = run_trajectories(tasks, executor=executor, progress=progress)
        summary = {
            "iteration": iteration,
            "temperatures": temps,
            "steps": steps,
            "trajectories": [
                {
                    "id": r.trajectory_id,
                    "stop_reason": r.stop_reason,
                    "detail": r.detail,
                    "steps": r.steps,
                    "task": r.task,
                }
                for r in results
            ],
        }
        _write(out_dir, iteration, results, summary)
        stored = _read(out_dir, iteration)  # always select from what the file holds
    results, _ = stored
    eps = np.concatenate([r.max_force_deviations for r in results]) if results else np.zeros(0)
    window = TrustPolicy.from_section(settings).window(eps, force_rmse if settings.adaptive == "error" else None)
    stats = trust_statistics(results, window)
    cands = candidates(results, window)
    for i, c in enumerate(cands):
        c.info["family"] = "explore"
        c.info["pool_id"] = explore_pool_id(iteration, i)
        c.info.pop("explore_stopped", None)
    return ExploreResult(iteration, results, window, stats, cands, temps, steps, resumed)


def physical_starts(
    frames: Sequence[Atoms],
    energies: Sequence[float],
    reference: Sequence[Atoms],
    reference_energies: Sequence[float],
    max_above: float,
) -> list[Atoms]:
    """The labeled ``frames`` fit to start new trajectories: energy per atom (``energies``,
    eV, total) at most ``max_above`` above the lowest of the ``reference`` structures of the
    same composition.  A frame the committee drove toward collapse, labeled because its
    spread was still inside the window, would otherwise seed the next iteration's runs."""
    lowest: dict[tuple, float] = {}
    for a, e in zip(reference, reference_energies):
        key = _composition(a)
        lowest[key] = min(lowest.get(key, math.inf), float(e) / len(a))
    out = []
    for a, e in zip(frames, energies):
        ref = lowest.get(_composition(a), math.inf)
        if math.isfinite(e) and (not math.isfinite(ref) or float(e) / len(a) <= ref + max_above):
            out.append(a)
    return out


def _composition(atoms: Atoms) -> tuple:
    """Element fractions (reduced composition) of ``atoms``."""
    z, counts = np.unique(atoms.numbers, return_counts=True)
    return tuple(zip(z.tolist(), np.round(counts / counts.sum(), 6).tolist()))


def register(store: Any, frames: Sequence[Atoms]) -> list[int]:
    """Add the selected frames to the label store as pool rows (those not there yet) and
    return their pool ids; a second call with the same frames adds nothing."""
    new = [f for f in frames if int(f.info["pool_id"]) not in store]
    if new:
        store.add_pool(new)
    return [int(f.info["pool_id"]) for f in frames]
