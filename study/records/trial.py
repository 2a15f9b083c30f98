"""One trial's MLflow run: created (or found again) with its name, colour, description, tags and
parameters; its learning curve in batches; its figure, final numbers and status at the end.

Everything a trial logs goes through ``MlflowClient`` batches: parameters once, the learning
curve of each chunk in one ``log_batch``, the final metrics and the status at the end.
"""

from __future__ import annotations

import json
import tempfile
import time
from typing import Any

import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from study.engine.kinds import PREDICTION, TaskKind
from study.present import colour, place, plot_curve, run_name
from study.present.names import table_values
from study.present.words import verdict_of, words
from study.records.finals import add_finals, log_finals
from study.records.study import Tracking, history
from study.records.tags import (
    COLOUR_TAG,
    CONFIG_TAG,
    FINALS,
    NODES_TAG,
    NOTE_TAG,
    OPTUNA_TAG,
    PACK_MEMBER_TAG,
    PACK_SIZE_TAG,
    PACK_TAG,
    PARENT_TAG,
    ROLE_TAG,
    RUN_CHARTS_TAG,
    RUN_STATUS,
    SETTLED,
    STATUS_TAG,
    TRIAL_TAG,
)
from study.records.view import RUN_TAG_LIMIT, fitted, trial_charts


def _node_id() -> str:
    """The Ray node this process runs on ("local" outside Ray)."""
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - a tag, never worth failing a trial for
        pass
    return "local"


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
        several = str(config.get("role", "tuning")) != "tuning"  # an evaluation: any families
        name = run_name(learner.settings, config, learner.name if several else "")
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
            f"the {words(kind).figure_label} "
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
            RUN_CHARTS_TAG: fitted(trial_charts(kind, seeds), RUN_TAG_LIMIT),
            **table_values(learner.settings, config),
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
        verdict = verdict_of(self.kind, final) if outcome != "failed" else ""
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
            plot_curve(path, title, np.asarray(steps, np.float64), lines, words(kind).figure_label,
                       kind.no_learning, words(kind).no_learning_text)  # fmt: skip
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
