"""Exploration engine: trajectories of the committee, their stopping rules, the trust window.

Hand-made calculators make the committee spread a known function of the geometry
(``alpha`` × the largest displacement from the start), so where a trajectory must stop
is known; the real-committee tests use a tiny committee trained on Stillinger–Weber.
"""

from __future__ import annotations

import functools
import math
import pickle

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from explore_fixtures import tiny_committee

from alip.explore.trajectories import (
    FRAME_KEYS,
    TrajectoryResult,
    TrajectoryTask,
    check_seeds,
    default_min_distance,
    run_trajectories,
    run_trajectory,
)
from alip.explore.trust import TrustPolicy, TrustWindow, candidates, trust_statistics


def si64() -> Atoms:
    return bulk("Si", "diamond", a=5.431, cubic=True).repeat(2)


class DisplacementSpread(Calculator):
    """Stillinger–Weber energy and forces; the 'committee spread' is alpha × |r_i − r_i(0)|."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, reference: np.ndarray, alpha: float = 1.0) -> None:
        super().__init__()
        from alip.data.oracles import make_oracle

        self.reference, self.alpha = np.array(reference), alpha
        self.sw = make_oracle("sw").make_calculator(None)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        work = self.atoms.copy()
        work.calc = self.sw
        e = work.get_potential_energy()
        dev = self.alpha * np.linalg.norm(self.atoms.positions - self.reference, axis=1)
        self.results = {
            "energy": e,
            "free_energy": e,
            "forces": work.get_forces(),
            "stress": work.get_stress(),
            "force_deviation": dev,
            "max_force_deviation": float(dev.max()),
            "energy_std_per_atom": 0.0,
        }


class Collapse(Calculator):
    """Every atom pulled toward atom 0 with 40 eV/Å: the cell implodes within a few fs."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        d = self.atoms.positions[0] - self.atoms.positions
        n = np.linalg.norm(d, axis=1, keepdims=True)
        f = np.where(n > 0, 40.0 * d / np.maximum(n, 1e-12), 0.0)
        f[0] = -f[1:].sum(axis=0)
        self.results = {
            "energy": -40.0 * float(n.sum()),
            "forces": f,
            "max_force_deviation": 0.1,
            "energy_std_per_atom": 0.0,
        }


class Broken(Calculator):
    """Finite for ``good`` calls, then NaN energies (``mode="nan"``) or an exception."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, good: int, mode: str) -> None:
        super().__init__()
        self.good, self.mode, self.calls = good, mode, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        bad = self.calls > self.good
        if bad and self.mode == "raise":
            raise RuntimeError("calculator gave up")
        n = len(self.atoms)
        self.results = {
            "energy": math.nan if bad else 0.0,
            "forces": np.zeros((n, 3)),
            "max_force_deviation": 0.2,
            "energy_std_per_atom": 0.0,
        }


@pytest.fixture(scope="module")
def committee_path(tmp_path_factory):
    return tiny_committee(tmp_path_factory.mktemp("committee") / "c.pt")


def _frames_equal(a: TrajectoryResult, b: TrajectoryResult) -> bool:
    return (
        len(a.frames) == len(b.frames)
        and a.stop_reason == b.stop_reason
        and all(
            np.array_equal(x.positions, y.positions) and np.array_equal(x.cell[:], y.cell[:])
            for x, y in zip(a.frames, b.frames)
        )
    )


# ----------------------------------------------------------------------------- stopping rules
def test_trajectory_stops_where_the_deviation_first_exceeds_trust_hi():
    seed = si64()
    spread = functools.partial(DisplacementSpread, seed.positions, 1.0)
    common = dict(structure=seed, committee=spread, ensemble="nvt", temperature=1500.0, steps=200, seed=3)
    stopped = run_trajectory(TrajectoryTask(**common, every=5, trust_hi=0.3))
    full = run_trajectory(TrajectoryTask(**common, every=1))  # same seed: the same path, unstopped
    eps_full = full.max_force_deviations
    first = int(np.argmax(eps_full > 0.3))
    assert eps_full[first] > 0.3 and first > 0
    assert stopped.stop_reason == "trust_hi" and stopped.stopped_frame
    assert stopped.steps == first < 200
    assert stopped.max_force_deviations[-1] == pytest.approx(eps_full[first], abs=0)
    assert (stopped.max_force_deviations[:-1] <= 0.3).all()
    assert [f.info["explore_step"] for f in stopped.frames[:-1]] == list(range(0, first, 5))
    assert full.stop_reason == "completed" and len(full.frames) == 201
    # the stopping frame is counted as failed and is never a candidate
    window = TrustWindow(0.05, 0.3)
    stats = trust_statistics([stopped], window)
    assert stats.failed == 1 and stats.n_frames == len(stopped.frames)
    assert all(f.info["max_force_dev"] <= 0.3 for f in candidates([stopped], window))


def test_explosion_is_recorded_not_raised():
    seed = bulk("Si", "diamond", a=5.431, cubic=True)
    res = run_trajectory(TrajectoryTask(seed, Collapse, temperature=300.0, steps=500, every=10))
    assert res.stop_reason == "exploded" and res.stopped_frame
    assert "Å apart" in res.detail and res.steps < 500
    last = res.frames[-1]
    d = last.get_all_distances(mic=True)[np.triu_indices(len(last), 1)]
    assert d.min() < default_min_distance([14]) == pytest.approx(1.554)
    assert candidates([res], TrustWindow(0.05, 0.5)) == [f for f in res.frames[:-1]]


@pytest.mark.parametrize("mode, reason", [("nan", "non_finite"), ("raise", "error")])
def test_broken_calculator_ends_the_trajectory_with_its_frames(mode, reason):
    res = run_trajectory(
        TrajectoryTask(
            bulk("Si", "diamond", a=5.431, cubic=True), functools.partial(Broken, 25, mode), steps=100, every=5
        )
    )
    assert res.stop_reason == reason
    assert len(res.frames) >= 2 and all(np.isfinite(f.positions).all() for f in res.frames)
    if mode == "raise":
        assert "calculator gave up" in res.detail


# ----------------------------------------------------------------------------- trust window
def _result(eps, stopped=False, tid="t"):
    frames = []
    for i, e in enumerate(eps):
        a = Atoms("Si", cell=[3, 3, 3], pbc=True)
        a.info.update({"max_force_dev": e, "explore_step": i})
        frames.append(a)
    return TrajectoryResult(tid, frames, "trust_hi" if stopped else "completed", stopped_frame=stopped)


def test_only_frames_inside_the_window_are_candidates():
    window = TrustWindow(0.1, 0.4)
    a = _result([0.0, 0.05, 0.1, 0.25, 0.4, 0.41, math.nan], tid="a")
    b = _result([0.2, 0.3, 0.35], stopped=True, tid="b")  # stopped frame in the window: not a candidate
    got = [(f.info["max_force_dev"]) for f in candidates([a, b], window)]
    assert got == [0.1, 0.25, 0.4, 0.2, 0.3]
    stats = trust_statistics([a, b], window)
    assert (stats.accurate, stats.candidate, stats.failed, stats.n_frames) == (2, 5, 3, 10)
    d = stats.as_dict()
    assert d["candidate_fraction"] == pytest.approx(0.5) and d["stop_reasons"] == {"completed": 1, "trust_hi": 1}


def test_adaptive_trust_lo():
    eps = np.linspace(0.0, 1.0, 101)  # 51 frames <= trust_hi 0.5
    rate = TrustPolicy(0.02, 0.5, adaptive="rate", rate=0.2).window(eps)
    inside = (eps >= rate.lo) & (eps <= 0.5)
    assert inside.sum() == pytest.approx(0.2 * 51, abs=1)
    assert TrustPolicy(0.3, 0.5, adaptive="rate", rate=0.9).window(eps).lo == 0.3  # never below the floor
    assert TrustPolicy(0.02, 0.5, adaptive="error", factor=2.0).window(force_rmse=0.1).lo == pytest.approx(0.2)
    capped = TrustPolicy(0.02, 0.5, adaptive="error").window(force_rmse=0.9)
    assert capped.lo < capped.hi == 0.5
    assert TrustPolicy(0.02, 0.5).window().lo == 0.02
    with pytest.raises(ValueError, match="force RMSE"):
        TrustPolicy(adaptive="error").window()


# ----------------------------------------------------------------------------- bad input
def test_bad_input_is_refused_before_anything_runs():
    seed = bulk("Si", "diamond", a=5.431, cubic=True)
    with pytest.raises(ValueError, match="trust_lo .* must be below trust_hi"):
        TrustPolicy(trust_lo=0.6, trust_hi=0.5)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        TrajectoryTask(seed, "c.pt", temperature=0.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        TrajectoryTask(seed, "c.pt", ensemble="npt", temperature=-5.0)
    with pytest.raises(ValueError, match="ensemble must be one of"):
        TrajectoryTask(seed, "c.pt", ensemble="nve")
    with pytest.raises(ValueError, match="npt needs a 3-D periodic"):
        TrajectoryTask(Atoms("Si2", positions=[[0, 0, 0], [2.3, 0, 0]]), "c.pt", ensemble="npt")
    with pytest.raises(ValueError, match="every must be an int"):
        TrajectoryTask(seed, "c.pt", every=0)
    with pytest.raises(ValueError, match="empty"):
        check_seeds([], [14])
    with pytest.raises(ValueError, match=r"contains \['C'\], which the descriptor lacks"):
        check_seeds([seed, bulk("SiC", "zincblende", a=4.36)], [14])
    check_seeds([bulk("SiC", "zincblende", a=4.36)], [6, 14])
    with pytest.raises(FileNotFoundError, match="committee file not found"):
        run_trajectories([TrajectoryTask(seed, "/nonexistent/c.pt")])
    with pytest.raises(ValueError, match="unique"):
        run_trajectories([TrajectoryTask(seed, Collapse), TrajectoryTask(seed, Collapse)])


# ----------------------------------------------------------------------------- the real committee
@pytest.mark.parametrize("ensemble", ["nvt", "npt", "relax"])
def test_committee_trajectories_are_deterministic_and_tagged(committee_path, ensemble):
    task = TrajectoryTask(
        si64(),
        committee_path,
        ensemble=ensemble,
        temperature=600.0,
        pressure=2.0,
        steps=40,
        every=10,
        seed=7,
        rattle=0.05 if ensemble == "relax" else 0.0,
        trajectory_id=f"it0-{ensemble}",
        origin={"explore_seed": 3, "explore_iteration": 0},
    )
    a, b = run_trajectory(task), run_trajectory(pickle.loads(pickle.dumps(task)))
    assert _frames_equal(a, b) and a.stop_reason in ("completed", "converged")
    f = a.frames[-1]
    assert set(FRAME_KEYS) <= set(f.info) and f.info["explore_seed"] == 3
    assert f.info["explore_trajectory"] == f"it0-{ensemble}" and f.info["max_force_dev"] > 0
    assert f.calc is None
    if ensemble == "npt":  # 2 GPa squeezes the cell
        assert f.get_volume() != pytest.approx(si64().get_volume(), rel=1e-6)
    if ensemble == "relax":
        assert a.stop_reason == "converged" or a.steps == 40


def test_trajectories_on_a_process_pool_match_in_process(committee_path):
    from alip.al.labeling import make_process_pool

    tasks = [
        TrajectoryTask(si64(), committee_path, temperature=t, steps=20, every=5, seed=s, trajectory_id=f"t{t}-{s}")
        for t in (300.0, 1200.0)
        for s in (0, 1)
    ]
    local = run_trajectories(tasks)
    with make_process_pool(1) as pool:
        remote = run_trajectories(tasks, executor=pool)
    assert all(_frames_equal(x, y) for x, y in zip(local, remote))
    assert not _frames_equal(local[0], local[1])  # different seeds, different paths


@pytest.mark.slow
def test_trajectories_on_a_dask_local_cluster_match_in_process(committee_path):
    distributed = pytest.importorskip("distributed")
    tasks = [
        TrajectoryTask(
            si64(), committee_path, ensemble=e, temperature=900.0, steps=15, every=5, seed=4, trajectory_id=f"dask-{e}"
        )
        for e in ("nvt", "npt")
    ]
    local = run_trajectories(tasks)
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote = run_trajectories(tasks, executor=client)
    assert [r.trajectory_id for r in remote] == ["dask-nvt", "dask-npt"]
    assert all(_frames_equal(x, y) for x, y in zip(local, remote))
