"""Online LRU: the traces of its recurrence equal autodiff of the layer unrolled in complex
arithmetic, and a TD(0) update is the exact gradient of the prediction (recurrence, output
projection and GLU) through the whole past."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learners import make_hparams
from learners.lru import HEAD, RECURRENT, head, lru

pytestmark = pytest.mark.usefixtures("x64")

M, N, T = 3, 4, 40


def unrolled_x(B, nu, phi, g, xs):
    """x_T ([N, 2]: real, imaginary) with x_t = lambda x_{t-1} + gamma (B_re z + i B_im z)."""
    lam = jnp.exp(-jnp.exp(nu) + 1j * jnp.exp(phi))

    def body(x, u):
        z = jnp.concatenate([u, jnp.ones(1)])
        return lam * x + jnp.exp(g) * (B[:, 0] @ z + 1j * (B[:, 1] @ z)), None

    x, _ = jax.lax.scan(body, jnp.zeros(N, jnp.complex128), xs)
    return jnp.stack([x.real, x.imag], axis=-1)


def run(learner, hp, xs, w=None):
    state = learner.init(jax.random.PRNGKey(3), hp)
    if w is not None:
        state = state._replace(w=w)
    step = jax.jit(learner.step)
    for x in xs:
        state, _ = step(state, x, jnp.zeros(()), hp)
    return state


def rel_err(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


def test_traces_equal_autodiff_of_the_complex_layer():
    hp = make_hparams(alpha=0.0, norm_rate=0.0, init_scale=1.0)
    xs = jax.random.normal(jax.random.PRNGKey(8), (T, M))
    state = run(lru(M, N), hp, xs)
    p = state.params
    args = (p["B"], p["nu"], p["phi"], p["g"])
    np.testing.assert_allclose(state.x, unrolled_x(*args, xs), rtol=1e-12, atol=1e-14)
    jac = jax.jacfwd(unrolled_x, argnums=(0, 1, 2, 3))(*args, xs)
    units = jnp.arange(N)
    want_B = jnp.moveaxis(jac[0][units, :, units], 1, -1)  # [N, 2(param), J, 2(state)]
    assert rel_err(state.traces["B"], want_B) < 1e-10
    for name, j in zip(("nu", "phi", "g"), jac[1:], strict=True):
        assert rel_err(state.traces[name], j[units, :, units]) < 1e-10, name
        off = j * (1.0 - jnp.eye(N))[:, None, :]  # a unit's parameters reach it alone
        assert float(jnp.max(jnp.abs(off))) == 0.0


def test_td0_update_is_the_gradient_of_the_prediction():
    learner = lru(M, N, rmsprop=False)
    hp = make_hparams(alpha=0.0, lambda_=0.0, norm_rate=0.0, init_scale=1.0)
    xs = jax.random.normal(jax.random.PRNGKey(6), (25, M))
    w = jax.random.normal(jax.random.PRNGKey(2), (N,))
    state = run(learner, hp, xs, w=w)
    p = state.params

    def v_of(params):
        x = unrolled_x(params["B"], params["nu"], params["phi"], params["g"], xs)
        z = jnp.concatenate([xs[-1], jnp.ones(1)])
        return w @ head(params, x, z) + state.b

    g = jax.grad(v_of)(p)
    names = (*RECURRENT, *HEAD)
    for name, got in zip(names, state.elig[: len(names)], strict=True):
        assert rel_err(got, g[name]) < 1e-10, name
    # the gradient reaches every parameter: a dropped path would leave zeros
    assert all(float(jnp.max(jnp.abs(g[k]))) > 0 for k in names)


def test_reset_clears_the_state_and_keeps_the_weights():
    learner = lru(M, N)
    hp = make_hparams(alpha=1e-2)
    state = run(learner, hp, jax.random.normal(jax.random.PRNGKey(1), (10, M)))
    fresh = learner.reset(state)
    assert float(jnp.abs(fresh.x).max()) == 0.0 and float(jnp.abs(fresh.traces["B"]).max()) == 0
    np.testing.assert_array_equal(fresh.params["C"], state.params["C"])
    with pytest.raises(ValueError, match="n_features=0"):
        lru(M, 0)
