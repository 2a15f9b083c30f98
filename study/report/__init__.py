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

import os
from pathlib import Path
from typing import Any

from study import stores
from study.cli import Parser, fail, writable_folder
from study.report.figures import (
    _colors,
    plot_compute,
    plot_curves,
    plot_sensitivity,
)
from study.report.load import (
    _learners,
    best_per_learner,
    load_trials,
    measure_for,
    summary_rows,
)
from study.report.page import _write_csv, table_text, trial_rows, write_html


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
