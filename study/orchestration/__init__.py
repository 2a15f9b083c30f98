"""Orchestration: a study's plan (checked before anything starts), its run on Ray Tune with
Optuna (``execute``), the trainable each trial runs, the local Ray session, the study's lock
and its stores, and what the console prints while it runs. It records through
``study.records`` and never calls MLflow itself (``tests/test_layers.py``).

Public names, each imported from its module on first use (Ray loads only with a study);
``execute.execute`` and ``trainable.trainable`` are reached through their modules.
"""

from __future__ import annotations

from study import lazy_exports

_WHERE = {
    "Plan": "plan", "make_plan": "plan",
    "final_metrics": "trainable",
    "session": "local_ray", "Unreachable": "local_ray",
    "StudyLock": "lock",
    "Progress": "console", "trial_label": "console",
    "PackSearch": "pack_search",
}  # fmt: skip
__all__, __getattr__ = lazy_exports(__name__, _WHERE)
