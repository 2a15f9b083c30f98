"""``python -m study.bench``: learner throughput, printed as a table and written as CSV.

For every learner and size it times ``steps`` steps of the learner alone (a compiled
``lax.scan`` of ``learner.step`` over recorded testbed observations, ``vmap``-ed over
``streams`` independent streams) and reports steps per second per stream and parameter-steps
per second (steps x parameters, summed over streams). Compilation is excluded; each figure is
the median of ``--repeats`` timed calls. The fitted exponent ``b`` of ``time per step ~
params^b`` over the sizes of one learner says whether cost grows linearly with parameters.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from learners import FAMILIES, STAGE_FOREVER, make_hparams, make_learner, num_stages
from learners.ledger import cost
from study.cli import Parser, count, fail, writable_file
from study.tasks import make_task
from study.threads import limit_xla_threads, pool_size, threads_label

# Sizes per learner (make_learner keyword arguments), growing; 12 inputs as in the testbed.
SIZES: dict[str, list[dict[str, int]]] = {
    **{name: list(f.bench) for name, f in FAMILIES.items()},
    # The columnar learner with traces from per-step jax.jacrev (learners.autodiff): what the
    # closed-form traces are measured against.
    "columnar_autodiff": [dict(n_features=n) for n in (7, 32, 128)],
}


def build(name: str, kw: dict[str, int]):
    """The learner ``name`` of bench size ``kw`` on 12 inputs, and its ledger entry."""
    if name == "columnar_autodiff":
        from learners.autodiff import columnar_autodiff

        learner = columnar_autodiff(12, kw["n_features"])
        return learner, cost("columnar", 12, learner.settings)
    learner = make_learner(name, 12, **kw)
    return learner, cost(name, 12, learner.settings)


def size_label(kw: dict[str, int]) -> str:
    if not kw:
        return ""
    label = str(kw["n_features"])
    if "per_stage" in kw:
        label += f":{kw['per_stage']}"
    if "truncation" in kw:
        label = f"k{kw['truncation']}:{label}"
    return label


def platforms() -> dict[str, jax.Device]:
    """The first device of each platform JAX has here: always ``cpu``, and ``gpu`` (or
    ``tpu``) where jax was installed with that backend and finds the hardware."""
    found = {}
    for name in ("cpu", "gpu", "tpu"):
        try:
            found[name] = jax.devices(name)[0]
        except RuntimeError:
            continue
    return found


def machine(device: jax.Device | None = None) -> str:
    """The CPU model, its cores, jax's version and the device the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    where = f"{cpu} | {os.cpu_count()} cores | jax {jax.__version__}"
    device = device or jax.devices()[0]
    if device.platform == "cpu":
        return f"{where} cpu, {threads_label(pool_size())}"
    return f"{where} {device.platform} ({device.device_kind})"


def observations(steps: int, streams: int, device: jax.Device | None = None) -> jax.Array:
    """Recorded trace-patterning observations [steps, streams, 12] (the learner's real input),
    on ``device`` (JAX's default when None)."""
    env, tp = make_task("trace_patterning")
    keys = jax.random.split(jax.random.PRNGKey(0), streams)

    def one(key):
        obs0, s0 = env.reset(key, tp)

        def body(s, k):
            o, s, _ = env.step(k, s, tp)
            return s, o

        _, obs = jax.lax.scan(body, s0, jax.random.split(key, steps - 1))
        return jnp.concatenate([obs0[None], obs])

    with jax.default_device(device or jax.devices()[0]):
        return jnp.swapaxes(jax.jit(jax.vmap(one))(keys), 0, 1)


def time_learner(
    learner, streams: int, steps: int, repeats: int, obs: jax.Array, device=None
) -> float:
    """Median seconds for ``steps`` steps of ``streams`` vmapped streams (compile excluded),
    run on ``device`` (JAX's default when None)."""
    with jax.default_device(device or jax.devices()[0]):
        return _time_learner(learner, streams, steps, repeats, jax.device_put(obs, device))


def _time_learner(learner, streams: int, steps: int, repeats: int, obs: jax.Array) -> float:
    stages = num_stages(learner)
    hp = make_hparams(steps_per_stage=max(1, steps // stages) if stages > 1 else STAGE_FOREVER)
    states = jax.vmap(learner.init, in_axes=(0, None))(
        jax.random.split(jax.random.PRNGKey(1), streams), hp
    )
    step = jax.vmap(learner.step, in_axes=(0, 0, 0, None))

    @jax.jit
    def run(states, obs):
        def body(s, x):
            s, out = step(s, x, x[:, 0], hp)
            return s, out["v"][0]

        return jax.lax.scan(body, states, obs)

    jax.block_until_ready(run(states, obs))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(run(states, obs))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def autodiff_speedups(rows: list[list]) -> list[tuple[str, int, float]]:
    """``(size, streams, time of autodiff / time of closed form)`` for every columnar size
    and stream count benchmarked both ways."""
    closed = {(r[1], r[3]): r[4] for r in rows if r[0] == "columnar"}
    return [
        (r[1], r[3], closed[(r[1], r[3])] / r[4])
        for r in rows
        if r[0] == "columnar_autodiff" and (r[1], r[3]) in closed
    ]


def write_csv(path: str, header, rows: list[list]) -> None:
    """Write the table so far (after every row: a run stopped early keeps what it measured)."""
    with Path(path).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def fit_exponent(params: list[int], seconds: list[float]) -> float:
    if len(params) < 2:
        return float("nan")
    return float(np.polyfit(np.log(params), np.log(seconds), 1)[0])


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
    from study.run import make_runner, seed_keys
    from study.tasks.metrics import horizon_for

    learner = make_learner("columnar", 12, n_features=7)
    env, tp = make_task("trace_patterning")
    runner = make_runner(learner, env, 10_000, horizon_for(float(tp.gamma)))
    hp = make_hparams()
    streams = args.memory_streams
    init = jax.jit(jax.vmap(runner.init, in_axes=(0, None, None)))
    advance = jax.jit(jax.vmap(runner.advance, in_axes=(0, None, None, None)), static_argnums=3)
    carry = init(seed_keys(list(range(streams))), hp, tp)
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
    return 0


# Batch sizes (streams) swept by --crossover, and the fewest steps a timed call runs.
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
    return 0


STUDY_PARTS = ("loop", "compile", "logging", "checkpoint")


def study_overhead(args: argparse.Namespace, where: str) -> int:
    """Run a real study (``study.launch``: local Ray, Optuna, MLflow in SQLite under a fresh
    folder) and split its trials' time, from the ``trial_time_*`` metrics each trial logs
    (``study.trainable.Clock``): the share of the trials' wall time spent in the compiled run
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


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m study.bench", description=__doc__.split("\n")[0])
    p.add_argument("--learners", default=None, help=f"comma list (default all: {','.join(SIZES)})")
    p.add_argument("--streams", type=count(1, 2**24), nargs="+", default=None,
                   help="batch sizes (default 1 256; with --crossover "
                   f"{' '.join(map(str, CROSSOVER_STREAMS))})")  # fmt: skip
    p.add_argument("--device", default="default",
                   help="where the learner table runs: default (JAX's), cpu or gpu")  # fmt: skip
    p.add_argument("--threads", type=count(0, 4096), default=0,
                   help="XLA CPU threads (default 0: every core, JAX's default; 1 for the "
                   "one-core figures)")  # fmt: skip
    p.add_argument("--crossover", action="store_true",
                   help="sweep batch sizes on the CPU and the GPU and find where the GPU wins "
                   "(default learners columnar,hybrid,snap1)")  # fmt: skip
    p.add_argument("--crossover-budget", type=count(1, 2**40), default=2**21,
                   help="stream-steps per timed call in --crossover (fewer steps for big "
                   "batches)")  # fmt: skip
    p.add_argument("--steps", type=count(1, 10**9), default=1000, help="timed steps per call")
    p.add_argument("--repeats", type=count(1, 1000), default=3)
    p.add_argument(
        "--max-params", type=count(1), default=1_000_000, help="skip batches with more parameters"
    )
    p.add_argument("--out", default="bench.csv", help="CSV path (default bench.csv)")
    p.add_argument("--study", action="store_true",
                   help="measure a real study's overhead instead of the learners")  # fmt: skip
    p.add_argument("--study-space", default="columnar")
    p.add_argument("--study-trials", type=count(1), default=4)
    p.add_argument("--study-seeds", type=count(1, 4096), default=5)
    p.add_argument("--study-steps", type=count(1, 10**12), default=1_000_000,
                   help="steps per trial (about a minute of columnar work here)")  # fmt: skip
    p.add_argument("--study-concurrency", type=count(1, 4096), default=2)
    p.add_argument("--study-set", nargs="*", default=["--set", "n_features=7"],
                   help="more study.launch arguments")  # fmt: skip
    p.add_argument("--memory-steps", type=count(0, 10**12), default=0,
                   help="measure memory over a run this long (e.g. 10000000) instead")  # fmt: skip
    p.add_argument("--memory-streams", type=count(1, 2**20), default=8)
    args = p.parse_args(argv)
    try:
        writable_file(args.out, "--out")
    except ValueError as e:
        return fail(str(e))
    limit_xla_threads(args.threads)  # before anything here starts JAX's backends
    if args.study:
        return study_overhead(args, machine())
    if args.memory_steps:
        if args.memory_steps % 10_000:
            return fail(f"--memory-steps {args.memory_steps}: allowed: a multiple of 10000")
        return memory_check(args, machine())
    if args.learners is None:
        args.learners = "columnar,hybrid,snap1" if args.crossover else ",".join(SIZES)
    if args.streams is None:
        args.streams = list(CROSSOVER_STREAMS) if args.crossover else [1, 256]
    names = [n.strip() for n in args.learners.split(",") if n.strip()]
    for n in names or [""]:
        if n not in SIZES:
            return fail(f"--learners {args.learners!r}: unknown learner {n!r}; allowed: "
                        f"{', '.join(SIZES)}")  # fmt: skip
    if args.crossover:
        return crossover(args, names)
    devices = platforms()
    if args.device != "default" and args.device not in devices:
        return fail(f"--device {args.device!r} is not available here; allowed: default, "
                    f"{', '.join(devices)}")  # fmt: skip
    device = devices.get(args.device)
    where = machine(device)
    print(f"machine: {where}")
    header = (
        "learner", "size", "params_per_stream", "streams", "steps_per_s", "param_steps_per_s",
        "us_per_step", "flops_per_step_ledger", "ledger_gflops_per_s", "ledger_ratio",
        "state_bytes_ledger", "machine",
    )  # fmt: skip
    rows = []
    print(
        f"{'learner':13s} {'size':>10s} {'params':>9s} {'streams':>7s} {'steps/s/stream':>15s} "
        f"{'param-steps/s':>14s} {'us/step':>9s} {'ledger flops':>12s} {'GFLOP/s':>8s}"
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
                gflops = entry.flops * sps * streams / 1e9
                row = [
                    name, size_label(kw), learner.n_params, streams, round(sps, 1),
                    round(sps * learner.n_params * streams), round(1e6 * sec / args.steps, 3),
                    entry.flops, round(gflops, 3), None, entry.state_bytes, where,
                ]  # fmt: skip
                rows.append(row)
                write_csv(args.out, header, rows)
                ps.append(learner.n_params)
                ts.append(sec)
                print(
                    f"{name:13s} {row[1]:>10s} {learner.n_params:9,d} {streams:7d} {sps:15,.0f} "
                    f"{row[5]:14,.0f} {row[6]:9.2f} {entry.flops:12,d} {gflops:8.2f}",
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
