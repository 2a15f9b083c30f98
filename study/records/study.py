"""MLflow records of a study: one experiment per study, one parent run per launch (created by
the driver), one child run per trial (created by the trial, tagged with its parent:
``study.records.trial``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mlflow.tracking import MlflowClient

from study.cli import sqlite_file
from study.engine.kinds import PREDICTION, TaskKind
from study.records.finals import log_finals
from study.records.tags import (
    KIND_TAG,
    MODEL_TRAINING,
    NOTE_TAG,
    ROLE_TAG,
    RUN_STATUS,
    STATUS_TAG,
    TRIAL_TAG,
)
from study.records.view import share_view


@dataclass(frozen=True)
class Tracking:
    """Where a trial logs: passed to trials by value (plain strings, picklable)."""

    uri: str
    experiment_id: str
    parent_run_id: str
    study: str = ""  # the study's name (the experiment's), for figures' titles


def client_of(uri: str) -> MlflowClient:
    """An MLflow client of ``uri``; a new ``sqlite:///`` store is made whole or not at all:
    its tables are created in a file beside it, then renamed into place, so that a launch
    interrupted while MLflow creates them (a few seconds) leaves no half-made store that
    every later open refuses ("table ... already exists")."""
    import os

    path = sqlite_file(uri) if "?" not in uri else None
    if path is not None and not path.exists() and path.parent.is_dir():
        part = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            MlflowClient(f"sqlite:///{part.absolute()}").search_experiments(max_results=1)
            if not path.exists():  # another process may have made it meanwhile: theirs stays
                os.replace(part, path)
        finally:
            part.unlink(missing_ok=True)
    return MlflowClient(uri)


def start_study(uri: str, experiment: str, artifact_location: str | None, tags: dict[str, str],
                resume: bool = False, description: str = "", run_name: str | None = None,
                run_description: str = "", kind: TaskKind = PREDICTION,
                shown: tuple[str, ...] = (), seeds: tuple[int, ...] = (),
                searched: tuple[str, ...] = ()) -> Tracking:  # fmt: skip
    """Create (or find) the experiment and start the launch's parent run; returns Tracking.

    The experiment is marked as model training for MLflow's UI, given ``description`` (a
    description someone wrote by hand is kept) and the shared view that shows ``kind``'s
    results, the parameters ``shown`` and a chart view of the result against each parameter
    ``searched`` whose per-seed curves (``seeds``) stay off it (``study.records.view``); the
    parent run is named ``run_name`` and described by ``run_description``. With ``resume``
    the latest launch's parent run is reopened instead, so the trials of a resumed study stay
    under the parent they started under.
    """
    client = client_of(uri)
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
        if description and ours(found.tags.get(NOTE_TAG)):
            client.set_experiment_tag(experiment_id, NOTE_TAG, description)
    share_view(client, experiment_id, kind, list(shown), list(seeds), list(searched))
    if resume:
        last = latest_launch(client, experiment_id)
        if last is not None:
            client.update_run(last.info.run_id, status="RUNNING")
            return Tracking(uri, experiment_id, last.info.run_id, experiment)
    name = run_name or f"launch {time.strftime('%Y-%m-%d %H:%M')}"
    note = {NOTE_TAG: run_description} if run_description else {}
    parent = client.create_run(
        experiment_id, tags={"mlflow.runName": name, ROLE_TAG: "launch", **note, **tags}
    )
    return Tracking(uri, experiment_id, parent.info.run_id, experiment)


def history(client: Any, run_id: str, key: str) -> list[Any]:
    """MLflow's history of metric ``key`` of a run, with the points logged under the key's
    name before curves had sections (a study resumed across the change has both)."""
    points = client.get_metric_history(run_id, key)
    if "/" in key:
        points = [*client.get_metric_history(run_id, key.rpartition("/")[2]), *points]
    return sorted(points, key=lambda m: m.step)


def latest_launch(client: MlflowClient, experiment_id: str):
    """The parent run of the experiment's latest launch, or None."""
    runs = client.search_runs(
        [experiment_id], f"tags.`{ROLE_TAG}` = 'launch'", order_by=["attributes.start_time DESC"],
        max_results=1,
    )  # fmt: skip
    return runs[0] if runs else None


def reconcile(tracking: Tracking, trials: dict[str, tuple[str, dict[str, float]]],
              resumed: bool = False, kind: TaskKind = PREDICTION) -> dict[str, int]:  # fmt: skip
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
    for run in runs:
        trial = trials.get(run.data.tags.get(TRIAL_TAG, ""))
        if trial is None and resumed:
            client.delete_run(run.info.run_id)
            counts["deleted"] += 1
            continue
        status, last = trial or ("ERROR", {})
        outcome = "failed" if status == "ERROR" else "stopped_early"
        log_finals(client, run.info.run_id, kind, last, outcome)
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


def ours(note: str | None) -> bool:
    """Whether a description is this platform's to rewrite (none yet, or one it wrote)."""
    return not note or note.startswith("ccn-study:")
