"""Atom-centered symmetry functions (Behler–Parrinello G2, G4, G5) from the compiled core.

Conventions are DScribe's (see docs/descriptor_api.md): eta in Å^-2, r_s and the cutoff
in Å, G4/G5 summed over unordered neighbor pairs with the 2^(1-zeta) prefactor. Feature
order: for each neighbor species (ascending Z) the G2 block; then for each unordered
species pair (a <= b) the G4 block followed by the G5 block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols

from alip import _core
from alip.config import DESCRIPTOR_PRESETS
from alip.core.batch import Batch, StructureOrList, as_list, offsets_of

__all__ = ["ACSF", "Descriptors", "offsets"]

CUTOFF_FUNCTIONS = ("cosine", "polynomial")


def offsets(structures: Sequence[Atoms]) -> np.ndarray:
    """(n_structures + 1,) int64 atom offsets of structures concatenated in order."""
    return offsets_of(list(structures))


@dataclass
class Descriptors:
    """Values and sparse exact derivatives of a batch of structures.

    grad_values[r, a, f] = d values[grad_centers[r], f] / d positions[grad_neighbors[r], a];
    one row per (center, neighbor atom) within the cutoff, periodic images summed, plus
    the self row; rows sorted by center then neighbor; atom indices are global.
    strain_grad[i, a, b, f] = d values[i, f] / d eps_ab for r -> r (I + eps), h -> h (I + eps).
    """

    values: np.ndarray
    offsets: np.ndarray
    grad_values: np.ndarray | None = None
    grad_centers: np.ndarray | None = None
    grad_neighbors: np.ndarray | None = None
    strain_grad: np.ndarray | None = None

    @property
    def n_structures(self) -> int:
        return len(self.offsets) - 1

    @property
    def structure_index(self) -> np.ndarray:
        """(N,) index of the structure each atom belongs to."""
        return np.repeat(np.arange(self.n_structures), np.diff(self.offsets))

    @property
    def row_offsets(self) -> np.ndarray:
        """(n_structures + 1,) offsets of each structure's gradient rows."""
        if self.grad_centers is None:
            raise ValueError("computed without gradients")
        return np.searchsorted(self.grad_centers, self.offsets).astype(np.int64)

    @property
    def nbytes(self) -> int:
        arrays = (self.values, self.grad_values, self.grad_centers, self.grad_neighbors, self.strain_grad)
        return int(sum(a.nbytes for a in arrays if a is not None))


def _species_numbers(species: Sequence[str | int]) -> list[int]:
    numbers = []
    for s in species:
        if isinstance(s, str):
            if s not in atomic_numbers:
                raise ValueError(f"unknown element symbol {s!r}")
            numbers.append(atomic_numbers[s])
        else:
            z = int(s)
            if not 1 <= z < len(chemical_symbols):
                raise ValueError(f"invalid atomic number {s!r}")
            numbers.append(z)
    if not numbers:
        raise ValueError("at least one species is required")
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"duplicate species in {list(species)!r}")
    return sorted(numbers)


def _params(values: Any, width: int, name: str, optional: int = 0) -> np.ndarray:
    """(n, width) float64 parameters; rows may leave out the last ``optional`` columns (zeros)."""
    rows = [np.asarray(r, dtype=np.float64) for r in (values if values is not None else [])]
    if any(r.ndim != 1 or not width - optional <= len(r) <= width for r in rows):
        sizes = f"{width}-tuples"
        if optional:
            sizes = f"{width - optional}- {'or' if optional == 1 else 'to'} {width}-tuples"
        raise ValueError(f"{name} must be a list of {sizes}, got rows of shapes {[r.shape for r in rows]}")
    arr = np.array([np.pad(r, (0, width - len(r))) for r in rows], dtype=np.float64).reshape(-1, width)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} parameters must be finite")
    return arr


def _angular_params(values: Any, name: str) -> np.ndarray:
    """(n, 5) G4/G5 rows (eta, zeta, lambda, rs, rs2); rs defaults to 0 and rs2 to rs."""
    values = list(values) if values is not None else []  # read once: generators too
    rows = [np.asarray(r, dtype=np.float64) for r in values]
    arr = _params(values, 5, name, optional=2)
    for k, r in enumerate(rows):
        if len(r) < 5:
            arr[k, 4] = arr[k, 3]
        elif r[4] < 0:  # the core would read it as rs: refused so that the table says what runs
            raise ValueError(f"{name} rs2 must be >= 0")
    return arr


def _angular_rows(params: np.ndarray) -> list[list[float]]:
    """Rows of a G4/G5 table for to_dict: (eta, zeta, lambda), with rs when a row has one and
    rs2 when a row has two windows."""
    rows = params.tolist()
    if (params[:, 4] != params[:, 3]).any():
        return rows
    return [r[:4] for r in rows] if params[:, 3].any() else [r[:3] for r in rows]


class ACSF:
    """Behler–Parrinello symmetry functions with exact derivatives.

    g2 rows are (eta, rs); g4 and g5 rows (eta, zeta, lambda), (eta, zeta, lambda, rs) or, for
    G5, (eta, zeta, lambda, rs, rs2): with rs > 0 the radial window exp(-eta (r - rs)^2) of each
    leg is centred on a neighbor shell (n2p2's shifted angular functions; rs = 0 is DScribe's
    G4 / G5); with rs2 != rs the two legs sit on two windows, symmetrized,
    1/2 [g(r_ij; rs) g(r_ik; rs2) + g(r_ij; rs2) g(r_ik; rs)] (the angles between a neighbor
    near rs and one near rs2). Stored as (n, 2) and (n, 5) arrays (rs2 = rs for one window).

    >>> acsf = ACSF(species=["Si"], cutoff=6.0, g2=[(0.5, 2.0)], g4=[(0.01, 1.0, 1.0)])
    >>> X = acsf.compute(atoms)                       # (n_atoms, n_features)
    >>> d = acsf.compute(atoms, gradients=True)       # Descriptors with sparse gradients
    >>> F, W = acsf.forces_and_virial(atoms, dE_dG)   # fused, no Jacobian stored
    """

    def __init__(
        self,
        species: Sequence[str | int],
        cutoff: float,
        g2: Sequence[tuple[float, float]] = (),
        g4: Sequence[tuple[float, ...]] = (),
        g5: Sequence[tuple[float, ...]] = (),
        cutoff_function: str = "cosine",
    ) -> None:
        if cutoff_function not in CUTOFF_FUNCTIONS:
            raise ValueError(f"cutoff_function must be one of {CUTOFF_FUNCTIONS}, got {cutoff_function!r}")
        self.species: list[int] = _species_numbers(species)
        self.cutoff = float(cutoff)
        self.cutoff_function = cutoff_function
        self.g2 = _params(g2, 2, "g2")
        self.g4 = _angular_params(g4, "g4")
        self.g5 = _angular_params(g5, "g5")
        self._core = _core.Acsf(len(self.species), self.cutoff, cutoff_function, self.g2, self.g4, self.g5)

    # ---- description -------------------------------------------------------
    @classmethod
    def default_si(cls) -> ACSF:
        """The default silicon set: 12 G2 + 24 G4 = 36 functions, cutoff 5.5 Å.

        G2: four centered Gaussians (r_s = 0) and eight shifted ones (η = 4 Å^-2)
        between the first (2.35 Å) and third neighbor shells; G4: η in
        {0, 0.01, 0.03, 0.08} Å^-2 × ζ in {1, 2, 4} × λ = ±1.
        """
        g2 = [(eta, 0.0) for eta in (0.0, 0.04, 0.14, 0.32)]
        g2 += [(4.0, rs) for rs in (2.2, 2.6, 3.0, 3.4, 3.8, 4.2, 4.6, 5.0)]
        g4 = [(eta, zeta, lam) for eta in (0.0, 0.01, 0.03, 0.08) for zeta in (1.0, 2.0, 4.0) for lam in (1.0, -1.0)]
        return cls(species=["Si"], cutoff=5.5, g2=g2, g4=g4, cutoff_function="cosine")

    @classmethod
    def fine_si(cls) -> ACSF:
        """The finer silicon set: 16 G2 + 32 G4 = 48 functions, cutoff 5.5 Å (G5 instead: :meth:`fine_g5_si`).

        G2: the four centered Gaussians of :meth:`default_si` and twelve shifted ones
        (r_s 2.0–5.0 Å, η = 1/(2·0.273²) Å^-2, one per shift spacing); G4: η in
        {0, 0.03, 0.1, 0.3} Å^-2 × ζ in {1, 2, 4, 16} × λ = ±1. On the mlearn Si
        benchmark it lowers both the energy and the force error of a committee against
        :meth:`default_si` (docs/accuracy_studies.md, second study).
        """
        shifts = np.linspace(2.0, 5.0, 12)
        eta = float(1.0 / (2 * (shifts[1] - shifts[0]) ** 2))
        g2 = [(e, 0.0) for e in (0.0, 0.04, 0.14, 0.32)] + [(eta, float(rs)) for rs in shifts]
        g4 = [(e, z, lam) for e in (0.0, 0.03, 0.1, 0.3) for z in (1.0, 2.0, 4.0, 16.0) for lam in (1.0, -1.0)]
        return cls(species=["Si"], cutoff=5.5, g2=g2, g4=g4, cutoff_function="cosine")

    @classmethod
    def fine_g5_si(cls) -> ACSF:
        """:meth:`fine_si` with G5 angular functions: 16 G2 + 32 G5 = 48, cutoff 5.5 Å; the fourth study's default.

        G5 drops the r_jk term of G4 (its radial factor is exp(−η(r_ij² + r_ik²)) fc(r_ij)
        fc(r_ik)), so an angle counts whether or not its two neighbors are within the
        cutoff of each other; same cost. On the mlearn Si benchmark it lowers the validation
        errors and the force errors of :meth:`fine_si` in two splits, most of all on sheared
        crystals (docs/accuracy_studies.md, third study).
        """
        fine = cls.fine_si()
        return cls(species=["Si"], cutoff=fine.cutoff, g2=fine.g2, g5=fine.g4, cutoff_function="cosine")

    @classmethod
    def shells_si(cls) -> ACSF:
        """:meth:`fine_g5_si` and 16 shifted G5 on the first two neighbor shells: 16 G2 + 48 G5 = 64,
        cutoff 5.5 Å; the fifth study's training default (now :meth:`windows_si`).

        The shifted functions (r_s 2.35 and 3.84 Å, the first and second shells of diamond Si;
        η = 2 Å⁻², a window of σ = 0.5 Å on each leg; ζ in {1, 2, 4, 8} × λ = ±1) count the
        angles within one shell, which G5 centred at r = 0 mixes with those of the nearer shells.
        On the mlearn Si benchmark, over three seeds, they lower the test energy and force errors
        of :meth:`fine_g5_si` by 13 % and 5 %, the cross-validation ones by 13 % and 4 % (docs/accuracy_studies.md,
        "Fifth study").
        """
        fine = cls.fine_g5_si()
        shifted = [(2.0, zeta, lam, rs) for rs in (2.35, 3.84) for zeta in (1.0, 2.0, 4.0, 8.0) for lam in (1.0, -1.0)]
        return cls(species=["Si"], cutoff=fine.cutoff, g2=fine.g2, g5=[*fine.g5.tolist(), *shifted])

    @classmethod
    def windows_si(cls) -> ACSF:
        """16 G2, 24 centred G5 and 24 G5 on radial windows across the neighbor distances:
        64 functions, cutoff 5.5 Å; the sixth study's training default (now :meth:`cross_windows_si`).

        The G2 are :meth:`fine_g5_si`'s; the centred G5 its η 0, 0.03, 0.3 Å⁻² (ζ 1, 2, 4, 16,
        λ = ±1); the windows exp(−η((r_ij − r_s)² + (r_ik − r_s)²)) with η = 2 Å⁻² (σ = 0.5 Å per
        leg) sit every 0.5 Å from r_s = 1.8 to 4.3 Å (ζ 1 and 8, λ = ±1): on the two neighbor
        shells of the crystal (2.35, 3.84 Å) and between and beyond them, where the liquid,
        vacancies and compressed bonds put their neighbors, which :meth:`shells_si` (windows on
        the two shells only) leaves to the centred functions. On the mlearn Si benchmark, over
        three seeds, test forces 0.0998 against 0.1027 eV/Å for :meth:`shells_si`,
        cross-validation energy −10 % and forces −2 %, stress −16 %; with 18 training
        structures no worse (docs/accuracy_studies.md, "Sixth study").
        """
        fine = cls.fine_g5_si()
        centred = [row for row in fine.g5.tolist() if row[0] != 0.1]
        windows = [
            (2.0, zeta, lam, rs) for rs in (1.8, 2.3, 2.8, 3.3, 3.8, 4.3) for zeta in (1.0, 8.0) for lam in (1.0, -1.0)
        ]
        return cls(species=["Si"], cutoff=fine.cutoff, g2=fine.g2, g5=[*centred, *windows])

    @classmethod
    def cross_windows_si(cls) -> ACSF:
        """:meth:`windows_si` and 8 G5 with their legs on two windows: 72 functions, cutoff 5.5 Å;
        the training default (:meth:`training_default`).

        The two-window G5 (rows (η, ζ, λ, r_s, r_s2)) count the angles between a first-shell
        neighbor (2.3 Å) and one on the second shell (3.8 Å) or between the shells (3.3 Å), which
        windows on one distance leave to the centred functions: η = 2 Å⁻², ζ 1 and 8, λ = ±1. On
        the mlearn Si benchmark, over three seeds, test energy −11 % and forces −1.6 % against
        :meth:`windows_si`, for about 2 % more training time (docs/accuracy_studies.md, "Seventh study").
        """
        windows = cls.windows_si()
        cross = [(2.0, zeta, lam, 2.3, rs2) for rs2 in (3.8, 3.3) for zeta in (1.0, 8.0) for lam in (1.0, -1.0)]
        return cls(species=["Si"], cutoff=windows.cutoff, g2=windows.g2, g5=[*windows.g5.tolist(), *cross])

    @classmethod
    def training_default(cls) -> ACSF:
        """The descriptor `alip train` and :func:`alip.models.training.train_committee` use when
        none is given: :meth:`cross_windows_si` (the active-learning loop has its own preset)."""
        return cls.cross_windows_si()

    @property
    def n_features(self) -> int:
        return int(self._core.n_features)

    @property
    def species_pairs(self) -> list[tuple[int, int]]:
        s = self.species
        return [(s[a], s[b]) for a in range(len(s)) for b in range(a, len(s))]

    def feature_labels(self) -> list[str]:
        """One name per column, e.g. 'G2[Si](eta=0.04,rs=0)', 'G4[Si-Si](eta=0.01,zeta=2,lambda=-1)'."""
        sym = chemical_symbols
        labels = [f"G2[{sym[z]}](eta={e:g},rs={r:g})" for z in self.species for e, r in self.g2]
        for a, b in self.species_pairs:
            pair = f"{sym[a]}-{sym[b]}"
            for kind, params in (("G4", self.g4), ("G5", self.g5)):
                labels += [
                    f"{kind}[{pair}](eta={e:g},zeta={z:g},lambda={lam:+g}"
                    + (f",rs={rs:g}" if rs or rs2 else "")
                    + (f",rs2={rs2:g}" if rs2 != rs else "")
                    + ")"
                    for e, z, lam, rs, rs2 in params
                ]
        return labels

    def to_dict(self) -> dict:
        return {
            "species": list(self.species),
            "cutoff": self.cutoff,
            "g2": self.g2.tolist(),
            "g4": _angular_rows(self.g4),
            "g5": _angular_rows(self.g5),
            "cutoff_function": self.cutoff_function,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ACSF:
        return cls(**d)

    @classmethod
    def from_spec(cls, spec: str) -> ACSF:
        """A descriptor as a user names it: a preset (one of :data:`alip.config.DESCRIPTOR_PRESETS`
        but "seeds"), a JSON file of :meth:`to_dict`, or that JSON inline (starting with ``{``)."""
        import json
        import os

        presets = [p for p in DESCRIPTOR_PRESETS if p != "seeds"]
        text = str(spec).strip()
        if text in presets:
            return getattr(cls, text)()
        if text.startswith("{"):
            source, raw = "inline JSON", text
        elif os.path.isfile(text):
            source = text
            with open(text, encoding="utf-8") as fh:
                raw = fh.read()
        else:
            raise ValueError(
                f"descriptor spec {text[:80]!r} is not a preset ({', '.join(presets)}), "
                "an existing JSON file or inline JSON of ACSF.to_dict()"
            )
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"descriptor spec ({source}) is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"descriptor spec ({source}) must be a JSON object as ACSF.to_dict() writes it")
        try:
            return cls.from_dict(data)
        except TypeError as exc:
            raise ValueError(f"descriptor spec ({source}): {exc}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ACSF) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        names = ",".join(chemical_symbols[z] for z in self.species)
        return (
            f"ACSF(species=[{names}], cutoff={self.cutoff:g}, n_g2={len(self.g2)}, n_g4={len(self.g4)}, "
            f"n_g5={len(self.g5)}, n_features={self.n_features})"
        )

    def __getstate__(self) -> dict:
        return self.to_dict()

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    # ---- computation -------------------------------------------------------
    def compute(self, structures: StructureOrList, gradients: bool = False) -> np.ndarray | Descriptors:
        """Values (N, F) of one structure or a batch (concatenated), or with
        ``gradients=True`` a :class:`Descriptors` with sparse position and strain gradients."""
        items, _ = as_list(structures)
        arrays = Batch.from_atoms(items).core_arrays(self.species)
        if not gradients:
            return self._core.values(*arrays)
        values, grad, centers, neighbors, strain = self._core.gradients(*arrays)
        return Descriptors(values, arrays[2], grad, centers, neighbors, strain)

    def forces_and_virial(self, structures: StructureOrList, dE_dG: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forces -dE/dr (N, 3) and virial W = -dE/deps (3, 3) for one structure,
        (n_structures, 3, 3) for a list, given dE/dG (N, F). ASE stress = -W / volume.

        dE/dG of shape (K, N, F) (e.g. K committee members) adds a leading K axis to both
        outputs; the K share one neighbor list and the triplet geometry."""
        items, single = as_list(structures)
        arrays = Batch.from_atoms(items).core_arrays(self.species)
        dE_dG = np.asarray(dE_dG, dtype=np.float64)
        n = int(arrays[2][-1])
        if dE_dG.shape[-2:] != (n, self.n_features) or dE_dG.ndim not in (2, 3):
            raise ValueError(
                f"dE_dG must have shape ({n}, {self.n_features}) or (K, {n}, {self.n_features}), got {dE_dG.shape}"
            )
        forces, virials = self._core.forces_virial(*arrays, np.ascontiguousarray(dE_dG))
        return (forces, virials[..., 0, :, :]) if single else (forces, virials)

    # ---- batches as flat arrays (readers that never build ase.Atoms) --------
    def compute_packed(self, batch: Batch, index: np.ndarray | None = None) -> np.ndarray:
        """Values (N, F) of a :class:`alip.core.batch.Batch`; ``index``: its species indices
        into ``self.species`` when already computed. Shapes are checked by the core."""
        return self._core.values(*batch.core_arrays(self.species, index))

    def forces_and_virial_packed(
        self, batch: Batch, dE_dG: np.ndarray, index: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Forces (N, 3) and virials (n_structures, 3, 3) of a batch given dE/dG (N, F);
        (K, N, F) adds a leading K axis (one geometry for all K)."""
        arrays = batch.core_arrays(self.species, index)
        return self._core.forces_virial(*arrays, np.ascontiguousarray(dE_dG, dtype=np.float64))
