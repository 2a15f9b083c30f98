"""What MLflow's UI shows of a study: the page the commands link to, the runs table's columns
on first load, each trial's name and colour, its learning-curve figure, and descriptions that
state the outcome.

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
import os
import time
import warnings
from typing import Any

import numpy as np

from study.cli import redact

# Reading a run's finals.json (here and in tracking) is a file copy, not a download worth a
# progress bar on the console.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

VIEW_KEY = "results"
SHARED_VIEW_TAG = "mlflow.sharedViewState."
COLOUR_TAG = "mlflow.runColor"  # the run's colour in the UI's table and charts
LEARNED_TAG = "learned"  # "yes" or "no": the trial's verdict, a column of the runs table
ROLE_TAG = "ccn.role"
RUN_NAME = "attributes.`Run Name`"  # the runs table's column ids: attributes, metrics, ...

# Twenty colours told apart at a glance (Sasha Trubetskoy's list, reordered so that any
# first few are far apart): trial i of a study gets PALETTE[i % 20].
PALETTE = (
    "#e6194b", "#4363d8", "#3cb44b", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324",
    "#000075", "#bfef45", "#800000", "#469990", "#ffe119", "#808000", "#dcbeff", "#fabed4",
    "#aaffc3", "#ffd8b1", "#a9a9a9", "#000000",
)  # fmt: skip


def colour(index: int) -> str:
    """The colour of a study's ``index``-th trial (0-based)."""
    return PALETTE[index % len(PALETTE)]


def place(trial_id: str, pack: tuple[int, int] | None, optuna_trial: int | None) -> int | None:
    """A configuration's place in its study, for its colour: its Optuna trial's number in a
    packed search, else its Tune trial's (a grid's ``ID_00003``; times the pack's size, plus
    its index in it); None when neither says (a search's Tune ids are random)."""
    if optuna_trial is not None:
        return optuna_trial
    tail = trial_id.rsplit("_", 1)[-1]
    if not tail.isdigit():
        return None
    return int(tail) * pack[1] + pack[0] if pack else int(tail)


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


def short(x: float) -> str:
    """``0.99`` as ``.99``, ``1e-3`` as ``1e-3``, ``4.2e-4`` as ``4.2e-4``: the fewest
    characters that keep the value a reader compares."""
    if x != 0 and abs(x) < 0.01:
        mantissa, exponent = f"{float(x):.1e}".split("e")
        return f"{mantissa.removesuffix('.0')}e{int(exponent)}"
    text = f"{x:.3g}"
    return text[1:] if text.startswith("0.") else text


def run_name(settings: dict[str, Any], config: dict[str, Any]) -> str:
    """A trial's run name: its shape and key hyperparameters, short enough for the runs
    table's default column (its experiment names the family): ``20:4 a=1e-3 l=.99``
    (columns:per stage), ``7 a=3e-4 l=0``, ``h8 k=5 a=1e-3 l=.9`` (hidden units,
    truncation)."""
    shape = ""
    if "per_stage" in settings:  # columns
        n, per = settings["n_features"], settings["per_stage"]
        shape = str(n) if per == n else f"{n}:{per}"
    elif "n_features" in settings:  # hidden units of a dense LSTM
        shape = f"h{settings['n_features']}"
        shape += f" k={settings['truncation']}" if "truncation" in settings else ""
        shape += f" x{settings['layers']}" if settings.get("layers", 1) > 1 else ""
    parts = [shape]
    if isinstance(config.get("alpha"), int | float):
        parts.append(f"a={short(float(config['alpha']))}")
    if isinstance(config.get("lambda_"), int | float):
        parts.append(f"l={short(float(config['lambda_']))}")
    return " ".join(p for p in parts if p)


# -- the runs table -------------------------------------------------------------------------


def headline(kind: Any, final: dict[str, float]) -> dict[str, float]:
    """The few final numbers worth a column and a chart, from a configuration's last report
    ``final``: the verdict's measure (mean over seeds, ``_ci95`` its 95% half-width), whether
    it learned (1 or 0), and the objective; the rest of ``final`` goes to ``finals.json``."""
    prefix = f"{kind.verdict_key}_seed"
    values = np.asarray([v for k, v in final.items() if k.startswith(prefix)], np.float64)
    out = {}
    if values.size:
        mean, half, learned = kind.learned(values)
        mean = final.get(kind.verdict_key, mean)  # the kind's own: the worst once diverged
        out = {kind.verdict_key: mean, f"{kind.verdict_key}_ci95": half,
               "learned": float(learned)}  # fmt: skip
    if kind.metric in final:
        out[kind.metric] = final[kind.metric]
    # 4 significant digits, as a table shows them; finals.json keeps every digit
    return {k: float(f"{float(v):.4g}") for k, v in out.items() if v is not None}


def columns(kind: Any, params: list[str]) -> list[str]:
    """The runs table's columns (MLflow's column ids): the result, its interval, the verdict,
    the objective, then the parameters ``params``."""
    metric = [f"final_{kind.verdict_key}", f"final_{kind.verdict_key}_ci95"]
    if kind.metric != kind.verdict_key:
        metric.append(f"final_{kind.metric}")
    shown = [f"metrics.`{m}`" for m in metric[:2]] + [f"tags.`{LEARNED_TAG}`"]
    return shown + [f"metrics.`{m}`" for m in metric[2:]] + [f"params.`{p}`" for p in params]


def view_state(kind: Any, params: list[str]) -> dict[str, Any]:
    """The shared view of a study's experiment: trials only (not the launches' runs), best
    first by the verdict's measure, its columns wide enough for their names, and every trial
    in the charts (MLflow's default compares the first 10)."""
    shown = columns(kind, params)
    return {
        "orderByKey": f"metrics.`final_{kind.verdict_key}`",
        "orderByAsc": not kind.higher_better,
        "searchFilter": f"tags.`{ROLE_TAG}` != 'launch'",
        "selectedColumns": shown,
        # the results first, then when and how long; each column as wide as its name
        "columnOrder": [RUN_NAME, *shown, "runDateAndNestInfo", "duration"],
        "columnWidths": {RUN_NAME: 200, **dict.fromkeys(shown, 95), shown[0]: 170},
        "runsHiddenMode": "SHOW_ALL",
        "hideEmptyCharts": True,
    }


def share_view(client: Any, experiment_id: str, kind: Any, params: list[str]) -> None:
    """Store the experiment's shared view (:func:`view_state`) under :data:`VIEW_KEY`."""
    client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG + VIEW_KEY,
                              json.dumps(view_state(kind, params)))  # fmt: skip


def runs_page(server: str, experiment_id: str) -> str:
    """The experiment's runs page in model-training mode, in its shared view."""
    return (f"{server}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}"
            "&workflowType=machine_learning")  # fmt: skip


def browse_hint(uri: str, experiment_id: str) -> str:
    """How to see the study's trials in MLflow's UI: its command and the page that lists
    them with their results, best first."""
    if uri.startswith(("http://", "https://")):
        return f"MLflow: {runs_page(uri.rstrip('/'), experiment_id)}"
    return (f"MLflow: run `mlflow ui --backend-store-uri {redact(uri)}`, then open "
            f"{runs_page('http://127.0.0.1:5000', experiment_id)}")  # fmt: skip


# -- descriptions that state the outcome ---------------------------------------------------


def outcome(kind: Any, runs: list[Any], client: Any = None) -> tuple[Any, str]:
    """The best of a study's trial runs ``runs`` by the verdict's measure and a sentence
    saying it: its value with its 95% interval, learned or not, and how many learned. With
    ``client``, the value and interval come from the best run's ``finals.json`` with every
    digit, so the sentence rounds as the trial's own does (the metrics keep 4 digits)."""
    key = f"final_{kind.verdict_key}"
    scored = [r for r in runs if np.isfinite(r.data.metrics.get(key, np.nan))]
    if not scored:
        return None, f"no trial has a {kind.verdict_text} yet."
    best = (max if kind.higher_better else min)(scored, key=lambda r: r.data.metrics[key])
    m = dict(best.data.metrics)
    if client is not None:
        from study.orchestration.tracking import read_finals  # (tracking imports this module)

        exact = read_finals(client, best.info.run_id, best.data.tags)
        seeds_of = [v for k, v in exact.items() if k.startswith(f"{key}_seed")]
        if seeds_of:  # unreadable or absent: the rounded metrics say it
            mean, half, _ = kind.learned(np.asarray(seeds_of, np.float64))
            m[key], m[key + "_ci95"] = exact.get(key, mean), half
    seeds = len([s for s in best.data.tags.get("seeds", "").split(",") if s])
    learned = best.data.tags.get(LEARNED_TAG) == "yes"
    n_learned = sum(r.data.tags.get(LEARNED_TAG) == "yes" for r in runs)
    verdict = kind.conclusion(learned)
    return best, (
        f"best trial **{best.info.run_name}**: {kind.verdict_text} {m[key]:.3f} ± "
        f"{m.get(key + '_ci95', np.nan):.3f} (95% t-interval of the mean over {seeds} seeds; "
        f"{kind.no_learning_text}): {verdict}. {n_learned} of {len(runs)} trials learned."
    )


def summarise(client: Any, tracking: Any, kind: Any, description: str) -> str:
    """After a launch: the outcome (:func:`outcome`, over every trial of the experiment) as
    the experiment's description (after ``description``, unless someone wrote their own) and
    the launch's run's (with the best trial's numbers as its metrics). Returns the sentence."""
    from mlflow.entities import Metric

    runs = client.search_runs([tracking.experiment_id], f"tags.`{ROLE_TAG}` != 'launch'",
                              max_results=50_000)  # fmt: skip
    best, said = outcome(kind, runs, client)
    recolour(client, runs)
    note = "mlflow.note.content"
    exp = client.get_experiment(tracking.experiment_id)
    current = exp.tags.get(note, "")
    if not current or current.startswith("ccn-study:"):
        about = description.removeprefix("ccn-study: ")
        page = runs_page("", tracking.experiment_id).lstrip("/")
        client.set_experiment_tag(tracking.experiment_id, note,
                                  f"ccn-study: **Result**: {said} [Every trial, best first]"
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


# -- a trial's figure -----------------------------------------------------------------------


def step_label(x: float, _pos: Any = None) -> str:
    """``500000`` as ``0.5M``, ``2000000`` as ``2M``, ``20000`` as ``20k``."""
    if abs(x) >= 1e5:
        return f"{x / 1e6:g}M"
    if abs(x) >= 1e3:
        return f"{x / 1e3:g}k"
    return f"{x:g}"


def plot_curve(path: str, title: str, steps: np.ndarray, per_seed: dict[int, np.ndarray],
               label: str, no_learning: float | None, no_learning_text: str) -> None:  # fmt: skip
    """The learning curve of one configuration as a PNG at ``path`` (1500 px wide): each
    seed's line, labelled, their mean, the 95% t-interval of that mean over seeds (a band
    that one seed may lie outside), and a dashed line at ``no_learning``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    from scipy import stats

    fig, ax = plt.subplots(figsize=(10, 5.2), layout="constrained")
    values = np.asarray(list(per_seed.values()), np.float64).reshape(len(per_seed), -1)
    for seed, line in per_seed.items():
        ax.plot(steps, line, lw=0.8, alpha=0.6, label=f"seed {seed}")
    if values.shape[0]:
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(values, axis=0)
            n = np.sum(np.isfinite(values), axis=0)
            half = np.where(n >= 2, np.nanstd(values, axis=0, ddof=1) / np.sqrt(n), np.nan)
            half = half * stats.t.ppf(0.975, np.maximum(n - 1, 1))
        if values.shape[0] >= 2:
            band = f"95% interval of the mean over {values.shape[0]} seeds"
            ax.fill_between(steps, mean - half, mean + half, alpha=0.2, color="k", lw=0,
                            label=band)  # fmt: skip
        ax.plot(steps, mean, lw=2.2, color="k", label="mean over seeds")
    if no_learning is not None:
        ax.axhline(no_learning, color="tab:red", ls="--", lw=1.2, label=no_learning_text)
    ax.xaxis.set_major_formatter(FuncFormatter(step_label))
    ax.set_xlabel("environment steps", fontsize=12)
    ax.set_ylabel(label, fontsize=12)
    ax.set_title(title, fontsize=12)
    ax.tick_params(labelsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="best", ncol=2 if len(per_seed) > 6 else 1)
    fig.savefig(path, dpi=150)
    plt.close(fig)
