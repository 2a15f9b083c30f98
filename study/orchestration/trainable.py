"""Learners as Ray Tune trainables: one trial (``study.engine.trial.TrialRun``, one configuration or
a pack of them) per Tune trial.

:func:`trainable` is the Ray Tune function trainable: after every chunk it reports the
trial's metrics (for prediction the MSRE, windowed and running, mean over seeds and per seed;
steps done and steps per second) with a checkpoint, and it stops at once, marked
``diverged`` with the step, when any prediction becomes NaN or infinite. Its Ray actor is
named after the trial (:class:`NamedActor`).
"""

from __future__ import annotations

import tempfile
from typing import Any

from study.engine.clock import Clock
from study.engine.kinds import TaskKind
from study.engine.threads import limit_xla_threads
from study.engine.trial import TrialRun
from study.records.study import Tracking
from study.records.trial import TrialLogger


class NamedActor:
    """Mixin of the trial's Ray actor (Tune's ``__mixins__``): the actor's repr, which the Ray
    dashboard lists beside the class name and prefixes the actor's log lines with, is the
    Tune trial id and the trial's readable name, e.g. ``3f2a_00001 hybrid 20:4 a=1e-3 l=0.99``.
    Ray reads the repr once, when the actor is created: a reused actor (``--reuse-actors``)
    keeps the name of its first trial, and then says so."""

    def setup(self, config: dict[str, Any]) -> None:  # Trainable.__init__ calls it
        self._name = actor_name(self.trial_id, config)
        super().setup(config)  # type: ignore[misc]

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        # The dashboard keeps the first name; the log prefix follows the trial.
        self._name = actor_name(self.trial_id, new_config, reused=True)
        print(f":actor_name:{self._name}", flush=True)  # Ray's log-prefix marker
        return super().reset_config(new_config)  # type: ignore[misc]


def trial_threads() -> int:
    """The whole CPUs Ray reserved for the calling trial (at least 1), or 0 outside Ray."""
    try:
        import ray

        if not ray.is_initialized():
            return 0
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 0.0)
    except Exception:  # noqa: BLE001  (not in a Ray worker: no reservation to follow)
        return 0
    return max(1, int(cpus))


def actor_name(trial_id: str, config: dict[str, Any], reused: bool = False) -> str:
    """The trial's name in Ray: Tune trial id, then ``study.orchestration.console.trial_label``."""
    from study.orchestration.console import trial_label

    name = f"{trial_id} {trial_label(config)}"
    return f"{name} (reused worker)" if reused else name


def closes(metrics: dict[str, Any], role: str) -> bool:
    """Whether a configuration's divergence closes it: in a search its first diverged seed
    (its objective is then the worst), in an evaluation (``role`` eval) only every seed."""
    return bool(metrics["diverged_every_seed" if role == "eval" else "diverged"])


def trainable(config: dict[str, Any], tracking: Tracking | None = None) -> None:
    """Ray Tune function trainable: run, report after every chunk with a checkpoint, stop on
    divergence. Resumes from ``ray.tune.get_checkpoint()`` when Tune restarts the trial. With
    ``tracking`` (``tune.with_parameters``) the trial logs to its own MLflow child run, which a
    resumed trial keeps using.

    A pack's trial (``study.engine.pack``) logs each configuration to its own child run, tagged with
    the pack: a configuration that diverges is closed as diverged at its step while the
    others run on; the trial stops when all have diverged, and a scheduler's stop or a
    failure closes every configuration still running. In a search a configuration has
    diverged when one of its seeds has (its objective is then the worst); in an evaluation
    (``role`` eval: picks on fresh seeds) only when every seed has, so that its other seeds
    run to the end and are scored as they end, the diverged ones counted apart."""
    from ray import tune

    # XLA's CPU pool sized to the CPUs Ray reserved for the trial (study.engine.threads), before
    # anything in this worker starts JAX's backends.
    threads = limit_xla_threads(trial_threads())
    clock = Clock()
    if "fixed" in config:  # an evaluation: the configuration Tune's grid search picked
        config = {**{k: v for k, v in config.items() if k != "fixed"}, **config["fixed"]}
    run = TrialRun(config)
    k = run.pack_size
    run_ids: list[str | None] = [None] * k
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            extra = run.restore(d)
        found = extra.get("mlflow_run_ids") or [extra.get("mlflow_run_id")]
        run_ids = [*found, *[None] * k][:k]
    loggers: list[TrialLogger] = []
    if tracking is not None:
        context = tune.get_context()
        numbers = config.get("pack_trials") or [None] * k  # a packed search's Optuna trials
        with clock.part("logging"):
            for i in range(k):
                loggers.append(TrialLogger.start(
                    tracking, run_ids[i], context.get_trial_id(), context.get_trial_name(),
                    run.members[i], run, threads,
                    pack=(i, k) if k > 1 else None, optuna_trial=numbers[i],
                ))  # fmt: skip
    # A configuration whose run an earlier launch closed as finished or diverged (killed
    # before Tune recorded it) is not closed again.
    status = [logger.settled or "running" for logger in loggers] or ["running"] * k
    each: list[dict[str, Any]] = [{} for _ in range(k)]
    role = str(config.get("role", "tuning"))

    def close(i: int, outcome: str) -> None:
        status[i] = outcome
        if loggers:
            with clock.part("logging"):
                loggers[i].end(outcome, final_metrics({**each[i], **clock.metrics()}, run.kind))

    def close_running(outcome: str) -> None:
        for i in range(k):
            if status[i] == "running":
                close(i, outcome)

    try:
        while not run.finished:
            before, t0 = run.blocks_done, clock.totals["compute"]
            with clock.part("compute"):
                metrics, each = run.advance()
            t1 = clock.totals["logging"] + clock.totals["checkpoint"]
            if loggers:
                with clock.part("logging"):
                    for i, logger in enumerate(loggers):
                        if status[i] == "running":
                            logger.log_curve(run.curve(since_block=before, member=i))
            metrics.update(clock.metrics())
            # Runs are closed before the report: a scheduler may stop the trial inside that
            # report (as ASHA does at max_t).
            for i in range(k):
                if status[i] == "running" and (closes(each[i], role) or run.finished):
                    close(i, "diverged" if each[i]["diverged"] else "finished")
            with clock.part("checkpoint"), tempfile.TemporaryDirectory() as d:
                ids = [logger.run_id for logger in loggers] or [None]
                extra = {"mlflow_run_ids": ids} if k > 1 else {"mlflow_run_id": ids[0]}
                run.save(d, extra)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
            overhead = clock.totals["logging"] + clock.totals["checkpoint"] - t1
            run.pace(overhead, clock.totals["compute"] - t0)
            if all(s != "running" for s in status):  # every configuration has diverged
                break
        for logger in loggers:  # the whole trial's timing, last report and closing included
            logger.log_final({f"trial_{name}": v for name, v in clock.metrics().items()})
    except SystemExit:  # Tune stops the trial inside report(): a scheduler's decision
        close_running("stopped_early")
        raise
    except Exception:
        close_running("failed")
        raise


trainable.__mixins__ = (NamedActor,)  # type: ignore[attr-defined]


def final_metrics(metrics: dict[str, Any], kind: TaskKind) -> dict[str, float]:
    """The numbers a trial of ``kind`` reports (the kind's ``reported`` keys, the trial's own:
    steps, speed, divergence and where its time went; not the flags, nor the keys Tune adds),
    as logged as a run's final metrics."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if (
            k.startswith((*kind.reported, "time_"))
            or k in ("steps_done", "steps_per_s", "diverged_at_step")
        )
        and isinstance(v, int | float)
        and not isinstance(v, bool)
    }
