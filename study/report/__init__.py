"""``python -m study.report --experiment NAME[,NAME...]``: what MLflow recorded, as a report.

Reads the child runs (one per trial) of one or more MLflow experiments (studies), groups them
by learner, and writes into ``--out`` (default ``runs/reports/NAME``):

- ``summary.csv``: per learner, its pick (lowest final windowed MSRE, or highest held-out
  accuracy, among the trials that ran all their steps; an evaluation run on fresh seeds,
  ``ccn.role=eval``, where there is one), its parameters and flops per step (the ledger), the
  final value's mean and 95% Student-t half-width over the seeds, the normalised MSRE with
  its 95% BCa bootstrap interval, median and IQM, the same pick as the tuning seeds saw it
  (``same_seeds_*``), and steps per second;
- ``trials.csv``: every trial, with its status (diverged and failed trials listed apart);
- ``curves.csv``: the learning curve of each learner's pick (mean and 95% t half-width over
  seeds at every logged step; normalised MSRE where the runs logged it per seed);
- ``curves.png`` (those curves, a line at the best constant predictor and dotted lines
  where each pick's stages start), ``sensitivity.png`` (final value against step size, one
  line per family and setting, normalisation on/off as line styles, lambda as markers,
  bootstrap bands, picks starred; T-BPTT's best pair per step size, and every pair in a
  second panel), ``seeds.png`` (every seed's final value of each pick), ``compute.png``
  (only when the picks' compute differs by more than 10%);
- ``report.html``: all of it in one self-contained page (figures embedded);
- ``summary.md``: the summary as a Markdown table, with a footer naming the command that made
  it, the machine, jax, the commit and the date (what the docs paste).

The files are logged as artifacts (folder ``report``) of each experiment's latest parent run,
and the summary table is printed.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from study.cli import Parser, fail, writable_folder
from study.engine.kinds import NORMALISED_CURVE
from study.interrupt import interruptible
from study.orchestration import stores
from study.report.claims import Claim, judge, method_note
from study.report.curves import curve_band
from study.report.figures import (
    _colors,
    compute_differs,
    plot_compute,
    plot_curves,
    plot_seeds,
)
from study.report.load import (
    Trial,
    _learners,
    best_per_learner,
    load_trials,
    measure_for,
    merge_rounds,
    summary_rows,
)
from study.report.page import _write_csv, table_markdown, table_text, trial_rows, write_html
from study.report.sensitivity import plot_sensitivity
from study.stats import N_RESAMPLES, check_resamples
from study.verdicts import ALPHA, MARGIN

__all__ = ["best_per_learner", "judge", "load_trials", "main", "make_report", "summary_rows"]


def make_report(tracking_uri: str, experiments: list[str], out: Path,
                claims: tuple[Claim, ...] = (),
                claims_heading: str = "",
                n_resamples: int = N_RESAMPLES,
                command: str = "python -m study.report", alpha: float = ALPHA,
                margin: float = MARGIN, looks: int = 1,
                notes: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Write the report of ``experiments`` into ``out`` (and nowhere else: a report reads the
    stores, it never writes to them); returns what it computed. ``command`` is the command
    as typed that asked for it (``summary.md``'s footer).

    Each learner's figures come from its pick's evaluation on fresh seeds where there is one
    (``ccn.role=eval``), with the pick as the tuning seeds saw it beside them; ``claims``
    (``study.report.claims``) are judged on those per-seed values and stated in the page
    under ``claims_heading``, at family-wise level ``alpha`` over ``looks`` looks with the
    equivalence margin ``margin`` (``study.verdicts``)."""
    from study.records.store import Store

    trials, _ = load_trials(tracking_uri, experiments)
    trials = merge_rounds(trials)  # a configuration run in several rounds: one trial
    m = measure_for(trials)
    store = Store(tracking_uri)
    out.mkdir(parents=True, exist_ok=True)
    best = best_per_learner(trials)
    evaluated = any(t.role == "eval" for t in best.values())
    tuned = best_per_learner(trials, role="tuning")
    summary = summary_rows(best, tuned if evaluated and tuned else None, n_resamples)
    rows = trial_rows(trials)
    colors = _colors(_learners(trials))
    figures = {
        "Learning curves": out / "curves.png",
        "Step-size sensitivity": out / "sensitivity.png",
        "Every seed of each pick": out / "seeds.png",
    }
    curves = plot_curves(store, best, colors, figures["Learning curves"], m)
    tuning = [t for t in trials if t.role == "tuning"]  # the figure shows tuning runs only
    edges = plot_sensitivity(tuning or trials, colors, figures["Step-size sensitivity"], m,
                             picks=tuned or best, n_resamples=n_resamples)  # fmt: skip
    plot_seeds(best, colors, figures["Every seed of each pick"], m, n_resamples)
    sections = []
    if compute_differs(best):
        figures["Error against compute per step"] = out / "compute.png"
        plot_compute(trials, colors, figures["Error against compute per step"], m)
    else:  # a figure left by an earlier report of other picks would now mislead
        (out / "compute.png").unlink(missing_ok=True)
    values = {name: t.seed_values() for name, t in best.items()}
    judged = judge(claims, values, alpha=alpha, margin=margin, looks=looks) if claims else []
    method = method_note({k: int(v.size) for k, v in values.items()}, alpha, margin, looks)
    if judged:
        sections.append((claims_heading or "Claims", [f"{j.claim}: {j.verdict} ({j.evidence})"
                                                       for j in judged] + [method]))  # fmt: skip
    if notes:
        sections.append(("Selection on the tuning seeds", list(notes)))
    sections.append(("Reading the figures", [*edges, _compute_sentence(best)]))
    _write_csv(out / "summary.csv", summary)
    _write_csv(out / "curves.csv", _curve_rows(store, best, m))
    _write_csv(out / "trials.csv", rows)
    (out / "summary.md").write_text(table_markdown(summary, m.measure, command))
    write_html(out / "report.html", f"Report: {', '.join(experiments)}", summary, rows, figures, m,
               sections, n_resamples)  # fmt: skip
    return {"summary": summary, "trials": rows, "curves": curves, "best": best, "measure": m,
            "judged": judged, "method": method, "edges": edges}  # fmt: skip


def _curve_rows(store, best: dict[str, Trial], m) -> list[dict]:
    """Each pick's curve at every logged step: the task's measure (mean and 95% t half-width
    over seeds) and, where the runs logged it per seed, the normalised MSRE."""
    rows = []
    for name, t in best.items():
        steps, mean, half = curve_band(store, t)
        normalised = {}
        if (
            not m.higher_better
            and t.seeds
            and store.history(t.run_id, f"{NORMALISED_CURVE}_seed{t.seeds[0]}")
        ):
            n_steps, n_mean, n_half = curve_band(store, t, normalised=True)
            normalised = {int(s): (v, h) for s, v, h in zip(n_steps, n_mean, n_half, strict=True)}
        for step, v, h in zip(steps, mean, half, strict=True):
            row = {"learner": name, "step": int(step), f"{m.measure}_mean": float(v),
                   f"{m.measure}_ci95": float(h)}  # fmt: skip
            if not m.higher_better:
                nv, nh = normalised.get(int(step), (math.nan, math.nan))
                row.update(nmsre_mean=float(nv), nmsre_ci95=float(nh))
            rows.append(row)
    return rows


def _compute_sentence(best: dict[str, Trial]) -> str:
    flops = {k: t.flops for k, t in best.items() if math.isfinite(t.flops)}
    if not flops:
        return "No compute was recorded."
    text = ", ".join(f"{k} {v:,.0f}" for k, v in flops.items())
    if compute_differs(best):
        return f"Flops per step per stream of each pick differ: {text} (the compute figure)."
    return (f"Compute is matched (within 10%, linear aside), so no compute figure is drawn: "
            f"flops per step per stream {text}.")  # fmt: skip


@interruptible
def main(argv: list[str] | None = None) -> int:
    p = Parser(
        prog="python -m study.report",
        description="Compare learners from what MLflow recorded: tables, figures, HTML.",
    )
    p.add_argument("--experiment", required=True,
                   help="MLflow experiment (study) name; several separated by commas")  # fmt: skip
    p.add_argument("--runs-dir", default="runs", help="folder of the embedded stores")
    p.add_argument("--tracking-uri", default=None,
                   help="default $MLFLOW_TRACKING_URI, else SQLite under --runs-dir")  # fmt: skip
    p.add_argument("--out", default=None, help="default RUNS_DIR/reports/EXPERIMENT")
    p.add_argument("--bootstrap-resamples", type=int, default=N_RESAMPLES,
                   help=f"resamples of every bootstrap interval ({N_RESAMPLES:,}; 1,000 to "
                   "1,000,000)")  # fmt: skip
    args = p.parse_args(argv)
    flag = "--tracking-uri"
    if args.tracking_uri is None and os.environ.get("MLFLOW_TRACKING_URI"):
        args.tracking_uri, flag = os.environ["MLFLOW_TRACKING_URI"], "MLFLOW_TRACKING_URI"
    # A server that accepts connections but does not answer: a few retries, not minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    try:
        check_resamples(args.bootstrap_resamples)
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
            stores.check(args.tracking_uri, flag, "mlflow", must_exist=True)
        uri = args.tracking_uri or f"sqlite:///{runs / 'mlflow.db'}"
        out = Path(args.out) if args.out else runs / "reports" / "+".join(names)
        out = writable_folder(str(out), "--out" if args.out else "--runs-dir")
        result = make_report(uri, names, out, n_resamples=args.bootstrap_resamples,
                             command=args.command_line)  # fmt: skip
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
    from study.records.store import Store
    from study.records.view import browse_hint

    for name in names:  # each study's trials in MLflow, best first
        exp = Store(uri).experiment(name)
        print(f"{name}: {browse_hint(uri, exp.experiment_id)}")
    return 0
