"""``python -m study.compare --spaces columnar,hybrid,...``: tune each family, then evaluate
the best configuration of each on fresh seeds, and report.

Stages, each a launch of ``study.launch`` recorded in MLflow like any other:

1. one tuning study per family (experiment ``NAME-SPACE``; Optuna study of the same name),
   on seeds ``0..S-1``;
2. one evaluation (experiment ``NAME``): Ray Tune runs the best configuration of every family
   (the Optuna trial with the lowest final windowed MSRE) on ``--eval-seeds`` seeds that no
   tuning trial used, one trial per family, its child run tagged ``ccn.role=eval``;
3. the report of the evaluation and the tuning studies together (``study.report``), whose
   summary table takes its numbers from the evaluation runs.

A stage whose latest launch finished is not run again, so the same command continues a
comparison killed part way (with ``--resume`` when a stage was interrupted mid-way, as
``study.launch`` asks).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from search_spaces import SPACES
from study import launch
from study.tasks import DEFAULT_TASK

FAMILIES = ("columnar", "constructive", "hybrid", "tbptt", "snap1")
EVAL_SEED_BASE = 1000  # evaluation seeds start here, or after the largest tuning seed
# Set by the evaluation itself, not taken from the tuning trial's configuration.
PER_STUDY = ("task", "seeds", "steps", "chunk_steps", "block", "window", "role")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m study.compare",
        description="Tune each learner family, evaluate each best configuration on fresh "
        "seeds, and report the comparison.",
    )
    p.add_argument("--spaces", default=",".join(FAMILIES), help="families, comma-separated")
    p.add_argument("--task", default=DEFAULT_TASK)
    p.add_argument("--data-dir", default=None, help="seq_mnist: folder of the MNIST files")
    p.add_argument("--name", default=None, help="comparison name (default compare-TASK)")
    p.add_argument("--trials", type=int, default=None, help="tuning trials per family")
    p.add_argument("--seeds", type=int, default=None, help="seeds per tuning trial")
    p.add_argument("--steps", type=int, default=None, help="steps per seed when tuning")
    p.add_argument("--eval-seeds", type=int, default=30, help="fresh seeds per family (30)")
    p.add_argument("--eval-steps", type=int, default=None, help="default: the tuning steps")
    p.add_argument("--budget-flops", type=float, default=None,
                   help="size every family's network to this per-step budget")  # fmt: skip
    p.add_argument("--concurrency", type=int, default=2, help="trials at once")
    p.add_argument("--address", default=None, help="address of an existing Ray cluster")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default SQLite)")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default SQLite)")
    p.add_argument("--runs-dir", default="runs", help="folder of the embedded stores")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=0.0)
    p.add_argument("--set", action="append", default=[], metavar="SPACE.NAME=VALUE",
                   help="fix a parameter of one family's space; repeatable")  # fmt: skip
    p.add_argument("--range", action="append", default=[], metavar="SPACE.NAME=LOW:HIGH",
                   help="new bounds for a parameter of one family's space; repeatable")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue an interrupted stage")
    p.add_argument("--smoke", action="store_true", help="tiny budget, for checks")
    return p


def _launch_argv(args: argparse.Namespace, space: str, name: str) -> list[str]:
    argv = ["--space", space, "--task", args.task, "--study-name", name,
            "--runs-dir", args.runs_dir, "--concurrency", str(args.concurrency),
            "--cpus-per-trial", str(args.cpus_per_trial),
            "--gpus-per-trial", str(args.gpus_per_trial)]  # fmt: skip
    for key in (
        "trials",
        "seeds",
        "steps",
        "budget_flops",
        "address",
        "tracking_uri",
        "storage",
        "data_dir",
    ):
        value = getattr(args, key)
        if value is not None:
            argv += [f"--{key.replace('_', '-')}", str(value)]
    for flag in ("set", "range"):
        for text in getattr(args, flag):
            family, _, rest = text.partition(".")
            if family == space:
                argv += [f"--{flag}", rest]
    return argv + (["--smoke"] if args.smoke else [])


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    spaces = [s.strip() for s in args.spaces.split(",") if s.strip()]
    name = args.name or f"compare-{args.task}"
    try:
        if not spaces:
            raise ValueError(f"--spaces {args.spaces!r} names no family")
        for s in spaces:
            if s not in SPACES:
                raise ValueError(f"unknown space {s!r}; allowed: {', '.join(SPACES)}")
        if len(set(spaces)) < len(spaces):
            raise ValueError(f"--spaces {args.spaces!r} names a family twice")
        for flag in ("set", "range"):
            for text in getattr(args, flag):
                family, dot, _ = text.partition(".")
                if not dot or family not in spaces:
                    raise ValueError(f"--{flag} {text!r} must start with one of the families "
                                     f"compared: {', '.join(s + '.' for s in spaces)}")  # fmt: skip
        if args.eval_seeds < 2:
            raise ValueError(f"--eval-seeds {args.eval_seeds} must be >= 2 (for an interval)")
        stages = {}  # study name -> (launch argv, its plan)
        for s in spaces:
            a = _launch_argv(args, s, f"{name}-{s}")
            stages[f"{name}-{s}"] = (a, launch._plan(launch._parser().parse_args(a)))
        evaluation = argparse.Namespace(**{**vars(args), "trials": None,
                                           "seeds": args.eval_seeds,
                                           "steps": args.eval_steps or args.steps})  # fmt: skip
        eval_argv = _launch_argv(evaluation, spaces[0], name)
        eval_plan = launch._plan(launch._parser().parse_args(eval_argv))
    except ValueError as e:
        return launch._fail(str(e))
    return _compare(args, name, spaces, stages, eval_argv, eval_plan)


def _state(tracking_uri: str, experiment: str) -> str:
    """``new`` (never launched), ``interrupted`` (its latest launch still marked running) or
    ``done``."""
    from mlflow.tracking import MlflowClient

    from study.tracking import latest_launch

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    last = latest_launch(client, found.experiment_id) if found else None
    if last is None:
        return "new"
    return "interrupted" if last.info.status == "RUNNING" else "done"


def _compare(args, name: str, spaces: list[str], stages: dict, eval_argv: list[str],
             eval_plan: dict[str, Any]) -> int:  # fmt: skip
    import ray

    uri = eval_plan["tracking_uri"]
    states = {study: _state(uri, study) for study in [*stages, name]}
    stopped = [study for study, state in states.items() if state == "interrupted"]
    if stopped and not args.resume:
        return launch._fail(f"comparison {name!r} was interrupted in {stopped[0]}; add --resume "
                            f"to continue it")  # fmt: skip
    if args.resume and not stopped and all(v == "new" for v in states.values()):
        return launch._fail(f"--resume: no comparison {name!r} to resume in {uri}")
    own_ray = not ray.is_initialized()
    if own_ray:
        try:
            dashboard = launch.start_ray(args.address, eval_plan["runs"])
        except Exception as e:  # noqa: BLE001
            return launch._fail(f"cannot reach Ray at --address {args.address}: {e}")
        if dashboard:
            print(f"Ray dashboard: http://{dashboard}")
    try:
        n = len(stages) + 1
        for i, (study, (argv, _)) in enumerate(stages.items(), 1):
            print(f"\n== [{i}/{n}] tuning: {study} ({states[study]})")
            if states[study] == "done":
                print("already tuned; not run again")
                continue
            rc = launch.main(argv + (["--resume"] if states[study] == "interrupted" else []))
            if rc:
                return rc
        print(f"\n== [{n}/{n}] evaluation: {name} ({states[name]})")
        if states[name] == "done":
            print("already evaluated; not run again")
        else:
            try:
                configs, seeds = best_configs(args, stages, eval_plan)
            except ValueError as e:
                return launch._fail(str(e))
            eval_args = launch._parser().parse_args(
                eval_argv + (["--resume"] if states[name] == "interrupted" else [])
            )
            rc = launch._launch(eval_args, {**eval_plan, "configs": configs, "seeds": seeds})
            if rc:
                return rc
    finally:
        if own_ray:
            ray.shutdown()
    return _report(eval_plan, [name, *stages])


def best_configs(args, stages: dict, eval_plan: dict[str, Any]):
    """The best configuration of each tuning study, as its trial ran it (the ``ccn.config``
    tag of the finished child run with the best final value of the study's objective: the
    lowest windowed MSRE, or the highest held-out accuracy on sequential MNIST; the run the
    report calls best), and the evaluation seeds: ``--eval-seeds`` seeds from ``EVAL_SEED_BASE`` on,
    or after the largest seed any tuning run used (their ``seeds`` tags). Raises a one-line
    ValueError when no family has a finished trial."""
    from mlflow.tracking import MlflowClient

    from study.tracking import CONFIG_TAG, STATUS_TAG
    from study.trainable import objective

    client = MlflowClient(eval_plan["tracking_uri"])
    metric, mode = objective(args.task)
    final, pick = f"final_{metric}", max if mode == "max" else min
    configs, used, lost = [], {-1}, []
    for study in stages:
        exp = client.get_experiment_by_name(study)
        runs = [r for r in client.search_runs([exp.experiment_id], max_results=50_000)
                if "mlflow.parentRunId" in r.data.tags]  # fmt: skip
        for r in runs:
            used.update(int(s) for s in r.data.tags.get("seeds", "").split(",") if s)
        done = [
            r
            for r in runs
            if r.data.tags.get(STATUS_TAG) == "finished"
            and CONFIG_TAG in r.data.tags
            and math.isfinite(r.data.metrics.get(final, math.inf))
        ]
        if not done:
            lost.append(study)
            continue
        best = pick(done, key=lambda r: r.data.metrics[final])
        config = json.loads(best.data.tags[CONFIG_TAG])
        configs.append({k: v for k, v in config.items() if k not in PER_STUDY})
    for study in lost:
        print(f"{study}: no trial finished with a finite error; the family is left out")
    if not configs:
        raise ValueError(f"no tuning study of {', '.join(stages)} has a finished trial")
    start = max(EVAL_SEED_BASE, max(used) + 1)
    return configs, list(range(start, start + args.eval_seeds))


def _report(plan: dict[str, Any], experiments: list[str]) -> int:
    from study.report import make_report, table_text

    out = plan["runs"] / "reports" / experiments[0]
    result = make_report(plan["tracking_uri"], experiments, out)
    print("\n" + table_text(result["summary"], result["measure"].name))
    print(f"\nreport: {out / 'report.html'}")
    print(f"browse: mlflow ui --backend-store-uri {plan['tracking_uri']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
