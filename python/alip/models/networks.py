"""Behler–Parrinello networks: K committee members stacked into one module.

E_k(structure) = Σ_i [ e_ref[Z_i] + energy_scale · NN_{k,Z_i}((G_i − shift_{Z_i}) / scale_{Z_i}) ]

All K members of a committee live in one :class:`CommitteeNetwork` whose weights
carry a leading member axis, so one batched matmul evaluates (and trains) the whole
committee. dE/dG is the chain rule written out (:meth:`StackedMLP.value_and_input_gradient`,
:mod:`alip.models.input_gradient`), tested against autograd's. :meth:`CommitteeNetwork.member`
extracts one member as a plain, TorchScript-able :class:`MemberNetwork`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from alip.models.input_gradient import value_and_input_gradient

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "celu": nn.CELU,
}


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op threads (None: leave unchanged).

    The committee's tensors are small; one thread is as fast as two on an idle
    2-core machine and several times faster when other processes share the cores.
    """
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def make_activation(name: str) -> nn.Module:
    """Return the activation module called ``name`` (smooth ones only: forces need C¹)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


def _in_atom_order(
    parts: list[tuple[torch.Tensor | None, torch.Tensor]], like: torch.Tensor, shape: tuple[int, ...]
) -> torch.Tensor:
    """Per-species blocks (atoms, values along dim 1) put back in atom order (atoms None: all)."""
    if len(parts) == 1 and parts[0][0] is None:
        return parts[0][1]
    out = like.new_zeros(shape)
    for idx, values in parts:
        out = out.index_copy(1, idx, values)
    return out


class StackedMLP(nn.Module):
    """K independent MLPs ``n_in → hidden… → 1`` evaluated with batched matmuls."""

    def __init__(
        self,
        n_in: int,
        hidden: Sequence[int],
        n_members: int,
        activation: str,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        sizes = [n_in, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(sizes[:-1], sizes[1:]):
            # Xavier-uniform per member, drawn from the caller's generator (reproducible)
            bound = math.sqrt(6.0 / (a + b))
            w = (torch.rand(n_members, a, b, generator=generator, dtype=torch.float64) * 2 - 1) * bound
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(n_members, 1, b, dtype=torch.float64)))
        self.act = make_activation(activation)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (K, n, n_in) or (n, n_in) → (K, n) outputs of every member."""
        n_layers = len(self.weights)
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.matmul(x, w) + b
            if layer < n_layers - 1:
                x = self.act(x)
        return x.squeeze(-1)

    def value_and_input_gradient(self, x: torch.Tensor, create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs (K, n) and their gradients with respect to ``x`` (K, n, n_in), the chain rule
        written out (:mod:`alip.models.input_gradient`): with ``create_graph`` both are
        differentiable in the weights, so a loss on the gradient (forces) trains by one backward
        pass instead of autograd's double backward (−12 % per Adam epoch on mlearn Si, README),
        through one autograd node with its backward written out; without, no graph."""
        if len(self.weights) == 1:  # no hidden layer: a linear model, through autograd
            graph = create_graph and torch.is_grad_enabled()
            with torch.set_grad_enabled(graph):
                out = torch.matmul(x, self.weights[0]) + self.biases[0]
                grad = self.weights[0].transpose(1, 2).expand(*out.shape[:-1], x.shape[-1])
            # a view of a weight taken without grad would still carry a graph into later products
            return (out.squeeze(-1), grad) if graph else (out.squeeze(-1).detach(), grad.detach())
        return value_and_input_gradient(x, list(self.weights), list(self.biases), self.activation, create_graph)


class CommitteeNetwork(nn.Module):
    """K Behler–Parrinello networks (one MLP per element per member) on ACSF features.

    Buffers (stored with the weights): ``feature_shift``/``feature_scale`` (n_species, F),
    ``energy_ref`` (n_species,) eV per atom, ``energy_scale`` (scalar) eV.
    """

    def __init__(
        self,
        n_features: int,
        species: Sequence[int],
        n_members: int = 5,
        hidden: Sequence[int] = (48, 48),
        activation: str = "tanh",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if n_members < 1:
            raise ValueError("n_members must be >= 1")
        self.n_features = int(n_features)
        self.species = [int(z) for z in species]
        self.n_members = int(n_members)
        self.hidden = [int(h) for h in hidden]
        self.activation = activation
        gen = torch.Generator().manual_seed(int(seed))
        self.nets = nn.ModuleList(
            StackedMLP(self.n_features, self.hidden, self.n_members, activation, gen) for _ in self.species
        )
        ns = len(self.species)
        self.register_buffer("feature_shift", torch.zeros(ns, self.n_features, dtype=torch.float64))
        self.register_buffer("feature_scale", torch.ones(ns, self.n_features, dtype=torch.float64))
        self.register_buffer("energy_ref", torch.zeros(ns, dtype=torch.float64))
        self.register_buffer("energy_scale", torch.ones((), dtype=torch.float64))

    def architecture(self) -> dict:
        """JSON-serialisable constructor arguments (without the seed)."""
        return dict(
            n_features=self.n_features,
            species=list(self.species),
            n_members=self.n_members,
            hidden=list(self.hidden),
            activation=self.activation,
        )

    def _atoms_by_species(self, species_index: torch.Tensor) -> list[tuple[int, torch.Tensor | None]]:
        """(species, its atoms) for each element present; atoms None: all of them (one element)."""
        if len(self.species) == 1:
            return [(0, None)]
        found = [(s, torch.nonzero(species_index == s).squeeze(1)) for s in range(len(self.species))]
        return [(s, idx) for s, idx in found if idx.numel()]

    def _scaled(self, G: torch.Tensor, s: int, idx: torch.Tensor | None) -> torch.Tensor:
        """The network input of species ``s``: its atoms' descriptors, shifted and scaled."""
        x = G if idx is None else G.index_select(-2, idx)
        return (x - self.feature_shift[s]) / self.feature_scale[s]

    def atomic_energies(self, G: torch.Tensor, species_index: torch.Tensor) -> torch.Tensor:
        """Per-atom energies (K, N) from descriptors G of shape (N, F) or (K, N, F)."""
        parts = [
            (idx, self.energy_ref[s] + self.energy_scale * self.nets[s](self._scaled(G, s, idx)))
            for s, idx in self._atoms_by_species(species_index)
        ]
        return _in_atom_order(parts, G, (self.n_members, G.shape[-2]))

    def forward(
        self, G: torch.Tensor, species_index: torch.Tensor, structure_index: torch.Tensor, n_structures: int
    ) -> torch.Tensor:
        """Total energies (K, n_structures)."""
        e = self.atomic_energies(G, species_index)
        return e.new_zeros(self.n_members, n_structures).index_add(1, structure_index, e)

    def energies_and_gradients(
        self,
        G: torch.Tensor,
        species_index: torch.Tensor,
        structure_index: torch.Tensor,
        n_structures: int,
        create_graph: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Energies (K, S), atomic energies (K, N) and dE_k/dG (K, N, F) of every member.

        dE/dG comes from :meth:`StackedMLP.value_and_input_gradient`; with ``create_graph`` it
        is differentiable in the weights (a force loss), else it has no graph.
        """
        K, N = self.n_members, G.shape[-2]
        G = G.detach()
        energies, gradients = [], []
        for s, idx in self._atoms_by_species(species_index):
            out, d = self.nets[s].value_and_input_gradient(self._scaled(G, s, idx), create_graph)
            energies.append((idx, self.energy_ref[s] + self.energy_scale * out))
            gradients.append((idx, d * (self.energy_scale / self.feature_scale[s])))  # a graph only with create_graph
        e_atom = _in_atom_order(energies, G, (K, N))
        dE_dG = _in_atom_order(gradients, G, (K, N, G.shape[-1]))
        E = e_atom.new_zeros(K, n_structures).index_add(1, structure_index, e_atom)
        return E, e_atom, dE_dG

    @torch.no_grad()
    def select(self, members: Sequence[int]) -> CommitteeNetwork:
        """A committee of the members ``members`` (copied weights and scaling, same dtype)."""
        members = [int(k) for k in members]
        if not members or not all(0 <= k < self.n_members for k in members):
            raise IndexError(f"members {members} out of range 0..{self.n_members - 1}")
        out = CommitteeNetwork(self.n_features, self.species, len(members), self.hidden, self.activation)
        out = out.to(device=self.feature_shift.device, dtype=self.feature_shift.dtype)
        out.load_state_dict({k: (v[members] if _stacked(k) else v) for k, v in self.state_dict().items()})
        return out

    @staticmethod
    @torch.no_grad()
    def join(parts: Sequence[CommitteeNetwork]) -> CommitteeNetwork:
        """One committee of all members of ``parts`` in order; they must share architecture
        and scaling (the sub-committees of one training)."""
        first = parts[0]
        arch = {k: v for k, v in first.architecture().items() if k != "n_members"}
        states = [p.state_dict() for p in parts]
        for p, st in zip(parts[1:], states[1:]):
            if {k: v for k, v in p.architecture().items() if k != "n_members"} != arch:
                raise ValueError("cannot join committees of different architectures")
            if any(not torch.equal(st[k], states[0][k]) for k in st if not _stacked(k)):
                raise ValueError("cannot join committees with different feature scaling or energy reference")
        out = CommitteeNetwork(n_members=sum(p.n_members for p in parts), **arch)
        out = out.to(device=first.feature_shift.device, dtype=first.feature_shift.dtype)
        joined = {k: (torch.cat([st[k] for st in states]) if _stacked(k) else v) for k, v in states[0].items()}
        out.load_state_dict(joined)
        return out

    @torch.no_grad()
    def member(self, k: int) -> MemberNetwork:
        """Member ``k`` as a standalone :class:`MemberNetwork` (same dtype, copied weights)."""
        if not 0 <= k < self.n_members:
            raise IndexError(f"member {k} out of range 0..{self.n_members - 1}")
        m = MemberNetwork(self.n_features, self.species, self.hidden, self.activation)
        m = m.to(self.feature_shift.dtype)
        for s, net in enumerate(self.nets):
            linears = [mod for mod in m.nets[s] if isinstance(mod, nn.Linear)]
            for lin, w, b in zip(linears, net.weights, net.biases):
                lin.weight.copy_(w[k].T)
                lin.bias.copy_(b[k, 0])
        m.feature_shift.copy_(self.feature_shift)
        m.feature_scale.copy_(self.feature_scale)
        m.energy_ref.copy_(self.energy_ref)
        m.energy_scale.copy_(self.energy_scale)
        return m


def _stacked(key: str) -> bool:
    """Whether state-dict entry ``key`` carries the member axis first (weights and biases)."""
    return key.startswith("nets.")


class MemberNetwork(nn.Module):
    """One committee member with ordinary ``nn.Linear`` layers; TorchScript-compatible.

    ``forward(G (N, F), species_index (N,)) -> atomic energies (N,)``.
    """

    def __init__(self, n_features: int, species: Sequence[int], hidden: Sequence[int], activation: str) -> None:
        super().__init__()
        self.n_species = len(species)
        nets = []
        for _ in species:
            layers: list[nn.Module] = []
            sizes = [n_features, *hidden, 1]
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
                layers.append(nn.Linear(a, b))
                if i < len(sizes) - 2:
                    layers.append(make_activation(activation))
            nets.append(nn.Sequential(*layers))
        self.nets = nn.ModuleList(nets)
        ns = len(species)
        self.register_buffer("feature_shift", torch.zeros(ns, n_features))
        self.register_buffer("feature_scale", torch.ones(ns, n_features))
        self.register_buffer("energy_ref", torch.zeros(ns))
        self.register_buffer("energy_scale", torch.ones(()))

    def forward(self, G: torch.Tensor, species_index: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(G.shape[0], dtype=G.dtype, device=G.device)
        for s, net in enumerate(self.nets):
            mask = species_index == s
            x = (G[mask] - self.feature_shift[s]) / self.feature_scale[s]
            out[mask] = self.energy_ref[s] + self.energy_scale * net(x).squeeze(-1)
        return out
