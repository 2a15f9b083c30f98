"""Online LRU (Zucchet, Meier, Schug, Mujika and Sacramento, NeurIPS 2023): a linear
recurrent unit layer learned online with exact RTRL inside its diagonal recurrence, followed
by a position-wise gated linear unit (GLU) and the shared readout.

The layer holds ``N`` complex states ``x`` with eigenvalues ``lambda = exp(-exp(nu) + i
exp(phi))`` (so ``|lambda| < 1``), an input normalisation ``gamma = exp(g)`` per unit, and a
complex input matrix ``B = B_re + i B_im``. With ``z_t`` the normalised observation and a
bias input, in real form (``x = x1 + i x2``, ``a = Re lambda``, ``b = Im lambda``)::

    x_t = R x_{t-1} + gamma (B z_t),       R = [[a, -b], [b, a]] per unit
    y_t = Re(C x_t) + D z_t = C_re x1 - C_im x2 + D z_t              [P = N outputs]
    o_t = (W1 y_t + b1) * sigmoid(W2 y_t + b2)                        (the GLU)
    v_t = w . o_hat_t + b                                             (o normalised)

Only the recurrence needs traces. A parameter of unit k (its row of ``B``, ``nu``, ``phi``,
``g``) reaches only ``x_k``, so its trace is two numbers, updated as ``s_t = R s_{t-1} +
direct``: ``gamma e_p z_j`` for ``B[k, p, j]``, ``-exp(nu) R x_{t-1}`` for ``nu``,
``theta (-b x1 - a x2, a x1 - b x2)`` for ``phi``, ``gamma (B z)_k`` for ``g``. ``C``, ``D``
and the GLU have no recurrence: their gradient is the step's own (reverse mode through the
head, ``jax.vjp``), which also gives ``dv/dx_t`` to contract with the traces. One layer is
exact (tested against ``jax.grad`` of the network unrolled in complex arithmetic); the
paper's stacks of layers, which cut the temporal paths through other layers, are not built.

Initialisation (the LRU paper's, with slow phases for the testbed's intervals of tens of
steps): ``|lambda|`` uniform in [0.6, 0.99], phases in [0, pi/8], ``gamma = sqrt(1 -
|lambda|^2)``; ``B``, ``C``, ``D``, ``W1``, ``W2`` uniform in ``(-s, s)`` with ``s =
init_scale / sqrt(fan-in)``; the GLU's biases and the readout start at 0.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from learners.api import HParams, Learner, check_sizes
from learners.readout import cross_entropy, descend, readout_out
from learners.rtu import R_RANGE, rotate
from learners.td import normalise, td_lambda, update_stats

THETA_MAX = math.pi / 8

# The parameters, in the order the updates, eligibilities and second moments keep them.
RECURRENT = ("B", "nu", "phi", "g")
HEAD = ("C", "D", "W1", "b1", "W2", "b2")


class LRUState(NamedTuple):
    params: dict  # B [N, 2, J], nu, phi, g [N]; C [N, N, 2], D [N, J], W1, W2 [N, N], b1, b2
    w: jax.Array  # [N] readout ([K, N] when classifying)
    b: jax.Array  # [] ([K])
    x: jax.Array  # [N, 2]
    traces: dict  # B [N, 2, J, 2], nu, phi, g [N, 2]: d(x1, x2)/dparam
    elig: tuple  # eligibilities of (params..., w, b); empty when classifying
    nu_rms: tuple  # RMSProp second moments of (params..., w, b)
    corr: jax.Array
    obs_mean: jax.Array  # [m]
    obs_var: jax.Array
    feat_mean: jax.Array  # [N]
    feat_var: jax.Array
    v_prev: jax.Array


def head(p: dict, x: jax.Array, z: jax.Array) -> jax.Array:
    """The layer's output and the GLU, ``o_t`` [N], from the state ``x`` [N, 2]."""
    y = p["C"][..., 0] @ x[:, 0] - p["C"][..., 1] @ x[:, 1] + p["D"] @ z
    return (p["W1"] @ y + p["b1"]) * jax.nn.sigmoid(p["W2"] @ y + p["b2"])


def lru(n_inputs: int, units: int, *, rmsprop: bool = True, n_classes: int = 0) -> Learner:
    """One online LRU layer of ``units`` complex units and its GLU, exact RTRL."""
    check_sizes(n_inputs, units, n_classes, "an LRU layer")
    m, N, K = n_inputs, units, n_classes
    J = m + 1
    names = (*RECURRENT, *HEAD)

    def init(key: jax.Array, hp: HParams) -> LRUState:
        dtype = hp.alpha.dtype
        ks = jax.random.split(key, 7)

        def unif(k, shape, fan_in):
            s = hp.init_scale / jnp.sqrt(jnp.asarray(fan_in, dtype))
            return jax.random.uniform(k, shape, dtype, -1.0, 1.0) * s

        r = jax.random.uniform(ks[0], (N,), dtype, *R_RANGE)
        theta = jax.random.uniform(ks[1], (N,), dtype, 1e-3, THETA_MAX)
        zn = jnp.zeros(N, dtype)
        params = dict(
            B=unif(ks[2], (N, 2, J), J), nu=jnp.log(-jnp.log(r)), phi=jnp.log(theta),
            g=0.5 * jnp.log1p(-r * r), C=unif(ks[3], (N, N, 2), 2 * N), D=unif(ks[4], (N, J), J),
            W1=unif(ks[5], (N, N), N), b1=zn, W2=unif(ks[6], (N, N), N), b2=zn,
        )  # fmt: skip
        zs = jnp.zeros((), dtype)
        w, b = (jnp.zeros((K, N), dtype), jnp.zeros(K, dtype)) if K else (zn, zs)
        traces = dict(B=jnp.zeros((N, 2, J, 2), dtype), nu=jnp.zeros((N, 2), dtype),
                      phi=jnp.zeros((N, 2), dtype), g=jnp.zeros((N, 2), dtype))  # fmt: skip
        every = (*(params[k] for k in names), w, b)
        elig = () if K else tuple(jnp.zeros_like(a) for a in every)
        return LRUState(
            params, w, b, jnp.zeros((N, 2), dtype), traces, elig,
            tuple(jnp.zeros_like(a) for a in every), zs, jnp.zeros(m, dtype),
            jnp.ones(m, dtype), zn, zn + 1.0, zs,
        )  # fmt: skip

    def forward(state: LRUState, x_t: jax.Array, hp: HParams, seed_fn):
        """The step: new state ``x``, traces, the normalised GLU output, the readout's value,
        and the gradients of ``seed_fn(o_hat-space gradient)`` for every parameter."""
        p = state.params
        x_hat = normalise(x_t, state.obs_mean, state.obs_var)
        obs_mean, obs_var = update_stats(x_t, state.obs_mean, state.obs_var, hp)
        z = jnp.concatenate([x_hat, jnp.ones(1, x_hat.dtype)])
        r, theta = jnp.exp(-jnp.exp(p["nu"])), jnp.exp(p["phi"])
        a, b = r * jnp.cos(theta), r * jnp.sin(theta)
        gamma = jnp.exp(p["g"])
        bz = p["B"] @ z  # [N, 2]
        rx = rotate(a, b, state.x)
        x = rx + gamma[:, None] * bz
        t = state.traces
        x1, x2 = state.x[:, 0], state.x[:, 1]
        direct_B = (gamma[:, None, None, None] * jnp.eye(2, dtype=z.dtype)[None, :, None, :]
                    * z[None, None, :, None])  # fmt: skip
        aw, bw = a[:, None, None], b[:, None, None]
        traces = dict(
            B=rotate(aw, bw, t["B"]) + direct_B,
            nu=rotate(a, b, t["nu"]) - jnp.exp(p["nu"])[:, None] * rx,
            phi=rotate(a, b, t["phi"])
            + theta[:, None] * jnp.stack([-b * x1 - a * x2, a * x1 - b * x2], axis=-1),
            g=rotate(a, b, t["g"]) + gamma[:, None] * bz,
        )  # fmt: skip
        hp_ = {k: p[k] for k in HEAD}
        o, pullback = jax.vjp(lambda hq, xx: head(hq, xx, z), hp_, x)
        feat_mean, feat_var = update_stats(o, state.feat_mean, state.feat_var, hp)
        inv_std = jax.lax.rsqrt(feat_var)
        o_hat = (o - feat_mean) * inv_std
        v = state.w @ o_hat + state.b
        g_head, g_x = pullback(seed_fn(v) * inv_std)  # seed on o_hat -> on o
        g_rec = dict(
            B=jnp.einsum("kc,kpjc->kpj", g_x, traces["B"]),
            **{k: jnp.sum(g_x * traces[k], axis=-1) for k in ("nu", "phi", "g")},
        )
        grads = tuple({**g_rec, **g_head}[k] for k in names)
        stats = dict(obs_mean=obs_mean, obs_var=obs_var, feat_mean=feat_mean, feat_var=feat_var)
        return x, traces, o_hat, v, grads, stats

    def step(state: LRUState, x_t: jax.Array, c_t: jax.Array, hp: HParams):
        x, traces, o_hat, v, grads, stats = forward(state, x_t, hp, lambda v: state.w)
        delta = c_t + hp.gamma * v - state.v_prev
        every = (*(state.params[k] for k in names), state.w, state.b)
        new, elig, nu_rms, corr = td_lambda(
            every, state.elig, state.nu_rms, state.corr, (*grads, o_hat, 1.0), delta, hp,
            rmsprop,
        )  # fmt: skip
        params = dict(zip(names, new[:-2], strict=True))
        return state._replace(
            params=params, w=new[-2], b=new[-1], x=x, traces=traces, elig=elig, nu_rms=nu_rms,
            corr=corr, v_prev=v, **stats,
        ), {"v": v, "delta": delta}  # fmt: skip

    def classify(state: LRUState, x_t: jax.Array, y_t: jax.Array, hp: HParams):
        x, traces, o_hat, logits, grads, stats = forward(
            state, x_t, hp, lambda lg: state.w.T @ cross_entropy(lg, y_t)[1]
        )
        loss, d = cross_entropy(logits, y_t)
        every = (*(state.params[k] for k in names), state.w, state.b)
        new, nu_rms, corr = descend(every, (*grads, jnp.outer(d, o_hat), d), state.nu_rms,
                                    state.corr, y_t >= 0, hp, rmsprop)  # fmt: skip
        params = dict(zip(names, new[:-2], strict=True))
        new_state = state._replace(params=params, w=new[-2], b=new[-1], x=x, traces=traces,
                                   nu_rms=nu_rms, corr=corr, **stats)  # fmt: skip
        return new_state, readout_out(logits, loss, y_t)

    def reset(state: LRUState) -> LRUState:
        return state._replace(x=jnp.zeros_like(state.x),
                              traces=jax.tree.map(jnp.zeros_like, state.traces))  # fmt: skip

    n_rec = N * (2 * J + 3) + 2 * N * N + N * J + 2 * N * N + 2 * N
    n_params = n_rec + (K or 1) * (N + 1)
    settings = dict(n_inputs=m, n_features=N, rmsprop=rmsprop, **({"n_classes": K} if K else {}))
    return Learner("lru", init, classify if K else step, n_params, settings, reset)
