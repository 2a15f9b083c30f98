"""Task kinds: what a trial of a task optimises, records and reports.

A task is a *prediction* task (the animal-learning testbed: the learner predicts a discounted
return, scored by MSRE, lower is better) or a *classification* task (sequential MNIST: scored
by held-out accuracy, higher is better). The kind owns everything that differs between the
two, so the trial, the launch, the comparison and the report ask it instead of branching:

- the objective (``metric``, ``mode``), the report's measure (``final``, ``label``, ``log``),
  the learning curve's MLflow key and label, a trial's default block, window and chunk;
- the compiled program of a trial shape (:meth:`TaskKind.program`), the metrics of one
  configuration's statistics (:meth:`TaskKind.metrics`), its curve points
  (:meth:`TaskKind.curve_points`) and what runs every ``chunk_steps`` steps and at the end
  (:meth:`TaskKind.scheduled`: held-out scoring), at those steps whatever the chunks' lengths;
- one summary of a configuration's record (:meth:`TaskKind.summary`: its per-seed values,
  which seeds diverged, the verdict's mean and interval and its words), from which every
  command formats and nothing computes again; whether a trial learned anything
  (:meth:`TaskKind.verdict`, from ``study.stats.learned``).

A kind reads statistics and returns numbers: it is given a :class:`Record` (one
configuration's statistics and schedule records, seeds, block and window), never a trial.

``kind_of(task)`` gives a task's kind. Nothing here imports JAX until a program is built.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from study.engine.record import Record, Summary  # noqa: F401 - re-exported
from study.tasks import is_atari, is_classification
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
    label: str  # axis label of the final value
    log: bool  # a log axis for the final value
    curve: str  # MLflow key of the learning curve (per seed: CURVE_seed{s})
    curve_label: str  # axis label of the curve
    figure_curve: str  # the curve a trial's learning_curve.png draws, each seed's
    figure_label: str  # its axis label
    old_curve: str  # the curve's key in studies recorded before curves were named curve_*
    block: int  # default steps per block (one point of the curve)
    window: int  # default steps of the windowed measure
    chunk: int  # default steps between two reports of a trial
    takes_data_dir: bool  # the task reads files (--data-dir)
    task_options: tuple[str, ...]  # trial configuration keys passed on to make_task
    reported: tuple[str, ...]  # the prefixes of the metrics a run records as final
    reading: str  # how to read a study of this kind in MLflow (its experiment's description)
    # whether a trial learned: the per-seed values of verdict_key against no_learning
    verdict_key: str
    no_learning: float  # what a learner that learned nothing scores
    verdict_text: str  # the values' name in a verdict
    no_learning_text: str
    not_learned: str  # why not, in a verdict

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
        return Summary(record.seeds, columns, diverged, mean, half, ok,
                       self.verdict_words(values))  # fmt: skip

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

    def conclusion(self, learned: bool) -> str:
        """The verdict's last words: learned, or why not."""
        return "learned" if learned else f"NOT LEARNED: {self.not_learned}"

    def learned(self, values: np.ndarray) -> tuple[float, float, bool]:
        """``(mean, 95% half-width, learned)`` of the per-seed ``verdict_key`` values
        (``study.stats.learned``)."""
        from study.stats import learned

        return learned(values, self.no_learning, self.higher_better)

    def verdict_words(self, values: np.ndarray) -> str:
        """One line saying whether per-seed ``verdict_key`` values show learning: their mean
        and 95% interval against what no learning scores (``no_learning``), over the finite
        seeds, with the diverged seeds counted apart (a diverged seed shows no learning)."""
        values = np.asarray(values, np.float64).ravel()
        finite = values[np.isfinite(values)]
        gone = values.size - finite.size
        apart = f"; {gone} of {values.size} seeds diverged" if gone else ""
        if finite.size < 2:
            shown = f"{finite[0]:.3f} on 1 finite seed" if finite.size else "no finite seed"
            return (f"{self.verdict_text} {shown} ({self.no_learning_text}{apart}): not shown "
                    f"either way: one seed gives no interval (run 2 or more)")  # fmt: skip
        mean, half, ok = self.learned(finite)
        ok = ok and not gone
        return (f"{self.verdict_text} {mean:.3f} ± {half:.3f} (95% CI over {finite.size} "
                f"{'finite ' if gone else ''}seeds; {self.no_learning_text}{apart}): "
                f"{self.conclusion(ok)}")  # fmt: skip

    def verdict(self, metrics: dict[str, Any]) -> str:
        """:meth:`verdict_words` of a trial's last report ``metrics`` (its per-seed
        ``verdict_key`` values); empty without them."""
        prefix = f"{self.verdict_key}_seed"
        values = [metrics[k] for k in metrics if k.startswith(prefix)]
        return self.verdict_words(np.asarray(values, np.float64)) if values else ""


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
    label="final windowed MSRE", log=True, curve="windowed MSRE/curve_msre_windowed",
    curve_label="windowed MSRE", old_curve="msre_windowed_curve",
    figure_curve=NORMALISED_CURVE,
    figure_label="normalised MSRE",
    block=10_000, window=100_000, chunk=200_000, takes_data_dir=False, task_options=("gamma",),
    reported=("msre_", "nmsre_"),
    verdict_key="nmsre_windowed", no_learning=1.0, verdict_text="normalised MSRE",
    no_learning_text="1 = the best constant predictor's",
    not_learned="a constant predictor does as well",
    reading="The runs are listed best first by `final_nmsre_windowed`, the final windowed "
    "MSRE over the best constant predictor's (below 1: something was learned), with its 95% "
    "interval over seeds (`_ci95`) and the verdict (`learned`: the whole interval below 1). "
    "Each run's `curve_nmsre_windowed` and `curve_msre_windowed` are its learning curves "
    "against environment steps; its `learning_curve.png` draws every seed's normalised MSRE "
    "with a line at 1, and `finals.json` holds every final number.",
)  # fmt: skip
CLASSIFICATION = Classification(
    name="classification", metric="heldout_accuracy", mode="max", measure="accuracy",
    label="final held-out accuracy", log=False, curve="online accuracy/curve_accuracy_windowed",
    curve_label="online accuracy (windowed)", old_curve="accuracy_windowed_curve",
    figure_curve="online accuracy/curve_accuracy_windowed",
    figure_label="online accuracy (windowed)",
    block=2_800, window=28_000, chunk=28_000, takes_data_dir=True, task_options=("data_dir",),
    reported=("accuracy_", "heldout_", "ce_", "images_done"),
    verdict_key="heldout_accuracy", no_learning=0.1, verdict_text="held-out accuracy",
    no_learning_text="chance 0.1", not_learned="no better than chance",
    reading="The runs are listed best first by `final_heldout_accuracy`, the accuracy on "
    "held-out images scored without learning (chance is 0.1), with its 95% interval over "
    "seeds (`_ci95`) and the verdict (`learned`: the whole interval above chance). Each run's "
    "`curve_accuracy_windowed` (online accuracy, before learning from each image) and "
    "`curve_heldout_accuracy` are its learning curves against environment steps (one step "
    "per pixel row); its `learning_curve.png` draws every seed's online accuracy with a line "
    "at chance, and `finals.json` holds every final number.",
)  # fmt: skip
# The Atari prediction benchmark: prediction on a recorded stream of 250,000 frames read from
# the traces folder (``data_dir``); its windowed measure is the last 50,000 steps (a fifth).
ATARI = replace(PREDICTION, window=50_000, chunk=50_000, takes_data_dir=True,
                task_options=("gamma", "data_dir"))  # fmt: skip
KINDS = (PREDICTION, CLASSIFICATION)


def kind_of(task: str) -> TaskKind:
    """The kind of task ``task`` (a name of ``study.tasks.TASKS``)."""
    if is_classification(task):
        return CLASSIFICATION
    return ATARI if is_atari(task) else PREDICTION
