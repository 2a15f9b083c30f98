"""The reference update rule (``update_rule=reference``) against a transcription of the
authors' C++: for the staged families (``IncrementalNetworks::update_parameters``,
``LSTM::update_weights``) every second moment starts at 1 and is never bias-corrected, the
readout's step size is alpha over the number of features it reads, and a new stage's moments
start at 1 again; for T-BPTT (``DenseLSTMRmsProp::update_parameters``) the moments start at 1
and the readout keeps alpha. Float64, step by step, on a CCN whose stages change mid-run."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from learners import make_hparams, make_learner
from learners.registry import update_rule
from study.tasks import make_task

pytestmark = pytest.mark.usefixtures("x64")

B2, EPS = 0.9999, 1e-8


def _stream(n, seed=0):
    env, tp = make_task("trace_patterning")
    rng = np.random.default_rng(seed)
    x = (rng.random((n, env.obs_size)) < 0.3).astype(np.float64)
    c = (rng.random(n) < 0.1).astype(np.float64)
    return env.obs_size, x, c


def _cpp_step(prev, delta, alpha, n_active):
    """What the C++ does to the readout with the error ``delta``: its eligibilities are the
    ones of the step before; second moments from ``prev``."""
    g_w, g_b = delta * np.asarray(prev.elig_w), delta * float(prev.elig_b)
    nu_w = B2 * np.asarray(prev.nu_w) + (1 - B2) * g_w * g_w
    nu_b = B2 * float(prev.nu_b) + (1 - B2) * g_b * g_b
    step = alpha / n_active
    w = np.asarray(prev.w) + g_w * step / (np.sqrt(nu_w) + EPS)
    b = float(prev.b) + g_b * step / (np.sqrt(nu_b) + EPS)
    return w, b, nu_w, nu_b


@pytest.mark.parametrize("alpha", [0.01, 0.1])
def test_the_reference_rule_is_the_cpp_update(alpha):
    """Catches a bias correction left on, a second moment started at 0, a readout given the
    full step size, or a new stage's moments left from the last stage."""
    m, x, c = _stream(120)
    learner = make_learner("hybrid", m, n_features=6, per_stage=2)
    hp = make_hparams(alpha=alpha, lambda_=0.9, gamma=0.9, steps_per_stage=40, init_scale=0.5,
                      **update_rule("hybrid", "reference"))  # fmt: skip
    state = learner.init(jax.random.PRNGKey(0), hp)
    assert np.all(np.asarray(state.nu_w) == 1.0) and float(state.corr_out) == 1.0
    step = jax.jit(learner.step)
    restarts = 0
    for t in range(120):
        prev = state
        state, out = step(state, x[t], c[t], hp)
        delta = float(out["delta"])
        n_active = (int(prev.stage) + 1) * 2
        w, b, nu_w, nu_b = _cpp_step(prev, delta, alpha, n_active)
        np.testing.assert_allclose(np.asarray(state.w), w, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(float(state.b), b, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(np.asarray(state.nu_w), nu_w, rtol=1e-12)
        # the learning stage's weights: alpha, not divided, over sqrt(nu) from 1, uncorrected
        g = delta * np.asarray(prev.elig_theta)
        nu = B2 * np.asarray(prev.nu_theta) + (1 - B2) * g * g
        theta = np.asarray(prev.theta[int(prev.stage)]) + alpha * g / (np.sqrt(nu) + EPS)
        np.testing.assert_allclose(np.asarray(state.theta[int(prev.stage)]), theta, rtol=1e-12,
                                   atol=1e-15)  # fmt: skip
        assert float(state.corr_theta) == 1.0 and float(state.corr_out) == 1.0
        if int(state.stage) != int(prev.stage):  # a new stage: its moments start at 1 again
            restarts += 1
            np.testing.assert_array_equal(np.asarray(state.nu_theta), 1.0)
        else:
            np.testing.assert_allclose(np.asarray(state.nu_theta), nu, rtol=1e-12)
    assert restarts == 2 and int(state.stage) == 2


def test_ours_differs_from_the_reference_where_it_should():
    """The two rules are told apart: ours starts the moments at zero and corrects them, and
    gives the readout the whole step size; the reference does neither."""
    m, x, c = _stream(30)
    c[:3] = 1.0  # errors from the first steps on
    learner = make_learner("columnar", m, n_features=4)
    states = {}
    for rule in ("ours", "reference"):
        hp = make_hparams(alpha=0.01, lambda_=0.9, gamma=0.9, **update_rule("columnar", rule))
        s = learner.init(jax.random.PRNGKey(0), hp)
        for t in range(30):
            s, _ = learner.step(s, x[t], c[t], hp)
        states[rule] = s
    assert float(states["ours"].corr_out) < 0.01 and float(states["reference"].corr_out) == 1.0
    assert np.abs(np.asarray(states["reference"].w)).max() > 0
    assert not np.allclose(np.asarray(states["ours"].w), np.asarray(states["reference"].w))


@pytest.mark.parametrize("name", ["tbptt", "snap1"])
def test_tbptt_s_reference_rule_is_the_cpp_update(name):
    """T-BPTT's C++ starts its moments at 1, never corrects them and gives the readout alpha
    itself: the readout after each step is that update of the step before's. SnAp-1 runs the
    same rule (the C++'s SnAp-1 takes no RMSProp step for its readout: this is T-BPTT's rule,
    so that the preset's five families can share one)."""
    m, x, c = _stream(60)
    sizes = dict(n_features=3, truncation=4) if name == "tbptt" else dict(n_features=3)
    learner = make_learner(name, m, **sizes)
    hp = make_hparams(alpha=0.01, lambda_=0.9, gamma=0.9, init_scale=1.0,
                      **update_rule(name, "reference"))  # fmt: skip
    assert float(hp.readout_per_feature) == 0.0 and float(hp.nu_init) == 1.0
    state = learner.init(jax.random.PRNGKey(0), hp)
    step = jax.jit(learner.step)
    for t in range(60):
        prev = state
        state, out = step(state, x[t], c[t], hp)
        w, b, nu_w, _ = _cpp_step(prev, float(out["delta"]), 0.01, 1)
        np.testing.assert_allclose(np.asarray(state.w), w, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(float(state.b), b, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(np.asarray(state.nu_w), nu_w, rtol=1e-12)
    assert float(state.corr) == 1.0 and np.abs(np.asarray(state.w)).max() > 0


@pytest.mark.parametrize("name", ["rtrl", "linear", "lru"])
def test_a_family_without_the_rule_refuses_it(name):
    from learners.registry import config_to_args
    from search_spaces import make_space

    with pytest.raises(ValueError, match=f"applies to columnar, constructive, hybrid, tbptt, "
                                         f"snap1 only, not {name}"):  # fmt: skip
        config_to_args({"learner": name, "update_rule": "reference"})
    with pytest.raises(ValueError, match="readout_per_feature=1 applies to columnar, "
                                         "constructive, hybrid only, not tbptt"):  # fmt: skip
        config_to_args({"learner": "tbptt", "readout_per_feature": 1})
    with pytest.raises(ValueError, match="unknown parameter 'update_rule'"):
        make_space(name, fixed={"update_rule": "reference"})


def test_the_rule_reaches_a_trials_hyperparameters():
    from learners.registry import config_to_args
    from search_spaces import make_space

    _, _, hp = config_to_args({"learner": "columnar", "n_features": 3, "update_rule": "reference"})
    assert hp["nu_init"] == 1.0 and hp["readout_per_feature"] == 1.0
    _, _, hp = config_to_args({"learner": "columnar", "n_features": 3})
    assert hp["nu_init"] == 0.0 and hp["readout_per_feature"] == 0.0
    make_space("hybrid", fixed={"update_rule": "reference"})
    with pytest.raises(ValueError, match=r"--set update_rule='paper' is not one of"):
        make_space("hybrid", fixed={"update_rule": "paper"})
