"""Trials: chunked runs with checkpoints that restore bit for bit, divergence handling, and a
real Ray Tune run of the trainable."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from study.engine.trial import TrialRun
from study.orchestration.trainable import trainable

BASE = dict(
    learner="columnar", n_features=3, alpha=3e-3, task="trace_conditioning",
    seeds=[0, 1], steps=4000, chunk_steps=1000, block=500, window=1000, report_min_s=0,
)  # fmt: skip


def test_checkpoint_restore_continues_bit_for_bit(tmp_path):
    whole = TrialRun(BASE)
    reports = [whole.advance().metrics for _ in range(4)]
    assert whole.finished and reports[-1]["steps_done"] == 4000

    first = TrialRun(BASE)
    first.advance()
    first.advance()
    first.save(tmp_path)
    second = TrialRun(BASE)
    second.restore(tmp_path)
    assert second.steps_done == 2000
    later = [second.advance().metrics for _ in range(2)]
    for key in ("msre_windowed", "msre_running", "msre_windowed_seed1"):
        assert later[-1][key] == reports[-1][key]
    for a, b in zip(jax.tree.leaves(second.carry), jax.tree.leaves(whole.carry), strict=True):
        np.testing.assert_array_equal(a, b)
    # Per-seed values are reported and differ between seeds.
    assert reports[-1]["msre_windowed_seed0"] != reports[-1]["msre_windowed_seed1"]


def test_divergence_is_flagged_with_its_step_and_scored_worst():
    run = TrialRun(dict(BASE, learner="linear", alpha=50.0, rmsprop=False, n_features=None))
    m = run.advance().metrics
    assert m["diverged"] is True
    assert 0 <= m["diverged_at_step"] < 1000
    assert m["msre_windowed"] == float("inf")
    ok = TrialRun(dict(BASE, learner="linear", alpha=1e-3, n_features=None)).advance().metrics
    assert ok["diverged"] is False and np.isfinite(ok["msre_windowed"])


@pytest.mark.xdist_group("ray")
def test_trainable_under_ray_tune_reports_chunks_and_stops_diverged(ray_local, tmp_path):
    from ray import tune

    space = dict(BASE, learner="linear", n_features=None, rmsprop=False, steps=3000)
    space["alpha"] = tune.grid_search([1e-3, 50.0])
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(metric="msre_windowed", mode="min"),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="smoke", verbose=0),
    )
    results = tuner.fit()
    assert not results.errors
    by_alpha = {r.config["alpha"]: r for r in results}
    good, bad = by_alpha[1e-3], by_alpha[50.0]
    assert good.metrics["steps_done"] == 3000 and not good.metrics["diverged"]
    # One report per 1000-step chunk; a first chunk that outlasts REPORT_S (compilation on a
    # busy machine) reports early once, at a block's end, and the chunks go on from there.
    steps = list(good.metrics_dataframe["steps_done"])
    assert steps[-1] == 3000 and all(s % 500 == 0 for s in steps), steps
    assert all(0 < b - a <= 1000 for a, b in zip(steps, steps[1:], strict=False)), steps
    assert steps == [1000, 2000, 3000] or (steps[0] < 1000 and len(steps) == 4), steps
    assert bad.metrics["diverged"] and len(bad.metrics_dataframe) == 1
    assert good.checkpoint is not None
    assert results.get_best_result().config["alpha"] == 1e-3


def test_a_run_already_closed_as_finished_is_left_alone_when_its_trial_runs_again(tmp_path):
    """A launch killed after a trial closed its run but before Tune recorded the trial as done
    runs the trial again on --resume: the run found again logs nothing twice (no curve point,
    no final value, its status kept), where a run closed as interrupted is reopened."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from study.engine.kinds import PREDICTION
    from study.records.study import Tracking
    from study.records.tags import STATUS_TAG
    from study.records.trial import TrialLogger

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("closed")
    parent = client.create_run(exp).info.run_id
    tracking = Tracking(uri, exp, parent)
    key = PREDICTION.curve

    def start(run_id=None, trial="t1"):
        return TrialLogger(tracking, run_id, trial, f"trainable_{trial}", {}, {"alpha": 0.01})

    first = start()
    first.log_curve([(1000, {key: 0.5}), (2000, {key: 0.4})])
    first.finish("finished", {"msre_windowed": 0.4})
    finals = client.get_metric_history(first.run_id, "final_msre_windowed")
    again = start(first.run_id)
    assert again.settled == "finished"
    again.log_curve([(2000, {key: 0.4}), (3000, {key: 0.3})])
    again.end("finished", {"msre_windowed": 0.3})
    again.log_final({"trial_time_wall_s": 1.0})
    run = client.get_run(first.run_id)
    assert [m.step for m in client.get_metric_history(first.run_id, key)] == [1000, 2000]
    assert client.get_metric_history(first.run_id, "final_msre_windowed") == finals
    assert run.info.status == "FINISHED" and run.data.tags[STATUS_TAG] == "finished"
    # An interrupted run (a failure, a scheduler's stop) is reopened and goes on.
    other = start(trial="t2")
    other.client.log_batch(other.run_id, metrics=[Metric(key, 0.5, 0, 1000)])
    other.finish("failed", {})
    reopened = start(other.run_id, trial="t2")
    assert reopened.settled is None and reopened.last_step == 1000
    assert client.get_run(other.run_id).info.status == "RUNNING"


@pytest.mark.parametrize("packed", [False, True])
def test_a_search_resumed_over_a_finished_optuna_trial_goes_on(packed):
    """The launch killed between Optuna recording a trial's end and Tune recording it: the
    trial reports again on --resume. The study's searcher ignores those reports (Ray's
    OptunaSearch stops the whole study with UpdateFinishedTrialError) and the Optuna trial
    keeps its value."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    from search_spaces import make_space
    from study.orchestration.pack_search import PackSearch, StudySearch

    def searcher(cls, **kw):
        storage = optuna.storages.InMemoryStorage()
        return cls(space=make_space("columnar"), metric="m", mode="min", storage=storage,
                   study_name="s", **kw)  # fmt: skip

    search = searcher(PackSearch, pack=2, trials=2) if packed else searcher(StudySearch)
    search.suggest("t1")
    members = search._ot_trials["t1"] if packed else [search._ot_trials["t1"]]
    for t in members:
        search._ot_study.tell(t, 0.25)  # recorded by the launch that was killed
    result = {"m": 0.5, "training_iteration": 3}
    if packed:
        result = {"m": 0.5, "pack_size": 2, "pack0_m": 0.5, "pack1_m": 0.5,
                  "training_iteration": 3}  # fmt: skip
    search.on_trial_result("t1", result)
    search.on_trial_complete("t1", result)
    for t in search._ot_study.get_trials():
        assert t.state == optuna.trial.TrialState.COMPLETE and t.value == 0.25
        assert t.intermediate_values == {}
    # What the study's searcher guards against (so this test can fail): Ray's own raises.
    plain = searcher(OptunaSearch)
    plain.suggest("t1")
    plain._ot_study.tell(plain._ot_trials["t1"], 0.25)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        plain.on_trial_result("t1", {"m": 0.5, "training_iteration": 3})


def test_an_evaluation_closes_a_configuration_only_when_every_seed_has_diverged():
    """In a search a configuration is closed at its first diverged seed (its objective is
    then the worst); in an evaluation (``role`` eval) only when every seed has, so that its
    other seeds run to the end (``study.orchestration.trainable.closes``). The statistic it
    reads: a configuration whose every seed diverged (step size 1e30) against one whose none
    did, in one pack."""
    from study.orchestration.trainable import closes

    one = {"diverged": True, "diverged_every_seed": False}
    every = {"diverged": True, "diverged_every_seed": True}
    assert closes(one, "tuning") and closes(every, "tuning") and closes(every, "eval")
    assert not closes(one, "eval")
    run = TrialRun(dict(BASE, learner="linear", rmsprop=False, n_features=None,
                        pack=[{"alpha": 1e30}, {"alpha": 1e-3}]))  # fmt: skip
    run.advance()
    bad, good = (run.member_metrics(i) for i in range(2))
    assert bad["diverged_every_seed"] and bad["diverged"]
    assert not good["diverged_every_seed"] and not good["diverged"]
