"""UORO, unbiased online recurrent optimisation (Tallec and Ollivier, 2017), on the dense LSTM
that RTRL, SnAp-1 and T-BPTT use: an unbiased rank-one estimate of the RTRL Jacobian at
O(parameters) per step.

With the recurrent state ``s = (h, c)`` [2H] and the step ``s_t = F(s_{t-1}, x_t; theta)``,
RTRL carries ``J_t = ds_t/dtheta = F_s J_{t-1} + F_theta``, which costs O(H |theta|). UORO
carries ``J_t ~ s~_t theta~_t^T`` instead, a state-space vector and a parameter-space one,
with a fresh vector ``v`` of independent random signs each step::

    s~_t     = rho0 F_s s~_{t-1} + rho1 v
    theta~_t = theta~_{t-1} / rho0 + (v^T F_theta) / rho1

``F_s s~`` is one forward-mode product and ``v^T F_theta`` one reverse-mode product of the
cell (``jax.jvp``, ``jax.vjp``), each a small multiple of the forward pass. Since
``E[v v^T] = I`` and the cross terms are odd in ``v``, ``E[s~_t theta~_t^T] = J_t`` given an
unbiased ``s~_{t-1} theta~_{t-1}^T``. The scalings (the paper's variance reduction)
``rho0 = sqrt(|theta~| / |F_s s~|)`` and ``rho1 = sqrt(|v^T F_theta| / |v|)`` balance the
two factors' norms; ``rho1`` is even in ``v``, so the estimate stays unbiased. The gradient of
the prediction is ``(dv/ds . s~_t) theta~_t``; its noise is a property of the method.

Each stream draws its signs from its own key, kept in the state and split every step, so a
run is a pure function of its seed and a checkpoint restores it bit for bit.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from learners.api import HParams, Learner, check_sizes
from learners.dense import dense_descend, dense_forward, dense_init, dense_learn, dense_stats_init
from learners.lstm_column import gates_from_preact
from learners.readout import cross_entropy, readout_out

EPS = 1e-7  # keeps rho0 and rho1 finite when a factor is zero (at the start)


class UOROState(NamedTuple):
    theta: jax.Array  # [H, 4, J]
    h: jax.Array  # [H]
    c: jax.Array  # [H]
    w: jax.Array  # [H] readout ([C, H] when classifying)
    b: jax.Array  # [] ([C])
    s_tilde: jax.Array  # [2H] the state-space factor
    theta_tilde: jax.Array  # [H, 4, J] the parameter-space factor
    key: jax.Array  # uint32 [2] this stream's random signs
    elig_theta: jax.Array  # [H, 4, J] ([0] when classifying)
    elig_w: jax.Array
    elig_b: jax.Array
    nu_theta: jax.Array
    nu_w: jax.Array
    nu_b: jax.Array
    corr: jax.Array
    obs_mean: jax.Array
    obs_var: jax.Array
    feat_mean: jax.Array
    feat_var: jax.Array
    v_prev: jax.Array


def uoro(n_inputs: int, hidden: int, *, rmsprop: bool = True, n_classes: int = 0) -> Learner:
    """UORO on a dense LSTM of ``hidden`` units: O(|theta|) per step, unbiased, noisy."""
    check_sizes(n_inputs, hidden, n_classes, "the LSTM")
    m, H, C = n_inputs, hidden, n_classes
    J = m + H + 1

    def init(key: jax.Array, hp: HParams) -> UOROState:
        dtype = hp.alpha.dtype
        k_theta, k_signs = jax.random.split(key)
        theta = dense_init(k_theta, hp, (H, 4, J))
        zh, zs, zt = jnp.zeros(H, dtype), jnp.zeros((), dtype), jnp.zeros((H, 4, J), dtype)
        common = dict(theta=theta, h=zh, c=zh, s_tilde=jnp.zeros(2 * H, dtype),
                      theta_tilde=zt, key=k_signs, corr=zs, v_prev=zs, nu_theta=zt)  # fmt: skip
        obs = dict(zip(("obs_mean", "obs_var", "feat_mean", "feat_var"),
                       dense_stats_init(m, H, dtype), strict=True))  # fmt: skip
        if C:
            zw, zb, z0 = jnp.zeros((C, H), dtype), jnp.zeros(C, dtype), jnp.zeros(0, dtype)
            return UOROState(w=zw, b=zb, elig_theta=z0, elig_w=z0, elig_b=z0, nu_w=zw,
                             nu_b=zb, **common, **obs)  # fmt: skip
        return UOROState(w=zh, b=zs, elig_theta=zt, elig_w=zh, elig_b=zs, nu_w=zh, nu_b=zs,
                         **common, **obs)  # fmt: skip

    def cell(theta: jax.Array, s: jax.Array, x_hat: jax.Array) -> jax.Array:
        """``F``: the LSTM step from ``s = (h, c)`` to the next ``(h, c)``."""
        zeta = jnp.concatenate([x_hat, s[:H], jnp.ones(1, s.dtype)])
        gates = gates_from_preact(theta @ zeta, s[H:])
        return jnp.concatenate([gates.h, gates.c])

    def estimate(state: UOROState, x_hat: jax.Array, seed: jax.Array):
        """The new factors, the key, and ``seed . (s~ theta~^T)`` restricted to h: the
        estimated gradient [H, 4, J] for the gradient ``seed`` [H] reaching the hidden units."""
        key, sub = jax.random.split(state.key)
        signs = jax.random.rademacher(sub, (2 * H,), state.h.dtype)
        s_prev = jnp.concatenate([state.h, state.c])
        _, f_s = jax.jvp(lambda s: cell(state.theta, s, x_hat), (s_prev,), (state.s_tilde,))
        _, pullback = jax.vjp(lambda th: cell(th, s_prev, x_hat), state.theta)
        (f_theta,) = pullback(signs)
        rho0 = jnp.sqrt((jnp.linalg.norm(state.theta_tilde) + EPS) / (jnp.linalg.norm(f_s) + EPS))
        rho1 = jnp.sqrt((jnp.linalg.norm(f_theta) + EPS) / (jnp.linalg.norm(signs) + EPS))
        s_tilde = rho0 * f_s + rho1 * signs
        theta_tilde = state.theta_tilde / rho0 + f_theta / rho1
        grad = jnp.dot(seed, s_tilde[:H]) * theta_tilde
        return dict(s_tilde=s_tilde, theta_tilde=theta_tilde, key=key), grad

    def step(state: UOROState, x_t: jax.Array, c_t: jax.Array, hp: HParams):
        fw = dense_forward(state, x_t, hp)
        factors, grad_theta = estimate(state, fw.zeta[:m], state.w * fw.inv_std)
        fields, delta = dense_learn(state, fw, c_t, grad_theta, hp, rmsprop)
        return state._replace(**factors, **fields), {"v": fw.v, "delta": delta}

    def classify(state: UOROState, x_t: jax.Array, y_t: jax.Array, hp: HParams):
        fw = dense_forward(state, x_t, hp)
        loss, dlogits = cross_entropy(fw.v, y_t)
        factors, grad_theta = estimate(state, fw.zeta[:m], (state.w.T @ dlogits) * fw.inv_std)
        fields = dense_descend(state, fw, dlogits, grad_theta, y_t >= 0, hp, rmsprop)
        return state._replace(**factors, **fields), readout_out(fw.v, loss, y_t)

    def reset(state: UOROState) -> UOROState:
        zero = jnp.zeros_like
        return state._replace(h=zero(state.h), c=zero(state.c), s_tilde=zero(state.s_tilde),
                              theta_tilde=zero(state.theta_tilde))  # fmt: skip

    n_params = H * 4 * J + (C or 1) * (H + 1)
    settings = dict(n_inputs=m, n_features=H, rmsprop=rmsprop, **({"n_classes": C} if C else {}))
    return Learner("uoro", init, classify if C else step, n_params, settings, reset)
