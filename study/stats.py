"""Statistics over seeds: the Student-t interval, bootstrap intervals, and the comparisons of
two families that a claim rests on.

Every function takes plain arrays of per-seed values (one final value per seed) and is seeded
where it resamples, so the same call gives the same interval. The bootstrap follows
``scipy.stats.bootstrap``'s interface (a statistic, a confidence level, ``percentile`` or
``bca``, a seeded generator) and, for two families, resamples each family's seeds
independently (a stratified bootstrap, as in rliable, Agarwal et al. 2021).

- ``mean_ci``: mean and Student-t half-width (kept beside the bootstrap: it is what older
  reports and the console show).
- ``bootstrap_ci``: any statistic of one or more samples with a bootstrap interval.
- ``iqm``: the interquartile mean (the mean of the middle 50%), robust to a few seeds that
  never learn.
- ``prob_lower``: the probability that family A's value on a random seed is below family B's
  (ties count half): the Mann-Whitney U statistic over ``n_a n_b``.
- ``compare``: the difference of means and the probability of improvement with their
  bootstrap intervals (descriptive; the verdicts on claims, with their error rates, are
  ``study.verdicts``'s).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy import special, stats

LEVEL = 0.95
N_RESAMPLES = 10_000  # default; at least 1,000 and at most 10^6 are accepted
RESAMPLE_BOUNDS = (1_000, 1_000_000)
METHODS = ("bca", "percentile")
SEED = 0


def mean_ci(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval over the last axis' values.

    NaN values propagate; one value, or an infinite one (a diverged seed: the mean is
    infinite), gives a half-width of NaN.
    """
    x = np.asarray(values, np.float64).ravel()
    n = x.size
    m = float(np.mean(x))
    if n < 2 or not np.isfinite(x).all():
        return m, float("nan")
    sem = float(np.std(x, ddof=1)) / np.sqrt(n)
    return m, float(stats.t.ppf(0.5 + level / 2, n - 1) * sem)


def learned(values: np.ndarray, no_learning: float,
            higher_better: bool = False) -> tuple[float, float, bool]:  # fmt: skip
    """``(mean, 95% t half-width, learned)`` of per-seed values of a measure that scores
    ``no_learning`` when nothing was learned (1 for the normalised MSRE, the best constant
    predictor's; chance for an accuracy). Learned when the interval lies wholly on the better
    side of ``no_learning`` (below it, or above when ``higher_better``). Without an interval
    (fewer than two seeds) or with a value that is not finite (a diverged seed), nothing is
    shown: not learned. The one verdict of the platform: trials, ``study.run``,
    ``study.defaults`` and reports all ask it."""
    mean, half = mean_ci(values)
    shown = math.isfinite(mean) and math.isfinite(half)
    if higher_better:
        return mean, half, bool(shown and mean - half > no_learning)
    return mean, half, bool(shown and mean + half < no_learning)


class Interval(NamedTuple):
    """A point estimate with its confidence interval, and how the interval was made."""

    estimate: float
    low: float
    high: float
    level: float  # e.g. 0.95
    method: str  # "bca", "percentile" or "t"
    n_resamples: int  # 0 for the t interval

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def text(self, digits: int = 3) -> str:
        f = f"{{:.{digits}g}}"
        return f"{f.format(self.estimate)} [{f.format(self.low)}, {f.format(self.high)}]"


def check_resamples(n: int, option: str = "--bootstrap-resamples") -> int:
    """``n`` when it is an allowed resample count, else a one-line ValueError naming
    ``option``."""
    lo, hi = RESAMPLE_BOUNDS
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not lo <= n <= hi:
        raise ValueError(f"{option} {n} is not allowed: need a whole number from {lo:,} to "
                         f"{hi:,}")  # fmt: skip
    return int(n)


def t_interval(values: np.ndarray, level: float = LEVEL) -> Interval:
    """The mean with its Student-t interval, as an :class:`Interval`."""
    m, h = mean_ci(values, level)
    h = h if math.isfinite(h) else math.nan
    return Interval(m, m - h, m + h, level, "t", 0)


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean along ``axis``: the mean of the values between the 25th and 75th
    percentiles, counting the boundary values fractionally (so it is defined for any n and
    equals the mean of the middle half exactly when n is a multiple of 4)."""
    x = np.sort(np.asarray(values, np.float64), axis=axis)
    x = np.moveaxis(x, axis, -1)
    n = x.shape[-1]
    # Weight of each order statistic: the overlap of [i, i+1) with [n/4, 3n/4).
    i = np.arange(n)
    weights = np.clip(np.minimum(i + 1, 0.75 * n) - np.maximum(i, 0.25 * n), 0.0, 1.0)
    # a value outside the middle half counts nothing, also an infinite one (a diverged seed)
    return (np.where(weights > 0, x, 0.0) * weights).sum(-1) / weights.sum()


def median(values: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(np.asarray(values, np.float64), axis=axis)


def mean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(np.asarray(values, np.float64), axis=axis)


def prob_lower(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(A < B) + P(A = B) / 2 for one value A drawn from ``a`` and one B from ``b`` along
    ``axis`` (leading axes are batched: one probability per resample)."""
    a = np.moveaxis(np.asarray(a, np.float64), axis, -1)[..., :, None]
    b = np.moveaxis(np.asarray(b, np.float64), axis, -1)[..., None, :]
    return ((a < b) + 0.5 * (a == b)).mean(axis=(-2, -1))


def diff_of_means(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """mean(a) - mean(b) along ``axis``."""
    return mean(a, axis) - mean(b, axis)


Statistic = Callable[..., np.ndarray]


def bootstrap_ci(
    samples: np.ndarray | tuple[np.ndarray, ...],
    statistic: Statistic = mean,
    *,
    level: float = LEVEL,
    method: str = "bca",
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """``statistic`` of one sample (an array) or several (a tuple of arrays, resampled each
    on its own: a stratified bootstrap) with a bootstrap confidence interval.

    ``statistic(*samples, axis=-1)`` must reduce the last axis and broadcast over leading
    ones (as ``mean``, ``iqm``, ``prob_lower``, ``diff_of_means`` do). ``method``:
    ``percentile`` (the quantiles of the resampled statistic) or ``bca`` (bias-corrected and
    accelerated, Efron 1987: the quantiles shifted by the bias ``z0`` and the jackknife
    acceleration ``a``; for several samples the jackknife leaves out one value of each sample
    in turn, as scipy does). The resamples come from ``numpy.random.default_rng(seed)``, so
    the same arguments give the same interval.

    An infinite value (a diverged seed's error) is kept: the statistic of a resample that
    draws it may be infinite, and so may a bound (the quantiles are then taken without
    interpolating, so that a bound is a resampled value, infinite or not); BCa's jackknife is
    undefined there and the percentile rule is used, as the interval says (``method``). A NaN
    value, or fewer than two values in a sample, gives a NaN interval.
    """
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not allowed; allowed: {', '.join(METHODS)}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level {level} must be between 0 and 1")
    n_resamples = check_resamples(n_resamples, "n_resamples")
    xs = tuple(np.asarray(s, np.float64).ravel() for s in
               ((samples,) if isinstance(samples, np.ndarray) else tuple(samples)))  # fmt: skip
    estimate = float(statistic(*xs, axis=-1))
    if any(x.size < 2 for x in xs) or any(np.isnan(x).any() for x in xs):
        return Interval(estimate, math.nan, math.nan, level, method, n_resamples)
    finite = all(np.isfinite(x).all() for x in xs)
    quantile = "linear" if finite else "inverted_cdf"
    if not finite:
        method = "percentile"
    rng = np.random.default_rng(seed)
    boot = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // max(x.size for x in xs) ** max(1, len(xs)))
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        drawn = [x[rng.integers(0, x.size, (stop - start, x.size))] for x in xs]
        boot[start:stop] = statistic(*drawn, axis=-1)
    alpha = (1.0 - level) / 2.0
    if method == "percentile":
        lo, hi = np.quantile(boot, [alpha, 1.0 - alpha], method=quantile)
        return Interval(estimate, float(lo), float(hi), level, method, n_resamples)
    # BCa. z0: how far the resampled statistic sits below the estimate (ties count half).
    below = (np.sum(boot < estimate) + 0.5 * np.sum(boot == estimate)) / n_resamples
    z0 = special.ndtri(below)
    # Acceleration from the jackknife: the statistic with each value of each sample left out.
    jack = []
    for k, x in enumerate(xs):
        keep = ~np.eye(x.size, dtype=bool)
        left_out = np.broadcast_to(x, (x.size, x.size))[keep].reshape(x.size, x.size - 1)
        others = [np.broadcast_to(y, (x.size, y.size)) for y in xs]
        others[k] = left_out
        jack.append(statistic(*others, axis=-1))
    accel_num, accel_den = 0.0, 0.0
    for j in jack:  # each sample's jackknife influence, weighted by (n - 1) / n as scipy does
        u = (j.size - 1) / j.size * (j.mean() - j)
        accel_num += np.sum(u**3)
        accel_den += np.sum(u**2)
    a = accel_num / (6.0 * accel_den**1.5) if accel_den > 0 else 0.0
    if not np.isfinite(z0):  # every resample on one side: the percentile rule, labelled so
        lo, hi = np.quantile(boot, [alpha, 1.0 - alpha])
        return Interval(estimate, float(lo), float(hi), level, "percentile", n_resamples)
    z = special.ndtri(np.array([alpha, 1.0 - alpha]))
    adjusted = special.ndtr(z0 + (z0 + z) / (1.0 - a * (z0 + z)))
    lo, hi = np.quantile(boot, adjusted)
    return Interval(estimate, float(lo), float(hi), level, method, n_resamples)


class Comparison(NamedTuple):
    """Family A against family B on per-seed values where lower is better (an error)."""

    a: str
    b: str
    diff: Interval  # mean(A) - mean(B); below 0 means A is lower
    p_lower: Interval  # P(A's value on a random seed < B's)


def compare(
    name_a: str,
    a: np.ndarray,
    name_b: str,
    b: np.ndarray,
    *,
    level: float = LEVEL,
    method: str = "percentile",
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> Comparison:
    """The difference of means and the probability of improvement of A over B with their
    bootstrap intervals, each family's seeds resampled on their own. Percentile intervals by
    default: ``p_lower`` is bounded and often sits at 0 or 1, where BCa's correction is not
    defined."""
    kw = dict(level=level, method=method, n_resamples=n_resamples, seed=seed)
    pair = (np.asarray(a, np.float64), np.asarray(b, np.float64))
    return Comparison(
        name_a,
        name_b,
        bootstrap_ci(pair, diff_of_means, **kw),
        bootstrap_ci(pair, prob_lower, **kw),
    )
