"""Recurrent trace units: the RTRL traces equal autodiff of the network unrolled in complex
arithmetic, learning steps are exact gradient steps, and the readout and reset behave as the
other learners'."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learners import make_hparams
from learners.rtu import rtu, rtu_linear

pytestmark = pytest.mark.usefixtures("x64")

M, H, T = 3, 4, 60


def unrolled(W, nu, phi, xs, nonlinear):
    """c_T (real and imaginary parts, [H, 2]) of the RTU layer, written with complex numbers:
    c_t = lambda * c_{t-1} + W_re z + i W_im z, lambda = exp(-exp(nu) + i exp(phi)), and for
    the non-linear unit tanh applied to the real and imaginary parts."""
    lam = jnp.exp(-jnp.exp(nu) + 1j * jnp.exp(phi))

    def body(c, x):
        z = jnp.concatenate([x, jnp.ones(1)])
        p = lam * c + (W[:, 0] @ z) + 1j * (W[:, 1] @ z)
        if nonlinear:
            p = jnp.tanh(p.real) + 1j * jnp.tanh(p.imag)
        return p, None

    c, _ = jax.lax.scan(body, jnp.zeros(H, jnp.complex128), xs)
    return jnp.stack([c.real, c.imag], axis=-1)


def run(learner, hp, xs):
    state = learner.init(jax.random.PRNGKey(3), hp)
    step = jax.jit(learner.step)
    for x in xs:
        state, _ = step(state, x, jnp.zeros(()), hp)
    return state


def rel_err(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


@pytest.mark.parametrize("make,nonlinear", [(rtu, True), (rtu_linear, False)])
def test_traces_equal_autodiff_of_the_complex_network(make, nonlinear):
    hp = make_hparams(alpha=0.0, norm_rate=0.0, init_scale=1.0)
    xs = jax.random.normal(jax.random.PRNGKey(7), (T, M))
    state = run(make(M, H), hp, xs)
    assert state.trace_W.dtype == jnp.float64
    c_ref = unrolled(state.W, state.nu, state.phi, xs, nonlinear)
    np.testing.assert_allclose(state.c, c_ref, rtol=1e-12, atol=1e-14)
    jac = jax.jacfwd(unrolled, argnums=(0, 1, 2))(state.W, state.nu, state.phi, xs, nonlinear)
    j_W, j_nu, j_phi = jac  # [H, 2, H, 2, J], [H, 2, H], [H, 2, H]
    # each unit's state depends on its own parameters only
    off = 1.0 - jnp.eye(H)
    assert float(jnp.max(jnp.abs(j_nu * off[:, None, :]))) == 0.0
    units = jnp.arange(H)
    want_W = jnp.moveaxis(j_W[units, :, units], 1, -1)  # [H, 2(param), J, 2(state)]
    assert rel_err(state.trace_W, want_W) < 1e-10
    assert rel_err(state.trace_nu, j_nu[units, :, units]) < 1e-10
    assert rel_err(state.trace_phi, j_phi[units, :, units]) < 1e-10
    # a wrong sign on the rotation would fail: the traces are far from their mirror image
    assert rel_err(state.trace_phi, -j_phi[units, :, units]) > 0.5


@pytest.mark.parametrize("make", [rtu, rtu_linear])
def test_td0_step_is_the_gradient_of_the_prediction(make):
    """With lambda = 0 and no RMSProp, each parameter moves by alpha delta grad v_{t-1}: the
    gradient of the prediction through the whole unrolled past (autodiff of the learner's own
    forward pass, its parameters as inputs)."""
    learner = make(M, H, rmsprop=False)
    hp = make_hparams(alpha=0.0, lambda_=0.0, norm_rate=0.0, init_scale=1.0)
    xs = jax.random.normal(jax.random.PRNGKey(5), (20, M))
    state = learner.init(jax.random.PRNGKey(1), hp)
    state = state._replace(w=jax.random.normal(jax.random.PRNGKey(2), state.w.shape))
    step = jax.jit(learner.step)
    for x in xs:
        state, _ = step(state, x, jnp.zeros(()), hp)

    def v_of(W, nu, phi):
        c = unrolled(W, nu, phi, xs, learner.name == "rtu")
        h = c if learner.name == "rtu" else jnp.tanh(c)
        return state.w @ h.reshape(-1) + state.b

    g = jax.grad(v_of, argnums=(0, 1, 2))(state.W, state.nu, state.phi)
    for got, want in zip(state.elig[:3], g, strict=True):  # elig = grad v_T when lambda = 0
        assert rel_err(got, want) < 1e-10
    assert rel_err(state.elig[3], state.c.reshape(-1) if learner.name == "rtu"
                   else jnp.tanh(state.c).reshape(-1)) < 1e-12  # fmt: skip


def test_magnitude_stays_below_one_and_reset_clears_the_state():
    learner = rtu(M, H)
    hp = make_hparams(alpha=0.5, init_scale=1.0)
    state = learner.init(jax.random.PRNGKey(0), hp)
    r = jnp.exp(-jnp.exp(state.nu))
    assert float(r.min()) >= 0.6 - 1e-12 and float(r.max()) <= 0.99 + 1e-12
    step = jax.jit(learner.step)
    for x in jax.random.normal(jax.random.PRNGKey(4), (50, M)):
        state, _ = step(state, x, jnp.ones(()), hp)
    assert float(jnp.max(jnp.exp(-jnp.exp(state.nu)))) < 1.0
    fresh = learner.reset(state)
    assert float(jnp.abs(fresh.c).max()) == 0.0 and float(jnp.abs(fresh.trace_W).max()) == 0.0
    np.testing.assert_array_equal(fresh.W, state.W)


@pytest.mark.parametrize("bad,needle", [(dict(units=0), "n_features=0"),
                                        (dict(n_classes=-1), "n_classes=-1")])  # fmt: skip
def test_impossible_sizes_fail_with_one_line(bad, needle):
    kw = dict(units=2, n_classes=0) | bad
    with pytest.raises(ValueError, match=needle):
        rtu(M, kw["units"], n_classes=kw["n_classes"])
