"""`python -m study.launch` as a user runs it: a real smoke study on local Ray with MLflow and
Optuna in SQLite; bad input stops before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
from mlflow.tracking import MlflowClient

from study.launch import main


def launch(*argv, cwd):
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "study.launch", *argv],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def test_readme_smoke_study_records_every_trial_in_mlflow_and_optuna(tmp_path):
    proc = launch("--space", "hybrid", "--smoke", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "best msre_windowed" in proc.stdout
    assert "mlflow ui --backend-store-uri sqlite:///" in proc.stdout
    runs_dir = tmp_path / "runs"
    client = MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("hybrid-trace_patterning")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    study = optuna.load_study(
        study_name="hybrid-trace_patterning", storage=f"sqlite:///{runs_dir / 'optuna.db'}"
    )
    values = sorted(t.value for t in study.trials)
    logged = sorted(r.data.metrics["final_msre_windowed"] for r in children)
    assert values == pytest.approx(logged, rel=1e-9)
    for r in children:
        assert r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert r.data.tags["ccn.status"] == "finished"
        assert r.data.tags["learner"] == "hybrid" and r.data.tags["seeds"] == "0,1"
        curve = client.get_metric_history(r.info.run_id, "msre_windowed_curve")
        assert [m.step for m in curve] == list(range(1000, 20_001, 1000))
        assert r.data.params["per_stage"] in {"1", "2", "4", "8"}
        artifacts = [a.path for a in client.list_artifacts(r.info.run_id)]
        assert "learning_curve.png" in artifacts


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--space", "gru"], "unknown space 'gru'; allowed: linear, columnar"),
        (["--task", "nope"], "unknown task 'nope'"),
        (["--space", "tbptt", "--budget-flops", "10"], "below the smallest tbptt network"),
        (["--trials", "0"], "trials=0 must be >= 1"),
    ],
)
def test_bad_input_fails_before_any_trial(argv, needle, capsys, tmp_path):
    assert main([*argv, "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.strip().count("\n") == 0
    assert not (tmp_path / "runs").exists()


def test_list_spaces(capsys):
    assert main(["--list-spaces"]) == 0
    out = capsys.readouterr().out
    for name in ("columnar", "constructive", "hybrid", "tbptt", "snap1", "linear", "rtrl"):
        assert f"{name}:" in out
    assert "truncation int [1, 64] log" in out
