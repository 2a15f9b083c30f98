"""Classification readout (sequential MNIST): the cross-entropy step at a sequence's last row
equals autodiff of the unrolled computation, for every learner (float64)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_columns import reference_network
from test_dense import _stop_after, dense_forward

from learners import make_hparams, make_learner
from learners.readout import cross_entropy

pytestmark = pytest.mark.usefixtures("x64")

M, C, T, ALPHA = 4, 5, 12, 0.3


def loss_of(logits, y):
    return jax.nn.logsumexp(logits) - logits[y]


def sequence(seed, steps=T):
    xs = jax.random.normal(jax.random.PRNGKey(seed), (steps, M))
    return xs, int(jax.random.randint(jax.random.PRNGKey(seed + 100), (), 0, C))


def with_readout(learner, hp, key=3):
    """Initial state with a random readout, so that dL/dh is not zero at the first label."""
    state = learner.init(jax.random.PRNGKey(0), hp)
    kw, kb = jax.random.split(jax.random.PRNGKey(key))
    return state._replace(
        w=jax.random.normal(kw, state.w.shape), b=jax.random.normal(kb, state.b.shape)
    )


def show(learner, state, hp, xs, y):
    """One sequence from a reset state; only the last row is labelled."""
    step = jax.jit(learner.step)
    state = learner.reset(state)
    for t, x in enumerate(xs):
        state, out = step(state, x, jnp.asarray(y if t == len(xs) - 1 else -1), hp)
    return state, out


def rel_err(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


def hp_sgd():
    return make_hparams(alpha=ALPHA, norm_rate=0.0, init_scale=0.6)


def test_cross_entropy_and_its_gradient():
    logits = jnp.array([0.5, -1.0, 2.0])
    loss, d = cross_entropy(logits, jnp.asarray(2))
    assert float(loss) == pytest.approx(-np.log(np.exp(2.0) / np.exp(logits).sum()), rel=1e-12)
    assert rel_err(d, jax.grad(loss_of)(logits, 2)) < 1e-12
    assert float(d.sum()) == pytest.approx(0.0, abs=1e-12) and float(d[2]) < 0


@pytest.mark.parametrize(
    "n_features,per_stage,steps_per_stage",
    [(3, 3, 10**9), (3, 1, 5), (4, 2, 8)],  # columnar; constructive and hybrid change stage
    ids=["columnar", "constructive", "hybrid"],
)
def test_staged_classifier_step_is_the_autodiff_gradient(n_features, per_stage, steps_per_stage):
    learner = make_learner(
        "hybrid", M, n_features=n_features, per_stage=per_stage, rmsprop=False, n_classes=C
    )
    hp = make_hparams(alpha=ALPHA, norm_rate=0.0, init_scale=0.6, steps_per_stage=steps_per_stage)
    before = with_readout(learner, hp)
    xs, y = sequence(1)
    after, out = show(learner, before, hp, xs, y)

    def loss(theta, w, b):
        h, _ = reference_network(theta, xs, M, per_stage, steps_per_stage)
        return loss_of(w @ h + b, y)

    value, (g_theta, g_w, g_b) = jax.value_and_grad(loss, argnums=(0, 1, 2))(
        before.theta, before.w, before.b
    )
    assert float(out["loss"]) == pytest.approx(float(value), rel=1e-12)
    stage = int(after.stage)
    assert stage == min((T - 1) // steps_per_stage, n_features // per_stage - 1)
    step_theta = (before.theta - after.theta) / ALPHA
    assert rel_err(step_theta[stage], g_theta[stage]) < 1e-10
    # Frozen stages do not move, though the loss depends on them.
    others = np.arange(step_theta.shape[0]) != stage
    if others.any():
        assert float(jnp.max(jnp.abs(step_theta[others]))) == 0.0
        assert float(jnp.max(jnp.abs(g_theta[others]))) > 1e-6
    assert rel_err((before.w - after.w) / ALPHA, g_w) < 1e-10
    assert rel_err((before.b - after.b) / ALPHA, g_b) < 1e-10


def test_unlabelled_rows_do_not_learn_and_reset_starts_a_new_sequence():
    learner = make_learner("columnar", M, n_features=3, rmsprop=False, n_classes=C)
    hp = hp_sgd()
    state = with_readout(learner, hp)
    xs, y = sequence(2)
    after_unlabelled = state
    step = jax.jit(learner.step)
    for x in xs:
        after_unlabelled, _ = step(after_unlabelled, x, jnp.asarray(-1), hp)
    assert bool(jnp.all(after_unlabelled.theta == state.theta))
    assert bool(jnp.all(after_unlabelled.w == state.w))
    # A second sequence after a first: its step is the gradient at the updated weights from
    # a zero state, not one that remembers the first sequence.
    first, _ = show(learner, state, hp, xs, y)
    xs2, y2 = sequence(3)
    second, _ = show(learner, first, hp, xs2, y2)
    want = jax.grad(lambda th: loss_of(first.w @ reference_network(th, xs2, M, 3, 10**9)[0]
                                       + first.b, y2))(first.theta)  # fmt: skip
    assert rel_err((first.theta - second.theta) / ALPHA, want) < 1e-10


@pytest.mark.parametrize("name", ["rtrl", "snap1"])
def test_dense_classifier_step_is_the_autodiff_gradient(name):
    H = 3
    learner = make_learner(name, M, n_features=H, rmsprop=False, n_classes=C)
    hp = hp_sgd()
    before = with_readout(learner, hp)
    xs, y = sequence(4)
    # A first sequence, so that the second tests the reset of state and traces too.
    mid, _ = show(learner, before, hp, *sequence(5))
    after, _ = show(learner, mid, hp, xs, y)

    def loss(theta, w, b, cut_cross=name == "snap1"):
        h, _ = dense_forward(theta, xs, M, cut_cross=cut_cross)
        return loss_of(w @ h + b, y)

    g_theta, g_w, g_b = jax.grad(loss, argnums=(0, 1, 2))(mid.theta, mid.w, mid.b)
    assert rel_err((mid.theta - after.theta) / ALPHA, g_theta) < 1e-10
    assert rel_err((mid.w - after.w) / ALPHA, g_w) < 1e-10
    assert rel_err((mid.b - after.b) / ALPHA, g_b) < 1e-10
    if name == "snap1":  # SnAp-1 is biased: it differs from the exact gradient
        exact = jax.grad(loss, argnums=0)(mid.theta, mid.w, mid.b, False)
        assert rel_err(g_theta, exact) > 1e-4


@pytest.mark.parametrize("k", [T, 5])  # full BPTT over the sequence, and truncated
def test_tbptt_classifier_step_is_the_autodiff_gradient(k):
    H = 3
    learner = make_learner("tbptt", M, n_features=H, truncation=k, rmsprop=False, n_classes=C)
    hp = hp_sgd()
    before = with_readout(learner, hp)
    mid, _ = show(learner, before, hp, *sequence(6, steps=T + 3))
    xs, y = sequence(7)
    after, _ = show(learner, mid, hp, xs, y)
    cut = T - 1 - k
    want = jax.grad(lambda th: loss_of(mid.w @ _stop_after(th, xs, M, cut) + mid.b, y))(mid.theta)
    assert rel_err((mid.theta - after.theta) / ALPHA, want) < 1e-10
    if k < T:
        full = jax.grad(lambda th: loss_of(mid.w @ _stop_after(th, xs, M, -1) + mid.b, y))(
            mid.theta
        )
        assert rel_err(want, full) > 1e-6


def test_linear_classifier_step_is_the_autodiff_gradient():
    learner = make_learner("linear", M, rmsprop=False, n_classes=C)
    hp = hp_sgd()
    before = with_readout(learner, hp)
    xs, y = sequence(8)
    after, out = show(learner, before, hp, xs, y)
    g_w, g_b = jax.grad(lambda w, b: loss_of(w @ xs[-1] + b, y), argnums=(0, 1))(before.w, before.b)
    assert rel_err((before.w - after.w) / ALPHA, g_w) < 1e-12
    assert rel_err((before.b - after.b) / ALPHA, g_b) < 1e-12
    assert bool(out["correct"]) == (int(jnp.argmax(before.w @ xs[-1] + before.b)) == y)


def test_bad_class_count_is_refused():
    with pytest.raises(ValueError, match="n_classes=-1 must be >= 0"):
        make_learner("columnar", M, n_classes=-1)
