"""The statistics a comparison's verdicts rest on (``study.stats``): bootstrap intervals held to
``scipy.stats.bootstrap``, their coverage on data with a known mean, the probability of
improvement held to the Mann-Whitney U statistic, and the verdict rule on hand-built cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from study import stats

# A skewed sample (a few seeds that never learn): BCa and percentile intervals differ on it.
SKEWED = np.array(
    [
        0.11,
        0.13,
        0.12,
        0.15,
        0.10,
        0.14,
        0.18,
        0.12,
        0.95,
        1.01,
        0.13,
        0.16,
        0.11,
        0.98,
        0.12,
        0.17,
        0.14,
        0.13,
        0.12,
        0.15,
    ]
)


def _scipy(samples, statistic, method, n=200_000):
    res = sps.bootstrap(
        samples,
        statistic,
        n_resamples=n,
        method=method,
        confidence_level=0.95,
        rng=np.random.default_rng(7),
        vectorized=True,
    )
    return res.confidence_interval.low, res.confidence_interval.high


@pytest.mark.parametrize("method", ["bca", "percentile"])
def test_the_mean_interval_agrees_with_scipy(method):
    """Catches a wrong quantile, a wrong bias correction or a wrong acceleration: both ends
    within 2% of the interval's width of scipy's (200k resamples each, different streams)."""
    ours = stats.bootstrap_ci(SKEWED, stats.mean, method=method, n_resamples=200_000, seed=3)
    lo, hi = _scipy((SKEWED,), np.mean, "BCa" if method == "bca" else method)
    width = hi - lo
    assert abs(ours.low - lo) < 0.02 * width
    assert abs(ours.high - hi) < 0.02 * width
    assert ours.estimate == pytest.approx(SKEWED.mean())


def test_the_scipy_check_tells_bca_from_percentile():
    """The tolerance above is tight enough to catch one method computed for the other."""
    bca = stats.bootstrap_ci(SKEWED, stats.mean, method="bca", n_resamples=200_000)
    pct = stats.bootstrap_ci(SKEWED, stats.mean, method="percentile", n_resamples=200_000)
    width = bca.high - bca.low
    assert abs(bca.high - pct.high) > 0.05 * width or abs(bca.low - pct.low) > 0.05 * width


def test_the_two_sample_bca_agrees_with_scipy():
    """Two families resampled each on its own (unequal seed counts): the difference of means'
    BCa interval equals scipy's multi-sample BCa (its jackknife weights per sample)."""
    rng = np.random.default_rng(11)
    a = np.concatenate([rng.normal(0.2, 0.05, 12), [0.9, 1.0, 0.95]])
    b = rng.normal(0.4, 0.1, 25)
    ours = stats.bootstrap_ci((a, b), stats.diff_of_means, method="bca", n_resamples=200_000)
    lo, hi = _scipy((a, b), lambda x, y, axis: x.mean(axis) - y.mean(axis), "BCa")
    width = hi - lo
    assert abs(ours.low - lo) < 0.02 * width and abs(ours.high - hi) < 0.02 * width


def test_the_iqm_interval_agrees_with_scipy():
    ours = stats.bootstrap_ci(SKEWED, stats.iqm, method="percentile", n_resamples=200_000)
    lo, hi = _scipy((SKEWED,), stats.iqm, "percentile")
    width = hi - lo
    assert abs(ours.low - lo) < 0.03 * width and abs(ours.high - hi) < 0.03 * width


def _coverage(draw, true_mean, method, reps=4000, n=30):
    rng = np.random.default_rng(1)
    hits = 0
    for r in range(reps):
        x = draw(rng, n)
        ci = stats.bootstrap_ci(x, stats.mean, method=method, n_resamples=2000, seed=r)
        hits += ci.low <= true_mean <= ci.high
    return hits / reps


def _normal(rng, n):
    return rng.normal(0.4, 0.2, n)


def _bimodal(rng, n):
    """Seeds that learn (about 0.15) and seeds that never do (about 1.0), 70:30: mean 0.405."""
    learned = rng.random(n) < 0.7
    return np.where(learned, rng.normal(0.15, 0.04, n), rng.normal(1.0, 0.02, n))


@pytest.mark.parametrize("method", ["bca", "percentile"])
@pytest.mark.parametrize(
    "draw,true_mean",
    [(_normal, 0.4), (_bimodal, 0.7 * 0.15 + 0.3 * 1.0)],
    ids=["normal", "bimodal"],
)
def test_a_95_percent_interval_covers_the_true_mean_about_95_percent_of_the_time(
    draw, true_mean, method
):
    """Catches an interval too narrow (a standard deviation used as a standard error, a wrong
    quantile) or too wide: over 4,000 data sets of 30 seeds with a known mean, the 95% interval
    holds it between 93% and 97% of the time. (The bootstrap's own coverage of a normal mean
    at 30 seeds is about 93.5%, a known small-sample shortfall; 4,000 repetitions put the
    Monte Carlo error at 0.4%.)"""
    assert 0.93 <= _coverage(draw, true_mean, method) <= 0.97


def test_the_coverage_check_catches_a_narrow_interval():
    """A 90% interval sold as 95% fails the coverage bounds above."""
    rng = np.random.default_rng(5)
    hits = 0
    for r in range(1200):
        x = _normal(rng, 30)
        ci = stats.bootstrap_ci(x, stats.mean, method="bca", n_resamples=2000, seed=r, level=0.9)
        hits += ci.low <= 0.4 <= ci.high
    assert not 0.93 <= hits / 1200 <= 0.97


def test_a_resample_is_reproducible_seed_for_seed():
    one = stats.bootstrap_ci(SKEWED, stats.mean, seed=42)
    two = stats.bootstrap_ci(SKEWED, stats.mean, seed=42)
    other = stats.bootstrap_ci(SKEWED, stats.mean, seed=43)
    assert one == two
    assert (other.low, other.high) != (one.low, one.high)
    pair = (SKEWED, SKEWED[::-1] + 0.05)
    assert stats.compare("a", pair[0], "b", pair[1], seed=9) == stats.compare(
        "a", pair[0], "b", pair[1], seed=9
    )


def test_the_probability_of_improvement_is_mann_whitney_u_over_the_pairs():
    """Catches a flipped direction or ties not counted half."""
    a = np.array([0.1, 0.2, 0.2, 0.5, 0.7])
    b = np.array([0.2, 0.3, 0.6, 0.9])
    u = sps.mannwhitneyu(b, a, alternative="two-sided").statistic  # pairs with b > a
    assert stats.prob_lower(a, b) == pytest.approx(u / (a.size * b.size))
    # by hand: 0.1 below all 4; 0.2 ties one, below 3 (twice); 0.5 below 2; 0.7 below 1
    assert stats.prob_lower(a, b) == pytest.approx((4 + 3.5 + 3.5 + 2 + 1) / 20)
    assert stats.prob_lower(b, a) == pytest.approx(1 - stats.prob_lower(a, b))


def test_the_interquartile_mean():
    assert stats.iqm(np.arange(8.0)) == pytest.approx(np.mean([2, 3, 4, 5]))
    # n = 10: [2.5, 7.5) holds half of x[2], x[3..6], half of x[7]
    x = np.array([9.0, 0, 1, 2, 3, 4, 5, 6, 7, 100])
    assert stats.iqm(x) == pytest.approx((0.5 * 2 + 3 + 4 + 5 + 6 + 0.5 * 7) / 5)
    # one seed far off moves the mean, not the IQM
    assert stats.iqm(np.r_[np.full(7, 0.2), 50.0]) == pytest.approx(0.2)


def test_the_comparison_intervals_point_the_right_way():
    """Catches a difference or probability of improvement computed B against A: a family
    lower on every seed has its difference below 0 and P(A below B) above 0.5; a bimodal
    family (30% never learn) leaves the difference of means undecided while the probability
    of improvement separates."""
    rng = np.random.default_rng(0)
    low, high = rng.normal(0.2, 0.05, 30), rng.normal(0.6, 0.05, 30)
    c = stats.compare("a", low, "b", high)
    assert c.diff.high < 0 and c.p_lower.low > 0.5
    a = np.r_[np.full(21, 0.10), np.full(9, 1.0)] + rng.normal(0, 0.01, 30)
    b = rng.normal(0.3, 0.01, 30)
    c = stats.compare("a", a, "b", b)
    assert c.diff.contains(0.0)
    assert c.p_lower.low > 0.5


def test_a_bca_interval_that_falls_back_says_so():
    """Catches the label of an interval that is not what was computed: every resample on one
    side of the estimate leaves BCa undefined; the percentile interval used is labelled so."""

    def distinct(x, axis=-1):  # a resample almost never keeps all 20 distinct values
        return (np.diff(np.sort(x, axis=axis), axis=axis) > 0).sum(axis=axis)

    ci = stats.bootstrap_ci(np.arange(20.0), distinct, method="bca", n_resamples=2000)
    assert ci.estimate == 19 and ci.high < 19
    assert ci.method == "percentile"


def test_an_unknown_value_gives_no_interval():
    """A NaN (a value never measured) gives no interval; an infinite one (a diverged seed)
    is a value (``test_a_diverged_seed_counts_as_the_worst_value_not_as_a_missing_one``)."""
    ci = stats.bootstrap_ci(np.array([0.1, np.nan, 0.2]), stats.mean)
    assert np.isnan(ci.low) and np.isnan(ci.high)


@pytest.mark.parametrize("n", [999, 1_000_001, 0, 2.5, True])
def test_resample_counts_outside_the_bounds_are_refused(n):
    with pytest.raises(ValueError, match=r"^--bootstrap-resamples .* from 1,000 to 1,000,000$"):
        stats.check_resamples(n)


@pytest.mark.parametrize(
    ("values", "no_learning", "higher_better", "learned"),
    [
        ([0.50, 0.60, 0.55], 1.0, False, True),
        ([0.70, 1.30, 0.95], 1.0, False, False),  # mean below 1, interval reaches it
        ([0.5], 1.0, False, False),  # one seed: no interval, nothing shown
        ([0.5, 0.6, math.inf], 1.0, False, False),  # a diverged seed
        ([0.5, 0.6, math.nan], 1.0, False, False),
        ([0.90, 0.92, 0.91], 0.1, True, True),
        ([0.10, 0.30, 0.20], 0.1, True, False),  # chance inside the interval
        ([0.90, 0.92, 0.91], 1.0, False, True),  # the direction matters: not "above 1"
    ],
)
def test_learned_needs_an_interval_wholly_on_the_better_side(values, no_learning,
                                                             higher_better, learned):  # fmt: skip
    from study.stats import learned as verdict

    mean, half, got = verdict(np.asarray(values), no_learning, higher_better)
    assert got is learned
    if len(values) > 1 and all(map(math.isfinite, values)):
        assert (mean, half) == pytest.approx(stats.mean_ci(np.asarray(values)))


def test_a_diverged_seed_counts_as_the_worst_value_not_as_a_missing_one():
    """Catches an infinite error (a seed that diverged) turned into a NaN interval, or an
    IQM made NaN by it: the mean is infinite, the interval runs from the resamples that
    miss the seed to infinity, the IQM ignores it (it is in the top quarter), and a family
    with it loses a comparison on the probability of improvement."""
    rng = np.random.default_rng(5)
    good = rng.uniform(0.1, 0.6, 19)
    a = np.append(good, np.inf)
    ci = stats.bootstrap_ci(a, method="bca", n_resamples=4000)
    assert ci.estimate == np.inf and ci.high == np.inf and ci.method == "percentile"
    assert 0.1 < ci.low < 0.6  # the resamples that left the diverged seed out
    assert stats.iqm(a) == pytest.approx(stats.iqm(np.append(good, 1e9)))
    b = rng.uniform(0.05, 0.3, 20)  # better on every seed but by chance
    c = stats.compare("a", a, "b", b, n_resamples=4000)
    assert math.isfinite(c.p_lower.low) and c.p_lower.high < 0.5  # a is not below b
    assert math.isnan(stats.bootstrap_ci(np.append(good, np.nan)).low)  # NaN: unknown
