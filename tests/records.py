"""What a trial's run recorded in full: its metrics (the few headline numbers, rounded for
MLflow's table) overlaid with ``finals.json`` (every final number, every digit)."""

from __future__ import annotations

from study.records.finals import read_finals


def recorded(client, run) -> dict[str, float]:
    return {**run.data.metrics, **read_finals(client, run.info.run_id, run.data.tags)}
