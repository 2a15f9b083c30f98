"""What every bench tool shares: the sizes timed per learner, building a learner of a size,
the machine's description, recorded observations, timing a learner's compiled steps, CSV."""

from __future__ import annotations

import csv
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from learners import FAMILIES, STAGE_FOREVER, make_hparams, make_learner, num_stages
from learners.registry import cost
from study.cli import cpu_model
from study.engine.threads import pool_size, threads_label
from study.tasks import make_task

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
    cpu = cpu_model(platform.processor() or platform.machine())
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


def _bench_hparams(learner, steps: int):
    """Default hyperparameters, with every stage of a staged learner started within ``steps``."""
    stages = num_stages(learner)
    return make_hparams(steps_per_stage=max(1, steps // stages) if stages > 1 else STAGE_FOREVER)


def _time_learner(learner, streams: int, steps: int, repeats: int, obs: jax.Array) -> float:
    hp = _bench_hparams(learner, steps)
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


def time_loop(learner, streams: int, steps: int, repeats: int, device=None, env=None, tp=None,
              engine: str | None = None) -> tuple[float, str]:  # fmt: skip
    """Median seconds for ``steps`` steps of ``streams`` streams of the full run loop (task,
    learner and streaming MSRE on trace_patterning, or on ``env`` with parameters ``tp``:
    ``study.engine.loop``, what a trial runs), compile excluded, and the engine that ran it
    (``study.native``: the compiled CPU loop, or JAX; ``engine`` forces one)."""
    from study import native
    from study.engine.kinds import PREDICTION
    from study.engine.loop import seed_keys
    from study.engine.pack import stream_hparams

    device = device or jax.devices()[0]
    if env is None:
        env, tp = make_task("trace_patterning")
    if engine is None:
        engine = native.engine(learner, env) if device.platform == "cpu" else "jax"
    # the program a trial runs (one row of hyperparameters per stream), one block per call
    hp = stream_hparams([_bench_hparams(learner, steps)], streams)
    program = PREDICTION.program_of(learner, env, tp, steps, engine=engine)
    advance = program.advance
    with jax.default_device(device):
        carry = program.init(seed_keys(list(range(streams))), hp, tp)
        carry, stats = advance(carry, hp, tp, 1)
        jax.block_until_ready(stats)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            carry, stats = advance(carry, hp, tp, 1)
            jax.block_until_ready(stats)
            times.append(time.perf_counter() - t0)
    return statistics.median(times), engine


def autodiff_speedups(rows: list[list]) -> list[tuple[str, int, float]]:
    """``(size, streams, time of autodiff / time of closed form)`` for every size and stream
    count benchmarked both ways (a row ``NAME_autodiff`` beside a row ``NAME``)."""
    closed = {(r[0], r[1], r[3]): r[4] for r in rows}
    return [
        (r[1], r[3], closed[key] / r[4])
        for r in rows
        if str(r[0]).endswith("_autodiff")
        and (key := (str(r[0]).removesuffix("_autodiff"), r[1], r[3])) in closed
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
