"""``--memory-steps``: a long run's memory against the ledger's state bytes."""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import jax

from learners import make_hparams, make_learner
from learners.registry import cost
from study.tasks import make_task


def rss_bytes() -> int:
    """This process's resident memory (Linux), or 0 where /proc is not there."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def memory_check(args: argparse.Namespace, where: str) -> int:
    """Run ``--memory-steps`` steps of the columnar learner on trace patterning (the full
    run loop: task, learner and streaming MSRE) in chunks of 1M steps, and record the
    process's resident memory after each chunk, and the learner state's real bytes per
    stream against the ledger's."""
    from study.engine.kinds import PREDICTION
    from study.engine.loop import seed_keys
    from study.engine.pack import stream_hparams

    learner = make_learner("columnar", 12, n_features=7)
    env, tp = make_task("trace_patterning")
    streams = args.memory_streams
    # the program a trial runs, blocks of 10,000 steps, 100 blocks a call
    program = PREDICTION.program_of(learner, env, tp, 10_000)
    hp = stream_hparams([make_hparams()], streams)
    advance = program.advance
    carry = program.init(seed_keys(list(range(streams))), hp, tp)
    measured = sum(x.nbytes for x in jax.tree.leaves(carry.learner_state)) // streams
    ledger = cost("columnar", 12, learner.settings).state_bytes
    chunk = 1_000_000
    rows, done, t0 = [], 0, time.perf_counter()
    while done < args.memory_steps:
        n = min(chunk, args.memory_steps - done)
        carry, stats = advance(carry, hp, tp, n // 10_000)
        jax.block_until_ready(stats)
        done += n
        rows.append((done, rss_bytes()))
        print(f"  {done:>12,d} steps  resident {rows[-1][1] / 2**20:8.1f} MiB  "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    growth = rows[-1][1] - rows[0][1]
    print(f"\ncolumnar 7 x {streams} streams, {done:,} steps: resident memory grew "
          f"{growth / 2**20:+.1f} MiB after the first chunk; learner state per stream "
          f"{measured:,} bytes measured, {ledger:,} in the ledger (ratio "
          f"{measured / ledger:.2f})")  # fmt: skip
    with Path(args.out).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["learner", "streams", "steps", "rss_bytes", "state_bytes_per_stream",
                    "state_bytes_ledger", "machine"])  # fmt: skip
        for steps, rss in rows:
            w.writerow(["columnar:7", streams, steps, rss, measured, ledger, where])
    print(f"wrote {args.out}")
    from study.bench.markdown import publish
    from study.cli import markdown_table

    first = rows[0][1]
    publish(args, [
        f"columnar 7 x {streams} streams, the full run loop (task, learner, streaming MSRE) "
        f"in chunks of 1M steps; learner state {measured:,} bytes per stream measured, "
        f"{ledger:,} in the ledger; {where}.", "",
        *markdown_table(["steps", "resident memory", "since the first chunk"],
               [[f"{n:,}", f"{rss / 2**20:.1f} MiB", f"{(rss - first) / 2**20:+.1f} MiB"]
                for n, rss in rows], right={0, 1, 2}),
    ])  # fmt: skip
    return 0


# Batch sizes (streams) swept by --crossover, and the fewest steps a timed call runs.
