"""A trial's compiled program: the learner and the task's loop, jitted and vmapped over
streams (a key and a row of hyperparameters each), so that a pack (``study.engine.pack``: several
configurations x seeds) and a lone trial are one program. Built by the task kinds
(``study.engine.kinds``: ``program`` from a family's name and settings, cached per worker process;
``program_of`` from objects)."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple


class Program(NamedTuple):
    """A trial shape, built once per worker process: the learner, the task's environment and
    parameters, and the jitted ``init``, ``advance`` and, for a kind that scores after each
    chunk, ``evaluate``, vmapped over streams (a key and a row of hyperparameters each)."""

    learner: Any
    env: Any
    params: Any
    init: Any
    advance: Any
    evaluate: Any = None


def _jit_vmapped(runner: Any) -> tuple[Any, Any]:
    import jax

    # One stream per row: keys and hyperparameters both carry the stream axis, so that a pack
    # (``study.engine.pack``: several configurations x seeds) and a lone trial are one program.
    init = jax.jit(jax.vmap(runner.init, in_axes=(0, 0, None)))
    advance = jax.jit(jax.vmap(runner.advance, in_axes=(0, 0, None, None)), static_argnums=3)
    return init, advance


def prediction_program_of(learner: Any, env: Any, params: Any, block: int,
                          engine: str | None = None) -> Program:  # fmt: skip
    """The prediction loop (``study.engine.loop``) of ``learner`` on ``env``, ``block`` steps a
    call; ``engine`` as ``study.engine.loop.make_runner`` takes it."""
    from study.engine.loop import make_runner
    from study.tasks.metrics import horizon_for

    runner = make_runner(learner, env, block, horizon_for(float(params.gamma)), engine=engine)
    return Program(learner, env, params, *_jit_vmapped(runner))


def classification_program_of(learner: Any, env: Any, params: Any, block: int) -> Program:
    """The classification loop (``study.engine.classify``) and its held-out scoring."""
    import jax

    from study.engine.classify import make_classify_runner, make_evaluate

    runner = make_classify_runner(learner, env, block)
    evaluate = jax.jit(jax.vmap(make_evaluate(learner, env), in_axes=(0, 0, None)))
    params = jax.tree.map(jax.numpy.asarray, params)
    return Program(learner, env, params, *_jit_vmapped(runner), evaluate)


@functools.lru_cache(maxsize=32)
def prediction_program(name: str, static: tuple, rmsprop: bool, task: str, block: int,
                        options: tuple):  # fmt: skip
    """Cached, so that trials of one shape in one worker process (a reused actor) compile
    once: hyperparameters and seeds are arguments of the compiled program, not constants."""
    from learners import make_learner
    from study.tasks import make_task

    env, params = make_task(task, **dict(options))
    learner = make_learner(name, env.obs_size, rmsprop=rmsprop, **dict(static))
    return prediction_program_of(learner, env, params, block)


@functools.lru_cache(maxsize=32)
def classification_program(name: str, static: tuple, rmsprop: bool, task: str, block: int,
                            options: tuple):  # fmt: skip
    from learners import make_learner
    from study.tasks import make_task

    env, params = make_task(task, **dict(options))
    learner = make_learner(name, env.obs_size, rmsprop=rmsprop, n_classes=env.n_classes,
                           **dict(static))  # fmt: skip
    return classification_program_of(learner, env, params, block)
