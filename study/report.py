"""``python -m study.report --experiment NAME[,NAME...]``: what MLflow recorded, as a report.

Reads the child runs (one per trial) of one or more MLflow experiments (studies), groups them
by learner, and writes into ``--out`` (default ``runs/reports/NAME``):

- ``summary.csv``: per learner, the best configuration (lowest final windowed MSRE among the
  trials that ran all their steps), its parameters and flops per step (the ledger), the final
  windowed MSRE mean and 95% t-interval over that trial's seeds, and steps per second;
- ``trials.csv``: every trial, with its status (diverged and failed trials listed apart);
- ``curves.csv``: the learning curve of each learner's best trial (mean and 95% half-width
  over seeds at every logged step);
- ``curves.png`` (learning curves of each learner's best trial, mean and 95% band over seeds,
  stage changes marked for constructive and hybrid learners), ``sensitivity.png`` (final
  MSRE against step size per learner, with intervals), ``compute.png`` (final MSRE against
  flops per step, one point per configuration);
- ``report.html``: all of it in one self-contained page (figures embedded).

The files are logged as artifacts (folder ``report``) of each experiment's latest parent run,
and the summary table is printed.
"""

from __future__ import annotations

import base64
import csv
import html
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from learners.families import ORDER
from study import stores
from study.cli import Parser, fail, writable_folder
from study.kinds import PREDICTION, TaskKind, kind_of
from study.stats import mean_ci
from study.tracking import PARENT_TAG, ROLE_TAG, STATUS_TAG


def measure_for(trials: list[Trial]) -> TaskKind:
    """The task kind of the trials' studies (its final value and curve are what the report
    compares): one kind per report."""
    kinds = {kind_of(t.task) for t in trials if t.task}
    if len(kinds) > 1:
        tasks = sorted({t.task for t in trials})
        raise ValueError(f"cannot compare classification and prediction studies in one report "
                         f"(tasks: {', '.join(tasks)})")  # fmt: skip
    return kinds.pop() if kinds else PREDICTION


@dataclass
class Trial:
    """One child run: a trial of a study."""

    run_id: str
    experiment: str
    learner: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    seeds: list[int]
    role: str = "tuning"
    seed_finals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    task: str = ""
    measure: TaskKind = PREDICTION

    @property
    def final(self) -> float:
        value = self.metrics.get(self.measure.final, self.measure.worst)
        if abs(value) >= sys.float_info.max:  # MLflow's SQL store keeps infinities so
            return math.copysign(math.inf, value)
        return value

    @property
    def alpha(self) -> float:
        return float(self.params.get("alpha", "nan"))

    @property
    def flops(self) -> float:
        return float(self.params.get("ledger_flops_per_step", "nan"))

    @property
    def n_params(self) -> float:
        return float(self.params.get("ledger_params", "nan"))

    def ci(self) -> tuple[float, float]:
        """Mean and 95% t half-width of the final value over the trial's seeds."""
        return mean_ci(self.seed_finals) if self.seed_finals.size else (self.final, math.nan)

    def normalised_ci(self) -> tuple[float, float]:
        """Mean and 95% t half-width over the seeds of the final normalised MSRE (ours over the
        best constant predictor's on the same window); NaN for classification or runs that
        predate it."""
        values = [self.metrics.get(f"final_nmsre_windowed_seed{s}", math.nan) for s in self.seeds]
        values = [math.inf if abs(v) >= sys.float_info.max else v for v in values]
        if self.measure.higher_better or not values or any(math.isnan(v) for v in values):
            return math.nan, math.nan
        return mean_ci(np.asarray(values))

    def learned(self) -> str:
        """``yes`` when the normalised MSRE is below 1 with 95% confidence, ``NO`` when it is
        not (a constant predicts as well), ``""`` when unknown (classification)."""
        mean, half = self.normalised_ci()
        if math.isnan(mean):
            return ""
        upper = mean + (half if math.isfinite(half) else 0.0)
        return "yes" if upper < 1.0 else "NO"

    def label(self) -> str:
        keys = ("alpha", "lambda_", "n_features", "per_stage", "truncation", "steps_per_stage")
        if self.measure.higher_better:  # a classifier keeps no eligibility: lambda is unused
            keys = tuple(k for k in keys if k != "lambda_")
        shown = []
        for k in keys:
            if k in self.params and self.params[k] not in ("None", ""):
                v = self.params[k]
                try:
                    v = f"{float(v):.3g}"
                except ValueError:
                    pass
                shown.append(f"{k}={v}")
        return ", ".join(shown)


def load_trials(tracking_uri: str, experiments: list[str]) -> tuple[list[Trial], dict[str, str]]:
    """Every child run of the named experiments, and each experiment's latest parent run id.

    Raises a one-line ValueError naming an unknown experiment and listing those that exist.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    trials: list[Trial] = []
    parents: dict[str, str] = {}
    for name in experiments:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            known = sorted(e.name for e in client.search_experiments() if e.name != "Default")
            raise ValueError(
                f"unknown experiment {name!r} in {tracking_uri}; experiments: "
                f"{', '.join(known) or '(none)'}"
            )
        runs = client.search_runs([exp.experiment_id], max_results=50_000)
        if not any(PARENT_TAG in r.data.tags for r in runs):
            raise ValueError(f"experiment {name!r} has no trial recorded yet: nothing to report")
        launches = [r for r in runs if PARENT_TAG not in r.data.tags]
        if launches:
            parents[name] = max(launches, key=lambda r: r.info.start_time).info.run_id
        for r in runs:
            tags = r.data.tags
            if PARENT_TAG not in tags:
                continue
            seeds = [int(s) for s in tags.get("seeds", "").split(",") if s]
            trials.append(
                Trial(
                    run_id=r.info.run_id,
                    experiment=name,
                    learner=tags.get("learner", "?"),
                    status=tags.get(STATUS_TAG, "unknown"),
                    params=dict(r.data.params),
                    metrics=dict(r.data.metrics),
                    seeds=seeds,
                    role=tags.get(ROLE_TAG, "tuning"),
                    task=tags.get("task", ""),
                )
            )
    measure = measure_for(trials)
    for t in trials:
        finals = np.array(
            [t.metrics.get(f"{measure.final}_seed{s}", np.nan) for s in t.seeds], np.float64
        )
        finals[np.abs(finals) >= sys.float_info.max] *= np.inf
        t.measure, t.seed_finals = measure, finals
    return trials, parents


def best_per_learner(trials: list[Trial]) -> dict[str, Trial]:
    """Per learner, the trial with the best final value (lowest MSRE, highest accuracy) among
    those that finished. Evaluation runs (``ccn.role`` = ``eval``) take precedence over
    tuning trials."""
    best: dict[str, Trial] = {}
    for learner in _learners(trials):
        done = [t for t in trials if t.learner == learner and t.status == "finished"]
        evals = [t for t in done if t.role == "eval"]
        pool = evals or done
        if pool:
            best[learner] = pool[0].measure.best(pool)
    return best


def _learners(trials: list[Trial]) -> list[str]:
    names = {t.learner for t in trials}
    return [n for n in ORDER if n in names] + sorted(names - set(ORDER))


def summary_rows(best: dict[str, Trial]) -> list[dict[str, Any]]:
    rows = []
    for learner, t in best.items():
        mean, half = t.ci()
        rows.append(
            {
                "learner": learner,
                "experiment": t.experiment,
                "configuration": t.label(),
                "params": int(t.n_params) if math.isfinite(t.n_params) else "",
                "flops_per_step": int(t.flops) if math.isfinite(t.flops) else "",
                "seeds": len(t.seeds),
                f"{t.measure.measure}_mean": mean,
                f"{t.measure.measure}_ci95": half,
                **_normalised_columns(t),
                "steps_per_s": t.metrics.get("final_steps_per_s", math.nan),
                "run_id": t.run_id,
            }
        )
    return rows


def _normalised_columns(t: Trial) -> dict[str, Any]:
    """``nmsre_mean``, ``nmsre_ci95`` and ``learned`` of a prediction trial (none for
    classification)."""
    if t.measure.higher_better:
        return {}
    mean, half = t.normalised_ci()
    return {"nmsre_mean": mean, "nmsre_ci95": half, "learned": t.learned()}


def curve_band(client, trial: Trial) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps, mean and 95% t half-width over seeds of a trial's learning curve."""
    for curve in (trial.measure.curve, trial.measure.old_curve):
        per_seed = []
        for s in trial.seeds:
            history = client.get_metric_history(trial.run_id, f"{curve}_seed{s}")
            per_seed.append({m.step: m.value for m in history})
        steps = sorted(set().union(*[set(h) for h in per_seed])) if per_seed else []
        if steps or client.get_metric_history(trial.run_id, curve):
            break
    if not steps:  # runs logged before per-seed curves: the mean only
        history = client.get_metric_history(trial.run_id, curve)
        steps = sorted(m.step for m in history)
        values = {m.step: m.value for m in history}
        return np.array(steps), np.array([values[s] for s in steps]), np.full(len(steps), np.nan)
    means, halves = [], []
    for step in steps:
        values = np.array([h[step] for h in per_seed if step in h])
        m, h = mean_ci(values)
        means.append(m)
        halves.append(h)
    return np.array(steps), np.array(means), np.array(halves)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def log_ticks(lo: float, hi: float) -> list[float]:
    """Where to label a log axis spanning [lo, hi]: numbers m x 10^k with m from the coarsest
    set of 1; 1, 3; 1, 2, 5; 1, 2, 3, 5, 7 that puts at least three labels in the span (a span
    too narrow for that gets evenly spaced round numbers), thinned to at most eight, so every
    axis is readable whatever its span."""
    if not (0 < lo < hi and math.isfinite(hi)):
        return []
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    ticks: list[float] = []
    for mantissas in ((1,), (1, 3), (1, 2, 5), (1, 2, 3, 5, 7)):
        ticks = [float(f"{m}e{k}") for k in range(k0, k1 + 1) for m in mantissas
                 if lo <= m * 10.0**k <= hi]  # fmt: skip
        if len(ticks) >= 3:
            break
    if len(ticks) < 3:  # a narrow span: evenly spaced round numbers, as on a linear axis
        from matplotlib.ticker import MaxNLocator

        values = MaxNLocator(nbins=4).tick_values(lo, hi)
        ticks = [float(f"{v:.6g}") for v in values if lo <= v <= hi and v > 0]
    while len(ticks) > 8:
        ticks = ticks[::2]
    return ticks


def _tick_label(value: float, _pos=None) -> str:
    if 1e-3 <= abs(value) < 1e5:
        return f"{value:,.6g}"
    mantissa, exponent = f"{value:.0e}".split("e")
    times = "" if mantissa == "1" else mantissa + r"\times"
    return f"${times}10^{{{int(exponent)}}}$"


def _finish_axes(ax, title: str, xlabel: str, ylabel: str) -> None:
    """Title, labels, grid and legend; a log axis labelled at readable numbers whatever its
    span (``log_ticks``); an empty plot says so."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    for axis, scale, (lo, hi) in ((ax.xaxis, ax.get_xscale(), ax.get_xlim()),
                                  (ax.yaxis, ax.get_yscale(), ax.get_ylim())):  # fmt: skip
        ticks = log_ticks(min(lo, hi), max(lo, hi)) if scale == "log" else []
        if ticks:
            axis.set_major_locator(FixedLocator(ticks))
            axis.set_major_formatter(FuncFormatter(_tick_label))
            axis.set_minor_formatter(NullFormatter())
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no finished trial to show", transform=ax.transAxes, ha="center")


def _colors(learners: list[str]) -> dict[str, Any]:
    cmap = _plt().get_cmap("tab10")
    return {name: cmap(i % 10) for i, name in enumerate(learners)}


def plot_curves(client, best: dict[str, Trial], colors, path: Path,
                m: TaskKind = PREDICTION) -> dict[str, Any]:  # fmt: skip
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    data = {}
    for learner, t in best.items():
        steps, mean, half = curve_band(client, t)
        data[learner] = (steps, mean, half)
        if not steps.size:
            continue
        ax.plot(
            steps, mean, color=colors[learner], lw=1.6, label=f"{learner} ({len(t.seeds)} seeds)"
        )
        if np.isfinite(half).any():
            ax.fill_between(steps, mean - half, mean + half, color=colors[learner], alpha=0.2, lw=0)
        sps = t.params.get("steps_per_stage")
        if learner in ("constructive", "hybrid") and sps and sps not in ("None", ""):
            for k in range(1, int(steps.max() // int(sps)) + 1):
                ax.axvline(k * int(sps), color=colors[learner], ls=":", lw=1, alpha=0.8)
    ax.set_yscale("log" if m.log else "linear")
    _finish_axes(ax, "Learning curves of each learner's best configuration (dotted: stage changes)",
                 "steps", f"{m.curve_label} (mean, 95% CI over seeds)")  # fmt: skip
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return data


def _finished(trials: list[Trial], learner: str, x: str) -> list[Trial]:
    """The learner's finished trials with a finite final value and a finite ``x`` attribute."""
    return [
        t
        for t in trials
        if t.learner == learner
        and t.status == "finished"
        and math.isfinite(getattr(t, x))
        and math.isfinite(t.final)
    ]


def plot_sensitivity(trials: list[Trial], colors, path: Path, m: TaskKind = PREDICTION) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    for learner in _learners(trials):
        pts = sorted(_finished(trials, learner, "alpha"), key=lambda t: t.alpha)
        if not pts:
            continue
        cis = [t.ci() for t in pts]
        x = [t.alpha for t in pts]
        y = [c[0] for c in cis]
        err = [0.0 if not np.isfinite(c[1]) else c[1] for c in cis]
        ax.errorbar(x, y, yerr=err, fmt="o", ms=4, capsize=2, color=colors[learner], label=learner)
    ax.set_xscale("log")
    ax.set_yscale("log" if m.log else "linear")
    _finish_axes(ax, "Step-size sensitivity: every finished trial", "step size alpha (log scale)",
                 f"{m.label} (mean, 95% CI)")  # fmt: skip
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_compute(trials: list[Trial], colors, path: Path, m: TaskKind = PREDICTION) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    for learner in _learners(trials):
        pts = _finished(trials, learner, "flops")
        if pts:
            ax.scatter([t.flops for t in pts], [t.final for t in pts], s=18,
                       color=colors[learner], label=learner)  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log" if m.log else "linear")
    _finish_axes(ax, f"{_sentence(m.label)} against compute: one point per configuration",
                 "flops per step per stream (ledger, log scale)",
                 f"{m.label} (mean over seeds)")  # fmt: skip
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _sentence(text: str) -> str:
    """``text`` with its first letter capitalised and the rest as it is ("MSRE" stays)."""
    return text[:1].upper() + text[1:]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return "inf" if value == math.inf else "-"
        return f"{value:.4g}"
    return str(value)


def table_text(rows: list[dict[str, Any]], name: str = "msre") -> str:
    extra = ("normalised", "learned") if rows and "learned" in rows[0] else ()
    cols = ("learner", "params", "flops_per_step", "seeds", name, *extra, "steps_per_s",
            "configuration")  # fmt: skip
    lines = []
    body = []
    for r in rows:
        msre = f"{r[f'{name}_mean']:.4g} ± {_fmt(r[f'{name}_ci95'])}"
        norm = [f"{_fmt(r['nmsre_mean'])} ± {_fmt(r['nmsre_ci95'])}", r["learned"]] if extra else []
        body.append([r["learner"], _fmt(r["params"]), _fmt(r["flops_per_step"]), str(r["seeds"]),
                     msre, *norm, _fmt(r["steps_per_s"]), r["configuration"]])  # fmt: skip
    widths = [
        max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(cols)
    ]
    lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    lines.append("  ".join("-" * w for w in widths))
    for b in body:
        lines.append("  ".join(v.ljust(w) for v, w in zip(b, widths, strict=True)))
    return "\n".join(lines)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        if not rows:
            return
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def trial_rows(trials: list[Trial]) -> list[dict[str, Any]]:
    sign = -1.0 if trials and trials[0].measure.higher_better else 1.0
    return [
        {
            "experiment": t.experiment,
            "learner": t.learner,
            "role": t.role,
            "status": t.status,
            t.measure.measure: t.final,
            **{k: v for k, v in _normalised_columns(t).items() if k != "nmsre_ci95"},
            "diverged_at_step": t.metrics.get("final_diverged_at_step", ""),
            "steps_done": t.metrics.get("final_steps_done", ""),
            "flops_per_step": t.params.get("ledger_flops_per_step", ""),
            "configuration": t.label(),
            "run_id": t.run_id,
        }
        for t in sorted(trials, key=lambda t: (t.learner, t.status != "finished", sign * t.final))
    ]


def _html_table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r[c]))}</td>" for c in cols) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_html(path: Path, title: str, summary: list[dict[str, Any]], trials: list[dict[str, Any]],
               figures: dict[str, Path], m: TaskKind = PREDICTION,
               notes: tuple[str, list[str]] | None = None) -> None:  # fmt: skip
    """The report page; ``notes`` = (heading, lines) adds a section after the summary."""
    ok = [r for r in trials if r["status"] in ("finished", "stopped_early", "running")]
    bad = [r for r in trials if r not in ok]
    figs = "".join(
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{html.escape(caption)}'
        f"</figcaption></figure>"
        for caption, p in figures.items()
    )
    normalised = [] if m.higher_better else ["nmsre_mean", "nmsre_ci95", "learned"]
    summary_cols = ["learner", "configuration", "params", "flops_per_step", "seeds",
                    f"{m.measure}_mean", f"{m.measure}_ci95", *normalised,
                    "steps_per_s"]  # fmt: skip
    trial_cols = ["experiment", "learner", "role", "status", m.measure,
                  *(["nmsre_mean", "learned"] if normalised else []), "steps_done",
                  "flops_per_step", "configuration"]  # fmt: skip
    unlearned = [r["learner"] for r in summary if r.get("learned") == "NO"]
    warning = (
        f'<p class="warn"><strong>Learned nothing a constant could not:</strong> '
        f"{html.escape(', '.join(unlearned))} (normalised MSRE not below 1 with 95% "
        f"confidence).</p>"
        if unlearned
        else ""
    )
    which = "highest" if m.higher_better else "lowest"
    bad_cols = ["experiment", "learner", "status", "diverged_at_step", "steps_done",
                "configuration", "run_id"]  # fmt: skip
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}
th {{ background: #f0f0f0; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }}
figcaption {{ font-size: 0.85em; color: #555; }}
.warn {{ background: #fde8e8; border-left: 4px solid #c0392b; padding: 0.5em 1em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(_sentence(m.label))}: mean and half-width of the 95% Student-t interval over
the seeds of each learner's best configuration ({which} mean among trials that ran all their
steps).{
        ""
        if m.higher_better
        else " Normalised MSRE: the windowed MSRE over that of the best "
        "constant predictor on the same steps (1: nothing learned); learned = below 1 with 95% "
        "confidence."
    }</p>
{warning}
<h2>Best configuration per learner</h2>
{_html_table(summary, summary_cols)}
{_notes_html(notes)}
<h2>Figures</h2>
{figs}
<h2>Every trial</h2>
{_html_table(ok, trial_cols)}
<h2>Diverged and failed trials ({len(bad)})</h2>
{_html_table(bad, bad_cols) if bad else "<p>None.</p>"}
<script>
// Self-check for a browser: records whether every figure decoded.
window.addEventListener("load", () => {{
  document.body.dataset.figures = [...document.images]
    .map((img) => img.complete && img.naturalWidth > 0).join(",");
}});
</script>
</body></html>
"""
    path.write_text(page)


def _notes_html(notes: tuple[str, list[str]] | None) -> str:
    if not notes:
        return ""
    heading, lines = notes
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return f"<h2>{html.escape(heading)}</h2><ul>{items}</ul>"


def make_report(tracking_uri: str, experiments: list[str], out: Path,
                log_artifacts: bool = True, notes=None) -> dict[str, Any]:  # fmt: skip
    """Write the report of ``experiments`` into ``out``; returns what it computed.

    ``notes(summary) -> (heading, lines)`` adds a section to the page (``study.compare``'s
    preset states the paper's orderings there)."""
    from mlflow.tracking import MlflowClient

    trials, parents = load_trials(tracking_uri, experiments)
    m = measure_for(trials)
    client = MlflowClient(tracking_uri)
    out.mkdir(parents=True, exist_ok=True)
    best = best_per_learner(trials)
    summary = summary_rows(best)
    rows = trial_rows(trials)
    colors = _colors(_learners(trials))
    figures = {
        "Learning curves": out / "curves.png",
        "Step-size sensitivity": out / "sensitivity.png",
        "Error against compute per step": out / "compute.png",
    }
    curves = plot_curves(client, best, colors, figures["Learning curves"], m)
    plot_sensitivity(trials, colors, figures["Step-size sensitivity"], m)
    plot_compute(trials, colors, figures["Error against compute per step"], m)
    _write_csv(out / "summary.csv", summary)
    _write_csv(
        out / "curves.csv",
        [
            {
                "learner": name,
                "step": int(step),
                f"{m.measure}_mean": float(v),
                f"{m.measure}_ci95": float(h),
            }  # fmt: skip
            for name, (steps, mean, half) in curves.items()
            for step, v, h in zip(steps, mean, half, strict=True)
        ],
    )
    _write_csv(out / "trials.csv", rows)
    write_html(out / "report.html", f"Report: {', '.join(experiments)}", summary, rows, figures, m,
               notes(summary) if notes else None)  # fmt: skip
    if log_artifacts:
        for run_id in parents.values():
            client.log_artifacts(run_id, str(out), artifact_path="report")
    return {"summary": summary, "trials": rows, "curves": curves, "best": best, "measure": m}


def main(argv: list[str] | None = None) -> int:
    p = Parser(
        prog="python -m study.report",
        description="Compare learners from what MLflow recorded: tables, figures, HTML.",
    )
    p.add_argument("--experiment", required=True,
                   help="MLflow experiment (study) name; several separated by commas")  # fmt: skip
    p.add_argument("--runs-dir", default="runs", help="folder of the embedded stores")
    p.add_argument("--tracking-uri", default=None, help="default SQLite under --runs-dir")
    p.add_argument("--out", default=None, help="default RUNS_DIR/reports/EXPERIMENT")
    args = p.parse_args(argv)
    # A server that accepts connections but does not answer: a few retries, not minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    try:
        names = [n.strip() for n in args.experiment.split(",") if n.strip()]
        if not names:
            raise ValueError(f"--experiment {args.experiment!r} names no experiment; allowed: "
                             f"one or more names separated by commas")  # fmt: skip
        runs = Path(args.runs_dir).expanduser().resolve()
        if args.tracking_uri is None:
            if not (runs / "mlflow.db").is_file():
                raise ValueError(
                    f"--runs-dir {args.runs_dir}: no MLflow store in it "
                    f"({runs / 'mlflow.db'}); give --runs-dir or --tracking-uri"
                )
            stores.check(f"sqlite:///{runs / 'mlflow.db'}", "--runs-dir", "mlflow", True)
        else:
            stores.check(args.tracking_uri, "--tracking-uri", "mlflow", must_exist=True)
        uri = args.tracking_uri or f"sqlite:///{runs / 'mlflow.db'}"
        out = Path(args.out) if args.out else runs / "reports" / "+".join(names)
        out = writable_folder(str(out), "--out" if args.out else "--runs-dir")
        result = make_report(uri, names, out)
    except ValueError as e:
        return fail(str(e))
    print(table_text(result["summary"], result["measure"].measure))
    unlearned = [r["learner"] for r in result["summary"] if r.get("learned") == "NO"]
    if unlearned:
        print(f"\nNOT LEARNED (normalised MSRE not below 1 with 95% confidence): "
              f"{', '.join(unlearned)}")  # fmt: skip
    bad = [r for r in result["trials"] if r["status"] in ("diverged", "failed")]
    if bad:
        print(f"\n{len(bad)} diverged or failed trial(s):")
        for r in bad:
            print(f"  {r['learner']} {r['status']}: {r['configuration']}")
    print(f"\nreport: {out.resolve() / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
