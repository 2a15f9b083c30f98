"""Selection that counts its own noise (``study.compare.racing``), fresh seeds in rounds
sized by power (``study.compare.protocol``), and a configuration's rounds joined into one
trial (``study.report.load.merge_rounds``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from records import recorded

from study.compare import main as compare
from study.compare import racing
from study.compare.protocol import auto_schedule
from study.engine.kinds import PREDICTION
from study.report.load import Trial, merge_rounds

pytestmark = pytest.mark.xdist_group("preset")


def test_racing_and_auto_schedules_as_typed():
    assert racing.parse_racing("5,10,20", None) == (5, 10, 20)
    assert racing.parse_racing(None, 5) is None
    assert auto_schedule("auto") == (20, 40, 80, 160, 200)
    assert auto_schedule("auto:100") == (20, 40, 80, 100)
    assert auto_schedule("AUTO:10") == (10,)
    assert auto_schedule("30") is None


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--racing", "5,10"], "--racing 5,10: the finalists would have 10 tuning seeds; "
                               "allowed: a schedule that reaches at least 20"),
        (["--racing", "10,5,20"], "--racing 10,5,20: allowed: two or more increasing"),
        (["--racing", "5,10,20", "--seeds", "3"], "--seeds 3 with --racing 5,10,20"),
        (["--eval-seeds", "auto:5"], "--eval-seeds auto:5: the cap of fresh seeds a family "
                                     "must be a whole number from 10 to 4096"),
        (["--eval-seeds", "auto:lots"], "--eval-seeds auto:lots: the cap"),
        (["--equivalence-margin", "0"], "--equivalence-margin 0: allowed: a positive number"),
        (["--equivalence-margin", "-0.1"], "--equivalence-margin -0.1: allowed: a positive"),
        (["--stability-threshold", "1.5", "--racing", "5,10,20"],
         "--stability-threshold 1.5: allowed: a share from 0 to 1"),
        (["--extend-grid", "--eval-seeds", "auto"], "--extend-grid runs on the grid's"),
    ],
)  # fmt: skip
def test_bad_protocol_options_are_one_line_before_anything_is_written(argv, needle, tmp_path,
                                                                       capsys):  # fmt: skip
    runs = tmp_path / "runs"
    rc = compare(["--preset", "jmlr-trace-patterning", "--scale", "100", "--runs-dir", str(runs),
                  *argv])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2 and needle in err and len(err.splitlines()) == 1
    assert not runs.exists()


def test_racing_and_auto_apply_to_a_preset_only(tmp_path, capsys):
    assert compare(["--racing", "5,10,20", "--runs-dir", str(tmp_path / "r")]) == 2
    assert "--racing 5,10,20 applies to --preset" in capsys.readouterr().err
    assert compare(["--eval-seeds", "auto", "--runs-dir", str(tmp_path / "r")]) == 2
    assert "--eval-seeds auto applies to --preset" in capsys.readouterr().err


def _trial(alpha, values, seeds, learner="columnar", status="finished", role="tuning"):
    values = np.asarray(values, np.float64)
    metrics = {f"final_msre_windowed_seed{s}": v for s, v in zip(seeds, values, strict=True)}
    metrics["final_msre_windowed"] = float(values.mean())
    t = Trial(run_id=f"{learner}-{alpha}-{seeds[0]}", experiment=f"e{seeds[0]}", learner=learner,
              status=status, params={"alpha": str(alpha)}, metrics=metrics, seeds=list(seeds),
              role=role, seed_finals=values, measure=PREDICTION,
              config={"learner": learner, "alpha": alpha})  # fmt: skip
    return t


def test_a_race_keeps_each_familys_better_half_and_drops_a_diverged_configuration():
    """Catches survivors ranked the wrong way, across families, on fewer seeds than the
    round's, or a diverged configuration kept."""
    rng = np.random.default_rng(0)
    seeds = list(range(5))
    trials = [_trial(a, rng.normal(m, 0.01, 5), seeds)
              for a, m in ((0.1, 0.5), (0.03, 0.2), (0.01, 0.3), (0.003, 0.4))]  # fmt: skip
    trials.append(_trial(0.3, [0.1, 0.1, np.inf, 0.1, 0.1], seeds, status="diverged"))
    trials += [_trial(a, rng.normal(m, 0.01, 5), seeds, learner="tbptt")
               for a, m in ((1e-3, 0.6), (3e-4, 0.7))]  # fmt: skip
    kept = racing.survivors(trials)
    assert [c["alpha"] for c in kept if c["learner"] == "columnar"] == [0.03, 0.01, 0.003]
    assert [c["alpha"] for c in kept if c["learner"] == "tbptt"] == [1e-3, 3e-4]  # two at least
    # a configuration that ran fewer seeds (dropped in an earlier round) is not a finalist
    more = [_trial(0.03, rng.normal(0.2, 0.01, 10), range(10)),
            _trial(0.01, rng.normal(0.3, 0.01, 10), range(10)), *trials]  # fmt: skip
    assert {t.params["alpha"] for t in racing.standings(more)["columnar"]} == {"0.03", "0.01"}


def test_a_picks_stability_is_how_often_a_resample_of_its_seeds_picks_it_again():
    """A pick far ahead on every seed is re-selected in every resample; two configurations
    that swap places from seed to seed share the resamples about evenly, and the other is
    the runner-up; the resamples draw the same seeds for every finalist (paired): two
    configurations equal but for a constant offset are never confused."""
    rng = np.random.default_rng(1)
    seeds = range(20)
    clear = [_trial(0.01, rng.normal(0.2, 0.01, 20), seeds),
             _trial(0.03, rng.normal(0.5, 0.01, 20), seeds)]  # fmt: skip
    (s,) = racing.stability(clear).values()
    assert s.share == 1.0 and s.pick.params["alpha"] == "0.01" and s.finalists == 2
    noise = rng.normal(0.3, 0.1, 20)
    close = [_trial(0.01, noise + rng.normal(0, 0.05, 20), seeds),
             _trial(0.03, noise + rng.normal(0, 0.05, 20), seeds),
             _trial(0.1, noise + 0.2, seeds)]  # fmt: skip
    (s,) = racing.stability(close).values()
    assert 0.2 < s.share < 0.8
    assert s.runner_up is not None and s.runner_up.params["alpha"] in ("0.01", "0.03")
    assert s.runner_up.params["alpha"] != s.pick.params["alpha"]
    paired = [_trial(0.01, noise, seeds), _trial(0.03, noise + 0.01, seeds)]
    assert racing.stability(paired)["columnar"].share == 1.0
    lines = racing.stability_lines(racing.stability(close), 0.9)
    assert "below 90%: the runner-up" in lines[0]
    unraced = racing.stability_lines(racing.stability(close), 0.9, raced=False)
    assert "the tuning seeds do not settle the pick" in unraced[0]


def test_a_configurations_rounds_are_one_trial_over_all_their_seeds():
    """Catches rounds reported apart (a pick's fresh seeds split in two), seeds counted
    twice, or a diverged round hidden by the finished one."""
    a = _trial(0.01, [0.2, 0.3], [1000, 1001], role="eval")
    b = _trial(0.01, [0.4, 0.5], [1002, 1003], role="eval")
    (one,) = merge_rounds([b, a])
    assert one.seeds == [1000, 1001, 1002, 1003]
    assert one.seed_finals.tolist() == [0.2, 0.3, 0.4, 0.5]
    assert one.final == pytest.approx(0.35) and one.status == "finished"
    c = _trial(0.01, [0.2, np.inf], [1004, 1005], role="eval", status="diverged")
    (two,) = merge_rounds([a, b, c])
    assert two.status == "diverged" and math.isinf(two.final)
    assert len(merge_rounds([a, _trial(0.01, [0.1, 0.1], [1000, 1001], role="eval")])) == 2
    assert len(merge_rounds([a, _trial(0.01, [0.1, 0.1], [0, 1])])) == 2  # other role
    # the study that launched a round (an evaluation's launch is named by its first family's
    # space) is not part of the configuration: a round re-run from another launch still joins
    from study.report.load import _config

    tag = {"learner": "snap1", "alpha": 0.001, "n_features": 8, "seeds": [1000], "role": "eval"}
    one, other = ({"ccn.config": json.dumps({**tag, "space": s})} for s in ("columnar", "snap1"))
    assert _config(one) == _config(other) == {"learner": "snap1", "alpha": 0.001, "n_features": 8}


def test_a_raced_preset_with_power_sized_fresh_seeds_runs_on_the_real_stack(ray_local, tmp_path,
                                                                           capsys):  # fmt: skip
    """The grid on 2 tuning seeds, the better half on seeds 2-3, the better half of those
    on seeds 4-19, each family's finalist with the lowest mean over 20 tuning seeds on 20
    fresh seeds, and no second fresh round when every claim is resolved after the first;
    the report states each pick's stability and judges the claim over the fresh seeds."""
    runs = tmp_path / "runs"
    argv = ["--preset", "jmlr-trace-patterning", "--scale", "2500", "--spaces",
            "columnar,constructive", "--racing", "2,4,20", "--eval-seeds", "auto:40",
            "--reuse-actors", "--runs-dir", str(runs)]  # fmt: skip
    assert compare(argv) == 0
    out = capsys.readouterr().out
    client = MlflowClient(f"sqlite:///{runs / 'mlflow.db'}")
    name = "jmlr-trace-patterning-scale2500"

    def children(experiment):
        exp = client.get_experiment_by_name(experiment)
        return [r for r in client.search_runs([exp.experiment_id])
                if "mlflow.parentRunId" in r.data.tags]  # fmt: skip

    assert len(children(name)) == 24
    second = children(f"{name}-race2")
    assert len(second) == 12 and {r.data.tags["seeds"] for r in second} == {"2,3"}
    third = children(f"{name}-race3")
    assert len(third) == 6
    assert {r.data.tags["seeds"] for r in third} == {",".join(map(str, range(4, 20)))}

    # the finalists are each family's better half of round 2 by their mean over seeds 0-3
    def key(r):
        return r.data.tags["learner"], r.data.params["alpha"], r.data.params["norm_rate"]

    means: dict = {}
    for r in [*children(name), *second]:
        means.setdefault(key(r), []).append(recorded(client, r)["final_msre_windowed"])
    for learner in ("columnar", "constructive"):
        ranked = sorted((k for k in means if k[0] == learner and len(means[k]) == 2),
                        key=lambda k: np.mean(means[k]))  # fmt: skip
        assert {key(r) for r in third if r.data.tags["learner"] == learner} == set(ranked[:3])
    fresh = children(f"{name}-race-fresh")
    assert len(fresh) == 2
    assert {r.data.tags["seeds"] for r in fresh} == {",".join(map(str, range(1000, 1020)))}
    assert client.get_experiment_by_name(f"{name}-race-fresh2") is None
    assert "every claim resolved after 20 fresh seeds a family" in out
    assert "re-selected in" in out and "of its 20 tuning seeds (3 finalists)" in out
    page = (runs / "reports" / name / "report.html").read_text()
    assert "Selection on the tuning seeds" in page
    orderings = (runs / "reports" / name / "orderings.txt").read_text()
    assert "columnar about equal to constructive: " in orderings
    assert "at 0.025 per look of 2" in orderings
    # another racing schedule under the same name is refused, naming the round that differs
    changed = [*argv]
    changed[changed.index("--racing") + 1] = "2,5,20"
    assert compare(changed) == 2
    err = capsys.readouterr().err
    assert f"stage '{name}-race2' was recorded with other options: seeds 2-3 there, 2-4 now" in err


def test_the_runner_up_is_compared_with_the_pick_on_the_same_fresh_seeds(tmp_path):
    """Catches the runner-up's fresh result reported against the pick's other seeds, or the
    better of the two named the wrong way round: each family's pick and runner-up on the
    same fresh seeds, read from MLflow as the stages record them."""
    from study.compare.protocol import _runner_up_lines
    from study.records.tags import PARENT_TAG, ROLE_TAG, STATUS_TAG

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    seeds = list(range(1000, 1010))
    rng = np.random.default_rng(0)

    def stage(name, mean):
        exp = client.create_experiment(name)
        launch = client.create_run(exp, tags={ROLE_TAG: "launch"}).info.run_id
        run = client.create_run(exp, tags={PARENT_TAG: launch, ROLE_TAG: "eval",
                                           STATUS_TAG: "finished", "learner": "tbptt",
                                           "task": "trace_patterning",
                                           "seeds": ",".join(map(str, seeds))})  # fmt: skip
        for s, v in zip(seeds, rng.normal(mean, 0.02, 10), strict=True):
            client.log_metric(run.info.run_id, f"final_nmsre_windowed_seed{s}", float(v))
            client.log_metric(run.info.run_id, f"final_msre_windowed_seed{s}", float(v) / 50)

    stage("x-fresh", 0.5)
    stage("x-fresh-runner-up", 0.3)
    plan = type("P", (), {"tracking_uri": uri})()
    unstable = [racing.Stability("tbptt", None, None, 0.3, 8, 20)]
    (line,) = _runner_up_lines(plan, "x-fresh-runner-up", "x-fresh", unstable)
    assert line.startswith("tbptt: on the same fresh seeds the pick scored 0.5")
    assert "the runner-up 0.29" in line and "the runner-up did better there" in line
