"""The running normalisation of inputs and features follows the authors' reference code.

Reference (``LSTM::update_statistics`` and the network's feature statistics): with
``r = normalization_rate`` and ``cap = std_cap``, ``m <- r m + (1 - r) x``, then
``v <- r v + (1 - r) (x - m)^2`` with the mean just updated, then ``v <- max(v, cap)`` stored;
values are used as ``(x - m) / sqrt(v)``. Ours: ``norm_rate = 1 - r``, ``norm_floor = cap``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learners import make_hparams, make_learner
from learners.td import update_stats

# A stream worked by hand with r = 0.5 (norm_rate 0.5) and cap = 0.1, from m = 0, v = 1:
#   x=1: m=0.5      v=0.5*1        + 0.5*(1-0.5)^2      = 0.625
#   x=0: m=0.25     v=0.5*0.625    + 0.5*(0-0.25)^2     = 0.34375
#   x=0: m=0.125    v=0.5*0.34375  + 0.5*(0-0.125)^2    = 0.1796875
#   x=0: m=0.0625   v=0.5*0.1796875+ 0.5*(0-0.0625)^2   = 0.091796875 -> floored to 0.1
#   x=1: m=0.53125  v=0.5*0.1      + 0.5*(1-0.53125)^2  = 0.15986328125 (from the floor)
HAND_X = [1.0, 0.0, 0.0, 0.0, 1.0]
HAND_M = [0.5, 0.25, 0.125, 0.0625, 0.53125]
HAND_V = [0.625, 0.34375, 0.1796875, 0.1, 0.15986328125]


def test_update_stats_matches_a_hand_computed_stream():
    """Catches the old convention (the variance updated around the previous mean, the floor
    applied only where the std is used): it gives 0.75 instead of 0.625 at the first step, and
    keeps 0.0918 instead of the floor at the fourth."""
    hp = make_hparams(norm_rate=0.5, norm_floor=0.1)
    m, v = jnp.zeros(()), jnp.ones(())
    for x, want_m, want_v in zip(HAND_X, HAND_M, HAND_V, strict=True):
        m, v = update_stats(jnp.asarray(x), m, v, hp)
        assert float(m) == pytest.approx(want_m, abs=1e-7)
        assert float(v) == pytest.approx(want_v, abs=1e-7)


def test_rate_zero_is_no_normalisation():
    hp = make_hparams(norm_rate=0.0, norm_floor=0.01)
    m, v = jnp.zeros(3), jnp.ones(3)
    for x in ([1.0, 0.0, 5.0], [0.0, 2.0, -3.0]):
        m, v = update_stats(jnp.asarray(x), m, v, hp)
    np.testing.assert_array_equal(m, 0.0)
    np.testing.assert_array_equal(v, 1.0)


@pytest.mark.parametrize("name", ["linear", "columnar", "hybrid", "snap1", "tbptt"])
def test_learners_keep_the_reference_statistics_of_their_inputs(name):
    """Every learner's observation statistics follow the hand-worked recursion on a stream
    whose every input repeats the hand stream."""
    learner = make_learner(name, 3)
    hp = make_hparams(alpha=0.0, norm_rate=0.5, norm_floor=0.1, steps_per_stage=100)
    state = learner.init(jax.random.PRNGKey(0), hp)
    for x in HAND_X:
        state, _ = learner.step(state, jnp.full(3, x), jnp.zeros(()), hp)
    np.testing.assert_allclose(state.obs_mean, HAND_M[-1], atol=1e-7)
    np.testing.assert_allclose(state.obs_var, HAND_V[-1], atol=1e-7)


@pytest.mark.parametrize("name", ["columnar", "snap1", "tbptt"])
def test_the_readout_reads_features_normalised_by_statistics_that_include_the_step(name):
    """v_t = w . (h_t - m_t) / sqrt(v_t) + b with m_t, v_t updated by h_t, as the reference
    computes its prediction after updating the feature statistics (``forward``)."""
    jax.config.update("jax_enable_x64", True)
    try:
        learner = make_learner(name, 3, n_features=4)
        hp = make_hparams(alpha=0.0, norm_rate=0.3, norm_floor=0.1, init_scale=1.0)
        state = learner.init(jax.random.PRNGKey(1), hp)
        w = jnp.asarray([0.5, -1.0, 2.0, 0.25])
        state = state._replace(w=w, b=jnp.asarray(0.1))
        rng = np.random.default_rng(0)
        for _ in range(6):
            x = jnp.asarray(rng.random(3) < 0.5, jnp.float64)
            before = state
            state, out = learner.step(state, x, jnp.zeros(()), hp)
            m, v = update_stats(state.h, before.feat_mean, before.feat_var, hp)
            np.testing.assert_allclose(state.feat_mean, m, rtol=1e-12)
            np.testing.assert_allclose(state.feat_var, v, rtol=1e-12)
            want = float(jnp.dot(w, (state.h - m) / jnp.sqrt(v)) + 0.1)
            assert float(out["v"]) == pytest.approx(want, rel=1e-10)
            # the pre-step statistics would give another prediction
            stale = float(jnp.dot(w, (state.h - before.feat_mean) / jnp.sqrt(before.feat_var)))
            assert abs(stale + 0.1 - want) > 1e-6
    finally:
        jax.config.update("jax_enable_x64", False)


def test_dense_init_scales_with_fan_in():
    """Catches a dense layer drawn at a fixed scale whatever its width (wide networks then
    start with saturated gates): the largest weight is below init_scale / sqrt(fan-in)."""
    hp = make_hparams(init_scale=1.0)
    for hidden in (4, 64):
        theta = make_learner("snap1", 12, n_features=hidden).init(jax.random.PRNGKey(0), hp).theta
        bound = 1.0 / np.sqrt(12 + hidden + 1)
        assert float(jnp.max(jnp.abs(theta))) <= bound
        assert float(jnp.max(jnp.abs(theta))) > 0.9 * bound
