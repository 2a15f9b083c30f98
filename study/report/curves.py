"""A pick's learning curve from its records: steps, mean and 95% t half-width over seeds."""

from __future__ import annotations

from typing import Any

import numpy as np

from study.engine.kinds import NORMALISED_CURVE
from study.report.load import Trial
from study.stats import mean_ci


def curve_band(store: Any, trial: Trial,
               normalised: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Steps, mean and 95% t half-width over seeds of a trial's learning curve (its
    normalised MSRE when ``normalised`` and the run logged it per seed)."""
    first = f"{NORMALISED_CURVE}_seed{trial.seeds[0]}" if trial.seeds else None
    if normalised and first and store.history(trial.run_id, first):
        return _band(store, trial, NORMALISED_CURVE)
    for curve in (trial.measure.curve, trial.measure.old_curve):
        per_seed = []
        for s in trial.seeds:
            points = store.history(trial.run_id, f"{curve}_seed{s}")
            per_seed.append({m.step: m.value for m in points})
        steps = sorted(set().union(*[set(h) for h in per_seed])) if per_seed else []
        if steps or store.history(trial.run_id, curve):
            break
    if not steps:  # runs logged before per-seed curves: the mean only
        points = store.history(trial.run_id, curve)
        steps = sorted(m.step for m in points)
        values = {m.step: m.value for m in points}
        return np.array(steps), np.array([values[s] for s in steps]), np.full(len(steps), np.nan)
    return _mean_band(per_seed, steps)


def _band(store: Any, trial: Trial, curve: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    per_seed = [{m.step: m.value for m in store.history(trial.run_id, f"{curve}_seed{s}")}
                for s in trial.seeds]  # fmt: skip
    return _mean_band(per_seed, sorted(set().union(*[set(h) for h in per_seed])))


def _mean_band(per_seed: list[dict[int, float]], steps: list[int]):
    means, halves = [], []
    for step in steps:
        values = np.array([h[step] for h in per_seed if step in h])
        m, h = mean_ci(values)
        means.append(m)
        halves.append(h)
    return np.array(steps), np.array(means), np.array(halves)
