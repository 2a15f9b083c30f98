"""``python -m study.defaults``: every learner family on its own defaults, as a table.

What ``python -m study.run --learner X`` does with only the task set, for every family: the
paper's size (``learners.DEFAULT_SIZES``), the family's hyperparameters
(``learners.FAMILY_DEFAULTS``), a staged network's run divided into equal stages. Each row gives
the windowed MSRE and the normalised MSRE (ours over the best constant predictor's on the same
window, ``study.tasks.metrics.baselines``) as mean and 95% t-interval over the seeds, and the
wall time. A family whose interval is not below 1 learned nothing a constant could not do.

The README's table "Defaults that learn" is this command's output.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

from learners import (
    DEFAULT_SIZES,
    LEARNERS,
    family,
    family_defaults,
)
from study.cli import (
    Parser,
    count,
    fail,
    markdown_table,
    provenance,
    writable_file,
)
from study.engine.kinds import PREDICTION, kind_of
from study.engine.loop import check_environment
from study.engine.threads import limit_xla_threads
from study.interrupt import interruptible
from study.stats import mean_ci
from study.tasks import DEFAULT_TASK, make_task

COLUMNS = ("learner", "size", "defaults", "steps", "seeds", "msre", "msre_ci", "nmsre",
           "nmsre_ci", "learned", "seconds")  # fmt: skip


def measure(name: str, task: str, steps: int, seeds: int) -> dict[str, Any]:
    """One family on its defaults: a row of the table, run as a trial (``study.engine.trial``)."""
    from study.engine.trial import TrialRun, finish

    defaults = family_defaults(name)
    block = 10_000 if steps % 10_000 == 0 else steps
    run = TrialRun(dict(learner=name, **DEFAULT_SIZES[name], task=task,
                        seeds=list(range(seeds)), steps=steps, block=block,
                        window=min(100_000, steps), chunk_steps=steps, report_min_s=0,
                        alpha=defaults["alpha"]))  # fmt: skip
    seconds = finish(run, progress=True)
    got = run.kind.summary(run.record())
    m, h = mean_ci(got.columns["msre_windowed"])
    shown = ("alpha", "lambda_", "norm_rate")
    shown += ("init_scale",) if "init_scale" in family(name).defaults else ()
    # the paper writes a truncated network's size truncation:hidden (T-BPTT's 5:8)
    size = dict(sorted(DEFAULT_SIZES[name].items(), key=lambda kv: kv[0] != "truncation"))
    return dict(
        learner=name,
        size=":".join(str(v) for v in size.values()) or "-",
        defaults=" ".join(f"{k}={defaults[k]:g}" for k in shown),
        steps=steps, seeds=seeds, msre=m, msre_ci=h, nmsre=got.mean, nmsre_ci=got.half,
        learned=got.learned,
        seconds=seconds,
    )  # fmt: skip


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table as the README shows it."""
    return "\n".join(markdown_table(
        ["learner", "size", "defaults", "windowed MSRE", "normalised MSRE", "learned", "time"],
        [[r["learner"], r["size"], r["defaults"], f"{r['msre']:.4f} ± {r['msre_ci']:.4f}",
          f"{r['nmsre']:.3f} ± {r['nmsre_ci']:.3f}", "yes" if r["learned"] else "no",
          f"{r['seconds']:.0f} s"] for r in rows],
        right={3, 4, 6},
    ))  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m study.defaults",
        description="Run every learner family on its defaults and print whether each learned "
        "(normalised MSRE below 1 with 95% confidence).",
    )
    p.add_argument("--task", default=DEFAULT_TASK, help=f"prediction task (default {DEFAULT_TASK})")
    p.add_argument("--steps", type=count(1, 10**9), default=2_000_000,
                   help="steps per seed (default 2M)")  # fmt: skip
    p.add_argument("--seeds", type=count(2, 4096, "for an interval"), default=5,
                   help="seeds 0..N-1 (default 5)")  # fmt: skip
    p.add_argument("--learners", default=",".join(LEARNERS),
                   help="comma-separated families (default: all)")  # fmt: skip
    p.add_argument("--out", default="defaults.csv", help="CSV written row by row")
    p.add_argument("--markdown", default=None,
                   help="also write the table, with its provenance footer, to this "
                   "file")  # fmt: skip
    p.add_argument("--threads", type=count(0, 4096), default=1, help="XLA CPU threads (default 1)")
    return p


@interruptible
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    names = [n for n in args.learners.split(",") if n]
    try:
        bad = [n for n in names if n not in LEARNERS]
        if bad or not names:
            raise ValueError(f"--learners {args.learners!r}: allowed: {', '.join(LEARNERS)}")
        if kind_of(args.task) is not PREDICTION:
            raise ValueError(f"--task {args.task}: allowed: a prediction task")
        make_task(args.task)
        check_environment()
        out = writable_file(args.out, "--out")
        if args.markdown:
            writable_file(args.markdown, "--markdown")
    except ValueError as e:
        return fail(str(e))
    limit_xla_threads(args.threads)
    rows = []
    for name in names:
        print(f"{name}: {args.steps:,} steps x {args.seeds} seeds", file=sys.stderr)
        rows.append(measure(name, args.task, args.steps, args.seeds))
        with out.open("w", newline="") as f:
            writer = csv.DictWriter(f, COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    print(f"{args.task}, {args.steps:,} steps, seeds 0-{args.seeds - 1}; normalised MSRE = "
          "windowed MSRE / the best constant predictor's (1: nothing learned)")  # fmt: skip
    table = markdown(rows) + "\n\n" + provenance(args.command_line)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
