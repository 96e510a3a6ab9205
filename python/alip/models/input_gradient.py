"""Outputs and input gradients of K stacked MLPs, with the backward written out.

A force loss needs dE/dG, the network's gradient with respect to its input, inside the
graph. :func:`value_and_input_gradient` computes the outputs (K, n) and dE/dG (K, n, F) of
the K members by the chain rule, δ_{L-1} = w_Lᵀ ⊙ σ'(z_{L-1}), δ_l = (δ_{l+1} W_{l+1}ᵀ) ⊙ σ'(z_l),
dE/dG = δ_0 W_0ᵀ, and, with a graph, is one autograd node whose backward (the weight
gradients of a loss on both outputs, second derivatives σ'' included) is written out too:
a training step then records one node per species instead of about fifty (−7 % per Adam
epoch on the mlearn set, docs/accuracy_studies.md, eleventh study). Tested against autograd's double backward
for every activation and depth (``tests/models/test_models.py``).

On the CPU the same numbers come from the compiled core (``alip._core.mlp_forward`` and
``mlp_backward``, ``cpp/include/alip/mlp.hpp``): per block of atoms in cache, the hidden
quantities recomputed in the backward instead of stored, where PyTorch makes a pass over
memory for each of its operations. This module's PyTorch code is the reference it is
tested against and the path on other devices.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.autograd.function import once_differentiable

from alip import _core

__all__ = ["activation_slope", "activation_curvature", "value_and_input_gradient"]


def _sigmoid_of(name: str, z: torch.Tensor) -> torch.Tensor | None:
    return torch.sigmoid(z) if name in ("silu", "softplus") else None


def activation(name: str, z: torch.Tensor, sig: torch.Tensor | None = None) -> torch.Tensor:
    """σ(z); ``sig`` = sigmoid(z) where the caller has it (silu)."""
    if name == "tanh":
        return torch.tanh(z)
    if name == "silu":
        return torch.nn.functional.silu(z) if sig is None else z * sig
    if name == "softplus":
        return torch.nn.functional.softplus(z)
    if name == "celu":
        return torch.nn.functional.celu(z)
    raise ValueError(f"unknown activation {name!r}")


def activation_slope(name: str, z: torch.Tensor, a: torch.Tensor, sig: torch.Tensor | None = None) -> torch.Tensor:
    """σ'(z) from ``a`` = σ(z) (and ``sig`` = sigmoid(z) where given) where that is cheaper."""
    if name == "tanh":
        return 1 - a * a
    if name == "silu":  # d/dz z·s(z) = s + z·s·(1 − s) = s + a·(1 − s)
        sig = torch.sigmoid(z) if sig is None else sig
        return sig + a * (1 - sig)
    if name == "softplus":  # nn.Softplus is z itself above its threshold 20
        return torch.where(z > 20, torch.ones_like(a), torch.sigmoid(z) if sig is None else sig)
    if name == "celu":  # α = 1: exp(z) − 1 below 0
        return torch.where(z > 0, torch.ones_like(a), a + 1)
    raise ValueError(f"unknown activation {name!r}")


def activation_curvature(name: str, z: torch.Tensor, a: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    """σ''(z) from ``a`` = σ(z) and ``slope`` = σ'(z)."""
    if name == "tanh":
        return -2 * a * slope
    if name == "silu":  # s(1 − s)(2 + z(1 − 2s))
        sig = torch.sigmoid(z)
        return sig * (1 - sig) * (2 + z * (1 - 2 * sig))
    if name == "softplus":
        return torch.where(z > 20, torch.zeros_like(a), slope * (1 - slope))
    if name == "celu":
        return torch.where(z > 0, torch.zeros_like(a), a + 1)
    raise ValueError(f"unknown activation {name!r}")


def _forward(
    x: torch.Tensor, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor], name: str
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list, list]:
    """out (K, n), dE/dG (K, n, F) and what the backward needs: each hidden layer's input,
    pre-activation, slope, δ and p = δ_{l+1} W_{l+1}ᵀ."""
    H = len(weights) - 1
    inputs, zs, slopes = [], [], []
    a = x
    for layer in range(H):
        inputs.append(a)
        z = (
            torch.baddbmm(biases[layer], a, weights[layer])
            if a.dim() == 3
            else torch.matmul(a, weights[layer]) + biases[layer]
        )
        sig = _sigmoid_of(name, z)
        a = activation(name, z, sig)
        zs.append(z)
        slopes.append(activation_slope(name, z, a, sig))
    inputs.append(a)
    out = torch.baddbmm(biases[H], a, weights[H]).squeeze(-1)
    deltas: list = [None] * H
    ps: list = [None] * H
    delta = weights[H].transpose(1, 2) * slopes[H - 1]  # (K, n, h_last)
    deltas[H - 1] = delta
    for layer in range(H - 2, -1, -1):
        p = torch.bmm(delta, weights[layer + 1].transpose(1, 2))
        delta = p * slopes[layer]
        ps[layer], deltas[layer] = p, delta
    grad = torch.bmm(delta, weights[0].transpose(1, 2))
    return out, grad, inputs, zs, slopes, deltas, ps


class _ValueAndInputGradient(torch.autograd.Function):
    """(out, dE/dG) as one node; the backward gives the weight and bias gradients (not x's)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, name: str, n_layers: int, *params: torch.Tensor):  # type: ignore[override]
        weights, biases = params[:n_layers], params[n_layers:]
        out, grad, inputs, zs, slopes, deltas, ps = _forward(x, weights, biases, name)
        H = n_layers - 1
        ctx.name, ctx.H = name, H
        ctx.set_materialize_grads(False)  # an unused output's gradient comes as None: its path is skipped
        ctx.save_for_backward(*weights, *inputs, *zs, *slopes, *deltas, *[p for p in ps[: H - 1]])
        return out, grad

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out: torch.Tensor | None, g_grad: torch.Tensor | None):  # type: ignore[override]
        H, name = ctx.H, ctx.name
        saved = list(ctx.saved_tensors)
        weights = saved[: H + 1]
        inputs = saved[H + 1 : 2 * H + 2]
        zs = saved[2 * H + 2 : 3 * H + 2]
        slopes = saved[3 * H + 2 : 4 * H + 2]
        deltas = saved[4 * H + 2 : 5 * H + 2]
        ps = saved[5 * H + 2 :]
        gw: list[torch.Tensor | None] = [None] * (H + 1)
        gb: list[torch.Tensor | None] = [None] * (H + 1)
        zbar: list[torch.Tensor | None] = [None] * H

        def add(acc: torch.Tensor | None, t: torch.Tensor) -> torch.Tensor:
            return t if acc is None else acc + t

        if g_grad is not None:  # through dE/dG = δ_0 W_0ᵀ and the δ recursion
            gw[0] = torch.bmm(g_grad.transpose(1, 2), deltas[0])
            dbar = torch.bmm(g_grad, weights[0])  # d loss / d δ_0
            for layer in range(H - 1):  # δ_l = p_l ⊙ σ'(z_l), p_l = δ_{l+1} W_{l+1}ᵀ
                curv = activation_curvature(name, zs[layer], inputs[layer + 1], slopes[layer])
                zbar[layer] = dbar * ps[layer] * curv
                pbar = dbar * slopes[layer]
                gw[layer + 1] = torch.bmm(pbar.transpose(1, 2), deltas[layer + 1])
                dbar = torch.bmm(pbar, weights[layer + 1])
            # δ_{H-1} = w_Hᵀ ⊙ σ'(z_{H-1})
            gw[H] = (dbar * slopes[H - 1]).sum(1, keepdim=True).transpose(1, 2)
            curv = activation_curvature(name, zs[H - 1], inputs[H], slopes[H - 1])
            zbar[H - 1] = add(zbar[H - 1], dbar * weights[H].transpose(1, 2) * curv)
        abar = None  # d loss / d a_l, down the layers: the outputs' and the δ path's z̄ of the layer above
        if g_out is not None:  # through the outputs
            go = g_out.unsqueeze(-1)
            gw[H] = add(gw[H], torch.bmm(inputs[H].transpose(1, 2), go))
            gb[H] = go.sum(1, keepdim=True)
            abar = go * weights[H].transpose(1, 2)
        for layer in range(H - 1, -1, -1):
            if abar is not None:
                zbar[layer] = add(zbar[layer], abar * slopes[layer])
            zb = zbar[layer]
            abar = torch.bmm(zb, weights[layer].transpose(1, 2)) if layer > 0 and zb is not None else None
        for layer in range(H):
            zb, a = zbar[layer], inputs[layer]
            if zb is None:
                continue
            gw[layer] = add(gw[layer], torch.matmul(a.transpose(-1, -2), zb))
            gb[layer] = zb.sum(1, keepdim=True)
        gw = [torch.zeros_like(w) if g is None else g for g, w in zip(gw, weights)]
        gb = [torch.zeros_like(w[:, :1, :]) if g is None else g for g, w in zip(gb, weights)]
        return (None, None, None, *gw, *gb)


class _CoreValueAndInputGradient(torch.autograd.Function):
    """(out, dE/dG) from the compiled core; the backward is the core's VJP in the weights
    and biases (the hidden quantities recomputed from x, not saved)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, name: str, n_layers: int, *params: torch.Tensor):  # type: ignore[override]
        ctx.name, ctx.n_layers = name, n_layers
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, *params)
        out, grad = _core.mlp_forward(x.numpy(), *_numpy_params(params, n_layers), name)
        return torch.from_numpy(out), torch.from_numpy(grad)

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out: torch.Tensor | None, g_grad: torch.Tensor | None):  # type: ignore[override]
        x, *params = ctx.saved_tensors
        go = None if g_out is None else g_out.contiguous().numpy()
        gg = None if g_grad is None else g_grad.contiguous().numpy()
        gw, gb = _core.mlp_backward(x.numpy(), *_numpy_params(params, ctx.n_layers), ctx.name, go, gg)
        return (None, None, None, *[torch.from_numpy(g) for g in gw], *[torch.from_numpy(g) for g in gb])


def _numpy_params(params: Sequence[torch.Tensor], n_layers: int) -> tuple[list, list]:
    """The weights and biases as NumPy views (no copies of contiguous tensors)."""
    arrays = [p.detach().contiguous().numpy() for p in params]
    return arrays[:n_layers], arrays[n_layers:]


def _on_core(x: torch.Tensor, params: Sequence[torch.Tensor]) -> bool:
    """Whether the compiled core computes this call: CPU tensors of one float dtype."""
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and all(p.device.type == "cpu" and p.dtype == x.dtype for p in params)
    )


def value_and_input_gradient(
    x: torch.Tensor,
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
    name: str,
    graph: bool,
    reference: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs (K, n) and d out / d x (K, n, F) of K MLPs (weights (K, a, b), biases (K, 1, b),
    at least one hidden layer) on x (n, F) or (K, n, F). ``graph``: differentiable in the
    weights and biases (one node, written-out backward; not in x); else no graph. Both compute
    the same numbers. CPU tensors run on the compiled core unless ``reference`` (this module's
    PyTorch code, the path on other devices)."""
    params = [*weights, *biases]
    core = not reference and _on_core(x, params)
    if graph and torch.is_grad_enabled():
        if x.requires_grad:  # the written-out backward gives no gradient in x: refuse, not a silent zero
            raise ValueError("value_and_input_gradient is differentiable in the weights only; detach x")
        node = _CoreValueAndInputGradient if core else _ValueAndInputGradient
        return node.apply(x.detach().contiguous() if core else x, name, len(weights), *params)
    with torch.no_grad():
        if core:
            out, grad = _core.mlp_forward(x.contiguous().numpy(), *_numpy_params(params, len(weights)), name)
            return torch.from_numpy(out), torch.from_numpy(grad)
        out, grad, *_ = _forward(x, weights, biases, name)
    return out, grad
