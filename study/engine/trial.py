"""A trial: one configuration (or a pack of K of one shape) on S seeds at once, as one
compiled program.

:class:`TrialRun` holds a trial's compiled program and state: the seeds are vmapped into one
program, which advances ``chunk_steps`` at a time (a chunk is seconds of work) and can be saved and
restored bit for bit. What it measures and draws is its task kind's (``study.engine.kinds``). It
knows nothing of Ray or MLflow: ``study.orchestration.trainable`` runs it under Ray Tune, and
``study.records`` records it.

Trial configuration keys: those of a search space (``learner``, sizes, hyperparameters; see
``learners.registry.config_to_args``) plus ``task``, ``seeds`` (list of ints), ``steps``,
``chunk_steps``, ``block`` and ``window`` (steps), and optionally ``rmsprop``, ``gamma``
(prediction: the discount, default the task's), ``data_dir`` (classification) and
``report_min_s`` (the shortest chunk in seconds; 0 makes chunks exactly ``chunk_steps``).

It is the one engine: studies' trials (``study.orchestration.trainable``), ``python -m study.run``
and ``study.defaults`` (:func:`finish`), and the fixed runs of ``study.bench.fingerprint`` all run a
``TrialRun``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from learners.registry import cost
from study.engine.kinds import Record, kind_of
from study.engine.loop import seed_keys
from study.engine.memory import check as check_memory
from study.engine.pack import members_of, pack_metrics, shape_of, stream_hparams
from study.tasks import DEFAULT_TASK

CHECKPOINT_FILE = "trial.npz"
# A trial reports (metrics, curve points, checkpoint) at least every REPORT_S seconds, and
# at most every REPORT_MIN_S: a chunk of fast blocks runs on until then, so that checkpoints
# a fraction of a second apart never force Tune into back-to-back experiment snapshots.
REPORT_S = 20.0
REPORT_MIN_S = 2.0
# A trial whose reports take more than OVERHEAD of its time runs longer chunks (``pace``),
# up to REPORT_MAX_S seconds.
OVERHEAD = 0.04
REPORT_MAX_S = 120.0


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


class Report(NamedTuple):
    """What a chunk of a trial gives: the trial's metrics (a pack's: its best member's, with
    every member's objective beside them; ``study.engine.pack.pack_metrics``) and each
    configuration's own, as its lone trial would report them."""

    metrics: dict[str, Any]
    members: list[dict[str, Any]]


class TrialRun:
    """A trial's learner, task and state; ``advance()`` runs one chunk and returns its
    :class:`Report`. What differs between prediction and classification (the program, the
    metrics, the curve, held-out scoring) is the task's kind's (``study.engine.kinds``), which it
    asks with each configuration's statistics (``record``). A trial of a pack (a ``pack``
    key: a list of configurations of one shape) runs them all as one program."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        task = config.get("task", DEFAULT_TASK)
        self.kind = kind_of(task)
        # A pack (``study.engine.pack``) runs several configurations of one shape; a lone trial is a
        # pack of one. Streams are member-major: member i's seeds are rows i*S .. i*S+S-1.
        self.members = members_of(config)
        name, static, hp_kws, rmsprop = shape_of(self.members)
        _schedule(self, config, block=self.kind.block, window=self.kind.window,
                  chunk=self.kind.chunk)  # fmt: skip
        options = tuple((k, config[k]) for k in self.kind.task_options
                        if config.get(k) is not None)  # fmt: skip
        self.program = self.kind.program(name, tuple(sorted(static.items())), rmsprop, task,
                                         self.block, options)  # fmt: skip
        self.learner, self.env = self.program.learner, self.program.env
        self.tp = self.program.params
        self.hp = stream_hparams([self.kind.hparams(kw, self.tp) for kw in hp_kws],
                                 len(self.seeds))  # fmt: skip
        entry = cost(self.learner.name, self.env.obs_size, self.learner.settings)
        s, k = len(self.seeds), len(self.members)
        what = f"{s} seed{'s' * (s > 1)} x {k} configuration{'s' * (k > 1)}"
        check_memory(self.learner.name, self.learner.settings, entry.state_bytes, entry.params,
                     s * k, what)  # fmt: skip
        keys = seed_keys(self.seeds * len(self.members))
        self.carry = self.program.init(keys, self.hp, self.tp)
        self.history: list[Any] = []
        self.extra: dict[str, np.ndarray] = {}  # what the kind keeps beyond the statistics
        self.blocks_done = 0
        self.min_chunk_s = self.report_min_s  # raised when reporting takes long (``pace``)

    @property
    def pack_size(self) -> int:
        return len(self.members)

    def record(self, i: int = 0) -> Record:
        """Configuration ``i``'s statistics and what its kind recorded on schedule (its
        seeds' rows of the trial's streams, member-major), as its kind reads them."""
        s = len(self.seeds)
        rows, n = slice(i * s, (i + 1) * s), s * self.pack_size
        stats = self.stats()
        extra = {k: (v[rows] if np.ndim(v) and np.shape(v)[0] == n else v)
                 for k, v in self.extra.items()}  # fmt: skip
        return Record(type(stats)(*(field[rows] for field in stats)), tuple(self.seeds),
                      self.block, self.window, self.steps_done, extra)  # fmt: skip

    @property
    def curve_key(self) -> str:
        return self.kind.curve

    @property
    def stats_type(self) -> type:
        return self.kind.stats_type

    @property
    def steps_done(self) -> int:
        return self.blocks_done * self.block

    @property
    def finished(self) -> bool:
        return self.steps_done >= self.steps

    def stats(self):
        """The history of per-block statistics, blocks concatenated: [streams, blocks] each
        (streams: the seeds, or a pack's members x seeds). The history is kept concatenated,
        so that asking once per member of a pack costs nothing."""
        if len(self.history) > 1:
            whole = [np.concatenate(p, axis=-1) for p in zip(*self.history, strict=True)]
            self.history = [self.stats_type(*whole)]
        return self.history[0]

    def pace(self, overhead_s: float, chunk_s: float) -> None:
        """Lengthen the next chunks when a report (logging, checkpoint) took more than
        ``OVERHEAD`` of the chunk before it, as a large pack's K runs can: the study's
        overhead stays within that fraction, up to chunks of ``REPORT_MAX_S``. A trial told
        to report after every chunk (``report_min_s`` 0, as for ASHA's rungs) still does."""
        if self.report_min_s > 0 and chunk_s > 0 and overhead_s > OVERHEAD * chunk_s:
            self.min_chunk_s = min(REPORT_MAX_S, max(self.report_min_s, overhead_s / OVERHEAD))

    def _run_chunk(self) -> float:
        """Run the next chunk: ``chunk_blocks`` blocks, or fewer once ``REPORT_S`` seconds
        have passed, so that a trial reports within seconds of its start (compilation
        included) however slow its learner; or more until ``min_chunk_s`` seconds have
        passed (``report_min_s``, or longer when reports are slow: ``pace``), however fast;
        never past the run's end. Blocks run one compiled call each (one program for every
        chunk length; a block is thousands of steps, so a call's fixed cost is a fraction of
        a percent). Returns steps per second (of each stream)."""
        total = self.steps // self.block
        left = total - self.blocks_done
        longest = max(REPORT_S, self.min_chunk_s)
        t0 = time.perf_counter()
        n = 0
        while n < left:
            self.carry, stats = self.program.advance(self.carry, self.hp, self.tp, 1)
            self.history.append(self.stats_type(*jax.tree.map(np.asarray, stats)))
            n += 1
            self.blocks_done += 1
            # What the kind records on a schedule (held-out scoring) happens at steps that
            # the configuration sets, however long this chunk turns out to be.
            if self.blocks_done % self.chunk_blocks == 0 or self.blocks_done == total:
                self.extra.update(self.kind.scheduled(self.program, self.carry, self.hp,
                                                      self.tp, self.blocks_done - 1))  # fmt: skip
            elapsed = time.perf_counter() - t0
            if elapsed > longest or (n >= self.chunk_blocks and elapsed >= self.min_chunk_s):
                break
        return n * self.block / (time.perf_counter() - t0)

    def advance(self) -> Report:
        """Run the next chunk (or what is left of the run) and return its report."""
        return self.report(self._run_chunk())

    def report(self, steps_per_s: float = float("nan")) -> Report:
        """The trial's numbers so far: each configuration's (``member_metrics``) and the
        trial's (a pack's: ``study.engine.pack.pack_metrics``)."""
        each = [self.member_metrics(i, steps_per_s) for i in range(self.pack_size)]
        return Report(each[0] if self.pack_size == 1 else pack_metrics(self.kind, each), each)

    def member_metrics(self, i: int, steps_per_s: float = float("nan")) -> dict[str, Any]:
        """Configuration ``i``'s numbers: steps, speed, divergence (the first block any seed's
        prediction was not finite) and its kind's (``study.engine.kinds``)."""
        record = self.record(i)
        nonfinite = record.stats.nonfinite.any(axis=0)  # [blocks]: any seed
        diverged = bool(nonfinite.any())
        every = bool(record.stats.nonfinite.any(axis=-1).all())  # every seed has diverged
        return {
            "steps_done": self.steps_done,
            "steps_per_s": steps_per_s,
            **self.kind.metrics(record),
            "diverged": diverged,
            "diverged_every_seed": every,
            "diverged_at_step": int(np.argmax(nonfinite) * self.block) if diverged else -1,
        }

    def curve(self, since_block: int = 0, member: int = 0) -> list[tuple[int, dict[str, float]]]:
        """``(step, values)`` at the end of every block from ``since_block`` on: the kind's
        learning curve of configuration ``member``, mean over seeds (``curve_key``) and per
        seed (``curve_key_seed{s}``)."""
        return self.kind.curve_points(self.record(member), since_block)

    def ledger(self) -> dict[str, int]:
        """The learner's parameters and flops per step per stream (``learners.ledger``)."""
        entry = cost(self.learner.name, self.env.obs_size, self.learner.settings)
        return {"ledger_params": entry.params, "ledger_flops_per_step": entry.flops}

    def save(self, directory: str | Path, extra: dict[str, str] | None = None) -> Path:
        """Write the state (every leaf of the carry) and the metric history as one npz."""
        return save_state(directory, self.carry, self.blocks_done, self._history_arrays(), extra)

    def _history_arrays(self) -> dict[str, np.ndarray]:
        """What a checkpoint keeps of the history: each statistic, [seeds, blocks], and what
        the kind keeps beyond them."""
        fields = self.stats_type._fields
        if not self.history:
            history = {f: np.zeros((len(self.seeds) * self.pack_size, 0)) for f in fields}
        else:
            history = dict(zip(fields, self.stats(), strict=True))
        return {**history, **self.extra}

    def restore(self, directory: str | Path) -> dict[str, str]:
        """Load what :meth:`save` wrote (the run then continues bit for bit); returns its
        ``extra``."""
        self.carry, self.blocks_done, hist, extra = load_state(directory, self.carry)
        fields = self.stats_type._fields
        self.history = [self.stats_type(*(hist[f] for f in fields))]
        self.extra = {k: v for k, v in hist.items() if k not in fields}
        return extra


def finish(run: TrialRun, progress: bool = False) -> float:
    """Run a trial to its end, chunk after chunk (with ``progress``, a line on stderr with
    steps done, speed and time left); returns the wall time in seconds, compilation
    included. What ``study.run`` and ``study.defaults`` run."""
    import sys

    t0 = time.perf_counter()
    total = run.steps
    while not run.finished:
        run.advance()
        if progress:
            elapsed = time.perf_counter() - t0
            rate = run.steps_done / elapsed if elapsed > 0 else 0.0
            left = (total - run.steps_done) / rate if rate > 0 else float("nan")
            fill = int(30 * run.steps_done / total)
            sys.stderr.write(f"\r[{'#' * fill}{'.' * (30 - fill)}] {run.steps_done:,}/"
                             f"{total:,} steps {rate:,.0f} steps/s/stream, {left:,.0f} s "
                             "left ")  # fmt: skip
            sys.stderr.flush()
    if progress:
        sys.stderr.write("\n")
    return time.perf_counter() - t0


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
    leaves, treedef = jax.tree.flatten(like)
    with np.load(Path(directory) / CHECKPOINT_FILE) as f:
        stored = [f[f"leaf{i}"] for i in range(len(leaves)) if f"leaf{i}" in f.files]
        n_stored = sum(k.startswith("leaf") for k in f.files)
        if n_stored != len(leaves) or any(
            a.shape != np.shape(b) or a.dtype != np.asarray(b).dtype
            for a, b in zip(stored, leaves, strict=False)
        ):
            raise ValueError(
                f"the checkpoint in {directory} holds a run state of another layout (written by "
                "another version of ccn-study, or another learner); it cannot be continued: "
                "start the study afresh in a new runs folder"
            )
        carry = jax.tree.unflatten(treedef, [jax.numpy.asarray(x) for x in stored])
        history = {k[5:]: f[k] for k in f.files if k.startswith("hist_")}
        if "nonfinite" in history:
            history["nonfinite"] = history["nonfinite"].astype(bool)
        return carry, int(f["blocks_done"]), history, json.loads(str(f["extra"]))
