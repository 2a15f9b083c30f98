"""Reading a study's records: :class:`Store` answers every question the commands, reports and
benchmarks ask of an MLflow store (experiments, runs, a launch, a curve, a run's finals), so
that no module outside this room calls MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from study.records.finals import read_finals
from study.records.study import client_of, history, latest_launch
from study.records.tags import PARENT_TAG, ROLE_TAG

EVERY = 50_000  # the most runs a study's search returns (MLflow pages them)


class Store:
    """The MLflow store at ``uri`` (a ``sqlite:///`` file or a server), read-only except for
    :meth:`terminate`."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.client = client_of(uri)

    def experiment(self, name: str) -> Any:
        """The experiment named ``name``, or None."""
        return self.client.get_experiment_by_name(name)

    def experiment_names(self, with_runs: bool = False) -> list[str]:
        """Every experiment's name but MLflow's ``Default``; with ``with_runs``, only those
        holding a run."""
        return sorted(
            e.name for e in self.client.search_experiments()
            if e.name != "Default" and (not with_runs or self.client.search_runs(
                [e.experiment_id], max_results=1))
        )  # fmt: skip

    def runs(self, experiment_id: str, where: str = "", limit: int = EVERY) -> list[Any]:
        """The experiment's runs matching the filter ``where`` (MLflow's search syntax)."""
        return self.client.search_runs([experiment_id], where, max_results=limit)

    def trials(self, experiment_id: str) -> list[Any]:
        """The experiment's trial runs (the child runs of its launches)."""
        return [r for r in self.runs(experiment_id) if PARENT_TAG in r.data.tags]

    def children(self, launch: Any, limit: int = EVERY) -> list[Any]:
        """The trial runs of one launch (its parent run ``launch``)."""
        return self.runs(launch.info.experiment_id,
                         f"tags.`{PARENT_TAG}` = '{launch.info.run_id}'", limit)  # fmt: skip

    def not_launches(self, experiment_id: str) -> list[Any]:
        """Every run of the experiment but its launches' parent runs."""
        return self.runs(experiment_id, f"tags.`{ROLE_TAG}` != 'launch'")

    def latest_launch(self, name: str) -> Any:
        """The parent run of the latest launch of the experiment named ``name``, or None."""
        found = self.experiment(name)
        return latest_launch(self.client, found.experiment_id) if found else None

    def history(self, run_id: str, key: str) -> list[Any]:
        """Every point of a run's metric ``key`` (``study.records.study.history``)."""
        return history(self.client, run_id, key)

    def finals(self, run_id: str, tags: dict[str, str] | None = None,
               runs: Path | None = None) -> dict:  # fmt: skip
        """A run's ``finals.json`` (``study.records.finals.read_finals``)."""
        return read_finals(self.client, run_id, tags, runs)

    def terminate(self, run_id: str, status: str) -> None:
        """Close a run with MLflow's ``status`` (FINISHED, KILLED or FAILED)."""
        self.client.set_terminated(run_id, status)


def quiet() -> None:
    """MLflow's progress logs (store creation, schema updates) are not the user's business on
    a study's console; its warnings still show."""
    import logging

    import mlflow  # noqa: F401 - it sets its loggers' level when imported

    logging.getLogger("mlflow").setLevel(logging.WARNING)
