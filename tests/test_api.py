"""``study.api``: the README's Python snippet runs as it is, on the real stack (Ray Tune,
Optuna, MLflow in SQLite), and what it loads is what the study recorded."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from records import recorded

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.xdist_group("ray")


def readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- python-api:[^>]*-->\n```python\n(.*?)```", text, re.S)
    assert found, "the README's Python API block is missing"
    return found.group(1)


def test_the_readmes_python_snippet_runs_and_loads_what_was_recorded(
    ray_local, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(readme_snippet(), "README.md", "exec"), scope)  # noqa: S102
    trials, plan, best = scope["trials"], scope["plan"], scope["best"]
    assert len(trials) == 2 and set(trials["status"]) == {"finished"}
    assert (tmp_path / "runs-api" / "mlflow.db").exists()
    # the DataFrame holds what MLflow recorded, typed
    client = MlflowClient(plan.tracking_uri)
    for _, row in trials.iterrows():
        run = client.get_run(row["run_id"])
        assert row["final_msre_windowed"] == recorded(client, run)["final_msre_windowed"]
        assert row["alpha"] == float(run.data.params["alpha"]) and isinstance(row["alpha"], float)
        assert row["n_features"] == 3 and row["seeds"] == [0, 1]
        curve = row["curve"]
        # every block of the run: 20,000 steps in blocks of 10,000
        assert list(curve.columns) == ["mean", "seed0", "seed1"]
        assert curve.index.tolist() == [10_000, 20_000]
        np.testing.assert_allclose(curve["mean"], curve[["seed0", "seed1"]].mean(axis=1),
                                   rtol=1e-6)  # fmt: skip
    # the evaluation ran the best configuration on the fresh seeds, with no search
    fresh = scope["fresh"]
    again = __import__("study.api", fromlist=["api"]).load_results(fresh)
    assert len(again) == 1 and again["seeds"][0] == [1000, 1001]
    assert again["alpha"][0] == best["alpha"] and again["role"][0] == "eval"


def test_a_bad_option_is_refused_before_anything_is_written(tmp_path):
    from study import api

    with pytest.raises(ValueError, match=r"^steps 12345: allowed: a multiple of 10000$"):
        api.plan_study("columnar", steps=12_345, runs_dir=str(tmp_path / "r"))
    with pytest.raises(ValueError, match=r"^fixed alpha=\[0\.1\]: allowed: a name and a "):
        api.plan_study("columnar", fixed={"alpha": [0.1]}, runs_dir=str(tmp_path / "r"))
    with pytest.raises(ValueError, match=r"^ranges alpha='x': allowed: \(LOW, HIGH\) numbers"):
        api.plan_study("columnar", ranges={"alpha": "x"}, runs_dir=str(tmp_path / "r"))
    with pytest.raises(ValueError, match=r"^pack='4': allowed: a whole number"):
        api.plan_study("columnar", pack="4", runs_dir=str(tmp_path / "r"))
    # plain values make the plan the command line's texts make
    typed = api.plan_study(
        "columnar",
        smoke=True,
        runs_dir=str(tmp_path / "r"),
        fixed={"n_features": 3},
        ranges={"alpha": (1e-4, 1e-2)},
        pack=2,
    )
    from study.launch import _parser, plan_of

    typed_cli = plan_of(
        _parser().parse_args(
            [
                "--space",
                "columnar",
                "--smoke",
                "--runs-dir",
                str(tmp_path / "r"),
                "--set",
                "n_features=3",
                "--range",
                "alpha=1e-4:1e-2",
                "--pack",
                "2",
            ]
        )
    )
    assert typed.space == typed_cli.space and typed.pack == typed_cli.pack == 2
    plan = api.plan_study("columnar", smoke=True, runs_dir=str(tmp_path / "r"))
    with pytest.raises(ValueError, match="configs: allowed"):
        api.evaluation(plan, [], [3])
    with pytest.raises(ValueError, match="seeds"):
        api.evaluation(plan, [{"learner": "columnar"}], [3, 3])
    with pytest.raises(ValueError, match="name '.x': allowed"):
        api.evaluation(plan, [{"learner": "columnar"}], [3], name=".x")
    assert api.evaluation(plan, [{"learner": "columnar"}], [3]).name == f"{plan.name}-eval"
    assert not (tmp_path / "r" / "mlflow.db").exists()
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        api.load_results("nope", runs_dir=str(tmp_path / "r"))
    assert os.listdir(tmp_path / "r") in ([], ["mlflow.db"])  # reading creates no study


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(steps=-20000), r"^steps=-20000: allowed: an integer in \[1, 1000000000000\]$"),
        (dict(steps=0), r"^steps=0: allowed: an integer in \[1, "),
        (dict(steps=10**15), r"^steps=1000000000000000: allowed: an integer in \[1, "),
        (dict(seeds=0), r"^seeds=0: allowed: an integer in \[1, 4096\]$"),
        (dict(trials="abc"), r"^trials='abc': allowed: an integer >= 1$"),
        (dict(trials=2.5), r"^trials=2\.5: allowed: an integer >= 1$"),
        (dict(concurrency=0), r"^concurrency=0: allowed: an integer in \[1, 4096\]$"),
        (dict(cpus_per_trial=float("nan")), r"^cpus_per_trial=nan: allowed: a finite number "),
        (dict(gpus_per_trial=-1), r"^gpus_per_trial=-1: allowed: a finite number in \[0, 64\]$"),
        (dict(smoke="yes"), r"^smoke='yes': allowed: True or False$"),
        (dict(study_name="x" * 5000), r"^study_name 'x{79}\.\.\. \(5002 characters\)"),
        (dict(fixed=["n_features=3"]), r"^fixed=\['n_features=3'\]: allowed: a dict"),
        (dict(scheduler="pbt"), r"^scheduler 'pbt': allowed: fifo, asha$"),
        # the space's own checks, named as Python spells them (fixed, ranges, budget_flops)
        (dict(fixed={"n_features": 3}, budget_flops=15000),
         r'^fixed n_features: the size is set by budget_flops; give budget_flops "none" to'),
        (dict(fixed={"alpha": -1.0}), r"^fixed alpha=-1\.0 must be a finite number within"),
        (dict(ranges={"alpha": (0.5, 0.1)}), r"^ranges alpha=0\.5:0\.1 is not allowed"),
        (dict(fixed={"nope": 1}), r"^fixed/ranges nope: unknown parameter 'nope'"),
        (dict(budget_flops="lots"), r"^budget_flops lots: allowed: a number of flops"),
    ],
)  # fmt: skip
def test_the_api_refuses_what_the_command_line_refuses_naming_the_argument(
    tmp_path, options, message
):
    """The Python API is as guarded as the command line: each bad value is refused in one
    line naming the argument as Python spells it, and nothing is written."""
    from study import api

    with pytest.raises(ValueError, match=message):
        api.plan_study("columnar", runs_dir=str(tmp_path / "r"), **options)
    assert not (tmp_path / "r").exists() or os.listdir(tmp_path / "r") == []


def test_the_api_refuses_seeds_that_are_not_a_list_of_integers(tmp_path):
    from study import api

    plan = api.plan_study("columnar", smoke=True, runs_dir=str(tmp_path / "r"))
    for seeds in ("012", [1.5], [True], None):
        with pytest.raises(ValueError, match="seeds .*: allowed: distinct seeds from 0 on"):
            api.evaluation(plan, [{"learner": "columnar"}], seeds)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(spaces=[]), r"^spaces '' names no family$"),
        (dict(spaces=["columnar", "columnar"]), r"^spaces 'columnar,columnar' names a family tw"),
        (dict(fixed={"hybrid": {"alpha": 1e-3}}),
         r"^fixed: 'hybrid' is not a family compared; allowed: columnar, linear$"),
        (dict(name="a b"), r"^name a b: allowed: letters, digits and \._-"),
        (dict(eval_seeds=[0, 1]), r"overlaps the tuning seeds 0-1; allowed: seeds from 2 on$"),
        (dict(eval_seeds=1), r"1 fresh seed\(s\); allowed: 2 to 4096"),
        (dict(pack=0), r"^pack=0: allowed"),
        (dict(budget_flops=10.0), r"^budget_flops 10\.0: no family of columnar fits"),
    ],
)  # fmt: skip
def test_a_comparison_from_python_takes_plain_values_and_refuses_by_their_names(
    tmp_path, options, message
):
    """``api.plan_comparison`` checks everything ``study.compare`` checks, naming the argument
    as Python spells it, before anything is written."""
    from study import api

    kw = dict(spaces=["columnar", "linear"], seeds=2, runs_dir=str(tmp_path / "r"), smoke=True)
    with pytest.raises(ValueError, match=message):
        api.plan_comparison(**{**kw, **options})
    assert not (tmp_path / "r").exists() or os.listdir(tmp_path / "r") == []


def test_a_comparison_planned_and_run_from_python_tunes_evaluates_and_reports(
    ray_local, tmp_path, capsys
):
    """A comparison of plain values: columnar's step size fixed, both families tuned at
    matched compute, their picks run on the fresh seeds given, and the report written."""
    from study import api

    c = api.plan_comparison(
        ["columnar", "linear"], "trace_conditioning", name="py", trials=2, seeds=2,
        eval_seeds=[1000, 1001], fixed={"columnar": {"alpha": 1e-3}}, smoke=True,
        runs_dir=str(tmp_path / "runs"), pack=None,
    )  # fmt: skip
    assert list(c.tuning) == ["py-columnar", "py-linear"] and c.fresh == (1000, 1001)
    assert dict(c.tuning["py-columnar"].space.fixed)["alpha"] == 1e-3
    # columnar sized to the CCN 20:4's flops (matched compute); linear has no size to set
    budget = float(c.tuning["py-columnar"].budget_text)
    assert c.tuning["py-columnar"].space.budget_flops == budget > 0
    assert c.tuning["py-linear"].space.budget_flops is None
    assert api.run_comparison(c) == 0
    out = capsys.readouterr().out
    assert "every family with a size is sized to" in out and "budget_flops match" in out
    picks = api.load_results("py", c.evaluation.tracking_uri)
    assert sorted(picks["learner"]) == ["columnar", "linear"]
    assert all(s == [1000, 1001] for s in picks["seeds"]) and set(picks["role"]) == {"eval"}
    assert (picks[picks["learner"] == "columnar"]["alpha"] == 1e-3).all()
    assert (tmp_path / "runs" / "reports" / "py" / "report.html").exists()
