"""``--atari TASK``: what a step of the Atari prediction benchmark costs, per learner.

Each learner of the ``atari-prediction`` preset, at its size there (275 inputs), runs the
trial's loop (``study.engine.loop``, JAX's path: the compiled CPU loop runs the testbed only)
three ways, one XLA thread, ``--streams`` streams, a block of ``--steps`` steps a call,
compilation excluded:

- on the Atari task (the recorded stream read from the cache),
- on the testbed widened to the same 275 inputs (trace patterning with 268 distractors), so
  that the two differ only in where the inputs come from: their ratio is what streaming a
  recorded game costs over generating a synthetic one,
- on the testbed as published (12 inputs) at the learner's testbed size, with the engine a
  trial would take (the compiled CPU loop where it applies), for scale.

The ledger's flops per step are printed beside each, so a learner whose cost grows with its
inputs shows it there.
"""

from __future__ import annotations

import argparse
from typing import Any

from study.bench.markdown import publish
from study.bench.timing import machine, write_csv
from study.cli import markdown_table

# (learner, size on the Atari task, size on the testbed) for the rows, as the presets run them
ROWS: tuple[tuple[str, dict[str, int], dict[str, int]], ...] = (
    ("columnar", dict(n_features=5), dict(n_features=7)),
    ("constructive", dict(n_features=10), dict(n_features=10)),
    ("hybrid", dict(n_features=20, per_stage=4), dict(n_features=20, per_stage=4)),
    ("tbptt", dict(n_features=3, truncation=15), dict(n_features=4, truncation=15)),
    ("snap1", dict(n_features=5), dict(n_features=8)),
)


def _wide_testbed() -> tuple[Any, Any]:
    """Trace patterning with 268 distractors: 275 inputs, as many as an Atari task's."""
    from study.tasks import PRESETS, Animal

    preset = PRESETS["trace_patterning"]
    env = Animal(**{**preset.env, "n_distractors": 268})
    return env, env.make_params(**preset.params)


def atari_table(args: argparse.Namespace) -> int:
    from learners import make_learner
    from learners.registry import cost
    from study.bench.timing import time_loop
    from study.tasks import make_task

    where = machine()
    env, tp = make_task(args.atari, data_dir=args.traces_dir)
    wide, wide_tp = _wide_testbed()
    streams = args.streams[0] if args.streams else 5
    print(f"machine: {where}\n{args.atari}: {env.length:,} frames, {env.obs_size} inputs; "
          f"{streams} streams, {args.steps:,} steps a call, median of {args.repeats}")  # fmt: skip
    header = ("learner", "size", "atari_flops", "atari_us", "wide_testbed_us",
              "atari_over_wide", "testbed_size", "testbed_flops", "testbed_us", "testbed_engine",
              "machine")  # fmt: skip
    print(f"{'learner':13s} {'size':>18s} {'flops':>8s} {'atari us':>9s} {'275-in us':>9s} "
          f"{'ratio':>6s} {'testbed flops':>13s} {'testbed us':>10s} {'engine':>6s}")  # fmt: skip
    rows = []
    for name, size, small in ROWS:
        learner = make_learner(name, env.obs_size, **size)
        flops = cost(name, env.obs_size, learner.settings).flops
        per = 1e6 / (args.steps * streams)
        atari_s, _ = time_loop(learner, streams, args.steps, args.repeats, env=env, tp=tp,
                               engine="jax")  # fmt: skip
        wide_s, _ = time_loop(learner, streams, args.steps, args.repeats, env=wide, tp=wide_tp,
                              engine="jax")  # fmt: skip
        small_learner = make_learner(name, 12, **small)
        small_s, engine = time_loop(small_learner, streams, args.steps, args.repeats)
        small_flops = cost(name, 12, small_learner.settings).flops
        label = " ".join(f"{k}={v}" for k, v in size.items())
        row = [name, label, flops, round(atari_s * per, 3), round(wide_s * per, 3),
               round(atari_s / wide_s, 3), " ".join(f"{k}={v}" for k, v in small.items()),
               small_flops, round(small_s * per, 3), engine, where]  # fmt: skip
        rows.append(row)
        write_csv(args.out, header, rows)
        print(f"{name:13s} {label:>18s} {flops:>8,} {row[3]:>9.3f} {row[4]:>9.3f} {row[5]:>6.2f} "
              f"{small_flops:>13,} {row[8]:>10.3f} {engine:>6s}", flush=True)  # fmt: skip
    md = markdown_table(
        ["learner", "size", "ledger flops", "Atari", "testbed, 275 inputs", "ratio",
         "testbed size", "ledger flops", "testbed", "engine"],
        [[r[0], r[1], f"{r[2]:,}", f"{r[3]:.2f}", f"{r[4]:.2f}", f"{r[5]:.2f}", r[6],
          f"{r[7]:,}", f"{r[8]:.2f}", r[9]] for r in rows],
        right={2, 3, 4, 5, 7, 8},
    )  # fmt: skip
    print(f"wrote {args.out}")
    head = (f"Microseconds per stream-step of the run loop, {streams} streams; {args.atari} "
            f"({env.obs_size} inputs), the testbed widened to the same inputs, and the testbed "
            f"(12 inputs) at the preset's sizes; {where}.")  # fmt: skip
    publish(args, [head, ""] + md)
    return 0
