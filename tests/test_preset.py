"""``study.compare --preset jmlr-trace-patterning``: the paper's protocol as a grid, scaled,
and its orderings checked with intervals."""

from __future__ import annotations

import argparse
import math

import pytest
from mlflow.tracking import MlflowClient

from study.compare import PRESETS, _parser, orderings, preset_plan
from study.compare import main as compare

pytestmark = pytest.mark.xdist_group("preset")


def _args(*argv: str) -> argparse.Namespace:
    return _parser().parse_args(["--preset", "jmlr-trace-patterning", *argv])


def test_the_grid_is_the_papers_protocol_scaled():
    """Catches a grid that drifts from the paper: the shapes, the two step-size grids, lambda
    0.99, normalisation as an axis, and stage lengths shrunk with the steps."""
    preset, configs, argv = preset_plan(_args("--scale", "25"))
    assert preset is PRESETS["jmlr-trace-patterning"]
    assert argv[argv.index("--steps") + 1] == "2000000"  # 50M / 25
    assert argv[argv.index("--seeds") + 1] == "30"
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
    # --seeds and --spaces choose seeds and families; the grid of a family is kept whole
    _, few, argv = preset_plan(_args("--scale", "25", "--seeds", "10", "--spaces", "snap1"))
    assert argv[argv.index("--seeds") + 1] == "10" and len(few) == 12


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


def _row(name, mean, half):
    return {"learner": name, "msre_mean": mean, "msre_ci95": half}


def test_orderings_are_judged_with_their_intervals():
    """Catches verdicts made from means alone: separated intervals hold, overlapping ones hold
    only in the means, a reversed order does not hold; 'about equal' needs overlap."""
    paper = [_row("snap1", 0.030, 0.002), _row("tbptt", 0.020, 0.002),
             _row("columnar", 0.012, 0.002), _row("constructive", 0.013, 0.002),
             _row("hybrid", 0.005, 0.001)]  # fmt: skip
    verdicts = {c: v for c, v, _ in orderings(paper)}
    assert set(verdicts.values()) == {"holds"}
    close = [_row("snap1", 0.021, 0.003), *paper[1:]]  # above T-BPTT in the mean only
    verdicts = [v for _, v, _ in orderings(close)]
    assert verdicts[0] == "holds in the means"
    reversed_ = [_row("snap1", 0.004, 0.001), *paper[1:]]
    assert [v for _, v, _ in orderings(reversed_)][0] == "does not hold"
    apart = [*paper[:2], _row("columnar", 0.010, 0.001), _row("constructive", 0.016, 0.001),
             paper[4]]  # fmt: skip
    assert [v for _, v, _ in orderings(apart)][2] == "does not hold"
    missing = orderings(paper[:2])
    assert all(v == "not measured" for _, v, _ in missing)
    evidence = orderings(paper)[3][2]
    assert "hybrid 0.005 ± 0.001" in evidence


def test_a_scaled_preset_runs_on_the_real_stack(ray_local, tmp_path, capsys):
    """The grid runs as Ray Tune trials recorded in MLflow, one run per configuration on the
    same seeds (no search), and the report states the orderings."""
    runs = tmp_path / "runs"
    rc = compare(["--preset", "jmlr-trace-patterning", "--scale", "2500", "--seeds", "2",
                  "--spaces", "columnar", "--reuse-actors", "--runs-dir", str(runs)])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "12 configurations x 2 seeds x 20,000 steps" in out
    assert "columnar about equal to constructive: not measured" in out
    client = MlflowClient(f"sqlite:///{runs / 'mlflow.db'}")
    exp = client.get_experiment_by_name("jmlr-trace-patterning")
    children = [r for r in client.search_runs([exp.experiment_id])
                if "mlflow.parentRunId" in r.data.tags]  # fmt: skip
    assert len(children) == 12
    grid = {(float(r.data.params["alpha"]), float(r.data.params["norm_rate"])) for r in children}
    assert len(grid) == 12
    assert {r.data.tags["seeds"] for r in children} == {"0,1"}
    assert all(math.isfinite(r.data.metrics["final_nmsre_windowed"]) or
               r.data.tags["ccn.status"] == "diverged" for r in children)  # fmt: skip
    page = (runs / "reports" / "jmlr-trace-patterning" / "report.html").read_text()
    assert "The paper&#x27;s orderings at this scale" in page


def test_a_budget_sizes_every_family_that_has_a_size_and_leaves_linear_as_it_is():
    """``study.compare --budget-flops`` passes the budget to each tuning study whose family
    has a size; linear (no size) runs beside them instead of the whole comparison being
    refused."""
    from study.compare import _launch_argv

    args = _parser().parse_args(["--spaces", "columnar,linear", "--budget-flops", "15000"])
    sized = _launch_argv(args, "columnar", "c-columnar")
    assert sized[sized.index("--budget-flops") + 1] == "15000"
    assert "--budget-flops" not in _launch_argv(args, "linear", "c-linear")


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

    from study import local_ray
    from study.launch import reap_leftovers

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
