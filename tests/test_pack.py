"""Packs (``study.engine.pack``): K configurations of one shape x S seeds as one trial. Each runs
exactly as its lone trial would; each is its own Optuna trial and MLflow run; a packed study
and an unpacked one record the same configurations with the same curves."""

from __future__ import annotations

import json
from dataclasses import replace

import jax
import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient

from search_spaces import make_space
from study import launch
from study.cli import pack_option as parse_pack
from study.engine.kinds import HELDOUT_CURVE, PREDICTION
from study.engine.pack import auto_size, group, pack_metrics
from study.engine.trial import TrialRun
from study.orchestration.execute import execute

MSRE_CURVE = PREDICTION.curve  # its MLflow key

BASE = dict(task="trace_conditioning", seeds=[0, 1, 2], steps=4000, chunk_steps=1000,
            block=500, window=1000, report_min_s=0)  # fmt: skip


def finish(run: TrialRun) -> dict:
    metrics = {}
    while not run.finished:
        metrics = run.advance().metrics
    return metrics


HYBRID = dict(learner="hybrid", n_features=6, per_stage=2)


@pytest.mark.parametrize(
    ("shape", "vary"),
    [(dict(learner="columnar", n_features=3), {}),  # the compiled CPU loop
     (dict(learner="tbptt", n_features=4, truncation=3), {}),  # JAX's loop
     # stages that start at different steps in each configuration
     (HYBRID, dict(steps_per_stage=(1000, 1500, 2500)))],
)  # fmt: skip
def test_each_configuration_of_a_pack_runs_as_its_lone_trial(shape, vary):
    members = [dict(shape, alpha=a, lambda_=lam) for a, lam in ((3e-3, 0.9), (1e-2, 0.0),
                                                               (1e-3, 0.99))]  # fmt: skip
    for key, values in vary.items():
        for m, v in zip(members, values, strict=True):
            m[key] = v
    pack = TrialRun(dict(BASE, pack=members))
    report = finish(pack)
    lone = [TrialRun(dict(BASE, **m)) for m in members]
    alone = [finish(r) for r in lone]
    for i, (run, own) in enumerate(zip(lone, alone, strict=True)):
        assert pack.curve(member=i) == run.curve()  # every block, every seed, bit for bit
        assert pack.report().members[i]["msre_windowed"] == own["msre_windowed"]
        assert report[f"pack{i}_msre_windowed"] == own["msre_windowed"]
    # The configurations differ, so the test tells members apart.
    assert len({a["msre_windowed"] for a in alone}) == 3
    best = int(np.argmin([a["msre_windowed"] for a in alone]))
    assert report["pack_best"] == best and report["msre_windowed"] == alone[best]["msre_windowed"]
    assert report["msre_windowed_seed2"] == alone[best]["msre_windowed_seed2"]
    assert report["config_steps_per_s"] == pytest.approx(3 * report["steps_per_s"])


def test_a_diverging_configuration_is_masked_while_the_others_run_on():
    members = [dict(learner="linear", alpha=a, rmsprop=False) for a in (1e-3, 50.0, 3e-3)]
    pack = TrialRun(dict(BASE, pack=members))
    reports = []
    while not pack.finished:
        reports.append(pack.advance().metrics)
    lone = TrialRun(dict(BASE, **members[1]))
    diverged = finish(lone)
    assert diverged["diverged"] and diverged["diverged_at_step"] >= 0
    # The diverged member says so at the step its lone trial does; the pack runs to its end,
    # scored by its best member that did not diverge.
    assert reports[-1]["pack1_diverged"] and not reports[-1]["diverged"]
    assert pack.report().members[1]["diverged_at_step"] == diverged["diverged_at_step"]
    assert not reports[-1]["pack0_diverged"] and not reports[-1]["pack2_diverged"]
    assert np.isfinite(reports[-1]["msre_windowed"]) and reports[-1]["pack_best"] in (0, 2)
    assert reports[-1]["pack1_msre_windowed"] == np.inf
    for i in (0, 2):
        assert pack.curve(member=i) == finish_curve(dict(BASE, **members[i]))


def finish_curve(config: dict) -> list:
    run = TrialRun(config)
    finish(run)
    return run.curve()


def test_a_pack_diverges_only_when_every_configuration_has():
    kind = TrialRun(dict(BASE, learner="linear")).kind
    each = [dict(msre_windowed=np.inf, steps_per_s=1.0, diverged=True, diverged_at_step=s)
            for s in (500, 1500)]  # fmt: skip
    out = pack_metrics(kind, each)
    assert out["diverged"] and out["diverged_at_step"] == 1500
    each[1] = dict(msre_windowed=0.5, steps_per_s=1.0, diverged=False, diverged_at_step=-1)
    out = pack_metrics(kind, each)
    assert not out["diverged"] and out["diverged_at_step"] == -1 and out["pack_best"] == 1


def test_a_pack_restores_bit_for_bit(tmp_path):
    config = dict(BASE, pack=[dict(learner="columnar", n_features=3, alpha=a)
                              for a in (3e-3, 1e-2)])  # fmt: skip
    whole = TrialRun(config)
    final = finish(whole)
    first = TrialRun(config)
    first.advance()
    first.advance()
    first.save(tmp_path, {"mlflow_run_ids": ["a", "b"]})
    second = TrialRun(config)
    assert second.restore(tmp_path) == {"mlflow_run_ids": ["a", "b"]}
    timing = ("steps_per_s", "config_steps_per_s")
    resumed = finish(second)
    assert {k: v for k, v in resumed.items() if k not in timing} == {
        k: v for k, v in final.items() if k not in timing}  # fmt: skip
    for a, b in zip(jax.tree.leaves(second.carry), jax.tree.leaves(whole.carry), strict=True):
        np.testing.assert_array_equal(a, b)
    assert second.curve(member=1) == whole.curve(member=1)


def test_a_pack_must_share_its_shape():
    members = [dict(learner="columnar", n_features=3, alpha=1e-3),
               dict(learner="columnar", n_features=4, alpha=1e-3)]  # fmt: skip
    with pytest.raises(ValueError, match="configuration 1 is columnar n_features=4"):
        TrialRun(dict(BASE, pack=members))
    members[1] = dict(learner="columnar", n_features=3, alpha=1e-3, rmsprop=False)
    with pytest.raises(ValueError, match="must share their shape"):
        TrialRun(dict(BASE, pack=members))


def test_configurations_are_grouped_by_shape_into_packs_of_at_most_k():
    shapes = [dict(learner="columnar", n_features=7),
              dict(learner="tbptt", n_features=4, truncation=3)]  # fmt: skip
    configs = [dict(s, alpha=a) for s in shapes for a in (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)]
    packs = group(configs, 2)
    assert sorted(len(p) for p in packs) == [1, 1, 2, 2, 2, 2]
    packs = group(configs, 3)
    assert sorted(len(p) for p in packs) == [2, 2, 3, 3]  # 5 of a shape: 3 + 2, not 3 + 3
    assert sorted(json.dumps(c, sort_keys=True) for p in packs for c in p) == sorted(
        json.dumps(c, sort_keys=True) for c in configs)  # fmt: skip
    for p in packs:
        assert len({c["learner"] for c in p}) == 1


def test_auto_pack_size_fills_the_device_and_keeps_workers_busy():
    # the main job: 6 trials x 5 seeds on 2 workers of one core: 3 per pack, 2 packs
    assert auto_size(6, 5, 2, 1.0, 0.0) == 3
    # 64 seeds fill a core alone
    assert auto_size(100, 64, 1, 1.0, 0.0) == 1
    # four cores, five seeds: 256 streams, 51 configurations
    assert auto_size(500, 5, 1, 4.0, 0.0) == 51
    # a GPU: 64 configurations x 30 seeds in one trial
    assert auto_size(64, 30, 1, 1.0, 1.0) == 64
    assert parse_pack("auto") is None and parse_pack("12") == 12
    for bad in ("0", "-3", "two", "1.5"):
        with pytest.raises(ValueError, match=f"--pack {bad}: allowed: a whole number"):
            parse_pack(bad)


def test_the_search_fixes_a_packs_shape_and_tells_each_configuration(tmp_path):
    from study.orchestration.pack_search import PackSearch

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    space = make_space("hybrid", None, 12, steps=100_000)

    def searcher():
        sampler = optuna.samplers.TPESampler(seed=1, constant_liar=True)
        return PackSearch(3, 7, space=space, metric="msre_windowed", mode="min",
                          storage=optuna.storages.RDBStorage(storage), study_name="s",
                          sampler=sampler)  # fmt: skip

    search = searcher()
    packs = [search.suggest(f"t{i}") for i in range(2)]
    for pack in packs:
        assert len(pack["pack"]) == 3
        shapes = {(c["per_stage"], c["n_stages"], c["n_features"]) for c in pack["pack"]}
        assert len(shapes) == 1
        assert len({c["alpha"] for c in pack["pack"]}) == 3
    search.on_trial_complete("t0", {"pack_size": 3, **{f"pack{i}_msre_windowed": 0.1 * (i + 1)
                                                       for i in range(3)}})  # fmt: skip
    search.save(str(tmp_path / "searcher.pkl"))
    # A resumed launch's searcher: the pack still running is told, the last pack holds the
    # seventh configuration alone, and no eighth is asked.
    again = searcher()
    again.restore(str(tmp_path / "searcher.pkl"))
    last = again.suggest("t2")
    assert len(last["pack"]) == 1 and again.suggest("t3") is None
    again.on_trial_complete("t1", {"pack_size": 3, "pack0_msre_windowed": 0.5,
                                   "pack1_msre_windowed": float("inf"),
                                   "pack2_msre_windowed": 0.7})  # fmt: skip
    again.on_trial_complete("t2", None, error=True)
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert len(trials) == 7
    by_number = {t.number: t for t in trials}
    told = [by_number[n] for p in packs for n in p["pack_trials"]]
    assert [t.value for t in told] == pytest.approx([0.1, 0.2, 0.3, 0.5, float("inf"), 0.7])
    assert by_number[last["pack_trials"][0]].state == optuna.trial.TrialState.FAIL
    for pack in packs:  # Optuna's trials hold the configurations the pack ran
        for config, number in zip(pack["pack"], pack["pack_trials"], strict=True):
            for key, value in by_number[number].params.items():
                assert config[key] == value


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--pack", "0"], "--pack 0: allowed: a whole number of configurations per trial >= 1, "
      "or auto"),
     (["--pack", "many"], "--pack many: allowed: a whole number"),
     (["--pack", "5", "--trials", "4"], "--pack 5: larger than the study's 4 trials; allowed: "
      "1 to 4, or auto")],
)  # fmt: skip
def test_bad_pack_sizes_are_refused_in_one_line(tmp_path, capsys, argv, message):
    assert launch.main(["--space", "columnar", "--smoke", "--runs-dir", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {message}")
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.xdist_group("ray")
def test_packed_and_unpacked_studies_record_the_same_configurations_and_curves(ray_local, tmp_path):
    """On the real stack (Ray Tune, MLflow in SQLite): the same four configurations (two
    shapes) on the same seeds, evaluated unpacked and in packs, give one MLflow run each,
    with equal curves; and a packed Optuna search records one Optuna trial per configuration,
    each with its MLflow run, whose curve is that of the configuration run alone."""
    shapes = [dict(learner="columnar", n_features=3),
              dict(learner="tbptt", n_features=4, truncation=3)]  # fmt: skip
    configs = [dict(s, alpha=a) for s in shapes for a in (1e-2, 1e-3)]
    curves = {}
    for pack in ("1", "2"):
        argv = ["--space", "columnar", "--task", "trace_conditioning", "--smoke",
                "--pack", pack, "--study-name", f"eval-{pack}", "--runs-dir", str(tmp_path),
                "--trials", "4", "--reuse-actors"]  # fmt: skip
        plan = launch.plan_of(launch._parser().parse_args(argv))
        assert plan.pack == int(pack)
        assert execute(replace(plan, configs=tuple(configs), seed_list=(3, 4))) == 0
        curves[pack] = _curves(tmp_path, f"eval-{pack}")
    assert len(curves["1"]) == 4 and curves["1"].keys() == curves["2"].keys()
    for key, (status, curve, _) in curves["2"].items():
        assert status == "finished" and len(curve) == 20
        np.testing.assert_allclose(curve, curves["1"][key][1], rtol=1e-6, atol=0)
    packed = [tags for _, _, tags in curves["2"].values()]
    assert sorted(t["ccn.pack_size"] for t in packed) == ["2", "2", "2", "2"]
    assert len({t["ccn.pack"] for t in packed}) == 2  # one per shape
    assert all("ccn.pack" not in tags for _, _, tags in curves["1"].values())

    # A packed search: 4 configurations in packs of 2, Optuna asking each.
    argv = ["--space", "columnar", "--task", "trace_conditioning", "--smoke", "--trials", "4",
            "--pack", "2", "--set", "n_features=3", "--runs-dir", str(tmp_path),
            "--reuse-actors"]  # fmt: skip
    assert launch.main(argv) == 0
    name = "columnar-trace_conditioning"
    runs = _curves(tmp_path, name)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert len(trials) == 4 and len(runs) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    by_alpha = {config["alpha"]: (curve, tags) for (config, (_, curve, tags)) in
                ((json.loads(k), v) for k, v in runs.items())}  # fmt: skip
    for t in trials:
        curve, tags = by_alpha[t.params["alpha"]]
        assert tags["ccn.optuna_trial"] == str(t.number)
        config = json.loads(tags["ccn.config"])
        assert {k: config[k] for k in t.params} == t.params
        alone = TrialRun({**config, "seeds": [0, 1]})
        finish(alone)
        expected = [v[MSRE_CURVE] for _, v in alone.curve()]
        np.testing.assert_allclose(curve, expected, rtol=1e-6, atol=0)
    assert len({tags["ccn.pack"] for _, tags in by_alpha.values()}) == 2


def _curves(runs_dir, name: str) -> dict[str, tuple[str, list[float], dict]]:
    """Each child run of experiment ``name`` by its configuration (JSON, sorted, without the
    study's keys): (status, mean curve, tags)."""
    client = MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    exp = client.get_experiment_by_name(name)
    out = {}
    for r in client.search_runs([exp.experiment_id]):
        if "mlflow.parentRunId" not in r.data.tags:
            continue
        config = json.loads(r.data.tags["ccn.config"])
        key = json.dumps({k: v for k, v in config.items() if k in (
            "learner", "n_features", "truncation", "alpha")}, sort_keys=True)  # fmt: skip
        history = sorted(client.get_metric_history(r.info.run_id, MSRE_CURVE),
                         key=lambda m: m.step)  # fmt: skip
        out[key] = (r.data.tags["ccn.status"], [m.value for m in history], r.data.tags)
    return out


def test_slow_reports_lengthen_the_chunks_unless_every_chunk_must_report():
    run = TrialRun(dict(BASE, learner="linear", report_min_s=2.0))
    run.pace(overhead_s=0.05, chunk_s=2.0)  # 2.5%: within the allowance
    assert run.min_chunk_s == 2.0
    run.pace(overhead_s=1.0, chunk_s=2.0)  # a large pack's many runs: 50%
    assert run.min_chunk_s == pytest.approx(1.0 / 0.04)
    run.pace(overhead_s=100.0, chunk_s=2.0)
    assert run.min_chunk_s == 120.0  # at most two minutes between reports
    eager = TrialRun(dict(BASE, learner="linear", report_min_s=0))
    eager.pace(overhead_s=1.0, chunk_s=0.1)
    assert eager.min_chunk_s == 0


def test_a_classification_pack_scores_each_configuration_as_alone():
    """Sequential MNIST: the held-out scoring after each chunk runs on the whole pack, and
    each configuration's share of it equals its lone trial's."""
    base = dict(task="seq_mnist", seeds=[0, 1], steps=5600, chunk_steps=2800, block=1400,
                window=2800, report_min_s=0)  # fmt: skip
    members = [dict(learner="columnar", n_features=3, alpha=a) for a in (3e-3, 3e-2)]
    pack = TrialRun(dict(base, pack=members))
    report = finish(pack)
    for i, m in enumerate(members):
        lone = TrialRun(dict(base, **m))
        alone = finish(lone)
        assert pack.curve(member=i) == lone.curve()
        assert pack.report().members[i]["heldout_accuracy"] == alone["heldout_accuracy"]
        assert report[f"pack{i}_heldout_accuracy"] == alone["heldout_accuracy"]
    assert pack.report().members[0]["heldout_ce"] != pack.report().members[1]["heldout_ce"]


@pytest.mark.parametrize("report_s", [20.0, 0.0])
def test_heldout_scoring_happens_at_steps_the_configuration_sets(monkeypatch, report_s):
    """Catches records that depend on timing: with chunks cut after every block (a slow or
    busy machine: REPORT_S 0) the held-out accuracy is still scored, and drawn, every
    ``chunk_steps`` steps and at the end, with the same values as with whole chunks."""
    import study.engine.trial

    monkeypatch.setattr(study.engine.trial, "REPORT_S", report_s)
    config = dict(task="seq_mnist", seeds=[0], steps=5600, chunk_steps=2800, block=700,
                  window=2800, report_min_s=0, learner="columnar", n_features=3)  # fmt: skip
    run = TrialRun(config)
    points, last = [], 0
    while not run.finished:
        run.advance()
        points += run.curve(last)
        last = run.blocks_done
    heldout = [(step, v[HELDOUT_CURVE]) for step, v in points
               if HELDOUT_CURVE in v]  # fmt: skip
    assert [step for step, _ in heldout] == [2800, 5600]
    assert all(0.0 <= v <= 1.0 for _, v in heldout)
