"""Dense LSTM learners: exact RTRL equals autodiff; SnAp-1 keeps exactly its sparse paths."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learners import make_hparams, make_learner
from learners.dense import rtrl, snap1
from learners.tbptt import tbptt

pytestmark = pytest.mark.usefixtures("x64")


def dense_forward(theta, xs, n_inputs, cut_cross=False):
    """h_T, c_T of a dense LSTM, written plainly. With ``cut_cross`` every unit sees the other
    units' h_{t-1} through stop_gradient: the paths SnAp-1 keeps."""
    H = theta.shape[0]

    def body(carry, x):
        h, c = carry
        new_h, new_c = [], []
        for n in range(H):
            h_in = h
            if cut_cross:
                own = jnp.arange(H) == n
                h_in = jnp.where(own, h, jax.lax.stop_gradient(h))
            zeta = jnp.concatenate([x, h_in, jnp.ones(1)])
            a = theta[n] @ zeta
            i, f, o = jax.nn.sigmoid(a[0]), jax.nn.sigmoid(a[1]), jax.nn.sigmoid(a[2])
            c_n = f * c[n] + i * jnp.tanh(a[3])
            new_c.append(c_n)
            new_h.append(o * jnp.tanh(c_n))
        return (jnp.stack(new_h), jnp.stack(new_c)), None

    zeros = jnp.zeros(H)
    (h, c), _ = jax.lax.scan(body, (zeros, zeros), xs)
    return h, c


def run(learner, hp, xs, key=0):
    state = learner.init(jax.random.PRNGKey(key), hp)
    step = jax.jit(learner.step)
    for x in xs:
        state, _ = step(state, x, jnp.zeros(()), hp)
    return state


def rel_err(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


M, H, T = 3, 3, 50


def hp_off():
    return make_hparams(alpha=0.0, norm_rate=0.0, init_scale=0.6)


def inputs():
    return jax.random.normal(jax.random.PRNGKey(11), (T, M))


def test_rtrl_traces_equal_autodiff_of_unrolled_network():
    HP, XS = hp_off(), inputs()
    state = run(rtrl(M, H), HP, XS)
    assert state.trace_h.dtype == jnp.float64
    jac_h, jac_c = jax.jit(jax.jacfwd(lambda th: dense_forward(th, XS, M)))(state.theta)
    h_ref, _ = dense_forward(state.theta, XS, M)
    np.testing.assert_allclose(state.h, h_ref, rtol=1e-12)
    for name, got, want in (("TH", state.trace_h, jac_h), ("TC", state.trace_c, jac_c)):
        for g, gate in enumerate("ifog"):
            for group, sl in (("W", slice(0, M)), ("U", slice(M, M + H)), ("b", slice(-1, None))):
                err = rel_err(got[:, :, g, sl], want[:, :, g, sl])
                assert err < 1e-10, f"{name} {group}_{gate}: {err:.3g}"


def test_snap1_traces_equal_autodiff_with_cross_unit_paths_cut():
    HP, XS = hp_off(), inputs()
    state = run(snap1(M, H), HP, XS)
    jac_h, jac_c = jax.jit(jax.jacfwd(lambda th: dense_forward(th, XS, M, cut_cross=True)))(
        state.theta
    )
    own_h = jnp.stack([jac_h[n, n] for n in range(H)])
    own_c = jnp.stack([jac_c[n, n] for n in range(H)])
    assert rel_err(state.trace_h, own_h) < 1e-10
    assert rel_err(state.trace_c, own_c) < 1e-10
    # SnAp-1 is biased on a dense network: the full Jacobian's own block differs.
    full_h, _ = jax.jit(jax.jacfwd(lambda th: dense_forward(th, XS, M)))(state.theta)
    assert rel_err(state.trace_h, jnp.stack([full_h[n, n] for n in range(H)])) > 1e-3


def test_snap1_equals_rtrl_without_cross_unit_recurrence():
    HP, XS = hp_off(), inputs()

    def diagonal_only(learner):
        state = learner.init(jax.random.PRNGKey(0), HP)
        cross = np.ones((H, 4, M + H + 1))
        for n in range(H):
            cross[n, :, M : M + H] = 0
            cross[n, :, M + n] = 1
        return state._replace(theta=state.theta * cross)

    s_snap, s_rtrl = diagonal_only(snap1(M, H)), diagonal_only(rtrl(M, H))
    step_snap, step_rtrl = jax.jit(snap1(M, H).step), jax.jit(rtrl(M, H).step)
    for x in XS[:30]:
        s_snap, _ = step_snap(s_snap, x, jnp.zeros(()), HP)
        s_rtrl, _ = step_rtrl(s_rtrl, x, jnp.zeros(()), HP)
    own = jnp.stack([s_rtrl.trace_h[n, n] for n in range(H)])
    np.testing.assert_allclose(s_snap.trace_h, own, rtol=1e-12, atol=1e-15)
    for n in range(H):
        for p in range(H):
            if n != p:
                assert float(jnp.max(jnp.abs(s_rtrl.trace_h[n, p]))) == 0.0


@pytest.mark.parametrize("make", [rtrl, snap1])
def test_dense_td0_gamma0_is_one_sgd_step(make):
    alpha = 0.05
    learner = make(M, H, rmsprop=False)
    hp = make_hparams(alpha=alpha, lambda_=0.0, gamma=0.0, norm_rate=0.0, init_scale=0.5)
    state = learner.init(jax.random.PRNGKey(3), hp)
    state = state._replace(w=jax.random.normal(jax.random.PRNGKey(4), (H,)), b=jnp.asarray(0.2))
    x0, x1 = inputs()[:2]
    c1 = jnp.asarray(1.3)
    step = jax.jit(learner.step)
    s1, _ = step(state, x0, jnp.asarray(0.0), hp)
    s2, _ = step(s1, x1, c1, hp)

    def loss(params):
        theta, w, b = params
        h, _ = dense_forward(theta, x0[None], M)
        return 0.5 * (c1 - (w @ h + b)) ** 2

    grads = jax.grad(loss)((state.theta, state.w, state.b))
    np.testing.assert_allclose(s2.theta, state.theta - alpha * grads[0], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(s2.w, state.w - alpha * grads[1], rtol=1e-10)
    assert float(jnp.max(jnp.abs(s2.theta - state.theta))) > 1e-4


def test_dense_learners_by_name_and_sizes():
    assert make_learner("snap1", 12, n_features=8).n_params == 8 * 4 * (12 + 8 + 1) + 9
    assert make_learner("rtrl", 12, n_features=2).settings["n_features"] == 2
    with pytest.raises(ValueError, match="n_features=0 must be >= 1"):
        make_learner("snap1", 12, n_features=0)


def _stop_after(theta, xs, n_inputs, cut):
    """h_T of the dense LSTM with the state after step ``cut`` held constant (cut < 0: none)."""
    H = theta.shape[0]
    h, c = jnp.zeros(H), jnp.zeros(H)
    for t, x in enumerate(xs):
        zeta = jnp.concatenate([x, h, jnp.ones(1)])
        a = theta @ zeta
        i, f, o = jax.nn.sigmoid(a[:, 0]), jax.nn.sigmoid(a[:, 1]), jax.nn.sigmoid(a[:, 2])
        c = f * c + i * jnp.tanh(a[:, 3])
        h = o * jnp.tanh(c)
        if t == cut:
            h, c = jax.lax.stop_gradient(h), jax.lax.stop_gradient(c)
    return h


@pytest.mark.parametrize("k,steps", [(25, 20), (20, 20), (6, 20), (1, 12)])
def test_tbptt_gradient_equals_autodiff_of_truncated_computation(k, steps):
    learner = tbptt(M, H, k)
    hp = make_hparams(alpha=0.0, lambda_=0.0, gamma=0.5, norm_rate=0.0, init_scale=0.6)
    state = learner.init(jax.random.PRNGKey(2), hp)
    w = jax.random.normal(jax.random.PRNGKey(8), (H,))
    state = state._replace(w=w)
    xs = inputs()[:steps]
    step = jax.jit(learner.step)
    for x in xs:
        state, _ = step(state, x, jnp.zeros(()), hp)
    cut = steps - 1 - k  # window = the last k steps; k >= steps is full BPTT
    want = jax.grad(lambda th: w @ _stop_after(th, xs, M, cut))(state.theta)
    assert rel_err(state.elig_theta, want) < 1e-10
    if k < steps:  # truncation really drops something
        full = jax.grad(lambda th: w @ _stop_after(th, xs, M, -1))(state.theta)
        assert rel_err(state.elig_theta, full) > 1e-6
