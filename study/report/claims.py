"""Claims about families judged on their per-seed values: each family's interval (bootstrap and
Student-t), and orderings such as the paper's (Javed et al., JMLR 2023, trace patterning:
SnAp-1 worst, then T-BPTT; columnar about equal to constructive; the CCN lowest) judged pair by
pair with ``study.stats.compare``.

The values are one final value per seed, lower better (the normalised MSRE). A comparison's
verdicts must use seeds that did not pick the configurations (``study.compare`` runs each
family's pick again on fresh seeds): picking the best of many configurations on the same seeds
whose mean is then reported favours the family with the most configurations.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from study import stats


class Claim(NamedTuple):
    """``family`` is ``relation`` (lower, higher or equal) than each of ``others``."""

    text: str
    family: str
    relation: str
    others: tuple[str, ...]


PAPER_TRACE_PATTERNING = (
    Claim("SnAp-1 worst", "snap1", "higher", ("tbptt", "columnar", "constructive", "hybrid")),
    Claim(
        "T-BPTT next worst (above columnar, constructive, CCN)",
        "tbptt",
        "higher",
        ("columnar", "constructive", "hybrid"),
    ),
    Claim("columnar about equal to constructive", "columnar", "equal", ("constructive",)),
    Claim("CCN lowest", "hybrid", "lower", ("columnar", "constructive", "tbptt", "snap1")),
)


class Judged(NamedTuple):
    claim: str
    verdict: str  # holds, holds in the means, does not hold, contradicted, not measured
    evidence: str


def _worst_if_diverged(values: np.ndarray) -> np.ndarray:
    """Per-seed errors with a diverged seed's (NaN or inf) the worst there is: infinite (the
    bootstrap keeps it, ``study.stats.bootstrap_ci``)."""
    x = np.asarray(values, np.float64)
    return np.where(np.isfinite(x), x, np.inf)


def family_summary(
    values: np.ndarray, n_resamples: int = stats.N_RESAMPLES, seed: int = stats.SEED
) -> dict[str, Any]:
    """The mean with its BCa bootstrap and Student-t 95% intervals, the median and the IQM
    (with a percentile bootstrap interval), over one family's per-seed values."""
    x = np.asarray(values, np.float64)
    boot = stats.bootstrap_ci(x, stats.mean, n_resamples=n_resamples, seed=seed)
    _, half = stats.mean_ci(x)
    middle = stats.bootstrap_ci(
        x, stats.iqm, method="percentile", n_resamples=n_resamples, seed=seed
    )
    return {
        "n": int(x.size),
        "mean": boot.estimate,
        "boot_low": boot.low,
        "boot_high": boot.high,
        "t_half": half,
        "median": float(np.median(x)) if x.size else math.nan,
        "iqm": middle.estimate,
        "iqm_low": middle.low,
        "iqm_high": middle.high,
    }


def judge(
    claims: tuple[Claim, ...],
    values: dict[str, np.ndarray],
    n_resamples: int = stats.N_RESAMPLES,
    seed: int = stats.SEED,
) -> list[Judged]:
    """Each claim's verdict and its evidence, pair by pair (``stats.Comparison.verdict``).

    A claim against several families ``holds`` when it holds against each;
    ``contradicted`` when any pair shows the opposite with 95% confidence; ``holds in the
    means`` when every pair's difference of means points the claimed way; otherwise ``does
    not hold``. ``equal`` holds when no pair differs with 95% confidence. Families with no
    values make the claim ``not measured``."""
    out = []
    for c in claims:
        need = (c.family, *c.others)
        missing = [n for n in need if n not in values or not np.asarray(values[n]).size]
        if missing:
            out.append(Judged(c.text, "not measured", f"needs {', '.join(missing)}"))
            continue
        pairs = [
            stats.compare(
                c.family,
                _worst_if_diverged(values[c.family]),
                o,
                _worst_if_diverged(values[o]),
                n_resamples=n_resamples,
                seed=seed,
            )
            for o in c.others
        ]
        verdicts = [p.verdict(c.relation) for p in pairs]
        if c.relation == "equal":
            verdict = "holds" if all(v == "holds" for v in verdicts) else "does not hold"
        elif all(v == "holds" for v in verdicts):
            verdict = "holds"
        elif "contradicted" in verdicts:
            verdict = "contradicted"
        elif all(v in ("holds", "holds in the means") for v in verdicts):
            verdict = "holds in the means"
        else:
            verdict = "does not hold"
        out.append(Judged(c.text, verdict, "; ".join(_pair_text(p, c.relation) for p in pairs)))
    return out


def _pair_text(p: stats.Comparison, relation: str) -> str:
    """``snap1 - tbptt = 0.12 [0.03, 0.2]; P(snap1 above) = 0.71 [0.55, 0.86]``."""
    if relation == "higher":
        prob = stats.Interval(
            1 - p.p_lower.estimate,
            1 - p.p_lower.high,
            1 - p.p_lower.low,
            p.p_lower.level,
            p.p_lower.method,
            p.p_lower.n_resamples,
        )
        word = "above"
    else:
        prob, word = p.p_lower, "below"
    return f"{p.a} - {p.b} = {p.diff.text(2)}, P({p.a} {word} {p.b} on a seed) = {prob.text(2)}"


def method_note(n_seeds: dict[str, int], n_resamples: int) -> str:
    """How the verdicts were reached, for the page and the terminal."""
    seeds = ", ".join(f"{k} {v}" for k, v in n_seeds.items())
    return (
        f"95% intervals by bootstrap ({n_resamples:,} resamples, seeded, each family's "
        f"seeds resampled on their own; percentile intervals for the difference of means "
        f"and for P(A below B on a random seed), BCa for each family's mean); seeds per "
        f"family: {seeds}. A claim holds when the interval of the difference of means, or "
        f"of the probability, excludes no difference in the claimed direction."
    )
