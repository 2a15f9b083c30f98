"""Selection that counts its own noise: racing over tuning seeds, and each pick's stability.

``--racing 5,10,20`` runs every configuration of a preset's grid on the first 5 tuning seeds
(the grid stage, ``NAME``), keeps the better half of each family's configurations (at least
two, so there is always a runner-up) for seeds 5-9 (``NAME-race2``), the better half of those
for seeds 10-19 (``NAME-race3``), and so on: each round ranks a family's configurations by
their mean final windowed MSRE over every tuning seed they ran, a configuration with a
diverged run last. The last round's configurations are the finalists; the pick is the
finalist with the lowest mean over all its tuning seeds (at least ``MIN_FINAL_SEEDS``).

A pick's **stability** is the share of bootstrap resamples of the finalists' tuning seeds
(every finalist ran the same seeds: one resample draws seed indices for all of them) whose
lowest mean is the pick's. Below ``--stability-threshold`` (default 0.5) the pick is not
settled by its tuning seeds: the runner-up (the finalist picked most often in the other
resamples) runs on the fresh seeds too, and the report says which of the two did better
there; the claims are judged on the pick, whose fresh seeds chose nothing.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, NamedTuple

import numpy as np

MIN_FINAL_SEEDS = 20  # finalists' tuning seeds, at least
KEEP = 0.5  # share of a family's configurations kept for the next round
STABILITY = 0.5  # default --stability-threshold
RESAMPLES = 2000


def parse_racing(text: str | None, seeds_given: int | None) -> tuple[int, ...] | None:
    """``--racing`` as typed: increasing cumulative tuning-seed counts ending at
    ``MIN_FINAL_SEEDS`` or more (None when not given). Raises a one-line ValueError."""
    if text is None:
        return None
    try:
        schedule = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        schedule = ()
    if (len(schedule) < 2 or schedule[0] < 2 or any(b <= a for a, b in itertools.pairwise(schedule))
            or schedule[-1] > 4096):  # fmt: skip
        raise ValueError(f"--racing {text}: allowed: two or more increasing seed counts, "
                         f"comma-separated, from 2 (e.g. 5,10,20)")  # fmt: skip
    if schedule[-1] < MIN_FINAL_SEEDS:
        raise ValueError(f"--racing {text}: the finalists would have {schedule[-1]} tuning "
                         f"seeds; allowed: a schedule that reaches at least {MIN_FINAL_SEEDS} "
                         f"(e.g. 5,10,20)")  # fmt: skip
    if seeds_given is not None and seeds_given != schedule[0]:
        raise ValueError(f"--seeds {seeds_given} with --racing {text}: the race's first round "
                         f"sets the tuning seeds ({schedule[0]}); give one or the "
                         f"other")  # fmt: skip
    return schedule


def check_threshold(value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"--stability-threshold {value}: allowed: a share from 0 to 1 "
                         f"(default {STABILITY:g})")  # fmt: skip
    return x


def _mean(t) -> float:
    """A trial's selection value: its mean final value over every seed, infinite when a
    seed diverged or it did not finish."""
    if t.status != "finished" or not t.seed_finals.size or not np.isfinite(t.seed_finals).all():
        return math.inf
    return float(t.seed_finals.mean())


def standings(trials: list) -> dict[str, list]:
    """Per family, its configurations run on the most tuning seeds, best first (merged
    across rounds: ``study.report.load.merge_rounds``)."""
    out: dict[str, list] = {}
    for t in trials:
        if t.role == "tuning":
            out.setdefault(t.learner, []).append(t)
    for learner, mine in out.items():
        most = max(len(t.seeds) for t in mine)
        out[learner] = sorted((t for t in mine if len(t.seeds) == most), key=_mean)
    return out


def survivors(trials: list, keep: float = KEEP) -> list[dict[str, Any]]:
    """The configurations of the next round: each family's better ``keep`` share of those
    run on the most seeds so far (at least two, when there are two), finite ones only."""
    out = []
    for ranked in standings(trials).values():
        finite = [t for t in ranked if math.isfinite(_mean(t))]
        n = max(2, math.ceil(len(ranked) * keep))
        out += [dict(t.config) for t in finite[:n]]
    return out


class Stability(NamedTuple):
    learner: str
    pick: Any  # the finalist Trial with the lowest mean
    runner_up: Any | None  # the finalist picked most often in the other resamples
    share: float  # of resamples that select the pick
    finalists: int
    seeds: int  # tuning seeds of each finalist


def stability(trials: list, resamples: int = RESAMPLES, seed: int = 0) -> dict[str, Stability]:
    """Each family's pick among its finalists and how often a bootstrap resample of their
    tuning seeds selects it again (the seeds drawn once for all finalists of a family)."""
    out = {}
    rng = np.random.default_rng(seed)
    for learner, ranked in standings(trials).items():
        finite = [t for t in ranked if math.isfinite(_mean(t))]
        if not finite:
            continue
        order = [np.argsort(t.seeds) for t in finite]
        values = np.stack([t.seed_finals[o] for t, o in zip(finite, order, strict=True)])
        n = values.shape[1]
        draws = rng.integers(0, n, (resamples, n))
        chosen = np.argmin(values[:, draws].mean(axis=-1), axis=0)  # (resamples,)
        counts = np.bincount(chosen, minlength=len(finite))
        others = counts.copy()
        others[0] = -1
        runner = finite[int(np.argmax(others))] if len(finite) > 1 else None
        out[learner] = Stability(learner, finite[0], runner, counts[0] / resamples,
                                 len(finite), n)  # fmt: skip
    return out


def stability_lines(found: dict[str, Stability], threshold: float,
                    raced: bool = True) -> list[str]:  # fmt: skip
    """The report's lines on each pick's stability (``raced``: the runner-up of an unstable
    pick ran on the fresh seeds, as it does after racing)."""
    lines = []
    for s in found.values():
        text = (f"{s.learner}: pick {s.pick.label()} re-selected in {s.share:.0%} of "
                f"{RESAMPLES:,} bootstrap resamples of its {s.seeds} tuning seeds "
                f"({s.finalists} finalists)")  # fmt: skip
        if s.share < threshold and s.runner_up is not None and raced:
            text += (f"; below {threshold:.0%}: the runner-up {s.runner_up.label()} also ran "
                     f"on the fresh seeds")  # fmt: skip
        elif s.share < threshold:
            text += (f"; below {threshold:.0%}: the tuning seeds do not settle the pick "
                     f"(--racing adds seeds and runs the runner-up on the fresh "
                     f"seeds)")  # fmt: skip
        lines.append(text)
    return lines
