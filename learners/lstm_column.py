"""One LSTM column (a single hidden unit with only its own recurrence) and its exact RTRL traces.

Forward step, paper eq. 1-6, for a column with input ``z`` (length K) and gates
``k in (i, f, o, g)``::

    a_k = W_k . z + u_k h_{t-1} + b_k
    i, f, o = sigmoid(a_i, a_f, a_o);   g = tanh(a_g)
    c_t = f c_{t-1} + i g;              h_t = o tanh(c_t)

Parameters are stored as ``theta[..., k, :] = [W_k (K) | u_k | b_k]``, so ``theta`` has shape
``[..., 4, K + 2]`` and ``4(K + 2)`` parameters per column. With ``zeta_t = [z_t, h_{t-1}, 1]``
the derivative of ``a_k`` with respect to parameter ``theta[k', j]`` is
``u_k TH_{t-1}[k', j] + [k = k'] zeta_t[j]``. Differentiating eq. 5 and 6 (our derivation; the
printed appendix eq. 19-27 has typos) gives, for every parameter at once::

    TC_t = f TC_{t-1} + A TH_{t-1} + E_c
    TH_t = o (1 - tanh^2 c_t) TC_t + B TH_{t-1} + E_h

    A = c_{t-1} f' u_f + g i' u_i + i g' u_g,        B = tanh(c_t) o' u_o
    E_c[k, :] = (g i', c_{t-1} f', 0, i g')[k] zeta_t
    E_h[k, :] = (0, 0, tanh(c_t) o', 0)[k] zeta_t

with ``i' = i(1 - i)`` (likewise f', o') and ``g' = 1 - g^2``: about ten flops per parameter,
two numbers of state per parameter. ``tests/test_columns.py`` checks it against ``jax.jacfwd``
of the unrolled forward computation in float64.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Gates(NamedTuple):
    i: jax.Array  # [...], input gate
    f: jax.Array  # [...], forget gate
    o: jax.Array  # [...], output gate
    g: jax.Array  # [...], candidate cell value
    c: jax.Array  # [...], new cell state c_t
    h: jax.Array  # [...], new hidden state h_t


def gates_from_preact(a: jax.Array, c_prev: jax.Array) -> Gates:
    """Gates, ``c_t`` and ``h_t`` from pre-activations ``a`` ([..., 4], order i, f, o, g)."""
    i = jax.nn.sigmoid(a[..., 0])
    f = jax.nn.sigmoid(a[..., 1])
    o = jax.nn.sigmoid(a[..., 2])
    g = jnp.tanh(a[..., 3])
    c = f * c_prev + i * g
    return Gates(i, f, o, g, c, o * jnp.tanh(c))


def preact(theta: jax.Array, z: jax.Array, h_prev: jax.Array) -> jax.Array:
    """``a = W z + u h_{t-1} + b`` for columns ``theta`` [P, 4, K+2] and input ``z`` [k <= K].

    Only the first ``k`` weights of each gate are read: a narrower input uses a prefix.
    """
    k = z.shape[-1]
    return (
        jnp.einsum("pgk,k->pg", theta[..., :k], z)
        + theta[..., -2] * h_prev[:, None]
        + theta[..., -1]
    )


def trace_step(
    theta: jax.Array,
    z: jax.Array,
    h_prev: jax.Array,
    c_prev: jax.Array,
    gates: Gates,
    trace_h: jax.Array,
    trace_c: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """New ``(TH_t, TC_t)`` ([P, 4, K+2] each) of P independent columns; see module docstring.

    ``z`` [K] is the input all P columns share; ``gates`` is the forward step computed with
    ``theta`` from ``h_prev``, ``c_prev`` ([P]).
    """
    zeta = jnp.concatenate(
        [
            jnp.broadcast_to(z, (h_prev.shape[0], z.shape[-1])),
            h_prev[:, None],
            jnp.ones_like(h_prev)[:, None],
        ],
        axis=-1,
    )  # [P, K+2]
    return own_trace_step(theta[..., -2], zeta, c_prev, gates, trace_h, trace_c)


def own_trace_step(
    u: jax.Array,
    zeta: jax.Array,
    c_prev: jax.Array,
    gates: Gates,
    trace_h: jax.Array,
    trace_c: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Traces of each unit's own parameters propagated through its own (h, c) only.

    ``u`` [P, 4] is each unit's weight on its own ``h_{t-1}`` per gate; ``zeta`` [P, J] the
    vector each unit's parameter rows multiply (``d a_k / d theta[k, j] = zeta[j]``); traces
    are [P, 4, J]. For columns this is exact RTRL; for a dense LSTM (where ``zeta`` holds every
    unit's ``h_{t-1}``) it is SnAp-1.
    """
    i, f, o, g, c, _ = gates
    di, df, do, dg = i * (1 - i), f * (1 - f), o * (1 - o), 1 - g * g
    tanh_c = jnp.tanh(c)
    zero = jnp.zeros_like(i)
    a_coef = c_prev * df * u[:, 1] + g * di * u[:, 0] + i * dg * u[:, 3]
    b_coef = tanh_c * do * u[:, 2]
    e_c = jnp.stack([g * di, c_prev * df, zero, i * dg], axis=-1)  # [P, 4]
    e_h = jnp.stack([zero, zero, tanh_c * do, zero], axis=-1)
    new_c = (
        f[:, None, None] * trace_c
        + a_coef[:, None, None] * trace_h
        + e_c[:, :, None] * zeta[:, None, :]
    )
    new_h = (
        (o * (1 - tanh_c * tanh_c))[:, None, None] * new_c
        + b_coef[:, None, None] * trace_h
        + e_h[:, :, None] * zeta[:, None, :]
    )
    return new_h, new_c
