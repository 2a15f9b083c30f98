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
exact (tested against ``jax.grad`` of the network unrolled in complex arithmetic).

Stacks (``layers`` > 1, the paper's deep networks): layer l reads the GLU output of layer
l - 1 (and a bias input) where the first reads ``z``. Each layer keeps the traces of its own
recurrence, with its own input in place of ``z``; the gradient of every parameter at step t
is its trace (or, for a head, its own step's gradient) contracted with ``dv/dx_l`` through
the layers above at step t. What this drops are the temporal paths through other layers: a
parameter's effect on a layer above, carried forward by that layer's recurrence. The update
is therefore the exact gradient of the network in which every layer's previous state is
held constant for the parameters of the other layers (``tests/test_lru.py`` checks exactly
that in float64), as SnAp-1 is the exact gradient of its own cut network.

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


MAX_LAYERS = 8


class LRUState(NamedTuple):
    # Per layer l (tuples, lowest layer first): params B [N, 2, J_l], nu, phi, g [N];
    # C [N, N, 2], D [N, J_l], W1, W2 [N, N], b1, b2 [N]; J_1 = m + 1, J_l = N + 1 above.
    params: tuple
    w: jax.Array  # [N] readout ([K, N] when classifying), on the top layer's output
    b: jax.Array  # [] ([K])
    x: tuple  # [N, 2] per layer
    traces: tuple  # per layer: B [N, 2, J, 2], nu, phi, g [N, 2]: d(x1, x2)/dparam
    elig: tuple  # eligibilities of (every layer's params..., w, b); empty when classifying
    nu_rms: tuple  # RMSProp second moments of the same
    corr: jax.Array
    obs_mean: jax.Array  # [m]
    obs_var: jax.Array
    feat_mean: jax.Array  # [N]
    feat_var: jax.Array
    v_prev: jax.Array


def head(p: dict, x: jax.Array, z: jax.Array) -> jax.Array:
    """A layer's output and its GLU, ``o_t`` [N], from its state ``x`` [N, 2] and input ``z``."""
    y = p["C"][..., 0] @ x[:, 0] - p["C"][..., 1] @ x[:, 1] + p["D"] @ z
    return (p["W1"] @ y + p["b1"]) * jax.nn.sigmoid(p["W2"] @ y + p["b2"])


def eigen(p: dict) -> tuple[jax.Array, ...]:
    """``(a, b, gamma, theta)``: the eigenvalues' real and imaginary parts, the input
    normalisation and the phases of a layer."""
    r, theta = jnp.exp(-jnp.exp(p["nu"])), jnp.exp(p["phi"])
    return r * jnp.cos(theta), r * jnp.sin(theta), jnp.exp(p["g"]), theta


def layer_params(n_in: int, units: int) -> int:
    """Parameters of one layer on ``n_in`` inputs (the bias input not counted)."""
    N, J = units, n_in + 1
    return N * (2 * J + 3) + 2 * N * N + N * J + 2 * N * N + 2 * N


def lru(
    n_inputs: int, units: int, *, layers: int = 1, rmsprop: bool = True, n_classes: int = 0
) -> Learner:
    """``layers`` online LRU layers of ``units`` complex units, each followed by its GLU; the
    layer above reads the GLU's output. Exact RTRL within each layer's recurrence: one layer
    is exact, a stack cuts the temporal paths through other layers (the paper's rule)."""
    check_sizes(n_inputs, units, n_classes, "an LRU layer")
    if not 1 <= layers <= MAX_LAYERS:
        raise ValueError(f"layers={layers} must be between 1 and {MAX_LAYERS}")
    m, N, K, L = n_inputs, units, n_classes, layers
    names = (*RECURRENT, *HEAD)

    def init(key: jax.Array, hp: HParams) -> LRUState:
        dtype = hp.alpha.dtype
        zn = jnp.zeros(N, dtype)

        def layer(k: jax.Array, J: int) -> dict:
            ks = jax.random.split(k, 7)

            def unif(kk, shape, fan_in):
                s = hp.init_scale / jnp.sqrt(jnp.asarray(fan_in, dtype))
                return jax.random.uniform(kk, shape, dtype, -1.0, 1.0) * s

            r = jax.random.uniform(ks[0], (N,), dtype, *R_RANGE)
            theta = jax.random.uniform(ks[1], (N,), dtype, 1e-3, THETA_MAX)
            return dict(
                B=unif(ks[2], (N, 2, J), J), nu=jnp.log(-jnp.log(r)), phi=jnp.log(theta),
                g=0.5 * jnp.log1p(-r * r), C=unif(ks[3], (N, N, 2), 2 * N),
                D=unif(ks[4], (N, J), J), W1=unif(ks[5], (N, N), N), b1=zn,
                W2=unif(ks[6], (N, N), N), b2=zn,
            )  # fmt: skip

        # (one layer draws from the key itself: a single layer's numbers stay as they were)
        keys = [key] if L == 1 else list(jax.random.split(key, L))
        params = tuple(layer(keys[i], (m if i == 0 else N) + 1) for i in range(L))
        zs = jnp.zeros((), dtype)
        w, b = (jnp.zeros((K, N), dtype), jnp.zeros(K, dtype)) if K else (zn, zs)
        traces = tuple(
            dict(B=jnp.zeros((N, 2, p["B"].shape[-1], 2), dtype), nu=jnp.zeros((N, 2), dtype),
                 phi=jnp.zeros((N, 2), dtype), g=jnp.zeros((N, 2), dtype))
            for p in params
        )  # fmt: skip
        every = (*(p[k] for p in params for k in names), w, b)
        elig = () if K else tuple(jnp.zeros_like(a) for a in every)
        return LRUState(
            params, w, b, tuple(jnp.zeros((N, 2), dtype) for _ in range(L)), traces, elig,
            tuple(jnp.zeros_like(a) for a in every), zs, jnp.zeros(m, dtype),
            jnp.ones(m, dtype), zn, zn + 1.0, zs,
        )  # fmt: skip

    def forward(state: LRUState, x_t: jax.Array, hp: HParams, seed_fn):
        """The step: new states ``x``, traces, the normalised top output, the readout's value,
        and the gradients of ``seed_fn(o_hat-space gradient)`` for every parameter."""
        x_hat = normalise(x_t, state.obs_mean, state.obs_var)
        obs_mean, obs_var = update_stats(x_t, state.obs_mean, state.obs_var, hp)
        z = jnp.concatenate([x_hat, jnp.ones(1, x_hat.dtype)])
        eig = [eigen(p) for p in state.params]
        rxs = [rotate(a, b, x) for (a, b, _, _), x in zip(eig, state.x, strict=True)]

        def top(heads, e):
            """The stack at step t from the layers' R x_{t-1} (held), with ``e[l]`` added to
            layer l's new state: d(top)/d e[l] is dv/dx_l through every layer above."""
            u, xs, us = z, [], []
            for p, hq, (_, _, gamma, _), rx, e_l in zip(state.params, heads, eig, rxs, e,
                                                        strict=True):  # fmt: skip
                us.append(u)
                xs.append(rx + gamma[:, None] * (p["B"] @ u) + e_l)
                u = jnp.concatenate([head(hq, xs[-1], u), jnp.ones(1, u.dtype)])
            return u[:-1], (xs, us)

        heads = tuple({k: p[k] for k in HEAD} for p in state.params)
        o, pullback, (xs, us) = jax.vjp(top, heads, tuple(jnp.zeros_like(x) for x in state.x),
                                        has_aux=True)  # fmt: skip
        feat_mean, feat_var = update_stats(o, state.feat_mean, state.feat_var, hp)
        inv_std = jax.lax.rsqrt(feat_var)
        o_hat = (o - feat_mean) * inv_std
        v = state.w @ o_hat + state.b
        g_heads, g_xs = pullback(seed_fn(v) * inv_std)  # seed on o_hat -> on o

        traces, grads = [], []
        for p, t, (a, b, gamma, theta), rx, x_prev, u, g_x, g_head in zip(
            state.params, state.traces, eig, rxs, state.x, us, g_xs, g_heads, strict=True
        ):
            bu = p["B"] @ u  # [N, 2]
            x1, x2 = x_prev[:, 0], x_prev[:, 1]
            direct_B = (gamma[:, None, None, None] * jnp.eye(2, dtype=u.dtype)[None, :, None, :]
                        * u[None, None, :, None])  # fmt: skip
            aw, bw = a[:, None, None], b[:, None, None]
            tr = dict(
                B=rotate(aw, bw, t["B"]) + direct_B,
                nu=rotate(a, b, t["nu"]) - jnp.exp(p["nu"])[:, None] * rx,
                phi=rotate(a, b, t["phi"])
                + theta[:, None] * jnp.stack([-b * x1 - a * x2, a * x1 - b * x2], axis=-1),
                g=rotate(a, b, t["g"]) + gamma[:, None] * bu,
            )  # fmt: skip
            g_rec = dict(
                B=jnp.einsum("kc,kpjc->kpj", g_x, tr["B"]),
                **{k: jnp.sum(g_x * tr[k], axis=-1) for k in ("nu", "phi", "g")},
            )
            traces.append(tr)
            grads.extend({**g_rec, **g_head}[k] for k in names)
        stats = dict(obs_mean=obs_mean, obs_var=obs_var, feat_mean=feat_mean, feat_var=feat_var)
        return tuple(xs), tuple(traces), o_hat, v, tuple(grads), stats

    def unflatten(new: tuple) -> tuple:
        n = len(names)
        return tuple(dict(zip(names, new[i * n : (i + 1) * n], strict=True)) for i in range(L))

    def every(state: LRUState) -> tuple:
        return (*(p[k] for p in state.params for k in names), state.w, state.b)

    def step(state: LRUState, x_t: jax.Array, c_t: jax.Array, hp: HParams):
        x, traces, o_hat, v, grads, stats = forward(state, x_t, hp, lambda v: state.w)
        delta = c_t + hp.gamma * v - state.v_prev
        new, elig, nu_rms, corr = td_lambda(
            every(state), state.elig, state.nu_rms, state.corr, (*grads, o_hat, 1.0), delta, hp,
            rmsprop,
        )  # fmt: skip
        return state._replace(
            params=unflatten(new[:-2]), w=new[-2], b=new[-1], x=x, traces=traces, elig=elig,
            nu_rms=nu_rms, corr=corr, v_prev=v, **stats,
        ), {"v": v, "delta": delta}  # fmt: skip

    def classify(state: LRUState, x_t: jax.Array, y_t: jax.Array, hp: HParams):
        x, traces, o_hat, logits, grads, stats = forward(
            state, x_t, hp, lambda lg: state.w.T @ cross_entropy(lg, y_t)[1]
        )
        loss, d = cross_entropy(logits, y_t)
        new, nu_rms, corr = descend(every(state), (*grads, jnp.outer(d, o_hat), d), state.nu_rms,
                                    state.corr, y_t >= 0, hp, rmsprop)  # fmt: skip
        new_state = state._replace(params=unflatten(new[:-2]), w=new[-2], b=new[-1], x=x,
                                   traces=traces, nu_rms=nu_rms, corr=corr, **stats)  # fmt: skip
        return new_state, readout_out(logits, loss, y_t)

    def reset(state: LRUState) -> LRUState:
        return state._replace(x=jax.tree.map(jnp.zeros_like, state.x),
                              traces=jax.tree.map(jnp.zeros_like, state.traces))  # fmt: skip

    n_params = sum(layer_params(m if i == 0 else N, N) for i in range(L)) + (K or 1) * (N + 1)
    settings = dict(n_inputs=m, n_features=N, layers=L, rmsprop=rmsprop,
                    **({"n_classes": K} if K else {}))  # fmt: skip
    return Learner("lru", init, classify if K else step, n_params, settings, reset)
