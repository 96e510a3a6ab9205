"""Import an n2p2 high-dimensional neural network potential as a one-member alip committee.

An n2p2 potential is a directory with ``input.nn`` (elements, cutoff, symmetry functions,
scaling keywords, network topology), ``scaling.data`` (per element and function: min, max,
mean, sigma over the training set) and one ``weights.ZZZ.data`` per element (ZZZ: the
atomic number, three digits). :func:`import_n2p2` reads them and returns a
:class:`~alip.models.committee.Committee` with K = 1 whose energies and forces are those of
the n2p2 network, computed by alip's own descriptor core. Conventions, from n2p2's sources:

- Symmetry functions: type 2, G = Σ_j exp(−η (r_ij − r_s)²) f_c(r_ij), is alip's G2;
  type 3, 2^(1−ζ) Σ_{j<k} (1 + λ cos θ)^ζ exp(−η ((r_ij − r_s)² + (r_ik − r_s)² + (r_jk − r_s)²))
  f_c f_c f_c, is alip's G4; type 9 (the same without the r_jk terms) is alip's G5 (r_s = 0
  unless the line gives an rshift). n2p2 sorts each
  element's functions (by type, cutoff, η, r_s, ζ, λ, neighbor elements) and the network's
  inputs and ``scaling.data`` follow that order, not the order of ``input.nn``.
- Cutoff functions: ``cutoff_type`` 1 (cosine) and 6 (the quintic polynomial
  1 − 10x³ + 15x⁴ − 6x⁵), each with inner-cutoff parameter α = 0, are alip's "cosine" and
  "polynomial".
- Scaling: ``scale_symmetry_functions`` gives Smin + (Smax − Smin)(G − Gmin)/(Gmax − Gmin);
  with ``center_symmetry_functions`` too, G − Gmean replaces G − Gmin; ``center_symmetry_functions``
  alone gives G − Gmean; ``scale_symmetry_functions_sigma`` gives Smin + (Smax − Smin)(G −
  Gmean)/σ. Each is an affine map, folded into the network's feature shift and scale.
- Weights: per layer, all connections (source neuron outer, target neuron inner), then the
  layer's biases; only the first column of the file is read, as n2p2 does.
- Energy: E = Σ_i [NN_{Z_i}(G_i) + atom_energy(Z_i)], with n2p2's data-set normalisation
  (``mean_energy``, ``conv_energy``, ``conv_length``) E = Σ_i [NN/conv_energy + mean_energy +
  atom_energy].

Units: n2p2 has none of its own; the files use whatever the training data used. The
defaults are RuNNer's atomic units, Bohr and Hartree, which the mlearn potentials (and many
RuNNer-era potentials) use; pass ``length_unit="angstrom", energy_unit="ev"`` for files
trained on Å and eV data. Anything alip cannot represent (other cutoff or symmetry-function
types, several cutoff radii, activations other than tanh and
softplus, different topologies per element, ``normalize_nodes``, 4G-HDNNPs) raises
:class:`N2p2Error` naming the keyword and line, before any weights are read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from ase import units
from ase.data import atomic_numbers

from alip.core.descriptors import ACSF
from alip.models.committee import Committee
from alip.models.networks import CommitteeNetwork

__all__ = ["N2p2Error", "N2p2Potential", "SymmetryFunction", "import_n2p2", "read_n2p2", "to_committee"]

#: Å per unit of length, by name
LENGTH_UNITS: dict[str, float] = {"bohr": units.Bohr, "angstrom": 1.0, "nm": 10.0}
#: eV per unit of energy, by name
ENERGY_UNITS: dict[str, float] = {"hartree": units.Hartree, "ev": 1.0, "rydberg": units.Rydberg}

#: n2p2's cutoff_type numbers that alip's core has, by alip's name
CUTOFF_TYPES: dict[int, str] = {1: "cosine", 6: "polynomial"}
_CUTOFF_NAMES = {0: "hard", 1: "cos", 2: "tanhu", 3: "tanh", 4: "exp", 5: "poly1", 6: "poly2", 7: "poly3", 8: "poly4"}
#: n2p2's activation letters that alip's networks have
ACTIVATIONS: dict[str, str] = {"t": "tanh", "p": "softplus"}
_ACTIVATION_NAMES = {
    "l": "identity",
    "t": "tanh",
    "s": "logistic",
    "p": "softplus",
    "r": "relu",
    "g": "gaussian",
    "c": "cos",
    "S": "reverse logistic",
    "e": "exp",
    "h": "harmonic",
}
#: symmetry-function types alip represents: n2p2 type -> alip block
SF_TYPES: dict[int, str] = {2: "g2", 3: "g4", 9: "g5"}
#: the scaling keywords, in the precedence n2p2 gives them
_SCALING = ("scale_symmetry_functions", "center_symmetry_functions", "scale_symmetry_functions_sigma")


class N2p2Error(ValueError):
    """An n2p2 potential that cannot be read, or that alip cannot represent exactly."""


@dataclass(frozen=True)
class SymmetryFunction:
    """One ``symfunction_short`` line, in the file's units (η in length⁻², r_s and r_c in length)."""

    element: str
    type: int
    neighbors: tuple[str, ...]
    eta: float
    rc: float
    rs: float = 0.0
    lam: float = 0.0
    zeta: float = 0.0
    line: int = 0

    def sort_key(self, index: Mapping[str, int]) -> tuple:
        """n2p2's order within an element: type, cutoff, η, r_s, (ζ, λ), neighbor elements."""
        ns = tuple(index[e] for e in self.neighbors)
        if self.type == 2:
            return (self.type, self.rc, self.eta, self.rs, ns)
        return (self.type, self.rc, self.eta, self.rs, self.zeta, self.lam, ns)


@dataclass
class N2p2Potential:
    """The contents of an n2p2 potential directory, in the files' units.

    ``symmetry_functions[e]`` and ``statistics[e]`` (n_sf, 4: min, max, mean, sigma; sigma NaN
    when the file has none) are in n2p2's sorted order, the order of the network inputs;
    ``layers[e]`` is a list of (W (n_in, n_out), b (n_out,)).
    """

    directory: str
    elements: list[str]
    atom_energy: dict[str, float]
    cutoff_type: int
    scaling: str
    smin: float
    smax: float
    hidden: list[int]
    activation: str
    symmetry_functions: dict[str, list[SymmetryFunction]]
    normalization: tuple[float, float, float] | None = None  # mean_energy, conv_energy, conv_length
    statistics: dict[str, np.ndarray] = field(default_factory=dict)
    layers: dict[str, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)

    @property
    def cutoff(self) -> float:
        """The one cutoff radius of every symmetry function (file units)."""
        return next(sf.rc for sfs in self.symmetry_functions.values() for sf in sfs)


# ------------------------------------------------------------------------------ input.nn
def _keywords(path: str) -> list[tuple[int, str, list[str]]]:
    """(line number, keyword, arguments) of every non-comment line."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for n, raw in enumerate(fh, 1):
            words = raw.split("#", 1)[0].split()
            if words:
                out.append((n, words[0], words[1:]))
    return out


def _number(path: str, n: int, keyword: str, text: str, kind: type = float) -> float:
    """``kind(text)``, or N2p2Error naming file, line (when n > 0) and keyword."""
    try:
        return kind(text)
    except ValueError:
        where = f"{path}:{n}" if n > 0 else path
        raise N2p2Error(f"{where}: {keyword}: {text!r} is not a number") from None


def _symmetry_function(path: str, n: int, args: list[str], elements: list[str]) -> SymmetryFunction:
    where = f"{path}:{n}: symfunction_short"
    if len(args) < 2:
        raise N2p2Error(f"{where}: expected '<element> <type> ...', got {' '.join(args)!r}")
    sf_type = int(_number(path, n, "symfunction_short type", args[1], int))
    if sf_type not in SF_TYPES:
        raise N2p2Error(
            f"{where}: symmetry function type {sf_type} is not supported; alip represents types 2 (radial), "
            "3 (angular narrow) and 9 (angular wide)"
        )
    if sf_type == 2 and len(args) != 6:
        raise N2p2Error(f"{where}: type 2 takes '<element> 2 <neighbor> <eta> <rshift> <rcutoff>'")
    if sf_type != 2 and len(args) not in (8, 9):
        raise N2p2Error(
            f"{where}: type {sf_type} takes '<element> {sf_type} <neighbor1> <neighbor2> <eta> <lambda> <zeta> "
            "<rcutoff> [<rshift>]'"
        )
    names = [args[0], args[2]] if sf_type == 2 else [args[0], *args[2:4]]
    for e in names:
        if e not in elements:
            raise N2p2Error(f"{where}: element {e!r} is not in 'elements' {elements}")
    if sf_type == 2:
        eta, rs, rc = (_number(path, n, "symfunction_short", a) for a in args[3:6])
        return SymmetryFunction(args[0], 2, (args[2],), eta, rc, rs=rs, line=n)
    eta, lam, zeta, rc = (_number(path, n, "symfunction_short", a) for a in args[4:8])
    rs = _number(path, n, "symfunction_short", args[8]) if len(args) == 9 else 0.0
    if rs < 0.0:
        raise N2p2Error(f"{where}: a negative rshift ({rs:g}) is not supported")
    pair = tuple(sorted(args[2:4], key=lambda e: atomic_numbers[e]))
    return SymmetryFunction(args[0], sf_type, pair, eta, rc, rs=rs, lam=lam, zeta=zeta, line=n)


def _topology(path: str, kw: dict[str, list[tuple[int, list[str]]]], elements: list[str]) -> tuple[list[int], str]:
    """Hidden layer sizes and hidden activation, the same for every element (alip's networks)."""

    def one(key: str) -> tuple[int, list[str]] | None:
        return kw[key][-1] if key in kw else None

    per_element: dict[str, dict[str, list[str]]] = {e: {} for e in elements}
    g_layers, g_nodes, g_act = (one(f"global_{k}_short") for k in ("hidden_layers", "nodes", "activation"))
    for e in elements:
        if g_layers:
            per_element[e]["hidden_layers"] = g_layers[1][:1]
        if g_nodes:
            per_element[e]["nodes"] = g_nodes[1]
        if g_act:
            per_element[e]["activation"] = g_act[1]
    for k in ("hidden_layers", "nodes", "activation"):
        for n, args in kw.get(f"element_{k}_short", []):
            if not args or args[0] not in elements:
                raise N2p2Error(f"{path}:{n}: element_{k}_short: first argument must be one of {elements}")
            per_element[args[0]][k] = args[1:]
    topo = {}
    for e in elements:
        t = per_element[e]
        for k in ("hidden_layers", "activation"):
            if not t.get(k):
                raise N2p2Error(f"{path}: the network of {e} has no '{k}' (global_{k}_short or element_{k}_short)")
        t.setdefault("nodes", [])
        n_hidden = int(_number(path, 0, "hidden_layers", t["hidden_layers"][0], int))
        if n_hidden < 1:
            raise N2p2Error(f"{path}: the network of {e} has {n_hidden} hidden layers; alip's networks need at least 1")
        nodes = [int(_number(path, 0, "nodes", x, int)) for x in t["nodes"]]
        acts = t["activation"]
        if len(nodes) != n_hidden or len(acts) != n_hidden + 1:
            raise N2p2Error(
                f"{path}: inconsistent topology of {e}: {n_hidden} hidden layers, nodes {nodes}, activations {acts} "
                "(one per hidden layer plus the output's)"
            )
        topo[e] = (tuple(nodes), tuple(acts))
    if len(set(topo.values())) > 1:
        raise N2p2Error(
            f"{path}: the elements' networks differ ({topo}); alip's committee has one topology for every element"
        )
    nodes, acts = next(iter(topo.values()))
    if acts[-1] != "l":
        raise N2p2Error(
            f"{path}: global_activation_short: output activation {acts[-1]!r} "
            f"({_ACTIVATION_NAMES.get(acts[-1], 'unknown')}); alip's output layer is linear ('l')"
        )
    hidden_acts = set(acts[:-1])
    if len(hidden_acts) != 1:
        raise N2p2Error(
            f"{path}: global_activation_short: hidden activations {' '.join(acts[:-1])} differ; alip uses one "
            "activation for every hidden layer"
        )
    (a,) = hidden_acts
    if a not in ACTIVATIONS:
        raise N2p2Error(
            f"{path}: global_activation_short: activation {a!r} ({_ACTIVATION_NAMES.get(a, 'unknown')}) is not "
            f"supported; alip has {', '.join(f'{k!r} ({v})' for k, v in ACTIVATIONS.items())}"
        )
    return list(nodes), ACTIVATIONS[a]


def read_input(path: str | os.PathLike) -> N2p2Potential:
    """Parse ``input.nn`` and check that alip can represent the potential (no weights read yet)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise N2p2Error(f"n2p2 settings file not found: {path}")
    kw: dict[str, list[tuple[int, list[str]]]] = {}
    for n, key, args in _keywords(path):
        kw.setdefault(key, []).append((n, args))

    def single(key: str) -> tuple[int, list[str]]:
        if key not in kw:
            raise N2p2Error(f"{path}: keyword '{key}' is missing")
        return kw[key][-1]

    n, args = single("elements")
    for e in args:
        if e not in atomic_numbers:
            raise N2p2Error(f"{path}:{n}: elements: unknown element {e!r}")
    elements = sorted(set(args), key=lambda e: atomic_numbers[e])
    n, args = single("number_of_elements")
    if not args or int(_number(path, n, "number_of_elements", args[0], int)) != len(elements):
        raise N2p2Error(f"{path}:{n}: number_of_elements {' '.join(args)} but 'elements' lists {elements}")
    for key in ("nnp_generation", "nnp_type"):
        if key in kw:
            n, args = kw[key][-1]
            if args and args[0] not in ("2", "2G", "HDNNP_2G"):
                raise N2p2Error(f"{path}:{n}: {key} {args[0]}: only second-generation HDNNPs (2) are supported")
    if "normalize_nodes" in kw:
        raise N2p2Error(f"{path}:{kw['normalize_nodes'][0][0]}: normalize_nodes is not supported by alip's networks")

    n, args = single("cutoff_type")
    ctype = int(_number(path, n, "cutoff_type", args[0], int)) if args else -1
    if ctype not in CUTOFF_TYPES:
        raise N2p2Error(
            f"{path}:{n}: cutoff_type {' '.join(args)} ({_CUTOFF_NAMES.get(ctype, 'unknown')}) is not supported; "
            f"alip has {', '.join(f'{k} ({v})' for k, v in CUTOFF_TYPES.items())}"
        )
    if len(args) > 1 and _number(path, n, "cutoff_type", args[1]) != 0.0:
        raise N2p2Error(
            f"{path}:{n}: cutoff_type inner cutoff alpha = {args[1]}; alip's cutoff functions need alpha = 0"
        )

    present = [k for k in _SCALING if k in kw]
    scaling = "none"
    if "scale_symmetry_functions" in present:
        scaling = "scalecenter" if "center_symmetry_functions" in present else "scale"
    elif "center_symmetry_functions" in present:
        scaling = "center"
    elif "scale_symmetry_functions_sigma" in present:
        scaling = "scalesigma"
    smin, smax = 0.0, 1.0  # n2p2's defaults
    for key in ("scale_min_short", "scale_max_short"):
        if key in kw:
            n, args = kw[key][-1]
            if not args:
                raise N2p2Error(f"{path}:{n}: {key} needs a value")
            value = _number(path, n, key, args[0])
            smin, smax = (value, smax) if key == "scale_min_short" else (smin, value)
    if scaling in ("scale", "scalecenter", "scalesigma") and smin == smax:
        raise N2p2Error(f"{path}: scale_min_short = scale_max_short = {smin:g}: every scaled input would be constant")

    norm_keys = ("mean_energy", "conv_energy", "conv_length")
    normalization = None
    if any(k in kw for k in norm_keys):
        missing = [k for k in norm_keys if k not in kw]
        if missing:
            raise N2p2Error(f"{path}: normalisation needs all of {norm_keys}; missing {missing}")
        normalization = tuple(_number(path, kw[k][-1][0], k, kw[k][-1][1][0]) for k in norm_keys)

    atom_energy = {e: 0.0 for e in elements}
    for n, args in kw.get("atom_energy", []):
        if len(args) < 2 or args[0] not in elements:
            raise N2p2Error(f"{path}:{n}: atom_energy takes '<element> <energy>' with an element of {elements}")
        atom_energy[args[0]] = _number(path, n, "atom_energy", args[1])

    sfs: dict[str, list[SymmetryFunction]] = {e: [] for e in elements}
    for n, args in kw.get("symfunction_short", []):
        sf = _symmetry_function(path, n, args, elements)
        sfs[sf.element].append(sf)
    index = {e: i for i, e in enumerate(elements)}
    rcs = {sf.rc for v in sfs.values() for sf in v}
    if len(rcs) > 1:
        raise N2p2Error(
            f"{path}: symfunction_short: several cutoff radii {sorted(rcs)}; alip's descriptor has one cutoff"
        )
    for e in elements:
        if not sfs[e]:
            raise N2p2Error(f"{path}: no symfunction_short for element {e}")
        sfs[e].sort(key=lambda sf: sf.sort_key(index))
        keys = [sf.sort_key(index) for sf in sfs[e]]
        dup = [sf.line for sf, k, prev in zip(sfs[e][1:], keys[1:], keys) if k == prev]
        if dup:
            raise N2p2Error(f"{path}:{dup[0]}: symfunction_short duplicates another function of {e}")
    hidden, activation = _topology(path, kw, elements)
    return N2p2Potential(
        directory=os.path.dirname(os.path.abspath(path)),
        elements=elements,
        atom_energy=atom_energy,
        cutoff_type=ctype,
        scaling=scaling,
        smin=smin,
        smax=smax,
        hidden=hidden,
        activation=activation,
        symmetry_functions=sfs,
        normalization=normalization,  # type: ignore[arg-type]
    )


# ------------------------------------------------------------------ scaling.data, weights
def read_scaling(path: str | os.PathLike, pot: N2p2Potential) -> dict[str, np.ndarray]:
    """Per element (n_sf, 4) min, max, mean, sigma (NaN where the file has no sigma column)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise N2p2Error(f"n2p2 scaling file not found: {path}")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, raw in enumerate(fh, 1):
            if raw.startswith("#") or not raw.strip():
                continue
            words = raw.split()
            if len(words) < 5:
                raise N2p2Error(f"{path}:{n}: expected '<element> <function> <min> <max> <mean> [<sigma>]'")
            try:
                rows.append((n, int(words[0]), int(words[1]), [float(w) for w in words[2:6]]))
            except ValueError:
                raise N2p2Error(f"{path}:{n}: not numbers: {raw.strip()!r}") from None
    out = {}
    pos = 0
    for ie, e in enumerate(pot.elements, 1):
        n_sf = len(pot.symmetry_functions[e])
        block = rows[pos : pos + n_sf]
        pos += n_sf
        if len(block) < n_sf:
            raise N2p2Error(f"{path}: {len(rows)} lines of statistics, fewer than the symmetry functions of input.nn")
        stats = np.full((n_sf, 4), np.nan)
        for k, (n, el, fn, vals) in enumerate(block):
            if (el, fn) != (ie, k + 1):
                raise N2p2Error(f"{path}:{n}: expected element {ie} function {k + 1}, found element {el} function {fn}")
            stats[k, : len(vals)] = vals
        out[e] = stats
    if pos != len(rows):
        raise N2p2Error(f"{path}: {len(rows)} lines of statistics but input.nn has {pos} symmetry functions")
    return out


def read_weights(path: str | os.PathLike, sizes: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Layers (W (n_in, n_out), b (n_out,)) of a ``weights.ZZZ.data`` file in n2p2's order.

    Only the first column counts (as in n2p2); where the second column labels a row as a
    connection ('a') or bias ('b'), the labels must follow that order (a check that the
    file was written by n2p2 or RuNNer in this convention)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise N2p2Error(f"n2p2 weights file not found: {path}")
    values, kinds = [], []
    with open(path, encoding="utf-8") as fh:
        for n, raw in enumerate(fh, 1):
            words = raw.split()
            if not words or words[0].startswith("#"):
                continue
            try:
                values.append(float(words[0]))
            except ValueError:
                raise N2p2Error(f"{path}:{n}: {words[0]!r} is not a number") from None
            kinds.append((n, words[1] if len(words) > 1 else None))
    expected = ["a" if i < a * b else "b" for a, b in zip(sizes[:-1], sizes[1:]) for i in range(a * b + b)]
    if len(values) != len(expected):
        raise N2p2Error(
            f"{path}: {len(values)} weights, but the network {'-'.join(map(str, sizes))} of input.nn needs "
            f"{len(expected)}"
        )
    for (n, kind), want in zip(kinds, expected):
        if kind is not None and kind != want:
            raise N2p2Error(
                f"{path}:{n}: labelled {kind!r} where n2p2's order has a {'connection' if want == 'a' else 'bias'} "
                f"({want!r})"
            )
    layers, pos = [], 0
    w = np.asarray(values)
    for a, b in zip(sizes[:-1], sizes[1:]):
        W = w[pos : pos + a * b].reshape(a, b)
        pos += a * b
        layers.append((W, w[pos : pos + b].copy()))
        pos += b
    return layers


def read_n2p2(
    directory: str | os.PathLike,
    input_file: str = "input.nn",
    scaling_file: str = "scaling.data",
    weights_file: str = "weights.{Z:03d}.data",
) -> N2p2Potential:
    """Read an n2p2 potential directory (``weights_file`` is formatted with the atomic number Z)."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise N2p2Error(f"n2p2 potential directory not found: {directory}")
    pot = read_input(os.path.join(directory, input_file))
    pot.statistics = read_scaling(os.path.join(directory, scaling_file), pot)
    for e in pot.elements:
        sizes = [len(pot.symmetry_functions[e]), *pot.hidden, 1]
        pot.layers[e] = read_weights(os.path.join(directory, weights_file.format(Z=atomic_numbers[e])), sizes)
    return pot


# ------------------------------------------------------------------------- conversion
def _unit(value: str | float, table: dict[str, float], what: str) -> float:
    if isinstance(value, str):
        try:
            return table[value.lower()]
        except KeyError:
            raise N2p2Error(f"unknown {what} unit {value!r}; one of {sorted(table)} or a number") from None
    f = float(value)
    if not np.isfinite(f) or f <= 0:
        raise N2p2Error(f"{what} unit must be a positive number, got {value!r}")
    return f


def _affine(pot: N2p2Potential, e: str) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale) with n2p2's scaled input = (G − shift) / scale for element ``e``."""
    st = pot.statistics[e]
    gmin, gmax, gmean, gsigma = st.T
    if pot.scaling == "none":
        return np.zeros(len(st)), np.ones(len(st))
    if pot.scaling == "center":
        return gmean.copy(), np.ones(len(st))
    if pot.scaling == "scalesigma":
        span, ref = gsigma, gmean
    else:
        span, ref = gmax - gmin, (gmin if pot.scaling == "scale" else gmean)
    bad = np.flatnonzero(~(np.abs(span) > 0))
    if len(bad):
        sf = pot.symmetry_functions[e][bad[0]]
        what = "sigma" if pot.scaling == "scalesigma" else "max - min"
        raise N2p2Error(
            f"scaling.data: {what} of function {bad[0] + 1} of {e} (input.nn line {sf.line}) is {span[bad[0]]!r}; "
            "its scaled value is undefined"
        )
    scale = span / (pot.smax - pot.smin)
    return ref - pot.smin * scale, scale


def to_committee(
    pot: N2p2Potential, length_unit: str | float = "bohr", energy_unit: str | float = "hartree"
) -> Committee:
    """The one-member committee that evaluates ``pot``; units as Å and eV per file unit, or names.

    n2p2's ``conv_length`` needs no conversion: the symmetry functions in ``input.nn`` are in
    the data's units and their values are dimensionless."""
    L = _unit(length_unit, LENGTH_UNITS, "length")
    U = _unit(energy_unit, ENERGY_UNITS, "energy")
    params: dict[str, list[tuple[float, ...]]] = {"g2": [], "g4": [], "g5": []}
    for e in pot.elements:
        for sf in pot.symmetry_functions[e]:
            block, _, p = _column_of(sf, L)
            if p not in params[block]:
                params[block].append(p)
    acsf = ACSF(
        species=pot.elements,
        cutoff=pot.cutoff * L,
        g2=params["g2"],
        g4=params["g4"],
        g5=params["g5"],
        cutoff_function=CUTOFF_TYPES[pot.cutoff_type],
    )
    column = {label: i for i, label in enumerate(_column_keys(acsf))}
    net = CommitteeNetwork(acsf.n_features, acsf.species, n_members=1, hidden=pot.hidden, activation=pot.activation)
    conv_energy, mean_energy = (pot.normalization[1], pot.normalization[0]) if pot.normalization else (1.0, 0.0)
    _write_network(net, pot, acsf, column, L, U, conv_energy, mean_energy)
    meta = {
        "source": "n2p2",
        "directory": pot.directory,
        "length_unit_angstrom": L,
        "energy_unit_ev": U,
        "atom_energy": pot.atom_energy,
        "scaling": pot.scaling,
        "n_symmetry_functions": {e: len(v) for e, v in pot.symmetry_functions.items()},
    }
    return Committee(acsf, net, meta)


def _column_keys(acsf: ACSF) -> list[tuple]:
    """A key per alip feature column: ('g2', neighbor Z, params) or ('g4'|'g5', (Za, Zb), params)."""
    keys: list[tuple] = [("g2", z, tuple(p)) for z in acsf.species for p in acsf.g2.tolist()]

    def angular(p: list[float]) -> tuple:  # (eta, zeta, lambda, rs) as _column_of; rs2 only for two windows
        return tuple(p[:4]) if p[4] == p[3] else tuple(p)

    for pair in acsf.species_pairs:
        keys += [("g4", pair, angular(p)) for p in acsf.g4.tolist()]
        keys += [("g5", pair, angular(p)) for p in acsf.g5.tolist()]
    return keys


def _column_of(sf: SymmetryFunction, L: float) -> tuple:
    """The alip column key of ``sf`` (parameters in Å, L = Å per file length unit)."""
    z = tuple(atomic_numbers[e] for e in sf.neighbors)
    if sf.type == 2:
        return ("g2", z[0], (sf.eta / L**2, sf.rs * L))
    return (SF_TYPES[sf.type], z, (sf.eta / L**2, sf.zeta, sf.lam, sf.rs * L))


def _write_network(
    net: CommitteeNetwork,
    pot: N2p2Potential,
    acsf: ACSF,
    column: dict[tuple, int],
    L: float,
    U: float,
    conv_energy: float,
    mean_energy: float,
) -> None:
    """Write the n2p2 weights, scaling and energy offsets into ``net`` (one member).

    Element e's input k goes to alip column ``column[key of its function]``; the columns an
    element does not use get zero weight (and shift 0, scale 1)."""
    with torch.no_grad():
        for s, e in enumerate(pot.elements):
            cols = [column[_column_of(sf, L)] for sf in pot.symmetry_functions[e]]
            shift, scale = _affine(pot, e)
            full_shift = np.zeros(acsf.n_features)
            full_scale = np.ones(acsf.n_features)
            full_shift[cols], full_scale[cols] = shift, scale
            net.feature_shift[s] = torch.from_numpy(full_shift)
            net.feature_scale[s] = torch.from_numpy(full_scale)
            layers = pot.layers[e]
            mlp = net.nets[s]
            W0 = np.zeros((acsf.n_features, layers[0][0].shape[1]))
            W0[cols] = layers[0][0]
            for i, (W, b) in enumerate(layers):
                mlp.weights[i][0] = torch.from_numpy(W0 if i == 0 else W)
                mlp.biases[i][0, 0] = torch.from_numpy(b)
            net.energy_ref[s] = U * (pot.atom_energy[e] + mean_energy)
        net.energy_scale.fill_(U / conv_energy)


def import_n2p2(
    directory: str | os.PathLike,
    length_unit: str | float = "bohr",
    energy_unit: str | float = "hartree",
    **files: str,
) -> Committee:
    """Read the n2p2 potential in ``directory`` and return it as a one-member alip committee.

    ``length_unit`` / ``energy_unit``: the files' units, by name ("bohr", "angstrom", "nm";
    "hartree", "ev", "rydberg") or as Å and eV per unit. Defaults: Bohr and Hartree,
    RuNNer's atomic units (the mlearn potentials). ``files``: input_file, scaling_file,
    weights_file as in :func:`read_n2p2`. Raises :class:`N2p2Error` (a ValueError)."""
    _unit(length_unit, LENGTH_UNITS, "length")
    _unit(energy_unit, ENERGY_UNITS, "energy")
    return to_committee(read_n2p2(directory, **files), length_unit, energy_unit)
