"""UORO: its rank-one estimate of the RTRL Jacobian is unbiased (the mean of many
independent estimates equals the exact Jacobian within what their spread allows) and noisy
(a single estimate does not); its runs are pure functions of their seed."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learners import make_hparams
from learners.dense import rtrl
from learners.uoro import uoro

pytestmark = pytest.mark.usefixtures("x64")

M, H, T, N = 2, 2, 12, 20_000


def _streams(learner, hp, xs, keys, state0):
    """Run ``learner`` from the same weights ``state0`` with each stream's own sign key."""
    step = learner.step

    def one(key):
        state = state0._replace(key=key) if hasattr(state0, "key") else state0

        def body(s, x):
            return step(s, x, jnp.zeros(()), hp)[0], None

        return jax.lax.scan(body, state, xs)[0]

    return jax.jit(jax.vmap(one))(keys)


def test_the_mean_estimate_is_the_exact_jacobian_and_one_estimate_is_not():
    hp = make_hparams(alpha=0.0, norm_rate=0.0, init_scale=1.0)
    xs = jax.random.normal(jax.random.PRNGKey(9), (T, M))
    learner, exact = uoro(M, H), rtrl(M, H)
    state0 = learner.init(jax.random.PRNGKey(0), hp)
    # exact RTRL from the same weights: its traces are d(h, c)/dtheta
    ex0 = exact.init(jax.random.PRNGKey(0), hp)._replace(theta=state0.theta)
    ex = _streams(exact, hp, xs, jnp.zeros((1, 2), jnp.uint32), ex0)
    jac = jnp.concatenate([ex.trace_h[0], ex.trace_c[0]])  # [2H, H, 4, J]
    keys = jax.random.split(jax.random.PRNGKey(1), N)
    out = _streams(learner, hp, xs, keys, state0)
    np.testing.assert_allclose(out.h[0], ex.h[0], rtol=1e-12)  # same network, same states
    est = jnp.einsum("ns,npqj->nspqj", out.s_tilde, out.theta_tilde)  # [N, 2H, H, 4, J]
    mean, sd = est.mean(0), est.std(0)
    z = jnp.abs(mean - jac) / (sd / jnp.sqrt(N) + 1e-12)
    # unbiased: every element within 5 standard errors (the largest of 2H|theta| normal
    # deviates stays near 4), and the mean as a whole close
    assert float(z.max()) < 5.0, float(z.max())
    rel = float(jnp.linalg.norm(mean - jac) / jnp.linalg.norm(jac))
    assert rel < 0.2, rel
    # noisy: a single estimate is far from the Jacobian
    one = float(jnp.linalg.norm(est[0] - jac) / jnp.linalg.norm(jac))
    assert one > 0.3, one
    # a biased variant (rho1 odd in the signs) would fail: check the test can tell a bias
    biased = mean + 10 * sd / jnp.sqrt(N)
    assert float((jnp.abs(biased - jac) / (sd / jnp.sqrt(N) + 1e-12)).max()) > 5.0


def test_a_run_is_a_function_of_its_seed():
    learner = uoro(M, 3)
    hp = make_hparams(alpha=1e-2)
    xs = jax.random.normal(jax.random.PRNGKey(2), (40, M))

    def run(seed):
        state = learner.init(jax.random.PRNGKey(seed), hp)
        for x in xs:
            state, out = jax.jit(learner.step)(state, x, jnp.ones(()), hp)
        return state

    a, b, c = run(0), run(0), run(1)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.theta, c.theta)
    fresh = learner.reset(a)
    assert float(jnp.abs(fresh.theta_tilde).max()) == 0.0
    np.testing.assert_array_equal(fresh.theta, a.theta)
