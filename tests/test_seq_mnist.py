"""Sequential MNIST as a task: the stream, the held-out score, learning on the shipped sample,
classification trials that restore bit for bit, and the command line."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learners import make_hparams, make_learner
from study.engine.classify import make_classify_runner, make_evaluate
from study.engine.kinds import CLASSIFICATION, HELDOUT_CURVE, PREDICTION
from study.engine.loop import seed_keys
from study.engine.trial import TrialRun
from study.run import main as run_main
from study.tasks import make_task
from study.tasks.seq_mnist import ROWS


@pytest.fixture(scope="module")
def task():
    env, tp = make_task("seq_mnist")
    return env, jax.tree.map(jnp.asarray, tp)


def program(learner, env, block):
    runner = make_classify_runner(learner, env, block)
    init = jax.jit(jax.vmap(runner.init, in_axes=(0, None, None)))
    advance = jax.jit(jax.vmap(runner.advance, in_axes=(0, None, None, None)), static_argnums=3)
    return init, advance


def test_untrained_stream_counts_every_image_once_with_the_label_it_drew(task):
    """With zero weights every logit is 0 and argmax names digit 0: an image counts as an
    error iff its label is not 0. The labels come from the image indices the stream draws,
    recomputed here from the stream's key."""
    env, tp = task
    learner = make_learner("columnar", ROWS, n_features=2, n_classes=10)
    hp = make_hparams(alpha=0.0, init_scale=0.0)
    init, advance = program(learner, env, 28 * 50)
    seeds = [0, 1]
    carry = init(seed_keys(seeds), hp, tp)
    carry, stats = advance(carry, hp, tp, 3)
    assert np.all(np.asarray(stats.count) == 50)  # 1,400 steps = 50 whole images per block
    labels = np.asarray(tp.train_y)
    for i, seed in enumerate(seeds):
        k_run = jax.random.split(jax.random.PRNGKey(seed))[1]
        drawn = [int(env.image(k_run, n, labels.size)) for n in range(150)]
        want = (labels[drawn] != 0).reshape(3, 50).sum(axis=1)
        np.testing.assert_array_equal(np.asarray(stats.errors[i]), want)
        assert float(stats.ce_sum[i].sum()) == pytest.approx(150 * np.log(10), rel=1e-5)
    assert len(set(drawn)) > 100  # images are drawn across the training set


def test_heldout_score_of_an_untrained_learner_is_the_share_of_zeros(task):
    env, tp = task
    learner = make_learner("hybrid", ROWS, n_features=4, per_stage=2, n_classes=10)
    hp = make_hparams(init_scale=0.3)
    state = learner.init(jax.random.PRNGKey(0), hp)
    acc, ce = jax.jit(make_evaluate(learner, env))(state, hp, tp)
    assert float(acc) == pytest.approx(float(np.mean(np.asarray(tp.test_y) == 0)))
    assert float(ce) == pytest.approx(np.log(10), rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["seq_mnist", "seq_mnist_carry"])
def test_columnar_learner_classifies_held_out_digits_well_above_chance(name):
    """16 columns, 3,000 training images (84,000 steps) of the shipped sample: held-out
    accuracy on its 1,000 held-out digits was 0.62 and 0.66 (reset), 0.63 and 0.66 (carried)
    for seeds 0 and 1; chance is 0.10."""
    env, tp = make_task(name)
    tp = jax.tree.map(jnp.asarray, tp)
    learner = make_learner("columnar", ROWS, n_features=16, n_classes=10)
    hp = make_hparams(alpha=3e-3)
    init, advance = program(learner, env, 2800)
    carry, stats = advance(init(seed_keys([0, 1]), hp, tp), hp, tp, 30)
    acc, _ = jax.jit(jax.vmap(make_evaluate(learner, env), in_axes=(0, None, None)))(
        carry.learner_state, hp, tp
    )
    assert np.all(np.asarray(acc) > 0.45), acc
    errors = np.asarray(stats.errors) / np.asarray(stats.count)
    assert np.all(errors[:, -5:].mean(axis=1) < errors[:, :3].mean(axis=1) - 0.2)


CONFIG = dict(
    learner="hybrid", n_features=4, per_stage=2, steps_per_stage=2800, alpha=3e-3,
    task="seq_mnist", seeds=[0, 1], steps=8400, chunk_steps=2800, block=1400, window=2800,
    report_min_s=0,
)  # fmt: skip


def test_classification_trial_restores_bit_for_bit(tmp_path):
    whole = TrialRun(CONFIG)
    assert whole.kind is CLASSIFICATION
    assert whole.curve_key == "online accuracy/curve_accuracy_windowed"
    reports = [whole.advance().metrics for _ in range(3)]
    assert whole.finished and reports[-1]["images_done"] == 300
    first = TrialRun(CONFIG)
    first.advance()
    first.save(tmp_path)
    second = TrialRun(CONFIG)
    second.restore(tmp_path)
    assert second.steps_done == 2800 and second.report().metrics == pytest.approx(
        first.report().metrics, nan_ok=True
    )
    later = [second.advance().metrics for _ in range(2)]
    for key in ("heldout_accuracy", "accuracy_windowed", "ce_windowed", "heldout_accuracy_seed1"):
        assert later[-1][key] == reports[-1][key]
    for a, b in zip(jax.tree.leaves(second.carry), jax.tree.leaves(whole.carry), strict=True):
        np.testing.assert_array_equal(a, b)
    points = whole.curve()
    assert [p[0] for p in points] == [1400, 2800, 4200, 5600, 7000, 8400]
    assert HELDOUT_CURVE in points[-1][1]


def test_diverged_classifier_scores_zero():
    # Cross-entropy gradients are bounded, so only a step size near float32's largest value
    # overflows the weights within a chunk.
    run = TrialRun(dict(CONFIG, learner="linear", alpha=3e38, rmsprop=False, n_features=None,
                         per_stage=None, steps_per_stage=None))  # fmt: skip
    out = run.advance().metrics
    assert out["diverged"] and out["heldout_accuracy"] == 0.0 and out["diverged_at_step"] >= 0


def test_run_command_prints_accuracy_per_seed(capsys):
    argv = ["--task", "seq_mnist", "--learner", "linear", "--steps", "5600", "--seeds", "2"]
    assert run_main(argv) == 0
    out = capsys.readouterr().out
    assert "not comparable with full MNIST" in out and "held-out accuracy" in out
    assert out.count("seed ") == 2


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--task", "seq_mnist", "--data-dir", "/nonexistent/mnist"],
         "MNIST folder /nonexistent/mnist does not exist"),
        (["--task", "trace_patterning", "--data-dir", "/tmp"],
         "--data-dir/--traces-dir applies to seq_mnist and atari_GAME tasks only, not "
         "trace_patterning"),
    ],
)  # fmt: skip
def test_bad_data_dir_is_one_line(argv, needle, capsys):
    assert run_main([*argv, "--steps", "2800"]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.strip().count("\n") == 0


def test_report_measure_follows_the_task_and_refuses_a_mix():
    from study.report.load import Trial, measure_for

    def trial(task):
        return Trial("r", "e", "columnar", "finished", {}, {}, [0], task=task)

    assert measure_for([trial("seq_mnist"), trial("seq_mnist_carry")]) is CLASSIFICATION
    assert measure_for([trial("trace_patterning")]) is PREDICTION
    with pytest.raises(ValueError, match="cannot compare classification and prediction"):
        measure_for([trial("seq_mnist"), trial("trace_patterning")])


@pytest.mark.parametrize(
    "learner,sizes",
    [("linear", {}), ("columnar", dict(n_features=3)), ("constructive", dict(n_features=2)),
     ("hybrid", dict(n_features=4, per_stage=2)), ("snap1", dict(n_features=3)),
     ("rtrl", dict(n_features=2)), ("tbptt", dict(n_features=3, truncation=7)),
     ("rtu", dict(n_features=3)), ("rtu_linear", dict(n_features=3)),
     ("uoro", dict(n_features=3)), ("lru", dict(n_features=3))],
)  # fmt: skip
def test_every_learner_runs_as_a_classification_trial(learner, sizes):
    base = {k: v for k, v in CONFIG.items() if k not in ("learner", "n_features", "per_stage")}
    config = dict(base, learner=learner, steps=5600, steps_per_stage=2800, **sizes)
    run = TrialRun(config)
    assert run.learner.name == learner and run.learner.settings["n_classes"] == 10
    while not run.finished:
        out = run.advance().metrics
    assert out["images_done"] == 200 and not out["diverged"]
    for key in ("heldout_accuracy", "accuracy_windowed", "heldout_accuracy_seed1"):
        assert 0.0 <= out[key] <= 1.0
    assert out["heldout_ce"] > 0 and np.isfinite(out["ce_windowed"])
    assert run.ledger()["ledger_params"] == run.learner.n_params


@pytest.mark.parametrize("config", [
    CONFIG,
    dict(learner="columnar", n_features=3, alpha=1e-3, task="trace_patterning", seeds=[0, 1],
         steps=60_000, chunk_steps=20_000, block=5_000, window=10_000, report_min_s=0),
], ids=["classification", "prediction"])  # fmt: skip
def test_what_a_trial_records_depends_on_steps_never_on_its_speed(config, monkeypatch):
    """A slow machine (every chunk cut short after one block, as when a block outlasts
    REPORT_S) and a fast one (chunks of chunk_steps) record the same curve points and the
    same held-out scores at the same steps: what is recorded depends on steps alone."""
    import study.engine.trial as trial

    def recorded(slow: bool):
        monkeypatch.setattr(trial, "REPORT_S", 0.0 if slow else 1e9)
        run = TrialRun(config)
        chunks, points = 0, []
        while not run.finished:
            before = run.blocks_done
            run.advance()
            points += run.curve(since_block=before)
            chunks += 1
        return chunks, points, {k: np.asarray(v).tolist() for k, v in sorted(run.extra.items())}

    fast, slow = recorded(False), recorded(True)
    assert slow[0] == config["steps"] // config["block"] > fast[0]  # chunks cut differently
    assert slow[1] == fast[1] and slow[2] == fast[2]
    if config["task"] == "seq_mnist":  # held-out scores at every chunk_steps, and at the end
        held = [k for k in fast[2] if k.startswith("heldout_acc_at")]
        assert sorted(held) == ["heldout_acc_at1", "heldout_acc_at3", "heldout_acc_at5"]
