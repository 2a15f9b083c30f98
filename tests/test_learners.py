"""Learner settings, equivalences between the staged learners, and stage mechanics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learners import STAGE_FOREVER, make_hparams, make_learner
from study.engine.loop import make_run, seed_keys
from study.tasks import make_task


def _run(learner, hp, steps=3000, task="trace_patterning"):
    env, tp = make_task(task)
    run = jax.jit(make_run(learner, env, steps, block_size=500))
    return run(seed_keys([3])[0], hp, tp)


def test_columnar_equals_hybrid_with_one_stage_bit_for_bit():
    hp = make_hparams(alpha=3e-3, steps_per_stage=STAGE_FOREVER)
    a = _run(make_learner("columnar", 12, n_features=5), hp)
    b = _run(make_learner("hybrid", 12, n_features=5, per_stage=5), hp)
    np.testing.assert_array_equal(a.sq_sum, b.sq_sum)


def test_constructive_equals_hybrid_with_one_column_per_stage_bit_for_bit():
    hp = make_hparams(alpha=3e-3, steps_per_stage=700)
    a = _run(make_learner("constructive", 12, n_features=4), hp)
    b = _run(make_learner("hybrid", 12, n_features=4, per_stage=1), hp)
    np.testing.assert_array_equal(a.sq_sum, b.sq_sum)
    c = _run(make_learner("hybrid", 12, n_features=4, per_stage=2), hp)
    assert not np.array_equal(a.sq_sum, c.sq_sum)


def test_stages_freeze_and_start_in_order():
    learner = make_learner("hybrid", 12, n_features=6, per_stage=2)
    hp = make_hparams(alpha=1e-2, steps_per_stage=50, init_scale=0.5)
    env, tp = make_task("trace_patterning")
    state = learner.init(jax.random.PRNGKey(0), hp)
    theta0 = state.theta
    step = jax.jit(learner.step)
    xs = jax.random.bernoulli(jax.random.PRNGKey(1), 0.3, (160, 12)).astype(jnp.float32)
    snapshots = {}
    for t, x in enumerate(xs):
        state, out = step(state, x, x[0], hp)
        assert int(out["stage"]) == min(t // 50, 2)
        if t in (49, 99, 159):
            snapshots[t] = state
    s49, s99, s159 = snapshots[49], snapshots[99], snapshots[159]
    # Before a stage starts its columns are silent, its readout weights zero, its params unchanged.
    assert float(jnp.abs(s49.h[2:]).max()) == 0 and float(jnp.abs(s49.w[2:]).max()) == 0
    np.testing.assert_array_equal(s49.theta[1:], theta0[1:])
    assert float(jnp.abs(s49.theta[0] - theta0[0]).max()) > 0
    # Stage 0 takes its last update at step 50 and is frozen from then on.
    np.testing.assert_array_equal(s159.theta[0], s99.theta[0])
    np.testing.assert_array_equal(s159.feat_mean[:2], s99.feat_mean[:2])
    assert float(jnp.abs(s99.theta[1] - theta0[1]).max()) > 0
    assert float(jnp.abs(s159.theta[2] - theta0[2]).max()) > 0
    # Stage 1 is frozen during stage 2, and the readout of every active feature learns.
    assert float(jnp.abs(s159.w[4:]).max()) > 0
    # Weights of features a stage may not read stay exactly zero.
    assert float(jnp.abs(s159.theta[1, :, :, 12 + 2 : -2]).max()) == 0


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(name="columnar", n_features=0), "n_features=0 must be >= 1"),
        (dict(name="hybrid", n_features=10, per_stage=3), "per_stage=3 does not divide"),
        (dict(name="hybrid", n_features=10, per_stage=0), "per_stage=0 must be >= 1"),
        (dict(name="gru", n_features=3), "unknown learner 'gru'"),
    ],
)
def test_bad_learner_settings_fail_with_one_line(kwargs, needle):
    with pytest.raises(ValueError) as e:
        make_learner(kwargs.pop("name"), 12, **kwargs)
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(steps_per_stage=-5), "steps_per_stage=-5"),
        (dict(lambda_=1.5), "lambda_=1.5"),
        (dict(alpha=-0.1), "alpha=-0.1"),
        (dict(gamma=1.0), "gamma=1.0 is not allowed; need 0 <= gamma < 1"),
        (dict(alpha=float("nan")), "alpha=nan is not allowed; need alpha >= 0"),
        (dict(beta2=1.0), "beta2=1.0"),
        (dict(norm_floor=0.0), "norm_floor=0.0"),
        (dict(stepsize=0.1), "unknown hyperparameter"),
    ],
)
def test_bad_hparams_fail_with_one_line(kwargs, needle):
    with pytest.raises(ValueError) as e:
        make_hparams(**kwargs)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_parameter_count_matches_the_paper_formula():
    # Columnar: 4(m + 2) per column plus readout; constructive: column k reads k-1 features.
    assert make_learner("columnar", 12, n_features=7).n_params == 7 * 4 * 14 + 8
    assert make_learner("constructive", 12, n_features=3).n_params == 4 * (14 + 15 + 16) + 4
    assert make_learner("hybrid", 12, n_features=4, per_stage=2).n_params == (
        2 * 4 * 14 + 2 * 4 * 16 + 5
    )
