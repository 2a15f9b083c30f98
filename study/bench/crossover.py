"""``--crossover``: batch sizes swept on the CPU and the GPU, and where the GPU overtakes."""

from __future__ import annotations

import argparse

from study.bench.timing import (
    SIZES,
    build,
    machine,
    observations,
    platforms,
    size_label,
    time_learner,
    write_csv,
)

CROSSOVER_STREAMS = (1, 16, 256, 1024, 4096, 16384, 65536)
CROSSOVER_MIN_STEPS = 32


def crossover_steps(streams: int, steps: int, budget: int) -> int:
    """Steps per timed call for a batch of ``streams``: ``steps``, cut so that a call runs at
    most ``budget`` stream-steps (large CPU batches would otherwise take minutes), but never
    fewer than ``CROSSOVER_MIN_STEPS``."""
    return max(CROSSOVER_MIN_STEPS, min(steps, budget // streams))


def overtakes(throughput: dict[int, dict[str, float]], accel: str) -> int | None:
    """The smallest batch from which ``accel`` runs more parameter-steps per second than the
    CPU at that batch and at every larger one swept; None where it never does (or where a
    batch lacks either figure). ``throughput[streams][platform]`` holds the figures."""
    first = None
    for streams in sorted(throughput, reverse=True):
        mine = throughput[streams]
        if accel not in mine or "cpu" not in mine or mine[accel] <= mine["cpu"]:
            break
        first = streams
    return first


def crossover(args: argparse.Namespace, names: list[str]) -> int:
    """Time each learner's paper-sized network at growing batch sizes on every platform JAX
    has (the CPU, and a GPU where there is one), and report the batch size from which the
    accelerator runs more parameter-steps per second than the CPU."""
    devices = platforms()
    accels = [p for p in devices if p != "cpu"]
    for p, d in devices.items():
        print(f"{p}: {machine(d)}")
    if not accels:
        print("no accelerator here (JAX sees only the CPU): the CPU rows are measured, and the "
              "crossover needs a machine with jax[cuda] and a GPU")  # fmt: skip
    header = ("learner", "size", "params_per_stream", "streams", "device", "steps",
              "steps_per_s", "param_steps_per_s", "us_per_step", "flops_per_step_ledger",
              "machine")  # fmt: skip
    rows = []
    print(f"\n{'learner':13s} {'size':>6s} {'params':>7s} {'streams':>7s} {'device':>6s} "
          f"{'steps':>6s} {'steps/s/stream':>15s} {'param-steps/s':>15s} "
          f"{'us/step':>10s}")  # fmt: skip
    found = []
    for name in names:
        kw = SIZES[name][0]
        learner, entry = build(name, kw)
        throughput: dict[int, dict[str, float]] = {}
        for streams in args.streams:
            steps = crossover_steps(streams, args.steps, args.crossover_budget)
            for platform_name, device in devices.items():
                obs = observations(steps, streams, device)
                sec = time_learner(learner, streams, steps, args.repeats, obs, device)
                sps = steps / sec
                pss = sps * learner.n_params * streams
                throughput.setdefault(streams, {})[platform_name] = pss
                rows.append([name, size_label(kw), learner.n_params, streams, platform_name,
                             steps, round(sps, 1), round(pss), round(1e6 * sec / steps, 3),
                             entry.flops, machine(device)])  # fmt: skip
                write_csv(args.out, header, rows)
                print(f"{name:13s} {size_label(kw):>6s} {learner.n_params:7,d} {streams:7d} "
                      f"{platform_name:>6s} {steps:6d} {sps:15,.0f} {pss:15,.0f} "
                      f"{1e6 * sec / steps:10.2f}", flush=True)  # fmt: skip
        for accel in accels:
            found.append((name, size_label(kw), accel, overtakes(throughput, accel), throughput))
    if found:
        print("\nbatch size from which the accelerator beats the CPU (parameter-steps/s):")
    for name, size, accel, n, throughput in found:
        if n is None:
            print(f"  {name} {size}: {accel} never overtakes the CPU up to "
                  f"{max(throughput):,} streams")  # fmt: skip
            continue
        top = max(throughput)
        ratio = throughput[top][accel] / throughput[top]["cpu"]
        print(f"  {name} {size}: {accel} from {n:,} streams; at {top:,} streams "
              f"{throughput[top][accel] / 1e9:.2f} G against {throughput[top]['cpu'] / 1e9:.2f} G "
              f"on the CPU ({ratio:.1f}x)")  # fmt: skip
    print(f"\nwrote {args.out}")
    from study.bench.markdown import publish
    from study.cli import markdown_table

    names_done = list(dict.fromkeys((r[0], r[1], r[2]) for r in rows))
    plats = list(devices)
    cells = []
    for streams in args.streams:
        cell = [f"{streams:,}"]
        for name, size, _ in names_done:
            got = {r[4]: r[7] for r in rows if (r[0], r[1], r[3]) == (name, size, streams)}
            cell.append(" / ".join(_si(got[p]) if p in got else "-" for p in plats))
        cells.append(cell)
    lines = [
        f"Parameter-steps per second, {' / '.join(plats)}; "
        + "; ".join(f"{p}: {machine(d)}" for p, d in devices.items())
        + ".",
        "",
    ]
    columns = ["streams", *[f"{n} {s} ({p:,} params)" for n, s, p in names_done]]
    lines += markdown_table(columns, cells, right=set(range(len(columns))))
    notes = [f"{name} {size}: {accel} stays ahead of the CPU from {n:,} streams"
             if n is not None else f"{name} {size}: {accel} never stays ahead of the CPU"
             for name, size, accel, n, _ in found]  # fmt: skip
    publish(args, lines + ([""] + [f"- {n}" for n in notes] if notes else []))
    return 0


def _si(n: float) -> str:
    return f"{n / 1e9:.1f} G" if n >= 1e9 else f"{n / 1e6:.0f} M"
