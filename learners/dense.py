"""Dense LSTM learners: SnAp-1 (Menick et al., 2021) and exact RTRL (Williams and Zipser, 1989).

A dense LSTM of H units: every unit reads the observation and every unit's ``h_{t-1}``.
Parameters are stored unit-major, ``theta[n, k, :] = [W_k,n (m) | U_k,n (H) | b_k,n]`` for unit
n and gate k in (i, f, o, g), so with ``zeta_t = [x_t, h_{t-1}, 1]`` (length J = m + H + 1)
the pre-activations are ``a[n, k] = theta[n, k] . zeta_t``.

- ``rtrl``: traces ``TH[n] = dh_n/dtheta`` and ``TC[n]`` for every unit n and every parameter,
  [H, H, 4, J]; the recurrence through ``U`` makes a step cost O(H^2 |theta|). Exact.
- ``snap1``: traces only of each unit's own rows, [H, 4, J], propagated only through the unit's
  own (h, c) (its diagonal recurrent weight ``U_k,n,n``): the structural sparsity of SnAp-1,
  O(|theta|) per step. It drops the paths through other units, so it is biased, except on a
  network without cross-unit recurrence where it equals RTRL.

The readout, TD(lambda), RMSProp and the running normalisation of the observation and of the
features read by the readout (``learners.td.update_stats``) are those of the other learners.

Initialisation: the recurrent layer starts ``U(-s, s)`` with ``s = init_scale / sqrt(J)``,
scaled by each gate's fan-in ``J``, so one ``init_scale`` suits every hidden size (a dense
matrix drawn at a fixed scale saturates the gates of a wide network).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from learners.api import HParams, Learner, check_sizes, reset_recurrent
from learners.lstm_column import Gates, gates_from_preact, own_trace_step
from learners.readout import cross_entropy, descend, readout_out
from learners.td import normalise, rms_start, td_lambda, update_stats


class DenseState(NamedTuple):
    theta: jax.Array  # [H, 4, J] recurrent layer
    h: jax.Array  # [H]
    c: jax.Array  # [H]
    w: jax.Array  # [H] readout ([C, H] when classifying)
    b: jax.Array  # [] ([C] when classifying)
    trace_h: jax.Array  # rtrl: [H, H, 4, J]; snap1: [H, 4, J]
    trace_c: jax.Array  # same shape as trace_h
    elig_theta: jax.Array  # [H, 4, J] ([0] when classifying: no eligibility)
    elig_w: jax.Array  # [H]
    elig_b: jax.Array  # []
    nu_theta: jax.Array  # [H, 4, J]
    nu_w: jax.Array  # shape of w
    nu_b: jax.Array  # shape of b
    corr: jax.Array  # [] 1 - beta2^n
    obs_mean: jax.Array  # [m]
    obs_var: jax.Array  # [m]
    feat_mean: jax.Array  # [H] running statistics of the features the readout reads
    feat_var: jax.Array  # [H]
    v_prev: jax.Array  # []


class DenseStep(NamedTuple):
    """What the forward pass of a dense LSTM at step t gives its learning rule."""

    zeta: jax.Array  # [J] [x_hat, h_{t-1}, 1]
    gates: Gates
    v: jax.Array  # [] v_t (the logits [C] of a classifier)
    h_hat: jax.Array  # [H] the normalised features the readout reads
    inv_std: jax.Array  # [H] d h_hat / d h
    stats: dict  # obs_mean, obs_var, feat_mean, feat_var after step t


def dense_init(key: jax.Array, hp: HParams, shape: tuple[int, int, int]) -> jax.Array:
    """The recurrent layer [H, 4, J] drawn ``U(-s, s)`` with ``s = init_scale / sqrt(J)``."""
    scale = hp.init_scale / jnp.sqrt(jnp.asarray(shape[-1], hp.alpha.dtype))
    return jax.random.uniform(key, shape, hp.alpha.dtype, -1.0, 1.0) * scale


def dense_stats_init(m: int, H: int, dtype) -> tuple[jax.Array, ...]:
    """``obs_mean, obs_var, feat_mean, feat_var`` at the start: mean 0, variance 1."""
    return jnp.zeros(m, dtype), jnp.ones(m, dtype), jnp.zeros(H, dtype), jnp.ones(H, dtype)


def dense_forward(state, x_t: jax.Array, hp: HParams) -> DenseStep:
    """The dense LSTM's step shared by SnAp-1, RTRL and T-BPTT: the observation normalised by
    the statistics before step t, the features by those that include it (as the reference
    code does)."""
    x_hat = normalise(x_t, state.obs_mean, state.obs_var)
    obs_mean, obs_var = update_stats(x_t, state.obs_mean, state.obs_var, hp)
    zeta = jnp.concatenate([x_hat, state.h, jnp.ones(1, state.h.dtype)])
    gates = gates_from_preact(state.theta @ zeta, state.c)
    feat_mean, feat_var = update_stats(gates.h, state.feat_mean, state.feat_var, hp)
    inv_std = jax.lax.rsqrt(feat_var)
    h_hat = (gates.h - feat_mean) * inv_std
    v_t = state.w @ h_hat + state.b
    stats = dict(obs_mean=obs_mean, obs_var=obs_var, feat_mean=feat_mean, feat_var=feat_var)
    return DenseStep(zeta, gates, v_t, h_hat, inv_std, stats)


def dense_learn(state, fw: DenseStep, c_t, grad_theta, hp, rmsprop):
    """TD(lambda) on the recurrent layer and readout of a dense-LSTM learner.

    Returns ``(fields, delta)``: the new values of the fields SnAp-1, RTRL and T-BPTT states
    share, for ``state._replace(**fields)``, and the TD error.
    """
    delta = c_t + hp.gamma * fw.v - state.v_prev
    (theta, w, b), (e_theta, e_w, e_b), (nu_theta, nu_w, nu_b), corr = td_lambda(
        (state.theta, state.w, state.b),
        (state.elig_theta, state.elig_w, state.elig_b),
        (state.nu_theta, state.nu_w, state.nu_b),
        state.corr, (grad_theta, fw.h_hat, 1.0), delta, hp, rmsprop,
    )  # fmt: skip
    fields = dict(
        theta=theta, h=fw.gates.h, c=fw.gates.c, w=w, b=b,
        elig_theta=e_theta, elig_w=e_w, elig_b=e_b, nu_theta=nu_theta, nu_w=nu_w, nu_b=nu_b,
        corr=corr, v_prev=fw.v, **fw.stats,
    )  # fmt: skip
    return fields, delta


def rtrl_trace_step(
    theta: jax.Array,
    zeta: jax.Array,
    c_prev: jax.Array,
    gates: Gates,
    trace_h: jax.Array,
    trace_c: jax.Array,
    n_inputs: int,
) -> tuple[jax.Array, jax.Array]:
    """Exact RTRL: new ``(TH, TC)`` [H, H, 4, J] of a dense LSTM (eq. 5-6 with full U)."""
    H = theta.shape[0]
    i, f, o, g, c, _ = gates
    U = theta[:, :, n_inputs : n_inputs + H]  # [n, k, l]: weight of h_l in gate k of unit n
    # d a[n, k] / d theta[p, q, j] = sum_l U[n, k, l] TH[l, p, q, j] + [n = p][k = q] zeta_j
    da = jnp.einsum("nkl,lpqj->nkpqj", U, trace_h)
    eye_h = jnp.eye(H, dtype=theta.dtype)
    eye_4 = jnp.eye(4, dtype=theta.dtype)
    da = da + eye_h[:, None, :, None, None] * eye_4[None, :, None, :, None] * zeta
    sig = jnp.stack([i * (1 - i), f * (1 - f), o * (1 - o), 1 - g * g], axis=1)  # [H, 4]
    dgate = sig[:, :, None, None, None] * da  # [n, k, p, q, j]
    tanh_c = jnp.tanh(c)
    ex = (slice(None), None, None, None)
    new_c = f[ex] * trace_c + c_prev[ex] * dgate[:, 1] + g[ex] * dgate[:, 0] + i[ex] * dgate[:, 3]
    new_h = (o * (1 - tanh_c * tanh_c))[ex] * new_c + tanh_c[ex] * dgate[:, 2]
    return new_h, new_c


def _dense(n_inputs: int, hidden: int, exact: bool, rmsprop: bool, n_classes: int) -> Learner:
    check_sizes(n_inputs, hidden, n_classes, "the LSTM")
    m, H, C = n_inputs, hidden, n_classes
    J = m + H + 1
    trace_shape = (H, H, 4, J) if exact else (H, 4, J)
    own = np.arange(H)  # numpy: building a learner starts no JAX backend

    def init(key: jax.Array, hp: HParams) -> DenseState:
        dtype = hp.alpha.dtype
        theta = dense_init(key, hp, (H, 4, J))
        zh = jnp.zeros(H, dtype)
        zs = jnp.zeros((), dtype)
        zt = jnp.zeros((H, 4, J), dtype)
        zr = jnp.zeros(trace_shape, dtype)
        obs = dense_stats_init(m, H, dtype)
        nu0, corr0 = rms_start(hp)  # zero and corrected (ours), or the reference's 1
        if C:  # readout [C, H] and [C]; no eligibility
            zw, zb, z0 = jnp.zeros((C, H), dtype), jnp.zeros(C, dtype), jnp.zeros(0, dtype)
            return DenseState(theta, zh, zh, zw, zb, zr, zr, z0, z0, z0, zt + nu0, zw + nu0,
                              zb + nu0, zs + corr0, *obs, zs)  # fmt: skip
        return DenseState(theta, zh, zh, zh, zs, zr, zr, zt, zh, zs, zt + nu0, zh + nu0,
                          zs + nu0, zs + corr0, *obs, zs)  # fmt: skip

    def traces(state: DenseState, zeta: jax.Array, gates: Gates, seed: jax.Array):
        """New ``(trace_h, trace_c)`` and ``seed . dh_t/dtheta`` [H, 4, J], where ``seed``
        [H] is the gradient reaching the hidden units (the readout ``w`` for TD)."""
        if exact:
            trace_h, trace_c = rtrl_trace_step(
                state.theta, zeta, state.c, gates, state.trace_h, state.trace_c, m
            )
            return trace_h, trace_c, jnp.einsum("n,npqj->pqj", seed, trace_h)
        u = state.theta[own, :, m + own]  # [H, 4] each unit's weight on its own h
        zetas = jnp.broadcast_to(zeta, (H, J))
        trace_h, trace_c = own_trace_step(u, zetas, state.c, gates, state.trace_h, state.trace_c)
        return trace_h, trace_c, seed[:, None, None] * trace_h

    def trunk(state: DenseState, fw: DenseStep, seed: jax.Array):
        trace_h, trace_c, grad_theta = traces(state, fw.zeta, fw.gates, seed)
        return state._replace(trace_h=trace_h, trace_c=trace_c), grad_theta

    step, classify = dense_heads(trunk, rmsprop)
    name = "rtrl" if exact else "snap1"
    n_params = H * 4 * J + (C or 1) * (H + 1)
    settings = dict(n_inputs=m, n_features=H, rmsprop=rmsprop, **({"n_classes": C} if C else {}))
    return Learner(name, init, classify if C else step, n_params, settings, reset_recurrent)


def dense_heads(trunk, rmsprop: bool):
    """The two heads of a dense-LSTM learner over its trunk, written once: the TD step
    (``step(state, x_t, c_t, hp)``) and the cross-entropy step (``classify(state, x_t, y_t,
    hp)``). ``trunk(state, fw, seed)`` returns the state with the trunk's own fields moved on
    (its traces, or its cache of the last steps) and the gradient ``seed . dh_t/dtheta``
    [H, 4, J], where ``seed`` [H] is what reaches the hidden units: the readout times the
    normalisation for TD, the readout's transpose times the logits' gradient for
    cross-entropy."""

    def step(state, x_t: jax.Array, c_t: jax.Array, hp: HParams):
        fw = dense_forward(state, x_t, hp)
        moved, grad_theta = trunk(state, fw, state.w * fw.inv_std)
        fields, delta = dense_learn(state, fw, c_t, grad_theta, hp, rmsprop)
        return moved._replace(**fields), {"v": fw.v, "delta": delta}

    def classify(state, x_t: jax.Array, y_t: jax.Array, hp: HParams):
        fw = dense_forward(state, x_t, hp)
        loss, dlogits = cross_entropy(fw.v, y_t)
        moved, grad_theta = trunk(state, fw, (state.w.T @ dlogits) * fw.inv_std)
        fields = dense_descend(state, fw, dlogits, grad_theta, y_t >= 0, hp, rmsprop)
        return moved._replace(**fields), readout_out(fw.v, loss, y_t)

    return step, classify


def dense_descend(state, fw: DenseStep, dlogits, grad_theta, on, hp, rmsprop) -> dict:
    """One cross-entropy step on the recurrent layer and the [C, H] readout of a dense-LSTM
    classifier (``learners.readout``); returns the fields to replace."""
    (theta, w, b), (nu_theta, nu_w, nu_b), corr = descend(
        (state.theta, state.w, state.b), (grad_theta, jnp.outer(dlogits, fw.h_hat), dlogits),
        (state.nu_theta, state.nu_w, state.nu_b), state.corr, on, hp, rmsprop,
    )  # fmt: skip
    return dict(theta=theta, h=fw.gates.h, c=fw.gates.c, w=w, b=b, nu_theta=nu_theta,
                nu_w=nu_w, nu_b=nu_b, corr=corr, **fw.stats)  # fmt: skip


def snap1(n_inputs: int, hidden: int, *, rmsprop: bool = True, n_classes: int = 0) -> Learner:
    """SnAp-1 on a dense LSTM of ``hidden`` units: O(|theta|) per step, biased."""
    return _dense(n_inputs, hidden, exact=False, rmsprop=rmsprop, n_classes=n_classes)


def rtrl(n_inputs: int, hidden: int, *, rmsprop: bool = True, n_classes: int = 0) -> Learner:
    """Exact RTRL on a dense LSTM of ``hidden`` units: O(hidden^2 |theta|) per step."""
    return _dense(n_inputs, hidden, exact=True, rmsprop=rmsprop, n_classes=n_classes)
