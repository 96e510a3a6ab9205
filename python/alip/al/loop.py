"""The active-learning loop: label → train → score → select → label …, crash-safe.

Run directory: see docs/run_directory.md.  Iteration n labels its batch (the
initial random set for n = 0, else the ``selected`` ids of ``iter_{n-1}.json``),
trains a committee on every label so far, evaluates it on the test set and, unless
a stop condition holds, scores the pool and selects the next batch.

Crash safety (a SIGKILL at any moment):

* the pool is added to ``labels.db`` in one transaction; the initial set is drawn
  from the seed and kept in the store's meta; the test set is labeled through its
  own store ``test.db`` (each label committed) before ``test.extxyz`` is written;
* each label is committed to ``labels.db`` as it arrives; a resumed run labels only
  the batch members still ``pool``/``queued`` (labeled and failed ones are never
  sent again), so no label is lost and none is computed twice;
* training is deterministic under the seed of ``(run.seed, iteration)``; an
  interrupted training is redone; the committee is written to a temporary file and
  renamed (``os.replace``), and a resumed run loads it instead of retraining;
* ``iter_NNN.json`` (with the selection) is written atomically *before* the
  selection is marked queued in the store, so an iteration is complete exactly
  when its file exists; ``learning_curve.csv`` is rebuilt from those files.

A resumed run therefore ends in the same state as an uninterrupted one when the
oracle is deterministic (wall times excepted: they count the process that
finished each step, and a loaded checkpoint reports its original training time).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import bulk

from alip.al.acquisition import select_batch
from alip.al.cost import cost_aware_scores, cost_model
from alip.al.labeling import BatchResult, label_batch, make_process_pool
from alip.al.pool_scoring import score_pool
from alip.al.resume_policy import changes, check_changes
from alip.al.run_dir import (
    CHECKPOINTS,
    COMMITTEE,
    CONFIG,
    EXPLORE,
    FEATURES,
    ITERATIONS,
    LABELS,
    LOG,
    TEST,
    TEST_LABELS,
    checkpoint_name,
    iteration_path,
    read_iterations,
    write_curve,
    write_iteration,
)
from alip.al.run_lock import LOCK, RunLock
from alip.config import Config, ConfigError, load_config
from alip.core.descriptors import ACSF
from alip.core.device import select_device
from alip.data.checked_read import BadInputError, check_structures, read_checked
from alip.data.featurize import featurize_structures
from alip.data.io import attach_label, read_extxyz, write_extxyz
from alip.data.oracles import make_oracle
from alip.data.physical_window import oracle_energies_are_cheap, physical_window
from alip.data.store import LabelStore
from alip.data.structures import generate_si_pool, volume_series
from alip.explore import stage
from alip.explore.md_testset import md_test_set, si_md_subsets, subsets_from_seeds
from alip.explore.seeds import default_acsf, initial_structures, make_supercell, read_seeds, seed_species
from alip.explore.trajectories import check_seeds
from alip.files import atomic_path, atomic_write_text
from alip.models.committee import Committee
from alip.models.training import TrainConfig, errors, read_labels, train_committee

#: info keys of an explored frame kept in the iteration record's "selected_origins"
ORIGIN_KEYS: tuple[str, ...] = (
    "explore_seed",
    "explore_iteration",
    "explore_trajectory",
    "explore_ensemble",
    "explore_temperature",
    "explore_pressure",
    "explore_step",
    "max_force_dev",
)


@dataclass
class RunResult:
    """What a finished (or stopped) run left: its directory, learning curve and stop reason."""

    run_dir: str
    curve: list[dict] = field(default_factory=list)
    stop_reason: str | None = None

    @property
    def n_labels(self) -> int:
        """Labels at the last finished iteration."""
        return int(self.curve[-1]["n_labels"]) if self.curve else 0


# ----------------------------------------------------------------------------- set-up helpers
def _plain(value: Any) -> Any:
    """numpy scalars (as read back from extxyz) as Python ones, for JSON."""
    return value.item() if isinstance(value, np.generic) else value


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def resolve_paths(cfg: Config, base: str | None = None) -> Config:
    """A copy with every input path absolute: relative ones are taken relative to ``base``
    (the run directory a run is resumed from) or, without it, to the current directory."""

    def ab(p: str) -> str:
        return os.path.abspath(os.path.join(base, p) if base else p) if p else ""

    spec = cfg.oracle.spec
    if isinstance(spec, str) and spec.startswith("stored:"):
        spec = "stored:" + ab(spec[len("stored:") :])
    elif isinstance(spec, dict) and spec.get("type") == "stored" and "path" in spec:
        spec = {**spec, "path": ab(spec["path"])}
    return cfg.replace(
        run={"out": ab(cfg.run.out)},
        oracle={"spec": spec},
        pool={"file": ab(cfg.pool.file)},
        test={"file": ab(cfg.test.file)},
        descriptor={"file": ab(cfg.descriptor.file)},
    )


def make_acsf(cfg: Config) -> ACSF:
    """The run's descriptor: ``descriptor.file`` (an ACSF.to_dict() JSON) or the preset."""
    if cfg.descriptor.file:
        try:
            with open(cfg.descriptor.file, encoding="utf-8") as fh:
                return ACSF.from_dict(json.load(fh))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"descriptor.file {cfg.descriptor.file}: {type(exc).__name__}: {exc}") from None
    if cfg.descriptor.preset == "seeds":
        return default_acsf(seed_species(explore_seeds(cfg)))
    return getattr(ACSF, cfg.descriptor.preset)()  # the other presets are ACSF's constructors of that name


def _has_label(atoms: Atoms) -> bool:
    res = atoms.calc.results if atoms.calc is not None else {}
    return res.get("energy") is not None and res.get("forces") is not None


def _family_kwargs(cfg: Config) -> dict[str, dict]:
    p = cfg.pool
    kw: dict[str, dict] = {
        "volume": {"polymorphs": list(p.polymorphs), "volume_range": tuple(p.volume_range)},
        "small_distortion": {"max_atoms": p.max_atoms},
        "large_distortion": {"max_atoms": p.max_atoms},
        "random": {"n_atoms": tuple(int(x) for x in p.random_atoms)},
    }
    return {f: kw[f] for f in p.families}


def explore_seeds(cfg: Config) -> list[Atoms]:
    """The seeds of ``[explore]`` (the 8-atom diamond Si cell when none are given), each
    tagged ``info["explore_seed"]``."""
    if cfg.explore.seeds:
        return read_seeds(cfg.explore.seeds)
    cell = bulk("Si", "diamond", a=5.431, cubic=True)
    cell.info["explore_seed"] = 0
    return [cell]


def _physical_window(structures: list[Atoms], cfg: Config, log: Any) -> list[Atoms]:
    """Generated structures within pool.max_energy_above of the lowest (alip.data.physical_window)."""
    if not cfg.pool.max_energy_above or not structures:
        return structures
    if not oracle_energies_are_cheap(cfg.oracle_spec()):
        log("physical window skipped: the oracle is not cheap enough to label every generated structure")
        return structures
    res = physical_window(structures, cfg.oracle_spec(), cfg.pool.max_energy_above)
    log(
        f"physical window (<= {cfg.pool.max_energy_above:g} eV/atom above {res.e_min:.4f}): kept "
        f"{len(res.structures)} of {len(structures)} generated structures {res.summary()}"
    )
    return res.structures


def _checked(structures: list[Atoms] | str, acsf: ACSF, on_bad: str, what: str, log: Any) -> list[Atoms]:
    """Structures of a file (read) or in memory, checked as `alip featurize` checks them."""
    try:
        if isinstance(structures, str):
            good, bad = read_checked(structures, acsf, on_bad, what)
        else:
            good, bad = check_structures(structures, acsf, on_bad, what)
    except BadInputError as exc:
        raise BadInputError(
            f"{exc}. Fix the file, or leave such frames out with on_bad='skip' (pool.on_bad = \"skip\")"
        ) from None
    if bad:
        shown = ", ".join(f"{k} ({r})" for k, r in sorted(bad.items())[:5])
        log(
            f"{what}: skipped {len(bad)} unusable frame(s) (pool.on_bad = 'skip'): {shown}"
            + (" ..." if len(bad) > 5 else "")
        )
    return good


def make_pool_and_test(cfg: Config, acsf: ACSF | None = None, log: Any = print) -> tuple[list[Atoms], list[Atoms]]:
    """The pool (with ``info["pool_id"]``) and the test set (labels attached where available),
    every frame checked before any label is computed (see :mod:`alip.data.checked_read`).

    With ``[explore] enabled`` the pool is the initial set alone: ``run.n_initial``
    distorted copies of the seeds; the generated family test set is used only for
    silicon seeds.  ``test.md`` adds the oracle's own MD frames (cached).
    """
    acsf = acsf if acsf is not None else make_acsf(cfg)
    on_bad = cfg.pool.on_bad
    seeds = explore_seeds(cfg) if cfg.explore.enabled else []
    si_only = not seeds or all(set(a.numbers) == {14} for a in seeds)
    if cfg.explore.enabled:
        e = cfg.explore
        try:  # seeds the descriptor cannot describe, named as seeds (before any label)
            check_seeds(seeds, acsf.species)
        except ValueError as exc:
            raise ConfigError(f"explore.seeds: {exc}") from None
        pool = initial_structures(
            seeds,
            cfg.run.n_initial,
            seed=cfg.run.seed,
            supercell=e.supercell,
            max_strain=e.initial_strain,
            rattle=e.initial_rattle,
        )
        pool = _checked(pool, acsf, "stop", "the initial explore set", log)
        for i, a in enumerate(pool):
            a.info["pool_id"] = i
    elif cfg.pool.file:
        structures = _checked(cfg.pool.file, acsf, on_bad, f"pool.file {cfg.pool.file}", log)
        for i, a in enumerate(structures):
            a.info.setdefault("pool_id", i)
            a.info.setdefault("family", "unknown")
        if cfg.test.split > 0:
            perm = np.random.default_rng(cfg.test.seed).permutation(len(structures))
            n_test = int(round(cfg.test.split * len(structures)))
            if not 0 < n_test < len(structures):
                raise ConfigError(f"test.split = {cfg.test.split} leaves no test or no pool structure")
            held = set(perm[:n_test].tolist())
            test = [structures[i] for i in sorted(held)]
            pool = [a for i, a in enumerate(structures) if i not in held]
            return pool, test
        pool = structures
    else:
        pool = _checked(
            generate_si_pool(
                cfg.pool.n,
                seed=cfg.pool.seed,
                families=cfg.pool.families,
                fractions=cfg.pool.fractions or None,
                family_kwargs=_family_kwargs(cfg),
                progress=cfg.run.progress,
            ),
            acsf,
            "stop",
            "the generated pool",
            log,
        )
        pool = _physical_window(pool, cfg, log)
    if cfg.test.file:
        test = _checked(cfg.test.file, acsf, on_bad, f"test.file {cfg.test.file}", log)
    else:
        test = []
        if si_only:
            p = cfg.pool
            test = (
                generate_si_pool(
                    cfg.test.n,
                    seed=cfg.test.seed,
                    families=p.families,
                    fractions=p.fractions or None,
                    family_kwargs=_family_kwargs(cfg),
                )
                if cfg.test.n
                else []
            )
            test = _physical_window(test, cfg, log)
            if cfg.test.n_volume:
                test += volume_series(
                    cfg.test.n_volume, polymorphs=("diamond",), volume_range=tuple(cfg.test.volume_range)
                )
        if cfg.test.md:
            test += md_test_frames(cfg, seeds, si_only)
        if not test:
            raise ConfigError(
                "the test set is empty: the generated Si families do not fit these seeds; "
                "set test.md = true (the oracle's MD from the seeds) or test.file"
            )
        test = _checked(test, acsf, "stop", "the generated test set", log)
    return pool, _number_test(test)


def _number_test(test: list[Atoms]) -> list[Atoms]:
    for i, a in enumerate(test):
        a.info.pop("pool_id", None)
        a.info["test_id"] = i
        a.info.setdefault("family", "unknown")
    return test


def check_oracle(cfg: Config, structure: Atoms | None = None) -> None:
    """Resolve the oracle spec and (given a structure) build its calculator for it (nothing
    is computed): a missing module or factory, a bad setting or a factory that fails is
    one ConfigError line, before anything is labeled or queued."""
    spec = cfg.oracle_spec()
    try:
        oracle = make_oracle(spec)
        if structure is None:
            return
        try:
            oracle.make_calculator(structure.copy())
        except NotImplementedError:  # stored labels: nothing to build
            pass
    except Exception as exc:  # noqa: BLE001 - any failure of user code is reported as one line
        raise ConfigError(f"oracle.spec {spec!r} is not usable: {type(exc).__name__}: {exc}") from None


def md_test_frames(cfg: Config, seeds: list[Atoms], si_only: bool) -> list[Atoms]:
    """The physical test set of ``test.md`` (alip.explore.md_testset): the default Si subsets,
    or each explore seed (in its supercell) at each explore temperature."""
    t = cfg.test
    if si_only:
        subsets = si_md_subsets(t.md_frames, t.md_scale)
    else:
        cells = [make_supercell(a, cfg.explore.supercell) for a in seeds]
        subsets = subsets_from_seeds(cells, cfg.explore.temperatures, t.md_frames, t.md_scale)
    return md_test_set(cfg.oracle_spec(), subsets, seed=t.seed, progress=cfg.run.progress)


def evaluate_test_set(committee: Committee, test: list[Atoms]) -> tuple[dict, dict]:
    """Committee-mean test errors: overall and per family.

    energy RMSE per atom (meV/atom), force RMSE over Cartesian components (eV/Å), and
    the energy RMSE per atom of the ``volume`` family (the E–V curve; None without it).
    """
    pred = committee.predict(test)
    labels = [read_labels(a) for a in test]
    n_atoms = pred.n_atoms
    de = (pred.energies.mean(0) - np.array([e for e, _, _ in labels])) / n_atoms * 1e3
    df = pred.forces.mean(0) - np.concatenate([f for _, f, _ in labels])
    fam = np.array([str(a.info.get("family", "unknown")) for a in test])
    atom_fam = np.repeat(fam, n_atoms)

    def rmse(x: np.ndarray) -> float | None:
        return float(np.sqrt(np.mean(x**2))) if x.size else None

    vol = fam == "volume"
    overall = {
        "energy_rmse_mev_per_atom": rmse(de),
        "force_rmse_ev_per_ang": rmse(df),
        "ev_rmse_mev_per_atom": rmse(de[vol]) if vol.any() else None,
    }
    by_family = {
        str(f): {
            "n": int((fam == f).sum()),
            "energy_rmse_mev_per_atom": rmse(de[fam == f]),
            "force_rmse_ev_per_ang": rmse(df[atom_fam == f]),
        }
        for f in sorted(set(fam))
    }
    return overall, by_family


def _is_dask_client(executor: Any) -> bool:
    """True for a ``distributed.Client`` (not a plain concurrent.futures executor)."""
    return type(executor).__module__.startswith("distributed") and hasattr(executor, "scatter")


def open_executor(cfg: Config) -> tuple[Any, Any]:
    """(executor for label_batch, close function) as set in ``[labeling]``."""
    lab = cfg.labeling
    if lab.executor == "serial":
        return "serial", lambda: None
    if lab.executor == "process":
        pool = make_process_pool(lab.max_workers)
        return pool, lambda: pool.shutdown(wait=True)
    from distributed import Client, LocalCluster

    if lab.dask_address:
        client = Client(lab.dask_address)
        return client, client.close
    cluster = LocalCluster(n_workers=lab.max_workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    return client, lambda: (client.close(), cluster.close())


class InfrastructureError(RuntimeError):
    """Labels failed for reasons that are not the structures' (worker lost, broken pool)."""


def check_infrastructure(result: BatchResult, run_dir: str) -> None:
    """Stop the run when labels of this batch failed for infrastructure reasons: they would
    all fail the same way; they are kept out of the budget and labeled again on resume."""
    infra = {k: lab.error for k, lab in result.labels.items() if not lab.ok and lab.failure == "infrastructure"}
    if not infra:
        return
    first = next(iter(infra.values()))
    hint = (
        " (a labeling worker died; a Python script that runs alip with a process pool needs "
        '`if __name__ == "__main__":`)'
        if "BrokenProcessPool" in str(first)
        else ""
    )
    raise InfrastructureError(
        f"{len(infra)} of {len(result.labels)} labels failed for infrastructure reasons, first: {first}{hint}. "
        f"They do not count against the budget; fix the cause and continue with `alip run --resume {run_dir}`"
    )


def label_missing(
    structures: list[Atoms],
    cfg: Config,
    store_path: str,
    executor: Any,
    log: Any = print,
    progress: bool = False,
    retry_failed: bool = False,
) -> list[Atoms]:
    """The structures with oracle labels attached where they had none (crash-safe).

    Labels go through their own LabelStore at ``store_path`` (committed one by one),
    so a rerun after a crash labels only what is still missing, and labels again those
    that failed for infrastructure reasons (every failed one with ``retry_failed``).
    Structures whose label failed are left out (and logged); infrastructure failures
    stop with :class:`InfrastructureError`.
    """
    structures = list(structures)
    missing = [i for i, a in enumerate(structures) if not _has_label(a)]
    if missing:
        store = LabelStore(store_path)
        if len(store) == 0:
            bare = []
            for i in missing:
                a = structures[i].copy()
                a.info["pool_id"] = i
                bare.append(a)
            store.add_pool(bare)
        retry = set(store.failed_ids(None if retry_failed else "infrastructure"))
        todo = [i for i in missing if store.status(i) in ("pool", "queued") or i in retry]
        if todo:
            log(f"labeling {len(todo)} test structures")
            result = label_batch(
                make_oracle(cfg.oracle_spec()),
                todo,
                store,
                executor=executor,
                timeout=cfg.oracle.timeout or None,
                progress=progress,
            )
            check_infrastructure(result, os.path.dirname(os.path.abspath(store_path)))
        for i in missing:
            lab = store.get_label(i)
            if lab is not None and lab.ok:
                structures[i] = attach_label(structures[i], lab.energy, lab.forces, lab.stress)
        dropped = [i for i in missing if not _has_label(structures[i])]
        if dropped:
            log(f"test set: {len(dropped)} structures failed to label and are left out")
            if len(dropped) == len(structures):
                first = store.get_label(dropped[0])
                raise RuntimeError(
                    f"the test set has no labeled structure: all {len(dropped)} labels failed, "
                    f"first: {first.error if first else 'not labeled'} (see {store_path}; "
                    f"after fixing the oracle, `alip run --retry-failed DIR` labels "
                    f"them again)"
                )
    out = [a for a in structures if _has_label(a)]
    if not out:
        raise RuntimeError("the test set has no labeled structure")
    return out


# ----------------------------------------------------------------------------- the driver
def append_log(run_dir: str, message: str, echo: bool = False, tag: str = "") -> None:
    """One time-stamped line in ``RUN/log.txt`` (and on stdout with ``echo``, after ``tag``)."""
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
    with open(os.path.join(run_dir, LOG), "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
    if echo:
        print(f"{tag}{line}", flush=True)


class _Run:
    """One run directory being driven forward (by the process holding its lock)."""

    def __init__(
        self,
        cfg: Config,
        executor: Any = None,
        retry_failed: bool = False,
        inputs: tuple[list[Atoms], list[Atoms]] | None = None,
    ) -> None:
        self.cfg = cfg
        self.dir = cfg.run.out
        self.progress = cfg.run.progress
        self.user_executor = executor
        self.retry_failed = retry_failed
        self.inputs = inputs
        self._executor: Any = None
        self._closers: list[Any] = []
        os.makedirs(os.path.join(self.dir, ITERATIONS), exist_ok=True)
        os.makedirs(os.path.join(self.dir, CHECKPOINTS), exist_ok=True)

        self.store = LabelStore(os.path.join(self.dir, LABELS))

    # ---------------------------------------------------------------- utilities
    def log(self, message: str) -> None:
        """Log and, with progress, echo "[strategy seed k] line" (runs of a comparison interleave)."""
        append_log(self.dir, message, self.progress, f"[{self.cfg.run.strategy} seed {self.cfg.run.seed}] ")

    def executor(self) -> Any:
        if self.user_executor is not None:
            return self.user_executor
        if self._executor is None:
            self._executor, close = open_executor(self.cfg)
            self._closers.append(close)
        return self._executor

    def close(self) -> None:
        for close in self._closers:
            close()
        self._closers = []

    def acsf(self) -> ACSF:
        """The descriptor kept in labels.db's meta at set-up (the run needs no descriptor.file after it)."""
        spec = self.store.meta.get("descriptor")
        return ACSF.from_dict(spec) if spec else make_acsf(self.cfg)

    # ---------------------------------------------------------------- set-up
    def setup(self) -> None:
        """Pool in the store, labeled test set, initial selection (each step idempotent)."""
        test_path = os.path.join(self.dir, TEST)
        if "descriptor" not in self.store.meta:
            self.store.update_meta(descriptor=make_acsf(self.cfg).to_dict())
        if self.cfg.explore.enabled:  # seeds the descriptor cannot describe: an error before any label
            try:
                check_seeds(explore_seeds(self.cfg), self.acsf().species)
            except ValueError as exc:
                raise ConfigError(f"explore.seeds: {exc}") from None
        need_pool = len(self.store) == 0
        if need_pool or not os.path.exists(test_path):
            if self.inputs is None:
                check_oracle(self.cfg)  # before the physical window may call it
            pool, test = self.inputs or make_pool_and_test(self.cfg, self.acsf(), self.log)
            if not pool:
                raise ConfigError("the pool is empty")
            if self.inputs is None:  # resumed before set-up finished: check the oracle again
                check_oracle(self.cfg, (pool + test)[0])
            if need_pool:
                self.store.add_pool(pool)  # one transaction: all rows or none
                self.log(f"pool: {len(pool)} structures added to labels.db")
            if not os.path.exists(test_path):
                test = label_missing(
                    test,
                    self.cfg,
                    os.path.join(self.dir, TEST_LABELS),
                    self.executor(),
                    self.log,
                    self.progress,
                    self.retry_failed,
                )
                with atomic_path(test_path, ".extxyz") as tmp:
                    write_extxyz(tmp, test)
                self.log(f"test set: {len(test)} labeled structures in test.extxyz")
                if not any(str(a.info.get("family")) == "volume" for a in test):
                    self.log(
                        "test set: no structure of the 'volume' family, so the E-V error "
                        "(ev_rmse_mev_per_atom) stays empty"
                    )
        if "initial" not in self.store.meta:
            ids = np.array(self.store.ids())
            if self.cfg.run.n_initial > len(ids):
                raise ConfigError(f"run.n_initial = {self.cfg.run.n_initial} exceeds the pool ({len(ids)})")
            rng = np.random.default_rng(_seed(self.cfg.run.seed, 0x1417))
            initial = sorted(rng.choice(ids, self.cfg.run.n_initial, replace=False).tolist())
            self.store.update_meta(initial=initial, strategy=self.cfg.run.strategy, seed=self.cfg.run.seed)

    def pool_values(self, pool_atoms: dict[int, Atoms]) -> dict[int, np.ndarray]:
        """Descriptor values (n_atoms, F) of every pool structure by pool id, read from
        ``RUN/features``; the store is computed here once (continued if a crash cut it short)."""
        ids = sorted(pool_atoms)
        out = os.path.join(self.dir, FEATURES)
        fresh = not os.path.exists(os.path.join(out, "complete.json"))
        t0 = time.perf_counter()
        store = featurize_structures([pool_atoms[i] for i in ids], out, self.acsf())
        if fresh:
            self.log(f"features: {len(ids)} pool structures featurized in {time.perf_counter() - t0:.1f} s")
        values, offsets = store.values(), store.offsets
        return {pid: values[offsets[k] : offsets[k + 1]] for k, pid in enumerate(ids)}

    def spent(self) -> int:
        """Labels that count against the budget: labeled, and failed by the structure's fault."""
        return self.store.counts()["labeled"] + len(self.store.failed_ids("structure"))

    # ---------------------------------------------------------------- one iteration
    def iterate(
        self,
        n: int,
        records: list[dict],
        pool_atoms: dict[int, Atoms],
        test: list[Atoms],
        label_wall_before: float = 0.0,
        pool_values: dict[int, np.ndarray] | None = None,
    ) -> dict:
        cfg = self.cfg
        batch = list(self.store.meta["initial"]) if n == 0 else list(records[-1]["selected"])
        batch += [i for i in self.store.ids("queued") if i not in set(batch)]  # failed labels requeued on resume
        todo = [i for i in batch if self.store.status(i) in ("pool", "queued")]
        t0 = time.perf_counter()
        if todo:
            self.log(f"iteration {n}: labeling {len(todo)} structures")
            result = label_batch(
                make_oracle(cfg.oracle_spec()),
                todo,
                self.store,
                executor=self.executor(),
                iteration=n,
                timeout=cfg.oracle.timeout or None,
                progress=self.progress,
            )
            if result.n_failed:
                self.log(
                    f"iteration {n}: {result.n_failed} of {len(todo)} labels failed, first: "
                    f"{next(iter(result.failed().values()))}"
                )
            check_infrastructure(result, self.dir)
        wall_label = time.perf_counter() - t0 + label_wall_before
        status = {i: self.store.status(i) for i in batch}
        labeled_now = [i for i in batch if status[i] == "labeled"]
        failed_now = [i for i in batch if status[i] == "failed"]

        ckpt_rel = checkpoint_name(n)
        ckpt = os.path.join(self.dir, ckpt_rel)
        if os.path.exists(ckpt) and not todo:  # labels added since it was trained: retrain
            committee = Committee.load(ckpt)
            committee.threads, committee.device = cfg.run.threads, cfg.run.device
            wall_train = float(committee.metadata.get("train_seconds", 0.0))
            self.log(f"iteration {n}: loaded {ckpt_rel}")
        else:
            labeled = self.store.labeled()
            if not labeled:
                raise RuntimeError(
                    f"iteration {n}: no labeled structure to train on ({len(failed_now)} labels failed; see labels.db)"
                )
            self.log(f"iteration {n}: training on {len(labeled)} structures")
            t0 = time.perf_counter()
            result = train_committee(labeled, self.acsf(), TrainConfig.from_config(cfg, _seed(cfg.run.seed, n)))
            wall_train = time.perf_counter() - t0
            with atomic_path(ckpt) as tmp:
                result.committee.save(tmp)
            committee = result.committee
            committee.threads, committee.device = cfg.run.threads, cfg.run.device
            self.log(f"iteration {n}: trained in {wall_train:.1f} s")
        errors, by_family = evaluate_test_set(committee, test)
        counts = self.store.counts()
        n_labels, n_failed = counts["labeled"], counts["failed"]
        remaining = cfg.run.budget - self.spent()
        pool_ids = self.store.ids("pool")
        reason = self._stop_reason(n, errors, remaining, len(pool_ids))

        selected, sel_scores, sel_fam = [], [], []
        explored, cost = None, None
        t0 = time.perf_counter()
        if reason is None and cfg.explore.enabled:
            explored = self.explore(n, committee, ckpt, labeled_now)
            atoms = explored.candidates
            if not atoms:
                st = explored.stats
                at_top = len(stage.schedule(cfg.explore, n)[0]) == len(cfg.explore.temperatures)
                empty_before = n > 0 and records[-1].get("explore", {}).get("n_candidates") == 0
                if at_top and st.n_frames and st.accurate == st.n_frames:
                    reason = "converged: every explored frame is below trust_lo"
                elif empty_before:
                    reason = (
                        "no candidates in two iterations in a row (frames beyond trust_hi: raise "
                        "explore.trust_hi, or check the seeds)"
                    )
        elif reason is None:
            atoms = [pool_atoms[i] for i in pool_ids]
        if reason is None and atoms:
            a = cfg.acquisition
            client = self.executor()
            # with a Dask client QBC is sharded over the workers (the committee sent once per worker)
            scored = score_pool(
                committee,
                atoms,
                cfg.run.strategy,
                qbc_kind=a.qbc_score,
                emc_forces=a.emc_forces,
                emc_params=a.emc_params,
                weight_energy=cfg.training.weight_energy,
                weight_forces=cfg.training.weight_forces,
                chunk_atoms=a.chunk_atoms,
                seed=_seed(cfg.run.seed, n, 1),
                progress=self.progress,
                client=client if _is_dask_client(client) else None,
                threads=cfg.run.threads,
                values=None if explored is not None or pool_values is None else [pool_values[i] for i in pool_ids],
            )
            diversity = a.diversity if (cfg.run.strategy != "random" or a.random_diversity) else "none"
            features = scored.features
            if diversity != "none" and features is None:
                features = np.stack([self.acsf().compute(x).mean(0) for x in atoms])
            ranking = scored.scores
            if a.cost != "none" and cfg.run.strategy != "random":  # score per unit of label cost
                model = cost_model(a.cost, *self.store.label_times()) if a.cost == "measured" else cost_model(a.cost)
                costs = model.cost([len(x) for x in atoms])
                ranking = cost_aware_scores(scored.scores, costs)
                cost = {"model": model.as_dict(), "selected_costs": []}
            pick = select_batch(
                ranking,
                features,
                min(cfg.run.batch_size, remaining),
                diversity,
                a.candidates,
                seed=_seed(cfg.run.seed, n, 2),
                random_fraction=a.random_fraction if cfg.run.strategy != "random" else 0.0,
            )
            if explored is not None:
                selected = stage.register(self.store, [atoms[i] for i in pick])  # before the record: idempotent
                pool_atoms.update({pid: atoms[i] for pid, i in zip(selected, pick)})
            else:
                selected = [int(pool_ids[i]) for i in pick]
            sel_scores = [float(scored.scores[i]) for i in pick]
            sel_fam = [str(atoms[i].info.get("family", "unknown")) for i in pick]
            if cost is not None:
                cost["selected_costs"] = [float(costs[i]) for i in pick]
        wall_score = time.perf_counter() - t0
        record = {
            "iteration": n,
            "strategy": cfg.run.strategy,
            "seed": cfg.run.seed,
            "n_labels": n_labels,
            "n_failed": n_failed,
            "n_pool": len(pool_ids),
            "selected": selected,
            "selected_scores": sel_scores,
            "selected_families": sel_fam,
            "labeled_this_iteration": labeled_now,
            "failed_this_iteration": failed_now,
            "errors": errors,
            "errors_by_family": by_family,
            "wall_s": {"label": wall_label, "train": wall_train, "score": wall_score},
            "checkpoint": ckpt_rel,
            "stop_reason": reason,
        }
        if cost is not None:
            record["cost"] = cost
        if explored is not None:
            record["explore"] = explored.record()
            record["selected_origins"] = [{k: _plain(pool_atoms[i].info.get(k)) for k in ORIGIN_KEYS} for i in selected]
        write_iteration(self.dir, record)
        if selected:
            self.store.mark_queued(selected, n + 1)
        f_rmse, e_rmse = errors["force_rmse_ev_per_ang"], errors["energy_rmse_mev_per_atom"]
        self.log(
            f"iteration {n}: {n_labels} labels, test energy RMSE {e_rmse:.2f} meV/atom, "
            f"force RMSE {f_rmse:.4f} eV/Å"
            + (f"; stop: {reason}" if reason else f"; selected {len(selected)} ({cfg.run.strategy})")
        )
        return record

    def write_final_committee(self, record: dict) -> None:
        """``OUT/committee.pt``: a copy of the last iteration's committee (the run's result)."""
        import shutil

        final = os.path.join(self.dir, COMMITTEE)
        if not os.path.exists(final):
            with atomic_path(final) as tmp:
                shutil.copyfile(os.path.join(self.dir, record["checkpoint"]), tmp)

    def explore(self, n: int, committee: Any, ckpt: str, labeled_now: list[int]) -> Any:
        """The explore stage of iteration ``n`` (alip.explore.stage): trajectories of the
        committee from the seeds and the explored frames just labeled; read back when recorded."""
        e = self.cfg.explore
        starts = [make_supercell(a, e.supercell) for a in explore_seeds(self.cfg)]
        if e.from_labeled:
            explored = [i for i in labeled_now if self.store.get(i).info.get("family") == "explore"]
            if explored:
                labeled = self.store.labeled()
                starts += stage.physical_starts(
                    [self.store.get(i) for i in explored],
                    [self.store.get_label(i).energy for i in explored],
                    labeled,
                    [a.get_potential_energy() for a in labeled],
                    e.start_window,
                )
        force_rmse = None
        if e.adaptive == "error":
            force_rmse = errors(committee, self.store.labeled())["force_rmse"]
        executor = self.executor()
        result = stage.explore(
            e,
            n,
            starts,
            ckpt,
            os.path.join(self.dir, EXPLORE),
            executor=None if executor == "serial" else executor,
            seed=_seed(self.cfg.run.seed, n, 3),
            force_rmse=force_rmse,
            progress=self.progress,
        )
        st = result.stats
        self.log(
            f"iteration {n}: explored {st.n_trajectories} trajectories at {result.temperatures} K, "
            f"{result.steps} steps{' (recorded)' if result.resumed else ''}: {st.n_frames} frames, "
            f"accurate {st.accurate}, candidates {st.candidate}, failed {st.failed} "
            f"(trust {st.trust_lo:.3g}-{st.trust_hi:.3g} eV/Å), stops {st.stop_reasons}"
        )
        return result

    def _stop_reason(self, n: int, errors: dict, remaining: int, n_pool: int) -> str | None:
        r = self.cfg.run
        targets = []
        if r.target_force_rmse > 0:
            targets.append(errors["force_rmse_ev_per_ang"] <= r.target_force_rmse)
        if r.target_energy_rmse > 0:
            targets.append(errors["energy_rmse_mev_per_atom"] <= r.target_energy_rmse)
        if targets and all(targets):
            return "target reached"
        if remaining <= 0:
            return "budget spent"
        if n_pool == 0 and not self.cfg.explore.enabled:
            return "pool exhausted"
        if r.max_iterations and n + 1 >= r.max_iterations:
            return "max_iterations reached"
        return None

    # ---------------------------------------------------------------- driver
    def _to_retry(self) -> list[int]:
        """Failed labels to compute again: infrastructure failures always, all with retry_failed."""
        return self.store.failed_ids(None if self.retry_failed else "infrastructure")

    def _reopen(self, records: list[dict], retry: list[int]) -> bool:
        """Whether a finished run goes on (its stop condition no longer holds under the resumed
        configuration, or labels are to be retried); if so its last record is dropped to be redone."""
        last = records[-1]
        n = int(last["iteration"])
        reason = self._stop_reason(n, last["errors"], self.cfg.run.budget - self.spent(), len(self.store.ids("pool")))
        if reason is not None and not retry:
            return False
        why = f"{len(retry)} failed labels to retry" if retry else "the resumed configuration lets it go on"
        self.log(f"reopening iteration {n} (stopped: {last['stop_reason']}; {why})")
        records.pop()
        os.remove(iteration_path(self.dir, n))
        self.store.update_meta(finished=False, stop_reason=None)
        return True

    def execute(self) -> RunResult:
        try:
            records = read_iterations(self.dir)
            retry = self._to_retry()
            label_wall_before = 0.0
            if records and records[-1].get("stop_reason"):
                last_wall = float(records[-1]["wall_s"]["label"])
                if not self._reopen(records, retry):
                    self.write_final_committee(records[-1])
                    return RunResult(self.dir, write_curve(self.dir), records[-1]["stop_reason"])
                label_wall_before = last_wall
            if self.cfg.run.device != "cpu":
                select_device(device=self.cfg.run.device)  # no usable GPU: fail before any labeling
            self.setup()
            if retry:
                self.store.mark_queued(retry, len(records))
                self.log(f"requeued {len(retry)} failed labels for iteration {len(records)}")
            test = read_extxyz(os.path.join(self.dir, TEST))
            pool_atoms = {int(a.info["pool_id"]): a for a in self.store.structures()}
            pool_values = None if self.cfg.explore.enabled else self.pool_values(pool_atoms)
            if records:
                write_curve(self.dir)
                self.log(f"resuming at iteration {len(records)}")
            while not records or not records[-1].get("stop_reason"):
                records.append(self.iterate(len(records), records, pool_atoms, test, label_wall_before, pool_values))
                label_wall_before = 0.0
                write_curve(self.dir)
            self.write_final_committee(records[-1])
            self.store.update_meta(finished=True, stop_reason=records[-1]["stop_reason"])
            return RunResult(self.dir, write_curve(self.dir), records[-1]["stop_reason"])
        finally:
            self.close()


def _stored_config(run_dir: str) -> Config:
    """``RUN/config.toml`` with its input paths resolved against ``run_dir`` and ``run.out`` set
    to ``run_dir``: a moved or copied run continues where it is, never at the stored path."""
    path = os.path.join(run_dir, CONFIG)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir} has no config.toml: not an alip run directory (nothing to resume)")
    return resolve_paths(load_config(path), base=run_dir).replace(run={"out": run_dir})


def _is_fresh(out: str) -> bool:
    """True for a directory that does not exist, is empty, or holds only a released lock."""
    return not os.path.isdir(out) or set(os.listdir(out)) <= {LOCK}


def _started(run_dir: str) -> bool:
    """Whether anything has been stored that the unsafe keys describe (pool or test labels)."""
    return (
        os.path.isfile(os.path.join(run_dir, TEST_LABELS))
        or os.path.isfile(os.path.join(run_dir, TEST))
        or (os.path.isfile(os.path.join(run_dir, LABELS)) and len(LabelStore(os.path.join(run_dir, LABELS))) > 0)
    )


def _apply_resume_policy(run_dir: str, resumed: Config, force: bool, source: str) -> Config:
    """The configuration the run continues with: ``resumed`` checked against the one the run
    ran under (labels.db meta; config.toml for runs that predate it); see resume_policy."""
    store = LabelStore(os.path.join(run_dir, LABELS))
    ran = store.meta.get("config")
    ran_cfg = Config.from_dict(ran) if ran else _stored_config(run_dir)
    found = changes(ran_cfg, resumed)
    forced = check_changes(found, source, force) if _started(run_dir) else []
    echo = resumed.run.progress
    for c in found:
        if c in forced:
            append_log(run_dir, f"resume: FORCED unsafe change {c} (--force)", echo)
        else:
            append_log(run_dir, f"resume: applied {c}", echo)
    if forced:
        notes = list(store.meta.get("forced", []))
        notes.append(
            {
                "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                "changes": [{"key": c.key, "old": c.old, "new": c.new} for c in forced],
            }
        )
        store.update_meta(forced=notes)
        if any(c.key.startswith("descriptor.") for c in forced):
            store.update_meta(descriptor=make_acsf(resumed).to_dict())
    store.update_meta(config=resumed.to_dict())
    if found or load_config(os.path.join(run_dir, CONFIG)).run.out != run_dir:
        atomic_write_text(os.path.join(run_dir, CONFIG), resumed.to_toml())
    return resumed


def run(
    config: Config | dict | str | os.PathLike,
    resume: bool = False,
    executor: Any = None,
    out: str | None = None,
    progress: bool | None = None,
    device: str | None = None,
    force: bool = False,
    retry_failed: bool = False,
    on_bad: str | None = None,
) -> RunResult:
    """Run active learning as configured; the Python face of ``alip run``.

    ``config``: a Config, a dict of tables, a TOML file, or (with ``resume=True``) a
    run directory.  ``resume=False`` starts a new run and refuses an existing,
    non-empty output directory; ``resume=True`` continues the run in the output
    directory (a run directory continues where it is, wherever it was created),
    or starts it when that directory holds no run yet.  On resume the configuration
    (``RUN/config.toml`` as edited, or the given one) is checked against the one the
    run ran under: safe changes (budget, targets, executor, device, ...) are applied
    and logged, unsafe ones refused unless ``force`` (see alip.al.resume_policy).
    ``retry_failed`` labels failed structures again (infrastructure failures always are).
    ``executor`` (any ``concurrent.futures.Executor`` or Dask client) overrides
    ``[labeling]``; ``out`` overrides ``run.out``; ``progress``, ``device`` and ``on_bad``
    override ``run.progress``, ``run.device`` and ``pool.on_bad`` for this call (on resume
    they are not written to the run's configuration).  One process at a
    time drives a run directory (``RUN/lock``; a second gets alip.al.run_lock.RunInUseError).
    """

    def overridden(cfg: Config) -> Config:
        run_keys: dict[str, Any] = {}
        if progress is not None:
            run_keys["progress"] = bool(progress)
        if device is not None:
            run_keys["device"] = str(device)
        return cfg.replace(run=run_keys, pool={"on_bad": on_bad} if on_bad is not None else {})

    if resume and isinstance(config, (str, os.PathLike)) and os.path.isdir(config):
        run_dir, given = os.path.abspath(os.fspath(config)), None
    else:
        given = load_config(config)
        if out is not None:
            given = given.replace(run={"out": os.fspath(out)})
        given = resolve_paths(given)
        run_dir = given.run.out
    if resume and os.path.isfile(os.path.join(run_dir, CONFIG)):
        with RunLock(run_dir) as lock:
            if lock.taken_over:
                append_log(
                    run_dir,
                    f"took over the lock of pid {lock.taken_over.get('pid')} on "
                    f"{lock.taken_over.get('host')}, which ended without releasing it",
                )
            resumed = given.replace(run={"out": run_dir}) if given else _stored_config(run_dir)
            source = "the given configuration" if given else os.path.join(run_dir, CONFIG)
            cfg = overridden(_apply_resume_policy(run_dir, resumed, force, source))
            return _Run(cfg, executor, retry_failed).execute()
    if resume and given is None:
        raise FileNotFoundError(f"{run_dir} has no config.toml: not an alip run directory (nothing to resume)")
    cfg = overridden(given)
    if not _is_fresh(run_dir):
        raise FileExistsError(
            f"output directory {run_dir} exists and is not empty; "
            f"continue it with `alip run --resume {run_dir}` or choose another run.out (--out)"
        )
    # everything that can be checked before a label is paid for, before the directory exists
    notes: list[str] = []  # for log.txt, once it exists
    check_oracle(cfg)  # the spec resolves (the physical window may call the oracle next)
    inputs = make_pool_and_test(cfg, make_acsf(cfg), notes.append)
    if not inputs[0]:
        raise ConfigError("the pool is empty")
    if cfg.run.n_initial > len(inputs[0]):
        raise ConfigError(f"run.n_initial = {cfg.run.n_initial} exceeds the pool ({len(inputs[0])} structures)")
    check_oracle(cfg, (inputs[0] + inputs[1])[0])
    os.makedirs(run_dir, exist_ok=True)
    with RunLock(run_dir):
        if os.path.isfile(os.path.join(run_dir, CONFIG)):
            raise FileExistsError(
                f"{run_dir} was started by another process meanwhile; continue it with `alip run --resume {run_dir}`"
            )
        atomic_write_text(os.path.join(run_dir, CONFIG), cfg.to_toml())
        LabelStore(os.path.join(run_dir, LABELS)).update_meta(config=cfg.to_dict())
        for note in notes:
            append_log(run_dir, note, cfg.run.progress)
        return _Run(cfg, executor, retry_failed, inputs).execute()
