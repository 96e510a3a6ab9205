"""The active-learning run configuration: one TOML file, nine tables.

:class:`Config` holds one dataclass per table; every key has a default and a
one-line description (the ``doc`` metadata of its field), from which
:func:`example_toml` writes a commented example with every key.  Unknown keys,
wrong types and out-of-range values raise :class:`ConfigError` naming the
table and key.  TOML has no null: "off" is written as 0 or "" where noted.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

# The choices of the run configuration, defined here (a leaf module) and imported by the
# modules that implement them (alip.al.acquisition, alip.data.structures, alip.al.loop).
STRATEGIES: tuple[str, ...] = ("qbc", "emc", "random")
QBC_KINDS: tuple[str, ...] = ("force", "energy", "virial", "combined", "all")
DIVERSITY: tuple[str, ...] = ("fps", "kmeans", "none")
EMC_PARAMS: tuple[str, ...] = ("all", "last")
COSTS: tuple[str, ...] = ("none", "atoms3", "measured")
FAMILIES: tuple[str, ...] = ("volume", "small_distortion", "large_distortion", "random")
POLYMORPHS: tuple[str, ...] = ("diamond", "beta_tin", "sc", "bcc", "fcc", "hcp")
EXECUTORS: tuple[str, ...] = ("serial", "process", "dask")
FEATURE_SCALINGS: tuple[str, ...] = ("standard", "minmax", "none")
ENSEMBLES: tuple[str, ...] = ("nvt", "npt", "relax", "nvt_biased")
TRUST_ADAPTIVE: tuple[str, ...] = ("fixed", "rate", "error")
#: "seeds" or the name of an ACSF classmethod (alip.al.loop.make_acsf)
DESCRIPTOR_PRESETS: tuple[str, ...] = (
    "default_si",
    "fine_si",
    "fine_g5_si",
    "shells_si",
    "windows_si",
    "cross_windows_si",
    "seeds",
)
TRAIN_DTYPES: tuple[str, ...] = ("float32", "float64")
VALIDATIONS: tuple[str, ...] = ("folds", "shared")
ON_BAD: tuple[str, ...] = ("stop", "skip")

_DEVICE = re.compile(r"(cpu|cuda)(:[0-9]+)?")


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


def check_device_name(device: str) -> str:
    """``device`` unchanged, or ValueError unless it is 'cpu' or 'cuda[:index]' (syntax only)."""
    if not (isinstance(device, str) and _DEVICE.fullmatch(device)):
        raise ValueError(f"device must be 'cpu' or 'cuda[:index]', got {device!r}")
    return device


def _f(default: Any, doc: str) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: json.loads(json.dumps(d)), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass
class RunSection:
    """What to run and when to stop."""

    out: str = _f("alip_run", "output (run) directory; `alip run --resume DIR` continues it")
    strategy: str = _f("qbc", f"acquisition strategy: {' | '.join(STRATEGIES)}")
    seed: int = _f(0, "seed of the initial random set, committee training and random choices")
    n_initial: int = _f(20, "structures in the initial random set (iteration 0)")
    batch_size: int = _f(20, "structures selected per iteration")
    budget: int = _f(200, "labels in all (successful + failed oracle calls, initial set included)")
    max_iterations: int = _f(0, "stop after this many iterations (0: no limit)")
    target_force_rmse: float = _f(0.0, "stop once the test force RMSE (eV/Å) is at most this (0: off)")
    target_energy_rmse: float = _f(0.0, "stop once the test energy RMSE (meV/atom) is at most this (0: off)")
    threads: int = _f(1, "torch intra-op threads for training and scoring (1 is fastest on a shared small machine)")
    device: str = _f(
        "cpu",
        "where committees train, predict and score (QBC): cpu | cuda | cuda:N "
        "(needs a CUDA build; the oracle runs where [labeling] says)",
    )
    progress: bool = _f(True, "show progress bars")


@dataclass
class OracleSection:
    """Who labels: 'sw', 'kumagai', 'tersoff', 'gpaw', 'stored:PATH', 'stored' or 'module:factory'."""

    spec: Any = _f(
        "sw",
        "oracle spec string ('stored' = the labels of pool.file) or an inline table "
        'such as {type = "gpaw", ecut = 400.0}',
    )
    timeout: float = _f(0.0, "seconds per label before it counts as failed (0: no limit)")


@dataclass
class LabelingSection:
    """Where labels are computed."""

    executor: str = _f(
        "process", f"{' | '.join(EXECUTORS)}: in this process, a local process pool, or a Dask distributed cluster"
    )
    max_workers: int = _f(2, 'processes of the local pool (executor = "process")')
    dask_address: str = _f("", 'scheduler address for executor = "dask" ("": a new LocalCluster)')


@dataclass
class PoolSection:
    """The unlabeled pool: a file, or generated Si structure families."""

    file: str = _f(
        "", "extxyz file of the pool (labels in it are ignored unless oracle is 'stored'); \"\": generate Si structures"
    )
    n: int = _f(1000, "structures to generate")
    seed: int = _f(0, "seed of the generated pool")
    families: list = _f(list(FAMILIES), f"families to generate, any of {list(FAMILIES)}")
    fractions: list = _f([], "weights of the families ([]: equal)")
    max_atoms: int = _f(64, "largest distorted supercell")
    random_atoms: list = _f([8, 32], "atom-count range [min, max] of the random structures")
    polymorphs: list = _f(["diamond"], f"polymorphs of the volume family, any of {list(POLYMORPHS)}")
    volume_range: list = _f([0.85, 1.15], "V/V0 range of the volume family")
    max_energy_above: float = _f(
        1.0,
        "physical window: generated structures more than this (eV/atom) above the "
        "lowest are dropped, pool and test alike (0: off; needs a cheap oracle "
        "such as sw, else it is skipped with a log line)",
    )
    on_bad: str = _f(
        "stop",
        "a frame of pool.file or test.file that cannot be used (parse error, NaN, missing "
        "cell, unknown element, overlapping atoms): stop before any label, or skip it",
    )


@dataclass
class TestSection:
    """The held-out test set: a labeled file, a split of the pool file, or generated."""

    file: str = _f("", 'labeled extxyz file of the test set ("": split or generate)')
    split: float = _f(0.0, "fraction of pool.file held out as the test set (replay; 0: off)")
    n: int = _f(80, "generated test structures (same families as the pool)")
    seed: int = _f(1000, "seed of the generated test set and of the split")
    n_volume: int = _f(20, "extra diamond volume-series points in the generated test set (E-V error)")
    volume_range: list = _f([0.88, 1.12], "V/V0 range of that volume series")
    md: bool = _f(
        False,
        "add the physical test set: frames of the oracle's own MD (Si: crystal 300/900/1500 K, "
        "vacancy, liquid; other seeds: the explore seeds at the explore temperatures), cached "
        "per oracle, errors per subset (family md_*)",
    )
    md_frames: int = _f(10, "frames per MD subset")
    md_scale: float = _f(1.0, "multiplies the MD steps of each subset (equilibration 250, 25 between frames)")


@dataclass
class DescriptorSection:
    """The ACSF descriptor."""

    preset: str = _f(
        "default_si",
        "'default_si' (12 G2 + 24 G4, cutoff 5.5 Å; fast pool scoring), 'fine_si' (16 G2 + 32 G4), "
        "'fine_g5_si' (16 G2 + 32 G5), 'shells_si' (fine_g5_si + 16 G5 shifted onto the first two neighbor "
        "shells), 'windows_si' (16 G2 + 24 centred G5 + 24 G5 on radial windows every 0.5 Å), "
        "'cross_windows_si' (windows_si + 8 G5 with their legs on two windows; the `alip train` default: lower "
        "errors on real DFT, docs/accuracy_studies.md) or "
        "'seeds' (the default_si shape for the elements of explore.seeds; alip.explore.seeds.default_acsf)",
    )
    file: str = _f("", "JSON file of an ACSF spec (ACSF.to_dict()); overrides preset")


@dataclass
class TrainingSection:
    """Committee training; retrained from scratch every iteration.

    The single source of the training defaults: the TOML [training] table, `alip train`
    and :class:`alip.models.training.TrainConfig` (which adds seed, threads, device and
    the force mode) all take them from here."""

    n_members: int = _f(5, "committee members")
    hidden: list = _f([32, 32], "hidden layer widths")
    activation: str = _f(
        "silu", "silu | tanh | softplus | celu (SiLU: better forces on real DFT, docs/accuracy_studies.md)"
    )
    feature_scaling: str = _f("standard", f"{' | '.join(FEATURE_SCALINGS)}: mean/std, to [-1, 1], or unscaled")
    weight_energy: float = _f(
        1.0,
        "loss weight of (ΔE/N)², eV² (1: mlearn's large cells; 4: lower held-out energy errors on small diverse "
        "cells, docs/accuracy_studies.md, seventeenth study)",
    )
    weight_forces: float = _f(0.1, "loss weight of ΔF² per component, (eV/Å)²")
    weight_stress: float = _f(0.1, "loss weight of (ΔW/N)² per component (W = −σV), eV²")
    epochs: int = _f(300, "Adam epochs")
    batch_size: int = _f(
        4, "structures per mini-batch (4: more Adam steps, lower errors on real DFT, docs/accuracy_studies.md)"
    )
    lr: float = _f(5e-3, "initial learning rate")
    lr_final: float = _f(2e-4, "learning rate at the last epoch (exponential decay)")
    lbfgs_steps: int = _f(
        200,
        "full-batch L-BFGS steps after Adam, kept per member if validation improves (0: none; 200: lower "
        "errors than 100 on real DFT, docs/accuracy_studies.md)",
    )
    val_fraction: float = _f(0.1, "validation fraction (early stopping)")
    validation: str = _f(
        "folds",
        f"{' | '.join(VALIDATIONS)}: each member holds out its own val_fraction of the structures (disjoint "
        "folds while they fit, never one held out of every member), so the committee trains on every label, "
        "as ANI's cross-validation ensembles; or one split held out of all members",
    )
    patience: int = _f(100, "epochs without validation improvement (all members) before stopping")
    bootstrap: bool = _f(
        False,
        "bootstrap resampling per member (off: the members differ in their initial weights only, as "
        "in DP-GEN; lower errors on real DFT and in `alip demo`, docs/accuracy_studies.md and README)",
    )
    energy_weighting: float = _f(0.0, "Δ (eV/atom) of weights 1/(1 + (e − e_min)/Δ) (0: off)")
    dtype: str = _f("float32", f"training precision: {' | '.join(TRAIN_DTYPES)} (the committee is float64)")
    processes: int | str = _f(
        "auto",
        "worker processes that train sub-committees side by side (a member's result does not depend on "
        "the split), or 'auto': min(n_members, usable cores / threads) on the CPU where that is predicted "
        "to save >= 20 % of the time (many members or wide networks, big data; not the default K = 5 at "
        "32,32: the shared per-step work dominates, alip.models.member_processes), else 1 (in this process)",
    )

    def check(self) -> None:
        """ValueError for values out of range (the rules that do not need torch)."""
        if self.n_members < 1 or self.epochs < 0 or self.batch_size < 1:
            raise ValueError("n_members and batch_size must be >= 1, epochs >= 0")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError("val_fraction must be in [0, 1)")
        if self.feature_scaling not in FEATURE_SCALINGS:
            raise ValueError(f"unknown feature_scaling {self.feature_scaling!r}")
        if self.energy_weighting is not None and not self.energy_weighting >= 0:
            raise ValueError("energy_weighting must be a positive energy per atom (0: off)")
        if self.validation not in VALIDATIONS:
            raise ValueError(f"validation must be one of {', '.join(VALIDATIONS)}, got {self.validation!r}")
        if self.dtype not in TRAIN_DTYPES:
            raise ValueError("dtype must be 'float32' or 'float64'")
        if self.processes != "auto" and (
            isinstance(self.processes, bool) or not isinstance(self.processes, int) or self.processes < 1
        ):
            raise ValueError(f"processes must be 'auto' or an integer >= 1, got {self.processes!r}")


@dataclass
class AcquisitionSection:
    """Scoring and batch selection (see alip.al.acquisition)."""

    qbc_score: str = _f(
        "force",
        f"{' | '.join(QBC_KINDS)}: max atomic force deviation (eV/Å), energy "
        f"std per atom (eV/atom), virial deviation per atom (eV/atom), energy + force "
        f"or energy + force + virial over their pool medians",
    )
    emc_forces: bool = _f(True, "EMC includes the force term of the loss")
    emc_params: str = _f("all", f"{' | '.join(EMC_PARAMS)}: EMC gradient over all weights or the output layer")
    diversity: str = _f("fps", f"{' | '.join(DIVERSITY)}: farthest-point, k-means or none among the top candidates")
    candidates: float = _f(4.0, "candidates = this × batch_size top-scoring structures")
    random_diversity: bool = _f(False, "apply the diversity step to the random strategy too")
    random_fraction: float = _f(
        0.0, "fraction of each batch drawn uniformly from the pool instead of by score (exploration; 0: off)"
    )
    chunk_atoms: int = _f(1024, "atoms per scoring chunk (bounds memory)")
    cost: str = _f(
        "none",
        f"{' | '.join(COSTS)}: rank by score / estimated label cost: n_atoms³ (plane-wave DFT), or a "
        "power law in n_atoms fitted to the oracle's seconds per label paid so far (alip.al.cost; "
        "qbc and emc, pool and explore alike; random ignores it)",
    )


@dataclass
class ExploreSection:
    """Exploration: candidates from the committee's own MD (alip.explore), instead of a pool."""

    enabled: bool = _f(
        False,
        "explore instead of scoring a pool: each iteration runs trajectories with the "
        "committee, keeps frames in the trust window and selects among them",
    )
    seeds: str = _f("", 'ASE-readable file of seed structures, any elements ("": the 8-atom diamond Si cell)')
    supercell: list = _f([2, 2, 2], "repeats of each seed along its cell vectors")
    ensembles: list = _f(
        ["nvt", "npt"],
        f"trajectory kinds, any of {list(ENSEMBLES)} (Langevin NVT, MTK NPT, FIRE with a cell filter, "
        "Langevin NVT biased toward high committee energy variance)",
    )
    bias_strength: float = _f(
        2.0,
        "eV; nvt_biased: A of the bias A [exp(-σ_E²/(N B²)) - 1] on the committee energy std σ_E "
        "(N atoms): the deepest the bias goes (alip.explore.biased)",
    )
    bias_width: float = _f(
        0.05, "eV; nvt_biased: B of that bias; it pulls hardest where σ_E ≈ B √N, and fades far beyond"
    )
    temperatures: list = _f([300.0, 900.0, 1500.0], "K; a ladder: iteration n runs the lowest 1 + n // ramp")
    pressures: list = _f([0.0], "GPa, for npt and relax")
    steps: int = _f(300, "steps of each trajectory in iteration 0 (relax: at most)")
    growth: float = _f(1.5, "steps × growth every iteration (longer runs as the model improves)")
    max_steps: int = _f(3000, "cap on the steps of one trajectory")
    every: int = _f(10, "collect a frame every this many steps")
    ramp: int = _f(1, "iterations per temperature rung before the next (hotter) one joins")
    timestep: float = _f(2.0, "MD time step, fs")
    max_trajectories: int = _f(
        8, "trajectories per iteration (starts × ensembles × T × P, sampled evenly over the temperatures reached)"
    )
    from_labeled: bool = _f(True, "also start from the explored frames labeled in the previous iteration")
    start_window: float = _f(
        0.5,
        "eV/atom; an explored frame labeled in the previous iteration starts new trajectories only when its "
        "labeled energy is at most this above the lowest labeled energy per atom of its composition",
    )
    trust_lo: float = _f(0.05, "eV/Å; frames with a smaller max force deviation are accurate, not candidates")
    trust_hi: float = _f(0.35, "eV/Å; a trajectory stops beyond it (DP-GEN); such frames are never candidates")
    adaptive: str = _f(
        "fixed",
        f"{' | '.join(TRUST_ADAPTIVE)}: trust_lo as set, raised so that `rate` of "
        f"the frames are candidates, or raised to factor × the committee's force RMSE",
    )
    rate: float = _f(0.2, "adaptive = 'rate': share of the frames below trust_hi kept as candidates")
    factor: float = _f(1.0, "adaptive = 'error': trust_lo = factor × force RMSE on the labeled (validation) data")
    min_distance: float = _f(
        0.0, "Å; a closer atom pair ends a trajectory as exploded (0: 0.7 × the shortest covalent bond of the elements)"
    )
    initial_rattle: float = _f(0.05, "Å; displacement std of the distorted seeds labeled first (run.n_initial)")
    initial_strain: float = _f(0.03, "largest strain component of those distorted seeds")

    def check(self) -> None:
        """ValueError naming the key for values out of range."""
        bad = [e for e in self.ensembles if e not in ENSEMBLES]
        if not self.ensembles or bad:
            raise ValueError(f"explore.ensembles must be a non-empty list of {list(ENSEMBLES)}, got {self.ensembles!r}")
        if not self.temperatures or any(not t > 0 for t in self.temperatures):
            raise ValueError(
                f"explore.temperatures must be a non-empty list of temperatures > 0 K, got {self.temperatures!r}"
            )
        if not self.pressures:
            raise ValueError("explore.pressures must not be empty")
        if len(self.supercell) != 3 or any(int(x) != x or x < 1 for x in self.supercell):
            raise ValueError(f"explore.supercell must be three integers >= 1, got {self.supercell!r}")
        for key in ("steps", "max_steps", "every", "ramp", "max_trajectories"):
            if getattr(self, key) < 1:
                raise ValueError(f"explore.{key} must be >= 1, got {getattr(self, key)!r}")
        if not self.growth >= 1.0:
            raise ValueError(f"explore.growth must be >= 1, got {self.growth!r}")
        if not self.timestep > 0:
            raise ValueError(f"explore.timestep must be > 0 fs, got {self.timestep!r}")
        if not 0 <= self.trust_lo < self.trust_hi:
            raise ValueError(
                f"explore.trust_lo ({self.trust_lo:g} eV/Å) must be >= 0 and below "
                f"explore.trust_hi ({self.trust_hi:g} eV/Å)"
            )
        if self.adaptive not in TRUST_ADAPTIVE:
            raise ValueError(f"explore.adaptive must be one of {list(TRUST_ADAPTIVE)}, got {self.adaptive!r}")
        if not 0 < self.rate <= 1:
            raise ValueError(f"explore.rate must be in (0, 1], got {self.rate!r}")
        if not self.factor > 0:
            raise ValueError(f"explore.factor must be > 0, got {self.factor!r}")
        if not self.bias_strength >= 0:
            raise ValueError(f"explore.bias_strength (A) must be >= 0 eV, got {self.bias_strength!r}")
        if not self.bias_width > 0:
            raise ValueError(f"explore.bias_width (B) must be > 0 eV, got {self.bias_width!r}")
        if "nvt_biased" in self.ensembles and not self.bias_strength > 0:
            raise ValueError("explore.ensembles has nvt_biased but explore.bias_strength is 0 (use nvt)")
        for key in ("min_distance", "initial_rattle", "initial_strain", "start_window"):
            if getattr(self, key) < 0:
                raise ValueError(f"explore.{key} must be >= 0, got {getattr(self, key)!r}")


_SECTIONS: dict[str, type] = {
    "run": RunSection,
    "oracle": OracleSection,
    "labeling": LabelingSection,
    "pool": PoolSection,
    "test": TestSection,
    "descriptor": DescriptorSection,
    "training": TrainingSection,
    "acquisition": AcquisitionSection,
    "explore": ExploreSection,
}


@dataclass
class Config:
    """A complete run configuration (one dataclass per TOML table)."""

    run: RunSection = field(default_factory=RunSection)
    oracle: OracleSection = field(default_factory=OracleSection)
    labeling: LabelingSection = field(default_factory=LabelingSection)
    pool: PoolSection = field(default_factory=PoolSection)
    test: TestSection = field(default_factory=TestSection)
    descriptor: DescriptorSection = field(default_factory=DescriptorSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    acquisition: AcquisitionSection = field(default_factory=AcquisitionSection)
    explore: ExploreSection = field(default_factory=ExploreSection)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Build and validate a Config from nested dicts (missing keys take defaults)."""
        if not isinstance(data, dict):
            raise ConfigError(f"configuration must be a table, got {type(data).__name__}")
        _unknown(data, _SECTIONS, "top level (tables)")
        sections = {}
        for name, klass in _SECTIONS.items():
            table = data.get(name, {})
            if not isinstance(table, dict):
                raise ConfigError(f"[{name}] must be a table, got {type(table).__name__}")
            sections[name] = _build(klass, name, table)
        cfg = cls(**sections)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain dicts (a copy)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def replace(self, **tables: dict[str, Any]) -> Config:
        """A validated copy with some keys changed: ``cfg.replace(run={"seed": 2})``."""
        data = self.to_dict()
        for name, entries in tables.items():
            if name not in _SECTIONS:
                raise ConfigError(f"unknown table [{name}]")
            data[name].update(entries)
        return Config.from_dict(data)

    def to_toml(self) -> str:
        """The resolved configuration as TOML (every key, with its description)."""
        return _render(self, comments=True)

    # ---------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise ConfigError for values out of range or inconsistent."""
        r, lab, p, t, a = self.run, self.labeling, self.pool, self.test, self.acquisition
        _choice("run.strategy", r.strategy, STRATEGIES)
        _positive("run.n_initial", r.n_initial)
        _positive("run.batch_size", r.batch_size)
        _nonneg("run.max_iterations", r.max_iterations)
        _positive("run.threads", r.threads)
        try:
            check_device_name(r.device)
        except ValueError as exc:
            raise ConfigError(f"run.device: {exc}") from None
        if r.budget < r.n_initial:
            raise ConfigError(f"run.budget ({r.budget}) must be at least run.n_initial ({r.n_initial})")
        _nonneg("run.target_force_rmse", r.target_force_rmse)
        _nonneg("run.target_energy_rmse", r.target_energy_rmse)
        if not r.out:
            raise ConfigError("run.out (the output directory) must not be empty")
        spec = self.oracle.spec
        if not (isinstance(spec, str) and spec.strip()) and not (isinstance(spec, dict) and "type" in spec):
            raise ConfigError("oracle.spec must be a non-empty string or a table with a 'type' key")
        if spec == "stored" and not p.file:
            raise ConfigError("oracle.spec = 'stored' replays the labels of pool.file, which is not set")
        _nonneg("oracle.timeout", self.oracle.timeout)
        _choice("labeling.executor", lab.executor, EXECUTORS)
        _choice("pool.on_bad", p.on_bad, ON_BAD)
        _positive("labeling.max_workers", lab.max_workers)
        if not p.file:
            _positive("pool.n", p.n)
            if not p.families or any(f not in FAMILIES for f in p.families):
                raise ConfigError(f"pool.families must be a non-empty subset of {list(FAMILIES)}, got {p.families}")
            if p.fractions and (len(p.fractions) != len(p.families) or min(p.fractions) < 0 or sum(p.fractions) <= 0):
                raise ConfigError("pool.fractions must be [] or one non-negative weight per family")
            if any(x not in POLYMORPHS for x in p.polymorphs) or not p.polymorphs:
                raise ConfigError(f"pool.polymorphs must be a non-empty subset of {list(POLYMORPHS)}")
            _range_pair("pool.volume_range", p.volume_range)
            _range_pair("pool.random_atoms", p.random_atoms)
            if p.max_atoms < 8:
                raise ConfigError(f"pool.max_atoms must be at least 8, got {p.max_atoms}")
        if not 0.0 <= t.split < 1.0:
            raise ConfigError(f"test.split must be in [0, 1), got {t.split}")
        if t.split > 0 and not p.file:
            raise ConfigError("test.split holds out part of pool.file, which is not set")
        if t.split > 0 and t.file:
            raise ConfigError("set either test.file or test.split, not both")
        if not t.file and t.split == 0:
            _nonneg("test.n", t.n)
            _nonneg("test.n_volume", t.n_volume)
            if t.n + t.n_volume < 1:
                raise ConfigError("the generated test set is empty: set test.n or test.n_volume > 0")
            _range_pair("test.volume_range", t.volume_range)
        _choice("descriptor.preset", self.descriptor.preset, DESCRIPTOR_PRESETS)
        if self.descriptor.preset == "seeds" and not self.explore.seeds and not self.descriptor.file:
            raise ConfigError("descriptor.preset = 'seeds' needs explore.seeds")
        _nonneg("pool.max_energy_above", p.max_energy_above)
        _positive("test.md_frames", t.md_frames)
        _positive("test.md_scale", t.md_scale)
        try:
            self.explore.check()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        try:
            self.training.check()
        except ValueError as exc:
            raise ConfigError(f"[training]: {exc}") from None
        _choice("acquisition.qbc_score", a.qbc_score, QBC_KINDS)
        _choice("acquisition.emc_params", a.emc_params, EMC_PARAMS)
        _choice("acquisition.diversity", a.diversity, DIVERSITY)
        _choice("acquisition.cost", a.cost, COSTS)
        if not a.candidates >= 1:
            raise ConfigError(f"acquisition.candidates must be >= 1, got {a.candidates}")
        _positive("acquisition.chunk_atoms", a.chunk_atoms)
        if not 0.0 <= a.random_fraction <= 1.0:
            raise ConfigError(f"acquisition.random_fraction must be in [0, 1], got {a.random_fraction}")

    # ---------------------------------------------------------------- derived
    def oracle_spec(self) -> Any:
        """The spec for alip.data.oracles.make_oracle ('stored' resolved to pool.file)."""
        spec = self.oracle.spec
        if spec == "stored":
            return f"stored:{os.path.abspath(self.pool.file)}"
        return spec


# ----------------------------------------------------------------------------- helpers
def _unknown(table: dict, known: Any, where: str) -> None:
    for key in table:
        if key not in known:
            hint = difflib.get_close_matches(str(key), list(known), n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"unknown key {key!r} in {where}{extra}; known: {sorted(known)}")


def _build(klass: type, name: str, table: dict) -> Any:
    fields = {f.name: f for f in dataclasses.fields(klass)}
    _unknown(table, fields, f"[{name}]")
    defaults = klass()
    kwargs = {}
    for key, value in table.items():
        kwargs[key] = _check_type(f"{name}.{key}", value, getattr(defaults, key))
    return klass(**kwargs)


def _check_type(where: str, value: Any, default: Any) -> Any:
    if where == "oracle.spec":
        if isinstance(value, (str, dict)):
            return value
        raise ConfigError(f"{where} must be a string or a table, got {type(value).__name__}")
    if where == "training.processes":  # "auto" or a count: checked by TrainingSection.check
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be an array, got {value!r}")
        kinds = {type(x) for x in default}
        for x in value:
            ok = (
                isinstance(x, str)
                if str in kinds
                else isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
            )
            if not ok and default:
                raise ConfigError(f"{where} has an element of the wrong type: {x!r}")
        return list(value)
    return value


def _choice(where: str, value: Any, options: tuple) -> None:
    if value not in options:
        raise ConfigError(f"{where} must be one of {list(options)}, got {value!r}")


def _positive(where: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{where} must be positive, got {value!r}")


def _nonneg(where: str, value: float) -> None:
    if not value >= 0:
        raise ConfigError(f"{where} must be non-negative, got {value!r}")


def _range_pair(where: str, pair: list) -> None:
    if len(pair) != 2 or not 0 < pair[0] <= pair[1]:
        raise ConfigError(f"{where} must be [low, high] with 0 < low <= high, got {pair!r}")


# ----------------------------------------------------------------------------- TOML
def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"cannot write non-finite number {value!r} to TOML")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"cannot write {type(value).__name__} to TOML")


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _render(cfg: Config, comments: bool) -> str:
    lines: list[str] = []
    for name, klass in _SECTIONS.items():
        section = getattr(cfg, name)
        if lines:
            lines.append("")
        if comments:
            lines.append(f"# {klass.__doc__.strip().splitlines()[0]}")
        lines.append(f"[{name}]")
        for f in dataclasses.fields(section):
            text = f"{f.name} = {_value(getattr(section, f.name))}"
            if comments:
                text = f"{text:<40} # {f.metadata['doc']}"
            lines.append(text)
    return "\n".join(lines) + "\n"


def example_toml(explore: bool = False) -> str:
    """A commented example configuration with every key at its default; ``explore``: with
    exploration switched on (``alip init --explore``) and the physical MD test set."""
    if explore:
        head = (
            "# alip exploration run (alip run CONFIG.toml): candidates are frames of the committee's own\n"
            "# MD from [explore] seeds, labeled where its force deviation lies in [trust_lo, trust_hi].\n"
            "# The first run.n_initial labels are distorted seeds; [pool] only makes the family test set.\n"
            "# Every key is optional; shown are the defaults of an exploration run.\n\n"
        )
        return head + Config().replace(explore={"enabled": True}, test={"md": True}).to_toml()
    head = (
        "# alip active-learning run configuration (alip run CONFIG.toml).\n"
        "# Every key is optional; shown are the defaults.\n\n"
    )
    return head + Config().to_toml()


def loads(text: str) -> Config:
    """Parse TOML text into a validated Config."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}") from None
    return Config.from_dict(data)


def load_config(source: Config | dict | str | os.PathLike) -> Config:
    """A Config from a Config, a dict, or a TOML file path."""
    if isinstance(source, Config):
        source.validate()
        return source
    if isinstance(source, dict):
        return Config.from_dict(source)
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"configuration file not found: {path}")
    with open(path, "rb") as fh:
        try:
            data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return Config.from_dict(data)
