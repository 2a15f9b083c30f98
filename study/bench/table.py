"""The learner table (the default): throughput of every learner and size."""

from __future__ import annotations

import argparse
import statistics

import jax

from study.bench.markdown import publish
from study.bench.timing import (
    SIZES,
    autodiff_speedups,
    build,
    fit_exponent,
    machine,
    observations,
    size_label,
    time_learner,
    time_loop,
    write_csv,
)
from study.cli import markdown_table


def learner_table(args: argparse.Namespace, names: list[str], device: jax.Device | None) -> int:
    """Time every size of each learner in ``names`` at each ``--streams`` batch on ``device``;
    print the table, the ledger check and the fitted exponents; write the CSV."""
    where = machine(device)
    print(f"machine: {where}")
    header = (
        "learner", "size", "params_per_stream", "streams", "steps_per_s", "param_steps_per_s",
        "us_per_step", "flops_per_step_ledger", "ledger_gflops_per_s", "ledger_ratio",
        "state_bytes_ledger", "loop_steps_per_s", "loop_engine", "machine",
    )  # fmt: skip
    rows = []
    print(
        f"{'learner':13s} {'size':>10s} {'params':>9s} {'streams':>7s} {'steps/s/stream':>15s} "
        f"{'param-steps/s':>14s} {'us/step':>9s} {'ledger flops':>12s} {'GFLOP/s':>8s} "
        f"{'loop steps/s':>13s} {'engine':>6s}"
    )
    fits = []
    for name in names:
        for streams in args.streams:
            obs = observations(args.steps, streams, device)
            ps, ts = [], []
            for kw in SIZES[name]:
                learner, entry = build(name, kw)
                if learner.n_params * streams > args.max_params:
                    continue
                sec = time_learner(learner, streams, args.steps, args.repeats, obs, device)
                sps = args.steps / sec
                loop_sec, engine = time_loop(learner, streams, args.steps, args.repeats, device)
                gflops = entry.flops * sps * streams / 1e9
                row = [
                    name, size_label(kw), learner.n_params, streams, round(sps, 1),
                    round(sps * learner.n_params * streams), round(1e6 * sec / args.steps, 3),
                    entry.flops, round(gflops, 3), None, entry.state_bytes,
                    round(args.steps / loop_sec, 1), engine, where,
                ]  # fmt: skip
                rows.append(row)
                write_csv(args.out, header, rows)
                ps.append(learner.n_params)
                ts.append(sec)
                print(
                    f"{name:13s} {row[1]:>10s} {learner.n_params:9,d} {streams:7d} {sps:15,.0f} "
                    f"{row[5]:14,.0f} {row[6]:9.2f} {entry.flops:12,d} {gflops:8.2f} "
                    f"{row[11]:13,.0f} {engine:>6s}",
                    flush=True,
                )
            if len(set(ps)) > 1:
                fits.append((name, streams, fit_exponent(ps, ts), min(ps), max(ps)))
    # Ledger check: seconds per ledger flop of each row over the median of its stream count.
    # 1 means the ledger predicts this configuration's time as well as the typical one.
    for streams in set(r[3] for r in rows):
        same = [r for r in rows if r[3] == streams]
        median = statistics.median(r[8] for r in same)
        for r in same:
            r[9] = round(median / r[8], 3) if r[8] > 0 else None
    if rows:
        print("\nledger ratio (time per step / ledger prediction, 1 = typical; per learner, max):")
        for name in names:
            mine = [r[9] for r in rows if r[0] == name and r[9] is not None]
            if mine:
                print(f"  {name:13s} {max(mine):.2f}  (min {min(mine):.2f})")
    speedups = autodiff_speedups(rows)
    if speedups:
        print("\nclosed-form traces against autodiff (jax.jacrev per column), same run:")
        for size, streams, ratio in speedups:
            print(f"  columnar {size:>5s} columns, streams={streams:<5d} {ratio:6.1f}x faster")
    if fits:
        print("\nfitted exponent b of time/step ~ params^b (target <= 1.1):")
        for name, streams, b, lo, hi in fits:
            print(f"  {name:13s} streams={streams:<5d} b={b:.3f}  ({lo:,}..{hi:,} params)")
    write_csv(args.out, header, rows)
    print(f"\nwrote {args.out}")
    publish(args, _markdown(rows, fits, speedups, where))
    return 0


def _markdown(rows: list[list], fits: list[tuple], speedups: list[tuple], where: str) -> list[str]:
    """The table for the docs, and what it shows besides: the fitted exponents, the
    closed-form traces against autodiff, each learner's largest ledger ratio."""
    cells = [[r[0], r[1], f"{r[2]:,}", f"{r[3]:,}", f"{r[4]:,.0f}", _si(r[5]), f"{r[6]:.2f}",
              "" if r[9] is None else f"{r[9]:.2f}", f"{r[11]:,.0f}", r[12]]
             for r in rows]  # fmt: skip
    lines = [f"Learner step alone (compilation excluded, median of its calls); {where}.", ""]
    lines += markdown_table(["learner", "size", "params/stream", "streams", "steps/s per stream",
                    "parameter-steps/s", "us/step", "ledger ratio", "loop steps/s", "loop"],
                   cells, right={2, 3, 4, 5, 6, 7, 8})  # fmt: skip
    notes = [f"fitted exponent of time per step against parameters, {name} at {streams} "
             f"stream{'s' * (streams > 1)}: {b:.2f} ({lo:,} to {hi:,} parameters)"
             for name, streams, b, lo, hi in fits]  # fmt: skip
    notes += [f"closed-form columnar traces against autodiff traces, {size} columns, {streams} "
              f"stream{'s' * (streams > 1)}: {ratio:.1f}x faster"
              for size, streams, ratio in speedups]  # fmt: skip
    return lines + ([""] + [f"- {n}" for n in notes] if notes else [])


def _si(n: float) -> str:
    """Parameter-steps per second, as the docs write them: 16 M, 5.6 G."""
    if n >= 1e10:
        return f"{n / 1e9:.0f} G"
    if n >= 1e9:
        return f"{n / 1e9:.1f} G"
    return f"{n / 1e6:.0f} M" if n >= 1e7 else f"{n / 1e6:.1f} M"
