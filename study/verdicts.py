"""Verdicts on claims about families, with stated error rates.

A claim orders families on per-seed values where lower is better (the normalised MSRE). Each
pair of families a claim names is tested two ways, on the same seeds:

- the **difference of means** over the finite seeds (a diverged seed has no error to average):
  Welch's t-test and its interval;
- the **probability of improvement** P(A below B on a seed), a diverged seed the worst
  outcome: the Brunner-Munzel test (Brunner and Munzel 2000) and its interval, which tests
  exactly P = 0.5 and allows unequal spreads.

A pair's p-value is the smaller of the two, doubled (Bonferroni over the two tests); the
pairs of a report are one family of hypotheses under Holm's step-down correction (Holm
1979), so that with no true difference anywhere, a claim is called supported or
contradicted at most ``alpha`` of the time, family-wise. Equivalence within a margin ``delta``
is tested with two one-sided Welch tests (TOST, Schuirmann 1987), Holm-corrected over the
pairs as a second family: with a true difference of ``delta``, "equivalent" at most
``alpha`` of the time. A sequential design that looks ``looks`` times (``--eval-seeds auto``)
runs each look at ``alpha / looks`` (Bonferroni over the looks), which keeps both rates
whatever the stopping rule.

Each claim ends in one of four outcomes: ``supported``, ``contradicted``, ``equivalent``
(within the margin; for a claim of equality this is what supports it) or ``unresolved``, the
last with the fresh seeds a family would need for 80% power at the observed difference and
spread (Welch's test at the level the pair would face). ``tests/test_verdicts.py`` holds every
rate to its statement by simulation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
from scipy import special
from scipy import stats as sps

ALPHA = 0.05  # family-wise error rate of the supported/contradicted calls of one report
MARGIN = 0.05  # equivalence margin, in the compared unit (normalised MSRE: 1 = constant)
POWER = 0.8  # the power the "seeds needed" statement is computed for
SEEDS_CAP = 100_000  # beyond this the statement says "more than"
OUTCOMES = ("supported", "contradicted", "equivalent", "unresolved", "not measured")


def check_margin(value: float, option: str = "--equivalence-margin") -> float:
    """``value`` when it is a finite positive margin, else a one-line ValueError."""
    try:
        margin = float(value)
    except (TypeError, ValueError):
        margin = math.nan
    if not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"{option} {value}: allowed: a positive number (default {MARGIN:g})")
    return margin


def _t_sf(t: float, df: float) -> float:
    """Student's t survival function (scipy's ``t.sf``, without its per-call overhead)."""
    return float(special.stdtr(df, -t))


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their average rank (``scipy.stats.rankdata``'s default);
    infinite values tie with each other."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    new = np.r_[True, xs[1:] != xs[:-1]]
    starts = np.flatnonzero(new)
    counts = np.diff(np.r_[starts, x.size])
    ranks = np.empty(x.size)
    ranks[order] = (starts + (counts + 1) / 2)[np.cumsum(new) - 1]
    return ranks


class Welch(NamedTuple):
    """Welch's two-sample t statistics of mean(a) - mean(b)."""

    diff: float
    se: float
    df: float

    def p_two_sided(self) -> float:
        if self.se == 0:
            return 1.0 if self.diff == 0 else 0.0
        return float(2 * _t_sf(abs(self.diff) / self.se, self.df))

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        h = special.stdtrit(self.df, 0.5 + level / 2) * self.se if self.se > 0 else 0.0
        return self.diff - h, self.diff + h

    def p_equivalent(self, delta: float) -> float:
        """TOST: the larger p of H0 diff <= -delta and H0 diff >= delta."""
        if self.se == 0:
            return 0.0 if abs(self.diff) < delta else 1.0
        lower = _t_sf((self.diff + delta) / self.se, self.df)
        upper = special.stdtr(self.df, (self.diff - delta) / self.se)
        return float(max(lower, upper))


def welch(a: np.ndarray, b: np.ndarray) -> Welch:
    """Welch's statistics of two samples (at least two values each)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    denom = va**2 / (a.size - 1) + vb**2 / (b.size - 1)
    df = (va + vb) ** 2 / denom if denom > 0 else float(a.size + b.size - 2)
    return Welch(float(a.mean() - b.mean()), se, df)


class BrunnerMunzel(NamedTuple):
    """P(A below B on a seed) + P(tie) / 2, its standard error and degrees of freedom."""

    p_lower: float
    se: float
    df: float

    def p_two_sided(self) -> float:
        if self.se == 0 or not math.isfinite(self.se):
            return 1.0 if self.p_lower == 0.5 else 0.0
        return float(2 * _t_sf(abs(self.p_lower - 0.5) / self.se, self.df))

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        h = special.stdtrit(self.df, 0.5 + level / 2) * self.se if self.se > 0 else 0.0
        return max(0.0, self.p_lower - h), min(1.0, self.p_lower + h)


def brunner_munzel(a: np.ndarray, b: np.ndarray) -> BrunnerMunzel:
    """The Brunner-Munzel estimate of P(A < B) + P(A = B)/2 from ranks (an infinite value, a
    diverged seed, ranks last); agrees with ``scipy.stats.brunnermunzel``'s statistic."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = a.size, b.size
    both = _ranks(np.r_[a, b])
    ra, rb = both[:na], both[na:]
    within_a, within_b = _ranks(a), _ranks(b)
    sa = np.sum((ra - within_a - ra.mean() + (na + 1) / 2) ** 2) / (na - 1)
    sb = np.sum((rb - within_b - rb.mean() + (nb + 1) / 2) ** 2) / (nb - 1)
    p = (rb.mean() - ra.mean()) / (na + nb) + 0.5
    spread = na * sa + nb * sb
    se = math.sqrt(spread) / (na * nb)
    denom = (na * sa) ** 2 / (na - 1) + (nb * sb) ** 2 / (nb - 1)
    df = spread**2 / denom if denom > 0 else float(na + nb - 2)
    return BrunnerMunzel(float(p), se, df)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a rate of ``k`` in ``n``."""
    if n == 0:
        return 0.0, 1.0
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def holm(p_values: Iterable[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (compare each with the family-wise level)."""
    p = np.asarray(list(p_values), np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def seeds_for_power(diff: float, sd_a: float, sd_b: float, level: float,
                    power: float = POWER, delta: float | None = None) -> int:  # fmt: skip
    """Seeds per family for Welch's two-sided test at ``level`` to find ``diff`` with
    ``power`` (or, with ``delta``, for TOST to show equivalence within ``delta`` when the
    true difference is ``diff``), the spreads ``sd_a``, ``sd_b``; ``SEEDS_CAP + 1`` when
    more than ``SEEDS_CAP`` would be needed or no number would do."""

    def achieved(n: int) -> float:
        se = math.sqrt((sd_a**2 + sd_b**2) / n)
        if se == 0:
            return 1.0
        va, vb = sd_a**2 / n, sd_b**2 / n
        df = (va + vb) ** 2 / ((va**2 + vb**2) / (n - 1)) if va + vb > 0 else 2 * n - 2
        if delta is None:
            crit = sps.t.ppf(1 - level / 2, df)
            ncp = abs(diff) / se
            return float(sps.nct.sf(crit, df, ncp) + sps.nct.cdf(-crit, df, ncp))
        crit = sps.t.ppf(1 - level, df)
        miss = sps.nct.cdf(crit, df, (diff + delta) / se) + sps.nct.sf(
            -crit, df, (diff - delta) / se
        )
        return float(max(0.0, 1.0 - miss))

    if delta is None and diff == 0 or delta is not None and abs(diff) >= delta:
        return SEEDS_CAP + 1
    lo, hi = 2, 4
    while achieved(hi) < power:
        lo, hi = hi, hi * 2
        if hi > SEEDS_CAP:
            return (
                SEEDS_CAP + 1
                if achieved(SEEDS_CAP) < power
                else _bisect(achieved, lo, SEEDS_CAP, power)
            )
    return _bisect(achieved, lo, hi, power)


def _bisect(achieved, lo: int, hi: int, power: float) -> int:
    """The smallest n in (lo, hi] with achieved(n) >= power (achieved(hi) >= power)."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if achieved(mid) >= power:
            hi = mid
        else:
            lo = mid
    return hi


class Pair(NamedTuple):
    """Family A against family B: both tests, their Holm-adjusted p-values and the pair's
    outcome (``lower``: A below B, ``higher``, ``equivalent`` or ``unresolved``)."""

    a: str
    b: str
    n_a: int  # seeds, diverged ones included
    n_b: int
    diverged_a: int
    diverged_b: int
    diff: Welch | None  # over the finite seeds (None: fewer than two on a side)
    prob: BrunnerMunzel  # over every seed, a diverged one the worst
    p: float  # the pair's p-value: 2 min(p of the means, p of the probability), at most 1
    p_adjusted: float  # Holm over the report's pairs
    p_equivalent: float  # TOST within the margin, Holm over the report's pairs
    equivalent: bool  # shown within the margin (also when a smaller difference is found)
    outcome: str
    by_divergence: bool  # decided only because a diverged seed counts as the worst
    seeds_needed: int  # for an unresolved pair: seeds per family for 80% power; else 0
    resolves_as: str  # what those seeds would resolve it as: "difference" or "equivalence"


def _finite(x: np.ndarray) -> np.ndarray:
    return x[np.isfinite(x)]


def _raw(a: np.ndarray, b: np.ndarray,
         level: float) -> tuple[Welch | None, BrunnerMunzel, float, int]:  # fmt: skip
    """Both tests of a pair, its p-value and the direction the smaller p points to (-1: A
    lower, +1: A higher; 0 when both tests pass ``level`` pointing opposite ways)."""
    fa, fb = _finite(a), _finite(b)
    w = welch(fa, fb) if fa.size >= 2 and fb.size >= 2 else None
    bm = brunner_munzel(np.where(np.isfinite(a), a, np.inf), np.where(np.isfinite(b), b, np.inf))
    p_w = w.p_two_sided() if w is not None else 1.0
    p_bm = bm.p_two_sided()
    dir_w = 0 if w is None or w.diff == 0 else (-1 if w.diff < 0 else 1)
    dir_bm = 0 if bm.p_lower == 0.5 else (-1 if bm.p_lower > 0.5 else 1)
    p = min(1.0, 2 * min(p_w, p_bm))
    if dir_w * dir_bm < 0 and max(p_w, p_bm) <= level:
        return w, bm, p, 0
    return w, bm, p, dir_w if p_w <= p_bm else dir_bm


def pair_outcomes(values: dict[str, np.ndarray], pairs: list[tuple[str, str]], *,
                  alpha: float = ALPHA, margin: float = MARGIN, looks: int = 1,
                  power_statement: bool = True) -> dict[tuple[str, str], Pair]:  # fmt: skip
    """Every pair's tests and outcome, Holm-corrected over ``pairs`` (each unordered pair
    once) at ``alpha / looks`` family-wise, equivalence within ``margin`` likewise; with
    ``power_statement``, an unresolved pair's seeds for 80% power (at the Bonferroni level
    ``alpha / looks / len(pairs)``, the strictest Holm can apply)."""
    margin = check_margin(margin, "margin")
    level = alpha / looks
    raw = {}
    for a, b in pairs:
        xa, xb = (np.asarray(values[k], np.float64).ravel() for k in (a, b))
        xa, xb = (np.where(np.isnan(x), np.inf, x) for x in (xa, xb))
        w, bm, p, direction = _raw(xa, xb, level)
        p_eq = w.p_equivalent(margin) if w is not None else 1.0
        raw[(a, b)] = (xa, xb, w, bm, p, direction, p_eq)
    keys = list(raw)
    adjusted = dict(zip(keys, holm(raw[k][4] for k in keys), strict=True))
    adjusted_eq = dict(zip(keys, holm(raw[k][6] for k in keys), strict=True))
    out = {}
    m = len(keys)
    for k in keys:
        xa, xb, w, bm, p, direction, _ = raw[k]
        outcome, by_div, needed, resolves = "unresolved", False, 0, ""
        if adjusted[k] <= level and direction:
            outcome = "lower" if direction < 0 else "higher"
            if np.isinf(xa).any() or np.isinf(xb).any():  # would it stand without them?
                _, _, p_fin, dir_fin = _raw(_finite(xa), _finite(xb), level)
                by_div = not (p_fin * adjusted[k] / max(p, 1e-300) <= level
                              and dir_fin == direction)  # fmt: skip
        elif adjusted_eq[k] <= level:
            outcome = "equivalent"
        elif w is not None and power_statement:
            fa, fb = _finite(xa), _finite(xb)
            sd_a, sd_b = float(fa.std(ddof=1)), float(fb.std(ddof=1))
            n_diff = seeds_for_power(w.diff, sd_a, sd_b, level / m)
            n_eq = seeds_for_power(w.diff, sd_a, sd_b, level / m, delta=margin)
            needed, resolves = min((n_diff, "difference"), (n_eq, "equivalence"))
        out[k] = Pair(k[0], k[1], xa.size, xb.size, int(np.isinf(xa).sum()),
                      int(np.isinf(xb).sum()), w, bm, p, float(adjusted[k]),
                      float(adjusted_eq[k]), bool(adjusted_eq[k] <= level), outcome, by_div,
                      needed, resolves)  # fmt: skip
    return out
