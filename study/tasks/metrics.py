"""Mean squared return error (MSRE), streaming inside the scan and offline from a record.

The prediction ``v_t`` made on observation ``o_t`` is scored against the return of the cumulants
that follow it, ``G_t = sum_k gamma^k c_{t+1+k}``. Both implementations truncate the return at
a horizon of ``H`` steps, ``G_t^H = sum_{k<H} gamma^k c_{t+1+k}``; with cumulants in [0, 1] the
truncation changes ``G_t`` by at most ``gamma^H / (1 - gamma)``, and ``horizon_for`` picks ``H``
so that this is below ``tol`` (1e-6 by default).

Streaming: ``MsreState.pending[k]`` holds ``v_{s-1-k} - (return so far)`` for the last ``H``
predictions; each new cumulant ``c_s`` is subtracted with weight ``gamma^k``, and the oldest
entry, whose return is then complete, leaves the buffer as the error of prediction ``s - H``.
The error of a prediction is therefore counted ``H`` steps after it is made, and a run of ``T``
steps scores predictions ``0 .. T-H-1``. Cost per step: ``O(H)``, independent of the learner.

Offline: ``offline_errors(v, c, gamma, H)`` computes the same errors from recorded arrays, so
the two can be compared on one stream.

Baselines: the same buffer run for the prediction 0 (``MsreState.pending_zero``) gives each
scored step's true return ``G``, so the run loop also sums ``G`` and ``G^2`` per block. Over
any window that gives, with no second pass, the MSRE of predicting 0 (``mean G^2``) and of the
best constant predictor in hindsight (``mean G^2 - (mean G)^2``, the variance of the return),
and the *normalised* MSRE, ours divided by the best constant's: 1.0 means nothing was learned
that a constant could not do (``baselines``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def horizon_for(gamma: float, tol: float = 1e-6) -> int:
    """Smallest ``H`` with ``gamma^H / (1 - gamma) <= tol`` (at least 1)."""
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma={gamma} is outside the allowed range [0, 1)")
    if gamma == 0.0:
        return 1
    return max(1, math.ceil(math.log(tol * (1.0 - gamma)) / math.log(gamma)))


class MsreState(NamedTuple):
    pending: jax.Array  # float32 [H], v_t minus the part of G_t seen so far; k=0 newest
    valid: jax.Array  # bool [H], whether slot k holds a prediction yet
    powers: jax.Array  # float32 [H], gamma^k
    pending_zero: jax.Array  # float32 [H], minus the part of G_t seen so far (predicting 0)


def msre_init(gamma: jax.Array, horizon: int) -> MsreState:
    powers = jnp.asarray(gamma, jnp.float32) ** jnp.arange(horizon, dtype=jnp.float32)
    return MsreState(
        pending=jnp.zeros(horizon, jnp.float32),
        valid=jnp.zeros(horizon, bool),
        powers=powers,
        pending_zero=jnp.zeros(horizon, jnp.float32),
    )


def msre_update(
    state: MsreState, v_s: jax.Array, c_s: jax.Array
) -> tuple[MsreState, jax.Array, jax.Array, jax.Array]:
    """Take cumulant ``c_s`` then prediction ``v_s``; return ``(state, sq_error, counted, G)``.

    ``sq_error`` is the squared error of prediction ``s - H`` and ``G`` its (truncated) true
    return; both are zero while ``counted`` is False, during the first ``H`` steps.
    """
    pending = state.pending - state.powers * c_s
    pending_zero = state.pending_zero - state.powers * c_s
    err, counted = pending[-1], state.valid[-1]
    sq = jnp.where(counted, err * err, 0.0)
    ret = jnp.where(counted, -pending_zero[-1], 0.0)
    pending = jnp.concatenate([jnp.asarray(v_s, jnp.float32)[None], pending[:-1]])
    pending_zero = jnp.concatenate([jnp.zeros(1, jnp.float32), pending_zero[:-1]])
    valid = jnp.concatenate([jnp.ones(1, bool), state.valid[:-1]])
    return MsreState(pending, valid, state.powers, pending_zero), sq, counted, ret


def returns(c: np.ndarray, gamma: float, horizon: int | None = None) -> np.ndarray:
    """``G_t`` for every t of a recorded cumulant stream ``c`` ([T]); float64.

    With ``horizon`` the return is truncated at ``H`` terms; cumulants past the end of the
    record count as zero.
    """
    c = np.asarray(c, np.float64)
    T = c.shape[0]
    G = np.zeros(T)
    if horizon is None:
        acc = 0.0
        for t in range(T - 2, -1, -1):
            acc = c[t + 1] + gamma * acc
            G[t] = acc
        return G
    padded = np.concatenate([c, np.zeros(horizon + 1)])
    for k in range(horizon):
        G += gamma**k * padded[1 + k : 1 + k + T]
    return G


def offline_errors(v: np.ndarray, c: np.ndarray, gamma: float, horizon: int) -> np.ndarray:
    """Squared errors of predictions ``0 .. T-H-1`` of a record (``v[t]`` made on ``o_t``)."""
    v = np.asarray(v, np.float64)
    T = v.shape[0]
    G = returns(c, gamma, horizon)
    n = max(T - horizon, 0)
    return (v[:n] - G[:n]) ** 2


def summarise_blocks(
    sq_sum: np.ndarray, count: np.ndarray, window_blocks: int
) -> dict[str, np.ndarray]:
    """MSRE summaries from per-block sums of squared errors and counts (blocks on axis -1).

    Returns ``running`` (all scored predictions), ``windowed`` (the last ``window_blocks``
    blocks) and ``curve`` (windowed MSRE at the end of every block, the learning curve).
    """
    sq_sum = np.asarray(sq_sum, np.float64)
    count = np.asarray(count, np.float64)
    cs_sq = np.cumsum(sq_sum, axis=-1)
    cs_n = np.cumsum(count, axis=-1)
    lag_sq = np.zeros_like(cs_sq)
    lag_n = np.zeros_like(cs_n)
    if window_blocks < sq_sum.shape[-1]:
        lag_sq[..., window_blocks:] = cs_sq[..., :-window_blocks]
        lag_n[..., window_blocks:] = cs_n[..., :-window_blocks]
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = (cs_sq - lag_sq) / (cs_n - lag_n)
        running = cs_sq[..., -1] / cs_n[..., -1]
    return {"running": running, "windowed": curve[..., -1], "curve": curve}


def baselines(
    ret_sum: np.ndarray, ret_sq_sum: np.ndarray, count: np.ndarray, window_blocks: int
) -> dict[str, np.ndarray]:
    """The windowed MSRE of two predictors that learn nothing, from per-block sums of the true
    return ``G`` and of ``G^2`` (blocks on axis -1): ``zero`` (predicting 0, ``mean G^2``) and
    ``constant`` (the best constant in hindsight, ``mean G^2 - (mean G)^2``), each as
    ``windowed`` (the last ``window_blocks`` blocks) and ``curve`` (at every block)."""
    g = summarise_blocks(ret_sum, count, window_blocks)
    g2 = summarise_blocks(ret_sq_sum, count, window_blocks)
    out = {}
    for key in ("windowed", "curve"):
        out[f"zero_{key}"] = g2[key]
        out[f"constant_{key}"] = np.maximum(g2[key] - g[key] ** 2, 0.0)
    return out


def normalised(msre: np.ndarray, constant: np.ndarray) -> np.ndarray:
    """MSRE divided by the best constant predictor's on the same steps (1.0: nothing learned
    beyond a constant; below 1: learned). NaN where the return did not vary."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(constant > 0, np.asarray(msre) / constant, np.nan)
