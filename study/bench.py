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
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from learners import STAGE_FOREVER, make_hparams, make_learner
from study.tasks import make_task

# (learner, n_features, per_stage) at growing sizes; 12 inputs as in the paper's testbed.
SIZES: dict[str, list[tuple[int, int | None]]] = {
    "linear": [(0, None)],
    "columnar": [(7, None), (32, None), (128, None), (512, None), (2048, None)],
    "constructive": [(4, None), (8, None), (16, None), (32, None)],
    "hybrid": [(8, 4), (20, 4), (64, 16), (256, 64)],
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu} | {os.cpu_count()} cores | jax {jax.__version__} {jax.default_backend()}"


def observations(steps: int, streams: int) -> jax.Array:
    """Recorded trace-patterning observations [steps, streams, 12] (the learner's real input)."""
    env, tp = make_task("trace_patterning")
    keys = jax.random.split(jax.random.PRNGKey(0), streams)

    def one(key):
        obs0, s0 = env.reset(key, tp)

        def body(s, k):
            o, s, _ = env.step(k, s, tp)
            return s, o

        _, obs = jax.lax.scan(body, s0, jax.random.split(key, steps - 1))
        return jnp.concatenate([obs0[None], obs])

    return jnp.swapaxes(jax.jit(jax.vmap(one))(keys), 0, 1)


def time_learner(learner, streams: int, steps: int, repeats: int, obs: jax.Array) -> float:
    """Median seconds for ``steps`` steps of ``streams`` vmapped streams (compile excluded)."""
    stages = learner.settings.get("n_features", 1) // learner.settings.get("per_stage", 1)
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


def fit_exponent(params: list[int], seconds: list[float]) -> float:
    if len(params) < 2:
        return float("nan")
    return float(np.polyfit(np.log(params), np.log(seconds), 1)[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m study.bench", description=__doc__.split("\n")[0])
    p.add_argument("--learners", default="linear,columnar,constructive,hybrid")
    p.add_argument("--streams", type=int, nargs="+", default=[1, 256])
    p.add_argument("--steps", type=int, default=1000, help="timed steps per call")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--max-params", type=int, default=1_000_000, help="skip batches with more parameters"
    )
    p.add_argument("--out", default="bench.csv", help="CSV path (default bench.csv)")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.learners.split(",") if n.strip()]
    for n in names:
        if n not in SIZES:
            print(f"error: unknown learner {n!r}; allowed: {', '.join(SIZES)}", file=sys.stderr)
            return 2
    for s in args.streams:
        if s < 1:
            print(f"error: streams={s} must be >= 1", file=sys.stderr)
            return 2
    if args.steps < 1 or args.repeats < 1:
        print("error: --steps and --repeats must be >= 1", file=sys.stderr)
        return 2
    where = machine()
    print(f"machine: {where}")
    header = (
        "learner", "size", "params_per_stream", "streams", "steps_per_s", "param_steps_per_s",
        "us_per_step", "machine",
    )  # fmt: skip
    rows = []
    print(
        f"{'learner':13s} {'size':>10s} {'params':>9s} {'streams':>7s} {'steps/s/stream':>15s} "
        f"{'param-steps/s':>14s} {'us/step':>9s}"
    )
    fits = []
    for name in names:
        for streams in args.streams:
            obs = observations(args.steps, streams)
            ps, ts = [], []
            for n_features, per_stage in SIZES[name]:
                learner = make_learner(name, 12, n_features=n_features or None, per_stage=per_stage)
                if learner.n_params * streams > args.max_params:
                    continue
                sec = time_learner(learner, streams, args.steps, args.repeats, obs)
                sps = args.steps / sec
                size = (
                    ""
                    if name == "linear"
                    else f"{n_features}" + (f":{per_stage}" if per_stage else "")
                )
                row = (
                    name, size, learner.n_params, streams, round(sps, 1),
                    round(sps * learner.n_params * streams), round(1e6 * sec / args.steps, 3),
                    where,
                )  # fmt: skip
                rows.append(row)
                ps.append(learner.n_params)
                ts.append(sec)
                print(
                    f"{name:13s} {size:>10s} {learner.n_params:9,d} {streams:7d} {sps:15,.0f} "
                    f"{row[5]:14,.0f} {row[6]:9.2f}",
                    flush=True,
                )
            if len(ps) > 1:
                fits.append((name, streams, fit_exponent(ps, ts), min(ps), max(ps)))
    if fits:
        print("\nfitted exponent b of time/step ~ params^b (target <= 1.1):")
        for name, streams, b, lo, hi in fits:
            print(f"  {name:13s} streams={streams:<5d} b={b:.3f}  ({lo:,}..{hi:,} params)")
    out = Path(args.out)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
