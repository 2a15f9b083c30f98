"""MLflow records of a study: one experiment per study, one parent run per launch (created by
the driver), one child run per trial (created by the trial, tagged with its parent).

Everything a trial logs goes through ``MlflowClient`` batches: parameters once, the learning
curve of each chunk in one ``log_batch``, the final metrics and the status at the end.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from study.cli import redact
from study.engine.kinds import PREDICTION

# running, finished, stopped_early, diverged, failed, or interrupted (until --resume)
STATUS_TAG = "ccn.status"
# MLflow's run status of each outcome; FINISHED for the others.
RUN_STATUS = {"failed": "FAILED", "stopped_early": "KILLED", "interrupted": "KILLED"}


@dataclass(frozen=True)
class Tracking:
    """Where a trial logs: passed to trials by value (plain strings, picklable)."""

    uri: str
    experiment_id: str
    parent_run_id: str


ROLE_TAG = "ccn.role"  # "launch" on the parent run of each launch
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: a trial's run names its launch's run
TRIAL_TAG = "ccn.trial_id"  # Ray Tune's trial id on each child run
# The Ray node ids a trial ran on, in order: a trial restarted elsewhere lists both.
NODES_TAG = "ccn.nodes"
CONFIG_TAG = "ccn.config"  # the trial's configuration as JSON (typed, unlike params)
# A configuration run in a pack (study.engine.pack): the pack's Tune trial id, the configuration's
# index in it and the pack's size. Its TRIAL_TAG is the trial id, a dot and the index.
PACK_TAG, PACK_MEMBER_TAG, PACK_SIZE_TAG = "ccn.pack", "ccn.pack_member", "ccn.pack_size"
OPTUNA_TAG = "ccn.optuna_trial"  # a packed search's configuration: its Optuna trial's number
# What MLflow 3's UI reads: an experiment of this kind opens on its training runs (not on the
# GenAI traces view), and a note is the description shown on an experiment's or a run's page.
KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
NOTE_TAG = "mlflow.note.content"


def start_study(uri: str, experiment: str, artifact_location: str | None, tags: dict[str, str],
                resume: bool = False, description: str = "", run_name: str | None = None,
                run_description: str = "") -> Tracking:  # fmt: skip
    """Create (or find) the experiment and start the launch's parent run; returns Tracking.

    The experiment is marked as model training for MLflow's UI and given ``description``
    (kept when it has one already); the parent run is named ``run_name`` and described by
    ``run_description``. With ``resume`` the latest launch's parent run is reopened instead,
    so the trials of a resumed study stay under the parent they started under.
    """
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        experiment_id = client.create_experiment(
            experiment, artifact_location=artifact_location,
            tags={KIND_TAG: MODEL_TRAINING, **({NOTE_TAG: description} if description else {})},
        )  # fmt: skip
    else:
        experiment_id = found.experiment_id
        if found.tags.get(KIND_TAG) != MODEL_TRAINING:
            client.set_experiment_tag(experiment_id, KIND_TAG, MODEL_TRAINING)
        if description and not found.tags.get(NOTE_TAG):
            client.set_experiment_tag(experiment_id, NOTE_TAG, description)
    if resume:
        last = latest_launch(client, experiment_id)
        if last is not None:
            client.update_run(last.info.run_id, status="RUNNING")
            return Tracking(uri, experiment_id, last.info.run_id)
    name = run_name or f"launch {time.strftime('%Y-%m-%d %H:%M')}"
    note = {NOTE_TAG: run_description} if run_description else {}
    parent = client.create_run(
        experiment_id, tags={"mlflow.runName": name, ROLE_TAG: "launch", **note, **tags}
    )
    return Tracking(uri, experiment_id, parent.info.run_id)


def runs_page(server: str, experiment_id: str, metric: str, mode: str) -> str:
    """The MLflow UI page of an experiment's runs sorted by the final value of ``metric``
    (best first). Sorted by a metric, the UI lists every trial's run by its name; in its
    default order it folds them under their launch's run."""
    from urllib.parse import quote

    key = quote(f"metrics.`final_{metric}`", safe=".")
    ascending = "true" if mode == "min" else "false"
    return f"{server}/#/experiments/{experiment_id}/runs?orderByKey={key}&orderByAsc={ascending}"


def trial_title(learner: str, settings: dict[str, Any], config: dict[str, Any]) -> str:
    """A trial's readable run name: its learner, shape and key hyperparameters, as in
    ``hybrid 20:4 a=3e-4 l=0.9`` (columns:per stage), ``columnar 7``, ``tbptt h8 k=5``
    (hidden units, truncation)."""
    shape = ""
    if "per_stage" in settings:  # columns
        n, per = settings["n_features"], settings["per_stage"]
        shape = str(n) if per == n else f"{n}:{per}"
    elif "n_features" in settings:  # hidden units of a dense LSTM
        shape = f"h{settings['n_features']}"
        shape += f" k={settings['truncation']}" if "truncation" in settings else ""
        shape += f" x{settings['layers']} layers" if settings.get("layers", 1) > 1 else ""
    parts = [learner, shape]
    if isinstance(config.get("alpha"), int | float):
        mantissa, exponent = f"{float(config['alpha']):.1e}".split("e")
        parts.append(f"a={mantissa.removesuffix('.0')}e{int(exponent)}")
    if isinstance(config.get("lambda_"), int | float):
        parts.append(f"l={config['lambda_']:g}")
    return " ".join(p for p in parts if p)


def _node_id() -> str:
    """The Ray node this process runs on ("local" outside Ray)."""
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - a tag, never worth failing a trial for
        pass
    return "local"


def latest_launch(client: MlflowClient, experiment_id: str):
    """The parent run of the experiment's latest launch, or None."""
    runs = client.search_runs(
        [experiment_id], f"tags.`{ROLE_TAG}` = 'launch'", order_by=["attributes.start_time DESC"],
        max_results=1,
    )  # fmt: skip
    return runs[0] if runs else None


def reconcile(
    tracking: Tracking, trials: dict[str, tuple[str, dict[str, float]]], resumed: bool = False
) -> dict[str, int]:
    """At the end of a launch, settle the child runs still marked running.

    ``trials`` maps each trial id of the finished Tune experiment to its status ("TERMINATED"
    or "ERROR") and the numbers of its last report. A run still marked running whose trial
    ended normally was stopped by the scheduler (``stopped_early``; its last report is logged
    as its final metrics, as the search recorded it); one whose trial errored is ``failed``;
    on a resumed launch, one whose trial id the experiment does not know was started by the
    interrupted launch and never checkpointed into the experiment state, and is deleted
    (MLflow's soft delete) so that every trial has exactly one run. A launch that was not
    resumed deletes nothing: such a run is marked ``failed``. Returns the counts of each
    outcome.
    """
    client = MlflowClient(tracking.uri)
    runs = client.search_runs(
        [tracking.experiment_id],
        f"tags.mlflow.parentRunId = '{tracking.parent_run_id}' and tags.`{STATUS_TAG}` = 'running'",
    )
    counts = {"stopped_early": 0, "failed": 0, "deleted": 0}
    now = int(time.time() * 1000)
    for run in runs:
        trial = trials.get(run.data.tags.get(TRIAL_TAG, ""))
        if trial is None and resumed:
            client.delete_run(run.info.run_id)
            counts["deleted"] += 1
            continue
        status, last = trial or ("ERROR", {})
        outcome = "failed" if status == "ERROR" else "stopped_early"
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(f"final_{k}", v, now, 0) for k, v in last.items()],
            tags=[RunTag(STATUS_TAG, outcome)],
        )
        client.set_terminated(run.info.run_id, RUN_STATUS[outcome])
        counts[outcome] += 1
    client.set_terminated(tracking.parent_run_id, "FINISHED")
    return counts


def mark_interrupted(tracking: Tracking, trial_ids: set[str]) -> int:
    """After a Ctrl+C: the runs of the trials that were running, which their trainables closed
    as stopped early (a trial cannot tell the user's stop from a scheduler's), are marked
    ``interrupted`` (MLflow status KILLED), and the parent run KILLED, until ``--resume`` reopens
    them. Returns how many trial runs were marked."""
    client = MlflowClient(tracking.uri)
    runs = client.search_runs(
        [tracking.experiment_id], f"tags.mlflow.parentRunId = '{tracking.parent_run_id}'"
    )
    marked = 0
    for run in runs:
        trial = run.data.tags.get(TRIAL_TAG, "").partition(".")[0]  # a pack's member: ID.i
        if trial in trial_ids and run.data.tags.get(STATUS_TAG) in (
            "running",
            "stopped_early",
        ):
            client.set_tag(run.info.run_id, STATUS_TAG, "interrupted")
            client.set_terminated(run.info.run_id, RUN_STATUS["interrupted"])
            marked += 1
    client.set_terminated(tracking.parent_run_id, RUN_STATUS["interrupted"])
    return marked


class TrialLogger:
    """One trial's child run. A trial Tune restarts or resumes (same trial id) finds its run
    again, so a trial has one run however often it restarts; points of the curve already
    logged are not logged twice."""

    def __init__(self, tracking: Tracking, run_id: str | None, trial_id: str, name: str,
                 tags: dict[str, str], params: dict[str, Any], curve: str = PREDICTION.curve,
                 curve_label: str = PREDICTION.curve_label,
                 seeds: tuple[int, ...] = ()) -> None:  # fmt: skip
        self.client = MlflowClient(tracking.uri)
        self.curve, self.curve_label, self.seeds = curve, curve_label, tuple(seeds)
        self.caption = "trial"  # the curve figure's title, before its outcome
        if run_id is None:
            found = self.client.search_runs(
                [tracking.experiment_id],
                f"tags.`{TRIAL_TAG}` = '{trial_id}' and "
                f"tags.mlflow.parentRunId = '{tracking.parent_run_id}'",
            )
            run_id = found[0].info.run_id if found else None
        node = _node_id()
        if run_id is None:
            run = self.client.create_run(
                tracking.experiment_id,
                tags={PARENT_TAG: tracking.parent_run_id, "mlflow.runName": name,
                      STATUS_TAG: "running", TRIAL_TAG: trial_id, NODES_TAG: node, **tags},
            )  # fmt: skip
            self.run_id = run.info.run_id
            self.client.log_batch(
                self.run_id, params=[Param(k, str(v)[:500]) for k, v in sorted(params.items())]
            )
            self.last_step = -1
        else:
            self.run_id = run_id
            self.client.update_run(run_id, status="RUNNING")  # if closed as interrupted
            before = self.client.get_run(run_id).data.tags.get(NODES_TAG, "")
            self.client.log_batch(run_id, tags=[
                RunTag(STATUS_TAG, "running"),
                RunTag(NODES_TAG, f"{before},{node}".strip(",")[-4000:]),
            ])  # fmt: skip
            history = self.client.get_metric_history(run_id, self.curve)
            self.last_step = max((m.step for m in history), default=-1)

    @classmethod
    def start(cls, tracking: Tracking, run_id: str | None, trial_id: str, tune_name: str,
              config: dict[str, Any], run: Any, threads: int | None,
              pack: tuple[int, int] | None = None,
              optuna_trial: int | None = None) -> TrialLogger:  # fmt: skip
        """The trial's run, created (or found again) with everything MLflow shows of it: its
        readable name, description, tags and parameters. ``run`` is the trial's
        ``study.engine.trial.TrialRun`` (its learner, ledger entry and curve names). ``pack`` is
        ``(index, size)`` of a configuration run in a pack: its run is tagged with the pack
        and is otherwise what a lone trial of the configuration would log; in a search, with
        the number of its Optuna trial (``optuna_trial``)."""
        learner, ledger = run.learner, run.ledger()
        seeds = [int(s) for s in config["seeds"]]
        packed = {}
        if pack is not None:
            packed = {PACK_TAG: trial_id, PACK_MEMBER_TAG: str(pack[0]),
                      PACK_SIZE_TAG: str(pack[1])}  # fmt: skip
            trial_id = f"{trial_id}.{pack[0]}"
        if optuna_trial is not None:
            packed[OPTUNA_TAG] = str(optuna_trial)
        tags = {**packed,
            "learner": str(config["learner"]), "task": str(config.get("task")),
            "space": str(config.get("space", config["learner"])),
            "seeds": ",".join(str(s) for s in seeds),
            ROLE_TAG: str(config.get("role", "tuning")), "xla_threads": str(threads or "default"),
            CONFIG_TAG: json.dumps({k: v for k, v in config.items() if k != "seeds"},
                                   sort_keys=True, default=str),
            NOTE_TAG: (
                f"{'Configuration' if pack else 'Trial'} `{trial_id}` ({tune_name}"
                f"{f', configuration {pack[0]} of a pack of {pack[1]}' if pack else ''}) of this "
                f"study: the {learner.name} learner "
                f"{learner.settings} on {config.get('task')}, {ledger['ledger_params']:,} "
                f"parameters and {ledger['ledger_flops_per_step']:,} flops per step per stream, "
                f"run on seeds {seeds[0]}-{seeds[-1]} for {config['steps']:,} steps. Curves: "
                f"`{run.curve_key}` (mean over seeds) and `{run.curve_key}_seedN`, against "
                f"environment steps; final values: `final_*` metrics."
            ),
        }  # fmt: skip
        params = {**{k: v for k, v in config.items() if k != "seeds"}, **ledger}
        title = trial_title(learner.name, learner.settings, config)
        logger = cls(tracking, run_id, trial_id, title, tags, params, curve=run.curve_key,
                     curve_label=run.curve_label, seeds=tuple(seeds))  # fmt: skip
        logger.caption = f"{config['learner']} on {config.get('task')}"
        return logger

    def end(self, outcome: str, final: dict[str, float]) -> None:
        """The trial ended (``outcome``: finished, diverged, stopped_early or failed): its
        curve's figure (unless it failed), its final metrics and its status."""
        if outcome != "failed":
            self.plot_curve(f"{self.caption}: {outcome}")
        self.finish(outcome, final)

    def log_curve(self, points: list[tuple[int, dict[str, float]]]) -> None:
        """Log ``(step, {key: value})`` points in one batch, skipping steps already logged."""
        now = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), now, step)
            for step, values in points
            if step > self.last_step
            for key, value in values.items()
        ]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)
            self.last_step = max(m.step for m in metrics)

    def plot_curve(self, title: str) -> None:
        """Log the learning curve recorded so far as ``learning_curve.png``."""
        import tempfile

        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        history = self.client.get_metric_history(self.run_id, self.curve)
        if not history:
            return
        steps = np.array([m.step for m in history], np.float64)
        fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
        per_seed = []
        for seed in self.seeds:  # a seed that diverged has no points after it did
            points = {m.step: m.value for m in self.client.get_metric_history(
                self.run_id, f"{self.curve}_seed{seed}")}  # fmt: skip
            per_seed.append([points.get(int(t), np.nan) for t in steps])
            ax.plot(steps, per_seed[-1], lw=0.6, alpha=0.35, color="tab:blue")
        if len(per_seed) >= 2:
            values = np.asarray(per_seed, np.float64)
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(values, axis=0)
                n = np.sum(np.isfinite(values), axis=0)
                half = 1.96 * np.nanstd(values, axis=0, ddof=1) / np.sqrt(n)
            ax.fill_between(steps, mean - half, mean + half, alpha=0.25, color="tab:blue",
                            label=f"95% interval over {len(per_seed)} seeds")  # fmt: skip
        ax.plot(steps, [m.value for m in history], lw=1.5, color="tab:blue",
                label="mean over seeds")  # fmt: skip
        ax.set_xlabel("steps")
        ax.set_ylabel(self.curve_label)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        if per_seed:
            ax.legend(fontsize=7, loc="best")
        with tempfile.TemporaryDirectory() as d:
            path = f"{d}/learning_curve.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            self.client.log_artifact(self.run_id, path)

    def log_final(self, values: dict[str, float]) -> None:
        """Log ``values`` as final metrics (one batch), after the run has finished."""
        now = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in values.items()]
        )

    def finish(self, status: str, final: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(f"final_{k}", float(v), now, 0) for k, v in final.items()],
            tags=[RunTag(STATUS_TAG, status)],
        )
        self.client.set_terminated(self.run_id, RUN_STATUS.get(status, "FINISHED"))


def browse_hint(uri: str, experiment_id: str, metric: str, mode: str) -> str:
    """How to see the study's trials in MLflow's UI: its command and the page that lists
    them sorted by their result."""
    if uri.startswith(("http://", "https://")):
        return f"MLflow: {runs_page(uri.rstrip('/'), experiment_id, metric, mode)}"
    return (f"MLflow: run `mlflow ui --backend-store-uri {redact(uri)}`, then open "
            f"{runs_page('http://127.0.0.1:5000', experiment_id, metric, mode)}")  # fmt: skip
