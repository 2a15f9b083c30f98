"""T-BPTT (Williams and Peng, 1990) for online TD(lambda) on a dense LSTM.

Every step the gradient of the current prediction ``v_t`` is computed by backpropagating
through the last ``k`` steps (truncation ``k``) and added into the gamma-lambda-decayed
eligibility, as in the reference learner. The dense LSTM, parameter layout and readout are those
of ``learners.dense``.

Choice: **cached activations**, as in the reference. Each forward step stores, in a ring buffer
of ``k`` slots, what the backward pass needs: the vector ``zeta_s = [x_s, h_{s-1}, 1]``, the
gates ``(i, f, o, g)`` and the cells ``c_{s-1}, c_s``. The backward pass then costs
``O(k |theta|)`` flops (one outer product per step plus one product with ``U``) and the window
holds ``k (m + 8H + 1)`` numbers. The activations were computed under the parameters of their
own step while the backward pass uses the current ``U`` and readout; with learning off the two
coincide and the gradient equals autodiff of the k-step truncated computation (tested). The
alternative, replaying the last ``k`` inputs under the current parameters, would double the
forward cost for a difference of order ``alpha``; it is not offered.

Before ``k`` steps have passed the window is shorter (steps before the stream began do not
exist). The state at the window's start enters as a constant: that is the truncation.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from learners.api import HParams, Learner, check_sizes
from learners.dense import dense_heads, dense_init, dense_stats_init
from learners.td import rms_start


class TbpttState(NamedTuple):
    theta: jax.Array  # [H, 4, J]
    h: jax.Array  # [H]
    c: jax.Array  # [H]
    w: jax.Array  # [H] ([C, H] when classifying)
    b: jax.Array  # [] ([C] when classifying)
    buf_zeta: jax.Array  # [k, J] zeta_s of the last k steps (ring buffer, slot s mod k)
    buf_gates: jax.Array  # [k, 4, H] i, f, o, g of the last k steps
    buf_c: jax.Array  # [k, H] c_s
    buf_c_prev: jax.Array  # [k, H] c_{s-1}
    elig_theta: jax.Array  # [H, 4, J]
    elig_w: jax.Array  # [H]
    elig_b: jax.Array  # []
    nu_theta: jax.Array  # [H, 4, J]
    nu_w: jax.Array  # [H]
    nu_b: jax.Array  # []
    corr: jax.Array  # []
    obs_mean: jax.Array  # [m]
    obs_var: jax.Array  # [m]
    feat_mean: jax.Array  # [H]
    feat_var: jax.Array  # [H]
    v_prev: jax.Array  # []
    t: jax.Array  # int32 [] steps taken


def truncated_grad(state: TbpttState, n_inputs: int, k: int, t: jax.Array, w: jax.Array):
    """d v_t / d theta through the last min(k, t+1) cached steps; ``t`` is the newest slot's step.

    Returns [H, 4, J].
    """
    H = state.h.shape[0]
    U = state.theta[:, :, n_inputs : n_inputs + H]  # [n, gate, l]

    def back(carry, j):
        dh, dc, grad = carry
        slot = (t - j) % k
        valid = (t - j) >= 0
        i, f, o, g = state.buf_gates[slot]
        c_s, c_prev, zeta = state.buf_c[slot], state.buf_c_prev[slot], state.buf_zeta[slot]
        tanh_c = jnp.tanh(c_s)
        dc = dc + dh * o * (1 - tanh_c * tanh_c)
        da = jnp.stack(
            [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dh * tanh_c * o * (1 - o),
             dc * i * (1 - g * g)],
            axis=1,
        )  # fmt: skip
        da = jnp.where(valid, da, 0.0)  # [H, 4]
        grad = grad + da[:, :, None] * zeta[None, None, :]
        dh_prev = jnp.einsum("nk,nkl->l", da, U)
        return (dh_prev, dc * f, grad), None

    zero_h = jnp.zeros_like(state.h)
    init = (w, zero_h, jnp.zeros_like(state.theta))
    (_, _, grad), _ = jax.lax.scan(back, init, jnp.arange(k))
    return grad


def tbptt(
    n_inputs: int, hidden: int, truncation: int, *, rmsprop: bool = True, n_classes: int = 0
) -> Learner:
    """Dense LSTM of ``hidden`` units trained by T-BPTT with truncation ``truncation``; a
    classifier when ``n_classes > 0``: the backward pass then starts from
    ``dL/dh_t = W^T dL/dlogits`` at labelled steps, and ``reset`` empties the window."""
    check_sizes(n_inputs, hidden, n_classes, "the LSTM")
    C = n_classes
    if truncation < 1:
        raise ValueError(f"truncation={truncation} must be >= 1")
    m, H, k = n_inputs, hidden, truncation
    J = m + H + 1

    def init(key: jax.Array, hp: HParams) -> TbpttState:
        dtype = hp.alpha.dtype
        theta = dense_init(key, hp, (H, 4, J))
        zh = jnp.zeros(H, dtype)
        zs = jnp.zeros((), dtype)
        zt = jnp.zeros((H, 4, J), dtype)
        buffers = (jnp.zeros((k, J), dtype), jnp.zeros((k, 4, H), dtype),
                   jnp.zeros((k, H), dtype), jnp.zeros((k, H), dtype))  # fmt: skip
        obs = dense_stats_init(m, H, dtype)
        t0 = jnp.zeros((), jnp.int32)
        nu0, corr0 = rms_start(hp)  # zero and corrected (ours), or the reference's 1
        if C:  # readout [C, H] and [C]; no eligibility
            zw, zb, z0 = jnp.zeros((C, H), dtype), jnp.zeros(C, dtype), jnp.zeros(0, dtype)
            return TbpttState(theta, zh, zh, zw, zb, *buffers, z0, z0, z0, zt + nu0, zw + nu0,
                              zb + nu0, zs + corr0, *obs, zs, t0)  # fmt: skip
        return TbpttState(theta, zh, zh, zh, zs, *buffers, zt, zh, zs, zt + nu0, zh + nu0,
                          zs + nu0, zs + corr0, *obs, zs, t0)  # fmt: skip

    def cache(state: TbpttState, zeta: jax.Array, gates) -> TbpttState:
        slot = state.t % k
        return state._replace(
            buf_zeta=state.buf_zeta.at[slot].set(zeta),
            buf_gates=state.buf_gates.at[slot].set(jnp.stack(gates[:4])),
            buf_c=state.buf_c.at[slot].set(gates.c),
            buf_c_prev=state.buf_c_prev.at[slot].set(state.c),
        )

    def trunk(state: TbpttState, fw, seed: jax.Array):
        cached = cache(state, fw.zeta, fw.gates)
        grad_theta = truncated_grad(cached, m, k, state.t, seed)
        return cached._replace(t=state.t + 1), grad_theta

    step, classify = dense_heads(trunk, rmsprop)

    def reset(state: TbpttState) -> TbpttState:
        # t = 0 marks every cached slot as before the sequence: the window starts afresh.
        zero = jnp.zeros_like
        return state._replace(h=zero(state.h), c=zero(state.c), t=zero(state.t))

    n_params = H * 4 * J + (C or 1) * (H + 1)
    settings = dict(n_inputs=m, n_features=H, truncation=k, rmsprop=rmsprop)
    if C:
        settings["n_classes"] = C
    return Learner("tbptt", init, classify if C else step, n_params, settings, reset)
