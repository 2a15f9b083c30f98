"""The engine: one configuration (or a pack of them) on every seed as one compiled program, its
statistics, and what its task kind makes of them. It knows nothing of Ray, Optuna or MLflow
(``tests/test_layers.py`` holds it to that).

Public names, each imported from its module on first use (JAX loads only with a program):
:class:`Record` and :class:`Summary` (``record``), the task kinds (``kinds``), :class:`TrialRun`
and :func:`finish` (``trial``), :func:`make_runner` (``loop``), packs (``pack``) and XLA's
threads (``threads``).
"""

from __future__ import annotations

from study import lazy_exports

_WHERE = {
    "Record": "record", "Summary": "record",
    "TaskKind": "kinds", "kind_of": "kinds", "PREDICTION": "kinds", "CLASSIFICATION": "kinds",
    "ATARI": "kinds", "KINDS": "kinds", "NORMALISED_CURVE": "kinds",
    "TrialRun": "trial", "Report": "trial", "finish": "trial",
    "make_runner": "loop", "BlockStats": "loop", "default_block": "loop", "check_steps": "loop",
    "members_of": "pack",
    "limit_xla_threads": "threads", "describe": "threads",
}  # fmt: skip
__all__, __getattr__ = lazy_exports(__name__, _WHERE)
