"""``--kernel-ratio EXPERIMENT``: how close a finished study's trials came to the run loop's
own rate.

For every trial of the experiment (a pack counts once: its configurations share one program
and one clock), its rate in stream-steps per second over its whole wall time (steps x seeds
x configurations / ``trial_time_wall_s``, start-up, compilation, logging and checkpoints
included) against the rate of the same program (``study.bench.timing.time_loop``: the same
learner and shape, the same number of streams, one block of 10,000 steps a call, compilation
excluded) run by ``--study-concurrency`` processes at once, one XLA thread each, as the
study's trials ran (on a machine whose cores share their throughput, two loops at once each
run slower than one alone), and where the rest of the trial's time went (``study.engine.clock``).
Run it on a quiet machine after the study: the loop's rate is measured now.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

PARTS = ("loop", "compile", "logging", "checkpoint")


def _trials(uri: str, experiment: str) -> list[dict[str, Any]]:
    """One entry per trial: its learner settings, streams, steps and clock."""
    from study.records.store import Store
    from study.records.tags import PACK_TAG, PARENT_TAG, STATUS_TAG

    store = Store(uri)
    found = store.experiment(experiment)
    if found is None:
        raise ValueError(f"--kernel-ratio {experiment!r}: no such experiment in {uri}")
    by_trial: dict[str, dict[str, Any]] = {}
    for r in store.runs(found.experiment_id):
        tags, m = r.data.tags, r.data.metrics
        if PARENT_TAG not in tags or tags.get(STATUS_TAG) != "finished":
            continue
        if "trial_time_wall_s" not in m:
            continue
        key = tags.get(PACK_TAG) or r.info.run_id
        seeds = len([s for s in tags.get("seeds", "").split(",") if s])
        entry = by_trial.setdefault(key, dict(
            learner=tags.get("learner"), params=dict(r.data.params), configurations=0,
            seeds=seeds, steps=int(m.get("final_steps_done", 0)),
            **{p: m.get(f"trial_time_{p}_s", math.nan) for p in (*PARTS, "wall")},
        ))  # fmt: skip
        entry["configurations"] += 1
    if not by_trial:
        raise ValueError(f"--kernel-ratio {experiment!r}: no finished trial with its timings")
    return list(by_trial.values())


# One copy of the loop in its own process: warm up (compile), wait until every copy is ready,
# then time; prints stream-steps per second and the engine.
_COPY = """
import json, sys, time
from pathlib import Path
from study.engine.threads import limit_xla_threads
limit_xla_threads(1)
from learners import make_learner
from study.bench.timing import time_loop
spec = json.loads(sys.argv[1])
learner = make_learner(spec["learner"], spec["m"], **spec["sizes"])
time_loop(learner, spec["streams"], 10_000, 1)
ready = Path(spec["barrier"])
(ready / f"{spec['copy']}.ready").touch()
while len(list(ready.glob("*.ready"))) < spec["copies"]:
    time.sleep(0.05)
seconds, engine = time_loop(learner, spec["streams"], 10_000, spec["repeats"])
print(json.dumps({"rate": spec["streams"] * 10_000 / seconds, "engine": engine}))
"""


def loop_rate(learner: str, m: int, sizes: dict[str, int], streams: int, copies: int,
              repeats: int) -> tuple[float, str]:  # fmt: skip
    """Stream-steps per second of one copy of the run loop (median over calls) while
    ``copies`` copies run at once, each in its own process with one XLA thread; the mean over
    the copies, and the engine."""
    with tempfile.TemporaryDirectory() as barrier:
        procs = [subprocess.Popen(
            [sys.executable, "-c", _COPY, json.dumps(dict(
                learner=learner, m=m, sizes=sizes, streams=streams, copies=copies, copy=i,
                repeats=repeats, barrier=barrier))],
            stdout=subprocess.PIPE, text=True,
        ) for i in range(copies)]  # fmt: skip
        outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return sum(o["rate"] for o in outs) / copies, outs[0]["engine"]


def _launch_seconds(uri: str, experiment: str) -> float:
    """Wall seconds of the experiment's latest launch (its parent run's start to end)."""
    from study.records.store import Store

    run = Store(uri).latest_launch(experiment)
    if run is None or not run.info.end_time:
        return math.nan
    return (run.info.end_time - run.info.start_time) / 1000.0


def kernel_ratio(args: argparse.Namespace, where: str) -> int:
    """The table (and CSV at ``--out``) of every trial's rate against its loop's own."""
    from study.cli import fail
    from study.tasks import make_env

    uri = f"sqlite:///{Path(args.runs_dir).resolve() / 'mlflow.db'}"
    try:
        trials = _trials(uri, args.kernel_ratio)
    except ValueError as e:
        return fail(str(e))
    m = make_env("trace_patterning").obs_size
    rows = []
    for t in trials:
        p = t["params"]
        sizes = {k: int(float(p[k])) for k in ("truncation", "n_features", "per_stage")
                 if p.get(k) not in (None, "", "None")}  # fmt: skip
        streams = t["seeds"] * t["configurations"]
        own, engine = loop_rate(t["learner"], m, sizes, streams, args.study_concurrency,
                                max(args.repeats, 10))  # fmt: skip
        trial_rate = streams * t["steps"] / t["wall"]
        row = dict(learner=t["learner"], size=":".join(str(v) for v in sizes.values()),
                   streams=streams, copies_at_once=args.study_concurrency, steps=t["steps"],
                   trial_wall_s=t["wall"],
                   trial_stream_steps_per_s=trial_rate, loop_stream_steps_per_s=own,
                   ratio=trial_rate / own, engine=engine,
                   **{f"share_{k}": t[k] / t["wall"] for k in PARTS})  # fmt: skip
        row["share_other"] = 1.0 - sum(row[f"share_{k}"] for k in PARTS)
        rows.append(row)
        split = ", ".join(f"{k} {row[f'share_{k}']:.1%}" for k in (*PARTS, "other"))
        print(f"{row['learner']:>13} {row['size']:>5} {streams:>4} streams: trial "
              f"{trial_rate:>10,.0f} stream-steps/s, loop {own:>10,.0f} ({engine}, "
              f"{args.study_concurrency} at once): "
              f"{row['ratio']:.0%}; trial time: {split}", flush=True)  # fmt: skip
    # The study as a whole: the wall time its trials' loops need with every slot busy, against
    # the launch's own wall time (its parent run in MLflow).
    slots = args.study_concurrency
    needed = sum(r["streams"] * r["steps"] / r["loop_stream_steps_per_s"] for r in rows) / slots
    took = _launch_seconds(uri, args.kernel_ratio)
    print(f"study: its trials' loops need {needed:,.0f} s with {slots} at once; the launch took "
          f"{took:,.0f} s: {needed / took:.0%} of the loop's own rate")  # fmt: skip
    for r in rows:
        r["study_needed_s"], r["study_took_s"] = needed, took
    with Path(args.out).open("w", newline="") as f:
        writer = csv.DictWriter(f, [*rows[0], "machine"])
        writer.writeheader()
        writer.writerows({**r, "machine": where} for r in rows)
    print(f"wrote {args.out} ({where})")
    return 0
