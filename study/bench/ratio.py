"""``--kernel-ratio EXPERIMENT``: how close a finished study's trials came to the run loop's
own rate.

For every trial of the experiment (a pack counts once: its configurations share one program
and one clock), its rate in stream-steps per second over its whole wall time (steps x seeds
x configurations / ``trial_time_wall_s``, start-up, compilation, logging and checkpoints
included) against the rate of the same program alone (``study.bench.timing.time_loop``: the
same learner and shape, the same number of streams, one block of 10,000 steps a call,
compilation excluded), and where the rest of the trial's time went (``study.clock``). Run
it on a quiet machine after the study: the loop's rate is measured now.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path
from typing import Any

PARTS = ("loop", "compile", "logging", "checkpoint")


def _trials(uri: str, experiment: str) -> list[dict[str, Any]]:
    """One entry per trial: its learner settings, streams, steps and clock."""
    from mlflow.tracking import MlflowClient

    from study.tracking import PACK_TAG, PARENT_TAG, STATUS_TAG

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise ValueError(f"--kernel-ratio {experiment!r}: no such experiment in {uri}")
    by_trial: dict[str, dict[str, Any]] = {}
    for r in client.search_runs([found.experiment_id], max_results=50_000):
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


def kernel_ratio(args: argparse.Namespace, where: str) -> int:
    """The table (and CSV at ``--out``) of every trial's rate against its loop's own."""
    from learners import make_learner
    from study.bench.timing import time_loop
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
        sizes = {k: int(float(p[k])) for k in ("n_features", "per_stage", "truncation")
                 if p.get(k) not in (None, "", "None")}  # fmt: skip
        learner = make_learner(t["learner"], m, **sizes)
        streams = t["seeds"] * t["configurations"]
        seconds, engine = time_loop(learner, streams, 10_000, args.repeats)
        own = streams * 10_000 / seconds
        trial_rate = streams * t["steps"] / t["wall"]
        row = dict(learner=t["learner"], size=":".join(str(v) for v in sizes.values()),
                   streams=streams, steps=t["steps"], trial_wall_s=t["wall"],
                   trial_stream_steps_per_s=trial_rate, loop_stream_steps_per_s=own,
                   ratio=trial_rate / own, engine=engine,
                   **{f"share_{k}": t[k] / t["wall"] for k in PARTS})  # fmt: skip
        row["share_other"] = 1.0 - sum(row[f"share_{k}"] for k in PARTS)
        rows.append(row)
        split = ", ".join(f"{k} {row[f'share_{k}']:.1%}" for k in (*PARTS, "other"))
        print(f"{row['learner']:>13} {row['size']:>5} {streams:>4} streams: trial "
              f"{trial_rate:>10,.0f} stream-steps/s, loop alone {own:>10,.0f} ({engine}): "
              f"{row['ratio']:.0%}; trial time: {split}", flush=True)  # fmt: skip
    with Path(args.out).open("w", newline="") as f:
        writer = csv.DictWriter(f, [*rows[0], "machine"])
        writer.writeheader()
        writer.writerows({**r, "machine": where} for r in rows)
    print(f"wrote {args.out} ({where})")
    return 0
