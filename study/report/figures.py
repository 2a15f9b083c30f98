"""The report's figures: learning curves, step-size sensitivity and compute, with axes whose
ticks read well whatever their span."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from study import stats
from study.engine.kinds import NORMALISED_CURVE, PREDICTION, TaskKind
from study.present.words import words
from study.report.curves import curve_band
from study.report.load import Trial, _learners, sized, truncated
from study.report.page import _sentence
from study.stats import N_RESAMPLES


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def log_ticks(lo: float, hi: float) -> list[float]:
    """Where to label a log axis spanning [lo, hi]: numbers m x 10^k with m from the coarsest
    set of 1; 1, 3; 1, 2, 5; 1, 2, 3, 5, 7 that puts at least three labels in the span (a span
    too narrow for that gets evenly spaced round numbers), thinned to at most eight, so every
    axis is readable whatever its span."""
    if not (0 < lo < hi and math.isfinite(hi)):
        return []
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    ticks: list[float] = []
    for mantissas in ((1,), (1, 3), (1, 2, 5), (1, 2, 3, 5, 7)):
        ticks = [float(f"{m}e{k}") for k in range(k0, k1 + 1) for m in mantissas
                 if lo <= m * 10.0**k <= hi]  # fmt: skip
        if len(ticks) >= 3:
            break
    if len(ticks) < 3:  # a narrow span: evenly spaced round numbers, as on a linear axis
        from matplotlib.ticker import MaxNLocator

        values = MaxNLocator(nbins=4).tick_values(lo, hi)
        ticks = [float(f"{v:.6g}") for v in values if lo <= v <= hi and v > 0]
    while len(ticks) > 8:
        ticks = ticks[::2]
    return ticks


def _tick_label(value: float, _pos=None) -> str:
    if 1e-3 <= abs(value) < 1e5:
        return f"{value:,.6g}"
    mantissa, exponent = f"{value:.0e}".split("e")
    times = "" if mantissa == "1" else mantissa + r"\times"
    return f"${times}10^{{{int(exponent)}}}$"


def _finish_axes(ax, title: str, xlabel: str, ylabel: str, handles=None) -> None:
    """Title, labels, grid and legend (of the labelled artists and ``handles``); a log axis
    labelled at readable numbers whatever its span (``log_ticks``); an empty plot says so."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    for axis, scale, (lo, hi) in ((ax.xaxis, ax.get_xscale(), ax.get_xlim()),
                                  (ax.yaxis, ax.get_yscale(), ax.get_ylim())):  # fmt: skip
        ticks = log_ticks(min(lo, hi), max(lo, hi)) if scale == "log" else []
        if ticks:
            axis.set_major_locator(FixedLocator(ticks))
            axis.set_major_formatter(FuncFormatter(_tick_label))
            axis.set_minor_formatter(NullFormatter())
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0] or handles:
        ax.legend(handles=[*ax.get_legend_handles_labels()[0], *(handles or [])], fontsize=7)
    else:
        ax.text(0.5, 0.5, "no finished trial to show", transform=ax.transAxes, ha="center")


def _colors(learners: list[str]) -> dict[str, Any]:
    cmap = _plt().get_cmap("tab10")
    return {name: cmap(i % 10) for i, name in enumerate(learners)}


def plot_curves(store, best: dict[str, Trial], colors, path: Path,
                m: TaskKind = PREDICTION) -> dict[str, Any]:  # fmt: skip
    """Each learner's pick: its mean curve over the seeds it ran (the fresh seeds of an
    evaluation) with the 95% t-interval of the mean as a band, in normalised MSRE where the
    runs logged it per seed (a line at 1, the best constant predictor), and dotted lines where
    the pick's stages really start. Returns the curves drawn."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 5), layout="constrained")
    data, normalised, stages = {}, False, False
    for learner, t in best.items():
        steps, mean, half = curve_band(store, t, normalised=not m.higher_better)
        data[learner] = (steps, mean, half)
        if not steps.size:
            continue
        nmsre = (
            not m.higher_better
            and bool(t.seeds)
            and bool(store.history(t.run_id, f"{NORMALISED_CURVE}_seed{t.seeds[0]}"))
        )
        normalised = normalised or nmsre
        where = "fresh" if t.role == "eval" else "tuning"
        ax.plot(steps, mean, color=colors[learner], lw=1.6,
                label=f"{learner} ({len(t.seeds)} {where} seeds)")  # fmt: skip
        if np.isfinite(half).any():
            ax.fill_between(steps, mean - half, mean + half, color=colors[learner], alpha=0.2, lw=0)
        for start in t.stage_starts(float(steps.max())):
            ax.axvline(start, color=colors[learner], ls=":", lw=1, alpha=0.8)
            stages = True
    if normalised:
        ax.axhline(1.0, color="0.3", lw=1, ls="--", label="best constant predictor (1)")
    ax.set_yscale("log" if m.log else "linear")
    ax.ticklabel_format(axis="x", style="plain") if not data else None
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v / 1e6:g}M" if v >= 1e6
                                               else f"{v:,.0f}"))  # fmt: skip
    label = "normalised MSRE" if normalised else words(m).curve_label
    _finish_axes(ax, "Learning curves of each learner's pick" + (" (dotted: a new stage starts)"
                                                                  if stages else ""),
                 "steps", f"{label} (mean, 95% t-interval of the mean)")  # fmt: skip
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return data


def _finished(trials: list[Trial], learner: str, x: str) -> list[Trial]:
    """The learner's finished trials with a finite final value and a finite ``x`` attribute."""
    return [
        t
        for t in trials
        if t.learner == learner
        and t.status == "finished"
        and math.isfinite(getattr(t, x))
        and math.isfinite(t.final)
    ]


def _marker(t: Trial) -> str:
    """Marker by lambda: o for 0.9 or more, s for 0.3 to 0.9, ^ below 0.3 (or none)."""
    lam = float(t.params.get("lambda_", "nan") or "nan")
    return "o" if not lam < 0.9 else "s" if lam >= 0.3 else "^"


def sensitivity_points(trials: list[Trial], n_resamples: int = N_RESAMPLES):
    """Per trial with a step size: ``(alpha, mean, low, high)`` of its per-seed values (95%
    percentile bootstrap interval of the mean; NaN where a seed diverged)."""
    out = {}
    for t in trials:
        if t.status not in ("finished", "diverged") or not math.isfinite(t.alpha):
            continue
        values = t.seed_values()
        if t.status == "diverged" or not values.size or not np.isfinite(values).all():
            out[t.run_id] = (t.alpha, math.inf, math.nan, math.nan)
            continue
        ci = stats.bootstrap_ci(values, stats.mean, method="percentile",
                                n_resamples=n_resamples)  # fmt: skip
        out[t.run_id] = (t.alpha, ci.estimate, ci.low, ci.high)
    return out


def _lines(ax, groups: dict[Any, list[Trial]], points, color_of, label_of,
           bands: bool = True) -> list[Trial]:  # fmt: skip
    """One line (with its band) per group of trials that differ only in alpha; returns the
    diverged trials, drawn later at the top of the axis."""
    diverged = []
    for key, members in groups.items():
        pts = sorted(
            ((points[t.run_id], t) for t in members if t.run_id in points), key=lambda pt: pt[0][0]
        )
        ok = [(p, t) for p, t in pts if math.isfinite(p[1])]
        diverged += [t for p, t in pts if not math.isfinite(p[1])]
        if not ok:
            continue
        t0 = ok[0][1]
        x = [p[0] for p, _ in ok]
        y = [p[1] for p, _ in ok]
        style = "--" if t0.normalisation else "-"
        ax.plot(x, y, ls=style, marker=_marker(t0), ms=4, lw=1.3, color=color_of(key),
                label=label_of(key))  # fmt: skip
        lo = [p[2] for p, _ in ok]
        hi = [p[3] for p, _ in ok]
        if bands and len(ok) > 1 and np.isfinite(lo).all():
            ax.fill_between(x, lo, hi, color=color_of(key), alpha=0.12, lw=0)
    return diverged


def plot_sensitivity(trials: list[Trial], colors, path: Path, m: TaskKind = PREDICTION,
                     picks: dict[str, Trial] | None = None,
                     n_resamples: int = N_RESAMPLES) -> list[str]:  # fmt: skip
    """Final value against step size, one line per family and setting (normalisation off:
    solid, on: dashed; marker by lambda), 95% bootstrap bands over seeds, each family's pick
    starred, diverged trials as x at the top. T-BPTT's line is its best truncation:hidden
    pair at each step size; a second panel draws every pair. Returns one sentence per pick at
    the edge of its family's grid of step sizes."""
    from matplotlib.lines import Line2D

    plt = _plt()
    points = sensitivity_points(trials, n_resamples)
    tbptt = [t for t in trials if truncated(t.learner) and t.run_id in points]
    fig, axes = plt.subplots(1, 2 if tbptt else 1, figsize=(13 if tbptt else 9, 5),
                             layout="constrained", squeeze=False)  # fmt: skip
    ax = axes[0][0]
    diverged: list[Trial] = []
    for learner in _learners(trials):
        mine = [t for t in trials if t.learner == learner and t.run_id in points]
        if truncated(learner):  # the best pair at each (alpha, setting but the pair)
            best: dict[Any, Trial] = {}
            for t in mine:
                key = (t.alpha, tuple(kv for kv in t.setting()
                                      if kv[0] not in ("truncation", "n_features")))  # fmt: skip
                if key not in best or points[t.run_id][1] < points[best[key].run_id][1]:
                    best[key] = t
            mine = list(best.values())
            key_of = lambda t: tuple(kv for kv in t.setting()  # noqa: E731
                                     if kv[0] not in ("truncation", "n_features"))  # fmt: skip
        else:
            key_of = Trial.setting
        groups: dict[Any, list[Trial]] = {}
        for t in mine:
            groups.setdefault(key_of(t), []).append(t)
        first = [True]

        def label(_key, learner=learner, first=first):
            if first[0]:
                first[0] = False
                return learner
            return None

        diverged += _lines(ax, groups, points, lambda _k, c=colors[learner]: c, label)
    edges = []
    for learner, t in (picks or {}).items():
        if t.run_id not in points or not math.isfinite(points[t.run_id][1]):
            continue
        ax.plot([t.alpha], [points[t.run_id][1]], marker="*", ms=15, color=colors[learner],
                mec="black", mew=0.8, ls="none", zorder=5)  # fmt: skip
        tried = sorted({t2.alpha for t2 in trials if t2.learner == learner and
                        math.isfinite(t2.alpha)})  # fmt: skip
        if len(tried) > 2 and t.alpha in (tried[0], tried[-1]):
            side = "smallest" if t.alpha == tried[0] else "largest"
            edges.append(
                f"{learner}'s pick has the {side} step size tried ({t.alpha:g} of "
                f"{tried[0]:g}-{tried[-1]:g}): its best may lie beyond the grid"
            )
    panels: list[Any] = [(ax, diverged)]
    if tbptt:
        ax2 = axes[0][1]
        pairs: dict[Any, list[Trial]] = {}
        for t in tbptt:
            pairs.setdefault(t.setting(), []).append(t)
        names = sorted({(int(t.params.get("truncation", 0)), int(t.params.get("n_features", 0)))
                        for t in tbptt})  # fmt: skip
        cmap = plt.get_cmap("viridis")
        shade = {pair: cmap(i / max(1, len(names) - 1)) for i, pair in enumerate(names)}

        def pair_of(key):
            d = dict(key)
            return int(d.get("truncation", 0)), int(d.get("n_features", 0))

        seen: set = set()

        def pair_label(key):
            pair = pair_of(key)
            if pair in seen:
                return None
            seen.add(pair)
            return f"{pair[0]}:{pair[1]}"

        pairs = dict(sorted(pairs.items(), key=lambda kv: (pair_of(kv[0]), kv[0])))
        drawn_out = _lines(ax2, pairs, points, lambda k: shade[pair_of(k)], pair_label,
                           bands=False)  # fmt: skip
        panels.append((ax2, drawn_out))
    value = "normalised MSRE" if not m.higher_better and any(
        t.normalised_values().size for t in trials) else words(m).label  # fmt: skip
    for a, out in [(ax, diverged), *panels[1:]]:
        a.set_xscale("log")
        a.set_yscale("log" if m.log else "linear")
        if value == "normalised MSRE":
            a.axhline(1.0, color="0.3", lw=1, ls="--")
        lo, hi = a.get_ylim()
        for t in out:  # at the top edge: a diverged trial has no value to draw
            a.plot([t.alpha], [hi], "x", color=colors.get(t.learner, "0.2"), ms=7,
                   clip_on=False)  # fmt: skip
        a.set_ylim(lo, hi)
    handles = [Line2D([], [], color="0.3", ls="-", label="normalisation off"),
               Line2D([], [], color="0.3", marker="x", ls="none", label="diverged"),
               Line2D([], [], color="0.3", ls="--", label="normalisation on"),
               Line2D([], [], color="0.3", marker="*", ms=12, ls="none", mec="black",
                      label="each family's pick")]  # fmt: skip
    _finish_axes(ax, "Step-size sensitivity" + (" (T-BPTT: its best truncation:hidden pair at "
                                                "each step size)" if tbptt else ""),
                 "step size alpha (log scale)",
                 f"{value} (mean, 95% bootstrap interval over seeds)",
                 handles if points else None)  # fmt: skip
    if tbptt:
        _finish_axes(panels[1][0], "T-BPTT: every truncation:hidden pair", "step size alpha "
                     "(log scale)", f"{value}")  # fmt: skip
        panels[1][0].legend(fontsize=7, title="k:h", ncols=2)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return edges


def plot_seeds(
    best: dict[str, Trial],
    colors,
    path: Path,
    m: TaskKind = PREDICTION,
    n_resamples: int = N_RESAMPLES,
) -> None:
    """Every seed's final value of each learner's pick as a point (jittered), with the mean
    and its 95% BCa bootstrap interval (black diamond) and the median (a bar): a family whose
    seeds split between learned and not shows two clusters. A diverged seed is an x at the
    top."""
    from matplotlib.lines import Line2D

    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(best) + 3), 4.8), layout="constrained")
    rng = np.random.default_rng(0)
    top = []
    normalised = False
    for i, (learner, t) in enumerate(best.items()):
        values = t.seed_values()
        normalised = normalised or bool(t.normalised_values().size)
        ok = values[np.isfinite(values)]
        x = i + rng.uniform(-0.18, 0.18, ok.size)
        ax.plot(x, ok, "o", ms=4, alpha=0.7, color=colors[learner])
        top += [i] * int((~np.isfinite(values)).sum())
        if ok.size == values.size and values.size >= 2:
            ci = stats.bootstrap_ci(values, stats.mean, n_resamples=n_resamples)
            err = [[ci.estimate - ci.low], [ci.high - ci.estimate]]
            ax.errorbar([i + 0.3], [ci.estimate], yerr=err, fmt="D", color="black", ms=5,
                        capsize=3)  # fmt: skip
        if ok.size:
            ax.hlines(np.median(ok), i - 0.25, i + 0.25, color="black", lw=1)
    if normalised:
        ax.axhline(1.0, color="0.3", lw=1, ls="--")
    ax.set_yscale("log" if m.log else "linear")
    if top:
        hi = ax.get_ylim()[1]
        ax.plot(top, [hi] * len(top), "x", color="0.2", ms=7, clip_on=False)
    ax.set_xticks(range(len(best)))
    ax.set_xticklabels([f"{k}\n({len(t.seeds)} seeds)" for k, t in best.items()])
    ax.set_xlim(-0.6, len(best) - 0.4)
    handles = [
        Line2D([], [], color="0.4", marker="o", ls="none", label="one seed"),
        Line2D([], [], color="black", marker="D", label="mean, 95% bootstrap interval"),
        Line2D([], [], color="black", lw=1, label="median"),
        *([Line2D([], [], color="0.3", ls="--", label="best constant predictor")]
          if normalised else []),
        *([Line2D([], [], color="0.2", marker="x", ls="none", label="diverged")] if top else []),
    ]  # fmt: skip
    value = "normalised MSRE" if normalised else words(m).label
    _finish_axes(ax, "Every seed of each learner's pick", "", f"final {value}",
                 handles if best else None)  # fmt: skip
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compute_differs(best: dict[str, Trial], ratio: float = 1.1) -> bool:
    """Whether the picks' flops per step differ by more than ``ratio`` (else compute is
    matched and a figure of it says nothing)."""
    flops = [t.flops for t in best.values() if math.isfinite(t.flops) and sized(t.learner)]
    return len(flops) > 1 and max(flops) > ratio * min(flops)


def plot_compute(trials: list[Trial], colors, path: Path, m: TaskKind = PREDICTION) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    for learner in _learners(trials):
        pts = _finished(trials, learner, "flops")
        if pts:
            ax.scatter([t.flops for t in pts], [t.final for t in pts], s=18,
                       color=colors[learner], label=learner)  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log" if m.log else "linear")
    _finish_axes(ax, f"{_sentence(words(m).label)} against compute: one point per configuration",
                 "flops per step per stream (ledger, log scale)",
                 f"{words(m).label} (mean over seeds)")  # fmt: skip
    fig.savefig(path, dpi=110)
    plt.close(fig)
