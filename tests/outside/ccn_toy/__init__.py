"""A learner family defined outside ccn-study, as a researcher's own package would define one:
linear TD(lambda) on the observation and on K exponential traces of it (one per timescale), a
fixed recurrence with nothing learned through time. Its size is K; its cost is counted by hand
for the ledger; its search space is given beside it. ``tests/test_outside.py`` runs it through
``study.run``, ``study.launch``, ``study.compare`` and the report, found as
``ccn_toy:FAMILY`` and by its entry point (``ema_td``, declared in the dist-info beside it)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from learners.api import HParams, Learner
from learners.families import Family
from learners.ledger import BYTES, RMSPROP, TD, Cost
from learners.td import normalise, td_lambda, update_stats
from search_spaces import Param


class EmaState(NamedTuple):
    z: jax.Array  # [K, m] the traces
    w: jax.Array  # [(K + 1) m] weights of the observation and the traces
    b: jax.Array  # []
    elig_w: jax.Array
    elig_b: jax.Array
    nu_w: jax.Array
    nu_b: jax.Array
    corr: jax.Array
    obs_mean: jax.Array  # [m]
    obs_var: jax.Array  # [m]
    v_prev: jax.Array


def ema_td(n_inputs: int, n_features: int, rmsprop: bool = True) -> Learner:
    m, K = n_inputs, n_features
    decay = jnp.asarray([1.0 - 2.0 ** -(k + 1) for k in range(K)])  # timescales 2, 4, 8, ...
    n = (K + 1) * m

    def init(key: jax.Array, hp: HParams) -> EmaState:
        del key
        dt = hp.alpha.dtype
        zero, s = jnp.zeros(n, dt), jnp.zeros((), dt)
        return EmaState(jnp.zeros((K, m), dt), zero, s, zero, s, zero, s, s,
                        jnp.zeros(m, dt), jnp.ones(m, dt), s)  # fmt: skip

    def step(state: EmaState, x_t: jax.Array, c_t: jax.Array, hp: HParams):
        x_hat = normalise(x_t, state.obs_mean, state.obs_var)
        obs_mean, obs_var = update_stats(x_t, state.obs_mean, state.obs_var, hp)
        z = decay[:, None] * state.z + (1.0 - decay[:, None]) * x_hat
        phi = jnp.concatenate([x_hat, z.ravel()])
        v_t = jnp.dot(state.w, phi) + state.b
        delta = c_t + hp.gamma * v_t - state.v_prev
        (w, b), (elig_w, elig_b), (nu_w, nu_b), corr = td_lambda(
            (state.w, state.b), (state.elig_w, state.elig_b), (state.nu_w, state.nu_b),
            state.corr, (phi, 1.0), delta, hp, rmsprop,
        )  # fmt: skip
        new = EmaState(z, w, b, elig_w, elig_b, nu_w, nu_b, corr, obs_mean, obs_var, v_t)
        return new, {"v": v_t, "delta": delta}

    settings = dict(n_inputs=m, n_features=K, rmsprop=rmsprop)
    return Learner("ema_td", init, step, n + 1, settings)


def cost(m: int, size: dict[str, int], rms: bool) -> tuple[Cost, int, int]:
    """Per step: normalising and the statistics (about 8 m), the traces (3 K m), the value
    (2 n), TD(lambda)'s update of n + 1 weights; state: traces, weights, eligibilities and
    second moments, statistics."""
    K = size["n_features"]
    n = (K + 1) * m
    td = (n + 1) * (TD + (RMSPROP if rms else 0))
    flops = 8 * m + 3 * K * m + 2 * n + td
    state = K * m + 3 * (n + 1) + 2 * m + 2
    return Cost(n + 1, flops, state * BYTES), n, 0


FAMILY = Family(
    name="ema_td",
    about="linear TD(lambda) on the observation and K exponential traces of it",
    build=lambda m, s, rmsprop=True, n_classes=0: ema_td(m, s["n_features"], rmsprop),
    sizes={"n_features": 3},
    defaults=dict(alpha=1e-3, lambda_=0.9),
    cost=cost,
    grow=lambda n, size: {**size, "n_features": n},
    space=(
        Param("alpha", 1e-4, 1e-2, log=True),
        Param("lambda_", choices=(0.0, 0.9, 0.99)),
        Param("n_features", 1, 8, integer=True, size=True),
    ),
)
