"""Short learning runs on the default trace-patterning task: every recurrent learner ends
clearly below the best linear TD(lambda) baseline. What it holds them to is in docs/testing.md."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from study.engine.trial import TrialRun, finish
from study.tasks.metrics import summarise_blocks

# One xdist worker runs these, so the linear baseline (a module fixture) is computed once.
pytestmark = pytest.mark.xdist_group("learning")

STEPS = 800_000
SEEDS = [0, 1, 2]
COMMON = dict(lambda_=0.9, norm_rate=0.0, init_scale=0.5)


def windowed_msre(name, alphas, static, **hp_kw):
    """The windowed MSRE [step sizes, seeds] of a trial (``study.engine.trial``, the engine of every
    run) of one configuration per step size."""
    config = dict(task="trace_patterning", learner=name, **static, **COMMON, **hp_kw,
                  seeds=SEEDS, steps=STEPS, block=10_000, window=100_000, chunk_steps=STEPS,
                  report_min_s=0, pack=[{"alpha": a} for a in alphas])  # fmt: skip
    run = TrialRun(config)
    assert run.hp.alpha.dtype == jnp.float32  # float64 from another test module must not leak
    finish(run)
    out = []
    for i in range(len(alphas)):
        stats = run.record(i).stats
        assert not stats.nonfinite.any()
        out.append(summarise_blocks(stats.sq_sum, stats.count, window_blocks=10)["windowed"])
    return np.stack(out)


@pytest.fixture(scope="module")
def linear_best():
    msre = windowed_msre("linear", [1e-3, 3e-4, 1e-4], {})
    return float(msre.mean(axis=1).min())


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,static,hp_kw,mean_ratio",
    [
        ("columnar", dict(n_features=7), {}, 0.75),
        ("hybrid", dict(n_features=12, per_stage=6), dict(steps_per_stage=STEPS // 2), 0.75),
        # Constructive (one column per stage) is left out to keep the suite short: it equals
        # hybrid with one column per stage bit for bit (tests/test_learners.py), and learns
        # least at this budget (README, "Tests").
    ],
)
def test_recurrent_learner_beats_linear_on_trace_patterning(
    name, static, hp_kw, mean_ratio, linear_best
):
    msre = windowed_msre(name, [1e-3], static, **hp_kw)[0]
    print(f"{name}: windowed MSRE per seed {msre}, best linear {linear_best:.5f}")
    assert linear_best > 0.015  # the memoryless baseline cannot time the US
    # Mean over seeds below the baseline, and at least one seed far below it (single seeds
    # vary: some discover the pattern memory later than others within this short budget).
    assert msre.mean() < mean_ratio * linear_best, (msre, linear_best)
    assert msre.min() < 0.5 * linear_best, (msre, linear_best)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["columnar", "snap1"])
def test_a_familys_defaults_learn(name):
    """The smaller version of ``python -m study.defaults`` (README, "Defaults that learn"):
    with nothing but the task set, a family's defaults end below the best constant predictor
    with 95% confidence. Catches a default that cripples a family (SnAp-1's dense layer drawn
    at a fixed scale, or lambda 0.9, left it at the constant's score at this budget)."""
    from study.defaults import measure

    # five seeds, as the README's defaults table: with three the interval is so wide (t = 4.3)
    # that one seed finding the pattern late hides the others' learning
    row = measure(name, "trace_patterning", 1_000_000, 5)
    print(row)
    assert row["learned"], row
    assert row["nmsre"] < 0.6, row
