"""The report's figures: one function per plot, each taking loaded data and an output path.

Functions never read run directories (that is :mod:`alip.reports.report`'s job); they take
plain arrays and the small dataclasses below, write one PNG with the Agg backend and
return its path.  Colors are fixed per structure family and per strategy so that
every figure of a report reads the same way.
"""

from __future__ import annotations

import math
import os
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter
from scipy.stats import spearmanr

FAMILY_COLORS: dict[str, str] = {
    "volume": "#1f77b4",
    "small_distortion": "#2ca02c",
    "large_distortion": "#ff7f0e",
    "random": "#d62728",
}
FAMILY_NAMES: dict[str, str] = {
    "volume": "volume series",
    "small_distortion": "small distortions",
    "large_distortion": "large distortions",
    "random": "random",
}
STRATEGY_COLORS: dict[str, str] = {"qbc": "#1f77b4", "emc": "#9467bd", "random": "#555555"}
_EXTRA_COLORS = ["#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
DPI = 110


# ----------------------------------------------------------------------------- data containers
@dataclass
class EVSeries:
    """One E–V curve: volumes (Å³/atom), energies (eV/atom), optional committee spread and fit."""

    label: str
    volumes: np.ndarray
    energies: np.ndarray
    spread: np.ndarray | None = None  # committee std (eV/atom) at each volume
    fit: dict[str, float] | None = None  # fit_eos output: v0, e0, B0, a0


@dataclass
class TestSetPrediction:
    """Committee predictions on the labeled test set of one run.

    Per structure (S): ``families``, ``e_true``/``e_pred`` (eV/atom), ``e_std``
    (committee std per atom, eV/atom).  Per atom (N): ``atom_families``,
    ``f_true``/``f_pred`` (N, 3) eV/Å, ``f_dev`` (ε_F,i, eV/Å).
    """

    label: str
    families: np.ndarray
    e_true: np.ndarray
    e_pred: np.ndarray
    e_std: np.ndarray
    atom_families: np.ndarray
    f_true: np.ndarray
    f_pred: np.ndarray
    f_dev: np.ndarray = field(default_factory=lambda: np.zeros(0))


# ----------------------------------------------------------------------------- helpers
#: colors of families alip does not name (a data set's own groups, the MD test set's), in the
#: order they are first drawn in a process: distinct up to eight of them, then repeated
_OTHER_FAMILY_COLORS = ["#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#aec7e8", "#ffbb78"]
_other_families: dict[str, str] = {}


def family_color(name: str) -> str:
    """Fixed color of one of alip's structure families; other names get the next unused color."""
    if name in FAMILY_COLORS:
        return FAMILY_COLORS[name]
    return _other_families.setdefault(name, _OTHER_FAMILY_COLORS[len(_other_families) % len(_OTHER_FAMILY_COLORS)])


def family_name(name: str) -> str:
    return FAMILY_NAMES.get(name, name)


def strategy_colors(names: Sequence[str]) -> dict[str, str]:
    """A color per strategy: fixed for qbc/emc/random, then a cycle."""
    out, extra = {}, iter(_EXTRA_COLORS * 4)
    for n in names:
        out[n] = STRATEGY_COLORS.get(n.lower()) or next(extra)
    return out


def strategy_rank(name: str) -> tuple[int, str]:
    """Sort key: qbc, emc, random first (in that order), then any other name alphabetically."""
    order = list(STRATEGY_COLORS)
    return (order.index(name), "") if name in order else (len(order), name)


def _ordered_families(names: Sequence[str]) -> list[str]:
    present = list(dict.fromkeys(str(n) for n in names))
    known = [f for f in FAMILY_COLORS if f in present]
    return known + sorted(f for f in present if f not in FAMILY_COLORS)


def _save(fig: Figure, path: str | os.PathLike, tight: bool = True) -> str:
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight" if tight else None, facecolor="white")
    plt.close(fig)
    return path


def short_feature_label(label: str) -> str:
    """'G4[Si-Si](eta=0.01,zeta=2,lambda=-1)' -> 'G4 η=0.01 ζ=2 λ=−1' (species kept if not all Si)."""
    m = re.match(r"(G\d)\[([^\]]*)\]\((.*)\)$", label)
    if not m:
        return label
    kind, species, params = m.groups()
    names = {"eta": "η", "rs": "rₛ", "zeta": "ζ", "lambda": "λ"}
    parts = []
    for item in params.split(","):
        key, _, value = item.partition("=")
        if key == "rs" and float(value) == 0.0:
            continue
        value = value.lstrip("+").replace("-", "−")
        parts.append(f"{names.get(key, key)}={value}")
    elements = set(species.replace("-", " ").split())
    head = kind if elements <= {"Si"} else f"{kind}[{species}]"
    return " ".join([head, *parts])


# ----------------------------------------------------------------------------- E–V curve
def _fit_text(fit: dict[str, float] | None) -> str:
    if not fit:
        return "no EOS fit"
    return f"a₀={fit['a0']:.4f} Å, B₀={fit['B0']:.1f} GPa, E₀={fit['e0']:.4f} eV/atom"


def plot_ev_curve(
    oracle: EVSeries | None,
    models: Sequence[EVSeries],
    path: str | os.PathLike,
    title: str = "Energy–volume curve of diamond Si",
) -> str:
    """Model curves (committee mean ± spread) against the oracle; lower panel: model − oracle.

    Fitted Birch–Murnaghan parameters (a₀, B₀, E₀) of every curve are in the legend.
    """
    if oracle is None and not models:
        raise ValueError("nothing to plot: no oracle and no model curve")
    fig, (ax, ax_res) = plt.subplots(
        2, 1, figsize=(8.5, 7.2), sharex=True, gridspec_kw={"height_ratios": [3, 1.3], "hspace": 0.06}
    )
    colors = strategy_colors([m.label.split()[0] for m in models])
    if oracle is not None:
        ax.plot(
            oracle.volumes,
            oracle.energies,
            "o-",
            color="black",
            lw=1.6,
            ms=5,
            zorder=5,
            label=f"{oracle.label}: {_fit_text(oracle.fit)}",
        )
        ax_res.axhline(0.0, color="black", lw=1.2)
    for m in models:
        c = colors[m.label.split()[0]]
        ax.plot(m.volumes, m.energies, "-", color=c, lw=2, label=f"{m.label}: {_fit_text(m.fit)}")
        if m.spread is not None:
            ax.fill_between(m.volumes, m.energies - m.spread, m.energies + m.spread, color=c, alpha=0.15, lw=0)
        if oracle is not None:
            on = (oracle.volumes >= m.volumes.min()) & (oracle.volumes <= m.volumes.max())
            v = oracle.volumes[on]
            diff = 1e3 * (np.interp(v, m.volumes, m.energies) - oracle.energies[on])
            ax_res.plot(v, diff, "o-", color=c, lw=1.5, ms=3.5)
            if m.spread is not None:
                s = 1e3 * np.interp(v, m.volumes, m.spread)
                ax_res.fill_between(v, diff - s, diff + s, color=c, alpha=0.15, lw=0)
    ax.set_ylabel("energy (eV/atom)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8.5, loc="upper center", framealpha=0.92)
    # headroom so the legend does not hide the curves
    lo, hi = ax.get_ylim()
    n_items = len(models) + (oracle is not None)
    ax.set_ylim(lo, hi + (hi - lo) * 0.12 * n_items)
    ax_res.set_xlabel("volume (Å³/atom)")
    ax_res.set_ylabel("model − oracle\n(meV/atom)")
    ax_res.grid(alpha=0.3)
    if oracle is None:
        ax_res.text(0.5, 0.5, "no oracle curve", transform=ax_res.transAxes, ha="center", va="center")
    top = ax.secondary_xaxis("top", functions=(lambda v: np.cbrt(8 * np.clip(v, 1e-9, None)), lambda a: a**3 / 8))
    top.set_xlabel("cubic lattice constant a (Å)")
    if models and any(m.spread is not None for m in models):
        ax.text(
            0.99,
            0.02,
            "bands: committee mean ± 1 std",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=8,
            color="#444444",
        )
    return _save(fig, path)


# ----------------------------------------------------------------------------- learning curves
CURVE_METRICS: dict[str, str] = {
    "energy_rmse_mev_per_atom": "test energy RMSE (meV/atom)",
    "force_rmse_ev_per_ang": "test force RMSE (eV/Å)",
    "ev_rmse_mev_per_atom": "E–V curve RMSE (meV/atom)",
}


def aggregate_learning_curves(rows: Sequence[Mapping[str, object]], metric: str) -> dict[str, dict[str, np.ndarray]]:
    """Per strategy and iteration: mean n_labels, mean/std (ddof=1)/min/max of ``metric`` over seeds.

    ``rows`` are learning-curve records with ``strategy``, ``seed``, ``iteration``,
    ``n_labels`` and the metric; non-finite values are skipped.  Returns
    ``{strategy: {"iteration", "n_labels", "mean", "std", "min", "max", "n_seeds"}}``.
    """
    groups: dict[str, dict[int, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        value = float(r.get(metric, math.nan))  # type: ignore[arg-type]
        if not math.isfinite(value):
            continue
        groups[str(r["strategy"])][int(r["iteration"])].append((float(r["n_labels"]), value))  # type: ignore[arg-type]
    out = {}
    for strategy, by_iter in groups.items():
        its = sorted(by_iter)
        vals = [np.array([v for _, v in by_iter[i]]) for i in its]
        out[strategy] = {
            "iteration": np.array(its),
            "n_labels": np.array([np.mean([n for n, _ in by_iter[i]]) for i in its]),
            "mean": np.array([v.mean() for v in vals]),
            "std": np.array([v.std(ddof=1) if len(v) > 1 else 0.0 for v in vals]),
            "min": np.array([v.min() for v in vals]),
            "max": np.array([v.max() for v in vals]),
            "n_seeds": np.array([len(v) for v in vals]),
        }
    return out


def plot_learning_curves(
    rows: Sequence[Mapping[str, object]], path: str | os.PathLike, metrics: Sequence[str] | None = None
) -> str:
    """Test errors versus number of labels, one line per strategy (mean ± 1 sample std over seeds)."""
    metrics = [m for m in (metrics or CURVE_METRICS) if aggregate_learning_curves(rows, m)]
    if not metrics:
        raise ValueError("no finite learning-curve values to plot")
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.3), squeeze=False)
    strategies = list(dict.fromkeys(str(r["strategy"]) for r in rows))
    colors = strategy_colors(strategies)
    max_seeds = 1
    for ax, metric in zip(axes[0], metrics):
        agg = aggregate_learning_curves(rows, metric)
        n_all = np.concatenate([a["n_labels"] for a in agg.values()])
        for s in strategies:
            if s not in agg:
                continue
            a = agg[s]
            ns = int(a["n_seeds"].max())
            max_seeds = max(max_seeds, ns)
            label = f"{s} ({ns} seed{'s' if ns > 1 else ''})"
            ax.plot(a["n_labels"], a["mean"], "o-", color=colors[s], lw=2, ms=4, label=label)
            if ns > 1:
                lo = np.maximum(a["mean"] - a["std"], a["min"])
                ax.fill_between(a["n_labels"], lo, a["mean"] + a["std"], color=colors[s], alpha=0.18, lw=0)
        if all((a["mean"] > 0).all() for a in agg.values()):
            ax.set_yscale("log")
            lo = min(np.maximum(a["mean"] - a["std"], a["min"]).min() for a in agg.values())
            _plain_log_ticks(ax.yaxis, [lo, max((a["mean"] + a["std"]).max() for a in agg.values())])
        if n_all.min() > 0 and n_all.max() / n_all.min() >= 4:
            ax.set_xscale("log")
            _plain_log_ticks(ax.xaxis, n_all, fixed=True)
        ax.set_xlabel("number of labels")
        ax.set_ylabel(CURVE_METRICS.get(metric, metric))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=9)
    spread = "mean ± 1 sample std over seeds" if max_seeds > 1 else "single seed"
    fig.suptitle(f"Learning curves ({spread})", y=1.02)
    fig.tight_layout()
    return _save(fig, path)


def _plain_log_ticks(axis: matplotlib.axis.Axis, values: Sequence[float], fixed: bool = False) -> None:
    """Log-axis ticks labelled as plain numbers (20, 0.5) instead of 2×10¹.

    With ``fixed``, ticks sit at the data's own values when there are at most 10 integers
    (label counts); else at 1, 2, 5 × 10^k (more steps when the data span less than
    about a decade).
    """
    values = np.unique(np.asarray(values, dtype=float))
    values = values[np.isfinite(values) & (values > 0)]
    if fixed and 1 < len(values) <= 10 and np.allclose(values, np.round(values)):
        axis.set_major_locator(FixedLocator(values))
    else:
        narrow = len(values) and values.max() / values.min() < 15
        subs = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0) if narrow else (1.0, 2.0, 5.0)
        axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


# ----------------------------------------------------------------------------- parity
def _rmse(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(a)))) if len(a) else math.nan


def plot_parity(predictions: Sequence[TestSetPrediction], path: str | os.PathLike, grouped_by: str = "family") -> str:
    """Predicted vs oracle energies (per atom) and force components on the test set, by family
    (``grouped_by`` names what the prediction's ``families`` are in the legend)."""
    if not predictions:
        raise ValueError("no predictions to plot")
    n = len(predictions)
    fig, axes = plt.subplots(n, 2, figsize=(11, 5.0 * n), squeeze=False)
    for row, p in zip(axes, predictions):
        ax_e, ax_f = row
        fams = _ordered_families(list(p.families) + list(p.atom_families))
        for fam in fams:
            m = p.families == fam
            if m.any():
                err = 1e3 * _rmse(p.e_pred[m] - p.e_true[m])
                ax_e.scatter(
                    p.e_true[m],
                    p.e_pred[m],
                    s=22,
                    alpha=0.8,
                    color=family_color(fam),
                    edgecolor="none",
                    label=f"{family_name(fam)} ({err:.1f} meV/atom)",
                )
            ma = p.atom_families == fam
            if ma.any():
                ft, fp = p.f_true[ma].ravel(), p.f_pred[ma].ravel()
                ax_f.scatter(
                    ft,
                    fp,
                    s=6,
                    alpha=0.45,
                    color=family_color(fam),
                    edgecolor="none",
                    label=f"{family_name(fam)} ({_rmse(fp - ft):.3f} eV/Å)",
                    rasterized=True,
                )
        e_all = 1e3 * _rmse(p.e_pred - p.e_true)
        f_all = _rmse((p.f_pred - p.f_true).ravel())
        for ax, title, unit in (
            (ax_e, f"energy, RMSE {e_all:.1f} meV/atom", "eV/atom"),
            (ax_f, f"force components, RMSE {f_all:.3f} eV/Å", "eV/Å"),
        ):
            lo, hi = _common_limits(ax)
            ax.plot([lo, hi], [lo, hi], "k--", lw=1, zorder=0)
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            ax.set_aspect("equal")
            ax.set_xlabel(f"oracle ({unit})")
            ax.set_ylabel(f"model, committee mean ({unit})")
            ax.set_title(f"{p.label}: {title}", fontsize=10.5)
            ax.grid(alpha=0.3)
            leg = ax.legend(
                fontsize=8,
                loc="upper left",
                title=f"{grouped_by} (RMSE)",
                title_fontsize=8,
                markerscale=2 if ax is ax_f else 1,
            )
            for h in leg.legend_handles:
                h.set_alpha(1)
        _zoom_inset(ax_e, p, fams)
    fig.tight_layout()
    return _save(fig, path)


def _zoom_inset(ax: plt.Axes, p: TestSetPrediction, fams: list[str]) -> None:
    """An inset on the low-energy half of the structures when outliers squeeze them into a corner."""
    if len(p.e_true) < 6:
        return
    lo = float(min(p.e_true.min(), p.e_pred.min()))
    hi = float(np.quantile(p.e_true, 0.5))
    full = float(max(p.e_true.max(), p.e_pred.max())) - lo
    if not full > 8 * (hi - lo) > 0:
        return
    pad = 0.15 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    inset = ax.inset_axes([0.56, 0.07, 0.41, 0.41])
    for fam in fams:
        m = (p.families == fam) & (p.e_true <= hi)
        inset.scatter(p.e_true[m], p.e_pred[m], s=14, alpha=0.8, color=family_color(fam), edgecolor="none")
    inset.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    inset.set_xlim(lo, hi)
    inset.set_ylim(lo, hi)
    inset.tick_params(labelsize=7)
    inset.set_title("zoom: lower half by energy", fontsize=7.5)
    inset.grid(alpha=0.3)


def _common_limits(ax: plt.Axes) -> tuple[float, float]:
    xs, ys = [], []
    for coll in ax.collections:
        off = coll.get_offsets()
        if len(off):
            xs.append(np.asarray(off)[:, 0])
            ys.append(np.asarray(off)[:, 1])
    if not xs:
        return 0.0, 1.0
    v = np.concatenate(xs + ys)
    lo, hi = float(np.min(v)), float(np.max(v))
    pad = 0.04 * (hi - lo or 1.0)
    return lo - pad, hi + pad


# ----------------------------------------------------------------------------- uncertainty vs error
def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (NaN for fewer than 3 points or constant input)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(spearmanr(x, y).statistic)


def binned_error(spread: np.ndarray, error: np.ndarray, n_bins: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Median spread and RMS error in quantile bins of the spread (the calibration curve)."""
    order = np.argsort(spread)
    bins = [b for b in np.array_split(order, min(n_bins, max(len(order) // 3, 1))) if len(b)]
    return (np.array([np.median(spread[b]) for b in bins]), np.array([np.sqrt(np.mean(error[b] ** 2)) for b in bins]))


def plot_uncertainty_vs_error(predictions: Sequence[TestSetPrediction], path: str | os.PathLike) -> str:
    """Committee spread against true error on the test set (log–log), by family.

    Left: energy std per atom vs |ΔE|/atom per structure; right: per-atom force deviation
    ε_F,i vs |ΔF_i|.  Dashed: error = spread; black: RMS error in bins of the spread.
    """
    if not predictions:
        raise ValueError("no predictions to plot")
    n = len(predictions)
    fig, axes = plt.subplots(n, 2, figsize=(11, 4.8 * n), squeeze=False)
    for row, p in zip(axes, predictions):
        e_spread = 1e3 * np.asarray(p.e_std)
        e_err = 1e3 * np.abs(p.e_pred - p.e_true)
        f_err = np.linalg.norm(p.f_pred - p.f_true, axis=1)
        panels = (
            (row[0], e_spread, e_err, p.families, "energy", "meV/atom", 22),
            (row[1], np.asarray(p.f_dev), f_err, p.atom_families, "forces", "eV/Å", 6),
        )
        for ax, spread, err, fams, what, unit, size in panels:
            if len(spread) != len(err):
                ax.text(0.5, 0.5, "no committee spread stored", transform=ax.transAxes, ha="center")
                continue
            # atoms of ideal crystals: zero force by symmetry, error and spread are rounding noise
            noise = (spread < 1e-6) & (err < 1e-6)
            spread, err, fams = spread[~noise], err[~noise], np.asarray(fams)[~noise]
            if not len(spread):
                ax.text(0.5, 0.5, "all errors and spreads are zero", transform=ax.transAxes, ha="center")
                continue
            floor = _log_floor(np.concatenate([spread, err]))
            s_plot, e_plot = np.maximum(spread, floor), np.maximum(err, floor)
            for fam in _ordered_families(fams):
                m = fams == fam
                ax.scatter(
                    s_plot[m],
                    e_plot[m],
                    s=size,
                    alpha=0.6 if size > 10 else 0.35,
                    color=family_color(fam),
                    edgecolor="none",
                    label=family_name(fam),
                    rasterized=size < 10,
                )
            bx, by = binned_error(s_plot, e_plot)
            ax.plot(bx, np.maximum(by, floor), "k-o", lw=1.8, ms=4, label="RMS error in spread bins")
            lo = floor
            hi = max(float(s_plot.max()), float(e_plot.max())) * 1.5
            ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="error = spread")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            _plain_log_ticks(ax.xaxis, [lo, hi])
            _plain_log_ticks(ax.yaxis, [lo, hi])
            rho = spearman(spread, err)
            kind = "zero-force atoms" if what == "forces" else "structures at zero error"
            omitted = f" ({int(noise.sum())} {kind} omitted)" if noise.any() else ""
            ax.set_title(f"{p.label}: {what}, Spearman ρ = {rho:.2f}{omitted}", fontsize=10)
            unit_label = "ε_F,i" if what == "forces" else "std per atom"
            ax.set_xlabel(f"committee spread, {unit_label} ({unit})")
            ax.set_ylabel(f"true error |Δ| ({unit})")
            ax.grid(alpha=0.3)
            leg = ax.legend(fontsize=8, loc="upper left")
            for h in leg.legend_handles:
                h.set_alpha(1)
                if hasattr(h, "set_sizes"):
                    h.set_sizes([25])
    fig.tight_layout()
    return _save(fig, path)


def _log_floor(values: np.ndarray) -> float:
    """Lower limit of a log axis: the 1st percentile / 2, but no more than 4 decades below the max.

    Ideal crystals have zero forces; their errors and spreads are rounding noise
    (1e-8 eV/Å) and would otherwise stretch the axis over ten decades.
    """
    pos = values[np.isfinite(values) & (values > 0)]
    if not len(pos):
        return 1e-6
    return float(max(np.percentile(pos, 1) / 2, pos.max() * 1e-4))


# ----------------------------------------------------------------------------- selection over time
def plot_selection_over_time(
    selections: Mapping[str, Mapping[int, Mapping[str, float]]],
    path: str | os.PathLike,
    n_runs: Mapping[str, int] | None = None,
    pool_fractions: Mapping[str, float] | None = None,
) -> str:
    """Stacked bars of the families each iteration selected, one panel per strategy.

    ``selections[strategy][iteration][family]`` is the (mean over seeds) number of
    structures picked; ``n_runs[strategy]`` is the number of seeds averaged.
    """
    strategies = [s for s in selections if selections[s]]
    if not strategies:
        raise ValueError("no selections to plot")
    fams = _ordered_families([f for s in strategies for it in selections[s].values() for f in it])
    if pool_fractions:
        fams = _ordered_families(fams + list(pool_fractions))
    n = len(strategies)
    fig, axes = plt.subplots(1, n, figsize=(max(5.0, 4.6 * n), 4.2), squeeze=False, sharey=True)
    for ax, s in zip(axes[0], strategies):
        its = sorted(selections[s])
        bottom = np.zeros(len(its))
        for fam in fams:
            h = np.array([float(selections[s][i].get(fam, 0.0)) for i in its])
            ax.bar(its, h, bottom=bottom, color=family_color(fam), label=family_name(fam), edgecolor="white", lw=0.5)
            bottom += h
        k = (n_runs or {}).get(s, 1)
        ax.set_title(f"{s}" + (f" (mean of {k} seeds)" if k > 1 else ""))
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3, axis="y")
        if len(its) <= 20:
            ax.set_xticks(its)
    axes[0][0].set_ylabel("structures selected")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if pool_fractions:
        labels = [f"{lab} ({100 * pool_fractions.get(f, 0):.0f}% of pool)" for lab, f in zip(labels, fams)]
    fig.legend(
        handles, labels, loc="upper center", ncol=len(fams), bbox_to_anchor=(0.5, 1.0), fontsize=9, frameon=False
    )
    fig.suptitle("Which families the loop selected", y=1.08)
    fig.tight_layout()
    return _save(fig, path)


# ----------------------------------------------------------------------------- exploration
TRUST_COLORS: dict[str, str] = {"accurate": "#2ca02c", "candidate": "#1f77b4", "failed": "#d62728"}


def plot_explore_trust(trust: Mapping[str, Sequence[Mapping[str, float]]], path: str | os.PathLike) -> str:
    """DP-GEN trust statistics per iteration, one panel per run: stacked fractions of the
    explored frames that were accurate (ε < trust_lo), candidates and failed (ε > trust_hi or
    stopping a trajectory), with trust_lo and trust_hi (eV/Å) on the right axis.

    ``trust[run][k]``: the ``explore.trust`` record of one iteration (with ``iteration``).
    """
    runs = [r for r in trust if trust[r]]
    if not runs:
        raise ValueError("no exploration statistics to plot")
    fig, axes = plt.subplots(1, len(runs), figsize=(max(5.5, 5.0 * len(runs)), 4.2), squeeze=False)
    for ax, name in zip(axes[0], runs):
        recs = sorted(trust[name], key=lambda r: r["iteration"])
        its = np.array([r["iteration"] for r in recs])
        bottom = np.zeros(len(recs))
        for cls, color in TRUST_COLORS.items():
            h = np.array([float(r.get(f"{cls}_fraction") or 0.0) for r in recs])
            ax.bar(its, h, bottom=bottom, color=color, label=cls, edgecolor="white", lw=0.5)
            bottom += h
        ax.set_ylim(0, 1.0)
        ax.set_xlabel("iteration")
        ax.set_title(name)
        if len(its) <= 20:
            ax.set_xticks(its)
        right = ax.twinx()
        right.plot(its, [r["trust_lo"] for r in recs], "k--", marker="o", ms=3, lw=1, label="trust_lo")
        right.plot(its, [r["trust_hi"] for r in recs], "k:", marker="s", ms=3, lw=1, label="trust_hi")
        right.set_ylabel("trust level (eV/Å)")
        right.set_ylim(0, 1.15 * max(r["trust_hi"] for r in recs))
    axes[0][0].set_ylabel("fraction of explored frames")
    handles, labels = axes[0][0].get_legend_handles_labels()
    h2, l2 = right.get_legend_handles_labels()
    fig.legend(handles + h2, labels + l2, loc="upper center", ncol=5, bbox_to_anchor=(0.5, 1.02), frameon=False)
    fig.suptitle("Exploration: trust-window statistics per iteration (DP-GEN)", y=1.09)
    fig.tight_layout()
    return _save(fig, path)


def origin_label(ensemble: str, temperature: float | None, pressure: float | None) -> str:
    """Short name of an explored frame's origin: "nvt 900 K", "npt 300 K 2 GPa", "relax 0 GPa"."""
    t = f"{float(temperature):g} K" if temperature is not None else "? K"
    p = f"{float(pressure):g} GPa" if pressure is not None else "? GPa"
    if ensemble == "relax":
        return f"relax {p}"
    if ensemble == "npt":
        return f"npt {t} {p}"
    return f"{ensemble} {t}"


def plot_explore_origins(origins: Mapping[str, Mapping[int, Mapping[str, float]]], path: str | os.PathLike) -> str:
    """Where the labeled explored frames came from: stacked bars per selecting iteration of
    the frames of each origin (ensemble, temperature, pressure), one panel per run;
    colors by temperature (dark = cold, bright = hot), hatching by ensemble."""
    runs = [r for r in origins if any(origins[r].values())]
    if not runs:
        raise ValueError("no explored frames were selected")
    labels = sorted(
        {lab for r in runs for it in origins[r].values() for lab in it},
        key=lambda lab: (_origin_temperature(lab), lab),
    )
    temps = sorted({_origin_temperature(lab) for lab in labels})
    cmap = matplotlib.colormaps["plasma"]
    hatches = {"nvt": "", "npt": "//", "relax": "..", "nvt_biased": "xx"}
    fig, axes = plt.subplots(1, len(runs), figsize=(max(5.5, 4.8 * len(runs)), 4.2), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], runs):
        its = sorted(origins[name])
        bottom = np.zeros(len(its))
        for lab in labels:
            h = np.array([float(origins[name][i].get(lab, 0.0)) for i in its])
            t = _origin_temperature(lab)
            color = cmap(0.05 + 0.8 * temps.index(t) / max(len(temps) - 1, 1)) if math.isfinite(t) else "#7f7f7f"
            ax.bar(
                its,
                h,
                bottom=bottom,
                color=color,
                hatch=hatches.get(lab.split()[0], "++"),
                edgecolor="white",
                lw=0.5,
                label=lab,
            )
            bottom += h
        ax.set_title(name)
        ax.set_xlabel("selecting iteration")
        ax.grid(alpha=0.3, axis="y")
        if len(its) <= 20:
            ax.set_xticks(its)
    axes[0][0].set_ylabel("explored frames selected")
    handles, labs = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labs, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9, frameon=False)
    fig.suptitle("Where the labeled explored frames came from", y=1.02)
    fig.tight_layout()
    return _save(fig, path)


def _origin_temperature(label: str) -> float:
    m = re.search(r"([-0-9.e+]+) K", label)
    return float(m.group(1)) if m else (0.0 if label.startswith("relax") else math.inf)


# ----------------------------------------------------------------------------- descriptor violins
def kde_1d(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density of ``values`` on ``grid`` (Scott's bandwidth), normalised to unit area."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    h = float(np.std(values)) * n**-0.2
    if n == 0 or not h > 0:
        raise ValueError("need at least one value with non-zero spread")
    z = (grid[:, None] - values[None, :]) / h
    return np.exp(-0.5 * z * z).sum(axis=1) / (n * h * math.sqrt(2 * math.pi))


def _violin(ax: plt.Axes, x: float, values: np.ndarray, color: str, width: float = 0.8) -> None:
    """One violin (Gaussian KDE) with a median tick; constant data is drawn as a bar."""
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return
    lo, hi = float(values.min()), float(values.max())
    med = float(np.median(values))
    if len(values) < 3 or hi - lo <= 1e-9 * (1 + abs(hi)):
        ax.plot([x - width / 2, x + width / 2], [med, med], color=color, lw=2.5)
        return
    y = np.linspace(lo, hi, 80)
    d = kde_1d(values, y)
    d = d / d.max() * width / 2
    ax.fill_betweenx(y, x - d, x + d, facecolor=color, alpha=0.75, lw=0.6, edgecolor="black")
    ax.plot([x - width / 4, x + width / 4], [med, med], color="black", lw=1.2)


def plot_descriptor_violins(
    groups: Mapping[str, np.ndarray],
    feature_labels: Sequence[str],
    path: str | os.PathLike,
    title: str,
    colors: Mapping[str, str] | None = None,
    ncols: int = 6,
    max_samples: int = 4000,
    seed: int = 0,
) -> str:
    """Distribution of every descriptor (one panel each), one violin per group.

    ``groups`` maps a group name (a family, an iteration) to per-atom descriptor values
    (n_atoms, F); empty groups keep their slot.  Each group is subsampled to
    ``max_samples`` atoms for the density estimate.
    """
    names = list(groups)
    F = len(feature_labels)
    if not names or F == 0:
        raise ValueError("no groups or no descriptors to plot")
    for k, v in groups.items():
        if np.asarray(v).ndim != 2 or (len(v) and np.asarray(v).shape[1] != F):
            raise ValueError(f"group {k!r} must be (n_atoms, {F}), got {np.shape(v)}")
    colors = dict(colors or {})
    for k in names:
        colors.setdefault(k, family_color(k))
    rng = np.random.default_rng(seed)
    data = {}
    for k, v in groups.items():
        v = np.asarray(v, dtype=float)
        data[k] = v[rng.choice(len(v), max_samples, replace=False)] if len(v) > max_samples else v
    ncols = min(ncols, F)
    nrows = math.ceil(F / ncols)
    width = max(2.3, 0.32 * len(names) + 0.9)
    height = 2.05 * nrows + 1.1
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height), squeeze=False)
    fig.subplots_adjust(left=0.055, right=0.99, bottom=0.35 / height, top=1 - 1.0 / height, wspace=0.32, hspace=0.38)
    for f in range(nrows * ncols):
        ax = axes.flat[f]
        if f >= F:
            ax.axis("off")
            continue
        for x, k in enumerate(names):
            if len(data[k]):
                _violin(ax, x, data[k][:, f], colors[k])
        ax.set_title(short_feature_label(feature_labels[f]), fontsize=9)
        ax.set_xticks([])
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.25, axis="y")
        if f % ncols == 0:
            ax.set_ylabel("symmetry-function value", fontsize=8)
    fig.text(
        0.5,
        0.02 / height,
        "η in Å⁻², rₛ in Å; ζ, λ and the symmetry-function values are dimensionless",
        ha="center",
        va="bottom",
        fontsize=8.5,
        color="0.3",
    )

    handles = [Patch(color=colors[k], label=family_name(k)) for k in names]
    fig.legend(
        handles=handles,
        loc="upper center",
        ncol=min(len(names), 8),
        fontsize=9.5,
        frameon=False,
        bbox_to_anchor=(0.5, 1 - 0.38 / height),
    )
    fig.suptitle(title, fontsize=12, y=1 - 0.08 / height)
    return _save(fig, path, tight=False)
