"""Records: every read and write of a study's MLflow store. The experiment and the launches'
runs (``study``), each trial's run (``trial``), a run's final numbers (``finals``), what the
UI shows on first load and the descriptions that state the outcome (``view``), and the tags
that name it all (``tags``). The words and figures come from ``study.present``."""

from study.records.finals import add_finals, log_finals, read_finals
from study.records.study import (
    Tracking,
    history,
    latest_launch,
    mark_interrupted,
    ours,
    reconcile,
    start_study,
)
from study.records.trial import TrialLogger
from study.records.view import browse_hint, runs_page, share_view, summarise

__all__ = ["Tracking", "TrialLogger", "add_finals", "browse_hint", "history", "latest_launch",
           "log_finals", "mark_interrupted", "ours", "read_finals", "reconcile", "runs_page",
           "share_view", "start_study", "summarise"]  # fmt: skip
