"""Online LRU: the traces of its recurrence equal autodiff of the layer unrolled in complex
arithmetic, a TD(0) update of one layer is the exact gradient of the prediction (recurrence,
output projection and GLU) through the whole past, and a stack's update is the exact gradient
of the network whose temporal paths through other layers are cut."""

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
    p = state.params[0]
    args = (p["B"], p["nu"], p["phi"], p["g"])
    np.testing.assert_allclose(state.x[0], unrolled_x(*args, xs), rtol=1e-12, atol=1e-14)
    jac = jax.jacfwd(unrolled_x, argnums=(0, 1, 2, 3))(*args, xs)
    units = jnp.arange(N)
    want_B = jnp.moveaxis(jac[0][units, :, units], 1, -1)  # [N, 2(param), J, 2(state)]
    assert rel_err(state.traces[0]["B"], want_B) < 1e-10
    for name, j in zip(("nu", "phi", "g"), jac[1:], strict=True):
        assert rel_err(state.traces[0][name], j[units, :, units]) < 1e-10, name
        off = j * (1.0 - jnp.eye(N))[:, None, :]  # a unit's parameters reach it alone
        assert float(jnp.max(jnp.abs(off))) == 0.0


def test_td0_update_is_the_gradient_of_the_prediction():
    learner = lru(M, N, rmsprop=False)
    hp = make_hparams(alpha=0.0, lambda_=0.0, norm_rate=0.0, init_scale=1.0)
    xs = jax.random.normal(jax.random.PRNGKey(6), (25, M))
    w = jax.random.normal(jax.random.PRNGKey(2), (N,))
    state = run(learner, hp, xs, w=w)
    p = state.params[0]

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
    assert float(jnp.abs(fresh.x[0]).max()) == 0.0
    assert float(jnp.abs(fresh.traces[0]["B"]).max()) == 0
    np.testing.assert_array_equal(fresh.params[0]["C"], state.params[0]["C"])
    with pytest.raises(ValueError, match="n_features=0"):
        lru(M, 0)
    for bad in (0, 9):
        with pytest.raises(ValueError, match=f"layers={bad} must be between 1 and 8"):
            lru(M, N, layers=bad)


def stack_value(params, w, b, xs, live):
    """v_T of the stack unrolled in complex arithmetic, every layer's previous state passed
    through stop_gradient except layer ``live``'s (None: no path cut)."""

    def body(states, x_t):
        u = jnp.concatenate([x_t, jnp.ones(1)])
        new = []
        for l, (p, x) in enumerate(zip(params, states, strict=True)):
            prev = x if live is None or l == live else jax.lax.stop_gradient(x)
            lam = jnp.exp(-jnp.exp(p["nu"]) + 1j * jnp.exp(p["phi"]))
            x = lam * prev + jnp.exp(p["g"]) * (p["B"][:, 0] @ u + 1j * (p["B"][:, 1] @ u))
            new.append(x)
            o = head(p, jnp.stack([x.real, x.imag], axis=-1), u)
            u = jnp.concatenate([o, jnp.ones(1)])
        return tuple(new), o

    zero = tuple(jnp.zeros(N, jnp.complex128) for _ in params)
    _, os = jax.lax.scan(body, zero, xs)
    return w @ os[-1] + b


def test_a_stack_learns_the_gradient_of_its_cut_network():
    """Three layers: each layer's eligibilities after a TD(0) step (lambda 0) equal the
    gradient of v_T with the temporal paths through the other layers cut, for every
    parameter; the lower layers' differ from the uncut gradient, so the test tells the two
    apart."""
    L = 3
    learner = lru(M, N, layers=L, rmsprop=False)
    hp = make_hparams(alpha=0.0, lambda_=0.0, norm_rate=0.0, init_scale=1.0)
    xs = jax.random.normal(jax.random.PRNGKey(4), (30, M))
    w = jax.random.normal(jax.random.PRNGKey(5), (N,))
    state = run(learner, hp, xs, w=w)
    assert [p["B"].shape[-1] for p in state.params] == [M + 1, N + 1, N + 1]
    names = (*RECURRENT, *HEAD)
    elig = state.elig[: L * len(names)]
    for live in range(L):

        def v_cut(p, live=live):
            return stack_value((*state.params[:live], p, *state.params[live + 1 :]), w, state.b,
                               xs, live)  # fmt: skip

        cut = jax.grad(v_cut)(state.params[live])
        got = dict(zip(names, elig[live * len(names) : (live + 1) * len(names)], strict=True))
        for name in names:
            assert rel_err(got[name], cut[name]) < 1e-10, (live, name)
            assert float(jnp.max(jnp.abs(cut[name]))) > 0, (live, name)
    full = jax.grad(lambda ps: stack_value(ps, w, state.b, xs, None))(state.params)
    assert rel_err(elig[RECURRENT.index("nu")], full[0]["nu"]) > 1e-3
    # the top layer has no layer above: its recurrent gradient is exact
    top = dict(zip(names, elig[(L - 1) * len(names) :], strict=True))
    assert rel_err(top["nu"], full[L - 1]["nu"]) < 1e-10
