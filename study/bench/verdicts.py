"""``python -m study.bench.verdicts``: the verdict rules' error rates and power, simulated, as
the Markdown table the docs quote (``study.verdicts``; the tests in ``tests/test_verdicts.py``
hold the same rates to their bounds).

Each row is 1,000 repetitions (``--reps``) of one situation: five families with no true
difference (normal and log-normal seeds, 20 a family), the same judged pair by pair without
Holm's correction, one family apart by exactly the equivalence margin, fresh seeds added in
rounds until resolved (and the same peeking at the full level), and the power at the seeds
the rules say a claim needs.
"""

from __future__ import annotations

import sys

import numpy as np

from study import verdicts
from study.cli import Parser, count, markdown_table, provenance
from study.report.claims import PAPER_TRACE_PATTERNING, judge

FAMILIES = ("snap1", "tbptt", "columnar", "constructive", "hybrid")
CALLED = ("supported", "contradicted")


def _null(rng, n: int, skewed: bool) -> dict[str, np.ndarray]:
    if skewed:
        return {f: rng.lognormal(np.log(0.3), 0.5, n) for f in FAMILIES}
    return {f: rng.normal(0.3, 0.15, n) for f in FAMILIES}


def _called(values, **kw) -> bool:
    found = judge(PAPER_TRACE_PATTERNING, values, power_statement=False, **kw)
    return any(j.verdict in CALLED for j in found)


def rows(reps: int) -> list[list[str]]:
    out = []
    for skewed in (False, True):
        rng = np.random.default_rng(7 + skewed)
        called = alone = 0
        for _ in range(reps):
            values = _null(rng, 20, skewed)
            called += _called(values)
            pairs = [("snap1", "tbptt"), ("hybrid", "columnar"), ("tbptt", "columnar"),
                     ("columnar", "constructive"), ("snap1", "hybrid")]  # fmt: skip
            alone += any(verdicts.pair_outcomes(values, [p], power_statement=False)[p].outcome
                         in ("lower", "higher") for p in pairs)  # fmt: skip
        seeds = "log-normal" if skewed else "normal"
        out.append([f"no difference, {seeds}, 20 seeds", "supported or contradicted",
                    "at most 5%", f"{called / reps:.1%}"])  # fmt: skip
        out.append(["the same, five pairs each judged alone (no Holm)",
                    "a pair called different", "(no correction)",
                    f"{alone / reps:.1%}"])  # fmt: skip
    rng = np.random.default_rng(11)
    at = 0
    for _ in range(reps):
        values = {f: rng.normal(0.3, 0.05, 60) for f in FAMILIES}
        values["constructive"] = values["constructive"] + verdicts.MARGIN
        found = {j.claim: j.verdict for j in judge(PAPER_TRACE_PATTERNING, values,
                                                   power_statement=False)}  # fmt: skip
        at += found["columnar about equal to constructive"] == "equivalent"
    out.append([f"constructive {verdicts.MARGIN:g} above the others, 60 seeds",
                "columnar about equal to constructive: equivalent", "at most 5%",
                f"{at / reps:.1%}"])  # fmt: skip
    rng = np.random.default_rng(5)
    schedule = (20, 40, 80, 100)
    called = peek = 0
    for _ in range(reps):
        values = _null(rng, schedule[-1], False)
        hit = naive = False
        for n in schedule:
            seen = {f: v[:n] for f, v in values.items()}
            found = judge(PAPER_TRACE_PATTERNING, seen, looks=len(schedule), power_statement=False)
            hit |= any(j.verdict in CALLED for j in found)
            naive |= _called(seen)
            if all(j.verdict != "unresolved" for j in found):
                break
        called += hit
        peek += naive
    out.append(["no difference, seeds in rounds of 20, 40, 80, 100", "supported or contradicted",
                "at most 5%", f"{called / reps:.1%}"])  # fmt: skip
    out.append(["the same, every look at the full level", "supported or contradicted",
                "(peeking)", f"{peek / reps:.1%}"])  # fmt: skip
    level = verdicts.ALPHA / 10
    for diff, sd_a, sd_b, delta in ((0.1, 0.15, 0.25, None), (0.06, 0.09, 0.2, None),
                                    (0.01, 0.1, 0.12, verdicts.MARGIN)):  # fmt: skip
        n = verdicts.seeds_for_power(diff, sd_a, sd_b, level, delta=delta)
        rng = np.random.default_rng(3)
        hits = 0
        for _ in range(reps):
            w = verdicts.welch(rng.normal(diff, sd_a, n), rng.normal(0.0, sd_b, n))
            hits += (w.p_two_sided() if delta is None else w.p_equivalent(delta)) <= level
        test = "difference found" if delta is None else "equivalence shown"
        out.append([f"difference {diff:g}, spreads {sd_a:g} and {sd_b:g}: {n} seeds stated",
                    f"{test} at 0.005", "80% within 10 points", f"{hits / reps:.1%}"])  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m study.bench.verdicts",
               description="Simulate the verdict rules' error rates and power.")  # fmt: skip
    p.add_argument("--reps", type=count(100, 100_000), default=1000,
                   help="repetitions of each situation (1,000)")  # fmt: skip
    args = p.parse_args(argv)
    table = markdown_table(["situation", "outcome counted", "stated", "simulated"],
                           rows(args.reps), right={3})  # fmt: skip
    print("\n".join(table) + "\n\n" + provenance(args.command_line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
