"""Claims about families judged on their per-seed values: each family's figures with its
diverged seeds apart, and orderings such as the paper's (Javed et al., JMLR 2023, trace
patterning: SnAp-1 worst, then T-BPTT; columnar about equal to constructive; the CCN lowest)
judged pair by pair with the rules of ``study.verdicts`` (stated error rates, Holm's
correction over the report's pairs).

The values are one final value per seed, lower better (the normalised MSRE). A comparison's
verdicts must use seeds that did not pick the configurations (``study.compare`` runs each
family's pick again on fresh seeds): picking the best of many configurations on the same seeds
whose mean is then reported favours the family with the most configurations.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from study import stats, verdicts


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
    verdict: str  # supported, contradicted, equivalent, unresolved or not measured
    evidence: str
    seeds_needed: int = 0  # unresolved: fresh seeds per family for 80% power; else 0


def family_summary(
    values: np.ndarray, n_resamples: int = stats.N_RESAMPLES, seed: int = stats.SEED
) -> dict[str, Any]:
    """One family's per-seed values with divergence reported apart: the count and rate of
    diverged seeds (a value NaN or infinite) with its exact Clopper-Pearson 95% interval, and
    over the finite seeds only the mean with its bootstrap and Student-t 95% intervals (BCa,
    or percentile where BCa is undefined: ``boot_method`` says which), the median and the IQM
    (percentile interval). No statistic of the error is infinite."""
    x = np.asarray(values, np.float64).ravel()
    finite = x[np.isfinite(x)]
    diverged = int(x.size - finite.size)
    rate_low, rate_high = verdicts.clopper_pearson(diverged, int(x.size))
    boot = stats.bootstrap_ci(finite, stats.mean, n_resamples=n_resamples, seed=seed)
    _, half = stats.mean_ci(finite) if finite.size else (math.nan, math.nan)
    middle = stats.bootstrap_ci(
        finite, stats.iqm, method="percentile", n_resamples=n_resamples, seed=seed
    )
    return {
        "n": int(x.size),
        "finite": int(finite.size),
        "diverged": diverged,
        "diverged_rate": diverged / x.size if x.size else math.nan,
        "diverged_low": rate_low,
        "diverged_high": rate_high,
        "mean": float(finite.mean()) if finite.size else math.nan,
        "boot_low": boot.low,
        "boot_high": boot.high,
        "boot_method": boot.method,
        "t_half": half,
        "median": float(np.median(finite)) if finite.size else math.nan,
        "iqm": middle.estimate if finite.size else math.nan,
        "iqm_low": middle.low,
        "iqm_high": middle.high,
    }


def claim_pairs(claims: tuple[Claim, ...]) -> list[tuple[str, str]]:
    """Every pair of families the claims compare, each unordered pair once (the family of
    hypotheses Holm's correction runs over)."""
    seen: dict[frozenset[str], tuple[str, str]] = {}
    for c in claims:
        for o in c.others:
            seen.setdefault(frozenset((c.family, o)), (c.family, o))
    return list(seen.values())


def judge(
    claims: tuple[Claim, ...],
    values: dict[str, np.ndarray],
    *,
    alpha: float = verdicts.ALPHA,
    margin: float = verdicts.MARGIN,
    looks: int = 1,
    power_statement: bool = True,
) -> list[Judged]:
    """Each claim's outcome and its evidence (``study.verdicts``): the pairs of all claims
    measured are tested together, Holm-corrected at ``alpha / looks``.

    A claim that ``family`` is lower (higher) than each of ``others`` is ``supported`` when
    every pair finds it so, ``contradicted`` when any pair finds the opposite, ``equivalent``
    when a pair it needs is equivalent within ``margin`` (and none contradicts it),
    otherwise ``unresolved`` (with the fresh seeds a family would need). A claim of
    equality is ``equivalent`` when every pair is shown within the margin (a difference
    smaller than the margin may be found too: the evidence says so), ``contradicted`` when
    another pair differs, otherwise ``unresolved``. Families with no values make the claim
    ``not measured``."""
    present = {k for k, v in values.items() if np.asarray(v).size}
    measured = tuple(c for c in claims if {c.family, *c.others} <= present)
    pairs = verdicts.pair_outcomes(values, claim_pairs(measured), alpha=alpha, margin=margin,
                                   looks=looks, power_statement=power_statement)  # fmt: skip
    out = []
    for c in claims:
        if c not in measured:
            missing = [n for n in (c.family, *c.others) if n not in present]
            out.append(Judged(c.text, "not measured", f"needs {', '.join(missing)}"))
            continue
        found = [_oriented(pairs, c.family, o) for o in c.others]
        out.append(_claim_outcome(c, found, margin))
    return out


def _oriented(pairs: dict[tuple[str, str], verdicts.Pair], a: str, b: str) -> verdicts.Pair:
    """The pair (a, b), turned round when it was tested as (b, a)."""
    if (a, b) in pairs:
        return pairs[(a, b)]
    p = pairs[(b, a)]
    flip = {"lower": "higher", "higher": "lower"}.get(p.outcome, p.outcome)
    diff = p.diff._replace(diff=-p.diff.diff) if p.diff is not None else None
    prob = p.prob._replace(p_lower=1.0 - p.prob.p_lower)
    return p._replace(a=a, b=b, n_a=p.n_b, n_b=p.n_a, diverged_a=p.diverged_b,
                      diverged_b=p.diverged_a, diff=diff, prob=prob, outcome=flip)  # fmt: skip


def _claim_outcome(c: Claim, found: list[verdicts.Pair], margin: float) -> Judged:
    evidence = "; ".join(_pair_text(p, c.relation) for p in found)
    outcomes = [p.outcome for p in found]
    unresolved = [p for p in found if p.outcome == "unresolved"]
    needed = max((p.seeds_needed for p in unresolved), default=0)
    if c.relation == "equal":  # shown within the margin: equal as claimed, even if a
        if all(p.equivalent for p in found):  # smaller difference is found too
            verdict = "equivalent"
        elif any(o in ("lower", "higher") for o in outcomes):
            verdict = "contradicted"
        else:
            verdict = "unresolved"
    else:
        against = "higher" if c.relation == "lower" else "lower"
        if against in outcomes:
            verdict = "contradicted"
        elif all(o == c.relation for o in outcomes):
            verdict = "supported"
        elif "equivalent" in outcomes:
            verdict = "equivalent"
        else:
            verdict = "unresolved"
    decided = [p for p in found if p.outcome in ("lower", "higher")]
    if verdict in ("supported", "contradicted") and any(p.by_divergence for p in decided):
        evidence += "; decided only by divergence: without the diverged seeds it is not"
    if verdict == "unresolved":
        evidence += f"; {_needed_text(needed)}"
    else:
        needed = 0
    return Judged(c.text, verdict, evidence, needed)


def _needed_text(n: int) -> str:
    if n > verdicts.SEEDS_CAP:
        return (
            f"more than {verdicts.SEEDS_CAP:,} fresh seeds a family would be needed for 80% power"
        )
    return f"about {n:,} fresh seeds a family would give 80% power at the observed spread"


def _pair_text(p: verdicts.Pair, relation: str) -> str:
    """``snap1 - tbptt = 0.12 [0.03, 0.2] (finite seeds, Welch); P(snap1 above tbptt on a
    seed) = 0.71 [0.55, 0.86] (Brunner-Munzel); Holm p 0.004: higher``."""
    if p.diff is not None:
        lo, hi = p.diff.interval()
        means = f"{p.a} - {p.b} = {p.diff.diff:.2g} [{lo:.2g}, {hi:.2g}] (finite seeds, Welch)"
    else:
        means = f"{p.a} - {p.b}: fewer than 2 finite seeds"
    lo, hi = p.prob.interval()
    prob, word = p.prob.p_lower, "below"
    if relation == "higher":
        prob, lo, hi, word = 1 - prob, 1 - hi, 1 - lo, "above"
    diverged = [f"{k} {d}/{n} diverged" for k, d, n in ((p.a, p.diverged_a, p.n_a),
                                                      (p.b, p.diverged_b, p.n_b)) if d]  # fmt: skip
    return (f"{means}, P({p.a} {word} {p.b} on a seed) = {prob:.2g} [{lo:.2g}, {hi:.2g}]"
            f"{' (' + ', '.join(diverged) + ')' if diverged else ''}: "
            f"{_pair_word(p)} (Holm p {p.p_adjusted:.2g}, "
            f"equivalence p {p.p_equivalent:.2g})")  # fmt: skip


def _pair_word(p: verdicts.Pair) -> str:
    if p.outcome in ("lower", "higher"):
        return f"{p.a} {p.outcome}"
    return p.outcome


def method_note(n_seeds: dict[str, int], alpha: float = verdicts.ALPHA,
                margin: float = verdicts.MARGIN, looks: int = 1) -> str:  # fmt: skip
    """How the verdicts were reached, for the page and the terminal."""
    seeds = ", ".join(f"{k} {v}" for k, v in n_seeds.items())
    sequential = (f", at {alpha / looks:g} per look of {looks} (Bonferroni over the looks of "
                  f"--eval-seeds auto)" if looks > 1 else "")  # fmt: skip
    return (
        f"Each pair of families: Welch's t-test of the difference of means over the finite "
        f"seeds and the Brunner-Munzel test of P(A below B on a seed), a diverged seed the "
        f"worst outcome; a pair differs when the smaller p, doubled, passes Holm's correction "
        f"over the report's pairs at {alpha:g} family-wise{sequential}, and is equivalent when "
        f"two one-sided tests put the difference of means within +-{margin:g} (Holm-corrected "
        f"likewise). Supported or contradicted with no true difference: at most {alpha:.0%} of "
        f"reports; equivalent with a true difference of {margin:g}: at most {alpha:.0%} "
        f"(tests/test_verdicts.py). Intervals shown are 95% and unadjusted. Fresh seeds per "
        f"family: {seeds}."
    )
