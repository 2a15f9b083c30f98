"""A run's final numbers: the few worth a column as metrics, the verdict as a tag, and every
number (per seed, timings) in its ``finals.json`` artifact."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, RunTag

from study.engine.kinds import TaskKind
from study.present import headline
from study.records.tags import FINALS, FINALS_TAG, LEARNED_TAG, STATUS_TAG

# Reading a run's finals.json is a file copy, not a download worth a progress bar.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def log_finals(client: Any, run_id: str, kind: TaskKind, final: dict[str, float],
               status: str | None = None) -> None:  # fmt: skip
    """Record a configuration's final numbers ``final`` (keys without ``final_``): the few of
    :func:`study.present.headline` as metrics (a column and a chart each) and the
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


def add_finals(client: Any, run_id: str, values: dict[str, float]) -> None:
    """Merge ``values`` into the run's ``finals.json``."""
    every = {**read_finals(client, run_id), **values}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / FINALS
        path.write_text(json.dumps(every, indent=1, sort_keys=True))
        client.log_artifact(run_id, str(path))


def read_finals(client: Any, run_id: str, tags: dict[str, str] | None = None,
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
