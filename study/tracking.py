"""MLflow records of a study: one experiment per study, one parent run per launch (created by
the driver), one child run per trial (created by the trial, tagged with its parent).

Everything a trial logs goes through ``MlflowClient`` batches: parameters once, the learning
curve of each chunk in one ``log_batch``, the final metrics and the status at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

STATUS_TAG = "ccn.status"  # finished, stopped_early, diverged or failed


@dataclass(frozen=True)
class Tracking:
    """Where a trial logs: passed to trials by value (plain strings, picklable)."""

    uri: str
    experiment_id: str
    parent_run_id: str


def start_study(uri: str, experiment: str, artifact_location: str, tags: dict[str, str]):
    """Create (or find) the experiment and start the launch's parent run; returns Tracking."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        experiment_id = client.create_experiment(experiment, artifact_location=artifact_location)
    else:
        experiment_id = found.experiment_id
    parent = client.create_run(
        experiment_id, tags={"mlflow.runName": f"launch-{int(time.time())}", **tags}
    )
    return Tracking(uri, experiment_id, parent.info.run_id)


class TrialLogger:
    """One trial's child run; ``run_id`` survives checkpoints so a resumed trial reuses it."""

    def __init__(self, tracking: Tracking, run_id: str | None, name: str, tags: dict[str, str],
                 params: dict[str, Any]) -> None:  # fmt: skip
        self.client = MlflowClient(tracking.uri)
        if run_id is None:
            run = self.client.create_run(
                tracking.experiment_id,
                tags={"mlflow.parentRunId": tracking.parent_run_id, "mlflow.runName": name,
                      STATUS_TAG: "running", **tags},
            )  # fmt: skip
            self.run_id = run.info.run_id
            self.client.log_batch(
                self.run_id, params=[Param(k, str(v)[:500]) for k, v in sorted(params.items())]
            )
        else:
            self.run_id = run_id

    def log_curve(self, points: list[tuple[int, dict[str, float]]]) -> None:
        now = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), now, step)
            for step, values in points
            for key, value in values.items()
        ]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def plot_curve(self, title: str) -> None:
        """Log the learning curve recorded so far as ``learning_curve.png``."""
        import tempfile

        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        history = self.client.get_metric_history(self.run_id, "msre_windowed_curve")
        if not history:
            return
        steps = [m.step for m in history]
        values = [m.value for m in history]
        fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
        ax.plot(steps, values, lw=1.5)
        ax.set_xlabel("steps")
        ax.set_ylabel("windowed MSRE (mean over seeds)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        with tempfile.TemporaryDirectory() as d:
            path = f"{d}/learning_curve.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            self.client.log_artifact(self.run_id, path)

    def finish(self, status: str, final: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(f"final_{k}", float(v), now, 0) for k, v in final.items()],
            tags=[RunTag(STATUS_TAG, status)],
        )
        self.client.set_terminated(self.run_id, "FINISHED" if status != "failed" else "FAILED")
