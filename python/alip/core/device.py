"""CPU or GPU: the one place that chooses, and the GPU path of the descriptors.

Rule: torch tensors on a CUDA device, or ``device="cuda"`` (``"cuda:1"``, a
``torch.device``), go to the CUDA kernels of ``cuda/``; everything else goes to the
compiled CPU core (the same computation as :meth:`alip.ACSF.compute`). The choice is
made by :func:`select_device` and nowhere else.

>>> batch = Batch.from_atoms(structures).to("cuda", acsf.species)   # alip.core.batch
>>> G = compute(acsf, batch)                          # (N, F) on the GPU
>>> F, W = forces_and_virial(acsf, batch, dE_dG)      # (N, 3), (S, 3, 3); no Jacobian stored
>>> G = acsf_values(acsf, batch.positions.requires_grad_(), batch)  # autograd in positions/cells
>>> p = prepare(acsf, batch); G = p.values(); F, W = p.forces_and_virial(dE_dG)  # one neighbor list

Derivatives. ``forces_and_virial`` is differentiable in ``dE_dG`` (its backward is the
Jacobian–vector product :func:`jvp`, and the backward of that is ``forces_and_virial``
again), so a force/stress loss trains network weights on both paths. ``acsf_values`` is
differentiable in positions and cells (first derivatives; its backward is
``forces_and_virial``). Not tracked: second derivatives of the descriptors in
positions or cells (Hessian terms). Forces obtained by ``autograd.grad(E, positions,
create_graph=True)`` are exact, and so is the gradient of a force loss with respect to
the network weights, but derivatives of those forces with respect to positions are
missing their d²G/dr² part; use ``alip.core.descriptors_torch.acsf_torch`` (CPU) for those.

torch is needed here (imported lazily); featurization without torch is
:meth:`alip.ACSF.compute`.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from alip import _core
from alip.config import check_device_name
from alip.core.batch import Batch, BatchTensors, StructureOrList, as_list

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from alip.core.descriptors import ACSF

__all__ = [
    "DeviceLike",
    "cuda_compiled",
    "cuda_available",
    "parse_device",
    "select_device",
    "prepare",
    "Prepared",
    "compute",
    "forces_and_virial",
    "jvp",
    "acsf_values",
    "neighbor_list",
]

#: a device as the API takes it: "cpu", "cuda", "cuda:1" or a torch.device
DeviceLike: TypeAlias = "str | torch.device"

NO_CUDA_MESSAGE = (
    "alip was built without CUDA: the GPU path is not available. Rebuild with nvcc on PATH: "
    "pip install . -C cmake.define.ALIP_CUDA=ON (see README, 'CUDA')"
)


# --------------------------------------------------------------------------- availability
def cuda_compiled() -> bool:
    """True when the compiled core was built with ALIP_CUDA=ON."""
    return bool(_core.cuda.compiled())


def cuda_available() -> bool:
    """True when the build has CUDA, torch is installed with CUDA, and a GPU is visible."""
    if not cuda_compiled():
        return False
    try:
        import torch
    except ImportError:
        return False
    try:
        if not torch.cuda.is_available():
            return False
    except Exception:  # a broken driver install must not break callers that only ask
        return False
    return _core.cuda.device_count() > 0


def _require_cuda() -> None:
    if not cuda_compiled():
        raise RuntimeError(NO_CUDA_MESSAGE)
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(
            "no CUDA device is visible to torch (torch.cuda.is_available() is False; torch "
            f"{torch.__version__}, built for CUDA {torch.version.cuda})"
        )
    if _core.cuda.device_count() == 0:
        raise RuntimeError(f"alip's CUDA runtime sees no GPU ({_core.cuda.describe()})")


# --------------------------------------------------------------------------- dispatch
def parse_device(device: DeviceLike) -> torch.device:
    """``device`` as a torch.device, or ValueError unless it is 'cpu' or 'cuda[:index]'
    (syntax only: whether a GPU is usable is checked by :func:`select_device`)."""
    import torch

    if isinstance(device, str):
        check_device_name(device)
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError):
        d = None
    if d is None or d.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:index]', got {device!r}")
    return d


def select_device(*tensors: Any, device: DeviceLike | None = None) -> torch.device:
    """The device a computation runs on: ``device`` when given, else CUDA when any of
    ``tensors`` is a CUDA tensor, else the CPU. The only place that decides."""
    import torch

    if device is not None:
        d = parse_device(device)
        if d.type == "cuda" and d.index is None:
            _require_cuda()
            d = torch.device("cuda", torch.cuda.current_device())
        return d
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.is_cuda:
            return t.device
    return torch.device("cpu")


# --------------------------------------------------------------------------- batches
def _as_batch(acsf: ACSF, structures: StructureOrList | Batch | BatchTensors) -> BatchTensors:
    if isinstance(structures, BatchTensors):
        return structures
    if not isinstance(structures, Batch):
        structures = Batch.from_atoms(as_list(structures)[0])
    return structures.to("cpu", acsf.species)


# --------------------------------------------------------------------------- the two paths
class _CpuPath:
    """The compiled CPU core. Forces are the fused VJP; the JVP (backward of forces)
    uses the core's sparse gradients, computed the first time it is needed."""

    def __init__(self, acsf: ACSF, batch: BatchTensors):
        batch.check()
        self.acsf = acsf
        self.device = batch.device
        b = batch.to("cpu")
        self.arrays = (
            np.ascontiguousarray(b.positions.detach().numpy(), dtype=np.float64),
            np.ascontiguousarray(b.species.numpy(), dtype=np.int32),
            np.ascontiguousarray(b.offsets.numpy(), dtype=np.int64),
            np.ascontiguousarray(b.cells.detach().numpy(), dtype=np.float64),
            np.ascontiguousarray(b.pbc.numpy(), dtype=np.uint8),
        )
        self.n_atoms, self.n_structures = batch.n_atoms, batch.n_structures
        self._sparse = None

    def values(self, dtype: torch.dtype) -> torch.Tensor:
        import torch

        return torch.from_numpy(self.acsf._core.values(*self.arrays)).to(dtype)

    def forces_virial(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        f, v = self.acsf._core.forces_virial(
            *self.arrays, np.ascontiguousarray(w.detach().cpu().numpy(), dtype=np.float64)
        )
        return torch.from_numpy(f).to(w.dtype), torch.from_numpy(v).to(w.dtype)

    def jvp(self, u: torch.Tensor | None, strain: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        import torch

        if self._sparse is None:
            values, grad, centers, neighbors, strain_grad = self.acsf._core.gradients(*self.arrays)
            sidx = np.repeat(np.arange(self.n_structures), np.diff(self.arrays[2]))
            self._sparse = tuple(torch.from_numpy(a) for a in (grad, centers, neighbors, strain_grad, sidx))
        grad, centers, neighbors, strain_grad, sidx = self._sparse
        out = torch.zeros((self.n_atoms, self.acsf.n_features), dtype=torch.float64)
        if u is not None:
            contrib = torch.einsum("raf,ra->rf", grad, u.detach().cpu().double().index_select(0, neighbors))
            out.index_add_(0, centers, contrib)
        if strain is not None:
            U = strain.detach().cpu().double().index_select(0, sidx)
            out += torch.einsum("iabf,iab->if", strain_grad, U)
        return out.to(dtype)


_KERNELS: dict = {}
_KERNELS_LOCK = threading.Lock()


def _kernels(acsf: ACSF, device_index: int):
    key = (json.dumps(acsf.to_dict(), sort_keys=True), device_index)
    with _KERNELS_LOCK:
        k = _KERNELS.get(key)
        if k is None:
            k = _KERNELS[key] = _core.cuda.AcsfKernels(acsf._core, device_index)
        return k


def _dtype_name(dtype: torch.dtype) -> str:
    import torch

    if dtype == torch.float64:
        return "float64"
    if dtype == torch.float32:
        return "float32"
    raise ValueError(f"the GPU path computes in float32 or float64, got {dtype}")


class _CudaPath:
    """The CUDA kernels: the neighbor list is built once on the GPU and reused by
    values, forces (fused VJP) and the JVP."""

    def __init__(self, acsf: ACSF, batch: BatchTensors, device: torch.device):
        import torch

        _require_cuda()
        batch.check()
        self.acsf = acsf
        self.device = device
        b = batch.to(device)
        self.positions = b.positions.detach().to(torch.float64).contiguous()
        self.species = b.species.to(torch.int32).contiguous()
        self.offsets = b.offsets.to(torch.int64).contiguous()
        self.cells = b.cells.detach().to(torch.float64).contiguous()
        self.pbc = b.pbc.to(torch.uint8).contiguous()
        self.n_atoms, self.n_structures = b.n_atoms, b.n_structures
        self.kernels = _kernels(acsf, device.index)
        with torch.cuda.device(device):
            self.nl = _core.cuda.build_neighbor_list(
                self.positions.data_ptr(),
                self.species.data_ptr(),
                self.offsets.data_ptr(),
                self.cells.data_ptr(),
                self.pbc.data_ptr(),
                self.n_structures,
                self.n_atoms,
                acsf.cutoff,
                len(acsf.species),
                self._stream(),
            )

    def _stream(self) -> int:
        import torch

        return int(torch.cuda.current_stream(self.device).cuda_stream)

    def values(self, dtype: torch.dtype) -> torch.Tensor:
        import torch

        out = torch.empty((self.n_atoms, self.acsf.n_features), dtype=dtype, device=self.device)
        with torch.cuda.device(self.device):
            self.kernels.values(self.nl, _dtype_name(dtype), out.data_ptr(), self._stream())
        return out

    def forces_virial(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        name = _dtype_name(w.dtype)
        w = w.detach().to(self.device).contiguous()
        forces = torch.empty((self.n_atoms, 3), dtype=w.dtype, device=self.device)
        virials = torch.empty((self.n_structures, 3, 3), dtype=w.dtype, device=self.device)
        with torch.cuda.device(self.device):
            self.kernels.forces_virial(
                self.nl, name, w.data_ptr(), forces.data_ptr(), virials.data_ptr(), self._stream()
            )
        return forces, virials

    def jvp(self, u: torch.Tensor | None, strain: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        import torch

        name = _dtype_name(dtype)
        u = None if u is None else u.detach().to(device=self.device, dtype=dtype).contiguous()
        strain = None if strain is None else strain.detach().to(device=self.device, dtype=dtype).contiguous()
        out = torch.empty((self.n_atoms, self.acsf.n_features), dtype=dtype, device=self.device)
        with torch.cuda.device(self.device):
            self.kernels.jvp(
                self.nl,
                name,
                0 if u is None else u.data_ptr(),
                0 if strain is None else strain.data_ptr(),
                out.data_ptr(),
                self._stream(),
            )
        return out


def _path(acsf: ACSF, batch: BatchTensors, device: DeviceLike | None = None) -> _CpuPath | _CudaPath:
    d = select_device(batch.positions, device=device)
    if d.type == "cuda":
        return _CudaPath(acsf, batch, d)
    return _CpuPath(acsf, batch)


# --------------------------------------------------------------------------- autograd
def _check_w(path, w: torch.Tensor) -> None:
    if w.shape[-2:] != (path.n_atoms, path.acsf.n_features):
        raise ValueError(f"dE_dG must have shape (..., {path.n_atoms}, {path.acsf.n_features}), got {tuple(w.shape)}")
    import torch

    if not bool(torch.isfinite(w).all()):
        raise ValueError("dE_dG contains NaN or inf")


def _vjp_batched(path, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """forces (..., N, 3), virials (..., S, 3, 3) for dE_dG (..., N, F) (loops over leading dims)."""
    import torch

    lead = w.shape[:-2]
    flat = w.reshape((-1,) + tuple(w.shape[-2:]))
    fs, vs = zip(*(path.forces_virial(flat[k]) for k in range(flat.shape[0]))) if flat.shape[0] else ((), ())
    if not fs:
        return (w.new_zeros(lead + (path.n_atoms, 3)), w.new_zeros(lead + (path.n_structures, 3, 3)))
    out_dev = w.device
    F = torch.stack(fs).to(out_dev).reshape(lead + (path.n_atoms, 3))
    W = torch.stack(vs).to(out_dev).reshape(lead + (path.n_structures, 3, 3))
    return F, W


def _jvp_batched(path, u, strain, dtype, device) -> torch.Tensor:
    import torch

    lead = tuple(u.shape[:-2]) if u is not None else tuple(strain.shape[:-3])
    n_lead = int(np.prod(lead)) if len(lead) else 1
    uf = None if u is None else u.reshape((n_lead, path.n_atoms, 3))
    sf = None if strain is None else strain.reshape((n_lead, path.n_structures, 3, 3))
    outs = [path.jvp(None if uf is None else uf[k], None if sf is None else sf[k], dtype) for k in range(n_lead)]
    return torch.stack(outs).to(device).reshape(tuple(lead) + (path.n_atoms, path.acsf.n_features))


def _autograd_classes():
    import torch

    class ForcesVirial(torch.autograd.Function):
        """(F, W) = (-J_r^T w, -J_eps^T w); backward: dL/dw = -(J_r gF + J_eps gW)."""

        @staticmethod
        def forward(ctx, w, path):
            ctx.path = path
            return _vjp_batched(path, w)

        @staticmethod
        def backward(ctx, gF, gW):
            if not ctx.needs_input_grad[0]:
                return None, None
            return -Jvp.apply(gF, gW, ctx.path), None

    class Jvp(torch.autograd.Function):
        """J_r u + J_eps U; backward: (J_r^T g, J_eps^T g) = (-F(g), -W(g))."""

        @staticmethod
        def forward(ctx, u, strain, path):
            ctx.path = path
            ctx.has = (u is not None, strain is not None)
            ref = u if u is not None else strain
            return _jvp_batched(path, u, strain, ref.dtype, ref.device)

        @staticmethod
        def backward(ctx, g):
            F, W = ForcesVirial.apply(g, ctx.path)
            return (-F if ctx.has[0] else None), (-W if ctx.has[1] else None), None

    class Values(torch.autograd.Function):
        """Descriptor values as a function of positions and cells (first derivatives)."""

        @staticmethod
        def forward(ctx, positions, cells, path, pbc, offsets, dtype):
            ctx.path = path
            ctx.save_for_backward(positions, cells)
            ctx.pbc, ctx.offsets = pbc, offsets
            return path.values(dtype).to(positions.device)

        @staticmethod
        def backward(ctx, gG):
            positions, cells = ctx.saved_tensors
            F, W = ForcesVirial.apply(gG, ctx.path)
            g_pos = (-F).to(positions.dtype)
            g_cell = None
            if ctx.needs_input_grad[1]:
                g_cell = _cell_gradient(
                    (-W).to(cells.dtype), positions.detach(), g_pos, cells.detach(), ctx.pbc, ctx.offsets
                )
            return g_pos, g_cell, None, None, None, None

    return ForcesVirial, Jvp, Values


_FUNCTIONS = None


def _functions():
    global _FUNCTIONS
    if _FUNCTIONS is None:
        _FUNCTIONS = _autograd_classes()
    return _FUNCTIONS


def _cell_gradient(dL_deps, positions, g_pos, cells, pbc, offsets):
    """dL/dcell (S, 3, 3) from dL/deps (S, 3, 3): dL/deps = r^T dL/dr + h^T dL/dh per
    structure, where only periodic rows of h enter (as alip.core.descriptors_torch)."""
    import torch

    S = cells.shape[0]
    counts = offsets[1:] - offsets[:-1]
    sidx = torch.repeat_interleave(torch.arange(S, device=positions.device), counts.to(positions.device))
    outer = positions[:, :, None] * g_pos[:, None, :]
    rTg = torch.zeros((S, 3, 3), dtype=g_pos.dtype, device=g_pos.device).index_add(0, sidx, outer)
    H = cells * pbc.to(cells.dtype)[:, :, None]
    return torch.linalg.pinv(H.transpose(1, 2)) @ (dL_deps - rTg)


# --------------------------------------------------------------------------- public API
class Prepared:
    """A batch with its neighbor list built once (on the GPU or the CPU, by the dispatch
    rule), for several calls on the same geometry: values, then forces from the network's
    dE/dG (an MD or pool-scoring step), or a training step's forces and their backward."""

    def __init__(
        self, acsf: ACSF, structures: StructureOrList | Batch | BatchTensors, device: DeviceLike | None = None
    ):
        batch = _as_batch(acsf, structures)
        self.acsf = acsf
        self.batch = batch
        self._path = _path(acsf, batch, device)

    @property
    def device(self) -> torch.device:
        return self._path.device

    @property
    def on_gpu(self) -> bool:
        return isinstance(self._path, _CudaPath)

    def values(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """(N, F); float64 by default, float32 on request (computed in it on the GPU)."""
        import torch

        return self._path.values(dtype or torch.float64).to(self._path.device)

    def forces_and_virial(self, dE_dG: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forces (..., N, 3) and virials (..., S, 3, 3); differentiable in dE_dG."""
        import torch

        if not isinstance(dE_dG, torch.Tensor):
            dE_dG = torch.as_tensor(np.asarray(dE_dG, dtype=np.float64), device=self._path.device)
        _check_w(self._path, dE_dG)
        ForcesVirial, _, _ = _functions()
        return ForcesVirial.apply(dE_dG, self._path)

    def jvp(self, displacement: torch.Tensor | None = None, strain: torch.Tensor | None = None) -> torch.Tensor:
        """(..., N, F) = J_r displacement + J_eps strain; differentiable in both."""
        p = self._path
        if displacement is None and strain is None:
            raise ValueError("give a displacement, a strain or both")
        if displacement is not None and displacement.shape[-2:] != (p.n_atoms, 3):
            raise ValueError(f"displacement must have shape (..., {p.n_atoms}, 3), got {tuple(displacement.shape)}")
        if strain is not None and strain.shape[-3:] != (p.n_structures, 3, 3):
            raise ValueError(f"strain must have shape (..., {p.n_structures}, 3, 3), got {tuple(strain.shape)}")
        if displacement is not None and strain is not None and displacement.dtype != strain.dtype:
            strain = strain.to(displacement.dtype)
        _, Jvp, _ = _functions()
        return Jvp.apply(displacement, strain, p)


def prepare(
    acsf: ACSF, structures: StructureOrList | Batch | BatchTensors, device: DeviceLike | None = None
) -> Prepared:
    """Builds the neighbor list of a batch once; see :class:`Prepared`."""
    return Prepared(acsf, structures, device)


def compute(
    acsf: ACSF,
    structures: StructureOrList | Batch | BatchTensors,
    device: DeviceLike | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Descriptor values (N, F) as a tensor on the batch's device (or ``device``).
    ``dtype``: float64 (default) or float32 (the GPU computes in it; the CPU core computes
    in float64 and casts)."""
    return Prepared(acsf, structures, device).values(dtype)


def forces_and_virial(
    acsf: ACSF,
    structures: StructureOrList | Batch | BatchTensors,
    dE_dG: torch.Tensor,
    device: DeviceLike | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forces -dE/dr (..., N, 3) and virials -dE/deps (..., S, 3, 3) from dE/dG (..., N, F)
    (leading dimensions: e.g. committee members), without storing the Jacobian.
    Differentiable in ``dE_dG`` to any order (training on forces and stresses)."""
    import torch

    batch = _as_batch(acsf, structures)
    if not isinstance(dE_dG, torch.Tensor):
        dE_dG = torch.as_tensor(np.asarray(dE_dG, dtype=np.float64))
    return Prepared(acsf, batch, select_device(batch.positions, dE_dG, device=device)).forces_and_virial(dE_dG)


def jvp(
    acsf: ACSF,
    structures: StructureOrList | Batch | BatchTensors,
    displacement: torch.Tensor | None = None,
    strain: torch.Tensor | None = None,
    device: DeviceLike | None = None,
) -> torch.Tensor:
    """dG (..., N, F) = sum_j dG_i/dr_j displacement_j + sum_ab dG_i/deps_ab strain_ab, for
    displacement (..., N, 3) and strain (..., S, 3, 3) (either may be None). The adjoint
    of :func:`forces_and_virial`; differentiable in both inputs."""
    if displacement is None and strain is None:
        raise ValueError("give a displacement, a strain or both")
    batch = _as_batch(acsf, structures)
    d = select_device(batch.positions, displacement, strain, device=device)
    return Prepared(acsf, batch, d).jvp(displacement, strain)


def acsf_values(
    acsf: ACSF,
    positions: torch.Tensor,
    batch: BatchTensors,
    cells: torch.Tensor | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Values (N, F) as an autograd function of ``positions`` (N, 3) and ``cells`` (S, 3, 3)
    (default: the batch's). Species, offsets and pbc come from ``batch``; the device is
    that of ``positions``. First derivatives are exact (fused VJP); see the module notes
    for what second derivatives cover."""
    cells = batch.cells if cells is None else cells
    b = BatchTensors(positions.detach(), batch.species, batch.offsets, cells.detach(), batch.pbc)
    path = _path(acsf, b, select_device(positions))
    _, _, Values = _functions()
    import torch

    return Values.apply(
        positions,
        cells,
        path,
        batch.pbc.to(positions.device),
        batch.offsets.to(positions.device),
        dtype or (positions.dtype if positions.dtype in (torch.float32, torch.float64) else torch.float64),
    )


def neighbor_list(
    acsf_or_cutoff: ACSF | float, batch: BatchTensors, device: DeviceLike | None = None, n_species: int | None = None
) -> tuple[torch.Tensor, ...]:
    """(i, j, S, D, d) of a batch with global atom indices: the pairs of
    :func:`alip.neighbor_list` for each structure, grouped by center. On the CPU they are
    sorted by (i, j) within a structure; on the GPU, within a center, by neighbor species
    and then in cell-list order (sort them to compare)."""
    import torch

    cutoff = float(getattr(acsf_or_cutoff, "cutoff", acsf_or_cutoff))
    if n_species is None:
        n_species = (
            len(acsf_or_cutoff.species) if hasattr(acsf_or_cutoff, "species") else int(batch.species.max().item()) + 1
        )
    d = select_device(batch.positions, device=device)
    if d.type == "cuda":
        _require_cuda()
        b = batch.to(d)
        pos = b.positions.to(torch.float64).contiguous()
        sp, off = b.species.to(torch.int32).contiguous(), b.offsets.to(torch.int64).contiguous()
        cells, pbc = b.cells.to(torch.float64).contiguous(), b.pbc.to(torch.uint8).contiguous()
        with torch.cuda.device(d):
            stream = int(torch.cuda.current_stream(d).cuda_stream)
            nl = _core.cuda.build_neighbor_list(
                pos.data_ptr(),
                sp.data_ptr(),
                off.data_ptr(),
                cells.data_ptr(),
                pbc.data_ptr(),
                b.n_structures,
                b.n_atoms,
                cutoff,
                n_species,
                stream,
            )
            n = nl.n_pairs
            i = torch.empty(n, dtype=torch.int64, device=d)
            j = torch.empty(n, dtype=torch.int64, device=d)
            S = torch.empty((n, 3), dtype=torch.int64, device=d)
            D = torch.empty((n, 3), dtype=torch.float64, device=d)
            dist = torch.empty(n, dtype=torch.float64, device=d)
            nl.copy_pairs(i.data_ptr(), j.data_ptr(), S.data_ptr(), D.data_ptr(), dist.data_ptr(), stream)
        return i, j, S, D, dist
    from ase import Atoms

    from alip.core.neighbors import neighbor_list as cpu_neighbor_list

    b = batch.to("cpu")
    off = b.offsets.numpy()
    parts = []
    for k in range(b.n_structures):
        lo, hi = int(off[k]), int(off[k + 1])
        atoms = Atoms(
            numbers=np.full(hi - lo, 14),
            positions=b.positions[lo:hi].detach().numpy(),
            cell=b.cells[k].detach().numpy(),
            pbc=b.pbc[k].numpy(),
        )
        i, j, S, D, dist = cpu_neighbor_list(atoms, cutoff)
        parts.append((i + lo, j + lo, S, D, dist))
    return tuple(torch.from_numpy(np.concatenate([p[q] for p in parts])) for q in range(5))
