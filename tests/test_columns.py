"""Exactness of the closed-form RTRL traces and of the TD(lambda) update (float64, autodiff)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learners import make_hparams
from learners.linear import linear
from learners.staged import staged

pytestmark = pytest.mark.usefixtures("x64")

GROUPS = {"W": slice(None, -2), "u": -2, "b": -1}
GATES = "ifog"


def reference_network(theta, xs, n_inputs, per_stage, steps_per_stage):
    """h_T, c_T of the staged network, written plainly: one column at a time, no traces."""
    S, P = theta.shape[0], per_stage
    N = S * P

    def body(carry, inp):
        h, c = carry
        t, x = inp
        stage = jnp.minimum(t // steps_per_stage, S - 1)
        new_h, new_c = [], []
        for s in range(S):
            for p in range(P):
                j = s * P + p
                z = jnp.concatenate([x, jnp.stack(new_h[: s * P])]) if s else x
                k = z.shape[0]

                def gate(g, z=z, k=k, s=s, p=p, j=j):
                    return theta[s, p, g, :k] @ z + theta[s, p, g, -2] * h[j] + theta[s, p, g, -1]

                i = jax.nn.sigmoid(gate(0))
                f = jax.nn.sigmoid(gate(1))
                o = jax.nn.sigmoid(gate(2))
                g = jnp.tanh(gate(3))
                c_j = f * c[j] + i * g
                h_j = o * jnp.tanh(c_j)
                active = s <= stage  # stages that have not started have no state yet
                new_c.append(jnp.where(active, c_j, 0.0))
                new_h.append(jnp.where(active, h_j, 0.0))
        return (jnp.stack(new_h), jnp.stack(new_c)), None

    zeros = jnp.zeros(N, theta.dtype)
    (h, c), _ = jax.lax.scan(body, (zeros, zeros), (jnp.arange(xs.shape[0]), xs))
    return h, c


def run_learner(learner, hp, xs, key=0):
    state = learner.init(jax.random.PRNGKey(key), hp)
    step = jax.jit(learner.step)
    for x in xs:
        state, _ = step(state, x, jnp.zeros(()), hp)
    return state


def assert_close_groups(name, got, want, rtol=1e-10):
    for g, gate in enumerate(GATES):
        for group, sl in GROUPS.items():
            a, b = np.asarray(got[..., g, sl]), np.asarray(want[..., g, sl])
            scale = max(np.max(np.abs(b)), 1e-300)
            err = np.max(np.abs(a - b)) / scale
            assert err <= rtol, f"{name} {group}_{gate}: relative error {err:.3g}"
            assert np.max(np.abs(b)) > 0 or group == "W", f"{name} {group}_{gate} all zero"


@pytest.mark.parametrize(
    "n_features,per_stage,steps_per_stage,steps",
    [
        (3, 3, 10**9, 60),  # columnar
        (3, 1, 20, 55),  # constructive: stage 2 learns from t=40, reads two frozen features
        (6, 2, 30, 100),  # hybrid: three stages, the last from t=60
    ],
)
def test_traces_equal_autodiff_of_unrolled_network(n_features, per_stage, steps_per_stage, steps):
    m = 4
    learner = staged(m, n_features, per_stage)
    hp = make_hparams(alpha=0.0, norm_rate=0.0, init_scale=0.6, steps_per_stage=steps_per_stage)
    xs = jax.random.normal(jax.random.PRNGKey(7), (steps, m))
    state = run_learner(learner, hp, xs)
    assert state.trace_h.dtype == jnp.float64
    stage = int(state.stage)
    assert stage == min((steps - 1) // steps_per_stage, n_features // per_stage - 1)
    P = per_stage

    jac_h, jac_c = jax.jit(
        jax.jacfwd(lambda th: reference_network(th, xs, m, per_stage, steps_per_stage))
    )(state.theta)
    h_ref, c_ref = reference_network(state.theta, xs, m, per_stage, steps_per_stage)
    np.testing.assert_allclose(state.h, h_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state.c, c_ref, rtol=1e-12, atol=1e-14)
    rows = slice(stage * P, (stage + 1) * P)
    # jac[j, s, q, g, k] = d h_j / d theta[s, q, g, k]; take column p's own parameters.
    own_h = jnp.stack([jac_h[stage * P + p, stage, p] for p in range(P)])
    own_c = jnp.stack([jac_c[stage * P + p, stage, p] for p in range(P)])
    assert_close_groups("TH", state.trace_h, own_h)
    assert_close_groups("TC", state.trace_c, own_c)
    # Columns of one stage are independent: no column's state depends on another's weights.
    cross = jac_h[rows][:, stage]
    for p in range(P):
        for q in range(P):
            if p != q:
                assert float(jnp.max(jnp.abs(cross[p, q]))) == 0.0
    if stage > 0:
        # Units of the learning stage do read the frozen features.
        n_read = m + stage * P
        assert float(jnp.max(jnp.abs(state.trace_h[:, :, m:n_read]))) > 0
        if n_read < state.trace_h.shape[-1] - 2:
            assert float(jnp.max(jnp.abs(state.trace_h[:, :, n_read:-2]))) == 0


def _one_sgd_step(loss, params, alpha):
    grads = jax.grad(loss)(params)
    return jax.tree.map(lambda p, g: p - alpha * g, params, grads)


@pytest.mark.parametrize("n_features,per_stage", [(3, 3), (4, 2)])
def test_td0_gamma0_is_one_sgd_step_on_squared_error(n_features, per_stage):
    m, alpha = 5, 0.05
    learner = staged(m, n_features, per_stage, rmsprop=False)
    hp = make_hparams(alpha=alpha, lambda_=0.0, gamma=0.0, norm_rate=0.0, init_scale=0.5)
    state = learner.init(jax.random.PRNGKey(3), hp)
    state = state._replace(
        w=jax.random.normal(jax.random.PRNGKey(4), (n_features,)), b=jnp.asarray(0.3)
    )
    x0, x1 = jax.random.normal(jax.random.PRNGKey(5), (2, m))
    c1 = jnp.asarray(1.7)
    step = jax.jit(learner.step)
    s1, out0 = step(state, x0, jnp.asarray(0.0), hp)
    s2, _ = step(s1, x1, c1, hp)

    def loss(params):
        theta0, w, b = params
        theta = state.theta.at[0].set(theta0)
        h, _ = reference_network(theta, x0[None], m, per_stage, 10**9)
        return 0.5 * (c1 - (w @ h + b)) ** 2

    want = _one_sgd_step(loss, (state.theta[0], state.w, state.b), alpha)
    np.testing.assert_allclose(out0["v"], state.w @ s1.h + state.b, rtol=1e-12)
    np.testing.assert_allclose(s2.theta[0], want[0], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(s2.w, want[1], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(s2.b, want[2], rtol=1e-10, atol=1e-13)
    # The update moved the weights; a sign error would move them the other way.
    assert float(jnp.max(jnp.abs(s2.theta[0] - state.theta[0]))) > 1e-4
    # Stages that have not started are untouched.
    np.testing.assert_array_equal(s2.theta[1:], state.theta[1:])


def test_linear_td0_gamma0_is_one_sgd_step():
    m, alpha = 6, 0.1
    learner = linear(m, rmsprop=False)
    hp = make_hparams(alpha=alpha, lambda_=0.0, gamma=0.0, norm_rate=0.0)
    state = learner.init(jax.random.PRNGKey(0), hp)
    state = state._replace(w=jax.random.normal(jax.random.PRNGKey(1), (m,)))
    x0, x1 = jax.random.normal(jax.random.PRNGKey(2), (2, m))
    c1 = jnp.asarray(-0.4)
    s1, _ = learner.step(state, x0, jnp.asarray(0.0), hp)
    s2, _ = learner.step(s1, x1, c1, hp)
    want = _one_sgd_step(lambda p: 0.5 * (c1 - (p[0] @ x0 + p[1])) ** 2, (state.w, state.b), alpha)
    np.testing.assert_allclose(s2.w, want[0], rtol=1e-12)
    np.testing.assert_allclose(s2.b, want[1], rtol=1e-12)


def test_td_lambda_eligibility_matches_decayed_gradient_sum():
    """With alpha=0 the readout eligibility is sum_k (gamma lambda)^k grad v_{t-k}."""
    m = 3
    learner = staged(m, 2, 2)
    hp = make_hparams(alpha=0.0, lambda_=0.7, gamma=0.8, norm_rate=0.0, init_scale=0.5)
    xs = jax.random.normal(jax.random.PRNGKey(9), (12, m))
    state = learner.init(jax.random.PRNGKey(1), hp)
    state = state._replace(w=jnp.asarray([0.5, -1.5]))
    hs = []
    for x in xs:
        state, _ = learner.step(state, x, jnp.zeros(()), hp)
        hs.append(state.h)
    decay = 0.7 * 0.8
    want = sum(decay ** (len(hs) - 1 - k) * hs[k] for k in range(len(hs)))
    np.testing.assert_allclose(state.elig_w, want, rtol=1e-12)


def test_autodiff_columnar_baseline_computes_the_same_learner():
    """The bench's baseline (traces by per-step jax.jacrev) runs the same columnar learner:
    after 40 learning steps its traces, weights and predictions equal the closed form's."""
    from learners.autodiff import columnar_autodiff

    hp = make_hparams(alpha=1e-2, lambda_=0.8, norm_rate=0.0, init_scale=0.6)
    xs = jax.random.normal(jax.random.PRNGKey(5), (40, 4))
    cs = (jax.random.uniform(jax.random.PRNGKey(6), (40,)) < 0.2).astype(float)
    states = []
    for learner in (staged(4, 3, 3, name="columnar"), columnar_autodiff(4, 3)):
        state = learner.init(jax.random.PRNGKey(0), hp)
        step = jax.jit(learner.step)
        for x, c in zip(xs, cs, strict=True):
            state, out = step(state, x, c, hp)
        states.append((state, out["v"]))
    (closed, v_closed), (auto, v_auto) = states
    assert float(jnp.max(jnp.abs(closed.trace_h))) > 1e-3
    for field in ("trace_h", "trace_c", "theta", "w", "elig_theta"):
        np.testing.assert_allclose(getattr(auto, field), getattr(closed, field), rtol=1e-10,
                                   atol=1e-12, err_msg=field)  # fmt: skip
    assert float(v_auto) == pytest.approx(float(v_closed), rel=1e-12)
