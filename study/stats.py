"""Summary statistics over seeds."""

from __future__ import annotations

import numpy as np
from scipy import stats


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval over the last axis' values.

    NaN values (diverged runs) propagate; one value gives a half-width of NaN.
    """
    x = np.asarray(values, np.float64).ravel()
    n = x.size
    m = float(np.mean(x))
    if n < 2:
        return m, float("nan")
    sem = float(np.std(x, ddof=1)) / np.sqrt(n)
    return m, float(stats.t.ppf(0.5 + level / 2, n - 1) * sem)
