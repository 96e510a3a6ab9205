"""The committee's networks on the compiled core (``alip._core.mlp_forward`` / ``mlp_backward``,
``cpp/include/alip/mlp.hpp``) against this package's PyTorch reference
(``alip.models.input_gradient`` with ``reference=True``, itself tested against autograd's double
backward in ``test_models.py``): outputs, input gradients and the VJP in the weights, float32
and float64, shared and per-member inputs, partial blocks of atoms and (300 atoms) the threaded
path where the core has more than one thread (the C++ tests compare three threads with one);
bad input refused with a reason."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # torch is an optional extra of alip

from alip import _core  # noqa: E402
from alip.models import input_gradient  # noqa: E402
from alip.models.input_gradient import value_and_input_gradient  # noqa: E402

ACTIVATIONS = ["tanh", "silu", "softplus", "celu"]


def _network(K: int, sizes: list[int], dtype: torch.dtype, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    weights = [
        (torch.randn(K, a, b, generator=gen, dtype=dtype) / a**0.5).requires_grad_()
        for a, b in zip(sizes[:-1], sizes[1:])
    ]
    biases = [(0.5 * torch.randn(K, 1, b, generator=gen, dtype=dtype)).requires_grad_() for b in sizes[1:]]
    return weights, biases


@pytest.fixture
def core_calls(monkeypatch):
    """Counts the calls of the core's forward and backward made through input_gradient, so that a
    comparison with the reference cannot pass by running the reference twice."""
    calls = {"mlp_forward": 0, "mlp_backward": 0}
    for name in calls:
        fn = getattr(input_gradient._core, name)

        def counted(*args, _fn=fn, _name=name, **kwargs):
            calls[_name] += 1
            return _fn(*args, **kwargs)

        monkeypatch.setattr(input_gradient._core, name, counted)
    return calls


def _both(calls, x, weights, biases, activation, g_out, g_grad):
    """(out, grad, parameter gradients of <g_out, out> + <g_grad, grad>) on each path; checks that
    the first ran on the core (forward and backward) and the second did not."""
    results = []
    for reference in (False, True):
        before = dict(calls)
        out, grad = value_and_input_gradient(x, weights, biases, activation, True, reference=reference)
        terms = ([(g_out * out).sum()] if g_out is not None else []) + (
            [(g_grad * grad).sum()] if g_grad is not None else []
        )
        params = torch.autograd.grad(sum(terms), [*weights, *biases], allow_unused=True)
        grads = [torch.zeros_like(w) if p is None else p for p, w in zip(params, [*weights, *biases])]
        ran = {k: calls[k] - before[k] for k in calls}
        assert ran == ({"mlp_forward": 0, "mlp_backward": 0} if reference else {"mlp_forward": 1, "mlp_backward": 1})
        results.append((out.detach(), grad.detach(), grads))
    return results


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize(
    "K,n,sizes,per_member",
    [
        (5, 37, [13, 12, 10, 1], False),
        (1, 8, [7, 9, 1], False),
        (3, 300, [72, 32, 32, 1], False),
        (2, 11, [5, 9, 8, 7, 1], True),
    ],
)
def test_core_matches_the_pytorch_reference_in_float64(activation, K, n, sizes, per_member, core_calls):
    weights, biases = _network(K, sizes, torch.float64)
    gen = torch.Generator().manual_seed(1)
    x = 1.5 * torch.randn((K, n, sizes[0]) if per_member else (n, sizes[0]), generator=gen, dtype=torch.float64)
    g_out = torch.randn(K, n, generator=gen, dtype=torch.float64)
    g_grad = torch.randn(K, n, sizes[0], generator=gen, dtype=torch.float64)
    for go, gg in ((g_out, g_grad), (g_out, None), (None, g_grad)):  # a loss on both outputs or on one
        (o1, d1, p1), (o2, d2, p2) = _both(core_calls, x, weights, biases, activation, go, gg)
        assert d2.abs().max() > 1e-2  # not vacuous
        torch.testing.assert_close(o1, o2, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(d1, d2, rtol=1e-12, atol=1e-13)
        for a, b in zip(p1, p2):
            torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12 * max(1.0, float(b.abs().max())))


def test_core_matches_the_pytorch_reference_in_float32_on_training_shapes(core_calls):
    """The defaults' networks (72 → 32 → 32 → 1, K = 5, SiLU) on a batch of 254 atoms, float32."""
    weights, biases = _network(5, [72, 32, 32, 1], torch.float32)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(254, 72, generator=gen)
    g_out, g_grad = torch.randn(5, 254, generator=gen), torch.randn(5, 254, 72, generator=gen)
    (o1, d1, p1), (o2, d2, p2) = _both(core_calls, x, weights, biases, "silu", g_out, g_grad)
    torch.testing.assert_close(o1, o2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(d1, d2, rtol=1e-5, atol=1e-5)
    for a, b in zip(p1, p2):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))


def test_inference_without_graph_runs_on_the_core_and_equals_the_reference(core_calls):
    weights, biases = _network(4, [9, 6, 1], torch.float64)
    x = torch.randn(21, 9, dtype=torch.float64)
    out, grad = value_and_input_gradient(x, weights, biases, "tanh", False)
    assert core_calls == {"mlp_forward": 1, "mlp_backward": 0}
    ref_out, ref_grad = value_and_input_gradient(x, weights, biases, "tanh", False, reference=True)
    assert core_calls == {"mlp_forward": 1, "mlp_backward": 0}
    assert out.grad_fn is None and grad.grad_fn is None
    torch.testing.assert_close(out, ref_out, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-13, atol=1e-13)


def _arrays(sizes, K=2, dtype=np.float64):
    w = [np.ones((K, a, b), dtype) for a, b in zip(sizes[:-1], sizes[1:])]
    b = [np.zeros((K, 1, c), dtype) for c in sizes[1:]]
    return w, b


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: _core.mlp_forward(np.ones((3, 4)), *_arrays([4, 5, 1]), "relu"), "unknown activation relu"),
        (lambda: _core.mlp_forward(np.ones((3, 5)), *_arrays([4, 5, 1]), "silu"), r"x must have shape \(n, 4\)"),
        (lambda: _core.mlp_forward(np.ones((3, 4)), *_arrays([4, 1]), "silu"), "length >= 2"),
        (lambda: _core.mlp_forward(np.ones((3, 4)), *_arrays([4, 5, 2]), "silu"), "one output, not 2"),
        (
            lambda: _core.mlp_forward(
                np.ones((3, 4)),
                [np.ones((2, 4, 5)), np.ones((2, 6, 1))],
                [np.ones((2, 1, 5)), np.ones((2, 1, 1))],
                "silu",
            ),
            r"weights\[1\] does not follow",
        ),
        (
            lambda: _core.mlp_forward(
                np.ones((3, 4)),
                [np.ones((2, 4, 5)), np.ones((2, 5, 1))],
                [np.ones((2, 1, 4)), np.ones((2, 1, 1))],
                "silu",
            ),
            r"biases\[0\] must hold K x 5",
        ),
        (lambda: _core.mlp_forward(np.ones((3, 4), np.float16), *_arrays([4, 5, 1]), "silu"), "float32 or float64"),
        (
            lambda: _core.mlp_backward(np.ones((3, 4)), *_arrays([4, 5, 1]), "silu", np.ones((2, 4))),
            r"g_out must have shape \(2, 3\)",
        ),
    ],
)
def test_bad_input_is_refused_with_a_reason(call, match):
    with pytest.raises(ValueError, match=match):
        call()
