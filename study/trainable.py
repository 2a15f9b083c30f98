"""Learners as Ray Tune trainables: one trial = one configuration on S seeds at once.

:class:`TrialRun` holds a trial's compiled program and state: the seeds are vmapped into one
program, which advances ``chunk_steps`` at a time (a chunk is seconds to a minute of work) and
can be saved and restored bit for bit. :func:`trainable` is the Ray Tune function trainable
built on it: after every chunk it reports the MSRE (windowed and running; mean over seeds and
per seed), steps done and steps per second, with a checkpoint, and it stops at once, marked
``diverged`` with the step, when any prediction becomes NaN or infinite.

Trial configuration keys: those of a search space (``learner``, sizes, hyperparameters; see
``search_spaces.config_to_args``) plus ``task``, ``seeds`` (list of ints), ``steps``,
``chunk_steps``, ``block`` and ``window`` (steps), and optionally ``rmsprop`` and
``report_min_s`` (the shortest chunk in seconds; 0 makes chunks exactly ``chunk_steps``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from learners import make_hparams, make_learner
from learners.ledger import cost
from search_spaces import config_to_args
from study.classify import ClassifyStats, make_classify_runner, make_evaluate
from study.run import BlockStats, make_runner, seed_keys
from study.tasks import is_classification, make_task
from study.tasks.metrics import baselines, horizon_for, normalised, summarise_blocks
from study.threads import limit_xla_threads, trial_threads
from study.tracking import (
    CURVE,
    Tracking,
    TrialLogger,
)

CHECKPOINT_FILE = "trial.npz"
# A trial reports (metrics, curve points, checkpoint) at least every REPORT_S seconds, and
# at most every REPORT_MIN_S: a chunk of fast blocks runs on until then, so that checkpoints
# a fraction of a second apart never force Tune into back-to-back experiment snapshots.
REPORT_S = 20.0
REPORT_MIN_S = 2.0


def _schedule(run, config: dict[str, Any], block: int, window: int, chunk: int) -> None:
    """Set a trial's ``seeds``, ``steps``, ``block``, ``window`` and ``chunk_blocks`` from its
    configuration (the keyword values are the defaults)."""
    run.seeds = [int(s) for s in config["seeds"]]
    run.steps = int(config["steps"])
    run.block = int(config.get("block", block))
    run.window = int(config.get("window", window))
    chunk = int(config.get("chunk_steps", chunk))
    if run.steps % run.block or chunk % run.block:
        raise ValueError(f"steps={run.steps} and chunk_steps={chunk} must be multiples of "
                         f"block={run.block}")  # fmt: skip
    run.chunk_blocks = chunk // run.block
    run.report_min_s = float(config.get("report_min_s", REPORT_MIN_S))


class TrialRun:
    """A trial's learner, task and state; ``advance()`` runs one chunk and returns metrics."""

    curve_key = CURVE
    curve_label = "windowed MSRE"

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        name, static, hp_kw = config_to_args(config)
        task = config.get("task", "trace_patterning")
        _, self.tp = make_task(task)
        self.hp = make_hparams(gamma=float(self.tp.gamma), **hp_kw)
        _schedule(self, config, block=10_000, window=100_000, chunk=200_000)
        self.learner, self.env, self._init, self._advance = _program(
            name, tuple(sorted(static.items())), bool(config.get("rmsprop", True)), task,
            self.block, float(self.tp.gamma),
        )  # fmt: skip
        self.carry = self._init(seed_keys(self.seeds), self.hp, self.tp)
        self.history: list[BlockStats] = []
        self.blocks_done = 0

    @property
    def steps_done(self) -> int:
        return self.blocks_done * self.block

    @property
    def finished(self) -> bool:
        return self.steps_done >= self.steps

    stats_type: type = BlockStats  # per-block statistics of the run loop

    def stats(self):
        """The history of per-block statistics, blocks concatenated: [seeds, blocks] each."""
        return self.stats_type(
            *[np.concatenate(p, axis=-1) for p in zip(*self.history, strict=True)]
        )

    def _run_chunk(self) -> float:
        """Run the next chunk: ``chunk_blocks`` blocks, or fewer once ``REPORT_S`` seconds
        have passed, so that a trial reports within seconds of its start (compilation
        included) however slow its learner; or more until ``REPORT_MIN_S`` seconds have
        passed, however fast; never past the run's end. Blocks run one compiled call each
        (one program for every chunk length; a block is thousands of steps, so a call's fixed
        cost is a fraction of a percent). Returns steps per second."""
        left = self.steps // self.block - self.blocks_done
        t0 = time.perf_counter()
        n = 0
        while n < left:
            self.carry, stats = self._advance(self.carry, self.hp, self.tp, 1)
            self.history.append(self.stats_type(*jax.tree.map(np.asarray, stats)))
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed > REPORT_S or (n >= self.chunk_blocks and elapsed >= self.report_min_s):
                break
        self.blocks_done += n
        return n * self.block / (time.perf_counter() - t0)

    def advance(self) -> dict[str, Any]:
        """Run the next chunk (or what is left of the run) and return its metrics."""
        return self.metrics(self._run_chunk())

    def metrics(self, steps_per_s: float = float("nan")) -> dict[str, Any]:
        stats = self.stats()
        window_blocks = max(1, min(self.window, self.steps_done) // self.block)
        summary = summarise_blocks(stats.sq_sum, stats.count, window_blocks)
        base = baselines(stats.ret_sum, stats.ret_sq_sum, stats.count, window_blocks)
        ratio = normalised(summary["windowed"], base["constant_windowed"])
        nonfinite = stats.nonfinite.any(axis=0)  # [blocks]: any seed
        diverged = bool(nonfinite.any())
        out: dict[str, Any] = {
            "steps_done": self.steps_done,
            "steps_per_s": steps_per_s,
            "msre_windowed": float(np.mean(summary["windowed"])),
            "msre_running": float(np.mean(summary["running"])),
            # Ours over the best constant predictor's on the same window (1: nothing learned).
            "nmsre_windowed": float(np.mean(ratio)),
            "msre_constant_windowed": float(np.mean(base["constant_windowed"])),
            "msre_zero_windowed": float(np.mean(base["zero_windowed"])),
            "diverged": diverged,
            "diverged_at_step": int(np.argmax(nonfinite) * self.block) if diverged else -1,
        }
        for i, seed in enumerate(self.seeds):
            out[f"msre_windowed_seed{seed}"] = float(summary["windowed"][i])
            out[f"msre_running_seed{seed}"] = float(summary["running"][i])
            out[f"nmsre_windowed_seed{seed}"] = float(ratio[i])
        if diverged or not np.isfinite(out["msre_windowed"]):
            # the worst for the search
            out["msre_windowed"] = out["msre_running"] = out["nmsre_windowed"] = float("inf")
        return out

    def curve(self, since_block: int = 0) -> list[tuple[int, dict[str, float]]]:
        """``(step, values)`` at the end of every block from ``since_block`` on: the learning
        curve windowed over ``window`` steps, as ``curve_msre_windowed`` (mean over seeds)
        and ``curve_msre_windowed_seed{s}`` (each seed; a diverged seed is left out)."""
        stats = self.stats()
        window_blocks = max(1, self.window // self.block)
        curve = summarise_blocks(stats.sq_sum, stats.count, window_blocks)["curve"]
        const = baselines(stats.ret_sum, stats.ret_sq_sum, stats.count, window_blocks)
        ratio = normalised(curve, const["constant_curve"])
        finite = np.where(np.isfinite(curve), curve, np.nan)
        ratio = np.where(np.isfinite(ratio), ratio, np.nan)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a block where every seed diverged
            mean = np.nanmean(finite, axis=0)
            mean_ratio = np.nanmean(ratio, axis=0)
        points = []
        for b in range(since_block, curve.shape[-1]):
            if not np.isfinite(mean[b]):
                continue
            values = {"curve_msre_windowed": float(mean[b])}
            if np.isfinite(mean_ratio[b]):
                values["curve_nmsre_windowed"] = float(mean_ratio[b])
            for i, seed in enumerate(self.seeds):
                if np.isfinite(finite[i, b]):
                    values[f"curve_msre_windowed_seed{seed}"] = float(finite[i, b])
            points.append(((b + 1) * self.block, values))
        return points

    def ledger(self) -> dict[str, int]:
        """The learner's parameters and flops per step per stream (``learners.ledger``)."""
        entry = cost(self.learner.name, self.env.obs_size, self.learner.settings)
        return {"ledger_params": entry.params, "ledger_flops_per_step": entry.flops}

    def save(self, directory: str | Path, extra: dict[str, str] | None = None) -> Path:
        """Write the state (every leaf of the carry) and the metric history as one npz."""
        return save_state(directory, self.carry, self.blocks_done, self._history_arrays(), extra)

    def _history_arrays(self) -> dict[str, np.ndarray]:
        """What a checkpoint keeps of the history: each statistic, [seeds, blocks]."""
        fields = self.stats_type._fields
        if not self.history:
            return {f: np.zeros((len(self.seeds), 0)) for f in fields}
        return dict(zip(fields, self.stats(), strict=True))

    def restore(self, directory: str | Path) -> dict[str, str]:
        """Load what :meth:`save` wrote (the run then continues bit for bit); returns its
        ``extra``."""
        self.carry, self.blocks_done, hist, extra = load_state(directory, self.carry)
        self.history = [self.stats_type(*(hist[f] for f in self.stats_type._fields))]
        self._restored(hist)
        return extra

    def _restored(self, history: dict[str, np.ndarray]) -> None:
        """Take back what :meth:`_history_arrays` added beyond the statistics."""


def save_state(directory, carry, blocks_done: int, history: dict[str, np.ndarray],
               extra: dict[str, str] | None) -> Path:  # fmt: skip
    """A trial's checkpoint: the carry's leaves, blocks done, the history of per-block
    statistics (``hist_FIELD``) and ``extra`` (JSON)."""
    path = Path(directory) / CHECKPOINT_FILE
    np.savez(
        path,
        blocks_done=blocks_done,
        extra=np.asarray(json.dumps(extra or {})),
        **{f"hist_{k}": np.asarray(v) for k, v in history.items()},
        **{f"leaf{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(carry))},
    )
    return path


def load_state(directory, like):
    """``(carry, blocks_done, history, extra)`` from :func:`save_state`'s file; ``like`` gives
    the carry's tree structure."""
    treedef = jax.tree.structure(like)
    with np.load(Path(directory) / CHECKPOINT_FILE) as f:
        carry = jax.tree.unflatten(
            treedef, [jax.numpy.asarray(f[f"leaf{i}"]) for i in range(treedef.num_leaves)]
        )
        history = {k[5:]: f[k] for k in f.files if k.startswith("hist_")}
        if "nonfinite" in history:
            history["nonfinite"] = history["nonfinite"].astype(bool)
        return carry, int(f["blocks_done"]), history, json.loads(str(f["extra"]))


class ClassifyTrialRun(TrialRun):
    """A classification trial (sequential MNIST): the seeds vmapped into one program that
    advances ``chunk_steps`` at a time (``study.classify``), with the held-out images scored
    after every chunk. The same interface as :class:`TrialRun`; its objective is
    ``heldout_accuracy`` (higher is better)."""

    curve_key = "curve_accuracy_windowed"
    curve_label = "online accuracy, windowed"

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        name, static, hp_kw = config_to_args(config)
        hp_kw.pop("lambda_", None)  # no eligibility in a classifier: lambda does nothing
        task = config["task"]
        data_dir = config.get("data_dir")
        self.hp = make_hparams(gamma=0.0, **hp_kw)
        _schedule(self, config, block=2_800, window=28_000, chunk=28_000)
        self.learner, self.env, self._init, self._advance, self._evaluate = _classify_program(
            name, tuple(sorted(static.items())), bool(config.get("rmsprop", True)), task,
            self.block, data_dir,
        )  # fmt: skip
        _, tp = make_task(task, data_dir=data_dir)
        self.tp = jax.tree.map(jax.numpy.asarray, tp)
        self.carry = self._init(seed_keys(self.seeds), self.hp, self.tp)
        self.history: list[ClassifyStats] = []
        self.blocks_done = 0
        self.heldout: tuple[np.ndarray, np.ndarray] | None = None  # accuracy, CE per seed

    stats_type = ClassifyStats

    def advance(self) -> dict[str, Any]:
        """Run the next chunk, score the held-out images, and return the metrics."""
        steps_per_s = self._run_chunk()
        acc, ce = self._evaluate(self.carry.learner_state, self.hp, self.tp)
        self.heldout = (np.asarray(acc), np.asarray(ce))
        return self.metrics(steps_per_s)

    def metrics(self, steps_per_s: float = float("nan")) -> dict[str, Any]:
        stats = self.stats()
        window_blocks = max(1, min(self.window, self.steps_done) // self.block)
        err = summarise_blocks(stats.errors, stats.count, window_blocks)
        ce = summarise_blocks(stats.ce_sum, stats.count, window_blocks)
        nonfinite = stats.nonfinite.any(axis=0)
        diverged = bool(nonfinite.any())
        acc_heldout, ce_heldout = self.heldout if self.heldout else (np.nan, np.nan)
        acc_heldout = np.broadcast_to(acc_heldout, (len(self.seeds),))
        out: dict[str, Any] = {
            "steps_done": self.steps_done,
            "steps_per_s": steps_per_s,
            "images_done": int(stats.count.sum() // len(self.seeds)),
            "accuracy_windowed": float(np.mean(1.0 - err["windowed"])),
            "accuracy_running": float(np.mean(1.0 - err["running"])),
            "ce_windowed": float(np.mean(ce["windowed"])),
            "heldout_accuracy": float(np.mean(acc_heldout)),
            "heldout_ce": float(np.mean(ce_heldout)),
            "diverged": diverged,
            "diverged_at_step": int(np.argmax(nonfinite) * self.block) if diverged else -1,
        }
        for i, seed in enumerate(self.seeds):
            out[f"accuracy_windowed_seed{seed}"] = float(1.0 - err["windowed"][i])
            out[f"heldout_accuracy_seed{seed}"] = float(acc_heldout[i])
        if diverged or not np.isfinite(out["heldout_accuracy"]):
            # The worst result for the search (a diverged learner's argmax is meaningless).
            out["heldout_accuracy"] = out["accuracy_windowed"] = 0.0
        return out

    def curve(self, since_block: int = 0) -> list[tuple[int, dict[str, float]]]:
        """``(step, values)`` at the end of every block from ``since_block`` on: the online
        accuracy windowed over ``window`` steps (mean and per seed), and at the chunk's last
        block the held-out accuracy (``curve_heldout_accuracy``)."""
        stats = self.stats()
        window_blocks = max(1, self.window // self.block)
        err = summarise_blocks(stats.errors, stats.count, window_blocks)["curve"]
        points = []
        for b in range(since_block, err.shape[-1]):
            acc = 1.0 - err[:, b]
            if not np.all(np.isfinite(acc)):
                continue
            values = {self.curve_key: float(np.mean(acc))}
            for i, seed in enumerate(self.seeds):
                values[f"{self.curve_key}_seed{seed}"] = float(acc[i])
            if b == err.shape[-1] - 1 and self.heldout is not None:
                values["curve_heldout_accuracy"] = float(np.mean(self.heldout[0]))
            points.append(((b + 1) * self.block, values))
        return points

    def _history_arrays(self) -> dict[str, np.ndarray]:
        history = super()._history_arrays()
        if self.heldout is not None:
            history["heldout_acc"], history["heldout_ce"] = self.heldout
        return history

    def _restored(self, history: dict[str, np.ndarray]) -> None:
        if "heldout_acc" in history:
            self.heldout = (history["heldout_acc"], history["heldout_ce"])


def trial_run(config: dict[str, Any]) -> TrialRun | ClassifyTrialRun:
    """The trial of ``config``: classification for sequential MNIST, else prediction."""
    if is_classification(config.get("task", "trace_patterning")):
        return ClassifyTrialRun(config)
    return TrialRun(config)


def objective(task: str) -> tuple[str, str]:
    """``(metric, mode)`` a study of ``task`` optimises."""
    return ("heldout_accuracy", "max") if is_classification(task) else ("msre_windowed", "min")


@functools.lru_cache(maxsize=32)
def _classify_program(name: str, static: tuple, rmsprop: bool, task: str, block: int,
                      data_dir: str | None):  # fmt: skip
    """Learner, task and the jitted (vmapped over seeds) init, advance and held-out
    evaluation of one classification trial shape (cached like :func:`_program`)."""
    env, _ = make_task(task, data_dir=data_dir)
    learner = make_learner(name, env.obs_size, rmsprop=rmsprop, n_classes=env.n_classes,
                           **dict(static))  # fmt: skip
    runner = make_classify_runner(learner, env, block)
    init = jax.jit(jax.vmap(runner.init, in_axes=(0, None, None)))
    advance = jax.jit(jax.vmap(runner.advance, in_axes=(0, None, None, None)), static_argnums=3)
    evaluate = jax.jit(jax.vmap(make_evaluate(learner, env), in_axes=(0, None, None)))
    return learner, env, init, advance, evaluate


@functools.lru_cache(maxsize=32)
def _program(name: str, static: tuple, rmsprop: bool, task: str, block: int, gamma: float):
    """Learner, task and the jitted (vmapped over seeds) init and advance of one trial shape.

    Cached, so that trials of the same shape in one worker process (Tune reuses actors)
    compile once: hyperparameters and seeds are arguments of the compiled program, not
    constants in it."""
    env, _ = make_task(task)
    learner = make_learner(name, env.obs_size, rmsprop=rmsprop, **dict(static))
    runner = make_runner(learner, env, block, horizon_for(gamma))
    init = jax.jit(jax.vmap(runner.init, in_axes=(0, None, None)))
    advance = jax.jit(jax.vmap(runner.advance, in_axes=(0, None, None, None)), static_argnums=3)
    return learner, env, init, advance


class Clock:
    """Where a trial's time goes, in seconds, summed over the trial (since the trainable
    started in this process): ``wall``; ``compute`` (the compiled chunks, waiting for their
    results included); ``compile`` (JAX tracing, lowering and XLA compilation, from JAX's
    own monitoring events, wherever it happened); ``logging`` (every MLflow call);
    ``checkpoint`` (writing the checkpoint and ``tune.report``, which waits for the driver).
    ``loop = compute - compile inside compute`` is the time the compiled run loop (task,
    learner and metric) computed."""

    PARTS = ("compute", "compile", "logging", "checkpoint")
    _compile_total = [0.0]  # this process's compile seconds, from JAX's events
    _listening = [False]

    def __init__(self) -> None:
        if not Clock._listening[0]:
            jax.monitoring.register_event_duration_secs_listener(Clock._on_event)
            Clock._listening[0] = True
        self.t0 = time.perf_counter()
        self.compile0 = Clock._compile_total[0]
        self.totals = dict.fromkeys(self.PARTS, 0.0)
        self.compile_in_compute = 0.0

    @staticmethod
    def _on_event(event: str, duration: float, **_: Any) -> None:
        if event.startswith("/jax/core/compile/"):
            Clock._compile_total[0] += duration

    @contextlib.contextmanager
    def part(self, name: str):
        """Count the time inside the ``with`` block as ``name`` (also when it raises, as
        ``tune.report`` does when Tune stops the trial)."""
        t, compiled = time.perf_counter(), Clock._compile_total[0]
        try:
            yield
        finally:
            self.totals[name] += time.perf_counter() - t
            if name == "compute":
                self.compile_in_compute += Clock._compile_total[0] - compiled

    def metrics(self) -> dict[str, float]:
        out = {f"time_{k}_s": v for k, v in self.totals.items() if k != "compile"}
        out["time_compile_s"] = Clock._compile_total[0] - self.compile0
        out["time_loop_s"] = self.totals["compute"] - self.compile_in_compute
        out["time_wall_s"] = time.perf_counter() - self.t0
        return out


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


def actor_name(trial_id: str, config: dict[str, Any], reused: bool = False) -> str:
    """The trial's name in Ray: Tune trial id, then ``study.console.trial_label``."""
    from study.console import trial_label

    name = f"{trial_id} {trial_label(config)}"
    return f"{name} (reused worker)" if reused else name


def trainable(config: dict[str, Any], tracking: Tracking | None = None) -> None:
    """Ray Tune function trainable: run, report after every chunk with a checkpoint, stop on
    divergence. Resumes from ``ray.tune.get_checkpoint()`` when Tune restarts the trial. With
    ``tracking`` (``tune.with_parameters``) the trial logs to its own MLflow child run, which a
    resumed trial keeps using."""
    from ray import tune

    # XLA's CPU pool sized to the CPUs Ray reserved for the trial (study.threads), before
    # anything in this worker starts JAX's backends.
    threads = limit_xla_threads(trial_threads())
    clock = Clock()
    if "fixed" in config:  # an evaluation: the configuration Tune's grid search picked
        config = {**{k: v for k, v in config.items() if k != "fixed"}, **config["fixed"]}
    run = trial_run(config)
    run_id = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            run_id = run.restore(d).get("mlflow_run_id")
    logger = None
    if tracking is not None:
        context = tune.get_context()
        with clock.part("logging"):
            logger = TrialLogger.start(tracking, run_id, context.get_trial_id(),
                                       context.get_trial_name(), config, run, threads)  # fmt: skip
    metrics: dict[str, Any] = {}
    status = "running"

    def close(outcome: str) -> None:
        nonlocal status
        status = outcome
        if logger is not None:
            with clock.part("logging"):
                logger.end(outcome, final_metrics({**metrics, **clock.metrics()}))

    try:
        while not run.finished:
            before = run.blocks_done
            with clock.part("compute"):
                metrics = run.advance()
            if logger is not None:
                with clock.part("logging"):
                    logger.log_curve(run.curve(since_block=before))
            metrics.update(clock.metrics())
            # The run is closed before its last report: a scheduler may stop the trial
            # inside that report (as ASHA does at max_t).
            if metrics["diverged"] or run.finished:
                close("diverged" if metrics["diverged"] else "finished")
            with clock.part("checkpoint"), tempfile.TemporaryDirectory() as d:
                extra = {"mlflow_run_id": logger.run_id} if logger else {}
                run.save(d, extra)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
            if metrics["diverged"]:
                break
        if logger is not None:  # the whole trial's timing, last report and closing included
            logger.log_final({f"trial_{k}": v for k, v in clock.metrics().items()})
    except SystemExit:  # Tune stops the trial inside report(): a scheduler's decision
        if status == "running":
            close("stopped_early")
        raise
    except Exception:
        if status == "running":
            close("failed")
        raise


trainable.__mixins__ = (NamedActor,)  # type: ignore[attr-defined]


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The numbers a trial reports (not the flags, nor the keys Tune adds), as logged as a
    run's final metrics."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if (
            k.startswith(("msre_", "nmsre_", "accuracy_", "heldout_", "ce_", "time_"))
            or k in ("steps_done", "steps_per_s", "diverged_at_step", "images_done")
        )
        and isinstance(v, int | float)
        and not isinstance(v, bool)
    }
