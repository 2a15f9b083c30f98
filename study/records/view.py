"""What a study writes for MLflow's UI: the page the commands link to, the runs table's
columns on first load, distinct colours, and descriptions that state the outcome (their
words and names come from ``study.present``).

MLflow 3's UI opens an experiment in its GenAI mode unless the link says
``workflowType=machine_learning``, and shows a run's metrics only in columns picked by hand.
It also loads a *shared view*: a JSON state stored as the experiment tag
``mlflow.sharedViewState.KEY`` and named by ``viewStateShareKey=KEY`` in the link, holding the
sort, the search filter, the visible columns and their widths and how many runs the charts
compare. :func:`share_view` stores one (``results``) that shows every trial's result,
verdict and key parameters, best first, and :func:`runs_page` links to it.
"""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

import numpy as np

from study.cli import redact, sqlite_file
from study.present import colour, outcome_sentence
from study.present.names import PALETTE, headline_keys
from study.present.words import words
from study.records.finals import read_finals
from study.records.tags import (
    COLOUR_TAG,
    LEARNED_TAG,
    NOTE_TAG,
    ROLE_TAG,
    SHARED_VIEW_TAG,
    TABLE,
    VIEW_KEY,
)
from study.records.ui_app import APP_NAME

RUN_NAME = "attributes.`Run Name`"  # the runs table's column ids: attributes, metrics, ...


def recolour(client: Any, runs: list[Any]) -> int:
    """Give ``runs`` (a study's trials) distinct colours, in the order they started, when two
    of the first 20 share one (trials that started at the same moment counted the same runs
    before them). Returns how many runs changed colour."""
    ordered = sorted(runs, key=lambda r: r.info.start_time)
    first = [r.data.tags.get(COLOUR_TAG) for r in ordered[: len(PALETTE)]]
    if len(set(first)) == len(first):
        return 0
    changed = 0
    for i, r in enumerate(ordered):
        if r.data.tags.get(COLOUR_TAG) != colour(i):
            client.set_tag(r.info.run_id, COLOUR_TAG, colour(i))
            changed += 1
    return changed


# what the table's rounded columns (TABLE) already show of a configuration's parameters
IN_TABLE = ("n_features", "per_stage", "truncation", "layers", "alpha", "lambda_")
WIDTHS = {LEARNED_TAG: 80, "learner": 100, "size": 70, "alpha": 80, "lambda": 70}


def columns(kind: Any, params: list[str]) -> list[str]:
    """The runs table's columns (MLflow's column ids): the result, its interval, the verdict,
    the family, shape, step size and lambda rounded (``TABLE``), the objective, then the
    parameters of ``params`` that those do not show."""
    metric = [f"final_{kind.verdict_key}", f"final_{kind.verdict_key}_ci95"]
    if kind.metric != kind.verdict_key:
        metric.append(f"final_{kind.metric}")
    shown = [f"metrics.`{m}`" for m in metric[:2]] + [f"tags.`{LEARNED_TAG}`"]
    shown += [f"tags.`{t}`" for t in TABLE]
    return (shown + [f"metrics.`{m}`" for m in metric[2:]]
            + [f"params.`{p}`" for p in params if p not in IN_TABLE])  # fmt: skip


SECTION = "ccn-results"  # the chart view's one section (its uuid)
EVERY = 1000  # runs a chart compares: every trial (MLflow's default is the first 10)


def _chart(uuid: str, kind_of_chart: str, **fields: Any) -> dict[str, Any]:
    """A chart of MLflow's chart view, as its UI stores one in a view state."""
    return {"uuid": uuid, "type": kind_of_chart, "metricSectionId": SECTION, "deleted": False,
            "isGenerated": False, "runsCountToCompare": EVERY, **fields}  # fmt: skip


def _removed(keys: list[str]) -> list[dict[str, Any]]:
    """A removed chart for each metric of ``keys``: its name is all it needs (MLflow adds no
    chart of its own for a metric one names)."""
    return [{"uuid": f"h{i}", "type": "LINE", "metricKey": key, "metricSectionId": SECTION,
             "deleted": True, "isGenerated": True} for i, key in enumerate(keys)]  # fmt: skip


def line_chart(uuid: str, key: str, name: str, log: bool) -> dict[str, Any]:
    return _chart(uuid, "LINE", metricKey=key, selectedMetricKeys=[key], displayName=name,
                  lineSmoothness=0, xAxisScaleType="linear", scaleType="log" if log else "linear",
                  xAxisKey="step", yAxisKey="metric", yAxisExpressions=[], ignoreOutliers=False,
                  useGlobalXaxisKey=True, useGlobalLineSmoothing=True, selectedXAxisMetricKey="",
                  range={})  # fmt: skip


def charts(kind: Any, searched: list[str], seeds: list[int]) -> dict[str, Any]:
    """The chart view: the figure's curve (prediction: the normalised MSRE, mean over seeds)
    of every trial on one chart, then the result against each parameter ``searched``; every
    other metric a trial logs (per-seed curves, the raw MSRE, the final numbers) is listed as
    a removed chart, which MLflow then does not draw by itself (it adds a chart for any
    metric no chart names)."""
    result = f"final_{kind.verdict_key}"
    label = words(kind).figure_label
    drawn = [line_chart("ccn-curve", kind.figure_curve, f"{label} of every trial (mean over "
                        "seeds)", kind.log and kind.figure_curve == kind.curve)]  # fmt: skip
    drawn += [_chart(f"ccn-{p}", "SCATTER", xaxis={"key": p, "type": "PARAM"},
                     yaxis={"key": result, "type": "METRIC"}, displayName=f"final {label} "
                     f"against {p}") for p in searched]  # fmt: skip
    curves = sorted({kind.curve, kind.figure_curve})
    # the seeds' curves last, seed by seed: those fitted() leaves out first
    hidden = [*(c for c in curves if c != kind.figure_curve),
              *(f"final_{k}" for k in headline_keys(kind)),
              *(f"{c}_seed{s}" for s in seeds for c in curves)]  # fmt: skip
    removed = _removed(hidden)
    section = {"uuid": SECTION, "name": "results", "display": True, "isReordered": True,
               "deleted": False, "isGenerated": False}  # fmt: skip
    return {"compareRunCharts": drawn + removed, "compareRunSections": [section],
            "isAccordionReordered": True}  # fmt: skip


def trial_charts(kind: Any, seeds: list[int]) -> dict[str, Any]:
    """A trial's own *Model metrics* page: its figure's curve (mean over seeds), that curve of
    each seed on one chart (MLflow titles a chart of several metrics by their names), and the
    raw curve (mean over seeds) when it differs, each with
    its full title; the final numbers (single values, which MLflow draws as one-bar charts:
    they are the runs table's columns) and the other per-seed curves are removed charts. The
    page's whole chart state, as MLflow's run page keeps it in the browser (the
    ``ccn-study`` app's page starts a run's page from it: ``study.records.ui_app``)."""
    said = words(kind)
    figure, raw = kind.figure_curve, kind.curve
    each = [f"{figure}_seed{s}" for s in seeds]
    drawn = [line_chart("ccn-curve", figure, f"{said.figure_label}: mean over seeds",
                        kind.log and figure == raw)]  # fmt: skip
    if each:
        drawn.append({**line_chart("ccn-seeds", each[0], f"{said.figure_label}: each seed",
                                   kind.log and figure == raw),
                      "selectedMetricKeys": each})  # fmt: skip
    if raw != figure:
        drawn.append(line_chart("ccn-raw", raw, f"{said.curve_label}: mean over seeds", kind.log))
    hidden = [*(f"final_{k}" for k in headline_keys(kind)), *each[1:],
              *(f"{raw}_seed{s}" for s in seeds if raw != figure)]  # fmt: skip
    removed = _removed(hidden)
    section = {"uuid": SECTION, "name": said.figure_label, "display": True,
               "isReordered": True, "deleted": False, "isGenerated": False}  # fmt: skip
    return {"compareRunCharts": drawn + removed, "compareRunSections": [section],
            "isAccordionReordered": True, "autoRefreshEnabled": True,
            "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0,
                                      "selectedXAxisMetricKey": ""}}  # fmt: skip


def view_state(kind: Any, params: list[str], seeds: list[int] | None = None,
               searched: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """The shared view of a study's experiment: trials only (not the launches' runs), best
    first by the verdict's measure, its columns wide enough for their names, and its chart
    view (:func:`charts`) comparing every trial (MLflow's default compares the first 10)."""
    shown = columns(kind, params)
    return {
        **charts(kind, params if searched is None else searched, seeds or []),
        "orderByKey": f"metrics.`final_{kind.verdict_key}`",
        "orderByAsc": not kind.higher_better,
        "searchFilter": f"tags.`{ROLE_TAG}` != 'launch'",
        "selectedColumns": shown,
        # the results first, then when and how long; each column as wide as its name
        "columnOrder": [RUN_NAME, *shown, "runDateAndNestInfo", "duration"],
        "columnWidths": {
            RUN_NAME: 200,
            **dict.fromkeys(shown, 95),
            shown[0]: 170,
            shown[1]: 120,
            **{f"tags.`{t}`": w for t, w in WIDTHS.items()},
        },
        "runsHiddenMode": "SHOW_ALL",
        "hideEmptyCharts": True,
    }


TAG_LIMIT = 20_000  # the longest experiment tag value MLflow stores, in characters
RUN_TAG_LIMIT = 8_000  # the longest run tag value


def fitted(state: dict[str, Any], limit: int = TAG_LIMIT) -> str:
    """``state`` as JSON within ``limit`` characters: with many seeds the removed charts of
    the last seeds' curves are left out (MLflow then draws those curves itself)."""
    charts = list(state.get("compareRunCharts", []))
    while True:
        text = json.dumps({**state, "compareRunCharts": charts}) if charts else json.dumps(state)
        if len(text) <= limit or not any(c["deleted"] for c in charts):
            return text
        last = max(i for i, c in enumerate(charts) if c["deleted"])
        charts = charts[:last] + charts[last + 1 :]


def share_view(client: Any, experiment_id: str, kind: Any, params: list[str],
               seeds: list[int] | None = None,
               searched: list[str] | None = None) -> None:  # fmt: skip
    """Store the experiment's shared view (:func:`view_state`) under :data:`VIEW_KEY`."""
    client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG + VIEW_KEY,
                              fitted(view_state(kind, params, seeds, searched)))  # fmt: skip


def runs_page(server: str, experiment_id: str) -> str:
    """The experiment's runs page in model-training mode, in its shared view."""
    return (f"{server}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}"
            "&workflowType=machine_learning")  # fmt: skip


def browse_hint(uri: str, experiment_id: str, short: bool = False) -> str:
    """How to see the study's trials in MLflow's UI: its command and the page that lists
    them with their results, best first (``short``: the page alone, for a comparison's
    stages, whose command says once at its end how to start the UI)."""
    if uri.startswith(("http://", "https://")) or short:
        server = redact(uri.rstrip("/")) if uri.startswith("http") else "http://127.0.0.1:5000"
        return f"MLflow: {runs_page(server, experiment_id)}"
    store = sqlite_file(uri)
    if store is not None and store.name == "mlflow.db":  # a runs folder's own store
        serve = f"python -m study.ui --runs-dir {shlex.quote(str(store.parent))}"
    else:
        serve = f"mlflow ui --app-name {APP_NAME} --backend-store-uri {redact(uri)}"
    return f"MLflow: run `{serve}`, then open {runs_page('http://127.0.0.1:5000', experiment_id)}"


# -- descriptions that state the outcome ---------------------------------------------------


def outcome(kind: Any, runs: list[Any], client: Any = None) -> tuple[Any, str]:
    """The best of a study's trial runs ``runs`` by the verdict's measure and a sentence
    saying it: its value with its 95% interval, learned or not, and how many learned. With
    ``client``, the value and interval come from the best run's ``finals.json`` with every
    digit, so the sentence rounds as the trial's own does (the metrics keep 4 digits)."""
    key = f"final_{kind.verdict_key}"
    scored = [r for r in runs if np.isfinite(r.data.metrics.get(key, np.nan))]
    if not scored:
        return None, f"no trial has a {words(kind).verdict_text} yet."
    best = (max if kind.higher_better else min)(scored, key=lambda r: r.data.metrics[key])
    m = dict(best.data.metrics)
    if client is not None:
        exact = read_finals(client, best.info.run_id, best.data.tags)
        seeds_of = [v for k, v in exact.items() if k.startswith(f"{key}_seed")]
        if seeds_of:  # unreadable or absent: the rounded metrics say it
            mean, half, _ = kind.learned(np.asarray(seeds_of, np.float64))
            m[key], m[key + "_ci95"] = exact.get(key, mean), half
    seeds = len([s for s in best.data.tags.get("seeds", "").split(",") if s])
    learned = best.data.tags.get(LEARNED_TAG) == "yes"
    n_learned = sum(r.data.tags.get(LEARNED_TAG) == "yes" for r in runs)
    return best, outcome_sentence(kind, best.info.run_name, m[key], m.get(key + "_ci95", np.nan),
                                  seeds, learned, n_learned, len(runs))  # fmt: skip


def summarise(tracking: Any, kind: Any, description: str) -> str:
    """After a launch: the outcome (:func:`outcome`, over every trial of the experiment) as
    the experiment's description (after ``description``, unless someone wrote their own) and
    the launch's run's (with the best trial's numbers as its metrics). Returns the sentence."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking.uri)
    runs = client.search_runs([tracking.experiment_id], f"tags.`{ROLE_TAG}` != 'launch'",
                              max_results=50_000)  # fmt: skip
    best, said = outcome(kind, runs, client)
    recolour(client, runs)
    note = NOTE_TAG
    exp = client.get_experiment(tracking.experiment_id)
    current = exp.tags.get(note, "")
    if not current or current.startswith("ccn-study:"):
        about = description.removeprefix("ccn-study: ")
        page = runs_page("", tracking.experiment_id).lstrip("/")
        # the first paragraph plain: MLflow's list of experiments shows it as typed
        plain = said.replace("**", "")
        client.set_experiment_tag(tracking.experiment_id, note,
                                  f"ccn-study: Result: {plain}\n\n[Every trial, best first]"
                                  f"({page}).\n\n{about}")  # fmt: skip
    parent = client.get_run(tracking.parent_run_id)
    before = parent.data.tags.get(note, "").split("\n\n", 1)[-1]
    client.set_tag(tracking.parent_run_id, note, f"**Result**: {said}\n\n{before}")
    if best is not None:
        now = int(time.time() * 1000)
        top = {f"best_{k.removeprefix('final_')}": v for k, v in best.data.metrics.items()
               if k.startswith(f"final_{kind.verdict_key}") or k == "final_learned"}  # fmt: skip
        client.log_batch(tracking.parent_run_id,
                         metrics=[Metric(k, float(v), now, 0) for k, v in top.items()])  # fmt: skip
        client.set_tag(tracking.parent_run_id, "best_trial", best.info.run_name)
    return said
