"""Recurrent trace units (RTUs; Elelimy, White, Bowling and White, NeurIPS 2024): exact RTRL
at linear cost from diagonal complex recurrence.

Each of the ``H`` units holds one complex number ``c = c1 + i c2`` with its own eigenvalue
``lambda = r e^{i theta}``, parameterised as ``r = exp(-exp(nu))`` (so ``0 < r < 1``: the
recurrence is stable whatever the step size does to ``nu``) and ``theta = exp(phi)``. The
observation (normalised, with a bias input) enters the real and the imaginary part through
their own weights ``W[:, 0]`` and ``W[:, 1]``. In real form, with ``a = r cos theta`` and
``b = r sin theta``, the pre-activations of unit k are::

    p1 = a c1_{t-1} - b c2_{t-1} + W[k, 0] . z_t
    p2 = b c1_{t-1} + a c2_{t-1} + W[k, 1] . z_t

- ``rtu`` (non-linear): ``c = tanh(p)``, and the features are ``(c1, c2)``;
- ``rtu_linear``: ``c = p`` (a linear recurrence), and the features are ``tanh(c1), tanh(c2)``.

Every parameter of unit k reaches only unit k's ``(c1, c2)``, so RTRL keeps, per parameter,
two numbers ``s = (dc1/dp, dc2/dp)`` and updates them with the unit's 2x2 rotation-scaling
``R = [[a, -b], [b, a]]``::

    s_t = D (R s_{t-1} + dp_t/dp),     D = diag(tanh'(p_t)) (non-linear) or I (linear)

where the direct term ``dp_t/dp`` is ``(z_j, 0)`` or ``(0, z_j)`` for ``W[k, 0, j]`` or
``W[k, 1, j]``, ``-exp(nu) R c_{t-1}`` for ``nu`` (``dr/dnu = -exp(nu) r``) and
``theta (-b c1 - a c2, a c1 - b c2)`` for ``phi``. That is exact (the test compares it with
``jax.jacfwd`` of the network unrolled in complex arithmetic) at O(parameters) per step.

The readout, TD(lambda), RMSProp, the running normalisation of the observation and of the
features, and the classification readout are those of the dense LSTM learners.

Initialisation: ``r`` uniform in [0.6, 0.99] and ``theta`` uniform in [0, pi/8] (slow
rotations: the testbed's intervals are tens of steps), the input weights ``U(-s, s)`` with
``s = init_scale / sqrt(m + 1)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from learners.api import HParams, Learner, check_sizes
from learners.readout import cross_entropy, descend, readout_out
from learners.td import normalise, td_lambda, update_stats

R_RANGE = (0.6, 0.99)  # initial magnitudes of the eigenvalues
THETA_MAX = math.pi / 8  # initial phases in [0, THETA_MAX]


class RTUState(NamedTuple):
    W: jax.Array  # [H, 2, J] input weights into the real (0) and imaginary (1) parts
    nu: jax.Array  # [H] r = exp(-exp(nu))
    phi: jax.Array  # [H] theta = exp(phi)
    c: jax.Array  # [H, 2] (c1, c2)
    w: jax.Array  # [2H] readout ([C, 2H] when classifying)
    b: jax.Array  # [] ([C] when classifying)
    trace_W: jax.Array  # [H, 2, J, 2] d(c1, c2)/dW
    trace_nu: jax.Array  # [H, 2]
    trace_phi: jax.Array  # [H, 2]
    elig: tuple  # (W, nu, phi, w, b) eligibilities (empty arrays when classifying)
    nu_rms: tuple  # (W, nu, phi, w, b) RMSProp second moments
    corr: jax.Array  # [] 1 - beta2^n
    obs_mean: jax.Array  # [m]
    obs_var: jax.Array  # [m]
    feat_mean: jax.Array  # [2H]
    feat_var: jax.Array  # [2H]
    v_prev: jax.Array  # []


def rotate(a: jax.Array, b: jax.Array, s: jax.Array) -> jax.Array:
    """``R s`` for a trailing axis of 2, ``a`` and ``b`` broadcasting against ``s[..., 0]``."""
    return jnp.stack([a * s[..., 0] - b * s[..., 1], b * s[..., 0] + a * s[..., 1]], axis=-1)


def _rtu(n_inputs: int, units: int, nonlinear: bool, rmsprop: bool, n_classes: int) -> Learner:
    check_sizes(n_inputs, units, n_classes, "an RTU layer")
    m, H, C = n_inputs, units, n_classes
    J = m + 1

    def init(key: jax.Array, hp: HParams) -> RTUState:
        dtype = hp.alpha.dtype
        k_w, k_r, k_t = jax.random.split(key, 3)
        scale = hp.init_scale / jnp.sqrt(jnp.asarray(J, dtype))
        W = jax.random.uniform(k_w, (H, 2, J), dtype, -1.0, 1.0) * scale
        r = jax.random.uniform(k_r, (H,), dtype, *R_RANGE)
        theta = jax.random.uniform(k_t, (H,), dtype, 1e-3, THETA_MAX)
        nu, phi = jnp.log(-jnp.log(r)), jnp.log(theta)
        zs = jnp.zeros((), dtype)
        if C:
            w, b = jnp.zeros((C, 2 * H), dtype), jnp.zeros(C, dtype)
            elig = ()
        else:
            w, b = jnp.zeros(2 * H, dtype), zs
            elig = tuple(jnp.zeros_like(p) for p in (W, nu, phi, w, b))
        return RTUState(
            W, nu, phi, jnp.zeros((H, 2), dtype), w, b,
            jnp.zeros((H, 2, J, 2), dtype), jnp.zeros((H, 2), dtype), jnp.zeros((H, 2), dtype),
            elig, tuple(jnp.zeros_like(p) for p in (W, nu, phi, w, b)), zs,
            jnp.zeros(m, dtype), jnp.ones(m, dtype), jnp.zeros(2 * H, dtype),
            jnp.ones(2 * H, dtype), zs,
        )  # fmt: skip

    def forward(state: RTUState, x_t: jax.Array, hp: HParams):
        """The step's pre-activations, new ``c``, features and the traces' update."""
        x_hat = normalise(x_t, state.obs_mean, state.obs_var)
        obs_mean, obs_var = update_stats(x_t, state.obs_mean, state.obs_var, hp)
        z = jnp.concatenate([x_hat, jnp.ones(1, x_hat.dtype)])  # [J]
        r, theta = jnp.exp(-jnp.exp(state.nu)), jnp.exp(state.phi)
        a, b = r * jnp.cos(theta), r * jnp.sin(theta)  # [H]
        rc = rotate(a, b, state.c)  # [H, 2] R c_{t-1}
        pre = rc + state.W @ z  # [H, 2]
        if nonlinear:
            c = jnp.tanh(pre)
            D, feats, dfeat = 1.0 - c * c, c, jnp.ones_like(c)
        else:
            c, D = pre, jnp.ones_like(pre)
            feats = jnp.tanh(c)
            dfeat = 1.0 - feats * feats
        # RTRL: s_t = D (R s_{t-1} + direct)
        direct_W = jnp.eye(2, dtype=z.dtype)[None, :, None, :] * z[None, None, :, None]
        aw, bw = a[:, None, None], b[:, None, None]
        trace_W = D[:, None, None, :] * (rotate(aw, bw, state.trace_W) + direct_W)
        direct_nu = -jnp.exp(state.nu)[:, None] * rc
        c1, c2 = state.c[:, 0], state.c[:, 1]
        direct_phi = theta[:, None] * jnp.stack([-b * c1 - a * c2, a * c1 - b * c2], axis=-1)
        trace_nu = D * (rotate(a, b, state.trace_nu) + direct_nu)
        trace_phi = D * (rotate(a, b, state.trace_phi) + direct_phi)
        h = feats.reshape(-1)  # [2H] (c1, c2) of unit 0, then unit 1, ...
        feat_mean, feat_var = update_stats(h, state.feat_mean, state.feat_var, hp)
        inv_std = jax.lax.rsqrt(feat_var)
        h_hat = (h - feat_mean) * inv_std
        v = state.w @ h_hat + state.b
        stats = dict(obs_mean=obs_mean, obs_var=obs_var, feat_mean=feat_mean, feat_var=feat_var)
        traces = dict(trace_W=trace_W, trace_nu=trace_nu, trace_phi=trace_phi)
        # d h_hat / d c, [H, 2]: what a seed on the features becomes on the traces
        dhat = inv_std.reshape(H, 2) * dfeat
        return c, h_hat, v, dhat, stats, traces

    def grads(seed: jax.Array, traces: dict) -> tuple[jax.Array, ...]:
        """``seed . d(c1, c2)/dparam`` for W, nu, phi; ``seed`` [H, 2] on (c1, c2)."""
        return (
            jnp.einsum("kc,kpjc->kpj", seed, traces["trace_W"]),
            jnp.sum(seed * traces["trace_nu"], axis=-1),
            jnp.sum(seed * traces["trace_phi"], axis=-1),
        )

    def step(state: RTUState, x_t: jax.Array, c_t: jax.Array, hp: HParams):
        c, h_hat, v, dhat, stats, traces = forward(state, x_t, hp)
        g_W, g_nu, g_phi = grads(state.w.reshape(H, 2) * dhat, traces)
        delta = c_t + hp.gamma * v - state.v_prev
        params, elig, nu_rms, corr = td_lambda(
            (state.W, state.nu, state.phi, state.w, state.b), state.elig, state.nu_rms,
            state.corr, (g_W, g_nu, g_phi, h_hat, 1.0), delta, hp, rmsprop,
        )  # fmt: skip
        W, nu, phi, w, b = params
        new = state._replace(W=W, nu=nu, phi=phi, c=c, w=w, b=b, elig=elig, nu_rms=nu_rms,
                             corr=corr, v_prev=v, **stats, **traces)  # fmt: skip
        return new, {"v": v, "delta": delta}

    def classify(state: RTUState, x_t: jax.Array, y_t: jax.Array, hp: HParams):
        c, h_hat, logits, dhat, stats, traces = forward(state, x_t, hp)
        loss, dlogits = cross_entropy(logits, y_t)
        g_W, g_nu, g_phi = grads((state.w.T @ dlogits).reshape(H, 2) * dhat, traces)
        params, nu_rms, corr = descend(
            (state.W, state.nu, state.phi, state.w, state.b),
            (g_W, g_nu, g_phi, jnp.outer(dlogits, h_hat), dlogits),
            state.nu_rms, state.corr, y_t >= 0, hp, rmsprop,
        )  # fmt: skip
        W, nu, phi, w, b = params
        new = state._replace(W=W, nu=nu, phi=phi, c=c, w=w, b=b, nu_rms=nu_rms, corr=corr,
                             **stats, **traces)  # fmt: skip
        return new, readout_out(logits, loss, y_t)

    def reset(state: RTUState) -> RTUState:
        zero = jnp.zeros_like
        return state._replace(
            c=zero(state.c), trace_W=zero(state.trace_W), trace_nu=zero(state.trace_nu),
            trace_phi=zero(state.trace_phi),
        )  # fmt: skip

    name = "rtu" if nonlinear else "rtu_linear"
    n_params = H * (2 * J + 2) + (C or 1) * (2 * H + 1)
    settings = dict(n_inputs=m, n_features=H, rmsprop=rmsprop, **({"n_classes": C} if C else {}))
    return Learner(name, init, classify if C else step, n_params, settings, reset)


def rtu(n_inputs: int, units: int, *, rmsprop: bool = True, n_classes: int = 0) -> Learner:
    """A layer of ``units`` non-linear RTUs (``c = tanh(R c + W z)``), exact RTRL."""
    return _rtu(n_inputs, units, nonlinear=True, rmsprop=rmsprop, n_classes=n_classes)


def rtu_linear(n_inputs: int, units: int, *, rmsprop: bool = True, n_classes: int = 0) -> Learner:
    """A layer of ``units`` linear RTUs (``c = R c + W z``, features ``tanh(c)``), exact RTRL."""
    return _rtu(n_inputs, units, nonlinear=False, rmsprop=rmsprop, n_classes=n_classes)
