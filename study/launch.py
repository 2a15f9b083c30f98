"""``python -m study.launch --space NAME``: a Ray Tune study driven by Optuna, recorded in MLflow.

Defaults need no set-up: local Ray, MLflow in SQLite and the Optuna storage in SQLite, both under
``./runs/``. Each trial runs one sampled configuration, or a pack of them sharing their shape
(``--pack``, ``study.engine.pack``), on ``--seeds`` seeds at once
(``study.orchestration.trainable``). The driver creates the MLflow experiment and the launch's
parent run before any trial starts; each configuration logs to its own child run.

This module is the command line: its options become a ``study.orchestration.plan.Plan``
(every input checked before anything starts) that ``study.orchestration.execute`` runs;
``study.api`` does the same from Python.
"""

from __future__ import annotations

import argparse
import sys

from search_spaces import SPACES, describe
from study.cli import Parser, count, fail, pack_option, real, space_options, study_options
from study.engine.trial import REPORT_MIN_S
from study.interrupt import interruptible
from study.orchestration.plan import DEFAULT, Plan, make_plan
from study.tasks import DEFAULT_TASK


def _parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m study.launch",
        description="Hyperparameter study of one learner family: Ray Tune + Optuna + MLflow.",
    )
    p.add_argument("--space", default="hybrid", help="search space (learner family)")
    p.add_argument("--list-spaces", action="store_true", help="print the spaces and exit")
    study_options(p, DEFAULT_TASK, "run a worker's next trial in the same Ray actor (saves a "
                  "JAX start per trial; the dashboard then names each actor by its first "
                  "trial)")  # fmt: skip
    p.add_argument("--trials", type=count(1), default=None, help=f"default {DEFAULT['trials']}")
    p.add_argument("--seeds", type=count(1, 4096), default=None,
                   help=f"seeds per trial ({DEFAULT['seeds']})")  # fmt: skip
    p.add_argument("--steps", type=count(1, 10**12), default=None,
                   help=f"steps per seed ({DEFAULT['steps']})")  # fmt: skip
    p.add_argument("--scheduler", choices=("fifo", "asha"), default="fifo")
    p.add_argument("--study-name", default=None, help="default SPACE-TASK")
    p.add_argument("--storage-path", default=None,
                   help="Ray Tune's results and checkpoints: a folder every node sees (NFS) "
                   "or a bucket URI (s3://, gs://); default RUNS_DIR/ray")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue an interrupted study")
    p.add_argument("--min-report-s", type=real(0, 3600), default=REPORT_MIN_S,
                   help=f"shortest time between two reports of a trial, in seconds (default "
                   f"{REPORT_MIN_S:g}; 0: report after every chunk, e.g. for ASHA's rungs on "
                   f"fast trials)")  # fmt: skip
    p.add_argument("--budget-flops", default="auto",
                   help="flops per step per stream every network is sized to: a number, "
                   "'auto' (default: the compute of the family's paper-sized network, unless a "
                   "size is set or ranged) or 'none' (sizes are searched)")  # fmt: skip
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="fix a parameter of the space (or rmsprop=true|false); repeatable",
    )
    p.add_argument(
        "--range",
        action="append",
        default=[],
        metavar="NAME=LOW:HIGH",
        help="new bounds for a numeric parameter of the space; repeatable",
    )
    p.add_argument("--pack", default="auto",
                   help="configurations per trial, run as one program (study.engine.pack): a "
                   "number, or auto (default: enough streams to fill a trial's CPUs or GPU, while "
                   "every worker stays busy)")  # fmt: skip
    p.add_argument("--sampler-seed", type=int, default=0,
                   help="seed of Optuna's sampler (default 0)")  # fmt: skip
    p.add_argument("--smoke", action="store_true", help="tiny budget, for checks")
    return p


@interruptible
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.list_spaces:
        for name in SPACES:
            print(f"{name}:")
            for line in describe(name):
                print(f"  {line}")
        return 0
    try:
        plan = plan_of(args)
    except ValueError as e:
        return fail(str(e))
    from study.orchestration.execute import execute

    return execute(plan)


# The options that are not the plan's own (they act before a plan exists).
_NOT_PLANNED = ("list_spaces",)


def plan_of(args: argparse.Namespace) -> Plan:
    """The plan of a parsed command line (the command as typed, the parser's
    ``command_line``, kept for the record); a one-line ValueError names the option at
    fault."""
    given = {k: v for k, v in vars(args).items() if k not in _NOT_PLANNED}
    given["command"] = given.pop("command_line", "")
    given.update(space_options(given.pop("set"), given.pop("range")))
    given["pack"] = pack_option(given["pack"])
    return make_plan(**given, cli=True)


if __name__ == "__main__":
    sys.exit(main())
