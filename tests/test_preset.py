"""``study.compare --preset jmlr-trace-patterning``: the paper's protocol as a grid on tuning
seeds, each family's pick on fresh seeds, and its orderings judged with bootstrap intervals."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from records import recorded

from study.compare import (
    PRESETS,
    PresetOptions,
    _parser,
    beyond,
    eval_seeds,
    matched_budget,
    preset_options,
    preset_plan,
)
from study.compare import main as compare
from study.report.claims import PAPER_TRACE_PATTERNING, judge

pytestmark = pytest.mark.xdist_group("preset")


def _args(*argv: str) -> PresetOptions:
    return preset_options(_parser().parse_args(["--preset", "jmlr-trace-patterning", *argv]))


def test_the_grid_is_the_papers_protocol_scaled():
    """Catches a grid that drifts from the paper: the shapes, the two step-size grids, lambda
    0.99, normalisation as an axis, and stage lengths shrunk with the steps."""
    preset, configs, kw = preset_plan(_args("--scale", "25"))
    assert preset is PRESETS["jmlr-trace-patterning"]
    assert kw["steps"] == 2_000_000  # 50M / 25
    assert kw["seeds"] == 30
    by = {}
    for c in configs:
        key = (c["learner"], c.get("truncation"), c["n_features"])
        by.setdefault(key, set()).add((c["alpha"], c["norm_rate"]))
        assert c["lambda_"] == 0.99
    rtrl = {0.3, 0.1, 0.03, 0.01, 0.003, 0.001}
    for key in [("columnar", None, 7), ("constructive", None, 10), ("hybrid", None, 20),
                ("snap1", None, 8)]:  # fmt: skip
        assert by[key] == {(a, r) for a in rtrl for r in (0.0, 1e-5)}
    pairs = {(k, h) for (name, k, h) in by if name == "tbptt"}
    assert pairs == {(2, 13), (3, 10), (5, 8), (8, 5), (10, 5), (15, 4), (20, 3), (30, 2)}
    assert by[("tbptt", 5, 8)] == {(a, r) for a in (1e-3, 3e-4, 1e-4, 3e-5) for r in (0.0, 1e-5)}
    assert len(configs) == 4 * 12 + 8 * 8
    stages = {c["learner"]: c.get("steps_per_stage") for c in configs}
    assert stages["constructive"] == 200_000 and stages["hybrid"] == 400_000  # 5M, 10M / 25
    assert all(c["norm_floor"] == 0.01 for c in configs if c["norm_rate"] > 0)
    # the reference code's update rule, so that the step-size axis is the paper's; SnAp-1
    # runs T-BPTT's (the C++'s SnAp-1 has none of its own): one rule for all five
    rules = {c["learner"]: c.get("update_rule") for c in configs}
    assert rules == {"columnar": "reference", "constructive": "reference",
                     "hybrid": "reference", "tbptt": "reference", "snap1": "reference"}  # fmt: skip
    _, ours, _ = preset_plan(_args("--scale", "25", "--update-rule", "ours"))
    assert {c.get("update_rule") for c in ours} == {"ours"}
    # --seeds and --spaces choose seeds and families; the grid of a family is kept whole
    _, few, kw = preset_plan(_args("--scale", "25", "--seeds", "10", "--spaces", "snap1"))
    assert kw["seeds"] == 10 and len(few) == 12


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--scale", "0.5"], "--scale 0.5 is not allowed"),
        (["--scale", "nan"], "--scale nan is not allowed"),
        (["--scale", "inf"], "--scale inf is not allowed"),
        (["--trials", "3"], "--trials does not apply to --preset"),
        (["--steps", "1000"], "--steps (use --scale) does not apply"),
        (["--set", "hybrid.alpha=0.1"], "--set does not apply"),
        (["--spaces", "linear"], "--spaces 'linear' with --preset: allowed: families"),
        (["--eval-seeds", "1"], "--eval-seeds 1: 1 fresh seed(s); allowed: 2 to 4096"),
        (["--seeds", "5", "--eval-seeds", "0-9"], "overlaps the tuning seeds 0-4"),
        (["--bootstrap-resamples", "999"], "--bootstrap-resamples 999 is not allowed"),
        (["--bootstrap-resamples", "2000000"], "from 1,000 to 1,000,000"),
        (["--eval-steps", "1000"], "--eval-steps does not apply to --preset"),
        (
            ["--budget-flops", "0"],
            "--budget-flops 0 with --preset: allowed: paper (default), match or a positive number",
        ),
        (["--budget-flops", "lots"], "--budget-flops lots with --preset: allowed"),
        (["--budget-flops", "100"], "--budget-flops: --budget-flops 100 is below the smallest"),
    ],
)
def test_bad_preset_input_is_one_line(argv, needle, capsys):
    assert compare(["--preset", "jmlr-trace-patterning", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err


def test_unknown_preset_and_scale_without_preset(capsys):
    assert compare(["--preset", "jmlr"]) == 2
    assert "unknown --preset 'jmlr'; allowed: jmlr-trace-patterning" in capsys.readouterr().err
    assert compare(["--scale", "10"]) == 2
    assert "--scale applies to --preset only" in capsys.readouterr().err


def _seeds(mean, spread, n=30, seed=0):
    return np.random.default_rng(seed).normal(mean, spread, n)


def _verdicts(values):
    return {j.claim: j.verdict for j in judge(PAPER_TRACE_PATTERNING, values)}


def test_orderings_are_judged_on_per_seed_values_with_stated_error_rates():
    """Catches verdicts made from means alone or in the wrong direction: families far apart
    are supported and the two close ones equivalent; a family a hair above T-BPTT is
    equivalent to it, not 'worst'; a reversed order is contradicted; 'about equal' is
    contradicted when the two separate; a missing family is not measured; the evidence
    states the difference and the probability with their intervals."""
    paper = {"snap1": _seeds(0.9, 0.05, seed=1), "tbptt": _seeds(0.6, 0.05, seed=2),
             "columnar": _seeds(0.4, 0.05, seed=3), "constructive": _seeds(0.41, 0.05, seed=4),
             "hybrid": _seeds(0.2, 0.05, seed=5)}  # fmt: skip
    found = _verdicts(paper)
    assert found.pop("columnar about equal to constructive") == "equivalent"
    assert set(found.values()) == {"supported"}
    close = {**paper, "snap1": paper["tbptt"] + 0.002}
    assert _verdicts(close)["SnAp-1 worst"] == "equivalent"
    reversed_ = {**paper, "snap1": _seeds(0.1, 0.02, seed=6)}
    assert _verdicts(reversed_)["SnAp-1 worst"] == "contradicted"
    apart = {**paper, "constructive": _seeds(0.5, 0.02, seed=7)}
    assert _verdicts(apart)["columnar about equal to constructive"] == "contradicted"
    missing = judge(PAPER_TRACE_PATTERNING, {"tbptt": paper["tbptt"]})
    assert all(j.verdict == "not measured" for j in missing)
    evidence = judge(PAPER_TRACE_PATTERNING, paper)[3].evidence
    assert evidence.startswith("hybrid - columnar = -0.2") and "P(hybrid below columnar" in evidence


def test_a_bimodal_family_is_judged_by_the_probability_of_improvement():
    """Seeds that split between learned and not: the CCN's 20% of seeds that never learn
    leave the difference of means undecided, while it beats every other family on 80% of
    seeds; the verdict rests on the probability of improvement."""
    rng = np.random.default_rng(3)
    values = {"hybrid": np.r_[np.full(24, 0.08), np.full(6, 1.0)] + rng.normal(0, 0.005, 30),
              "columnar": _seeds(0.35, 0.02, seed=8), "constructive": _seeds(0.36, 0.02, seed=9),
              "tbptt": _seeds(0.5, 0.02, seed=10), "snap1": _seeds(0.6, 0.02, seed=11)}  # fmt: skip
    (ccn,) = [j for j in judge(PAPER_TRACE_PATTERNING, values) if j.claim == "CCN lowest"]
    assert ccn.verdict == "supported"
    assert "hybrid - columnar = -0.0" in ccn.evidence or "hybrid - columnar = 0.0" in ccn.evidence


def test_a_preset_at_matched_compute_sizes_each_network_to_the_ccns_flops():
    """``--budget-flops match``: every configuration's network is the largest of its family
    (keeping its stage width, and each T-BPTT pair its truncation) within the CCN 20:4's
    14,932 flops on trace patterning, by the ledger; one size larger would not fit. The
    paper's sizes stay the default, and the default name says which."""
    from learners import make_learner
    from learners.registry import cost

    def flops(c, n):
        settings = {k: c[k] for k in ("per_stage", "truncation") if k in c}
        return cost(c["learner"], 12, make_learner(c["learner"], 12, n_features=n,
                                                   **settings).settings).flops  # fmt: skip

    _, configs, kw = preset_plan(_args("--scale", "25", "--budget-flops", "match"))
    assert kw["study_name"] == "jmlr-trace-patterning-scale25-match"
    step = {"hybrid": 4}
    for c in configs:
        n = c["n_features"]
        assert flops(c, n) <= 14_932 < flops(c, n + step.get(c["learner"], 1))
    assert {c["n_features"] for c in configs if c["learner"] == "hybrid"} == {20}
    assert len({c["n_features"] for c in configs if c["learner"] == "tbptt"}) > 3
    _, paper, kw = preset_plan(_args("--scale", "25"))
    assert kw["study_name"] == "jmlr-trace-patterning-scale25"
    assert {c["n_features"] for c in paper if c["learner"] == "columnar"} == {7}


def test_eval_seeds_never_overlap_the_tuning_seeds():
    assert eval_seeds("30", 5) == 30
    assert eval_seeds("100-109", 5) == list(range(100, 110))
    assert eval_seeds("7,9", 5) == [7, 9]
    for text, needle in [("3-12", "overlaps the tuning seeds 0-4; allowed: seeds from 5 on"),
                         ("1", "1 fresh seed(s); allowed: 2 to 4096"),
                         ("9,9", "distinct seeds"), ("lots", "allowed: a count, FIRST-LAST"),
                         ("8", None)]:  # fmt: skip
        if needle is None:
            assert eval_seeds(text, 5) == 8
            continue
        with pytest.raises(ValueError, match=None) as e:
            eval_seeds(text, 5)
        assert needle in str(e.value)


def test_the_grid_extends_past_the_edge_its_pick_is_at():
    """Catches an extension on the wrong side or off the grid's 1-3 ladder."""
    rtrl = [0.3, 0.1, 0.03, 0.01, 0.003, 0.001]
    assert beyond(rtrl, 0.001) == [3e-4, 1e-4]
    assert beyond(rtrl, 0.3) == [1.0, 3.0]
    assert beyond([1e-3, 3e-4, 1e-4, 3e-5], 3e-5) == [1e-5, 3e-6]


def test_compare_matches_compute_by_default():
    """Without --budget-flops every family is sized to the CCN 20:4's flops on the task (the
    ledger's count: 14,932 on trace patterning's 12 inputs); 'paper' keeps each family's
    own size; a number passes through."""
    assert matched_budget(None, "trace_patterning") == "14932"
    assert matched_budget("match", "trace_patterning") == "14932"
    assert matched_budget("paper", "trace_patterning") == "auto"
    assert matched_budget("15000", "trace_patterning") == "15000"
    from study.compare import plan_comparison

    def budgets(**kw) -> dict[str, str]:
        c = plan_comparison(kw.pop("spaces"), "trace_patterning", name="c", **kw)
        return {n: p.budget_text for n, p in c.tuning.items()}

    assert budgets(spaces=["columnar", "tbptt"]) == {"c-columnar": "14932", "c-tbptt": "14932"}
    # a size set by hand wins over the default budget; a budget given is refused beside it
    fixed = {"columnar": {"n_features": 3}}
    assert budgets(spaces=["columnar"], fixed=fixed) == {"c-columnar": "auto"}
    with pytest.raises(ValueError, match="n_features: the size is set by budget_flops"):
        budgets(spaces=["columnar"], fixed=fixed, budget_flops="match")


def test_a_scaled_preset_runs_on_the_real_stack(ray_local, tmp_path, capsys):
    """The grid runs as Ray Tune trials recorded in MLflow, one run per configuration on the
    tuning seeds (no search); the pick (the lowest mean final windowed MSRE) runs again on
    fresh seeds in NAME-fresh; the report takes its figures from the fresh seeds, the
    tuning figures beside them, and states the orderings."""
    runs = tmp_path / "runs"
    rc = compare(["--preset", "jmlr-trace-patterning", "--scale", "2500", "--seeds", "2",
                  "--eval-seeds", "3", "--spaces", "columnar", "--reuse-actors",
                  "--runs-dir", str(runs)])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "12 configurations x 2 tuning seeds x 20,000 steps, then each family's pick on 3 " \
        "fresh seeds" in out  # fmt: skip
    assert "columnar about equal to constructive: not measured" in out
    client = MlflowClient(f"sqlite:///{runs / 'mlflow.db'}")

    def children(name):
        exp = client.get_experiment_by_name(name)
        return [r for r in client.search_runs([exp.experiment_id])
                if "mlflow.parentRunId" in r.data.tags]  # fmt: skip

    grid = children("jmlr-trace-patterning-scale2500")  # the default name names the scale
    assert len(grid) == 12
    assert len({(float(r.data.params["alpha"]), float(r.data.params["norm_rate"]))
                for r in grid}) == 12  # fmt: skip
    assert {r.data.tags["seeds"] for r in grid} == {"0,1"}
    assert {r.data.tags["ccn.role"] for r in grid} == {"tuning"}
    assert all(math.isfinite(recorded(client, r)["final_nmsre_windowed"]) or
               r.data.tags["ccn.status"] == "diverged" for r in grid)  # fmt: skip
    finished = [r for r in grid if r.data.tags["ccn.status"] == "finished"]
    pick = min(finished, key=lambda r: recorded(client, r)["final_msre_windowed"])
    (fresh,) = children("jmlr-trace-patterning-scale2500-fresh")
    assert fresh.data.tags["ccn.role"] == "eval"
    assert fresh.data.tags["seeds"] == "1000,1001,1002"
    for key in ("alpha", "norm_rate", "n_features", "lambda_"):
        assert fresh.data.params[key] == pick.data.params[key]
    report = runs / "reports" / "jmlr-trace-patterning-scale2500"
    with (report / "summary.csv").open() as f:
        (values,) = list(csv.DictReader(f))
    assert values["selection"] == "fresh seeds" and values["seeds"] == "3"
    ratios = [recorded(client, fresh)[f"final_nmsre_windowed_seed{s}"] for s in (1000, 1001, 1002)]
    assert float(values["nmsre_mean"]) == pytest.approx(np.mean(ratios))
    same = [recorded(client, pick)[f"final_nmsre_windowed_seed{s}"] for s in (0, 1)]
    assert float(values["same_seeds_mean"]) == pytest.approx(np.mean(same))
    page = (report / "report.html").read_text()
    assert "The paper&#x27;s orderings at this scale" in page
    tried = sorted({float(r.data.params["alpha"]) for r in grid})
    at_edge = float(pick.data.params["alpha"]) in (tried[0], tried[-1])
    assert ("columnar&#x27;s pick has the" in page) == at_edge
    assert "judged on the fresh seeds" in (report / "orderings.txt").read_text()
    # the summary the docs paste names the preset's command as typed
    footer = (report / "summary.md").read_text().strip().splitlines()[-1]
    assert footer.startswith("Made by `python -m study.compare --preset jmlr-trace-patterning "
                             "--scale 2500 --seeds 2 --eval-seeds 3 --spaces columnar")  # fmt: skip
    # the same command again runs nothing and reports the same
    argv = ["--preset", "jmlr-trace-patterning", "--scale", "2500", "--seeds", "2",
            "--eval-seeds", "3", "--spaces", "columnar", "--runs-dir", str(runs)]  # fmt: skip
    assert compare(argv) == 0
    assert capsys.readouterr().out.count("already run; not run again") == 2
    # the same name with other seeds is refused before anything runs, never reported as if
    # it were the new run (it once printed the new settings and reported the old run)
    launches = len(client.search_runs([client.get_experiment_by_name(
        "jmlr-trace-patterning-scale2500").experiment_id]))  # fmt: skip
    for flag, value, named in (
        ("--seeds", "3", "seeds 0-1 there, 0-2 now (--seeds)"),
        ("--eval-seeds", "4", "fresh seeds 3 there, 4 now (--eval-seeds)"),
    ):
        changed = [*argv]
        changed[changed.index(flag) + 1] = value
        assert compare(changed) == 2
        err = capsys.readouterr().err.strip()
        assert named in err and len(err.splitlines()) == 1 and "give another --name" in err
    assert len(client.search_runs([client.get_experiment_by_name(
        "jmlr-trace-patterning-scale2500").experiment_id])) == launches  # fmt: skip
    # --extend-grid: a pick at the grid's edge gets the two step sizes past it on the tuning
    # seeds, and the picks among both run on the fresh seeds, reported apart
    assert compare([*argv, "--extend-grid"]) == 0
    out = capsys.readouterr().out
    if at_edge:
        extended = children("jmlr-trace-patterning-scale2500-extended")
        assert sorted(float(r.data.params["alpha"]) for r in extended) == sorted(
            beyond(tried, float(pick.data.params["alpha"])))  # fmt: skip
        for r in extended:  # the pick's setting but its step size
            for key in ("norm_rate", "n_features", "lambda_", "update_rule"):
                assert r.data.params[key] == pick.data.params[key]
        done = [r for r in [*grid, *extended] if r.data.tags["ccn.status"] == "finished"]
        best = min(done, key=lambda r: recorded(client, r)["final_msre_windowed"])
        (again,) = children("jmlr-trace-patterning-scale2500-extended-fresh")
        assert again.data.params["alpha"] == best.data.params["alpha"]
        folder = runs / "reports" / "jmlr-trace-patterning-scale2500-extended"
        assert (folder / "report.html").exists()
    else:
        assert "nothing to extend" in out


def test_a_budget_sizes_every_family_that_has_a_size_and_leaves_linear_as_it_is():
    """``study.compare --budget-flops`` passes the budget to each tuning study whose family
    has a size; linear (no size) runs beside them instead of the whole comparison being
    refused."""
    from study.compare import plan_comparison

    c = plan_comparison(["columnar", "linear"], "trace_patterning", name="c", budget_flops=15000)
    assert c.tuning["c-columnar"].budget_text == "15000"
    assert c.tuning["c-linear"].budget_text == "auto"  # as a launch of linear alone
    assert c.tuning["c-columnar"].space.budget_flops == 15000


def test_a_comparisons_ray_is_recorded_in_a_fresh_runs_dir_and_not_reaped_by_its_studies(
    tmp_path,
):
    """``study.compare`` records its local Ray's processes before any study has made the
    runs folder's lock directory: the record creates it (it once failed there). Its tuning
    studies, launched inside it, must not take that record for a killed launch's leftovers
    (the comparison holds no study lock) and stop its Ray, as they once did; a record whose
    driver is gone is still reaped."""
    import json
    import os
    import subprocess
    import sys

    import psutil

    from study.orchestration import local_ray
    from study.orchestration.local_ray import reap_leftovers

    runs = tmp_path / "fresh"
    pidfile = runs / "locks" / "compare-x.ray.json"
    watcher = local_ray.watch_driver(pidfile)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert json.loads(pidfile.read_text())["driver"] == os.getpid()
        # a process of "its Ray", recorded as the watcher would
        started = psutil.Process(sleeper.pid).create_time()
        pidfile.write_text(json.dumps({"driver": os.getpid(), "pids": {sleeper.pid: started}}))
        assert reap_leftovers(runs, "compare-x-columnar") == 0
        assert pidfile.exists() and sleeper.poll() is None
    finally:
        local_ray.unwatch(watcher, pidfile)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    gone = runs / "locks" / "killed.ray.json"
    gone.write_text(json.dumps({"driver": int(dead.stdout), "pids": {}}))
    reap_leftovers(runs, "compare-x-columnar")
    assert not gone.exists()
    sleeper.kill()


@pytest.mark.parametrize(
    "status,state",
    [("FINISHED", "done"), ("KILLED", "interrupted"), ("RUNNING", "interrupted"),
     ("FAILED", "interrupted")],
)  # fmt: skip
def test_a_stage_is_done_only_when_its_launch_finished(tmp_path, status, state):
    """Catches a stage stopped with Ctrl+C (its launch KILLED) read as done, which made
    ``--resume`` skip the grid's unfinished configurations and pick among the finished ones."""
    from study.compare.stages import stage_state as _state
    from study.records.tags import ROLE_TAG

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    assert _state(uri, "grid") == "new"
    run = client.create_run(client.create_experiment("grid"), tags={ROLE_TAG: "launch"})
    if status != "RUNNING":
        client.set_terminated(run.info.run_id, status)
    assert _state(uri, "grid") == state


def test_a_stage_recorded_with_other_options_is_refused_naming_them(tmp_path):
    """Catches a stage 'done' by name alone: a launch that recorded other options (or, from
    before stages recorded them, whose runs show other seeds or steps) is refused in one
    line naming each option that differs and what sets it, and the recorded command."""
    from study.compare.stages import STAGE_TAG, check_stage
    from study.records.tags import CONFIG_TAG, PARENT_TAG, ROLE_TAG

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    now = {"task": "trace_patterning", "steps": "500,000", "seeds": "0-4",
           "configurations": "112 (abc)"}  # fmt: skip
    check_stage(uri, "grid", now)  # a new stage passes
    recorded = {**now, "steps": "5,000,000", "command": "python -m study.compare --x"}
    exp = client.create_experiment("grid")
    client.create_run(exp, tags={ROLE_TAG: "launch", STAGE_TAG: json.dumps(recorded)})
    with pytest.raises(ValueError) as e:
        check_stage(uri, "grid", now)
    text = str(e.value)
    assert "steps 5,000,000 there, 500,000 now (--scale or --steps)" in text
    assert "seeds" not in text.partition("; it stays")[0] and "\n" not in text
    assert text.endswith("repeat its command to report it: python -m study.compare --x")
    check_stage(uri, "grid", {**now, "steps": "5,000,000"})  # the same options pass
    # a stage recorded before stages carried their options: judged by what its runs show
    old = client.create_experiment("old")
    launch = client.create_run(old, tags={ROLE_TAG: "launch"})
    config = {"task": "trace_patterning", "steps": 500000, "alpha": 0.1}
    client.create_run(old, tags={PARENT_TAG: launch.info.run_id, "seeds": "0,1,2,3,4",
                                 CONFIG_TAG: json.dumps(config)})  # fmt: skip
    check_stage(uri, "old", now)
    with pytest.raises(ValueError, match="seeds 0-4 there, 0-9 now \\(--seeds\\)"):
        check_stage(uri, "old", {**now, "seeds": "0-9"})
