"""The online-prediction run loop.

``make_runner(learner, env, block_size, horizon)`` gives pure ``init(key, hparams, params)``
and ``advance(carry, hparams, params, n_blocks)`` for one stream, built on ``jax.lax.scan``;
``jax.vmap`` them over keys (seeds) and over hyperparameter pytrees to run many streams as one
compiled program, and call ``advance`` chunk after chunk (progress display, a trial's reports
and checkpoints) without changing a single number. Time is cut into blocks of ``block_size``
steps; per block a run returns the sum of squared return errors scored in it and their
count, from which ``study.tasks.metrics.summarise_blocks`` gives the running MSRE, the
windowed MSRE (the paper's mean over the last ``window`` steps) and the learning curve.

``make_run`` is the whole run of one stream as one function of ``(key, hparams, params)`` (the
reference the tests hold everything else to). Studies, ``study.run`` and ``study.defaults``
run these functions through a trial (``study.engine.trial.TrialRun``: every configuration x seed a
stream of one vmapped program, chunked and checkpointed).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from learners import (
    HParams,
    Learner,
)
from study.tasks.animal import UNIFORM_CHUNK, Animal, AnimalParams
from study.tasks.metrics import (
    MsreState,
    horizon_for,
    msre_init,
    msre_update,
)


class Carry(NamedTuple):
    key: jax.Array  # uint32 [2], the key of the task's random numbers (``Animal.uniforms``)
    t: jax.Array  # int32 [], steps taken
    env_state: Any
    obs: jax.Array  # [m] observation not yet shown to the learner
    cumulant: jax.Array  # [] cumulant that arrived with ``obs``
    learner_state: Any
    msre: MsreState


class BlockStats(NamedTuple):
    sq_sum: jax.Array  # [n_blocks] sum of squared return errors scored in each block
    count: jax.Array  # [n_blocks] number of errors scored in each block
    nonfinite: jax.Array  # [n_blocks] bool, whether any prediction was NaN or infinite
    ret_sum: jax.Array  # [n_blocks] sum of the true returns G of the errors scored
    ret_sq_sum: jax.Array  # [n_blocks] sum of their squares (``metrics.baselines``)


class Runner(NamedTuple):
    init: Callable[[jax.Array, HParams, AnimalParams], Carry]
    advance: Callable[[Carry, HParams, AnimalParams, int], tuple[Carry, BlockStats]]
    block_size: int
    horizon: int


def make_runner(
    learner: Learner,
    env: Animal,
    block_size: int,
    horizon: int,
    record: bool = False,
    engine: str | None = None,
    unroll: int | None = None,
) -> Runner:
    """Pure ``init`` and ``advance`` of one stream; ``advance``'s ``n_blocks`` is static.

    With ``record`` the per-step predictions and cumulants are returned as well (for tests and
    offline checks; it costs memory proportional to the steps; JAX's path only).
    ``engine`` is ``"jax"`` or ``"native"`` (the compiled CPU loop, ``study.native``); None
    chooses as ``study.native.engine`` does. ``unroll`` is how many steps JAX's loop runs
    per iteration of its scan (fewer loop iterations, and on a GPU fewer launches and
    synchronisations per step, for a larger program; the numbers are the same on the CPU);
    None reads ``CCN_SCAN_UNROLL`` (default 1).
    """
    if block_size < 1:
        raise ValueError(f"block_size={block_size} must be >= 1")
    unroll = scan_unroll() if unroll is None else unroll

    def init(key: jax.Array, hp: HParams, tp: AnimalParams) -> Carry:
        k_env, k_learner, k_run = jax.random.split(key, 3)
        obs, env_state = env.reset(k_env, tp)
        return Carry(
            key=k_run,
            t=jnp.zeros((), jnp.int32),
            env_state=env_state,
            obs=obs,
            cumulant=obs[0],
            learner_state=learner.init(k_learner, hp),
            msre=msre_init(tp.gamma, horizon),
        )

    def one_step(carry: Carry, u: jax.Array, hp: HParams, tp: AnimalParams):
        learner_state, out = learner.step(carry.learner_state, carry.obs, carry.cumulant, hp)
        msre, sq, counted, ret = msre_update(carry.msre, out["v"], carry.cumulant)
        obs, env_state, cumulant = env.step_u(u, carry.env_state, tp)
        new = Carry(carry.key, carry.t + 1, env_state, obs, cumulant, learner_state, msre)
        return new, (sq, counted, ret, out["v"], carry.cumulant)

    # The task's random numbers are drawn for a sub-block of steps at a time, so that no
    # block's numbers are held at once (memory) and the draw stays vectorised.
    # (The compiled CPU loop draws them itself, a whole block in one call.)
    native = None if record or engine == "jax" else _native_block(learner, env, engine, block_size)
    sub = (
        block_size
        if native is not None
        else next((n for n in (1000, UNIFORM_CHUNK) if block_size % n == 0), block_size)
    )

    def sub_block(carry: Carry, hp: HParams, tp: AnimalParams):
        if native is not None:
            carry, stats = native(carry, hp, tp)
            return carry, (stats, None)
        u = env.uniforms(carry.key, carry.t, sub)

        def body(c, u_t):
            return one_step(c, u_t, hp, tp)

        carry, (sq, counted, ret, v, c) = jax.lax.scan(body, carry, u, unroll=unroll)
        stats = (sq.sum(), counted.sum(), jnp.any(~jnp.isfinite(v)), ret.sum(), (ret * ret).sum())
        return carry, (stats, (v, c) if record else None)

    def block(carry: Carry, hp: HParams, tp: AnimalParams):
        if sub == block_size:
            return sub_block(carry, hp, tp)
        carry, (stats, rec) = jax.lax.scan(lambda c, _: sub_block(c, hp, tp), carry, None,
                                           length=block_size // sub)  # fmt: skip
        sq, counted, nonfinite, ret, ret_sq = stats
        stats = (sq.sum(), counted.sum(), jnp.any(nonfinite), ret.sum(), ret_sq.sum())
        return carry, (stats, jax.tree.map(lambda a: a.reshape(-1), rec))

    def advance(carry: Carry, hp: HParams, tp: AnimalParams, n_blocks: int):
        def body(c, _):
            return block(c, hp, tp)

        carry, (stats, rec) = jax.lax.scan(body, carry, None, length=n_blocks)
        out = BlockStats(*stats)
        if record:
            return carry, (out, jax.tree.map(lambda a: a.reshape(-1), rec))
        return carry, out

    return Runner(init, advance, block_size, horizon)


def check_environment() -> None:
    """The variables a run reads, checked before it starts: ``CCN_ENGINE`` and
    ``CCN_SCAN_UNROLL`` (a one-line ValueError naming the variable)."""
    from study import native

    native.engine_setting()
    scan_unroll()


def scan_unroll() -> int:
    """Steps per iteration of JAX's loop: ``CCN_SCAN_UNROLL`` (a whole number from 1 to 1000;
    default 1). ``cluster/gpu-pack-bench.sh`` measures what it saves on a GPU."""
    text = os.environ.get("CCN_SCAN_UNROLL", "1")
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1000:
        raise ValueError(f"CCN_SCAN_UNROLL={text}: allowed: a whole number from 1 to 1000")
    return value


def _native_block(learner: Learner, env: Animal, engine: str | None, steps: int):
    from study import native

    if native.engine(learner, env, engine) != "native":
        return None
    return native.block_fn(learner, env, steps)


def make_run(
    learner: Learner,
    env: Animal,
    num_steps: int,
    block_size: int | None = None,
    horizon: int | None = None,
    gamma: float = 0.9,
) -> Callable[[jax.Array, HParams, AnimalParams], BlockStats]:
    """``run(key, hparams, task_params) -> BlockStats`` for ``num_steps`` steps of one stream.

    ``horizon`` defaults to ``horizon_for(gamma)``; pass the largest discount you will run.
    """
    block_size = block_size or default_block(num_steps)
    check_steps(num_steps, block_size)
    runner = make_runner(learner, env, block_size, horizon or horizon_for(gamma))

    def run(key: jax.Array, hp: HParams, tp: AnimalParams) -> BlockStats:
        return runner.advance(runner.init(key, hp, tp), hp, tp, num_steps // block_size)[1]

    return run


def default_block(num_steps: int) -> int:
    """Largest of 10k, 5k, 1k, 500, 100 that divides ``num_steps`` (else ``num_steps``)."""
    for b in (10_000, 5_000, 1_000, 500, 100):
        if num_steps % b == 0 and num_steps >= b:
            return b
    return num_steps


def check_steps(num_steps: int, block_size: int) -> None:
    if num_steps < 1:
        raise ValueError(f"--steps {num_steps}: allowed: >= 1")
    if num_steps % block_size:
        raise ValueError(
            f"--steps {num_steps} is not a multiple of the block size {block_size} (--block); "
            f"allowed: a multiple of {block_size}"
        )


def seed_keys(seeds: list[int] | np.ndarray) -> jax.Array:
    """uint32 [S, 2] keys, one per seed (raw keys round-trip through numpy checkpoints)."""
    return jnp.stack([jax.random.PRNGKey(int(s)) for s in seeds])
