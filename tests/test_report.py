"""`python -m study.report` on a small real study (local Ray, SQLite MLflow): its numbers are
recomputed here from the MLflow metric histories, and the HTML page is opened in a real
headless Chromium."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from browser import ARTIFACTS
from mlflow.tracking import MlflowClient
from records import recorded
from scipy import stats
from terminal import foreground

from study.compare import main as compare
from study.compare.stages import PER_STUDY
from study.engine.kinds import NORMALISED_CURVE, PREDICTION
from study.records.study import Tracking
from study.records.trial import TrialLogger
from study.report import main as report
from study.report import make_report

MSRE_CURVE = PREDICTION.curve  # its MLflow key

# One xdist worker runs these, so the comparison (a module fixture) is run once.
pytestmark = pytest.mark.xdist_group("report")

EVAL = "cmp"  # the evaluation's experiment; the tuning studies are cmp-columnar, cmp-linear
EXPERIMENTS = (EVAL, "cmp-columnar", "cmp-linear")
COMPARE = ["--name", EVAL, "--spaces", "columnar,linear", "--smoke", "--reuse-actors",
           "--seeds", "2", "--eval-seeds", "3", "--trials", "4", "--concurrency", "1",
           # one columnar shape: one compile; plain TD with step sizes up to 30 on the
           # linear learner: some of its trials diverge
           "--set", "columnar.n_features=2", "--set", "linear.rmsprop=false",
           "--range", "linear.alpha=1e-3:30"]  # fmt: skip


@pytest.fixture(scope="module")
def study(ray_local, tmp_path_factory):
    runs = tmp_path_factory.mktemp("report") / "runs"
    assert compare([*COMPARE, "--runs-dir", str(runs)]) == 0
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


def test_the_summary_as_markdown_holds_the_csvs_picks_and_names_the_command(study):
    """``summary.md``, what the docs paste: a row per pick with the CSV's learner, seeds and
    mean, and a footer naming the report's command as typed."""
    runs, out = study
    summary = read_csv(out / "summary.csv")
    text = (out / "summary.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in rows[1:]]
    assert [c[0] for c in cells] == [r["learner"] for r in summary]
    for cell, r in zip(cells, summary, strict=True):
        assert cell[3] == r["seeds"] and cell[4].startswith(f"{float(r['msre_mean']):.4g} ± ")
    footer = text.strip().splitlines()[-1]
    typed = f"python -m study.report --experiment {','.join(EXPERIMENTS)}"
    assert footer.startswith(f"Made by `{typed}")
    assert f"--out {out}" in footer


def test_summary_equals_what_the_mlflow_histories_say(study):
    runs, out = study
    client, found = children(runs)
    summary = {row["learner"]: row for row in read_csv(out / "summary.csv")}
    assert set(summary) == {"columnar", "linear"}
    curves = read_csv(out / "curves.csv")
    for learner, row in summary.items():
        # The numbers come from the evaluation run on fresh seeds, not from tuning.
        (evaluated,) = [r for r in found if r.data.tags["learner"] == learner
                        and r.data.tags["ccn.role"] == "eval"]  # fmt: skip
        assert row["run_id"] == evaluated.info.run_id and row["experiment"] == EVAL
        seeds = [int(s) for s in evaluated.data.tags["seeds"].split(",")]
        assert len(seeds) == 3
        # Final MSRE per seed = the last point of that seed's curve (window = whole smoke run).
        run_id = evaluated.info.run_id
        per_seed = []
        for s in seeds:
            history = client.get_metric_history(run_id, f"{MSRE_CURVE}_seed{s}")
            per_seed.append({m.step: m.value for m in history})
        finals = np.array([h[max(h)] for h in per_seed])
        mean, half = t_interval(finals)
        assert float(row["msre_mean"]) == pytest.approx(mean, rel=1e-9)
        assert float(row["msre_ci95"]) == pytest.approx(half, rel=1e-9)
        assert float(row["msre_mean"]) == pytest.approx(
            recorded(client, evaluated)["final_msre_windowed"], rel=1e-6
        )
        assert int(row["flops_per_step"]) == int(evaluated.data.params["ledger_flops_per_step"])
        # The normalised MSRE: per seed, ours over the best constant's, then its interval;
        # 20,000-step smoke runs learn nothing, so each reads near 1 and is marked "NO".
        every = recorded(client, evaluated)
        ratios = np.array([every[f"final_nmsre_windowed_seed{s}"] for s in seeds])
        mean, half = t_interval(ratios)
        assert float(row["nmsre_mean"]) == pytest.approx(mean, rel=1e-9)
        assert float(row["nmsre_ci95"]) == pytest.approx(half, rel=1e-9)
        constant = recorded(client, evaluated)["final_msre_constant_windowed"]
        assert 0.01 < constant < recorded(client, evaluated)["final_msre_zero_windowed"]
        assert row["learned"] == ("yes" if mean + half < 1.0 else "NO")
        # The learning curve: mean and t half-width over seeds at every logged step.
        logged = [c for c in curves if c["learner"] == learner]
        assert [int(c["step"]) for c in logged] == sorted(per_seed[0])
        normalised = []
        for s in seeds:
            history = client.get_metric_history(run_id, f"{NORMALISED_CURVE}_seed{s}")
            normalised.append({m.step: m.value for m in history})
        for c in logged:
            values = np.array([h[int(c["step"])] for h in per_seed])
            m, h = t_interval(values)
            assert float(c["msre_mean"]) == pytest.approx(m, rel=1e-9)
            assert float(c["msre_ci95"]) == pytest.approx(h, rel=1e-9)
            # the normalised curve: each seed's ratio at that step, then the interval
            values = np.array([h[int(c["step"])] for h in normalised])
            m, h = t_interval(values)
            assert float(c["nmsre_mean"]) == pytest.approx(m, rel=1e-9)
            assert float(c["nmsre_ci95"]) == pytest.approx(h, rel=1e-9)
        # the bootstrap interval of the normalised MSRE holds its mean and lies within the
        # seeds' range (a percentile-type interval cannot leave it)
        low, high = float(row["boot_low"]), float(row["boot_high"])
        assert ratios.min() <= low <= ratios.mean() <= high <= ratios.max()


def test_evaluation_reruns_each_best_tuned_configuration_on_fresh_seeds(study):
    runs, _ = study
    client, found = children(runs)
    tuning = [r for r in found if r.data.tags["ccn.role"] == "tuning"]
    evals = [r for r in found if r.data.tags["ccn.role"] == "eval"]
    assert {r.data.tags["learner"] for r in evals} == {"columnar", "linear"} and len(evals) == 2
    tuning_seeds = {int(s) for r in tuning for s in r.data.tags["seeds"].split(",")}
    assert tuning_seeds == {0, 1}
    for r in evals:
        assert r.data.tags["ccn.status"] == "finished"
        assert r.data.tags["mlflow.parentRunId"] != ""
        seeds = {int(s) for s in r.data.tags["seeds"].split(",")}
        assert len(seeds) == 3 and not seeds & tuning_seeds
        # The configuration evaluated is the one of the best finished tuning trial.
        mine = [t for t in tuning if t.data.tags["learner"] == r.data.tags["learner"]
                and t.data.tags["ccn.status"] == "finished"]  # fmt: skip
        best = min(mine, key=lambda t: recorded(client, t)["final_msre_windowed"])
        tuned = json.loads(best.data.tags["ccn.config"])
        evaluated = json.loads(r.data.tags["ccn.config"])
        for key, value in tuned.items():
            if key not in PER_STUDY:
                assert evaluated[key] == value, key
        assert evaluated["role"] == "eval"


def test_compare_again_runs_nothing_twice(study, capsys):
    runs, _ = study
    _, before = children(runs)
    assert compare([*COMPARE, "--runs-dir", str(runs)]) == 0
    _, after = children(runs)
    assert sorted(r.info.run_id for r in after) == sorted(r.info.run_id for r in before)
    printed = capsys.readouterr().out
    assert printed.count("already tuned; not run again") == 2
    assert "already evaluated; not run again" in printed


def test_compare_bad_input_is_one_line(study, capsys):
    runs, _ = study
    cases = {
        ("--spaces", "columnar,nope"): "unknown space 'nope'",
        ("--spaces", "columnar,columnar"): "names a family twice",
        ("--eval-seeds", "1"): "--eval-seeds 1: 1 fresh seed(s)",
        ("--eval-seeds", "1,2,3"): "overlaps the tuning seeds 0-1",
        ("--set", "hybrid.alpha=0.1"): "must start with one of the families compared",
        ("--name", "fresh", "--resume"): "--resume: no comparison 'fresh' to resume",
        ("--eval-steps", "-5"): "argument --eval-steps: -5",
    }
    for extra, message in cases.items():
        argv = [*COMPARE, "--runs-dir", str(runs), *extra]
        try:
            code = compare(argv)
        except SystemExit as e:  # argparse's refusals of a value's type
            code = e.code
        assert code == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert message in err[-1] and err[-1].startswith("error: ")


def test_diverged_trials_are_listed_apart(study):
    runs, out = study
    _, found = children(runs)
    diverged = {r.info.run_id for r in found if r.data.tags["ccn.status"] == "diverged"}
    assert diverged, "the linear study was meant to include a diverging step size"
    rows = read_csv(out / "trials.csv")
    assert {r["run_id"] for r in rows if r["status"] == "diverged"} == diverged
    assert len(rows) == len(found)
    page = (out / "report.html").read_text()
    assert "<p>Final windowed MSRE: mean and half-width" in page
    apart = page.split(f"Diverged and failed trials ({len(diverged)})")[1]
    for run_id in diverged:
        assert run_id in apart
    assert math.isinf(float(next(r["msre"] for r in rows if r["status"] == "diverged")))


def test_a_failed_trial_is_listed_apart_and_the_report_still_renders(study, tmp_path):
    runs, _ = study
    shutil.copy(runs / "mlflow.db", tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("cmp-columnar")
    parent = next(r for r in client.search_runs([exp.experiment_id])
                  if "mlflow.parentRunId" not in r.data.tags)  # fmt: skip
    # A trial that raised: its run as the trainable leaves it (status failed, no final).
    tracking = Tracking(uri, exp.experiment_id, parent.info.run_id)
    tags = {"learner": "columnar", "task": "trace_patterning", "space": "columnar",
            "seeds": "0,1", "ccn.role": "tuning"}  # fmt: skip
    logger = TrialLogger(tracking, None, "deadbeef", "trainable_deadbeef", tags, {"alpha": 0.01})
    logger.finish("failed", {})
    out = tmp_path / "out"
    result = make_report(uri, list(EXPERIMENTS), out)
    failed = [r for r in result["trials"] if r["status"] == "failed"]
    assert [r["run_id"] for r in failed] == [logger.run_id]
    # The summary is unchanged: the failed trial is not anyone's best.
    assert [r["run_id"] for r in result["summary"]] == [
        r["run_id"] for r in read_csv(runs / "report-out" / "summary.csv")
    ]
    page = (out / "report.html").read_text()
    n_bad = sum(r["status"] in ("diverged", "failed") for r in result["trials"])
    assert logger.run_id in page.split(f"Diverged and failed trials ({n_bad})")[1]


def test_a_report_on_a_moved_copy_reads_the_copy_and_writes_only_its_out(study, tmp_path):
    """A runs folder copied elsewhere, the original moved away: the report on the copy reads
    the copy's own files (the summary is the original's), writes only into its ``--out``,
    and leaves the original byte-for-byte as it was."""
    runs, out = study
    copy = tmp_path / "copy"
    shutil.copytree(runs, copy)
    before = snapshot(runs)
    away = runs.with_name("runs-away")
    runs.rename(away)  # the MLflow store still names the original's artifact folder
    try:
        assert report(["--experiment", ",".join(EXPERIMENTS), "--runs-dir", str(copy),
                       "--out", str(tmp_path / "out")]) == 0  # fmt: skip
    finally:
        away.rename(runs)
    assert snapshot(runs) == before
    assert read_csv(tmp_path / "out" / "summary.csv") == read_csv(out / "summary.csv")
    assert not (copy / "artifacts").exists() or not list((copy / "artifacts").rglob("report"))
    # A launch into the copy points its store at the copy's own artifacts first (what it
    # logs, and what `mlflow ui` shows, are the copy's files), leaving the original alone.
    from study.orchestration.stores import relocate
    from study.records.finals import read_finals

    assert relocate(copy / "mlflow.db", copy) > 0 and relocate(copy / "mlflow.db", copy) == 0
    client = MlflowClient(f"sqlite:///{copy / 'mlflow.db'}")
    evaluation = client.get_experiment_by_name(EVAL).experiment_id
    trial = next(r for r in client.search_runs([evaluation]) if "ccn.finals" in r.data.tags)
    assert trial.info.artifact_uri.startswith((copy / "artifacts").as_uri() + "/")
    runs.rename(away)
    try:
        assert read_finals(client, trial.info.run_id)["final_steps_done"] > 0  # from the copy
    finally:
        away.rename(runs)
    assert snapshot(runs) == before


def test_study_ui_on_a_copy_as_a_user_clicks_through_it(study, tmp_path):
    """``python -m study.ui`` on a copied runs folder, the original moved away, opened in
    headless Chromium at 1440 x 900 at the link it prints, then clicked as a user would:

    - the copy's artifacts are served (``mlflow ui`` alone would serve the original's paths);
    - the study's page: model training (not GenAI), the assistant panel closed, every trial
      best first with its whole name, result, family, size, step size and lambda on the
      first screen, rounded (``2.27e-4``);
    - one click on a trial: still model training (its link carries no mode), its "Model
      metrics" tab draws the normalised curve first; the breadcrumb back: the study's
      sorted view again;
    - Ctrl+C stops the server quietly.

    The trial's ``learning_curve.png`` is normalised and slide-sized; screenshots go to
    test-artifacts/."""
    import struct
    import urllib.request

    import psutil
    from browser import Browser, chromium, free_port

    from study.engine.kinds import NORMALISED_CURVE
    from study.records.tags import KIND_TAG, MODEL_TRAINING

    chromium()
    runs, _ = study
    copy = tmp_path / "copy"
    shutil.copytree(runs, copy)
    client = MlflowClient(f"sqlite:///{copy / 'mlflow.db'}")
    exp = client.get_experiment_by_name("cmp-columnar")
    assert exp.tags[KIND_TAG] == MODEL_TRAINING
    note = exp.tags["mlflow.note.content"]
    assert note.startswith("ccn-study: Result: best configuration 2 a=") and "columnar" in note
    trials = [r for r in client.search_runs([exp.experiment_id])
              if "mlflow.parentRunId" in r.data.tags]  # fmt: skip
    names = [r.info.run_name for r in trials]
    # short names: the shape (2 columns), the step size and lambda, e.g. "2 a=1.2e-3 l=.99"
    assert all(n.startswith("2 a=") and " l=" in n and len(n) <= 18 for n in names), names
    colours = {r.data.tags["mlflow.runColor"] for r in trials}
    assert len(colours) == len(trials) == 4
    value = {r.info.run_name: r.data.metrics["final_nmsre_windowed"] for r in trials}
    ranked = sorted(names, key=value.get)
    best = next(r for r in trials if r.info.run_name == ranked[0])
    # the launch's run holds the study's result
    (launch,) = [r for r in client.search_runs([exp.experiment_id])
                 if r.data.tags.get("ccn.role") == "launch"]  # fmt: skip
    assert launch.data.tags["best_trial"] == ranked[0]
    assert launch.data.metrics["best_nmsre_windowed"] == value[ranked[0]]
    port = free_port()
    away = runs.with_name("runs-away")
    runs.rename(away)
    log = (tmp_path / "ui.log").open("w+")
    server = subprocess.Popen(foreground("-m", "study.ui", "--runs-dir", str(copy),
                               "--port", str(port)), stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    column = "metrics.`final_nmsre_windowed`"
    try:
        wait_healthy(base, server, tmp_path / "ui.log")
        evaluation = client.get_experiment_by_name(EVAL)
        trial = next(r for r in client.search_runs([evaluation.experiment_id])
                     if "ccn.finals" in r.data.tags)  # fmt: skip
        got = json.load(
            urllib.request.urlopen(
                f"{base}/ajax-api/2.0/mlflow/runs/get?run_id={trial.info.run_id}", timeout=30
            )
        )
        assert got["run"]["info"]["artifact_uri"].startswith((copy / "artifacts").as_uri())
        served = urllib.request.urlopen(f"{base}/get-artifact?path=finals.json&run_uuid="
                                        f"{trial.info.run_id}", timeout=30).read()  # fmt: skip
        assert json.loads(served)["final_steps_done"] > 0
        printed = (tmp_path / "ui.log").read_text()
        assert f"{EVAL}: {base}/#/experiments/{evaluation.experiment_id}/runs?" in printed
        # the link the command prints for the study, as the user copies it
        (url,) = [line.split(": ", 1)[1] for line in printed.splitlines()
                  if line.startswith("cmp-columnar: ")]  # fmt: skip
        with Browser(tmp_path / "profile", width=1440, height=900) as b:
            page = b.open(url, until=["Model training", "Result: best configuration", *names])
            b.wait(f"document.querySelectorAll('.ag-row [col-id=\"{column}\"]').length"
                   f" >= {len(names)}")  # fmt: skip
            b.screenshot(ARTIFACTS / "mlflow-experiment.png")
            # model-training mode: its sidebar, not GenAI's; MLflow's assistant left closed
            assert "Models" in page and "Judges" not in page and "Prompts" not in page
            assert "Ask questions about your experiments" not in page
            rows = table_rows(b, column)
            # best first, every trial's value in view, every name whole
            assert [r["name"] for r in rows] == ranked, rows
            assert [float(r["result"]) for r in rows] == [value[n] for n in ranked], rows
            for r in rows:  # the configuration beside the result, rounded, on the first screen
                assert r["whole"] and r["learner"] == "columnar" and r["size"] == "2", r
                assert re.fullmatch(r"\d(\.\d{1,2})?e-\d|\.\d{1,4}|\d+(\.\d+)?", r["alpha"]), r
                assert r["lambda"] in {"0", ".9", ".95", ".99", ".999", ".5"}, r
                assert all(r["inview"].values()), r
            for header in ("final_nmsre_windowed_ci95", "learned"):
                assert header in page
            # one click on the best trial's name: still model training, its curve first
            b.click('.ag-row [col-id="attributes.`Run Name`"] a', ranked[0])
            page = b.open_again(until=[best.info.run_id[:8], "Model metrics"])
            assert "workflowType" not in b.evaluate("location.hash")  # the link said nothing
            b.wait("!document.body.innerText.includes('Evaluation runs')")
            page = b.text()
            assert "Models" in page and "Judges" not in page and "Evaluation runs" not in page
            b.click('[role="tab"]', "Model metrics")
            page = b.open_again(until=["normalised MSRE: mean over seeds"])
            b.wait("document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length"
                   " >= 1")  # fmt: skip
            b.wait("document.querySelectorAll('.js-plotly-plot').length >= 3")
            b.screenshot(ARTIFACTS / "mlflow-trial-curves.png")
            page = b.text()
            # three curves, the mean first (its whole title), then every seed on one chart
            # (MLflow titles it by its metrics), then the raw MSRE; the final numbers are the
            # table's columns, not one-bar charts here
            seeds = f"{NORMALISED_CURVE}_seed0 vs {NORMALISED_CURVE}_seed1"
            titles = ["normalised MSRE: mean over seeds", seeds, "windowed MSRE: mean over seeds"]
            assert all(t in page for t in titles), page[-3000:]
            assert [page.index(t) for t in titles] == sorted(page.index(t) for t in titles)
            assert b.evaluate("document.querySelectorAll('.js-plotly-plot').length") == 3
            assert "final_nmsre_windowed" not in page and "final_learned" not in page, page
            # the breadcrumb back to the study: its sorted view, not MLflow's default
            b.click(f'a[href$="/experiments/{exp.experiment_id}/runs"]', "cmp-columnar")
            b.wait("location.hash.includes('viewStateShareKey=results')")
            # the view applies its filter and order once loaded: wait for them, then read
            deadline = time.monotonic() + 90
            while [r["name"] for r in table_rows(b, column)] != ranked:
                assert time.monotonic() < deadline, table_rows(b, column)
                time.sleep(0.5)
            b.screenshot(ARTIFACTS / "mlflow-back.png")
            # the chart view: one chart of every trial's normalised curve, one of the result
            # against each searched hyperparameter, and nothing else (no per-seed charts)
            view = json.loads(exp.tags["mlflow.sharedViewState.results"])
            drawn = [c for c in view["compareRunCharts"] if not c["deleted"]]
            against = [c["xaxis"]["key"] for c in drawn if c["type"] == "SCATTER"]
            assert against and all(len({r.data.params.get(k) for r in trials}) > 1 for k in against)
            b.click("[role=radiogroup] label:nth-of-type(2)")  # the chart view's button
            page = b.open_again(until=["Add chart", NORMALISED_CURVE])
            assert re.search(rf"\bresults\s*\({len(drawn)}\)", page), page[-3000:]
            assert len(drawn) == 1 + len(against)
            b.wait("document.querySelectorAll('.js-plotly-plot').length >= 1")
            assert "curve_nmsre_windowed_seed" not in page and "windowed MSRE (" not in page
            titles = json.loads(b.evaluate(
                "JSON.stringify([...document.querySelectorAll("
                "'[data-testid=experiment-view-compare-runs-card] h4')]"
                ".map(h => [h.innerText, h.scrollWidth <= h.clientWidth + 1]))"))  # fmt: skip
            assert titles and all(whole for _, whole in titles), titles  # those drawn in view
            b.screenshot(ARTIFACTS / "mlflow-charts.png")
            # MLflow's list of experiments: a name that differs at its end (a comparison's
            # stages, a long --name) is whole, wrapped rather than cut
            long = "compare-noisy_patterning-constructive-extended-fresh"
            MlflowClient(f"sqlite:///{copy / 'mlflow.db'}").create_experiment(long)
            b.click("a", "Experiments")
            b.open_again(until=[long, "cmp-columnar"])
            cut = b.evaluate(
                "JSON.stringify([...document.querySelectorAll("
                "'a[data-testid=experiment-list-item-link]')].filter(a => {"
                " const r = a.getBoundingClientRect(),"
                " c = a.closest('[role=cell]').getBoundingClientRect();"
                " return r.right > c.right + 1 || r.bottom > c.bottom + 1; })"
                ".map(a => a.innerText))"
            )  # fmt: skip
            assert json.loads(cut) == [], cut
            b.screenshot(ARTIFACTS / "mlflow-experiments.png")
        # Ctrl+C, as a terminal sends it to the foreground group: one line, exit 130, the
        # server's processes gone with it and none of their tracebacks
        serving = [p for p in psutil.Process(server.pid).children(recursive=True)]
        assert serving  # MLflow's server and its workers
        os.killpg(server.pid, signal.SIGINT)
        assert server.wait(120) == 130
        printed = (tmp_path / "ui.log").read_text()
        assert printed.rstrip().endswith("MLflow UI stopped (Ctrl+C)"), printed
        assert "Traceback" not in printed and "KeyboardInterrupt" not in printed, printed
        psutil.wait_procs(serving, timeout=60)
        assert not [p for p in serving if p.is_running() and p.status() != "zombie"]
        logs = list((copy / "logs").glob("ui-*.log"))
        assert len(logs) == 1 and "Traceback" not in logs[0].read_text()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
        away.rename(runs)
    # the figure: normalised, 1200 px wide or more, titled with the study and the trial
    with tempfile.TemporaryDirectory() as d:
        png = Path(client.download_artifacts(best.info.run_id, "learning_curve.png", d))
        width, height = struct.unpack(">II", png.read_bytes()[16:24])
    assert width >= 1200 and height >= 600


def table_rows(b, column: str) -> list[dict]:
    """The runs table as drawn, top row first: each row's name (whole: not cut), result and
    the rounded configuration columns, and whether each of those cells lies within the
    window. ag-grid draws the pinned name column and the others as separate rows sharing a
    row-id."""
    shown = b.evaluate(f"""JSON.stringify([...document.querySelectorAll(
        '.ag-row [col-id="{column}"]')].map(c => {{
        const row = c.closest('.ag-row'), id = row.getAttribute('row-id');
        const cell = k => document.querySelector(`.ag-row[row-id="${{id}}"] [col-id="${{k}}"]`);
        const name = cell('attributes.`Run Name`'), text = name.querySelector('a span') || name;
        const out = {{index: +row.getAttribute('row-index'), name: text.innerText.trim(),
                     result: c.innerText.trim(), inview: {{}},
                     whole: text.getBoundingClientRect().right <=
                            name.getBoundingClientRect().right}};
        for (const k of ['learner', 'size', 'alpha', 'lambda']) {{
            const t = cell('tags.`' + k + '`');
            out[k] = t ? t.innerText.trim() : null;
            const box = (t || c).getBoundingClientRect();
            out.inview[k] = !!t && box.width > 0 && box.right <= innerWidth;
        }}
        const box = c.getBoundingClientRect();
        out.inview.result = box.width > 0 && box.right <= innerWidth;
        return out;
    }}).sort((x, y) => x.index - y.index))""")  # fmt: skip
    return json.loads(shown)


def test_a_comparisons_runs_name_their_family_and_its_launch_the_comparison(study):
    """In MLflow a comparison's evaluation holds several families: each run's name starts
    with its family and its ``learner`` column says it, and the launch's run is named by the
    comparison (not by the first family)."""
    runs, _ = study
    client = MlflowClient(f"sqlite:///{runs / 'mlflow.db'}")
    exp = client.get_experiment_by_name(EVAL)
    found = client.search_runs([exp.experiment_id])
    trials = [r for r in found if "mlflow.parentRunId" in r.data.tags]
    assert {r.data.tags["learner"] for r in trials} == {"columnar", "linear"}
    for r in trials:
        assert r.info.run_name.split()[0] == r.data.tags["learner"], r.info.run_name
    launches = [r.info.run_name for r in found if r.data.tags.get("ccn.role") == "launch"]
    assert launches and all(n.startswith(f"{EVAL} launch ") for n in launches), launches
    # a tuning study's runs leave the family to their experiment's name
    tuning = client.get_experiment_by_name("cmp-columnar")
    names = [r.info.run_name for r in client.search_runs([tuning.experiment_id])
             if "mlflow.parentRunId" in r.data.tags]  # fmt: skip
    assert names and all(n.startswith("2 a=") for n in names), names


def test_study_ui_refuses_a_folder_without_a_store_and_a_taken_port(study, tmp_path, capsys):
    import socket

    from study.ui import main as ui

    assert ui(["--runs-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: --runs-dir {tmp_path}: no MLflow store")
    runs, _ = study
    before = snapshot(runs)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert ui(["--runs-dir", str(runs), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--port {port}: cannot listen there" in err, err
    assert snapshot(runs) == before


def cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by process ``pid`` and every process below it (Linux /proc):
    how a wait tells a server that is still starting, however slowly, from a stuck one."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        child = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(child)
        times[child] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += times.get(p, 0.0)
        todo += children.get(p, [])
    return total


def wait_healthy(base: str, server: subprocess.Popen, log: Path, stall_s: float = 120) -> None:
    """Wait until the MLflow server at ``base`` answers ``/health`` (its log on failure), for
    as long as it makes progress: it fails when the server died, or when neither its log
    grew nor its processes used CPU for ``stall_s`` seconds (a busy machine starts it slowly,
    and that is no failure)."""
    import urllib.request

    seen = (-1, -1.0)
    last = time.monotonic()
    while True:
        try:
            urllib.request.urlopen(f"{base}/health", timeout=2).close()
            return
        except OSError:
            now = (log.stat().st_size if log.exists() else 0, cpu_seconds(server.pid))
            if now[0] > seen[0] or now[1] > seen[1] + 0.05:
                seen, last = now, time.monotonic()
            stalled = time.monotonic() - last > stall_s
            assert server.poll() is None and not stalled, log.read_text()
            time.sleep(0.5)


def snapshot(folder: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def test_unknown_experiment_lists_those_that_exist(study, capsys):
    runs, _ = study
    assert report(["--experiment", "nope", "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "unknown experiment 'nope'" in err
    assert "cmp, cmp-columnar, cmp-linear" in err


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
    # at 1440 px: the page never scrolls sideways (a wide table scrolls in its own box) and
    # every figure is drawn at 1200 px or more
    from browser import Browser

    with Browser(tmp_path / "profile-1440", width=1440, height=900) as b:
        b.open(url, until=["Figures", "Every trial"])
        b.wait("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
        layout = json.loads(b.evaluate(
            "JSON.stringify({page: document.documentElement.scrollWidth, view: innerWidth, "
            "figures: [...document.images].map(i => [i.naturalWidth, "
            "Math.round(i.getBoundingClientRect().width)])})"))  # fmt: skip
        b.screenshot(ARTIFACTS / "report.png")
    assert layout["page"] <= layout["view"], layout
    assert len(layout["figures"]) == 3 and all(w >= 1200 for w, _ in layout["figures"]), layout


def test_report_bad_input_is_one_line_and_writes_nothing(study, tmp_path, capsys):
    runs, _ = study
    a_file = tmp_path / "taken"
    a_file.write_text("not a folder")
    cases = {
        ("--experiment", ","): "--experiment ',' names no experiment",
        ("--experiment", EVAL, "--out", str(a_file)): f"--out {a_file}: a file",
    }
    for argv, message in cases.items():
        assert report([*argv, "--runs-dir", str(runs)]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert a_file.read_text() == "not a folder"


def test_a_pick_that_diverged_on_a_fresh_seed_is_reported_as_it_ran():
    """Catches the fresh-seed stage of a family that diverged on one seed being replaced by
    its tuning run (as it once was: SnAp-1's pick, 19 fresh seeds learned and one diverged,
    was reported on its 5 tuning seeds): the diverged seed is the worst value (infinite) for
    comparisons and counted apart in the summary, whose error statistics are over the finite
    seeds (never an infinite mean); a failed evaluation leaves the family out."""
    import math

    from study.engine.kinds import PREDICTION
    from study.report.load import Trial, best_per_learner, summary_rows

    def trial(learner, role, status, values, seeds):
        pairs = list(zip(seeds, values, strict=True))
        metrics = {f"final_nmsre_windowed_seed{s}": v for s, v in pairs}
        metrics.update({f"final_msre_windowed_seed{s}": v / 50 for s, v in pairs})
        t = Trial(run_id=f"{learner}-{role}", experiment="x", learner=learner, status=status,
                  params={"alpha": "0.001"}, metrics=metrics, seeds=list(seeds), role=role,
                  measure=PREDICTION)  # fmt: skip
        t.seed_finals = np.array([v / 50 for v in values], np.float64)
        if status == "diverged":
            t.seed_finals[np.isnan(t.seed_finals)] = math.inf
        return t

    fresh = list(range(1000, 1004))
    trials = [
        trial("snap1", "tuning", "finished", [0.2, 0.3], [0, 1]),
        trial("snap1", "eval", "diverged", [0.2, 0.5, math.nan, 0.3], fresh),
        trial("hybrid", "tuning", "finished", [0.2, 0.25], [0, 1]),
        trial("hybrid", "eval", "failed", [0.2, 0.2, 0.2, 0.2], fresh),
    ]
    best = best_per_learner(trials)
    assert best["snap1"].role == "eval" and "hybrid" not in best
    values = best["snap1"].seed_values()
    assert values.tolist() == [0.2, 0.5, math.inf, 0.3]
    (row,) = summary_rows(best, n_resamples=1000)
    assert row["diverged_seeds"] == 1 and row["selection"] == "fresh seeds"
    assert row["diverged_rate"] == 0.25 and 0.006 < row["diverged_low"] < 0.007
    assert row["nmsre_mean"] == pytest.approx(1 / 3) and row["median"] == pytest.approx(0.3)
    assert math.isfinite(row["boot_high"]) and row["boot_method"] in ("bca", "percentile")
    # the tuning view still picks among finished tuning runs
    assert best_per_learner(trials, role="tuning")["hybrid"].role == "tuning"
