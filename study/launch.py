"""``python -m study.launch --space NAME``: a Ray Tune study driven by Optuna, recorded in MLflow.

Defaults need no set-up: local Ray, MLflow in SQLite and the Optuna storage in SQLite, both
under ``./runs/``. Each trial runs one sampled configuration on ``--seeds`` seeds at once
(``study.trainable``). The driver creates the MLflow experiment and the launch's parent run
before any trial starts; each trial logs to its own child run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from search_spaces import SPACES, describe, make_space
from study.tasks import DEFAULT_TASK, make_task

METRIC = "msre_windowed"

SMOKE = dict(trials=2, seeds=2, steps=20_000, chunk=10_000, block=1_000, window=10_000)
DEFAULT = dict(trials=8, seeds=3, steps=200_000, chunk=100_000, block=10_000, window=100_000)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m study.launch",
        description="Hyperparameter study of one learner family: Ray Tune + Optuna + MLflow.",
    )
    p.add_argument("--space", default="hybrid", help="search space (learner family)")
    p.add_argument("--list-spaces", action="store_true", help="print the spaces and exit")
    p.add_argument("--task", default=DEFAULT_TASK)
    p.add_argument("--trials", type=int, default=None, help=f"default {DEFAULT['trials']}")
    p.add_argument("--seeds", type=int, default=None, help=f"seeds per trial ({DEFAULT['seeds']})")
    p.add_argument("--steps", type=int, default=None, help=f"steps per seed ({DEFAULT['steps']})")
    p.add_argument("--concurrency", type=int, default=2, help="trials at once")
    p.add_argument("--scheduler", choices=("fifo", "asha"), default="fifo")
    p.add_argument("--address", default=None, help="address of an existing Ray cluster")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default SQLite)")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default SQLite)")
    p.add_argument("--study-name", default=None, help="default SPACE-TASK")
    p.add_argument("--runs-dir", default="runs", help="folder of the embedded stores")
    p.add_argument("--resume", action="store_true", help="continue an interrupted study")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=0.0)
    p.add_argument("--budget-flops", type=float, default=None, help="per-step compute budget")
    p.add_argument("--smoke", action="store_true", help="tiny budget, for checks")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.list_spaces:
        for name in SPACES:
            print(f"{name}:")
            for line in describe(name):
                print(f"  {line}")
        return 0
    try:
        plan = _plan(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return _launch(args, plan)


def _plan(args: argparse.Namespace) -> dict[str, Any]:
    """Check every input before anything starts; raises a one-line ValueError."""
    base = dict(SMOKE if args.smoke else DEFAULT)
    for key in ("trials", "seeds", "steps"):
        value = getattr(args, key)
        if value is not None:
            if value < 1:
                raise ValueError(f"{key}={value} must be >= 1")
            base[key] = value
    if base["steps"] % base["block"]:
        raise ValueError(f"steps={base['steps']} must be a multiple of {base['block']}")
    base["chunk"] = min(base["chunk"], base["steps"])
    base["window"] = min(base["window"], base["steps"])
    if args.concurrency < 1:
        raise ValueError(f"concurrency={args.concurrency} must be >= 1")
    if args.cpus_per_trial <= 0 or args.gpus_per_trial < 0:
        raise ValueError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
    env, _ = make_task(args.task)
    space = make_space(args.space, args.budget_flops, env.obs_size)
    runs = Path(args.runs_dir).resolve()
    name = args.study_name or f"{args.space}-{args.task}"
    return dict(
        base=base,
        space=space,
        runs=runs,
        name=name,
        tracking_uri=args.tracking_uri or f"sqlite:///{runs / 'mlflow.db'}",
        storage=args.storage or f"sqlite:///{runs / 'optuna.db'}",
    )


def _launch(args: argparse.Namespace, plan: dict[str, Any]) -> int:
    import optuna
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from study.tracking import STATUS_TAG, start_study
    from study.trainable import trainable

    runs: Path = plan["runs"]
    runs.mkdir(parents=True, exist_ok=True)
    base = plan["base"]
    try:
        tracking = start_study(
            plan["tracking_uri"], plan["name"], (runs / "artifacts").as_uri(),
            {"space": args.space, "task": args.task},
        )  # fmt: skip
    except Exception as e:  # noqa: BLE001 - any failure to reach the store is the user's input
        print(f"error: cannot use --tracking-uri {plan['tracking_uri']}: {e}".splitlines()[0],
              file=sys.stderr)  # fmt: skip
        return 2
    env_vars = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "RAY_USAGE_STATS_ENABLED": "0"}
    for key in ("JAX_PLATFORMS", "XLA_FLAGS"):
        if key in os.environ:
            env_vars[key] = os.environ[key]
    try:
        ctx = ray.init(
            address=args.address or "local",
            runtime_env={"env_vars": env_vars},
            include_dashboard=None if args.address else True,
            log_to_driver=False,
        )
    except Exception as e:  # noqa: BLE001
        print(f"error: cannot reach Ray at --address {args.address}: {e}".splitlines()[0],
              file=sys.stderr)  # fmt: skip
        return 2
    if args.gpus_per_trial > 0 and ray.cluster_resources().get("GPU", 0) < args.gpus_per_trial:
        print(f"error: --gpus-per-trial {args.gpus_per_trial:g} but the Ray cluster has "
              f"{ray.cluster_resources().get('GPU', 0):g} GPUs", file=sys.stderr)  # fmt: skip
        return 2
    dashboard = getattr(ctx, "dashboard_url", None)
    print(f"study {plan['name']}: space {args.space}, task {args.task}, {base['trials']} trials "
          f"x {base['seeds']} seeds x {base['steps']:,} steps")  # fmt: skip
    if dashboard:
        print(f"Ray dashboard: http://{dashboard}")
    print(f"MLflow: mlflow ui --backend-store-uri {plan['tracking_uri']}")

    searcher = OptunaSearch(
        space=plan["space"], metric=METRIC, mode="min",
        storage=optuna.storages.RDBStorage(plan["storage"]), study_name=plan["name"], seed=0,
    )  # fmt: skip
    scheduler = None
    if args.scheduler == "asha":
        scheduler = ASHAScheduler(time_attr="steps_done", grace_period=base["chunk"])
    param_space = dict(
        task=args.task, space=args.space, seeds=list(range(base["seeds"])), steps=base["steps"],
        chunk_steps=base["chunk"], block=base["block"], window=base["window"],
    )  # fmt: skip
    fn = tune.with_resources(
        tune.with_parameters(trainable, tracking=tracking),
        {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial},
    )
    path = runs / "ray" / plan["name"]
    if args.resume and tune.Tuner.can_restore(str(path)):
        tuner = tune.Tuner.restore(str(path), fn, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            fn,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=base["trials"],
                max_concurrent_trials=args.concurrency,
                metric=METRIC,
                mode="min",
            ),  # fmt: skip
            run_config=tune.RunConfig(
                storage_path=str(runs / "ray"),
                name=plan["name"],
                verbose=1,
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                failure_config=tune.FailureConfig(max_failures=2),
            ),  # fmt: skip
        )
    t0 = time.perf_counter()
    results = tuner.fit()
    _close_unfinished(tracking, STATUS_TAG)
    print(f"\nfinished in {time.perf_counter() - t0:.0f} s; {len(results)} trials, "
          f"{len(results.errors)} failed")  # fmt: skip
    try:
        best = results.get_best_result(metric=METRIC, mode="min")
        shown = {k: v for k, v in best.config.items() if k not in param_space}
        print(f"best {METRIC} {best.metrics[METRIC]:.5f} with {shown}")
    except RuntimeError:
        print("no trial reported a result")
    print(f"browse: mlflow ui --backend-store-uri {plan['tracking_uri']}")
    ray.shutdown()
    return 0


def _close_unfinished(tracking, status_tag: str) -> None:
    """Child runs a scheduler stopped mid-way never reached their own end: mark them."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking.uri)
    runs = client.search_runs(
        [tracking.experiment_id],
        f"tags.mlflow.parentRunId = '{tracking.parent_run_id}' and tags.`{status_tag}` = 'running'",
    )
    for run in runs:
        client.set_tag(run.info.run_id, status_tag, "stopped_early")
        client.set_terminated(run.info.run_id, "KILLED")
    client.set_terminated(tracking.parent_run_id, "FINISHED")


if __name__ == "__main__":
    sys.exit(main())
