"""The Atari prediction benchmark as a task (``study.tasks.atari`` reads, replays and caches
its streams): a recorded stream as pure ``reset``/``step_u`` functions, its arrays, and the
driver's two steps, the static shape from the trace alone (``atari_env``) and the replay
(``prepare_stream``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from study.tasks.atari import (
    GAMMA,
    N_ACTIONS,
    OBS_SIZE,
    SIDE,
    _cache_file,
    cache_key,
    check_cache_folder,
    emulator,
    load_stream,
    read_trace,
    trace_path,
)


class AtariParams(NamedTuple):
    frames: Any  # uint8 [T, 256]
    actions: Any  # int32 [T]
    rewards: Any  # float32 [T], clipped
    gamma: Any  # float32 []


@dataclass(frozen=True)
class Atari:
    """A recorded game as a prediction task; ``reset`` and ``step_u`` are pure. The stream is
    the same for every seed (the agent's recording): seeds differ in the learner's start."""

    task: str
    length: int  # steps in the stream
    obs_size: int = OBS_SIZE
    n_uniform: int = 1

    def uniforms(self, key: Any, t0: Any, n: int) -> Any:
        """No randomness: the indices of steps ``t0 + 1 .. t0 + n`` (the next observations)."""
        import jax.numpy as jnp

        del key
        return (t0 + 1 + jnp.arange(n, dtype=jnp.int32))[:, None]

    def observe(self, t: Any, params: AtariParams) -> Any:
        import jax
        import jax.numpy as jnp

        t = jnp.minimum(t, self.length - 1)
        screen = params.frames[t].astype(jnp.float32) / 256.0
        action = jax.nn.one_hot(params.actions[t], N_ACTIONS, dtype=jnp.float32)
        return jnp.concatenate([params.rewards[t][None], screen, action])

    def reset(self, key: Any, params: AtariParams) -> tuple[Any, Any]:
        import jax.numpy as jnp

        del key
        t = jnp.zeros((), jnp.int32)
        return self.observe(t, params), t

    def step_u(self, u: Any, state: Any, params: AtariParams) -> tuple[Any, Any, Any]:
        """The next step (``u``: its index, from :meth:`uniforms`); returns ``(obs, state,
        cumulant)`` with cumulant = the clipped reward."""
        t = u[0]
        obs = self.observe(t, params)
        return obs, t, obs[0]


def make_atari(task: str, data_dir: str | None = None,
               gamma: float | None = None) -> tuple[Atari, AtariParams]:  # fmt: skip
    """The task and its arrays (JAX arrays: built in a trial's worker, not in a driver)."""
    import jax.numpy as jnp

    stream = load_stream(task, data_dir)
    params = AtariParams(
        jnp.asarray(stream.frames.reshape(len(stream.frames), SIDE * SIDE)),
        jnp.asarray(stream.actions.astype(np.int32)),
        jnp.asarray(stream.rewards),
        jnp.asarray(GAMMA if gamma is None else gamma, jnp.float32),
    )  # fmt: skip
    return Atari(task, len(stream.frames)), params


def atari_env(task: str, data_dir: str | None = None) -> Atari:
    """The task's static shape from its trace alone (one character per frame): a driver checks
    the trace, the emulator, the game and, when the stream is not cached yet, the cache folder,
    and sizes a study, without replaying anything (``prepare_stream`` replays, once every
    check has passed)."""
    trace = read_trace(trace_path(task, data_dir))
    key = cache_key(task, trace)
    if not _cache_file(key).is_file():
        check_cache_folder()
        emulator(task, trace)
    return Atari(task, len(trace))


def prepare_stream(task: str, data_dir: str | None = None) -> None:
    """Replay and cache the task's stream in the driver, once, before any trial needs it
    (each trial would replay it otherwise)."""
    load_stream(task, data_dir)
