"""A trained committee: ACSF spec + stacked networks; prediction, save/load, export.

Prediction uses the fused vector–Jacobian product: descriptor values are computed
once, dE_k/dG of all K members comes from one backward pass, and the forces and
virials of all members are contracted in one call without storing the descriptor
Jacobian. ``device="cuda"`` runs all of it on the GPU (:mod:`alip.core.device`), including
the networks; the default runs the compiled CPU core.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from ase import Atoms

from alip._version import __version__
from alip.core.batch import BatchTensors, species_index
from alip.core.descriptors import ACSF
from alip.core.device import DeviceLike, prepare, select_device
from alip.models.networks import CommitteeNetwork, torch_threads

FORMAT = "alip-committee"
FORMAT_VERSION = 1


@dataclass
class Prediction:
    """Committee predictions for a batch of structures (K members, S structures, N atoms)."""

    energies: np.ndarray  # (K, S) eV
    forces: np.ndarray  # (K, N, 3) eV/Å
    virials: np.ndarray  # (K, S, 3, 3) eV, W = -dE/dε
    offsets: np.ndarray  # (S + 1,) atom offsets
    atomic_energies: np.ndarray | None = None  # (K, N) eV, when the predictor kept them

    @property
    def n_atoms(self) -> np.ndarray:
        """Atoms per structure (S,)."""
        return np.diff(self.offsets)

    def energy_std_per_atom(self) -> np.ndarray:
        """Committee standard deviation (ddof=0) of the energy divided by atom count, (S,)."""
        return self.energies.std(axis=0) / self.n_atoms

    def force_deviation(self) -> np.ndarray:
        """Per-atom ε_F,i = sqrt(⟨|F_ik − ⟨F_i⟩_k|²⟩_k) (DP-GEN), (N,)."""
        dev = self.forces - self.forces.mean(axis=0, keepdims=True)
        return np.sqrt((dev**2).sum(axis=-1).mean(axis=0))

    def virial_deviation_per_atom(self) -> np.ndarray:
        """ε_W = sqrt(⟨‖W_k − ⟨W⟩_k‖_F²⟩_k) / N, the committee spread of the virial per atom
        (eV/atom), (S,): large for strained cells even where forces vanish by symmetry."""
        dev = self.virials - self.virials.mean(axis=0, keepdims=True)
        return np.sqrt((dev**2).sum(axis=(-1, -2)).mean(axis=0)) / self.n_atoms

    def max_force_deviation(self) -> np.ndarray:
        """max over the atoms of each structure of ε_F,i, (S,)."""
        eps = self.force_deviation()
        return np.maximum.reduceat(eps, self.offsets[:-1]) if len(eps) else np.zeros(0)


def _plain(obj: Any) -> Any:
    """JSON round trip: only plain Python types survive (safe for ``weights_only`` loading)."""

    def default(o: Any) -> Any:
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        raise TypeError(f"cannot store {type(o).__name__} in committee metadata")

    return json.loads(json.dumps(obj, default=default))


def _acsf_class() -> Any:
    return ACSF


class Committee:
    """K Behler–Parrinello networks sharing one ACSF descriptor spec."""

    #: torch intra-op threads used while evaluating (None: torch's own setting)
    threads: int | None = 1
    #: where :meth:`predict` runs by default: "cpu" (compiled core) or "cuda[:i]" (GPU kernels)
    device: str = "cpu"

    def __init__(self, acsf: ACSF, network: CommitteeNetwork, metadata: dict | None = None) -> None:
        if list(acsf.species) != list(network.species):
            raise ValueError(f"species of descriptor {list(acsf.species)} and network {network.species} differ")
        if acsf.n_features != network.n_features:
            raise ValueError(f"descriptor has {acsf.n_features} features, network expects {network.n_features}")
        self.acsf = acsf
        self.network = network.double().eval()
        self.metadata: dict = dict(metadata or {})

    @property
    def n_members(self) -> int:
        return self.network.n_members

    @property
    def species(self) -> list[int]:
        return list(self.network.species)

    def species_index(self, numbers: np.ndarray) -> np.ndarray:
        """Map atomic numbers to 0..n_species-1; unknown elements raise ValueError."""
        numbers = np.asarray(numbers, dtype=np.int64)
        idx = species_index(self.species, numbers).astype(np.int64)
        if (idx < 0).any():
            unknown = sorted(set(numbers[idx < 0].tolist()))
            raise ValueError(f"elements {unknown} are not in the committee's species {self.species}")
        return idx

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self, values: np.ndarray, numbers: np.ndarray, offsets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """From descriptor values (N, F): energies (K, S), atomic energies (K, N), dE/dG (K, N, F)."""
        offsets = np.asarray(offsets, dtype=np.int64)
        n_struct = len(offsets) - 1
        sidx = torch.from_numpy(self.species_index(numbers))
        struct = torch.from_numpy(np.repeat(np.arange(n_struct), np.diff(offsets)))
        G = torch.as_tensor(np.asarray(values), dtype=torch.float64)
        with torch_threads(self.threads), torch.no_grad():  # dE/dG by the chain rule: no graph needed
            E, e_atom, dE_dG = self.network.energies_and_gradients(G, sidx, struct, n_struct)
        return E.detach().numpy(), e_atom.detach().numpy(), dE_dG.detach().numpy()

    def predict_batch(
        self, atoms_list: Sequence[Atoms], device: DeviceLike | None = None
    ) -> tuple[Prediction, np.ndarray]:
        """Prediction (with atomic energies) and descriptor values (N, F) of one batch.

        ``device`` (default :attr:`device`): "cpu" runs the compiled core and numpy;
        anything else ("cuda", "cuda:1", a ``torch.device``) runs descriptors, networks
        and forces through :mod:`alip.core.device` on that device.
        """
        atoms_list = list(atoms_list)
        device = self.device if device is None else device
        numbers = np.concatenate([a.numbers for a in atoms_list])
        offsets = np.concatenate([[0], np.cumsum([len(a) for a in atoms_list])]).astype(np.int64)
        if str(device) == "cpu":
            values = self.acsf.compute(atoms_list)
            E, e_atom, dE_dG = self.evaluate(values, numbers, offsets)
            # all K members in one fused call: one neighbor list and triplet geometry
            forces, virials = self.acsf.forces_and_virial(atoms_list, dE_dG)
        else:
            values, E, e_atom, forces, virials = self._predict_torch(atoms_list, numbers, offsets, device)
        return Prediction(E, forces, virials, offsets, e_atom), values

    def _predict_torch(
        self, structures: Sequence[Atoms] | BatchTensors, numbers: np.ndarray, offsets: np.ndarray, device: DeviceLike
    ) -> tuple[np.ndarray, ...]:
        """(values, E, e_atom, forces, virials) through :mod:`alip.core.device` (one neighbor list
        for values and forces)."""
        dev = select_device(device=device)
        S = len(offsets) - 1
        sidx = torch.as_tensor(self.species_index(numbers), device=dev)
        struct = torch.as_tensor(np.repeat(np.arange(S), np.diff(offsets)), device=dev)
        p = prepare(self.acsf, structures, dev)
        with torch_threads(self.threads), torch.no_grad():  # dE/dG by the chain rule: no graph needed
            G = p.values(torch.float64)
            E, e_atom, dE_dG = self._network_on(dev).energies_and_gradients(G, sidx, struct, S)
            forces, virials = p.forces_and_virial(dE_dG.detach())
        return tuple(t.detach().cpu().numpy() for t in (G, E, e_atom, forces, virials))

    def _network_on(self, dev: torch.device) -> CommitteeNetwork:
        """The float64 network on ``dev`` (a cached copy, renewed when the weights change)."""
        if dev.type == "cpu":
            return self.network
        versions = tuple(t._version for t in self.network.state_dict().values())
        cached = getattr(self, "_device_networks", {}).get(str(dev))
        if cached is None or cached[0] != versions:
            self._device_networks = {str(dev): (versions, copy.deepcopy(self.network).to(dev))}
        return self._device_networks[str(dev)][1]

    def predict(
        self, atoms_list: Sequence[Atoms] | Atoms, chunk_size: int = 64, device: DeviceLike | None = None
    ) -> Prediction:
        """Per-member energies, forces and virials of every structure (fused force path, chunked);
        ``device`` as in :meth:`predict_batch`."""
        if isinstance(atoms_list, Atoms):
            atoms_list = [atoms_list]
        atoms_list = list(atoms_list)
        K = self.n_members
        offsets = np.concatenate([[0], np.cumsum([len(a) for a in atoms_list])]).astype(np.int64)
        energies = np.zeros((K, len(atoms_list)))
        e_atom = np.zeros((K, offsets[-1]))
        forces = np.zeros((K, offsets[-1], 3))
        virials = np.zeros((K, len(atoms_list), 3, 3))
        for start in range(0, len(atoms_list), chunk_size):
            chunk = atoms_list[start : start + chunk_size]
            sl, ss = slice(offsets[start], offsets[start + len(chunk)]), slice(start, start + len(chunk))
            p, _ = self.predict_batch(chunk, device)
            energies[:, ss], e_atom[:, sl], forces[:, sl], virials[:, ss] = (
                p.energies,
                p.atomic_energies,
                p.forces,
                p.virials,
            )
        return Prediction(energies, forces, virials, offsets, e_atom)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write weights, scaling, descriptor spec, species and versions to one file."""
        payload = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "alip_version": __version__,
            "torch_version": str(torch.__version__),
            "acsf": _plain(self.acsf.to_dict()),
            "architecture": self.network.architecture(),
            "state_dict": {k: v.detach().clone() for k, v in self.network.state_dict().items()},
            "metadata": _plain(self.metadata),
        }
        torch.save(payload, os.fspath(path))

    @classmethod
    def load(cls, path: str | os.PathLike, acsf: ACSF | None = None) -> Committee:
        """Read a committee; with ``acsf`` given, require that its spec matches the file's.

        Raises ValueError for files that are not committees, newer format versions,
        inconsistent contents, or a descriptor spec different from ``acsf``.
        """
        try:
            payload = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle/zip errors: not a committee file
            raise ValueError(f"{os.fspath(path)!r} is not a readable alip committee file: {exc}") from exc
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"{os.fspath(path)!r} is not an alip committee file")
        version = payload.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(
                f"committee file format version {version!r} is not supported (this alip reads up to {FORMAT_VERSION})"
            )
        ACSF = _acsf_class()
        file_acsf = ACSF.from_dict(payload["acsf"])
        if acsf is not None and acsf.to_dict() != file_acsf.to_dict():
            diff = sorted(
                k
                for k in set(acsf.to_dict()) | set(file_acsf.to_dict())
                if acsf.to_dict().get(k) != file_acsf.to_dict().get(k)
            )
            raise ValueError(f"descriptor spec in {os.fspath(path)!r} differs from the expected one in {diff}")
        arch = payload["architecture"]
        net = CommitteeNetwork(**arch)
        try:
            net.load_state_dict(payload["state_dict"], strict=True)
        except RuntimeError as exc:
            raise ValueError(f"weights in {os.fspath(path)!r} do not match its architecture: {exc}") from exc
        return cls(file_acsf, net, payload.get("metadata", {}))

    def export_member(self, k: int, path: str | os.PathLike | None = None) -> torch.jit.ScriptModule:
        """TorchScript of member ``k``: (G (N, F) float64, species_index (N,)) -> atomic energies (N,)."""
        scripted = torch.jit.script(self.network.member(k).eval())
        if path is not None:
            scripted.save(os.fspath(path))
        return scripted
