"""`python -m study.report` on a small real study (local Ray, SQLite MLflow): its numbers are
recomputed here from the MLflow metric histories, and the HTML page is opened in a real
headless Chromium."""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from scipy import stats

from study.launch import main as launch
from study.report import main as report

# One xdist worker runs these, so the study (a module fixture) is run once.
pytestmark = pytest.mark.xdist_group("report")

EXPERIMENTS = ("columnar-trace_patterning", "linear-trace_patterning")
ARTIFACTS = Path(os.environ.get("CCN_TEST_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts"))


@pytest.fixture(scope="module")
def study(ray_local, tmp_path_factory):
    runs = tmp_path_factory.mktemp("report") / "runs"
    common = ["--smoke", "--seeds", "3", "--runs-dir", str(runs)]
    columnar = ["--set", "n_features=2", "--concurrency", "1"]  # one shape: one compile
    assert launch(["--space", "columnar", *common, *columnar]) == 0
    # Plain TD with step sizes up to 30: some linear trials diverge.
    linear = ["--set", "rmsprop=false", "--range", "alpha=1e-3:30", "--trials", "4"]
    assert launch(["--space", "linear", *common, *linear]) == 0
    out = runs / "report-out"
    assert report(["--experiment", ",".join(EXPERIMENTS), "--runs-dir", str(runs),
                   "--out", str(out)]) == 0  # fmt: skip
    return runs, out


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def children(runs: Path):
    client = MlflowClient(f"sqlite:///{runs / 'mlflow.db'}")
    found = []
    for name in EXPERIMENTS:
        exp = client.get_experiment_by_name(name)
        found += [r for r in client.search_runs([exp.experiment_id])
                  if "mlflow.parentRunId" in r.data.tags]  # fmt: skip
    return client, found


def t_interval(values: np.ndarray) -> tuple[float, float]:
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    return float(values.mean()), float((hi - lo) / 2)


def test_summary_equals_what_the_mlflow_histories_say(study):
    runs, out = study
    client, found = children(runs)
    summary = {row["learner"]: row for row in read_csv(out / "summary.csv")}
    assert set(summary) == {"columnar", "linear"}
    curves = read_csv(out / "curves.csv")
    for learner, row in summary.items():
        mine = [r for r in found if r.data.tags["learner"] == learner]
        done = [r for r in mine if r.data.tags["ccn.status"] == "finished"]
        best = min(done, key=lambda r: r.data.metrics["final_msre_windowed"])
        assert row["run_id"] == best.info.run_id
        seeds = [int(s) for s in best.data.tags["seeds"].split(",")]
        assert seeds == [0, 1, 2]
        # Final MSRE per seed = the last point of that seed's curve (window = whole smoke run).
        finals = []
        for s in seeds:
            history = client.get_metric_history(best.info.run_id, f"msre_windowed_curve_seed{s}")
            finals.append(max(history, key=lambda m: m.step).value)
        mean, half = t_interval(np.array(finals))
        assert float(row["msre_mean"]) == pytest.approx(mean, rel=1e-9)
        assert float(row["msre_ci95"]) == pytest.approx(half, rel=1e-9)
        assert float(row["msre_mean"]) == pytest.approx(
            best.data.metrics["final_msre_windowed"], rel=1e-6
        )
        assert int(row["flops_per_step"]) == int(best.data.params["ledger_flops_per_step"])
        # The learning curve: mean and t half-width over seeds at every logged step.
        per_seed = []
        for s in seeds:
            history = client.get_metric_history(best.info.run_id, f"msre_windowed_curve_seed{s}")
            per_seed.append({m.step: m.value for m in history})
        logged = [c for c in curves if c["learner"] == learner]
        assert [int(c["step"]) for c in logged] == sorted(per_seed[0])
        for c in logged:
            values = np.array([h[int(c["step"])] for h in per_seed])
            m, h = t_interval(values)
            assert float(c["msre_mean"]) == pytest.approx(m, rel=1e-9)
            assert float(c["msre_ci95"]) == pytest.approx(h, rel=1e-9)


def test_diverged_trials_are_listed_apart(study):
    runs, out = study
    _, found = children(runs)
    diverged = {r.info.run_id for r in found if r.data.tags["ccn.status"] == "diverged"}
    assert diverged, "the linear study was meant to include a diverging step size"
    rows = read_csv(out / "trials.csv")
    assert {r["run_id"] for r in rows if r["status"] == "diverged"} == diverged
    assert len(rows) == len(found)
    page = (out / "report.html").read_text()
    apart = page.split(f"Diverged and failed trials ({len(diverged)})")[1]
    for run_id in diverged:
        assert run_id in apart
    assert math.isinf(float(next(r["msre"] for r in rows if r["status"] == "diverged")))


def test_report_is_logged_to_the_parent_runs(study):
    runs, _ = study
    client = MlflowClient(f"sqlite:///{runs / 'mlflow.db'}")
    for name in EXPERIMENTS:
        exp = client.get_experiment_by_name(name)
        parent = next(r for r in client.search_runs([exp.experiment_id])
                      if "mlflow.parentRunId" not in r.data.tags)  # fmt: skip
        paths = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
        for f in ("report.html", "summary.csv", "curves.png", "sensitivity.png", "compute.png"):
            assert f"report/{f}" in paths


def test_unknown_experiment_lists_those_that_exist(study, capsys):
    runs, _ = study
    assert report(["--experiment", "nope", "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "unknown experiment 'nope'" in err
    assert "columnar-trace_patterning, linear-trace_patterning" in err


CHROMIUM = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def test_report_page_in_headless_chromium(study, tmp_path):
    browser = shutil.which("chromium")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    _, out = study
    url = (out / "report.html").as_uri()
    base = [browser, *CHROMIUM, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [*base, "--enable-logging=stderr", "--v=0", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-figures="true,true,true"' in dom.stdout  # every figure decoded
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1200,2600", url],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert shot.stat().st_size > 50_000
    print(f"screenshot: {shot}", file=sys.stderr)
