"""A trial's learning-curve figure (``learning_curve.png``), drawn from values."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


def step_label(x: float, _pos: Any = None) -> str:
    """``500000`` as ``0.5M``, ``2000000`` as ``2M``, ``20000`` as ``20k``."""
    if abs(x) >= 1e5:
        return f"{x / 1e6:g}M"
    if abs(x) >= 1e3:
        return f"{x / 1e3:g}k"
    return f"{x:g}"


def plot_curve(path: str, title: str, steps: np.ndarray, per_seed: dict[int, np.ndarray],
               label: str, no_learning: float | None, no_learning_text: str) -> None:  # fmt: skip
    """The learning curve of one configuration as a PNG at ``path`` (1500 px wide): each
    seed's line, labelled, their mean, the 95% t-interval of that mean over seeds (a band
    that one seed may lie outside), and a dashed line at ``no_learning``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    from scipy import stats

    fig, ax = plt.subplots(figsize=(10, 5.2), layout="constrained")
    values = np.asarray(list(per_seed.values()), np.float64).reshape(len(per_seed), -1)
    for seed, line in per_seed.items():
        ax.plot(steps, line, lw=0.8, alpha=0.6, label=f"seed {seed}")
    if values.shape[0]:
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(values, axis=0)
            n = np.sum(np.isfinite(values), axis=0)
            half = np.where(n >= 2, np.nanstd(values, axis=0, ddof=1) / np.sqrt(n), np.nan)
            half = half * stats.t.ppf(0.975, np.maximum(n - 1, 1))
        if values.shape[0] >= 2:
            band = f"95% interval of the mean over {values.shape[0]} seeds"
            ax.fill_between(steps, mean - half, mean + half, alpha=0.2, color="k", lw=0,
                            label=band)  # fmt: skip
        ax.plot(steps, mean, lw=2.2, color="k", label="mean over seeds")
    if no_learning is not None:
        ax.axhline(no_learning, color="tab:red", ls="--", lw=1.2, label=no_learning_text)
    ax.xaxis.set_major_formatter(FuncFormatter(step_label))
    ax.set_xlabel("environment steps", fontsize=12)
    ax.set_ylabel(label, fontsize=12)
    ax.set_title(title, fontsize=12)
    ax.tick_params(labelsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="best", ncol=2 if len(per_seed) > 6 else 1)
    fig.savefig(path, dpi=150)
    plt.close(fig)
