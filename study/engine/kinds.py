"""Task kinds: what a trial of a task optimises, records and reports.

A task is a *prediction* task (the animal-learning testbed: the learner predicts a discounted
return, scored by MSRE, lower is better) or a *classification* task (sequential MNIST: scored
by held-out accuracy, higher is better). The kind owns everything that differs between the
two, so the trial, the launch, the comparison and the report ask it instead of branching:

- the objective (``metric``, ``mode``), the report's measure (``final``, ``log``), the
  learning curve's MLflow key, a trial's default block, window and chunk;
- the compiled program of a trial shape (:meth:`TaskKind.program`), the metrics of one
  configuration's statistics (:meth:`TaskKind.metrics`), its curve points
  (:meth:`TaskKind.curve_points`) and what runs every ``chunk_steps`` steps and at the end
  (:meth:`TaskKind.scheduled`: held-out scoring), at those steps whatever the chunks' lengths;
- one summary of a configuration's record (:meth:`TaskKind.summary`: its per-seed values,
  which seeds diverged, the verdict's mean and interval), from which every command formats
  and nothing computes again; whether values show learning (:meth:`TaskKind.learned`, from
  ``study.stats.learned``).

A kind reads statistics and returns numbers: it is given a :class:`Record` (one
configuration's statistics and schedule records, seeds, block and window), never a trial.
What its numbers are called for people (labels, the verdict's sentence, how to read a study
in MLflow) is ``study.present.words``, looked up by the kind's name.

A task names its kind when it is registered (``study.tasks.Task.kind``); ``kind_of(task)``
gives it. Nothing here imports JAX until a program is built.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from study.engine.record import Record, Summary  # noqa: F401 - re-exported
from study.tasks import find_task
from study.tasks.metrics import baselines, normalised, summarise_blocks

# A learning curve's MLflow key is SECTION/NAME: MLflow's Model metrics tab draws each section
# apart, in the sections' alphabetical order, before the finals (which have no section), and
# a curve's seeds (NAME_seed{s}) beside their mean. Runs recorded before sections logged NAME
# alone (``study.records.study.history`` reads both).
NORMALISED_CURVE = "normalised MSRE/curve_nmsre_windowed"
HELDOUT_CURVE = "held-out accuracy/curve_heldout_accuracy"


@dataclass(frozen=True)
class TaskKind:
    """The names and defaults of a kind; subclasses add its run-time behaviour."""

    name: str  # "prediction" or "classification"
    metric: str  # what a study optimises (a key of every report)
    mode: str  # "min" or "max"
    measure: str  # its column name in a report's tables ("msre", "accuracy")
    log: bool  # a log axis for the final value
    curve: str  # MLflow key of the learning curve (per seed: CURVE_seed{s})
    figure_curve: str  # the curve a trial's learning_curve.png draws, each seed's
    old_curve: str  # the curve's key in studies recorded before curves were named curve_*
    block: int  # default steps per block (one point of the curve)
    window: int  # default steps of the windowed measure
    chunk: int  # default steps between two reports of a trial
    takes_data_dir: bool  # the task reads files (--data-dir)
    task_options: tuple[str, ...]  # trial configuration keys passed on to make_task
    reported: tuple[str, ...]  # the prefixes of the metrics a run records as final
    # whether a trial learned: the per-seed values of verdict_key against no_learning
    verdict_key: str
    no_learning: float  # what a learner that learned nothing scores

    @property
    def final(self) -> str:
        """MLflow key of a trial's final value (per seed: FINAL_seed{s})."""
        return f"final_{self.metric}"

    @property
    def higher_better(self) -> bool:
        return self.mode == "max"

    @property
    def worst(self) -> float:
        return -math.inf if self.higher_better else math.inf

    def best(self, trials: list[Any]) -> Any:
        """The trial with the best ``final`` attribute."""
        return (max if self.higher_better else min)(trials, key=lambda t: t.final)

    # -- run time (overridden) ---------------------------------------------------------------

    @property
    def stats_type(self) -> type:
        """The NamedTuple of per-block statistics the kind's loop returns."""
        raise NotImplementedError

    def hparams(self, hp_kw: dict[str, Any], params: Any) -> Any:
        """The learner's ``HParams`` from a configuration's (``config_to_args``) on this kind's
        task of parameters ``params`` (which set the discount)."""
        raise NotImplementedError

    def program(self, name: str, static: tuple, rmsprop: bool, task: str, block: int,
                options: tuple = ()) -> Any:  # fmt: skip
        """The compiled program of a trial shape: learner ``name`` with ``static`` settings
        on ``task`` (with ``options``, ``(key, value)`` pairs of ``task_options`` for
        ``make_task``), ``block`` steps per call; cached per worker process."""
        raise NotImplementedError

    def program_of(self, learner: Any, env: Any, params: Any, block: int,
                   engine: str | None = None) -> Any:  # fmt: skip
        """The same program for a learner and task given as objects (``study.bench`` times a
        learner that no family builds, as the autodiff variants); ``engine`` as
        ``study.engine.loop.make_runner`` takes it (None: ``study.native.engine`` chooses)."""
        raise NotImplementedError

    def curve_points(self, record: Record, since_block: int) -> list[tuple[int, dict[str, float]]]:
        """``(step, values)`` at the end of every block from ``since_block`` on."""
        raise NotImplementedError

    def scheduled(self, program: Any, carry: Any, hp: Any, tp: Any,
                  block: int) -> dict[str, np.ndarray]:  # fmt: skip
        """What runs every ``chunk_steps`` steps of a trial and after its last step, given
        the trial's program and state after block ``block`` (0-based): the arrays to record
        (first axis: the streams), at steps the configuration sets, never at steps a chunk's
        timing sets. Nothing by default."""
        return {}

    def columns(self, record: Record) -> dict[str, np.ndarray]:
        """Every per-seed value of one configuration's statistics so far, by metric name."""
        raise NotImplementedError

    per_seed: ClassVar[tuple[str, ...]] = ()  # the columns also recorded seed by seed

    def summary(self, record: Record) -> Summary:
        """The one summary of a record (:class:`Summary`)."""
        columns = self.columns(record)
        values = columns[self.verdict_key]
        mean, half, ok = self.learned(values)
        diverged = np.asarray(record.stats.nonfinite).any(axis=-1)
        return Summary(record.seeds, columns, diverged, mean, half, ok)

    def metrics(self, record: Record) -> dict[str, Any]:
        """The kind's numbers of one configuration's statistics so far: each column's mean,
        the ``per_seed`` columns seed by seed, and the objective at its worst once a seed
        diverged (``steps_done``, the rates and the divergence flags are the trial's)."""
        columns = self.columns(record)
        out: dict[str, Any] = {k: float(np.mean(v)) for k, v in columns.items()}
        for name in self.per_seed:
            pairs = zip(record.seeds, columns[name], strict=True)
            out.update({f"{name}_seed{s}": float(v) for s, v in pairs})
        return out

    def learned(self, values: np.ndarray) -> tuple[float, float, bool]:
        """``(mean, 95% half-width, learned)`` of the per-seed ``verdict_key`` values
        (``study.stats.learned``)."""
        from study.stats import learned

        return learned(values, self.no_learning, self.higher_better)


class Prediction(TaskKind):
    @property
    def stats_type(self) -> type:
        from study.engine.loop import BlockStats

        return BlockStats

    def hparams(self, hp_kw: dict[str, Any], params: Any) -> Any:
        from learners import make_hparams

        return make_hparams(gamma=float(params.gamma), **hp_kw)

    def program(self, name, static, rmsprop, task, block, options=()):
        from study.engine.program import prediction_program

        return prediction_program(name, static, rmsprop, task, block, options)

    def program_of(self, learner, env, params, block, engine=None):
        from study.engine.program import prediction_program_of

        return prediction_program_of(learner, env, params, block, engine)

    per_seed = ("msre_windowed", "msre_running", "nmsre_windowed")

    def columns(self, record: Record) -> dict[str, np.ndarray]:
        """The MSRE windowed and running, the normalised MSRE (ours over the best constant
        predictor's on the same window: 1, nothing learned), and the constant's and zero's
        windowed MSRE."""
        stats, window_blocks = record.stats, record.window_blocks
        summary = summarise_blocks(stats.sq_sum, stats.count, window_blocks)
        base = baselines(stats.ret_sum, stats.ret_sq_sum, stats.count, window_blocks)
        return {
            "msre_windowed": summary["windowed"],
            "msre_running": summary["running"],
            "nmsre_windowed": normalised(summary["windowed"], base["constant_windowed"]),
            "msre_constant_windowed": base["constant_windowed"],
            "msre_zero_windowed": base["zero_windowed"],
        }

    def metrics(self, record: Record) -> dict[str, Any]:
        out = super().metrics(record)
        if bool(record.stats.nonfinite.any()) or not np.isfinite(out["msre_windowed"]):
            # the worst for the search
            out["msre_windowed"] = out["msre_running"] = out["nmsre_windowed"] = math.inf
        return out

    def curve_points(self, record: Record, since_block: int) -> list[tuple[int, dict[str, float]]]:
        """The MSRE windowed over ``window`` steps, as ``curve`` (mean over seeds) and
        :data:`NORMALISED_CURVE`, and each with ``_seed{s}`` (each seed; a diverged seed is
        left out)."""
        stats, window_blocks = record.stats, record.curve_window_blocks
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
            values = {self.curve: float(mean[b])}
            if np.isfinite(mean_ratio[b]):
                values[NORMALISED_CURVE] = float(mean_ratio[b])
            for i, seed in enumerate(record.seeds):
                if np.isfinite(finite[i, b]):
                    values[f"{self.curve}_seed{seed}"] = float(finite[i, b])
                if np.isfinite(ratio[i, b]):
                    values[f"{NORMALISED_CURVE}_seed{seed}"] = float(ratio[i, b])
            points.append(((b + 1) * record.block, values))
        return points


class Classification(TaskKind):
    @property
    def stats_type(self) -> type:
        from study.engine.classify import ClassifyStats

        return ClassifyStats

    def hparams(self, hp_kw: dict[str, Any], params: Any) -> Any:
        from learners import make_hparams

        # No discounting, so no eligibility in a classifier: lambda does nothing.
        return make_hparams(gamma=0.0, **{k: v for k, v in hp_kw.items() if k != "lambda_"})

    def program(self, name, static, rmsprop, task, block, options=()):
        from study.engine.program import classification_program

        return classification_program(name, static, rmsprop, task, block, options)

    def program_of(self, learner, env, params, block, engine=None):
        from study.engine.program import classification_program_of

        return classification_program_of(learner, env, params, block)

    def scheduled(self, program, carry, hp, tp, block):
        """Score the held-out images (accuracy and cross-entropy per seed), and keep the
        accuracy of this block for the curve (``heldout_acc_at{block}``)."""
        acc, ce = (np.asarray(a) for a in program.evaluate(carry.learner_state, hp, tp))
        return {"heldout_acc": acc, "heldout_ce": ce, f"heldout_acc_at{block}": acc}

    per_seed = ("accuracy_windowed", "heldout_accuracy")

    def columns(self, record: Record) -> dict[str, np.ndarray]:
        """The online accuracy and cross-entropy (windowed; the accuracy also running) and
        the held-out accuracy and cross-entropy scored without learning."""
        stats, window_blocks, extra = record.stats, record.window_blocks, record.extra
        err = summarise_blocks(stats.errors, stats.count, window_blocks)
        ce = summarise_blocks(stats.ce_sum, stats.count, window_blocks)
        seeds = (len(record.seeds),)
        return {
            "accuracy_windowed": 1.0 - err["windowed"],
            "accuracy_running": 1.0 - err["running"],
            "ce_windowed": ce["windowed"],
            "heldout_accuracy": np.broadcast_to(extra.get("heldout_acc", np.nan), seeds),
            "heldout_ce": np.broadcast_to(extra.get("heldout_ce", np.nan), seeds),
        }

    def metrics(self, record: Record) -> dict[str, Any]:
        out = {"images_done": int(record.stats.count.sum() // len(record.seeds)),
               **super().metrics(record)}  # fmt: skip
        if bool(record.stats.nonfinite.any()) or not np.isfinite(out["heldout_accuracy"]):
            # The worst result for the search (a diverged learner's argmax is meaningless).
            out["heldout_accuracy"] = out["accuracy_windowed"] = 0.0
        return out

    def curve_points(self, record: Record, since_block: int) -> list[tuple[int, dict[str, float]]]:
        """The online accuracy windowed over ``window`` steps (mean and per seed), and at the
        blocks where it was scored (``on_schedule``) the held-out accuracy
        (:data:`HELDOUT_CURVE`)."""
        stats, window_blocks = record.stats, record.curve_window_blocks
        err = summarise_blocks(stats.errors, stats.count, window_blocks)["curve"]
        points = []
        for b in range(since_block, err.shape[-1]):
            acc = 1.0 - err[:, b]
            if not np.all(np.isfinite(acc)):
                continue
            values = {self.curve: float(np.mean(acc))}
            for i, seed in enumerate(record.seeds):
                values[f"{self.curve}_seed{seed}"] = float(acc[i])
            held = record.extra.get(f"heldout_acc_at{b}")
            if held is not None:
                values[HELDOUT_CURVE] = float(np.mean(held))
            points.append(((b + 1) * record.block, values))
        return points


PREDICTION = Prediction(
    name="prediction", metric="msre_windowed", mode="min", measure="msre",
    log=True, curve="windowed MSRE/curve_msre_windowed", old_curve="msre_windowed_curve",
    figure_curve=NORMALISED_CURVE,
    block=10_000, window=100_000, chunk=200_000, takes_data_dir=False, task_options=("gamma",),
    reported=("msre_", "nmsre_"),
    verdict_key="nmsre_windowed", no_learning=1.0,
)  # fmt: skip
CLASSIFICATION = Classification(
    name="classification", metric="heldout_accuracy", mode="max", measure="accuracy",
    log=False, curve="online accuracy/curve_accuracy_windowed",
    old_curve="accuracy_windowed_curve", figure_curve="online accuracy/curve_accuracy_windowed",
    block=2_800, window=28_000, chunk=28_000, takes_data_dir=True, task_options=("data_dir",),
    reported=("accuracy_", "heldout_", "ce_", "images_done"),
    verdict_key="heldout_accuracy", no_learning=0.1,
)  # fmt: skip
# The Atari prediction benchmark: prediction on a recorded stream of 250,000 frames read from
# the traces folder (``data_dir``); its windowed measure is the last 50,000 steps (a fifth).
ATARI = replace(PREDICTION, window=50_000, chunk=50_000, takes_data_dir=True,
                task_options=("gamma", "data_dir"))  # fmt: skip
KINDS = (PREDICTION, CLASSIFICATION)
BY_NAME = {"prediction": PREDICTION, "classification": CLASSIFICATION, "atari": ATARI}


def kind_of(task: str) -> TaskKind:
    """The kind of task ``task`` (a name of ``study.tasks.TASKS``), as its registration
    names it."""
    return BY_NAME[find_task(task).kind]
