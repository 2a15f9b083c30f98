"""Linear TD(lambda) on the (normalised) raw observation: the memoryless baseline.

``v_t = w . x_hat_t + b``; ``x_hat`` is the observation normalised by running statistics
(``norm_rate = 0`` turns that off). TD(lambda) with accumulating traces (Sutton and Barto,
eq. 12.5-12.7): ``e_t = gamma lambda e_{t-1} + grad v_t``, ``theta += alpha delta_t e_t``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from learners.api import HParams, Learner, check_sizes
from learners.readout import cross_entropy, descend, readout_out
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


def linear(n_inputs: int, rmsprop: bool = True, n_classes: int = 0) -> Learner:
    """Linear TD(lambda); with ``n_classes > 0`` a softmax classifier of the observation."""
    check_sizes(n_inputs, None, n_classes)
    C = n_classes
    if C:
        return _classifier(n_inputs, C, rmsprop)

    def init(key: jax.Array, hp: HParams) -> LinearState:
        del key
        z = jnp.zeros(n_inputs, hp.alpha.dtype)
        s = jnp.zeros((), hp.alpha.dtype)
        return LinearState(z, s, z, s, z, s, s, z, z + 1.0, s)

    def step(
        state: LinearState, x_t: jax.Array, c_t: jax.Array, hp: HParams
    ) -> tuple[LinearState, dict[str, jax.Array]]:
        x_hat = normalise(x_t, state.obs_mean, state.obs_var)
        obs_mean, obs_var = update_stats(x_t, state.obs_mean, state.obs_var, hp)
        v_t = jnp.dot(state.w, x_hat) + state.b
        delta = c_t + hp.gamma * v_t - state.v_prev
        (w, b), (elig_w, elig_b), (nu_w, nu_b), corr = td_lambda(
            (state.w, state.b), (state.elig_w, state.elig_b), (state.nu_w, state.nu_b),
            state.corr, (x_hat, 1.0), delta, hp, rmsprop,
        )  # fmt: skip
        new = LinearState(w, b, elig_w, elig_b, nu_w, nu_b, corr, obs_mean, obs_var, v_prev=v_t)
        return new, {"v": v_t, "delta": delta}

    return Learner("linear", init, step, n_inputs + 1, dict(n_inputs=n_inputs, rmsprop=rmsprop))


def _classifier(m: int, C: int, rmsprop: bool) -> Learner:
    """``logits = W x_hat + b`` learned by cross-entropy (``learners.readout``); the fields
    of :class:`LinearState` hold ``W`` [C, m] and ``b`` [C], no eligibility."""

    def init(key: jax.Array, hp: HParams) -> LinearState:
        del key
        dt = hp.alpha.dtype
        w, b, s, z0 = jnp.zeros((C, m), dt), jnp.zeros(C, dt), jnp.zeros((), dt), jnp.zeros(0, dt)
        return LinearState(w, b, z0, z0, w, b, s, jnp.zeros(m, dt), jnp.ones(m, dt), s)

    def step(
        state: LinearState, x_t: jax.Array, y_t: jax.Array, hp: HParams
    ) -> tuple[LinearState, dict[str, jax.Array]]:
        x_hat = normalise(x_t, state.obs_mean, state.obs_var)
        obs_mean, obs_var = update_stats(x_t, state.obs_mean, state.obs_var, hp)
        logits = state.w @ x_hat + state.b
        loss, dlogits = cross_entropy(logits, y_t)
        (w, b), (nu_w, nu_b), corr = descend(
            (state.w, state.b), (jnp.outer(dlogits, x_hat), dlogits), (state.nu_w, state.nu_b),
            state.corr, y_t >= 0, hp, rmsprop,
        )  # fmt: skip
        new = state._replace(
            w=w, b=b, nu_w=nu_w, nu_b=nu_b, corr=corr, obs_mean=obs_mean, obs_var=obs_var
        )
        return new, readout_out(logits, loss, y_t)

    settings = dict(n_inputs=m, rmsprop=rmsprop, n_classes=C)
    return Learner("linear", init, step, C * (m + 1), settings, lambda state: state)
