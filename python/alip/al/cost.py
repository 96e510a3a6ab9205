"""Cost-aware acquisition: rank candidates by score per unit of estimated label cost.

Labels of different structures do not cost the same: plane-wave DFT scales roughly as
n_atoms³, a classical oracle linearly.  With ``[acquisition] cost`` other than
``"none"``, the loop ranks candidates (pool structures or explored frames alike) by
``score / cost`` instead of ``score`` — expected model change (or the QBC spread) per
unit of oracle cost, the seed work's "estimate of model improvement per oracle cost" —
and then applies the usual diversity step among the top of that ranking.

``"atoms3"``    cost = n_atoms³ (plane-wave DFT);
``"measured"``  cost = a · n_atoms^p, the power law fitted by least squares in log–log
                to the oracle's recorded seconds per label (``wall_time`` in the label
                store) of the labels paid so far.  With fewer than two distinct sizes
                among them the exponent cannot be fitted and p = 3 is used (the
                prefactor still comes from the times); a fitted p below 0 is clipped to
                0 (noise on a cheap oracle: a larger cell never costs less).

The ranking depends only on cost ratios, so the unit (n³, seconds) does not matter.
Scores must be >= 0 (QBC spreads and EMC norms are); the random strategy has no
score to weigh and ignores the cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from alip.config import COSTS

__all__ = ["COSTS", "CostModel", "fit_power_law", "cost_model", "cost_aware_scores", "DEFAULT_EXPONENT"]

#: exponent used when the labels paid so far cannot fit one (plane-wave DFT's n³)
DEFAULT_EXPONENT = 3.0


@dataclass(frozen=True)
class CostModel:
    """cost(n) = ``prefactor`` · n^``exponent`` (seconds for ``"measured"``, n³ for ``"atoms3"``).

    ``kind`` the configured cost, ``n_labels`` the timed labels it was fitted on, ``fitted``
    whether the exponent came from the data (else :data:`DEFAULT_EXPONENT` or 3 by definition).
    """

    kind: str
    prefactor: float = 1.0
    exponent: float = 3.0
    n_labels: int = 0
    fitted: bool = False

    def cost(self, n_atoms: Sequence[int] | np.ndarray) -> np.ndarray:
        """Estimated cost of labeling structures of ``n_atoms`` atoms (each >= 1)."""
        n = np.asarray(n_atoms, dtype=float)
        if n.ndim != 1 or (n < 1).any() or not np.isfinite(n).all():
            raise ValueError(f"n_atoms must be a 1-d array of atom counts >= 1, got {n_atoms!r}")
        if self.kind == "none":
            return np.ones_like(n)
        return self.prefactor * n**self.exponent

    def as_dict(self) -> dict:
        """Plain dict for the iteration record."""
        return asdict(self)


def fit_power_law(n_atoms: Sequence[int] | np.ndarray, seconds: Sequence[float] | np.ndarray) -> CostModel:
    """The ``"measured"`` model: log t = log a + p log n by least squares over the labels
    paid (module docstring for the fallbacks).  ValueError without any timed label, or for
    atom counts < 1 and times that are not finite and > 0."""
    n = np.asarray(n_atoms, dtype=float)
    t = np.asarray(seconds, dtype=float)
    if n.shape != t.shape or n.ndim != 1:
        raise ValueError(f"n_atoms and seconds must be 1-d arrays of one length, got {n.shape} and {t.shape}")
    if len(n) == 0:
        raise ValueError("cost = 'measured' needs the time of at least one label paid (none recorded yet)")
    if (n < 1).any() or not np.isfinite(n).all():
        raise ValueError("n_atoms must be atom counts >= 1")
    if not (np.isfinite(t).all() and (t > 0).all()):
        raise ValueError("label times must be finite and > 0 s")
    x, y = np.log(n), np.log(t)
    if len(np.unique(n)) < 2:
        p, fitted = DEFAULT_EXPONENT, False
    else:
        p, _ = np.polyfit(x, y, 1)
        p, fitted = max(float(p), 0.0), True
    log_a = float(np.mean(y - p * x))
    return CostModel("measured", math.exp(log_a), float(p), int(len(n)), fitted)


def cost_model(kind: str, n_atoms: Sequence[int] | None = None, seconds: Sequence[float] | None = None) -> CostModel:
    """The model of ``kind`` (one of :data:`COSTS`); ``"measured"`` needs the paid labels'
    ``n_atoms`` and ``seconds`` (see :meth:`alip.data.store.LabelStore.label_times`)."""
    if kind not in COSTS:
        raise ValueError(f"cost must be one of {list(COSTS)}, got {kind!r}")
    if kind == "none":
        return CostModel("none", 1.0, 0.0)
    if kind == "atoms3":
        return CostModel("atoms3", 1.0, 3.0)
    if n_atoms is None or seconds is None:
        raise ValueError("cost = 'measured' needs the atom counts and seconds of the labels paid so far")
    return fit_power_law(n_atoms, seconds)


def cost_aware_scores(scores: Sequence[float] | np.ndarray, costs: Sequence[float] | np.ndarray) -> np.ndarray:
    """score / cost per candidate (what is ranked); ValueError for negative or non-finite
    scores and for costs that are not finite and > 0."""
    s = np.asarray(scores, dtype=float)
    c = np.asarray(costs, dtype=float)
    if s.shape != c.shape or s.ndim != 1:
        raise ValueError(f"scores and costs must be 1-d arrays of one length, got {s.shape} and {c.shape}")
    if not (np.isfinite(s).all() and (s >= 0).all()):
        raise ValueError("cost-aware ranking needs finite scores >= 0")
    if not (np.isfinite(c).all() and (c > 0).all()):
        raise ValueError("label costs must be finite and > 0")
    return s / c
