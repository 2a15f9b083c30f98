"""ccn-study from Python: plan a study, run it, load its results.

What ``python -m study.launch`` does, without a command line::

    from study import api

    plan = api.plan_study("columnar", "trace_conditioning", smoke=True, runs_dir="runs")
    api.run_study(plan)  # 0 when every trial finished
    trials = api.load_results(plan)  # a pandas DataFrame, one row per configuration

:func:`plan_study` checks every input before anything starts (a one-line ValueError names
the option, as the command line spells it); its keywords are ``study.launch``'s options as
plain values (``trials``, ``seeds``, ``steps``, ``budget_flops``, ``fixed={"alpha": 1e-3}``,
``ranges={"lambda_": (0.5, 1.0)}``, ``pack=4`` or None, ``tracking_uri``, ``address``,
...). :func:`evaluation` turns a plan into the evaluation of given configurations on given
seeds (what ``study.compare`` runs on fresh seeds).
:func:`run_study` runs a plan on Ray Tune, Optuna and MLflow (on the Ray this process already
runs, or on one it starts and stops: :func:`ray_session` holds one Ray for several studies).
:func:`load_results` reads any study's trials back from MLflow.
:func:`plan_comparison` plans ``study.compare``: a tuning study of each family at matched
compute, then the evaluation of their picks on fresh seeds (``fixed={"columnar": {"alpha":
1e-3}}`` per family, ``eval_seeds=30`` or a list); :func:`run_comparison` runs it and writes
its report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from study.compare.comparison import Comparison, plan_comparison, run_comparison
from study.orchestration.local_ray import session as ray_session
from study.orchestration.plan import Plan, evaluation_plan, make_plan
from study.tasks import DEFAULT_TASK

__all__ = [
    "Comparison",
    "Plan",
    "evaluation",
    "load_results",
    "plan_comparison",
    "plan_study",
    "ray_session",
    "run_comparison",
    "run_study",
]


def plan_study(space: str = "hybrid", task: str = DEFAULT_TASK, **options: Any) -> Plan:
    """The plan of a study of the learner family ``space`` on ``task``; ``options`` are
    ``study.launch``'s, by their Python names (``study.orchestration.plan.make_plan``)."""
    return make_plan(space, task, **options)


def evaluation(plan: Plan, configs: list[dict[str, Any]], seeds: list[int],
               role: str = "eval", name: str | None = None) -> Plan:  # fmt: skip
    """``plan`` made to run ``configs`` (each a search space's configuration: ``learner``,
    sizes and hyperparameters) on ``seeds``, with no search, as a study of its own (``name``,
    default ``NAME-eval`` after the plan's); its runs tagged ``ccn.role`` ``role``."""
    return evaluation_plan(plan, configs, seeds, role, name)


def run_study(plan: Plan) -> int:
    """Run ``plan``: 0 when every trial finished, 130 when interrupted (``dataclasses.replace
    (plan, resume=True)`` continues it), 2 when refused or failed (the reason on stderr)."""
    from study.orchestration.execute import execute

    return execute(plan)


def load_results(study: Plan | str, tracking_uri: str | None = None, runs_dir: str | Path = "runs",
                 curves: bool = True):  # fmt: skip
    """A study's configurations as a pandas DataFrame, one row per configuration run (every
    trial of a search, every configuration of a pack): ``experiment``, ``run_id``,
    ``learner``, ``status``, ``role``, ``seeds``, each parameter of its configuration (numbers
    as numbers), each final metric (``final_*``; per seed in ``final_seeds``, the objective's),
    and with ``curves`` its learning curve as a DataFrame (``curve``: one row per logged step,
    the mean over seeds and a column per seed). ``study`` is a plan or a study's name (then
    ``tracking_uri``, default the SQLite store in ``runs_dir``). A one-line ValueError names an
    unknown study and lists those that exist."""
    import pandas as pd

    from study.records.store import Store
    from study.report.load import load_trials

    if isinstance(study, Plan):
        name, uri = study.name, study.tracking_uri
    else:
        name = study
        uri = tracking_uri or f"sqlite:///{Path(runs_dir).resolve() / 'mlflow.db'}"
    trials, _ = load_trials(uri, [name])
    store = Store(uri)
    rows = []
    for t in trials:
        row: dict[str, Any] = dict(experiment=t.experiment, run_id=t.run_id, learner=t.learner,
                                   status=t.status, role=t.role, seeds=list(t.seeds))  # fmt: skip
        row.update({k: _number(v) for k, v in sorted(t.params.items())})
        row.update({k: v for k, v in sorted(t.metrics.items())
                    if k.startswith("final_") and "_seed" not in k})  # fmt: skip
        row["final_seeds"] = t.seed_finals.tolist()
        if curves:
            row["curve"] = _curve(store, t)
        rows.append(row)
    return pd.DataFrame(rows)


def _number(text: str) -> Any:
    """An MLflow parameter (text) as the number or flag it spells, else as it is."""
    for kind in (int, float):
        try:
            return kind(text)
        except (TypeError, ValueError):
            pass
    return {"True": True, "False": False, "None": None}.get(text, text)


def _curve(store: Any, trial: Any):
    """The trial's learning curve: ``step`` as the index, ``mean`` and ``seed{s}`` columns."""
    import pandas as pd

    key = trial.measure.curve
    columns = {"mean": key, **{f"seed{s}": f"{key}_seed{s}" for s in trial.seeds}}
    data = {}
    for column, metric in columns.items():
        points = store.history(trial.run_id, metric)
        data[column] = pd.Series({m.step: m.value for m in points}, dtype=float)
    frame = pd.DataFrame(data)
    frame.index.name = "step"
    return frame.sort_index()
