"""The tags and artifact names of a study's MLflow records: what the records room writes and
every reader of a study asks for. MLflow's own keys are marked so; the rest are this
platform's (``ccn.``)."""

from __future__ import annotations

# running, finished, stopped_early, diverged, failed, or interrupted (until --resume)
STATUS_TAG = "ccn.status"
# MLflow's run status of each outcome; FINISHED for the others.
RUN_STATUS = {"failed": "FAILED", "stopped_early": "KILLED", "interrupted": "KILLED"}
# The outcomes a configuration reaches by its steps alone: a run closed with one of them is
# complete, and running its steps again (a launch killed before Tune recorded the trial as
# done) would only repeat the same numbers.
SETTLED = ("finished", "diverged")
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
COLOUR_TAG = "mlflow.runColor"  # the run's colour in the UI's table and charts
LEARNED_TAG = "learned"  # "yes" or "no": the trial's verdict, a column of the runs table
# Beside it, what a reader compares, rounded (study.present.names.table_values): the family,
# the shape, the step size and lambda (their exact values are the run's params)
TABLE = ("learner", "size", "alpha", "lambda")
# The experiment's shared view of the runs table: its state as JSON under SHARED_VIEW_TAG+KEY
SHARED_VIEW_TAG, VIEW_KEY = "mlflow.sharedViewState.", "results"
# A trial's own Model metrics page: its chart state as JSON (study.records.view.trial_charts)
RUN_CHARTS_TAG = "ccn.run_charts"
FINALS = "finals.json"  # every final number of a run (per seed, timings), as an artifact
FINALS_TAG = "ccn.finals"  # names that artifact on runs that have one
