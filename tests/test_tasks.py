"""The animal-learning testbed matches its specification; the MSRE is computed correctly."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from study.tasks import TASKS, is_classification, make_task
from study.tasks.animal import Animal, half_patterns, pattern_probability
from study.tasks.metrics import horizon_for, msre_init, msre_update, offline_errors, returns


def rollout(env, params, key, steps):
    """obs [T, m] and the env state at every step (after the step), one stream."""
    obs0, state0 = env.reset(key, params)

    def body(state, k):
        obs, state, _ = env.step(k, state, params)
        return state, (obs, state)

    _, (obs, states) = jax.lax.scan(body, state0, jax.random.split(key, steps - 1))
    obs = jnp.concatenate([obs0[None], obs])
    states = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), state0, states)
    return obs, states


def rollouts(env, params, n_keys, steps, seed=0):
    keys = jax.random.split(jax.random.PRNGKey(seed), n_keys)
    f = jax.jit(jax.vmap(lambda k: rollout(env, params, k, steps)))
    obs, states = f(keys)
    return np.asarray(obs), jax.tree.map(np.asarray, states)


def chi2_uniform_p(values, lo, hi):
    counts = np.array([(values == v).sum() for v in range(lo, hi + 1)])
    assert counts.sum() == values.size, "values outside the allowed range"
    return stats.chisquare(counts).pvalue


def runs_of(x):
    """Lengths of the runs of ones in a 1-D 0/1 array (runs touching the ends dropped)."""
    x = np.concatenate([[0], x.astype(int), [0]])
    d = np.diff(x)
    starts, ends = np.where(d == 1)[0], np.where(d == -1)[0]
    lengths = ends - starts
    keep = (starts > 0) & (ends < len(x) - 2)
    return lengths[keep]


def test_trace_conditioning_hand_worked_stream():
    env = Animal(n_cs=1, n_distractors=0, rule="conditioning")
    params = env.make_params(isi=(5, 5), iti=(8, 8), cs_len=2, us_len=2, gamma=0.9)
    obs, _ = rollout(env, params, jax.random.PRNGKey(0), 30)
    us, cs = np.asarray(obs[:, 0]), np.asarray(obs[:, 1])
    # Trial length 5 + 8 = 13: CS at tau 0-1, US at tau 5-6, next onset at step 13.
    want_cs = np.zeros(30)
    want_us = np.zeros(30)
    for onset in (0, 13, 26):
        want_cs[onset : onset + 2] = 1
        want_us[onset + 5 : onset + 7] = 1
    np.testing.assert_array_equal(cs, want_cs)
    np.testing.assert_array_equal(us, want_us[:30])


def test_trace_conditioning_statistics():
    env, params = make_task("trace_conditioning")  # ISI 7..13, ITI 80..120, 10 distractors
    obs, _ = rollouts(env, params, 8, 60_000)
    isis, itis, us_lens, cs_lens = [], [], [], []
    for o in obs:
        cs_on = np.where(np.diff(o[:, 1]) == 1)[0] + 1
        us_on = np.where(np.diff(o[:, 0]) == 1)[0] + 1
        for a, b in zip(cs_on[:-1], cs_on[1:], strict=True):
            u = us_on[(us_on > a) & (us_on < b)]
            assert len(u) == 1, "every conditioning trial has exactly one US"
            isis.append(u[0] - a)
            itis.append(b - u[0])
        us_lens += list(runs_of(o[:, 0]))
        cs_lens += list(runs_of(o[:, 1]))
    isis, itis = np.array(isis), np.array(itis)
    assert isis.min() == 7 and isis.max() == 13
    assert itis.min() == 80 and itis.max() == 120
    assert chi2_uniform_p(isis, 7, 13) > 1e-3
    assert chi2_uniform_p(itis, 80, 120) > 1e-3
    assert set(us_lens) == {2} and set(cs_lens) == {4}
    # Distractor j switches on with probability 1/(10 j) from an off step, stays on 4 steps.
    for j in range(10):
        d = obs[:, :, 2 + j]
        prev_off = d[:, :-1] == 0
        on_rate = d[:, 1:][prev_off].mean()
        p = 1 / (10 * (j + 1))
        sigma = math.sqrt(p * (1 - p) / prev_off.sum())
        assert abs(on_rate - p) < 4 * sigma, (j, on_rate, p)
        assert set(np.concatenate([runs_of(x) for x in d])) == {4}


def _trials(env, params, n_keys, steps):
    """Per trial: shown CS vector, stored patterns, outcome (from the US in the stream)."""
    obs, states = rollouts(env, params, n_keys, steps)
    rows = []
    for s in range(n_keys):
        onset = np.where(states.tau[s] == 0)[0]
        for a, b in zip(onset[:-1], onset[1:], strict=True):
            rows.append(
                (obs[s, a, 1 : 1 + env.n_cs], states.patterns[s, a], obs[s, a:b, 0].max(),
                 states.isi[s, a], b - a - states.isi[s, a])
            )  # fmt: skip
    return obs, states, rows


@pytest.mark.parametrize("task", ["trace_patterning", "trace_patterning_testbed"])
def test_patterning_rule_and_rates(task):
    env, params = make_task(task)
    obs, states, rows = _trials(env, params, 8, 40_000)
    n = len(rows)
    stored = [any((cs == p).all() for p in pats) for cs, pats, *_ in rows]
    us = [u for _, _, u, _, _ in rows]
    assert stored == [bool(u) for u in us], "US iff the shown CS vector is stored (noise 0)"
    rate = np.mean(us)
    assert abs(rate - 0.5) < 4 * math.sqrt(0.25 / n), rate  # both rules give half positive
    lo, hi = int(params.isi_lo), int(params.isi_hi)
    isis = np.array([r[3] for r in rows])
    itis = np.array([r[4] for r in rows])
    assert chi2_uniform_p(isis, lo, hi) > 1e-3
    assert chi2_uniform_p(itis, 80, 120) > 1e-3
    cs_rows = np.array([r[0] for r in rows])
    if env.rule == "half_patterns":
        assert set(cs_rows.sum(1)) == {3.0}, "every trial shows a 3-of-6 vector"
        # Uniform over the 20 candidates.
        idx = [int(np.where((half_patterns(6) == cs).all(1))[0][0]) for cs in cs_rows]
        assert chi2_uniform_p(np.array(idx), 0, 19) > 1e-3
    else:
        p = pattern_probability(6, 10)
        shown_stored = np.mean(stored)
        expect = p + (1 - p) * 10 / 64
        assert abs(shown_stored - expect) < 4 * math.sqrt(expect * (1 - expect) / n)
    # 10 stored patterns per seed, distinct, each 3-of-6, different across seeds.
    pats = states.patterns[:, 0]
    assert pats.shape[1:] == (10, 6)
    assert all(len({tuple(r) for r in p}) == 10 for p in pats)
    assert not all((pats[0] == p).all() for p in pats[1:])
    # Activation lengths.
    cs_len, us_len = int(params.cs_len), int(params.us_len)
    assert set(np.concatenate([runs_of(o[:, 0]) for o in obs])) == {us_len}
    assert set(np.concatenate([runs_of(o[:, 1:7].max(1)) for o in obs])) == {cs_len}


def test_noisy_patterning_flips_outcomes():
    env, params = make_task("noisy_patterning")
    assert int(params.isi_lo) == int(params.isi_hi) == int(params.cs_len) == 4
    _, _, rows = _trials(env, params, 8, 40_000)
    flips = np.array([any((cs == p).all() for p in pats) != bool(u) for cs, pats, u, *_ in rows])
    n = len(flips)
    assert abs(flips.mean() - 0.1) < 4 * math.sqrt(0.09 / n), flips.mean()


def test_per_trial_distractors_are_fair_coins_shown_at_onset():
    env, params = make_task("trace_patterning_testbed")
    obs, states = rollouts(env, params, 4, 30_000)
    onset = states.tau == 0
    d = obs[..., 7:]
    rate = d[onset].mean()
    n = d[onset].size
    assert abs(rate - 0.5) < 4 * math.sqrt(0.25 / n)
    late = states.tau >= int(params.distractor_len)
    assert d[late].max() == 0


def test_same_key_same_stream_different_keys_differ():
    env, params = make_task("trace_patterning")
    a, _ = rollout(env, params, jax.random.PRNGKey(3), 3000)
    b, _ = rollout(env, params, jax.random.PRNGKey(3), 3000)
    c, _ = rollout(env, params, jax.random.PRNGKey(4), 3000)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_env_vmaps_over_params():
    env = Animal(n_cs=1, n_distractors=0, rule="conditioning")
    p1 = env.make_params(isi=(5, 5), iti=(8, 8))
    p2 = env.make_params(isi=(9, 9), iti=(8, 8))
    both = jax.tree.map(lambda a, b: jnp.stack([a, b]), p1, p2)
    obs, _ = jax.vmap(lambda p: rollout(env, p, jax.random.PRNGKey(0), 40))(both)
    np.testing.assert_array_equal(obs[0], rollout(env, p1, jax.random.PRNGKey(0), 40)[0])
    np.testing.assert_array_equal(obs[1], rollout(env, p2, jax.random.PRNGKey(0), 40)[0])
    assert np.argmax(np.asarray(obs[0, :, 0])) == 5 and np.argmax(np.asarray(obs[1, :, 0])) == 9


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(isi=(30, 20)), "isi range lo=30, hi=20"),
        (dict(isi=(5, 6), iti=(-1, 4)), "iti range lo=-1"),
        (dict(isi=(5, 6), gamma=1.0), "gamma=1.0"),
        (dict(isi=(5, 6), gamma=-0.1), "gamma=-0.1"),
        (dict(isi=(5, 6), noise=1.5), "noise=1.5"),
        (dict(isi=(5, 6), cs_len=0), "cs_len=0"),
    ],
)
def test_bad_task_parameters_fail_with_one_line(kwargs, needle):
    env = Animal()
    with pytest.raises(ValueError) as e:
        env.make_params(**kwargs)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_bad_task_settings_fail_with_one_line():
    with pytest.raises(ValueError, match="n_distractors=-2"):
        Animal(n_distractors=-2)
    with pytest.raises(ValueError, match="n_patterns=30 must be in 1..20"):
        Animal(n_patterns=30)
    with pytest.raises(ValueError, match="unknown task 'nope'; allowed: .*trace_patterning"):
        make_task("nope")
    with pytest.raises(ValueError, match="gamma=1.2"):
        make_task("trace_patterning", gamma=1.2)


def test_presets_are_listed_and_build():
    assert "trace_patterning" in TASKS and "trace_conditioning" in TASKS
    for name in TASKS:
        if name == "atari_GAME":  # one per trace found (tests/test_atari.py)
            continue
        env, params = make_task(name)
        if is_classification(name):  # sequential MNIST: 28-pixel rows of 28x28 images
            assert env.obs_size == 28 and params.train_x.shape[1:] == (28, 28)
            assert env.reset == (name == "seq_mnist")
            continue
        obs, _ = env.reset(jax.random.PRNGKey(0), params)
        assert obs.shape == (env.obs_size,)
    env, params = make_task("trace_patterning")
    assert env.obs_size == 12 and float(params.gamma) == pytest.approx(0.9)
    assert (int(params.isi_lo), int(params.isi_hi)) == (24, 36)


# -- MSRE ---------------------------------------------------------------------------------


def test_returns_hand_worked():
    c = np.array([0.0, 0.0, 1.0, 0.0, 1.0])
    g = returns(c, 0.5)
    np.testing.assert_allclose(g, [0.625, 1.25, 0.5, 1.0, 0.0])
    # Truncated at 2 terms: G_0 = c_1 + 0.5 c_2.
    np.testing.assert_allclose(returns(c, 0.5, horizon=2), [0.5, 1.0, 0.5, 1.0, 0.0])


def test_horizon_bounds_truncation():
    for gamma in (0.5, 0.9, 0.966):
        h = horizon_for(gamma)
        assert gamma**h / (1 - gamma) <= 1e-6 < gamma ** (h - 1) / (1 - gamma)


def test_streaming_msre_equals_offline_on_same_stream():
    rng = np.random.default_rng(0)
    T, gamma = 400, 0.8
    H = horizon_for(gamma)
    v = rng.normal(size=T).astype(np.float32)
    c = (rng.random(T) < 0.1).astype(np.float32)
    state = msre_init(jnp.asarray(gamma), H)
    step = jax.jit(msre_update)
    got = []
    for t in range(T):
        state, sq, counted, _ = step(state, v[t], c[t])
        if counted:
            got.append(float(sq))
    want = offline_errors(v, c, gamma, H)
    assert len(got) == T - H == len(want)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # And the truncated return is within the bound of the exact one.
    exact = (v[: T - H] - returns(c, gamma)[: T - H]) ** 2
    np.testing.assert_allclose(want, exact, atol=1e-4)
