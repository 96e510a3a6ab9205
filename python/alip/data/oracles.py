"""Oracles: anything that labels a structure with energy, forces and stress.

An :class:`Oracle` wraps an ASE calculator (or a dataset of stored labels) and
turns one structure into a :class:`Label`.  It never raises for a bad
calculation: exceptions, non-finite results and timeouts come back as a label
with ``status="failed"`` and the error text, so a batch can go on.

Oracles are picklable (they hold settings, never a live calculator) so they can
be shipped to process-pool or Dask workers; each worker builds its calculator
lazily.  :func:`make_oracle` builds one from a short spec ("sw", "kumagai",
"tersoff", "gpaw", "stored:PATH", "module:factory" or a ``{"type": ...}`` dict).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError

from alip.data.io import labeled_index, voigt6

#: Thread settings applied in labeling workers (more threads measured 10x slower for DFT).
THREAD_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


@contextmanager
def limit_threads() -> Iterator[None]:
    """One thread for OpenMP/BLAS inside the block.

    Sets :data:`THREAD_ENV` where unset (for libraries loaded later) and, when
    ``threadpoolctl`` is installed, also limits pools already loaded (numpy's
    BLAS): with the default threads GPAW ran 6x slower on 2 cores.
    """
    for key, value in THREAD_ENV.items():
        os.environ.setdefault(key, value)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1):
        yield


#: Kinds of failed label: the structure's own, or the labeling machinery's.
FAILURES: tuple[str, ...] = ("structure", "infrastructure")


@dataclass
class Label:
    """Result of labeling one structure.

    ``energy`` in eV, ``forces`` (n, 3) in eV/A, ``stress`` Voigt (6,) in eV/A^3
    (xx, yy, zz, yz, xz, xy; ASE sign convention) or None, ``wall_time`` in s.
    A failed label has ``status="failed"``, an ``error``, no values and a ``failure``
    kind (:data:`FAILURES`): "structure" when the calculation itself failed for this
    structure (exception, NaN, SCF not converged, timeout), "infrastructure" when the
    machinery around it did (worker lost, broken process pool, oracle not importable
    in the worker) -- those say nothing about the structure and are retried.
    """

    status: str
    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    wall_time: float = 0.0
    error: str | None = None
    failure: str | None = None

    def __post_init__(self) -> None:
        if self.status not in ("labeled", "failed"):
            raise ValueError(f"Label status must be 'labeled' or 'failed', got {self.status!r}")
        if self.status == "failed" and self.failure is None:
            self.failure = "structure"
        if self.failure not in (None, *FAILURES):
            raise ValueError(f"Label failure must be one of {FAILURES}, got {self.failure!r}")

    @property
    def ok(self) -> bool:
        """True for a successful label."""
        return self.status == "labeled"

    @classmethod
    def failed(cls, error: str, wall_time: float = 0.0, failure: str = "structure") -> Label:
        """A failed label carrying ``error`` (``failure``: "structure" or "infrastructure")."""
        return cls(status="failed", error=str(error), wall_time=float(wall_time), failure=failure)


class LabelTimeout(BaseException):
    """Raised inside a labeling call when its time limit passes.

    A BaseException so that calculators catching ``Exception`` cannot swallow it.
    """


@contextmanager
def _deadline(timeout: float | None) -> Iterator[None]:
    """Interrupt the block after ``timeout`` s (POSIX main thread only)."""
    usable = (
        timeout is not None and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise LabelTimeout()

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, float(timeout))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, old)


def _check_result(n: int, energy: Any, forces: Any, stress: Any) -> tuple[float, np.ndarray, np.ndarray | None]:
    energy = float(np.asarray(energy, dtype=float).reshape(()))
    forces = np.array(forces, dtype=float)
    if forces.shape != (n, 3):
        raise ValueError(f"forces have shape {forces.shape}, expected ({n}, 3)")
    if not np.isfinite(energy):
        raise FloatingPointError(f"non-finite energy {energy}")
    if not np.all(np.isfinite(forces)):
        raise FloatingPointError("non-finite forces")
    stress = voigt6(stress)
    if stress is not None and not np.all(np.isfinite(stress)):
        raise FloatingPointError("non-finite stress")
    return energy, forces, stress


class Oracle:
    """Base class: label a structure through an ASE calculator.

    Subclasses set ``name``, implement :meth:`make_calculator` and
    :attr:`settings`, or override :meth:`compute` entirely.
    """

    name: str = "oracle"
    #: Reuse one calculator for many structures (False: a fresh one each time).
    reuse_calculator: bool = True
    #: Use the force-consistent (free) energy, as smeared DFT forces derive from it.
    force_consistent: bool = False

    def __init__(self) -> None:
        self._calc: Calculator | None = None

    # -- settings ---------------------------------------------------------
    @property
    def settings(self) -> dict[str, Any]:
        """JSON-serialisable settings; ``make_oracle(self.spec())`` rebuilds the oracle."""
        return {}

    def spec(self) -> dict[str, Any]:
        """``{"type": ..., **settings}``, accepted by :func:`make_oracle`."""
        return {"type": self.spec_type, **self.settings}

    spec_type: str = "oracle"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_calc"] = None  # live calculators are rebuilt in the worker
        return state

    # -- computing ----------------------------------------------------------
    def make_calculator(self, atoms: Atoms) -> Calculator:
        """A new ASE calculator for ``atoms``."""
        raise NotImplementedError

    def _calculator(self, atoms: Atoms) -> Calculator:
        if self.reuse_calculator:
            if getattr(self, "_calc", None) is None:
                self._calc = self.make_calculator(atoms)
            return self._calc
        return self.make_calculator(atoms)

    def compute(self, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray | None]:
        """Energy, forces and stress (None where unavailable); may raise."""
        atoms.calc = self._calculator(atoms)
        energy = atoms.get_potential_energy(force_consistent=self.force_consistent)
        forces = atoms.get_forces()
        stress = None
        if atoms.pbc.all() and "stress" in getattr(atoms.calc, "implemented_properties", ()):
            try:
                stress = atoms.get_stress(voigt=True)
            except PropertyNotImplementedError:
                stress = None
        return energy, forces, stress

    def label(self, atoms: Atoms, timeout: float | None = None) -> Label:
        """Label one structure; never raises for a failed calculation.

        ``timeout`` (s): in a POSIX main thread (process-pool workers) the
        calculation is interrupted; elsewhere a result that took longer is
        discarded.  Either way the label is failed with a "timeout" error.
        """
        if not isinstance(atoms, Atoms):
            raise TypeError(f"label() needs an ase.Atoms, got {type(atoms).__name__}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        work = atoms.copy()
        work.calc = None
        t0 = time.perf_counter()
        try:
            if not np.all(np.isfinite(work.positions)) or not np.all(np.isfinite(work.cell.array)):
                raise ValueError("non-finite positions or cell")
            with _deadline(timeout):
                energy, forces, stress = self.compute(work)
            energy, forces, stress = _check_result(len(work), energy, forces, stress)
        except LabelTimeout:
            self._calc = None
            return Label.failed(f"timeout after {timeout} s", time.perf_counter() - t0)
        except ImportError as exc:  # the oracle's code is missing where it runs: not the structure's fault
            self._calc = None
            return Label.failed(f"{type(exc).__name__}: {exc}", time.perf_counter() - t0, "infrastructure")
        except Exception as exc:  # noqa: BLE001 - any calculator error is a failed label
            self._calc = None
            return Label.failed(f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)
        wall = time.perf_counter() - t0
        if timeout is not None and wall > timeout:
            return Label.failed(f"timeout after {timeout} s (took {wall:.3g} s)", wall)
        return Label("labeled", energy, forces, stress, wall)


# ----------------------------------------------------------------------------- matscipy potentials
def _manybody_table() -> dict[str, tuple[Callable[[dict], dict], dict, str]]:
    from matscipy.calculators.manybody.explicit_forms import Kumagai, StillingerWeber, TersoffBrenner
    from matscipy.calculators.manybody.explicit_forms.kumagai import Kumagai_Comp_Mat_Sci_39_Si
    from matscipy.calculators.manybody.explicit_forms.stillinger_weber import Stillinger_Weber_PRB_31_5262_Si
    from matscipy.calculators.manybody.explicit_forms.tersoff_brenner import Tersoff_PRB_39_5566_Si_C

    # Pure-Si Tersoff: the Si entries of the published Si-C set (last element / pair).
    si_c = Tersoff_PRB_39_5566_Si_C
    tersoff_si = {"__ref__": si_c["__ref__"], "style": "Tersoff", "el": ["Si"]}
    tersoff_si.update({k: [v[-1]] for k, v in si_c.items() if k not in ("__ref__", "style", "el")})
    return {
        "sw": (StillingerWeber, Stillinger_Weber_PRB_31_5262_Si, "Stillinger_Weber_PRB_31_5262_Si"),
        "kumagai": (Kumagai, Kumagai_Comp_Mat_Sci_39_Si, "Kumagai_Comp_Mat_Sci_39_Si"),
        "tersoff": (TersoffBrenner, tersoff_si, "Tersoff_PRB_39_5566_Si_C[Si]"),
        "tersoff-sic": (TersoffBrenner, si_c, "Tersoff_PRB_39_5566_Si_C"),
    }


def _triplet_neighbourhood() -> type:
    """matscipy's cutoff neighbourhood without the j-k pair search it does in pure Python.

    ``Manybody`` only asks for i-j and i-k triplet members ("ijdD"), but the stock
    ``get_triplets`` also looks up each j-k pair in a Python loop, which costs
    ~0.3 s for a compressed 64-atom cell.  Results are identical (see tests).
    """
    from matscipy.neighbours import CutoffNeighbourhood, first_neighbours, neighbour_list, triplet_list

    class PairTripletNeighbourhood(CutoffNeighbourhood):
        def get_triplets(self, atoms, quantities, neighbours=None, cutoff=None):
            if "k" in quantities:
                return super().get_triplets(atoms, quantities, neighbours, cutoff)
            cutoff = self.cutoff if cutoff is None else cutoff
            if neighbours is None:
                neighbours = neighbour_list("ijdD", atoms, cutoff)
            i_p, _, d_p, D_p = neighbours
            ij_t, ik_t = triplet_list(first_neighbours(len(atoms), i_p), d_p, cutoff)
            D = np.empty((len(ij_t), 3, 3))
            D[:, 0] = D_p[ij_t]
            D[:, 1] = D_p[ik_t]
            D[:, 2] = D[:, 1] - D[:, 0]
            d = np.linalg.norm(D, axis=-1)
            return self.make_result(quantities, np.array([ij_t, ik_t]).T, D, d, None, accepted_quantities="ijdD")

    return PairTripletNeighbourhood


_MANYBODY_ALIASES = {
    "sw": "sw",
    "stillinger-weber": "sw",
    "stillinger_weber": "sw",
    "stillingerweber": "sw",
    "kumagai": "kumagai",
    "tersoff": "tersoff",
    "tersoff-sic": "tersoff-sic",
    "tersoff_sic": "tersoff-sic",
}


class ManybodyOracle(Oracle):
    """Published potentials from ``matscipy.calculators.manybody`` (embedded default).

    ``potential``: ``"sw"`` (Stillinger--Weber 1985), ``"kumagai"`` (2007) or
    ``"tersoff"`` (1989) for Si; ``"tersoff-sic"`` (Tersoff 1989, Si--C: any mix of Si
    and C).  Deterministic, milliseconds per structure.
    """

    spec_type = "manybody"

    def __init__(self, potential: str = "sw") -> None:
        super().__init__()
        key = _MANYBODY_ALIASES.get(str(potential).lower())
        if key is None:
            raise ValueError(
                f"unknown manybody potential {potential!r}; choose from 'sw', 'kumagai', 'tersoff', 'tersoff-sic'"
            )
        self.potential = key
        self.name = key

    @property
    def settings(self) -> dict[str, Any]:
        form, params, pname = _manybody_table()[self.potential]
        return {"potential": self.potential, "parameters": pname, "reference": params["__ref__"]}

    def make_calculator(self, atoms: Atoms) -> Calculator:
        from matscipy.calculators.manybody import Manybody

        form, params, _ = _manybody_table()[self.potential]
        kwargs = form(params)
        kwargs["neighbourhood"] = _triplet_neighbourhood()(
            atom_types=kwargs["atom_type"], pair_types=kwargs["pair_type"]
        )
        return Manybody(**kwargs)

    def compute(self, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray | None]:
        if not atoms.pbc.any() and abs(np.linalg.det(atoms.cell.array)) < 1e-9:
            atoms.center(vacuum=5.0)  # matscipy's neighbour list needs a cell even for clusters
        with warnings.catch_warnings():
            # matscipy's Tersoff form warns about np.where(..., where=) it handles itself
            warnings.filterwarnings("ignore", message=".*'where' used without 'out'.*")
            return super().compute(atoms)


# ----------------------------------------------------------------------------- GPAW
def kpoint_grid(atoms: Atoms, density: float) -> tuple[int, int, int]:
    """Monkhorst--Pack sizes with at least ``density`` points per A^-1 (2*pi convention).

    n_i = ceil(2*pi*|b_i|*density) along periodic axes (b_i: reciprocal vectors
    without 2*pi), 1 along open ones, so cells of different size sample the
    Brillouin zone equally finely.
    """
    if not density > 0:
        raise ValueError(f"k-point density must be positive, got {density!r}")
    recip = atoms.cell.reciprocal()
    return tuple(
        int(max(1, np.ceil(2 * np.pi * np.linalg.norm(recip[i]) * density - 1e-9))) if atoms.pbc[i] else 1
        for i in range(3)
    )


class GPAWOracle(Oracle):
    """GPAW plane-wave DFT (optional extra; see the README for installing GPAW).

    Defaults: PW cutoff ``ecut`` = 300 eV, PBE, Fermi--Dirac smearing of
    ``smearing`` eV, Gamma-centred k-points by ``kpt_density`` (points per A^-1),
    one thread per worker.  The energy is GPAW's free energy, the one its
    forces and stress are derivatives of.  ``extra`` is passed to ``GPAW(...)``.
    """

    spec_type = "gpaw"
    name = "gpaw"
    reuse_calculator = False
    force_consistent = True

    def __init__(
        self,
        ecut: float = 300.0,
        xc: str = "PBE",
        kpt_density: float = 3.0,
        smearing: float = 0.1,
        maxiter: int = 300,
        extra: dict[str, Any] | None = None,
        check_import: bool = True,
    ) -> None:
        super().__init__()
        if not ecut > 0 or not kpt_density > 0 or not smearing >= 0 or not maxiter > 0:
            raise ValueError("ecut, kpt_density and maxiter must be positive, smearing >= 0")
        if check_import and importlib.util.find_spec("gpaw") is None:
            raise ImportError(
                "the 'gpaw' oracle needs GPAW; see the README section 'Real DFT with GPAW' for the install steps"
            )
        self.ecut, self.xc, self.kpt_density = float(ecut), str(xc), float(kpt_density)
        self.smearing, self.maxiter, self.extra = float(smearing), int(maxiter), dict(extra or {})

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "ecut": self.ecut,
            "xc": self.xc,
            "kpt_density": self.kpt_density,
            "smearing": self.smearing,
            "maxiter": self.maxiter,
            "extra": self.extra,
        }

    def compute(self, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray | None]:
        with limit_threads():
            return super().compute(atoms)

    def make_calculator(self, atoms: Atoms) -> Calculator:
        from gpaw import GPAW

        params: dict[str, Any] = dict(
            mode={"name": "pw", "ecut": self.ecut},
            xc=self.xc,
            kpts={"size": kpoint_grid(atoms, self.kpt_density), "gamma": True},
            occupations={"name": "fermi-dirac", "width": self.smearing},
            maxiter=self.maxiter,
            txt=None,
        )
        params.update(self.extra)
        return GPAW(**params)


# ----------------------------------------------------------------------------- user code
def _resolve(factory: str) -> Callable[..., Calculator]:
    module_name, _, attr = factory.partition(":")
    if not module_name or not attr:
        raise ValueError(f"user oracle must be 'module:factory', got {factory!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"cannot import module {module_name!r} for oracle {factory!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise AttributeError(f"module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{factory!r} is not callable")
    return obj


class UserOracle(Oracle):
    """Any ASE calculator from user code: ``factory`` is ``"module:function"``.

    The function is called as ``function(**kwargs)`` -- plus ``atoms=`` when it
    has an ``atoms`` parameter (e.g. to choose k-points) -- and returns an ASE
    calculator.  A fresh calculator is made per structure unless
    ``reuse_calculator`` is True.  The module must be importable in the workers.
    """

    spec_type = "user"

    def __init__(
        self,
        factory: str,
        kwargs: dict[str, Any] | None = None,
        reuse_calculator: bool = False,
        force_consistent: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__()
        _resolve(factory)  # fail early with a clear message
        self.factory, self.kwargs = str(factory), dict(kwargs or {})
        self.reuse_calculator, self.force_consistent = bool(reuse_calculator), bool(force_consistent)
        self.name = name or factory

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "factory": self.factory,
            "kwargs": self.kwargs,
            "reuse_calculator": self.reuse_calculator,
            "force_consistent": self.force_consistent,
            "name": self.name,
        }

    def make_calculator(self, atoms: Atoms) -> Calculator:
        func = _resolve(self.factory)
        kwargs = dict(self.kwargs)
        try:
            if "atoms" in inspect.signature(func).parameters:
                kwargs["atoms"] = atoms
        except (TypeError, ValueError):
            pass
        calc = func(**kwargs)
        if not hasattr(calc, "get_potential_energy") and not isinstance(calc, Calculator):
            raise TypeError(f"{self.factory} returned {type(calc).__name__}, not an ASE calculator")
        return calc


# ----------------------------------------------------------------------------- stored labels
class StoredLabelOracle(Oracle):
    """Labels already stored in a dataset (extxyz file or ASE database).

    A structure is matched by species order, pbc, cell (within ``tol``, A) and
    positions (within ``tol`` after periodic wrapping); the stored energy,
    forces and stress are returned unchanged.  No match is a failed label.
    This replays active learning on an existing DFT dataset.
    """

    spec_type = "stored"
    name = "stored"

    def __init__(
        self,
        path: str | os.PathLike,
        tol: float = 1e-4,
        energy_key: str | None = None,
        forces_key: str | None = None,
        stress_key: str | None = None,
    ) -> None:
        super().__init__()
        self.path = os.path.abspath(os.fspath(path))
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"stored-label dataset not found: {self.path}")
        if not tol > 0:
            raise ValueError(f"tol must be positive, got {tol!r}")
        self.tol = float(tol)
        self.keys = (energy_key, forces_key, stress_key)
        if not labeled_index(self.path, self.keys):
            raise ValueError(f"{self.path} holds no labeled structure (energy and forces)")

    @property
    def settings(self) -> dict[str, Any]:
        e, f, s = self.keys
        return {"path": self.path, "tol": self.tol, "energy_key": e, "forces_key": f, "stress_key": s}

    def __len__(self) -> int:
        return sum(len(v) for v in labeled_index(self.path, self.keys).values())

    def compute(self, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray | None]:
        group = (atoms.numbers.tobytes(), tuple(bool(p) for p in atoms.pbc))
        cell = atoms.cell.array
        for s_cell, s_pos, energy, forces, stress in labeled_index(self.path, self.keys).get(group, []):
            if not np.allclose(s_cell, cell, rtol=0.0, atol=self.tol):
                continue
            diff = atoms.positions - s_pos
            if atoms.pbc.any():
                frac = np.linalg.solve(cell.T, diff.T).T
                frac[:, atoms.pbc] -= np.round(frac[:, atoms.pbc])
                diff = frac @ cell
            if np.all(np.linalg.norm(diff, axis=1) <= self.tol):
                return energy, forces.copy(), None if stress is None else stress.copy()
        raise LookupError(
            f"no stored label in {self.path} matches this structure ({atoms.get_chemical_formula()}, tol={self.tol} A)"
        )


# ----------------------------------------------------------------------------- factory
def make_oracle(spec: str | dict[str, Any] | Oracle) -> Oracle:
    """Build an oracle from a spec string, a ``{"type": ...}`` dict or an Oracle."""
    if isinstance(spec, Oracle):
        return spec
    if isinstance(spec, dict):
        kwargs = dict(spec)
        kind = str(kwargs.pop("type", "")).lower()
        if kind in ("manybody", *_MANYBODY_ALIASES):
            if kind != "manybody":
                kwargs.setdefault("potential", kind)
            kwargs.pop("parameters", None)
            kwargs.pop("reference", None)
            return ManybodyOracle(**kwargs)
        if kind == "gpaw":
            return GPAWOracle(**kwargs)
        if kind == "stored":
            return StoredLabelOracle(**kwargs)
        if kind == "user":
            return UserOracle(**kwargs)
        raise ValueError(f"unknown oracle type {kind!r} in {spec!r}")
    if not isinstance(spec, str) or not spec.strip():
        raise TypeError(f"oracle spec must be a non-empty string, dict or Oracle, got {spec!r}")
    text = spec.strip()
    low = text.lower()
    if low in _MANYBODY_ALIASES:
        return ManybodyOracle(low)
    if low == "gpaw":
        return GPAWOracle()
    if low.startswith("stored:"):
        return StoredLabelOracle(text[len("stored:") :])
    if ":" in text:
        return UserOracle(text)
    raise ValueError(
        f"unknown oracle {spec!r}; use 'sw', 'kumagai', 'tersoff', 'tersoff-sic', 'gpaw', "
        f"'stored:PATH' or 'module:factory'"
    )
