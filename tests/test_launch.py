"""`python -m study.launch` as a user runs it: a real smoke study on local Ray with MLflow and
Optuna in SQLite; bad input stops before anything starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import scipy.stats
from mlflow.tracking import MlflowClient
from records import recorded
from terminal import foreground

from learners import FAMILIES
from study.engine.kinds import CLASSIFICATION, HELDOUT_CURVE, PREDICTION
from study.launch import main
from study.report import make_report

MSRE_CURVE = PREDICTION.curve  # its MLflow key
ACCURACY_CURVE = CLASSIFICATION.curve

# Tests that start Ray run one after another on one xdist worker per group: "ray-cli" for
# those that launch the command (with its dashboard), "ray" for one Ray started in-process.
CLI = pytest.mark.xdist_group("ray-cli")
IN_PROCESS = pytest.mark.xdist_group("ray")


def launch(*argv, cwd, **env_extra):
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1", **env_extra)
    return subprocess.run(
        [sys.executable, "-m", "study.launch", *argv],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def records(runs_dir: Path, name: str, optuna_too: bool = True):
    """(parent runs, child runs, Optuna trials) of study ``name`` under ``runs_dir``; without
    ``optuna_too`` (while a launch may still be creating the Optuna store) no trials."""
    client = MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    if not optuna_too:
        return client, parents, children, []
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{runs_dir / 'optuna.db'}")
    return client, parents, children, study.trials


def check_one_run_per_trial(runs_dir: Path, name: str, n_trials: int, steps: int, block: int):
    """MLflow and Optuna agree: n_trials trials, one child run each under one parent, a full
    curve without a repeated step, and the same final values in both stores."""
    client, parents, children, trials = records(runs_dir, name)
    assert len(parents) == 1
    assert len(children) == n_trials
    assert len({r.data.tags["ccn.trial_id"] for r in children}) == n_trials
    assert len(trials) == n_trials
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    for r in children:
        assert r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        curve = client.get_metric_history(r.info.run_id, MSRE_CURVE)
        steps_logged = [m.step for m in curve]
        if r.data.tags["ccn.status"] == "finished":
            assert sorted(steps_logged) == list(range(block, steps + 1, block))
        assert len(steps_logged) == len(set(steps_logged))  # nothing logged twice
    values = sorted(t.value for t in trials)
    logged = sorted(final(client, r) for r in children)
    assert values == pytest.approx(logged, rel=1e-9)
    return client, children, trials


def final(client, run) -> float:
    """A run's final windowed MSRE; MLflow's SQL store keeps infinity as the largest double."""
    value = recorded(client, run)["final_msre_windowed"]
    return float("inf") if value >= sys.float_info.max else value


@CLI
def test_readme_smoke_study_records_every_trial_in_mlflow_and_optuna(tmp_path):
    """The README's smoke study, as a user's first launch on a machine (a home without Ray's
    token): every trial recorded, and no warning from Ray about the token it creates."""
    home = tmp_path / "home"
    home.mkdir()
    proc = launch("--space", "hybrid", "--smoke", cwd=tmp_path, HOME=str(home))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Token authentication" not in proc.stdout + proc.stderr
    assert (home / ".ray" / "auth_token").is_file()  # Ray made it, as it does unasked
    assert "best msre_windowed" in proc.stdout
    assert "python -m study.ui --runs-dir " in proc.stdout
    assert "Ray dashboard: http://127.0.0.1:" in proc.stdout
    runs_dir = tmp_path / "runs"
    client, children, _ = check_one_run_per_trial(
        runs_dir, "hybrid-trace_patterning", 2, 20_000, 1000
    )
    for r in children:
        assert r.data.tags["ccn.status"] == "finished" and r.info.status == "FINISHED"
        assert r.data.tags["learner"] == "hybrid" and r.data.tags["seeds"] == "0,1"
        # XLA's CPU pool follows the trial's one reserved CPU (study.engine.threads)
        assert r.data.tags["xla_threads"] == "1"
        assert r.data.params["per_stage"] in {"1", "2", "4", "8"}
        artifacts = [a.path for a in client.list_artifacts(r.info.run_id)]
        assert "learning_curve.png" in artifacts
        # Where the trial's time went (study.engine.clock.Clock): the parts are disjoint and
        # within the wall time; the run loop's share excludes compilation.
        t = {k[len("trial_time_") : -2]: v for k, v in recorded(client, r).items()
             if k.startswith("trial_time_")}  # fmt: skip
        assert set(t) == {"wall", "compute", "loop", "compile", "logging", "checkpoint"}
        assert 0 < t["loop"] <= t["compute"] and t["logging"] > 0 and t["checkpoint"] > 0
        assert t["compute"] + t["logging"] + t["checkpoint"] <= t["wall"]


def test_list_spaces(capsys):
    assert main(["--list-spaces"]) == 0
    out = capsys.readouterr().out
    for name in FAMILIES:  # every family has its space
        assert f"{name}:" in out
    assert "truncation int [1, 64] log" in out


def wait_for(predicate, timeout, interval=0.25, log=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            found = predicate()
        except Exception:  # noqa: BLE001 - the stores are being written meanwhile
            found = None
        if found:
            return found
        time.sleep(interval)
    raise AssertionError("timed out" + (f"; log:\n{log.read_text()[-3000:]}" if log else ""))


def _listening(pid: int) -> list[str]:
    """The addresses process ``pid`` listens on (none once it has gone)."""
    import psutil

    try:
        conns = psutil.Process(pid).net_connections(kind="inet")
    except psutil.Error:
        return []
    return [c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN]


@CLI
def test_killed_study_resumes_without_losing_or_repeating_work(tmp_path):
    """Two launches of one study race: one runs, the other refuses. While it runs, a launch or
    --resume of it refuses naming its process, and its Ray listens on 127.0.0.1 only. Kill the
    driver alone with SIGKILL in the middle of a trial after the first: no Ray process of it
    stays. Relaunch with --resume: the finished trials are not re-run, the running one
    continues from its checkpoint, any left run, and MLflow and Optuna end with exactly one
    record per trial."""
    import psutil

    # a report (and checkpoint) after every 10k-step chunk: a kill lands mid-trial
    argv = ["--space", "columnar", "--smoke", "--trials", "3", "--concurrency", "1",
            "--steps", "600000", "--set", "n_features=3", "--min-report-s", "0",
            "--reuse-actors", "--pack", "1"]  # fmt: skip
    name = "columnar-trace_patterning"
    runs_dir = tmp_path / "runs"
    # Tune snapshots its experiment state every second instead of every 10 s or more.
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", TUNE_GLOBAL_CHECKPOINT_S="1")
    logs = [tmp_path / "launch-a.log", tmp_path / "launch-b.log"]
    racers = []
    for log in logs:
        with log.open("w") as out:
            racers.append(subprocess.Popen(
                [sys.executable, "-m", "study.launch", *argv], cwd=tmp_path, env=env,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            ))  # fmt: skip
    try:
        loser = wait_for(lambda: next((p for p in racers if p.poll() is not None), None), 120)
        first = next(p for p in racers if p is not loser)
        log = logs[racers.index(first)]
        refusal = logs[racers.index(loser)].read_text()
        assert loser.returncode == 2, refusal
        assert f"study '{name}' is running: pid {first.pid} on" in refusal

        # While it runs (its first trial of three), it cannot be launched again, nor resumed
        # under it.
        again = [subprocess.Popen([sys.executable, "-m", "study.launch", *argv, *extra],
                                  cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for extra in ([], ["--resume"])]  # fmt: skip
        for proc in again:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 2 and f"is running: pid {first.pid}" in err

        # Every port its Ray opened listens on the loopback interface only (once its trials
        # run: the workers are up).
        wait_for(lambda: "] started" in log.read_text(), timeout=120, log=log)

        def ray_processes():
            return [p.pid for p in psutil.Process(first.pid).children(recursive=True)
                    if "study.orchestration.local_ray" not in " ".join(p.cmdline())]  # fmt: skip

        ray_pids = ray_processes()  # not its watcher
        listening = [ip for pid in [first.pid, *ray_pids] for ip in _listening(pid)]
        assert len(listening) >= 5  # GCS, raylet, dashboard, agents, workers
        assert set(listening) <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, listening
        assert "(it asks for a token: paste the contents of" in log.read_text()
        time.sleep(1.5)
        # The watcher has recorded every process of that Ray (it records once a second).
        recorded = json.loads((runs_dir / "locks" / f"{name}.ray.json").read_text())["pids"]
        assert {int(p) for p in recorded} >= set(ray_pids) - {
            p for p in ray_pids if not psutil.pid_exists(p)
        }

        def a_later_trial_midway():
            # One trial finished (or two), the next one running, and Tune's state as --resume
            # will read it holding that trial with a checkpoint far from its end: the kill
            # lands there, however fast or slow the machine.
            _, _, children, _ = records(runs_dir, name, optuna_too=False)
            done = [r for r in children if r.data.tags["ccn.status"] == "finished"]
            running = [r for r in children if r.data.tags["ccn.status"] == "running"]
            if not done or len(running) != 1:
                return None
            trial_id = running[0].data.tags["ccn.trial_id"]
            state = max((runs_dir / "ray" / name).glob("experiment_state-*.json"),
                        key=lambda f: f.stat().st_mtime)  # fmt: skip
            steps = [json.loads(meta).get("last_result", {}).get("steps_done", 0)
                     for trial, meta in json.loads(state.read_text())["trial_data"]
                     if json.loads(trial)["trial_id"] == trial_id]  # fmt: skip
            return done if steps and 30_000 <= steps[0] <= 500_000 else None

        finished_before = wait_for(a_later_trial_midway, timeout=300, interval=0.05, log=log)
        ray_pids = sorted(set(ray_pids) | set(ray_processes()))
    finally:
        for p in racers:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)  # the driver alone, as the OOM killer does
            p.wait()
    assert first.returncode == -signal.SIGKILL

    def none_left():
        return not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                       for p in ray_pids)  # fmt: skip

    wait_for(none_left, timeout=30)

    # Relaunching without --resume refuses to start over the interrupted study.
    proc = launch(*argv, cwd=tmp_path)
    assert proc.returncode == 2 and "was interrupted; add --resume" in proc.stderr

    proc = launch(*argv, "--resume", cwd=tmp_path, TUNE_GLOBAL_CHECKPOINT_S="1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    errors = [e.read_text()[-2000:] for e in (runs_dir / "ray" / name).glob("*/error.txt")]
    assert "3 configurations, a trial each, 0 failed" in proc.stdout, (
        "\n".join(errors) or proc.stderr[-3000:]
    )
    client, children, _ = check_one_run_per_trial(runs_dir, name, 3, 600_000, 1000)
    assert all(r.data.tags["ccn.status"] == "finished" for r in children)
    # The trials finished before the kill were not run again (final metrics logged once).
    for run in finished_before:
        assert len(client.get_metric_history(run.info.run_id, "final_msre_windowed")) == 1
    # One trial restarted from a checkpoint: its first report after the restore is mid-way.
    restored = []
    for result in (runs_dir / "ray" / name).glob("*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines()]
        restored += [
            r for r in rows if r["iterations_since_restore"] == 1 and r["steps_done"] > 10_000
        ]
    assert len(restored) == 1 and 30_000 <= restored[0]["steps_done"] <= 600_000


# Small networks keep compilation short. The README test covers hybrid with its full space,
# the diverging study the linear space.
# With one shape per study and one trial at a time, the second trial reuses the first one's
# compiled program (same worker process).
SMALL = {
    "columnar": ("trace_conditioning", ["n_features=3"]),
    "constructive": ("trace_conditioning_isi30", ["n_features=3"]),
    "snap1": ("trace_patterning_testbed", ["n_features=3"]),
    "tbptt": ("noisy_patterning", ["n_features=3", "truncation=4"]),
    "rtrl": ("trace_conditioning", ["n_features=2"]),
    "rtu": ("trace_conditioning", ["n_features=4"]),
}


def test_a_study_pickled_before_the_rooms_resolves_its_old_module_names():
    """Tune pickles its searcher and callbacks by module name (``study.pack_search``,
    ``study.console``, ...): each name of a module moved into ``study.engine``,
    ``study.orchestration``, ``study.records`` or ``study.compare`` still loads, as the module
    it became."""
    import pickle

    from study import MOVED
    from study.orchestration.pack_search import PackSearch
    from study.records.study import Tracking

    assert len(MOVED) == 20
    for old, new in MOVED.items():
        assert pickle.loads(f"c{old}\n__name__\n.".encode()) == new
    assert pickle.loads(b"cstudy.pack_search\nPackSearch\n.") is PackSearch
    # a trainable pickled before the records room holds its launch's Tracking by the old name
    assert pickle.loads(b"cstudy.orchestration.tracking\nTracking\n.") is Tracking
    assert subprocess.run([sys.executable, "-c", "import study.nothing"],
                          capture_output=True).returncode == 1  # fmt: skip


@pytest.mark.parametrize("space", list(SMALL))  # linear: the diverging study below
@IN_PROCESS
def test_smoke_study_of_every_space(space, ray_local, tmp_path):
    task, values = SMALL[space]
    fixed = [arg for value in values for arg in ("--set", value)]
    argv = ["--space", space, "--task", task, "--smoke", "--concurrency", "1", "--reuse-actors",
            "--runs-dir", str(tmp_path), *fixed]  # fmt: skip
    assert main(argv) == 0
    _, children, _ = check_one_run_per_trial(tmp_path, f"{space}-{task}", 2, 20_000, 1000)
    for r in children:
        assert r.data.tags["learner"] == space and r.data.tags["space"] == space
        assert r.data.tags["task"] == task
        assert r.data.tags["ccn.status"] == "finished"


@IN_PROCESS
def test_study_with_a_diverging_step_size_finishes_with_that_trial_marked(ray_local, tmp_path):
    # Plain TD (no RMSProp) on the linear learner diverges for step sizes above about 0.5.
    argv = ["--space", "linear", "--smoke", "--trials", "4", "--reuse-actors",
            "--runs-dir", str(tmp_path), "--set", "rmsprop=false",
            "--range", "alpha=1e-3:30"]  # fmt: skip
    assert main(argv) == 0
    client, children, trials = check_one_run_per_trial(
        tmp_path, "linear-trace_patterning", 4, 20_000, 1000
    )
    status = {r.data.tags["ccn.status"] for r in children}
    assert status == {"finished", "diverged"}
    for r in children:
        value = final(client, r)
        alpha = float(r.data.params["alpha"])
        if r.data.tags["ccn.status"] == "diverged":
            assert value == float("inf") and alpha > 0.1
            assert 0 <= recorded(client, r)["final_diverged_at_step"] < 20_000  # within the run
        else:  # finished: a finite score, however poor (plain TD near its limit)
            assert value < float("inf") and alpha < 30
    assert sum(t.value == float("inf") for t in trials) == sum(
        r.data.tags["ccn.status"] == "diverged" for r in children
    )


@IN_PROCESS
def test_asha_stops_trials_early_and_marks_them(ray_local, tmp_path):
    # reports after every 10k-step chunk, at ASHA's rungs, however fast the trial
    argv = ["--space", "linear", "--smoke", "--trials", "4", "--concurrency", "1",
            "--reuse-actors", "--min-report-s", "0", "--scheduler", "asha", "--steps", "40000",
            "--runs-dir", str(tmp_path), "--pack", "1"]  # fmt: skip
    assert main(argv) == 0
    client, parents, children, trials = records(tmp_path, "linear-trace_patterning")
    assert len(children) == 4 and len(trials) == 4
    by_status = {}
    for r in children:
        by_status.setdefault(r.data.tags["ccn.status"], []).append(r)
        steps = [m.step for m in client.get_metric_history(r.info.run_id, MSRE_CURVE)]
        if r.data.tags["ccn.status"] == "finished":
            assert max(steps) == 40_000
        else:
            assert r.data.tags["ccn.status"] == "stopped_early" and max(steps) < 40_000
            assert r.info.status == "KILLED"
            # Its last report stands as its result, in MLflow as in Optuna.
            assert recorded(client, r)["final_steps_done"] == max(steps)
    values = sorted(t.value for t in trials)
    assert values == pytest.approx(sorted(final(client, r) for r in children))
    assert by_status.keys() == {"finished", "stopped_early"}


@IN_PROCESS
def test_gpu_request_without_gpus_is_refused_before_anything_is_recorded(
    ray_local, tmp_path, capsys
):
    argv = ["--space", "linear", "--smoke", "--gpus-per-trial", "0.5", "--runs-dir", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()  # after MLflow's own log lines
    assert err[-1] == "error: --gpus-per-trial 0.5 but the Ray cluster has 0 GPUs"
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.get_experiment_by_name("linear-trace_patterning") is None


@IN_PROCESS
def test_a_launch_that_fails_after_its_parent_run_marks_it_failed_and_frees_the_study(
    ray_local, tmp_path, capsys, monkeypatch
):
    """A failure once the parent run exists (here: the study itself raising) leaves that run
    FAILED, not RUNNING (which would read as interrupted), writes the traceback to a log file
    instead of the console, and releases the study's lock."""
    import study.orchestration.execute as execute_module

    def broken(*args, **kwargs):
        raise RuntimeError("the storage went away")

    monkeypatch.setattr(execute_module, "_run_study", broken)
    argv = ["--space", "linear", "--smoke", "--runs-dir", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: the launch failed: RuntimeError: the storage went away")
    log = Path(err.split("(details: ")[1].rstrip(")"))
    assert "Traceback" in log.read_text() and "the storage went away" in log.read_text()
    _, parents, _, _ = records(tmp_path, "linear-trace_patterning", optuna_too=False)
    assert [p.info.status for p in parents] == ["FAILED"]
    from study.orchestration.lock import holder

    assert holder(tmp_path, "linear-trace_patterning") is None
    # No half-made folder: what the failure left (the log it names, the released lock, the
    # stores as they were) is a runs folder the next launch uses as it is.
    monkeypatch.undo()
    assert main(argv) == 0  # a study that never started: launched anew, not resumed
    _, parents, children, trials = records(tmp_path, "linear-trace_patterning")
    assert sorted(p.info.status for p in parents) == ["FAILED", "FINISHED"]
    assert len(children) == len(trials) == 2


def _histories(runs_dir: Path, name: str) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Every trial run's MLflow metric histories, (step, value) in order, by run name."""
    client = MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    exp = client.get_experiment_by_name(name)
    out = {}
    for r in client.search_runs([exp.experiment_id]):
        if r.data.tags.get("ccn.role") != "launch":
            out[r.info.run_name] = {
                k: [(m.step, m.value) for m in client.get_metric_history(r.info.run_id, k)]
                for k in r.data.metrics
            }
    return out


def _chunk_ends(runs_dir: Path) -> list[list[int]]:
    """Where each trial's chunks ended (its Tune reports' steps): set by the clock."""
    return sorted([json.loads(line)["steps_done"] for line in f.read_text().splitlines()]
                  for f in (runs_dir / "ray").rglob("result.json"))  # fmt: skip


@IN_PROCESS
def test_a_study_under_cpu_load_records_what_it_records_on_a_quiet_machine(ray_local, tmp_path):
    """The same study run alone, reporting after every chunk, and beside a two-process CPU
    burner, its chunks following the clock: its chunks end at other steps, yet every trial's
    MLflow metric histories (curve points, per-seed curves, finals), and the values Optuna
    recorded, are identical."""
    # alone: a report after every chunk of chunk_steps; loaded: chunks that follow the clock
    # (every 0.5 s at least), so their ends differ however busy the machine already is
    argv = ["--space", "columnar", "--trials", "2", "--seeds", "2", "--steps", "1000000",
            "--concurrency", "1", "--set", "n_features=3"]  # fmt: skip
    assert main([*argv, "--min-report-s", "0", "--runs-dir", str(tmp_path / "quiet")]) == 0
    burn = "import time\nend = time.monotonic() + 600\nwhile time.monotonic() < end: pass"
    burner = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(2)]
    try:
        assert main([*argv, "--min-report-s", "0.5", "--runs-dir", str(tmp_path / "loaded")]) == 0
    finally:
        for p in burner:
            p.kill()
            p.wait()
    name = "columnar-trace_patterning"
    quiet, loaded = _histories(tmp_path / "quiet", name), _histories(tmp_path / "loaded", name)
    assert _chunk_ends(tmp_path / "quiet") != _chunk_ends(tmp_path / "loaded")
    assert len(quiet) == 2 and quiet == loaded
    for r in quiet.values():
        assert [s for s, _ in r["windowed MSRE/curve_msre_windowed"]] == list(
            range(10_000, 1_000_001, 10_000)
        )
    values = [[t.value for t in records(tmp_path / run, name)[3]] for run in ("quiet", "loaded")]
    assert values[0] == values[1]


@IN_PROCESS
def test_smoke_study_on_sequential_mnist_optimises_heldout_accuracy(ray_local, tmp_path):
    argv = ["--space", "hybrid", "--task", "seq_mnist", "--smoke", "--concurrency", "1",
            "--reuse-actors", "--min-report-s", "0", "--runs-dir", str(tmp_path),
            "--set", "n_stages=2",
            "--set", "per_stage=2"]  # fmt: skip
    assert main(argv) == 0
    client, parents, children, trials = records(tmp_path, "hybrid-seq_mnist")
    assert len(parents) == 1 and len(children) == 2 and len(trials) == 2
    study = optuna.load_study(study_name="hybrid-seq_mnist",
                              storage=f"sqlite:///{tmp_path / 'optuna.db'}")  # fmt: skip
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    logged = sorted(recorded(client, r)["final_heldout_accuracy"] for r in children)
    assert sorted(t.value for t in trials) == pytest.approx(logged, rel=1e-9)
    for r in children:
        assert r.data.tags["task"] == "seq_mnist" and r.data.tags["ccn.status"] == "finished"
        curve = client.get_metric_history(r.info.run_id, ACCURACY_CURVE)
        assert [m.step for m in curve] == list(range(1000, 20_001, 1000))
        assert all(0.0 <= m.value <= 1.0 for m in curve)
        heldout = client.get_metric_history(r.info.run_id, HELDOUT_CURVE)
        assert [m.step for m in heldout] == [10_000, 20_000]
        assert "learning_curve.png" in [a.path for a in client.list_artifacts(r.info.run_id)]

    # The report compares accuracy: the best trial is the one with the HIGHEST held-out
    # accuracy, its interval a t-interval over the per-seed values MLflow holds.
    result = make_report(f"sqlite:///{tmp_path / 'mlflow.db'}", ["hybrid-seq_mnist"],
                         tmp_path / "report")  # fmt: skip
    assert result["measure"].measure == "accuracy"
    best = max(children, key=lambda r: recorded(client, r)["final_heldout_accuracy"])
    seeds = [recorded(client, best)[f"final_heldout_accuracy_seed{s}"] for s in (0, 1)]
    (row,) = result["summary"]
    assert row["run_id"] == best.info.run_id
    assert row["accuracy_mean"] == pytest.approx(np.mean(seeds), rel=1e-9)
    half = scipy.stats.t.ppf(0.975, 1) * np.std(seeds, ddof=1) / np.sqrt(2)
    assert row["accuracy_ci95"] == pytest.approx(half, rel=1e-9)
    page = (tmp_path / "report" / "report.html").read_text()
    assert "accuracy_mean" in page and "msre" not in page.lower()


@CLI
def test_dashboard_names_each_trial_and_ctrl_c_pauses_the_study(tmp_path):
    """Open the Ray dashboard as the launch's line says: it asks for the token, which the
    user pastes from the file the line names; a click on Actors then lists every running
    trial by its Tune id and readable name, a pack's naming the configurations it holds
    (shape, count, step sizes). Ctrl+C then pauses the study: exit 130, the running
    configurations' MLflow runs marked interrupted (not stopped early), and a line saying to
    resume."""
    import re

    from browser import ARTIFACTS, Browser, chromium

    chromium()
    argv = ["--space", "columnar", "--smoke", "--trials", "4", "--concurrency", "2",
            "--pack", "2", "--steps", "100000000", "--set", "n_features=3"]  # fmt: skip
    log = tmp_path / "launch.log"
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    with log.open("w") as out:
        proc = subprocess.Popen(foreground("-m", "study.launch", *argv), cwd=tmp_path,
                                env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        started = wait_for(lambda: re.findall(r"started  (\w+)  (.+)", log.read_text())
                           if log.read_text().count("started  ") == 2 else None,
                           timeout=180, log=log)  # fmt: skip
        line = re.search(r"Ray dashboard: (\S+) \(it asks for a token: paste the contents of "
                         r"(\S+)", log.read_text())  # fmt: skip
        assert line, log.read_text()
        url, token_file = line.group(1), Path(line.group(2)).expanduser()
        with Browser(tmp_path / "profile") as b:
            b.open(url, until=["Authentication Token Required"])
            b.type_into("[role=dialog] input[type=password]", token_file.read_text().strip())
            b.click("[role=dialog] button", "SUBMIT")
            b.wait("!document.body.innerText.includes('Authentication Token Required')")
            b.click("a", "Actors")
            names = [f"{trial_id} {label.strip()}" for trial_id, label in started]
            # a pack of two configurations: its shape, count and both step sizes
            assert all(re.fullmatch(r"columnar 3 x2 a=[^,\s]+,[^,\s]+( l=\S+)?", label.strip())
                       for _, label in started), started  # fmt: skip
            b.open_again(until=["ALIVE", *names])
            b.screenshot(ARTIFACTS / "ray-dashboard-actors.png")

        def both_logging():
            _, _, children, _ = records(tmp_path / "runs", "columnar-trace_patterning",
                                        optuna_too=False)  # fmt: skip
            return len(children) == 4

        wait_for(both_logging, timeout=120, log=log)
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl+C
        proc.wait(timeout=120)
    out = log.read_text()
    assert proc.returncode == 130, out[-3000:]
    assert "stopping: saving the state of 2 running trial(s)" in out
    assert "run the same command with --resume to continue" in out
    assert "Experiment has been interrupted" not in out and "finished in" not in out
    _, parents, children, _ = records(tmp_path / "runs", "columnar-trace_patterning",
                                      optuna_too=False)  # fmt: skip
    assert [r.info.status for r in parents] == ["KILLED"]
    assert sorted(r.data.tags["ccn.status"] for r in children) == ["interrupted"] * 4
    assert {r.info.status for r in children} == {"KILLED"}


@CLI
def test_ctrl_c_at_any_moment_of_start_up_is_answered_with_exit_code_130(tmp_path):
    """SIGINT to a launch's process group (what a terminal's Ctrl+C sends) at every half second
    of its first 10 s from the moment the command's own imports begin (numpy mapped: Python's
    start before that runs no code of ours): while it imports, while JAX starts (whose
    garbage-collection callback swallows an exception raised in it), while the plan is
    checked, the stores made and Ray started, and once Tune runs. Every time: exit code 130
    (as a shell reports it), no traceback and no "Exception ignored", and one answer: the one
    line ``interrupted (Ctrl+C)``, or Tune's pause and the line saying how to resume. Four
    launches of one trial each run at a time (each its own runs folder and Ray); a busy
    machine moves the moments to earlier phases, which the sweep covers too."""
    from concurrent.futures import ThreadPoolExecutor

    def interrupt(moment: float) -> tuple[float, int, str, str]:
        runs = tmp_path / f"at-{moment:g}"
        runs.mkdir()
        proc = subprocess.Popen(
            foreground("-m", "study.launch", "--space", "columnar", "--smoke",
             "--trials", "1", "--concurrency", "1", "--runs-dir", str(runs)), cwd=runs,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True, env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"),
        )  # fmt: skip
        maps = Path(f"/proc/{proc.pid}/maps")
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if "numpy" in maps.read_text():
                break
            time.sleep(0.01)
        time.sleep(moment)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=600)
        return moment, proc.returncode, out, err

    moments = [0.5 * k for k in range(20)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(interrupt, moments))
    for moment, code, out, err in results:
        said = f"at {moment} s: exit {code}\n{out[-2000:]}\n{err[-2000:]}"
        # 130 as a shell reports it: the exit code, or ended by SIGINT itself (-2, which the
        # shell shows as 128 + 2), as Python ends after Ctrl+C
        assert code in (130, -signal.SIGINT), said
        assert "Traceback" not in out + err and "Exception ignored" not in err, said
        paused = "run the same command with --resume to continue" in out
        assert err.strip() == ("" if paused else "interrupted (Ctrl+C)"), said
