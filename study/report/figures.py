"""The report's figures: learning curves, step-size sensitivity and compute, with axes whose
ticks read well whatever their span."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from study.kinds import PREDICTION, TaskKind
from study.report.load import (
    Trial,
    _learners,
    curve_band,
)
from study.report.page import _sentence


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


def _finish_axes(ax, title: str, xlabel: str, ylabel: str) -> None:
    """Title, labels, grid and legend; a log axis labelled at readable numbers whatever its
    span (``log_ticks``); an empty plot says so."""
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
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no finished trial to show", transform=ax.transAxes, ha="center")


def _colors(learners: list[str]) -> dict[str, Any]:
    cmap = _plt().get_cmap("tab10")
    return {name: cmap(i % 10) for i, name in enumerate(learners)}


def plot_curves(client, best: dict[str, Trial], colors, path: Path,
                m: TaskKind = PREDICTION) -> dict[str, Any]:  # fmt: skip
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    data = {}
    for learner, t in best.items():
        steps, mean, half = curve_band(client, t)
        data[learner] = (steps, mean, half)
        if not steps.size:
            continue
        ax.plot(
            steps, mean, color=colors[learner], lw=1.6, label=f"{learner} ({len(t.seeds)} seeds)"
        )
        if np.isfinite(half).any():
            ax.fill_between(steps, mean - half, mean + half, color=colors[learner], alpha=0.2, lw=0)
        sps = t.params.get("steps_per_stage")
        if learner in ("constructive", "hybrid") and sps and sps not in ("None", ""):
            for k in range(1, int(steps.max() // int(sps)) + 1):
                ax.axvline(k * int(sps), color=colors[learner], ls=":", lw=1, alpha=0.8)
    ax.set_yscale("log" if m.log else "linear")
    _finish_axes(ax, "Learning curves of each learner's best configuration (dotted: stage changes)",
                 "steps", f"{m.curve_label} (mean, 95% CI over seeds)")  # fmt: skip
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


def plot_sensitivity(trials: list[Trial], colors, path: Path, m: TaskKind = PREDICTION) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    for learner in _learners(trials):
        pts = sorted(_finished(trials, learner, "alpha"), key=lambda t: t.alpha)
        if not pts:
            continue
        cis = [t.ci() for t in pts]
        x = [t.alpha for t in pts]
        y = [c[0] for c in cis]
        err = [0.0 if not np.isfinite(c[1]) else c[1] for c in cis]
        ax.errorbar(x, y, yerr=err, fmt="o", ms=4, capsize=2, color=colors[learner], label=learner)
    ax.set_xscale("log")
    ax.set_yscale("log" if m.log else "linear")
    _finish_axes(ax, "Step-size sensitivity: every finished trial", "step size alpha (log scale)",
                 f"{m.label} (mean, 95% CI)")  # fmt: skip
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
    _finish_axes(ax, f"{_sentence(m.label)} against compute: one point per configuration",
                 "flops per step per stream (ledger, log scale)",
                 f"{m.label} (mean over seeds)")  # fmt: skip
    fig.savefig(path, dpi=110)
    plt.close(fig)
