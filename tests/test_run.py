"""The run loop: scan equals a Python loop, vmap equals single runs, chunks equal one scan,
checkpoints continue bit for bit, and the command line works and rejects bad input."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learners import FAMILIES, make_hparams, make_learner
from study import native
from study.engine.loop import make_run, make_runner, seed_keys
from study.run import main
from study.tasks import make_task
from study.tasks.metrics import (
    baselines,
    horizon_for,
    normalised,
    offline_errors,
    returns,
    summarise_blocks,
)

LEARNERS = list(FAMILIES)  # every family of the registry


def small(name, env):
    kw = {"linear": {}, "hybrid": dict(n_features=4, per_stage=2)}.get(name, dict(n_features=4))
    if name == "tbptt":
        kw["truncation"] = 3
    return make_learner(name, env.obs_size, **kw)


def hparams(**kw):
    return make_hparams(**{"alpha": 3e-3, "steps_per_stage": 150, "norm_rate": 1e-3, **kw})


@pytest.mark.parametrize("name", LEARNERS)
def test_scan_equals_python_loop(name):
    env, tp = make_task("trace_conditioning")
    learner = small(name, env)
    hp = hparams()
    runner = make_runner(learner, env, block_size=100, horizon=horizon_for(0.9), record=True)
    key = jax.random.PRNGKey(0)
    carry0 = runner.init(key, hp, tp)
    carry, (stats, (v_scan, c_scan)) = jax.jit(runner.advance, static_argnums=3)(carry0, hp, tp, 4)

    # The same stream by hand: env.step_u and learner.step called from Python.
    env_step, learner_step = jax.jit(env.step_u), jax.jit(learner.step)
    obs, es, ls = carry0.obs, carry0.env_state, carry0.learner_state
    uniforms = env.uniforms(carry0.key, carry0.t, 400)
    c = obs[0]
    vs, cs = [], []
    for t in range(400):
        ls, out = learner_step(ls, obs, c, hp)
        vs.append(out["v"])
        cs.append(c)
        obs, es, c = env_step(uniforms[t], es, tp)
    np.testing.assert_allclose(np.asarray(vs), v_scan, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(cs), c_scan)
    for a, b in zip(jax.tree.leaves(ls), jax.tree.leaves(carry.learner_state), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Streaming MSRE of the run equals the offline MSRE of the recorded stream.
    H = horizon_for(0.9)
    off = offline_errors(v_scan, c_scan, 0.9, H)
    assert int(stats.count.sum()) == off.size == 400 - H
    np.testing.assert_allclose(float(stats.sq_sum.sum()), off.sum(), rtol=1e-4)
    per_block = [off[max(0, b * 100 - H) : max(0, (b + 1) * 100 - H)].sum() for b in range(4)]
    np.testing.assert_allclose(stats.sq_sum, per_block, rtol=1e-4, atol=1e-7)
    # The baselines' sums are those of the true returns of the same scored predictions.
    G = returns(c_scan, 0.9, H)[: 400 - H]
    scored = [slice(max(0, b * 100 - H), max(0, (b + 1) * 100 - H)) for b in range(4)]
    np.testing.assert_allclose(stats.ret_sum, [G[s].sum() for s in scored], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats.ret_sq_sum, [(G[s] ** 2).sum() for s in scored], rtol=1e-4,
                               atol=1e-6)  # fmt: skip
    assert G.max() > 0.1  # the stream had a US: the sums are not trivially zero


def test_baselines_are_the_mse_of_zero_and_of_the_best_constant():
    """Catches a wrong formula: on known returns, predicting 0 scores mean G^2 and the best
    constant (the mean, in hindsight) scores the variance, window by window."""
    rng = np.random.default_rng(1)
    G = rng.random((2, 30))  # two seeds, 30 blocks of 10 returns each
    G = np.repeat(G, 10, axis=-1).reshape(2, 30, 10) * rng.random((2, 30, 10))
    base = baselines(G.sum(-1), (G**2).sum(-1), np.full((2, 30), 10.0), window_blocks=5)
    last = G[:, -5:].reshape(2, -1)
    np.testing.assert_allclose(base["zero_windowed"], (last**2).mean(-1), rtol=1e-12)
    np.testing.assert_allclose(base["constant_windowed"], last.var(-1), rtol=1e-9)
    best = ((last - last.mean(-1, keepdims=True)) ** 2).mean(-1)
    other = ((last - last.mean(-1, keepdims=True) - 0.05) ** 2).mean(-1)
    assert np.all(best < other)  # no other constant does better
    np.testing.assert_allclose(normalised(best, base["constant_windowed"]), 1.0, rtol=1e-9)


@pytest.mark.parametrize("name", ["linear", "hybrid"])
def test_vmap_over_seeds_and_step_sizes_equals_single_runs(name):
    env, tp = make_task("trace_patterning")
    learner = small(name, env)
    alphas = jnp.asarray([1e-2, 1e-3, 1e-4])
    hp = jax.tree.map(lambda a: jnp.broadcast_to(a, (3,)), hparams(alpha=alphas))
    run = make_run(learner, env, 2000, block_size=500)
    keys = seed_keys([0, 1])
    batched = jax.jit(jax.vmap(jax.vmap(run, (0, None, None)), (None, 0, None)))(keys, hp, tp)
    single = jax.jit(run)
    for a in range(3):
        hp_a = jax.tree.map(lambda x, a=a: x[a], hp)
        for s in range(2):
            one = single(keys[s], hp_a, tp)
            # float32: vmap reorders sums, and 2,000 learning steps at alpha 1e-2 grow that
            # rounding to about 1e-5; different runs differ by far more (checked below).
            np.testing.assert_allclose(batched.sq_sum[a, s], one.sq_sum, rtol=1e-4)
            np.testing.assert_array_equal(batched.count[a, s], one.count)
            if native.engine(learner, env) == "native":
                # the compiled loop runs a batch stream by stream: equal bit for bit
                np.testing.assert_array_equal(batched.sq_sum[a, s], one.sq_sum)
    # Different step sizes and seeds really are different runs.
    assert not np.allclose(batched.sq_sum[0, 0], batched.sq_sum[2, 0])
    assert not np.allclose(batched.sq_sum[0, 0], batched.sq_sum[0, 1])


def test_chunks_and_checkpoint_continue_bit_for_bit(tmp_path):
    env, tp = make_task("trace_patterning")
    learner = small("hybrid", env)
    hp = hparams()
    runner = make_runner(learner, env, block_size=250, horizon=horizon_for(0.9))
    advance = jax.jit(runner.advance, static_argnums=3)
    carry0 = runner.init(jax.random.PRNGKey(5), hp, tp)
    full_carry, full = advance(carry0, hp, tp, 4)

    half_carry, first = advance(carry0, hp, tp, 2)
    # Save every leaf through numpy, restore into the same tree structure, continue.
    leaves, treedef = jax.tree.flatten(half_carry)
    path = tmp_path / "ckpt.npz"
    np.savez(path, *[np.asarray(x) for x in leaves])
    with np.load(path) as f:
        restored = jax.tree.unflatten(
            treedef, [jnp.asarray(f[f"arr_{i}"]) for i in range(len(leaves))]
        )
    cont_carry, second = advance(restored, hp, tp, 2)
    np.testing.assert_array_equal(np.concatenate([first.sq_sum, second.sq_sum]), full.sq_sum)
    for a, b in zip(jax.tree.leaves(cont_carry), jax.tree.leaves(full_carry), strict=True):
        np.testing.assert_array_equal(a, b)


def test_chunks_of_a_trial_equal_one_scan():
    """The engine of every run (``study.engine.trial.TrialRun``): however the run is cut into
    chunks, every block's statistics are the same, bit for bit."""
    from study.engine.trial import TrialRun, finish

    config = dict(task="trace_conditioning", learner="columnar", n_features=4, alpha=3e-3,
                  norm_rate=1e-3, seeds=[0, 1], steps=3000, block=500, window=1000,
                  report_min_s=0)  # fmt: skip
    a, b = TrialRun(dict(config, chunk_steps=3000)), TrialRun(dict(config, chunk_steps=1000))
    finish(a)
    while not b.finished:
        b.advance()
    np.testing.assert_array_equal(a.record().stats.sq_sum, b.record().stats.sq_sum)
    assert a.record().stats.sq_sum.shape == (2, 6)
    assert float(a.record().stats.sq_sum.sum()) > 0


def test_summarise_blocks_windows():
    sq = np.array([[4.0, 2.0, 6.0, 8.0]])
    n = np.array([[2.0, 2.0, 2.0, 2.0]])
    out = summarise_blocks(sq, n, window_blocks=2)
    np.testing.assert_allclose(out["windowed"], [14.0 / 4])
    np.testing.assert_allclose(out["running"], [20.0 / 8])
    np.testing.assert_allclose(out["curve"], [[2.0, 1.5, 2.0, 3.5]])


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_cli_runs_and_prints_msre_per_seed_and_ci():
    code, out, _ = _cli(
        "--task", "trace_patterning", "--learner", "linear", "--steps", "20000", "--seeds", "3",
        "--alpha", "0.001", "0.0001",
    )  # fmt: skip
    assert code == 0
    assert out.count("seed   0:") == 2 and "seed   2:" in out
    assert out.count("mean +- 95% CI") == 2


# The other learners run on other tasks in tests/test_launch.py's smoke studies.
@pytest.mark.parametrize(
    "learner,task", [("hybrid", "noisy_patterning"), ("tbptt", "trace_patterning")]
)
def test_cli_runs_every_learner_on_other_tasks(learner, task):
    extra = {"hybrid": ["--per-stage", "2"], "tbptt": ["--truncation", "3"]}.get(learner, [])
    code, out, _ = _cli(
        "--task", task, "--learner", learner, "--features", "4", *extra,
        "--steps", "6000", "--seeds", "2", "--window", "3000",
    )  # fmt: skip
    assert code == 0, out
    assert f"learner {learner}" in out and "windowed" in out and "nan" not in out


def test_cli_lists():
    code, out, _ = _cli("--list-tasks")
    assert code == 0 and "trace_patterning " in out and "noisy_patterning" in out
    code, out, _ = _cli("--list-learners")
    assert code == 0 and "hybrid" in out


def test_a_run_may_end_before_its_last_stage_as_the_reference_runs_do():
    """The authors' reference runs constructive 10:1 for 1M steps in stages of 200k; the
    command runs such a schedule and says how many stages start."""
    code, out, err = _cli(
        "--learner", "constructive", "--features", "4", "--stage-steps", "400", "--steps",
        "1000", "--seeds", "1", "--block", "100", "--window", "500",
    )  # fmt: skip
    assert code == 0, err
    assert "note: --stage-steps 400: 3 of the 4 stages start within --steps 1,000" in err
    code, _, err = _cli(
        "--learner", "constructive", "--features", "4", "--stage-steps", "250", "--steps",
        "1000", "--seeds", "1", "--block", "100", "--window", "500",
    )  # fmt: skip
    assert code == 0 and "note:" not in err  # stages at 0, 250, 500, 750: all start


def test_an_unrolled_loop_gives_the_same_numbers(monkeypatch):
    """``CCN_SCAN_UNROLL`` (JAX's loop, as on a GPU) changes how the scan is compiled, not
    what it computes; a bad value is refused in one line."""
    env, tp = make_task("trace_conditioning")
    learner = small("tbptt", env)
    hp = hparams()

    def stats(unroll):
        runner = make_runner(learner, env, 500, horizon_for(0.9), engine="jax", unroll=unroll)
        carry = runner.init(jax.random.PRNGKey(3), hp, tp)
        return runner.advance(carry, hp, tp, 4)[1]

    one, eight = stats(1), stats(8)
    np.testing.assert_allclose(one.sq_sum, eight.sq_sum, rtol=1e-6)
    assert one.sq_sum.sum() > 0
    monkeypatch.setenv("CCN_SCAN_UNROLL", "0")
    with pytest.raises(ValueError, match="CCN_SCAN_UNROLL=0: allowed: a whole number"):
        stats(None)
