"""Linear TD(lambda) on the (normalised) raw observation: the memoryless baseline.

``v_t = w . x_hat_t + b``; ``x_hat`` is the observation normalised by running statistics
(``norm_rate = 0`` turns that off). TD(lambda) with accumulating traces (Sutton and Barto,
eq. 12.5-12.7): ``e_t = gamma lambda e_{t-1} + grad v_t``, ``theta += alpha delta_t e_t``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from learners.api import HParams, Learner
from learners.td import normalise, td_lambda, update_stats


class LinearState(NamedTuple):
    w: jax.Array  # [m]
    b: jax.Array  # []
    elig_w: jax.Array  # [m]
    elig_b: jax.Array  # []
    nu_w: jax.Array  # [m], RMSProp second moments
    nu_b: jax.Array  # []
    corr: jax.Array  # [], 1 - beta2^n
    obs_mean: jax.Array  # [m]
    obs_var: jax.Array  # [m]
    v_prev: jax.Array  # [], v_{t-1}


def linear(n_inputs: int, rmsprop: bool = True) -> Learner:
    if n_inputs < 1:
        raise ValueError(f"n_inputs={n_inputs} must be >= 1")

    def init(key: jax.Array, hp: HParams) -> LinearState:
        del key
        z = jnp.zeros(n_inputs, hp.alpha.dtype)
        s = jnp.zeros((), hp.alpha.dtype)
        return LinearState(z, s, z, s, z, s, s, z, z + 1.0, s)

    def step(
        state: LinearState, x_t: jax.Array, c_t: jax.Array, hp: HParams
    ) -> tuple[LinearState, dict[str, jax.Array]]:
        x_hat = normalise(x_t, state.obs_mean, state.obs_var, hp)
        obs_mean, obs_var = update_stats(x_t, state.obs_mean, state.obs_var, hp.norm_rate)
        v_t = jnp.dot(state.w, x_hat) + state.b
        delta = c_t + hp.gamma * v_t - state.v_prev
        (w, b), (elig_w, elig_b), (nu_w, nu_b), corr = td_lambda(
            (state.w, state.b), (state.elig_w, state.elig_b), (state.nu_w, state.nu_b),
            state.corr, (x_hat, 1.0), delta, hp, rmsprop,
        )  # fmt: skip
        new = LinearState(w, b, elig_w, elig_b, nu_w, nu_b, corr, obs_mean, obs_var, v_prev=v_t)
        return new, {"v": v_t, "delta": delta}

    return Learner("linear", init, step, n_inputs + 1, dict(n_inputs=n_inputs, rmsprop=rmsprop))
