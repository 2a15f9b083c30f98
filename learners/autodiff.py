"""The columnar learner with its traces from autodiff instead of the closed form: the
straightforward implementation the closed form is measured against (``study.bench``).

Each step, for every column at once (``vmap``), ``jax.jacrev`` of the column's one-step map
``(theta_j, h_{t-1}, c_{t-1}) -> (h_t, c_t)`` gives ``d(h, c)/dtheta_j`` and
``d(h, c)/d(h_{t-1}, c_{t-1})``, and the RTRL recursion

    T_t = d(h_t, c_t)/dtheta_j + d(h_t, c_t)/dh_{t-1} TH_{t-1} + d(h_t, c_t)/dc_{t-1} TC_{t-1}

updates the column's traces. Everything else (forward pass, readout, TD(lambda), RMSProp) is
the columnar learner's own, so the two learners compute the same numbers
(``tests/test_columns.py``) and differ only in cost.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from learners.api import Learner
from learners.lstm_column import Gates, gates_from_preact, preact
from learners.staged import staged


def autodiff_trace_step(
    theta: jax.Array,
    z: jax.Array,
    h_prev: jax.Array,
    c_prev: jax.Array,
    gates: Gates,
    trace_h: jax.Array,
    trace_c: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """``learners.lstm_column.trace_step`` by autodiff (``gates`` is not needed: the Jacobians
    recompute the step)."""
    del gates

    def column(th: jax.Array, h: jax.Array, c: jax.Array) -> jax.Array:
        gt = gates_from_preact(preact(th[None], z, h[None])[0], c)
        return jnp.stack([gt.h, gt.c])  # [2]

    def one(th, h, c, t_h, t_c):
        d_theta, d_h, d_c = jax.jacrev(column, argnums=(0, 1, 2))(th, h, c)
        new = d_theta + d_h[:, None, None] * t_h + d_c[:, None, None] * t_c  # [2, 4, K+2]
        return new[0], new[1]

    return jax.vmap(one)(theta, h_prev, c_prev, trace_h, trace_c)


def columnar_autodiff(n_inputs: int, n_columns: int, *, rmsprop: bool = True) -> Learner:
    """``n_columns`` independent LSTM columns, traces by per-step ``jax.jacrev``."""
    learner = staged(
        n_inputs, n_columns, n_columns, rmsprop=rmsprop, name="columnar_autodiff",
        trace_fn=autodiff_trace_step,
    )  # fmt: skip
    return learner


__all__ = ["autodiff_trace_step", "columnar_autodiff"]
