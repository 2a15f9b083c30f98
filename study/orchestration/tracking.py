"""MLflow records of a study: one experiment per study, one parent run per launch (created by
the driver), one child run per trial (created by the trial, tagged with its parent).

Everything a trial logs goes through ``MlflowClient`` batches: parameters once, the learning
curve of each chunk in one ``log_batch``, the final metrics and the status at the end.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from study.engine.kinds import PREDICTION, TaskKind
from study.orchestration.view import (
    COLOUR_TAG,
    LEARNED_TAG,
    colour,
    headline,
    place,
    plot_curve,
    run_name,
    share_view,
)

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
    study: str = ""  # the study's name (the experiment's), for figures' titles


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
                run_description: str = "", kind: TaskKind = PREDICTION,
                shown: tuple[str, ...] = ()) -> Tracking:  # fmt: skip
    """Create (or find) the experiment and start the launch's parent run; returns Tracking.

    The experiment is marked as model training for MLflow's UI, given ``description`` (a
    description someone wrote by hand is kept) and the shared view that shows ``kind``'s
    results and the parameters ``shown`` (``study.orchestration.view``); the parent run is
    named ``run_name`` and described by ``run_description``. With ``resume`` the latest
    launch's parent run is reopened instead, so the trials of a resumed study stay under the
    parent they started under.
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
        if description and ours(found.tags.get(NOTE_TAG)):
            client.set_experiment_tag(experiment_id, NOTE_TAG, description)
    share_view(client, experiment_id, kind, list(shown))
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


FINALS = "finals.json"  # every final number of a run (per seed, timings), as an artifact
FINALS_TAG = "ccn.finals"  # names that artifact on runs that have one


def ours(note: str | None) -> bool:
    """Whether a description is this platform's to rewrite (none yet, or one it wrote)."""
    return not note or note.startswith("ccn-study:")


def log_finals(client: MlflowClient, run_id: str, kind: TaskKind, final: dict[str, float],
               status: str | None = None) -> None:  # fmt: skip
    """Record a configuration's final numbers ``final`` (keys without ``final_``): the few of
    :func:`study.orchestration.view.headline` as metrics (a column and a chart each) and the
    verdict as the ``learned`` tag; all of them, per seed and timings included, in
    ``finals.json`` (merged into what the run already holds there)."""
    now = int(time.time() * 1000)
    top = headline(kind, final)
    tags = [RunTag(FINALS_TAG, FINALS)]
    if "learned" in top:
        tags.append(RunTag(LEARNED_TAG, "yes" if top["learned"] else "no"))
    if status is not None:
        tags.append(RunTag(STATUS_TAG, status))
    add_finals(client, run_id, {f"final_{k}": float(v) for k, v in final.items()})
    client.log_batch(run_id, metrics=[Metric(f"final_{k}", v, now, 0) for k, v in top.items()],
                     tags=tags)  # fmt: skip


def add_finals(client: MlflowClient, run_id: str, values: dict[str, float]) -> None:
    """Merge ``values`` into the run's ``finals.json``."""
    every = {**read_finals(client, run_id), **values}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / FINALS
        path.write_text(json.dumps(every, indent=1, sort_keys=True))
        client.log_artifact(run_id, str(path))


def read_finals(client: MlflowClient, run_id: str, tags: dict[str, str] | None = None,
                runs: Path | None = None) -> dict:  # fmt: skip
    """A run's ``finals.json`` (``{}`` for a run recorded before there was one). With
    ``runs``, the runs folder of an embedded store, it is read from that folder's artifacts,
    as the study laid them out (``artifacts/RUN/artifacts``), wherever the folder was when
    the study ran: a copied or moved runs folder reads its own files."""
    if tags is not None and FINALS_TAG not in tags:
        return {}
    here = runs / "artifacts" / run_id / "artifacts" / FINALS if runs is not None else None
    if here is not None and here.is_file():
        return json.loads(here.read_text())
    try:
        with tempfile.TemporaryDirectory() as d:
            return json.loads(Path(client.download_artifacts(run_id, FINALS, d)).read_text())
    except Exception:  # noqa: BLE001 - not there (yet): nothing recorded beyond the metrics
        return {}


# The outcomes a configuration reaches by its steps alone: a run closed with one of them is
# complete, and running its steps again (a launch killed before Tune recorded the trial as
# done) would only repeat the same numbers.
SETTLED = ("finished", "diverged")


class TrialLogger:
    """One trial's child run. A trial Tune restarts or resumes (same trial id) finds its run
    again, so a trial has one run however often it restarts; points of the curve already
    logged are not logged twice, and a run already closed as finished or diverged
    (``settled``) is left as it is: nothing is logged to it again."""

    def __init__(self, tracking: Tracking, run_id: str | None, trial_id: str, name: str,
                 tags: dict[str, str], params: dict[str, Any], kind: TaskKind = PREDICTION,
                 seeds: tuple[int, ...] = ()) -> None:  # fmt: skip
        self.client = MlflowClient(tracking.uri)
        self.kind, self.curve, self.seeds = kind, kind.curve, tuple(seeds)
        self.caption = name  # the curve figure's title, before its outcome
        self.note = ""  # the run's description, before its outcome
        if run_id is None:
            found = self.client.search_runs(
                [tracking.experiment_id],
                f"tags.`{TRIAL_TAG}` = '{trial_id}' and "
                f"tags.mlflow.parentRunId = '{tracking.parent_run_id}'",
            )
            run_id = found[0].info.run_id if found else None
        node = _node_id()
        self.settled: str | None = None
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
            status = self.client.get_run(run_id).data.tags.get(STATUS_TAG)
            if status in SETTLED:
                self.settled, self.last_step = status, -1
                return
            self.client.update_run(run_id, status="RUNNING")  # if closed as interrupted
            before = self.client.get_run(run_id).data.tags.get(NODES_TAG, "")
            self.client.log_batch(run_id, tags=[
                RunTag(STATUS_TAG, "running"),
                RunTag(NODES_TAG, f"{before},{node}".strip(",")[-4000:]),
            ])  # fmt: skip
            points = history(self.client, run_id, self.curve)
            self.last_step = max((m.step for m in points), default=-1)

    @classmethod
    def start(cls, tracking: Tracking, run_id: str | None, trial_id: str, tune_name: str,
              config: dict[str, Any], run: Any, threads: int | None,
              pack: tuple[int, int] | None = None,
              optuna_trial: int | None = None) -> TrialLogger:  # fmt: skip
        """The trial's run, created (or found again) with everything MLflow shows of it: its
        short name, colour, description, tags and parameters. ``run`` is the trial's
        ``study.engine.trial.TrialRun`` (its learner, ledger entry and kind). ``pack`` is
        ``(index, size)`` of a configuration run in a pack: its run is tagged with the pack
        and is otherwise what a lone trial of the configuration would log; in a search, with
        the number of its Optuna trial (``optuna_trial``)."""
        learner, ledger, kind = run.learner, run.ledger(), run.kind
        seeds = [int(s) for s in config["seeds"]]
        packed = {}
        index = place(trial_id, pack, optuna_trial)
        if index is None and run_id is None:  # the trials before it in the experiment
            index = len(
                MlflowClient(tracking.uri).search_runs(
                    [tracking.experiment_id], f"tags.`{ROLE_TAG}` != 'launch'", max_results=1000
                )
            )
        if pack is not None:
            packed = {PACK_TAG: trial_id, PACK_MEMBER_TAG: str(pack[0]),
                      PACK_SIZE_TAG: str(pack[1])}  # fmt: skip
            trial_id = f"{trial_id}.{pack[0]}"
        if optuna_trial is not None:
            packed[OPTUNA_TAG] = str(optuna_trial)
        name = run_name(learner.settings, config)
        shape = ", ".join(f"{k} {v}" for k, v in learner.settings.items()
                          if k not in ("n_inputs", "rmsprop"))  # fmt: skip
        hp = [f"step size {config['alpha']:g}" if "alpha" in config else "",
              f"lambda {config['lambda_']:g}" if "lambda_" in config else ""]  # fmt: skip
        note = (
            f"ccn-study: the **{learner.name}** learner ({shape}; "
            f"{', '.join(h for h in hp if h)}) on **{config.get('task')}**: "
            f"{ledger['ledger_params']:,} parameters, {ledger['ledger_flops_per_step']:,} flops "
            f"per step per stream, seeds {seeds[0]}-{seeds[-1]}, {config['steps']:,} steps. "
            f"Curves against environment steps: `{run.curve_key}` (mean over seeds; "
            f"`_seedN` each seed); `learning_curve.png` draws "
            f"{'the normalised MSRE' if kind.figure_curve != kind.curve else kind.curve_label} "
            f"of every seed; `{FINALS}` holds every final number."
        )
        tags = {**packed,
            "learner": str(config["learner"]), "task": str(config.get("task")),
            "space": str(config.get("space", config["learner"])),
            "seeds": ",".join(str(s) for s in seeds),
            ROLE_TAG: str(config.get("role", "tuning")), "xla_threads": str(threads or "default"),
            CONFIG_TAG: json.dumps({k: v for k, v in config.items() if k != "seeds"},
                                   sort_keys=True, default=str),
            COLOUR_TAG: colour(index or 0), NOTE_TAG: note,
        }  # fmt: skip
        params = {**{k: v for k, v in config.items() if k != "seeds"}, **ledger}
        logger = cls(tracking, run_id, trial_id, name, tags, params, kind=kind,
                     seeds=tuple(seeds))  # fmt: skip
        logger.note = note
        where = f"{tracking.study}: " if tracking.study else ""
        logger.caption = f"{where}{learner.name} {name} on {config.get('task')}"
        return logger

    def end(self, outcome: str, final: dict[str, float]) -> None:
        """The trial ended (``outcome``: finished, diverged, stopped_early or failed): its
        final numbers and verdict, its description with the result, its curve's figure
        (unless it failed) and its status."""
        if self.settled:
            return
        verdict = self.kind.verdict(final) if outcome != "failed" else ""
        said = f"{outcome}" + (f"; {verdict}" if verdict else "")
        if outcome != "failed":
            self.plot_curve(f"{self.caption}\n{said}")
        self.client.set_tag(self.run_id, NOTE_TAG, f"**Result**: {said}.\n\n{self.note}")
        self.finish(outcome, final)

    def log_curve(self, points: list[tuple[int, dict[str, float]]]) -> None:
        """Log ``(step, {key: value})`` points in one batch, skipping steps already logged."""
        if self.settled:
            return
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
        """Log the learning curve recorded so far as ``learning_curve.png``: the kind's
        figure curve (prediction: the normalised MSRE) of every seed, their mean and its
        interval, and the line of a learner that learned nothing."""
        kind, key = self.kind, self.kind.figure_curve
        per_seed = {s: {m.step: m.value for m in history(self.client, self.run_id,
                                                          f"{key}_seed{s}")}
                    for s in self.seeds}  # fmt: skip
        steps = sorted(set().union(*per_seed.values())) if per_seed else []
        if not steps:
            return
        lines = {s: np.array([h.get(t, np.nan) for t in steps], np.float64)
                 for s, h in per_seed.items()}  # fmt: skip
        with tempfile.TemporaryDirectory() as d:
            path = f"{d}/learning_curve.png"
            plot_curve(path, title, np.asarray(steps, np.float64), lines, kind.figure_label,
                       kind.no_learning, kind.no_learning_text)  # fmt: skip
            self.client.log_artifact(self.run_id, path)

    def log_final(self, values: dict[str, float]) -> None:
        """Add ``values`` (timings of the whole trial) to the run's ``finals.json``."""
        if self.settled:
            return
        add_finals(self.client, self.run_id, values)

    def finish(self, status: str, final: dict[str, float]) -> None:
        if self.settled:
            return
        log_finals(self.client, self.run_id, self.kind, final, status)
        self.client.set_terminated(self.run_id, RUN_STATUS.get(status, "FINISHED"))
