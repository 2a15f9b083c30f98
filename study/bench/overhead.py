"""``--study``: a real study's trial time split into loop, compilation, logging, checkpoints."""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

STUDY_PARTS = ("loop", "compile", "logging", "checkpoint")


def study_overhead(args: argparse.Namespace, where: str) -> int:
    """Run a real study (``study.launch``: local Ray, Optuna, MLflow in SQLite under a fresh
    folder) and split its trials' time, from the ``trial_time_*`` metrics each trial logs
    (``study.clock.Clock``): the share of the trials' wall time spent in the compiled run
    loop (task, learner and metric), compilation, MLflow logging and checkpoints/reports."""
    import tempfile

    from mlflow.tracking import MlflowClient

    from study import launch

    runs = Path(tempfile.mkdtemp(prefix="ccn-bench-study-"))
    argv = ["--space", args.study_space, "--trials", str(args.study_trials),
            "--seeds", str(args.study_seeds), "--steps", str(args.study_steps),
            "--concurrency", str(args.study_concurrency), "--runs-dir", str(runs),
            "--study-name", "bench-overhead", *args.study_set]  # fmt: skip
    print(f"study: python -m study.launch {' '.join(argv)}")
    t0 = time.perf_counter()
    rc = launch.main(argv)
    driver_s = time.perf_counter() - t0
    if rc != 0:
        print(f"error: the study failed (exit {rc})", file=sys.stderr)
        return rc
    client = MlflowClient(f"sqlite:///{runs / 'mlflow.db'}")
    exp = client.get_experiment_by_name("bench-overhead")
    trials = [r.data.metrics for r in client.search_runs([exp.experiment_id])
              if "mlflow.parentRunId" in r.data.tags]  # fmt: skip
    wall = sum(m.get("trial_time_wall_s", math.nan) for m in trials)
    shares = {k: sum(m.get(f"trial_time_{k}_s", math.nan) for m in trials) / wall
              for k in STUDY_PARTS}  # fmt: skip
    busy = wall / (driver_s * args.study_concurrency)
    print(f"\n{len(trials)} trials, {wall:.1f} s of trial wall time in {driver_s:.1f} s "
          f"(driver, {args.study_concurrency} at once: trial slots busy {busy:.0%})")  # fmt: skip
    print("share of trial wall time: " + ", ".join(f"{k} {v:.1%}" for k, v in shares.items()))
    out = Path(args.out)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["space", "trials", "seeds", "steps", "trial_wall_s", "driver_s",
                    *[f"share_{k}" for k in STUDY_PARTS], "slots_busy", "machine"])  # fmt: skip
        w.writerow([args.study_space, len(trials), args.study_seeds, args.study_steps,
                    round(wall, 2), round(driver_s, 2), *[round(v, 4) for v in shares.values()],
                    round(busy, 4), where])  # fmt: skip
    print(f"wrote {out} (the study's stores: {runs})")
    return 0
