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
from study.report.load import Trial, _learners, sized
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


# Every figure is drawn WIDE inches at DPI: 1265 px, a report page's width at 1440 px
WIDE, DPI = 11.5, 110
# The line at 1 (the best constant predictor's normalised MSRE): dash-dot, so that it is
# never read as a dashed curve (normalisation on)
ONE = {"color": "0.15", "lw": 1.2, "ls": "-."}


def tick_at_one(ax) -> None:
    """Make 1 a labelled tick of the y axis when the axis shows it (a tick too close to it to
    be read apart gives way)."""
    limits = ax.get_ylim()
    lo, hi = sorted(limits)
    if not lo <= 1.0 <= hi:
        return
    log = ax.get_yscale() == "log"

    def at(v: float) -> float:
        return math.log10(v) if log else v

    near = 0.04 * (at(hi) - at(lo))
    ticks = [t for t in ax.get_yticks() if lo <= t <= hi and (t > 0 or not log)]
    formatter = ax.yaxis.get_major_formatter()
    ax.set_yticks(sorted({*(t for t in ticks if abs(at(t) - at(1.0)) > near), 1.0}))
    ax.yaxis.set_major_formatter(formatter)
    ax.set_ylim(*limits)


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
    fig, ax = plt.subplots(figsize=(WIDE, 5.5), layout="constrained")
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
        ax.axhline(1.0, **ONE, label="best constant predictor (1)")
    ax.set_yscale("log" if m.log else "linear")
    ax.ticklabel_format(axis="x", style="plain") if not data else None
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v / 1e6:g}M" if v >= 1e6
                                               else f"{v:,.0f}"))  # fmt: skip
    label = "normalised MSRE" if normalised else words(m).curve_label
    _finish_axes(ax, "Learning curves of each learner's pick" + (" (dotted: a new stage starts)"
                                                                  if stages else ""),
                 "steps", f"{label} (mean, 95% t-interval of the mean)")  # fmt: skip
    if normalised:
        tick_at_one(ax)
    fig.savefig(path, dpi=DPI)
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
    fig, ax = plt.subplots(figsize=(max(WIDE, 1.3 * len(best) + 3), 5), layout="constrained")
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
        ax.axhline(1.0, **ONE)
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
        *([Line2D([], [], **ONE, label="best constant predictor (1)")] if normalised else []),
        *([Line2D([], [], color="0.2", marker="x", ls="none", label="diverged")] if top else []),
    ]  # fmt: skip
    value = "normalised MSRE" if normalised else words(m).label
    _finish_axes(ax, "Every seed of each learner's pick", "", f"final {value}",
                 handles if best else None)  # fmt: skip
    if normalised:
        tick_at_one(ax)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def compute_differs(best: dict[str, Trial], ratio: float = 1.1) -> bool:
    """Whether the picks' flops per step differ by more than ``ratio`` (else compute is
    matched and a figure of it says nothing)."""
    flops = [t.flops for t in best.values() if math.isfinite(t.flops) and sized(t.learner)]
    return len(flops) > 1 and max(flops) > ratio * min(flops)


def plot_compute(trials: list[Trial], colors, path: Path, m: TaskKind = PREDICTION) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(WIDE, 5), layout="constrained")
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
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
