"""The trust window on the committee's max force deviation, and its statistics.

DP-GEN's rule: a frame whose max force deviation ε = maxᵢ ε_F,i is below ``trust_lo``
is already *accurate* (labeling it teaches little); above ``trust_hi`` it has *failed*
(the model is out of its depth and the geometry is probably unphysical); in between it
is a *candidate* for labeling.  The fractions of the three classes per iteration are
the standard progress signal of an exploration: the accurate share should rise.

``trust_lo`` can adapt (``TrustPolicy.adaptive``):

``"fixed"``  the configured value;
``"rate"``   DP-GEN2's adaptive lower level: the value that leaves a fraction ``rate`` of
             the frames below ``trust_hi`` as candidates (the (1 − rate) quantile of their
             ε), never below the configured ``trust_lo``;
``"error"``  ``factor`` × the committee's own force RMSE on its labeled (validation)
             data: a frame whose spread is below the error the model already makes is
             not informative.  Never below the configured ``trust_lo``.

Either adaptive value is capped just below ``trust_hi``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from ase import Atoms

from alip.config import TRUST_ADAPTIVE
from alip.explore.trajectories import STOP_REASONS, TrajectoryResult

__all__ = [
    "TrustWindow",
    "TrustPolicy",
    "TrustStats",
    "ADAPTIVE",
    "classify",
    "trust_statistics",
    "candidates",
    "CLASSES",
]

CLASSES: tuple[str, ...] = ("accurate", "candidate", "failed")
ADAPTIVE = TRUST_ADAPTIVE


def _finite_nonneg(value: float, name: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0 eV/Å, got {value!r}")
    return value


@dataclass(frozen=True)
class TrustWindow:
    """Candidates are frames with ``lo <= ε <= hi`` (eV/Å); ``hi`` may be infinite."""

    lo: float
    hi: float

    def __post_init__(self) -> None:
        _finite_nonneg(self.lo, "trust_lo")
        if not (isinstance(self.hi, (int, float)) and self.hi > 0 and not math.isnan(self.hi)):
            raise ValueError(f"trust_hi must be > 0 eV/Å, got {self.hi!r}")
        if self.lo >= self.hi:
            raise ValueError(f"trust_lo ({self.lo:g} eV/Å) must be below trust_hi ({self.hi:g} eV/Å)")

    def classify(self, max_force_dev: Sequence[float] | np.ndarray) -> np.ndarray:
        """Class of each frame: "accurate" (ε < lo), "candidate" or "failed" (ε > hi or not finite)."""
        eps = np.asarray(max_force_dev, dtype=float)
        out = np.full(eps.shape, "failed", dtype=object)
        ok = np.isfinite(eps)
        out[ok & (eps < self.lo)] = "accurate"
        out[ok & (eps >= self.lo) & (eps <= self.hi)] = "candidate"
        return out


def classify(frames: Sequence[Atoms], window: TrustWindow) -> np.ndarray:
    """:meth:`TrustWindow.classify` of frames carrying ``info["max_force_dev"]``."""
    return window.classify([f.info["max_force_dev"] for f in frames])


@dataclass(frozen=True)
class TrustPolicy:
    """Configured trust levels and how ``trust_lo`` adapts (see the module docstring)."""

    trust_lo: float = 0.05
    trust_hi: float = 0.5
    adaptive: str = "fixed"
    rate: float = 0.1
    factor: float = 1.0

    def __post_init__(self) -> None:
        TrustWindow(self.trust_lo, self.trust_hi)  # validates the pair
        if self.adaptive not in ADAPTIVE:
            raise ValueError(f"adaptive must be one of {ADAPTIVE}, got {self.adaptive!r}")
        if not 0 < self.rate <= 1:
            raise ValueError(f"rate must be in (0, 1], got {self.rate!r}")
        if not (math.isfinite(self.factor) and self.factor > 0):
            raise ValueError(f"factor must be > 0, got {self.factor!r}")

    @classmethod
    def from_section(cls, section: Any) -> TrustPolicy:
        """The policy of an ``[explore]`` table (:class:`alip.config.ExploreSection`)."""
        return cls(section.trust_lo, section.trust_hi, section.adaptive, section.rate, section.factor)

    def window(
        self, max_force_dev: Sequence[float] | np.ndarray | None = None, force_rmse: float | None = None
    ) -> TrustWindow:
        """The window for this iteration.

        ``max_force_dev``: ε of all frames of the iteration (needed for ``"rate"``);
        ``force_rmse``: the committee's force RMSE on its labeled data (for ``"error"``).
        """
        lo = self.trust_lo
        if self.adaptive == "rate":
            if max_force_dev is None:
                raise ValueError("adaptive = 'rate' needs the frames' max force deviations")
            eps = np.asarray(max_force_dev, dtype=float)
            eps = eps[np.isfinite(eps) & (eps <= self.trust_hi)]
            if len(eps):
                lo = max(lo, float(np.quantile(eps, 1.0 - self.rate)))
        elif self.adaptive == "error":
            if force_rmse is None or not math.isfinite(force_rmse):
                raise ValueError("adaptive = 'error' needs the committee's force RMSE on its labels")
            lo = max(lo, self.factor * float(force_rmse))
        if lo >= self.trust_hi:
            lo = float(np.nextafter(self.trust_hi, 0.0))
        return TrustWindow(lo, self.trust_hi)


@dataclass
class TrustStats:
    """DP-GEN-style statistics of one iteration's exploration."""

    trust_lo: float
    trust_hi: float
    n_frames: int
    accurate: int
    candidate: int
    failed: int
    n_trajectories: int
    stop_reasons: dict = field(default_factory=dict)

    def fraction(self, cls: str) -> float:
        """Share of the frames in class ``cls`` (NaN without frames)."""
        if cls not in CLASSES:
            raise ValueError(f"class must be one of {CLASSES}, got {cls!r}")
        return getattr(self, cls) / self.n_frames if self.n_frames else math.nan

    def as_dict(self) -> dict:
        """Plain dict with the fractions added (for the iteration files)."""
        out = asdict(self)
        out.update({f"{c}_fraction": self.fraction(c) for c in CLASSES})
        return out


def trust_statistics(results: Sequence[TrajectoryResult], window: TrustWindow) -> TrustStats:
    """Count frames per class over all trajectories, and the trajectories' stop reasons.

    A frame that stopped its trajectory (beyond ``trust_hi``, exploded, non-finite) counts
    as failed whatever its ε.
    """
    counts = dict.fromkeys(CLASSES, 0)
    reasons = dict.fromkeys(STOP_REASONS, 0)
    n = 0
    for res in results:
        reasons[res.stop_reason] = reasons.get(res.stop_reason, 0) + 1
        cls = window.classify(res.max_force_deviations)
        if res.stopped_frame and len(cls):
            cls[-1] = "failed"
        for c in CLASSES:
            counts[c] += int((cls == c).sum())
        n += len(cls)
    return TrustStats(
        window.lo,
        window.hi,
        n,
        counts["accurate"],
        counts["candidate"],
        counts["failed"],
        len(results),
        {k: v for k, v in reasons.items() if v},
    )


def candidates(results: Sequence[TrajectoryResult], window: TrustWindow) -> list[Atoms]:
    """Frames inside the window, in trajectory order; a trajectory's stopping frame never is one."""
    out: list[Atoms] = []
    for res in results:
        cls = window.classify(res.max_force_deviations)
        last = len(res.frames) - 1
        out.extend(
            f
            for i, (f, c) in enumerate(zip(res.frames, cls))
            if c == "candidate" and not (res.stopped_frame and i == last)
        )
    return out
