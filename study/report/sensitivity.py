"""The step-size sensitivity figure: each family's final value against its step size, with
its settings, lambdas, picks and diverged trials named in the legend."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from study import stats
from study.engine.kinds import PREDICTION, TaskKind
from study.present.words import words
from study.report.figures import DPI, ONE, WIDE, _finish_axes, _plt, tick_at_one
from study.report.load import Trial, _learners, truncated
from study.stats import N_RESAMPLES

# Markers by lambda (study.report.figures._marker), as the legend names them
LAMBDA_MARKERS = {"o": "lambda 0.9 or more (or none)", "s": "lambda 0.3 to 0.9",
                  "^": "lambda below 0.3"}  # fmt: skip


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
    fig, axes = plt.subplots(1, 2 if tbptt else 1, figsize=(1.3 * WIDE if tbptt else WIDE, 5.5),
                             layout="constrained", squeeze=False)  # fmt: skip
    ax = axes[0][0]
    diverged: list[Trial] = []
    drawn: list[str] = []
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
        if groups:
            drawn.append(learner)
        diverged += _lines(ax, groups, points, lambda _k, c=colors[learner]: c, lambda _k: None)
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
            a.axhline(1.0, **ONE)
        lo, hi = a.get_ylim()
        for t in out:  # at the top edge: a diverged trial has no value to draw
            a.plot([t.alpha], [hi], "x", color=colors.get(t.learner, "0.2"), ms=7,
                   clip_on=False)  # fmt: skip
        a.set_ylim(lo, hi)
    # every artist's meaning named once: families by colour, settings by line style, lambda
    # by marker (those drawn), the line at 1, a diverged trial, a pick
    shown = [t for t in trials if t.run_id in points and t.learner in drawn]
    styles = sorted({bool(t.normalisation) for t in shown})
    markers = [k for k in LAMBDA_MARKERS if k in {_marker(t) for t in shown}]
    handles = [*(Line2D([], [], color=colors[f], lw=2.5, label=f) for f in drawn),
               *(Line2D([], [], color="0.3", ls="--" if on else "-",
                        label=f"normalisation {'on' if on else 'off'}") for on in styles),
               *(Line2D([], [], color="0.3", marker=k, ls="none", label=LAMBDA_MARKERS[k])
                 for k in markers),
               *([Line2D([], [], **ONE, label="best constant predictor (1)")]
                 if value == "normalised MSRE" else []),
               Line2D([], [], color="0.3", marker="x", ls="none", label="diverged (at the top)"),
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
    if value == "normalised MSRE":
        for a, _ in panels:
            tick_at_one(a)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return edges
