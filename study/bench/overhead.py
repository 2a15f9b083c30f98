"""``--study``: a real study's rate with and without packs, and its trials' time split into loop,
compilation, logging and checkpoints."""

from __future__ import annotations

import argparse
import csv
import math
import shlex
import sys
import time
from pathlib import Path

STUDY_PARTS = ("loop", "compile", "logging", "checkpoint")


def study_overhead(args: argparse.Namespace, where: str) -> int:
    """Run a real study (``study.launch``: local Ray, Optuna, MLflow in SQLite under a fresh folder)
    once per ``--study-packs`` value and, for each, its rate (configuration-steps per second of the
    driver's wall time: trials x steps / seconds, each configuration on every seed) and its trials'
    time split, from the ``trial_time_*`` metrics each configuration's run logs
    (``study.engine.clock.Clock``): the share of the trials' wall time spent in the compiled run
    loop (task, learner and metric), compilation, MLflow logging and checkpoints/reports. A pack's
    configurations share their trial's clock: its time counts once."""
    rows = []
    for pack in args.study_packs:
        row = _one_study(args, pack)
        if row is None:
            return 1
        rows.append(row)
    base = rows[0]["config_steps_per_s"]
    print(f"\n{'pack':>6} {'trials':>7} {'driver s':>9} {'config-steps/s':>15} {'x pack 1':>9} "
          + " ".join(f"{k:>10}" for k in STUDY_PARTS))  # fmt: skip
    for r in rows:
        print(f"{r['pack']:>6} {r['tune_trials']:>7} {r['driver_s']:>9.1f} "
              f"{r['config_steps_per_s']:>15,.0f} {r['config_steps_per_s'] / base:>8.2f}x "
              + " ".join(f"{r[f'share_{k}']:>10.1%}" for k in STUDY_PARTS))  # fmt: skip
    out = Path(args.out)
    header = ["space", "pack", "trials", "tune_trials", "seeds", "steps", "trial_wall_s",
              "driver_s", "config_steps_per_s", *[f"share_{k}" for k in STUDY_PARTS],
              "slots_busy", "machine"]  # fmt: skip
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            w.writerow([args.study_space, r["pack"], args.study_trials, r["tune_trials"],
                        args.study_seeds, args.study_steps, round(r["wall"], 2),
                        round(r["driver_s"], 2), round(r["config_steps_per_s"], 1),
                        *[round(r[f"share_{k}"], 4) for k in STUDY_PARTS],
                        round(r["busy"], 4), where])  # fmt: skip
    print(f"wrote {out}")
    from study.bench.markdown import publish
    from study.cli import markdown_table

    cells = [[f"`{r['pack']}`", r["tune_trials"], f"{r['driver_s']:.1f} s",
              f"{r['config_steps_per_s']:,.0f} ({r['config_steps_per_s'] / base:.2f}x)",
              *[f"{r[f'share_{k}']:.1%}" for k in STUDY_PARTS], f"{r['busy']:.0%}"]
             for r in rows]  # fmt: skip
    head = (f"{args.study_space}, {args.study_trials} configurations x {args.study_seeds} seeds "
            f"x {args.study_steps:,} steps, {args.study_concurrency} trials at once; {where}. "
            "Loop, compile, logging and checkpoint: shares of the trials' wall time.")  # fmt: skip
    publish(args, [head, ""] + markdown_table(
        ["`--pack`", "trials", "driver wall", "configuration-steps/s", *STUDY_PARTS,
         "slots busy"], cells, right=set(range(1, 9))))  # fmt: skip
    return 0


def study_argv(args: argparse.Namespace, pack: str, runs: Path) -> list[str]:
    """The ``study.launch`` arguments of the study run with ``--pack pack`` in ``runs``."""
    return ["--space", args.study_space, "--trials", str(args.study_trials),
            "--seeds", str(args.study_seeds), "--steps", str(args.study_steps),
            "--concurrency", str(args.study_concurrency), "--runs-dir", str(runs),
            "--study-name", "bench-overhead", "--pack", pack,
            *shlex.split(args.study_set)]  # fmt: skip


def check_studies(args: argparse.Namespace) -> None:
    """Each study's launch checked as ``study.launch`` checks it, before any folder is made: a
    one-line ValueError naming ``--study-set`` (an option the launch's parser refuses exits
    with its own one line)."""
    import tempfile

    from study import launch

    for pack in args.study_packs:
        argv = study_argv(args, pack, Path(tempfile.gettempdir()) / "ccn-bench-study-check")
        try:
            launch.plan_of(launch._parser().parse_args(argv))
        except ValueError as e:
            raise ValueError(f"--study-set {args.study_set!r}: {e}") from None


def _one_study(args: argparse.Namespace, pack: str) -> dict | None:
    import tempfile

    from study import launch
    from study.records.store import Store
    from study.records.tags import PACK_TAG, TRIAL_TAG

    runs = Path(tempfile.mkdtemp(prefix="ccn-bench-study-"))
    argv = study_argv(args, pack, runs)
    print(f"study: python -m study.launch {' '.join(argv)}")
    t0 = time.perf_counter()
    rc = launch.main(argv)
    driver_s = time.perf_counter() - t0
    if rc != 0:  # refused or failed: nothing of it is worth keeping
        import shutil

        shutil.rmtree(runs, ignore_errors=True)
        print(f"error: the study failed (exit {rc})", file=sys.stderr)
        return None
    store = Store(f"sqlite:///{runs / 'mlflow.db'}")
    children = store.trials(store.experiment("bench-overhead").experiment_id)
    trials = {}  # Tune trial -> its clock (one per pack)
    for r in children:
        trials[r.data.tags.get(PACK_TAG) or r.data.tags[TRIAL_TAG]] = store.finals(
            r.info.run_id, r.data.tags
        )
    wall = sum(m.get("trial_time_wall_s", math.nan) for m in trials.values())
    shares = {f"share_{k}": sum(m.get(f"trial_time_{k}_s", math.nan) for m in trials.values())
              / wall for k in STUDY_PARTS}  # fmt: skip
    busy = wall / (driver_s * args.study_concurrency)
    rate = len(children) * args.study_steps / driver_s
    print(f"\n--pack {pack}: {len(children)} configurations in {len(trials)} trials, {wall:.1f} s "
          f"of trial wall time in {driver_s:.1f} s (driver, {args.study_concurrency} at once: "
          f"trial slots busy {busy:.0%}); {rate:,.0f} configuration-steps/s")  # fmt: skip
    print("share of trial wall time: " + ", ".join(f"{k[6:]} {v:.1%}" for k, v in shares.items()))
    print(f"(the study's stores: {runs})")
    return dict(pack=pack, tune_trials=len(trials), wall=wall, driver_s=driver_s,
                config_steps_per_s=rate, busy=busy, **shares)  # fmt: skip
