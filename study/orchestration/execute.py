"""Running a planned study (``study.orchestration.plan.Plan``) on Ray Tune, driven by Optuna,
recorded in MLflow.

:func:`execute` holds the study's lock (``study.orchestration.lock``), runs on a Ray session
(``study.orchestration.local_ray.session``: the Ray this process runs, or a local one started and
watched), creates the MLflow experiment and the launch's parent run once nothing can refuse the
launch any more, and runs the trials (``study.orchestration.trainable``): a search asks Optuna for
each configuration (packed or not, ``study.orchestration.pack_search``), an evaluation runs the
plan's configurations as a grid. ``python -m study.launch``, ``study.compare`` and ``study.api``
call it.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from study import interrupt
from study.cli import fail, redact
from study.orchestration import stores
from study.orchestration.plan import Plan
from study.present.words import verdict_of, words
from study.tasks import find_task


def execute(plan: Plan) -> int:
    """Run ``plan``: 0 when it finished, 130 when it was interrupted (the same plan with
    ``resume`` continues it), 2 when it was refused (the reason printed on stderr in one
    line) or failed."""
    from study.orchestration import local_ray

    with local_ray.environment(plan.address, plan.expose_ray):  # before Ray's import
        return _locked(plan)


def _locked(plan: Plan) -> int:
    from study.orchestration import local_ray

    quiet_stores()
    from ray import tune

    from study.orchestration.lock import StudyLock, holder, running_message

    runs = plan.runs
    if plan.resume and not tune.Tuner.can_restore(plan.tune_path):
        if running := holder(runs, plan.name):  # started, but no state saved yet
            return fail(running_message(plan.name, running))
        return fail(f"--resume: no study {plan.name!r} to resume in {plan.storage_path}")
    runs.mkdir(parents=True, exist_ok=True)
    ignore = runs / ".gitignore"
    if not ignore.exists():  # the stores stay out of the user's git status
        ignore.write_text("# written by ccn-study: studies' stores, results and checkpoints\n*\n")
    lock = StudyLock(runs, plan.name)
    try:
        lock.acquire()
    except ValueError as e:
        return fail(str(e))
    try:
        if refusal := _interrupted(plan):
            return fail(refusal)
        try:  # long work (an Atari stream's replay) only once every check has passed
            find_task(plan.task).prepare(plan.data_dir)
        except ValueError as e:
            return fail(str(e))
        try:
            with local_ray.session(plan.address, runs, plan.name, plan.expose_ray) as dashboard:
                return _study(plan, dashboard)
        except local_ray.Unreachable as e:
            return fail(str(e))
    finally:
        lock.release()


def _interrupted(plan: Plan) -> str | None:
    """The refusal of a fresh launch of a study that was interrupted (its lock is free, as
    this process holds it, but its latest launch is still marked running), else None."""
    from ray import tune

    from study.records.store import Store

    try:
        store = Store(plan.tracking_uri)
        last = stores.created(lambda: store.latest_launch(plan.name))
    except Exception as e:  # noqa: BLE001 - any failure to reach the store is the user's
        return f"cannot use --tracking-uri {plan.tracking_uri}: {e}"
    if plan.resume or last is None or last.info.status != "RUNNING":
        return None
    if not tune.Tuner.can_restore(plan.tune_path):
        return None
    return (f"study {plan.name!r} was interrupted; add --resume to continue it, or choose "
            f"another --study-name")  # fmt: skip


def quiet_stores() -> None:
    """MLflow's and Optuna's progress logs (store creation, schema updates, "a new study
    created") are not the user's business on a study's console; their warnings still show."""
    import logging

    import optuna

    from study.records.store import quiet

    quiet()
    logging.getLogger("alembic").setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(plan: Plan, dashboard: str | None) -> int:
    import ray

    from study.records.store import Store
    from study.records.study import start_study

    gpus = ray.cluster_resources().get("GPU", 0)
    if plan.gpus_per_trial > 0 and gpus < plan.gpus_per_trial:
        return fail(f"--gpus-per-trial {plan.gpus_per_trial:g} but the Ray cluster has "
                    f"{gpus:g} GPUs")  # fmt: skip
    # The launch's parent run: only once nothing can refuse the launch any more.
    try:
        # An MLflow server keeps artifacts where it was told (--artifacts-destination) and
        # proxies them; only an embedded store gets a folder beside it.
        served = plan.tracking_uri.startswith(("http://", "https://"))
        store = stores.sqlite_file(plan.tracking_uri)
        if store is not None and store.resolve() == (plan.runs / "mlflow.db").resolve():
            stores.relocate(store, plan.runs)  # a runs folder copied or moved: its own files
        tracking = start_study(
            plan.tracking_uri, plan.name, None if served else (plan.runs / "artifacts").as_uri(),
            {"space": plan.space_name, "task": plan.task,
             **({"ccn.stage": plan.stage} if plan.stage else {})}, resume=plan.resume,
            description=description(plan),
            run_name=f"{plan.name if plan.configs else plan.space_name} launch "
            f"{time.strftime('%Y-%m-%d %H:%M')}",
            run_description=f"Launched as `{command(plan)}` on {socket.gethostname()}; Ray "
            f"Tune's results and checkpoints: `{plan.tune_path}`.",
            kind=plan.kind, shown=shown_params(plan), seeds=tuple(plan.trial_seeds),
            searched=searched_params(plan),
        )  # fmt: skip
    except Exception as e:  # noqa: BLE001
        return fail(f"cannot use --tracking-uri {plan.tracking_uri}: {e}")
    try:
        return _run_study(plan, tracking, dashboard)
    except KeyboardInterrupt:  # before the study could pause: not left "running" for ever
        Store(plan.tracking_uri).terminate(tracking.parent_run_id, "KILLED")
        raise
    except Exception as e:
        # A launch that cannot go on: its parent run says so (not "running" for ever, which
        # would read as interrupted), and the details go to a log file, not the console.
        Store(plan.tracking_uri).terminate(tracking.parent_run_id, "FAILED")
        log = plan.runs / "logs" / f"{plan.name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        log.parent.mkdir(exist_ok=True)
        import traceback

        log.write_text(traceback.format_exc())
        return fail(f"the launch failed: {type(e).__name__}: {e} (details: {log})")


def _header(plan: Plan, dashboard: str | None, tracking: Any) -> None:
    """What the console says before the first trial starts."""
    from study.orchestration import local_ray
    from study.records.view import browse_hint

    seeds, configs = plan.trial_seeds, plan.configs
    what = (f"{len(configs)} configurations" if configs else f"space {plan.space_name}, "
            f"{plan.trials} configurations")  # fmt: skip
    print(f"study {plan.name}: {what}, task {plan.task}, {len(seeds)} seeds x "
          f"{plan.steps:,} steps{' (resumed)' if plan.resume else ''}")  # fmt: skip
    if plan.pack > 1:
        print(f"packs of up to {plan.pack} configurations x {len(seeds)} seeds, one "
              f"program each (--pack {plan.pack_text}; 1 runs each configuration as its own "
              f"trial)")  # fmt: skip
    budget = plan.space.budget_flops
    if budget is not None and configs is None:
        print(f"networks sized to {budget:,.0f} flops per step per stream (--budget-flops "
              f"{plan.budget_text}; 'none' searches sizes)")  # fmt: skip
    if dashboard:
        print(local_ray.dashboard_hint(dashboard))
    print(browse_hint(plan.tracking_uri, tracking.experiment_id, short=bool(plan.stage)))


def _searcher(plan: Plan) -> tuple[Any, Any, list[int]]:
    """A search's Optuna searcher (packed or not), its storage, and the Optuna trials an
    interrupted launch asked for but never recorded in Tune's state."""
    import optuna

    from study.orchestration.pack_search import PackSearch, StudySearch

    kind = plan.kind
    storage = stores.created(lambda: optuna.storages.RDBStorage(plan.storage))
    stale = stores.running_optuna_trials(storage, plan.name) if plan.resume else []
    # The family's defaults are the first configuration tried: a study never reports a
    # best below what the family does untuned.
    first = plan.space.first_point()
    optuna_kw = dict(
        space=plan.space, metric=kind.metric, mode=kind.mode, storage=storage,
        study_name=plan.name, seed=plan.sampler_seed,
        points_to_evaluate=[first] if first and not plan.resume else None,
    )  # fmt: skip
    if plan.pack == 1:
        return StudySearch(**optuna_kw), storage, stale
    # A pack's members are asked together, before any has a result: TPE's constant liar
    # keeps them apart (it takes the running trials for bad ones).
    sampler = optuna.samplers.TPESampler(seed=plan.sampler_seed, constant_liar=True)
    optuna_kw.pop("seed")  # the sampler's
    return PackSearch(plan.pack, plan.trials, sampler=sampler, **optuna_kw), storage, stale


def _run_study(plan: Plan, tracking: Any, dashboard: str | None) -> int:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from study.engine.pack import group, member_results, members_of
    from study.orchestration.console import Progress
    from study.orchestration.trainable import final_metrics, trainable
    from study.records.study import mark_interrupted, reconcile
    from study.records.view import browse_hint, summarise

    kind = plan.kind
    metric, mode = kind.metric, kind.mode
    _header(plan, dashboard, tracking)
    stale, searcher, storage, scheduler, configs = [], None, None, None, None
    if plan.configs is None:
        searcher, storage, stale = _searcher(plan)
    else:
        configs = list(plan.configs)
        configs = [{"pack": p} for p in group(configs, plan.pack)] if plan.pack > 1 else configs
    if plan.scheduler == "asha":
        scheduler = ASHAScheduler(time_attr="steps_done", max_t=plan.steps,
                                  grace_period=plan.chunk)  # fmt: skip
    param_space = dict(
        task=plan.task, space=plan.space_name, seeds=plan.trial_seeds, steps=plan.steps,
        chunk_steps=plan.chunk, block=plan.block, window=plan.window,
        report_min_s=plan.min_report_s,
    )  # fmt: skip
    if kind.takes_data_dir:
        param_space["data_dir"] = plan.data_dir
    if configs is not None:
        # study.compare: its evaluation's runs ("eval"), or a preset's grid ("tuning")
        param_space.update(role=plan.role, fixed=tune.grid_search(configs))
    fn = tune.with_resources(
        tune.with_parameters(trainable, tracking=tracking),
        {"cpu": plan.cpus_per_trial, "gpu": plan.gpus_per_trial},
    )
    progress = Progress(metric, plan.steps, configurations=plan.n_configurations)
    if plan.resume:
        tuner = tune.Tuner.restore(plan.tune_path, fn, resume_unfinished=True,
                                   resume_errored=True)  # fmt: skip
    else:
        tuner = tune.Tuner(
            fn,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=1 if configs else -(-plan.trials // plan.pack),
                max_concurrent_trials=plan.concurrency,
                metric=metric,
                mode=mode,
                reuse_actors=plan.reuse_actors,
            ),
            run_config=tune.RunConfig(
                storage_path=plan.storage_path,
                name=plan.name,
                verbose=0,  # the console is study.orchestration.console's
                callbacks=[progress],
                # Tune forces a (slow, warned about) experiment snapshot whenever a trial
                # checkpoints num_to_keep times between two snapshots: keep enough (each is
                # a few kB) that reports every few seconds never force one.
                checkpoint_config=tune.CheckpointConfig(num_to_keep=5),
                failure_config=tune.FailureConfig(max_failures=2),
            ),
        )
    # Ray Tune's newer console prints its set-up tables even when told to be silent; the
    # classic one is silent at verbose=0, and study.orchestration.console prints the progress.
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    interrupt.check()  # a Ctrl+C swallowed while Ray started: answered before any trial runs
    t0 = time.perf_counter()
    try:
        results = tuner.fit()
    finally:
        progress.close()
    # Tune's trials as the driver knows them at the end, not the experiment state on disk:
    # that copy is synced from a staging folder in the background and can lag a trial.
    analysis = getattr(results, "_experiment_analysis", None)
    analysis = analysis or tune.ExperimentAnalysis(plan.tune_path)
    trials = {t.trial_id: (t.status, final_metrics(t.last_result, kind))
              for t in analysis.trials}  # fmt: skip
    for t in analysis.trials:  # a pack's configurations, by their runs' trial ids (ID.i)
        for i, value in enumerate(member_results(t.last_result or {}, metric)):
            trials[f"{t.trial_id}.{i}"] = (t.status, {} if value is None else {metric: value})
    unfinished = {i for i, (status, _) in trials.items() if status not in ("TERMINATED", "ERROR")}
    if progress.interrupted is not None or unfinished:
        mark_interrupted(tracking, (progress.interrupted or set()) | unfinished)
        print(f"\ninterrupted after {time.perf_counter() - t0:.0f} s: run the same command "
              f"with --resume to continue")  # fmt: skip
        return 130
    counts = reconcile(tracking, trials, resumed=plan.resume, kind=kind)
    if stale:
        stores.fail_optuna_trials(storage, stale)
    # a configuration: what Optuna proposes and MLflow records; a trial: what Ray Tune runs
    what = (f"{plan.n_configurations} configurations in {len(results)} trials" if plan.pack > 1
            else f"{len(results)} configurations, a trial each")  # fmt: skip
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
        print(verdict_of(kind, best.metrics, plan.steps, find_task(plan.task).learns_in))
    except RuntimeError:
        print("no trial reported a result")
    summarise(tracking, kind, description(plan))
    if not plan.stage:  # a comparison's stage: its command says it once, at its end
        print(browse_hint(plan.tracking_uri, tracking.experiment_id))
    return 0


def shown_params(plan: Plan) -> tuple[str, ...]:
    """The parameters the runs table shows: the network's shape, step size and lambda, of
    those the study's configurations set."""
    if plan.configs:
        keys = set().union(*(c.keys() for c in plan.configs))
    else:
        keys = {p.name for p in plan.space.params} | {"n_features"}
    from study.records.view import IN_TABLE  # the table's rounded columns, in their order

    return tuple(k for k in IN_TABLE if k in keys)


def searched_params(plan: Plan) -> tuple[str, ...]:
    """The hyperparameters the chart view draws the result against: a search's sampled
    ones; an evaluation's numeric ones whose values differ between its configurations."""
    if not plan.configs:
        return tuple(p.name for p in plan.space.params)
    keys = sorted(set().union(*(c.keys() for c in plan.configs)))
    numeric = [k for k in keys
               if all(type(c.get(k)) in (int, float) for c in plan.configs)]  # fmt: skip
    return tuple(k for k in numeric if len({c[k] for c in plan.configs}) > 1)


def command(plan: Plan) -> str:
    """The command line that made the plan (password hidden)."""
    return redact(plan.command or f"python -m study.launch --space {plan.space_name} "
                  f"--task {plan.task} --study-name {plan.name}")  # fmt: skip


def description(plan: Plan) -> str:
    """The experiment's description in MLflow's UI (Markdown)."""
    budget = plan.space.budget_flops
    what = (f"an evaluation of {len(plan.configs)} configurations" if plan.configs
            else f"a hyperparameter study of the {plan.space_name} learner family")  # fmt: skip
    lines = [  # the first line plain: MLflow's list of experiments shows it as typed
        f"ccn-study: {what} on the {plan.task} task, {plan.trials} trials x "
        f"{plan.seeds} seeds x {plan.steps:,} steps"
        + (
            f", every network sized to {budget:,.0f} flops per step per stream." if budget else "."
        ),  # fmt: skip
        "",
        "Each trial is a run named by its shape, step size (`a=`) and lambda (`l=`). "
        f"{words(plan.kind).reading}",
        "",
        f"Command: `{command(plan)}`  ",
        f"Ray Tune results and checkpoints: `{plan.tune_path}`  ",
        f"Optuna storage: `{redact(plan.storage)}`, study `{plan.name}`",
    ]
    return "\n".join(lines)
