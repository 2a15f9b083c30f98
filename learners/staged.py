"""The staged LSTM-column network that is the columnar, constructive and CCN (hybrid) learner.

``n_features`` columns are grouped into ``S = n_features / per_stage`` stages of ``per_stage``
columns (Javed et al., 2023, sec. 3-4). A column of stage s reads the normalised observation,
the normalised features of stages ``0 .. s-1`` at the same step, and its own ``h_{t-1}``. Stage
``s`` learns during steps ``[s L, (s+1) L)`` (``L = hparams.steps_per_stage``; the last stage
never stops) and is frozen afterwards: weights, traces and normalisation statistics of a stage
change only while it learns. Stages after the learning one are not yet part of the network:
their features are zero and their readout weights stay at zero until they start. The readout
``v = w . h_hat + b`` over all active features always learns.

Because a learning column's inputs are either the observation or frozen features, its exact
RTRL gradient needs only its own two traces per parameter (``learners.lstm_column``), so a step
costs O(|theta|): a forward pass of every active column plus a trace update of the learning
stage.

Special cases (see ``columnar``, ``constructive``, ``hybrid``):
``columnar(n)`` is one stage of n columns; ``constructive(n)`` has one column per stage.

Shapes: m inputs, N features, P per stage, K = m + N - P inputs of the widest column; the
parameters of stage s are ``theta[s]`` [P, 4, K + 2] with the weights of features it cannot
read fixed at zero.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from learners.api import STAGE_FOREVER, HParams, Learner, check_sizes, reset_recurrent
from learners.lstm_column import gates_from_preact, preact, trace_step
from learners.readout import cross_entropy, descend, readout_out
from learners.td import (
    next_corr,
    normalise,
    readout_alpha,
    rms_start,
    td_update,
    update_stats,
)


class StagedState(NamedTuple):
    theta: jax.Array  # [S, P, 4, K+2] column parameters of every stage
    h: jax.Array  # [N] hidden state of every column (0 for stages not started)
    c: jax.Array  # [N] cell state
    w: jax.Array  # [N] readout weights ([C, N] when classifying)
    b: jax.Array  # [] readout bias ([C] when classifying)
    trace_h: jax.Array  # [P, 4, K+2] dh/dtheta of the learning stage
    trace_c: jax.Array  # [P, 4, K+2] dc/dtheta of the learning stage
    elig_theta: jax.Array  # [P, 4, K+2] TD(lambda) eligibility of the learning stage ([0]
    elig_w: jax.Array  # [N]                              when classifying: no eligibility)
    elig_b: jax.Array  # []
    nu_theta: jax.Array  # [P, 4, K+2] RMSProp second moments of the learning stage
    nu_w: jax.Array  # shape of w
    nu_b: jax.Array  # shape of b
    corr_theta: jax.Array  # [] 1 - beta2^n over the learning stage's updates
    corr_out: jax.Array  # [] 1 - beta2^n over the readout's updates
    obs_mean: jax.Array  # [m]
    obs_var: jax.Array  # [m]
    feat_mean: jax.Array  # [N]
    feat_var: jax.Array  # [N]
    v_prev: jax.Array  # [] v_{t-1}
    t: jax.Array  # int32 [] steps taken
    stage: jax.Array  # int32 [] the stage that learned at the last step


def staged(
    n_inputs: int,
    n_features: int,
    per_stage: int,
    *,
    rmsprop: bool = True,
    name: str = "hybrid",
    n_classes: int = 0,
    trace_fn=trace_step,
) -> Learner:
    """The staged network with ``n_features`` columns, ``per_stage`` learning at a time;
    a classifier of ``n_classes`` classes when that is > 0 (``learners.readout``).
    ``trace_fn`` computes the learning stage's traces (``learners.lstm_column.trace_step``;
    ``learners.autodiff`` swaps in autodiff to measure what the closed form saves)."""
    check_sizes(n_inputs, n_features, n_classes, "a network of columns")
    if per_stage < 1:
        raise ValueError(f"per_stage={per_stage} must be >= 1")
    if n_features % per_stage:
        raise ValueError(
            f"per_stage={per_stage} does not divide n_features={n_features}; "
            f"allowed: a divisor of {n_features}"
        )
    m, N, P = n_inputs, n_features, per_stage
    S = N // P
    K = m + N - P
    # read_mask[s, j] = 1 where stage s may read input j of the widest column.
    # (numpy: building a learner starts no JAX backend; 0/1 is exact in any float dtype)
    read_mask = np.stack(
        [np.concatenate([np.ones(m), np.arange(N - P) < s * P]) for s in range(S)]
    ).astype(np.float32)
    C = n_classes
    out_shape = (C, N) if C else (N,)
    # One stage (the columnar learner): the learning stage is always 0. Saying so at trace
    # time lets XLA drop the stage bookkeeping: no gather of theta[stage], no scatter back, no
    # restart selects, each of which is a pass over every parameter (about a third of the
    # step's memory traffic with 256 streams, and many small kernels with one).
    single = S == 1

    def same_stage(stage, state):
        """Whether the stage learning now also learned at the last step."""
        return True if single else stage == state.stage

    def stage_theta(theta, stage):
        return theta[0] if single else theta[stage]

    def set_stage_theta(theta, stage, value):
        return value.reshape(theta.shape) if single else theta.at[stage].set(value)

    n_params = sum(P * 4 * (m + s * P + 2) for s in range(S)) + (C or 1) * (N + 1)

    def init(key: jax.Array, hp: HParams) -> StagedState:
        dtype = hp.alpha.dtype
        scale = hp.init_scale
        theta = jax.random.uniform(key, (S, P, 4, K + 2), dtype, -1.0, 1.0) * scale
        mask = jnp.concatenate([read_mask, jnp.ones((S, 2))], axis=1).astype(dtype)
        theta = theta * mask[:, None, None, :]
        zs = jnp.zeros((), dtype)
        zt = jnp.zeros((P, 4, K + 2), dtype)
        zn = jnp.zeros(N, dtype)
        zw = jnp.zeros(out_shape, dtype)
        zb = jnp.zeros(out_shape[:-1], dtype)
        z0 = jnp.zeros(0, dtype)
        nu0, corr0 = rms_start(hp)
        return StagedState(
            theta=theta, h=zn, c=zn, w=zw, b=zb,
            trace_h=zt, trace_c=zt, elig_theta=z0 if C else zt, elig_w=z0 if C else zn,
            elig_b=z0 if C else zs, nu_theta=zt + nu0, nu_w=zw + nu0, nu_b=zb + nu0,
            corr_theta=zs + corr0, corr_out=zs + corr0,
            obs_mean=jnp.zeros(m, dtype), obs_var=jnp.ones(m, dtype),
            feat_mean=zn, feat_var=zn + 1.0, v_prev=zs,
            t=jnp.zeros((), jnp.int32), stage=jnp.zeros((), jnp.int32),
        )  # fmt: skip

    def forward(state: StagedState, x_t: jax.Array, hp: HParams):
        """Every active column at step t, stage by stage: stage s reads the features of
        stages < s at step t. Returns ``(stage, x_hat, h, c, preacts, feats)``, ``feats``
        the normalised features each stage read (one [P] array per stage)."""
        if single:
            stage = jnp.zeros((), jnp.int32)
        else:
            stage = jnp.minimum(state.t // hp.steps_per_stage, S - 1)
        x_hat = normalise(x_t, state.obs_mean, state.obs_var)
        inv_std = jax.lax.rsqrt(state.feat_var)

        # Forward pass, stage by stage: stage s reads the features of stages < s at step t
        # (frozen, so their statistics are those of the step they froze at).
        hs, cs, preacts, feats = [], [], [], []
        for s in range(S):
            sl = slice(s * P, (s + 1) * P)
            z = jnp.concatenate([x_hat, *feats])
            a = preact(state.theta[s], z, state.h[sl])  # reads the first m + sP weights
            gt = gates_from_preact(a, state.c[sl])
            active = s <= stage
            h_s = jnp.where(active, gt.h, 0.0)
            hs.append(h_s)
            cs.append(jnp.where(active, gt.c, 0.0))
            preacts.append(a)
            feats.append(jnp.where(active, (h_s - state.feat_mean[sl]) * inv_std[sl], 0.0))
        return stage, x_hat, jnp.concatenate(hs), jnp.concatenate(cs), preacts, feats

    def features(state: StagedState, stage, h, feat_mean, feat_var):
        """The readout's features ``h_hat`` [N] and ``1 / std`` [N]: every active column
        normalised by the statistics that include step t, as the reference code does (only
        the learning stage's differ from those the forward pass used)."""
        inv_std = jax.lax.rsqrt(feat_var)
        active = (jnp.arange(N) // P) <= stage
        return jnp.where(active, (h - feat_mean) * inv_std, 0.0), inv_std

    def traces(state: StagedState, stage, x_hat, feats, preacts):
        """The learning stage's ``(trace_h, trace_c)`` after step t (from the pre-update
        theta), restarted from zero when a new stage starts at t."""
        keep = same_stage(stage, state)
        trace_h = jnp.where(keep, state.trace_h, 0.0)
        trace_c = jnp.where(keep, state.trace_c, 0.0)
        if single:
            z_cur, h_prev, c_prev, a = x_hat, state.h, state.c, preacts[0]
        else:
            z_cur = jnp.concatenate([x_hat, *feats[:-1]]) * jnp.asarray(read_mask)[stage]
            start = stage * P
            h_prev = jax.lax.dynamic_slice(state.h, (start,), (P,))
            c_prev = jax.lax.dynamic_slice(state.c, (start,), (P,))
            a = jnp.stack(preacts)[stage]
        gt = gates_from_preact(a, c_prev)
        return trace_fn(stage_theta(state.theta, stage), z_cur, h_prev, c_prev, gt, trace_h,
                        trace_c)  # fmt: skip

    def stats(state: StagedState, stage, x_t, h, hp: HParams):
        """Running statistics of the observation, and of the learning stage's features."""
        learning = (jnp.arange(N) // P) == stage
        feat_mean, feat_var = update_stats(h, state.feat_mean, state.feat_var, hp)
        obs_mean, obs_var = update_stats(x_t, state.obs_mean, state.obs_var, hp)
        return dict(
            obs_mean=obs_mean, obs_var=obs_var,
            feat_mean=jnp.where(learning, feat_mean, state.feat_mean),
            feat_var=jnp.where(learning, feat_var, state.feat_var),
        )  # fmt: skip

    def step(
        state: StagedState, x_t: jax.Array, c_t: jax.Array, hp: HParams
    ) -> tuple[StagedState, dict[str, jax.Array]]:
        stage, x_hat, h, c, preacts, feats = forward(state, x_t, hp)
        new_stats = stats(state, stage, x_t, h, hp)
        h_hat, inv_std = features(state, stage, h, new_stats["feat_mean"], new_stats["feat_var"])
        v_t = jnp.dot(state.w, h_hat) + state.b

        # TD(lambda): apply delta_{t-1} with the eligibilities of step t-1 (the stage that
        # learned then takes its last update even when a new stage starts now).
        delta = c_t + hp.gamma * v_t - state.v_prev
        corr_out = next_corr(state.corr_out, hp)
        corr_theta = next_corr(state.corr_theta, hp)
        hp_out = readout_alpha(hp, (state.stage + 1) * P)  # the features it read at t-1
        w, nu_w = td_update(state.w, state.elig_w, state.nu_w, corr_out, delta, hp_out, rmsprop)
        b, nu_b = td_update(state.b, state.elig_b, state.nu_b, corr_out, delta, hp_out, rmsprop)
        if single:  # updated in its stored shape [1, ...]: no layout copy of theta
            theta, nu_theta = td_update(state.theta, state.elig_theta[None], state.nu_theta[None],
                                        corr_theta, delta, hp, rmsprop)  # fmt: skip
            nu_theta = nu_theta[0]
        else:
            theta_new, nu_theta = td_update(state.theta[state.stage], state.elig_theta,
                                            state.nu_theta, corr_theta, delta, hp,
                                            rmsprop)  # fmt: skip
            theta = state.theta.at[state.stage].set(theta_new)

        # Traces of the stage learning now, from the forward pass above (pre-update theta).
        keep = same_stage(stage, state)
        nu0, corr0 = rms_start(hp)
        elig_theta = jnp.where(keep, state.elig_theta, 0.0)
        nu_theta = jnp.where(keep, nu_theta, nu0)
        corr_theta = jnp.where(keep, corr_theta, corr0)
        trace_h, trace_c = traces(state, stage, x_hat, feats, preacts)
        start = stage * P
        w_cur = jax.lax.dynamic_slice(state.w * inv_std, (start,), (P,))
        grad_theta = w_cur[:, None, None] * trace_h
        decay = hp.gamma * hp.lambda_
        new = StagedState(
            theta=theta, h=h, c=c, w=w, b=b, trace_h=trace_h, trace_c=trace_c,
            elig_theta=decay * elig_theta + grad_theta,
            elig_w=decay * state.elig_w + h_hat,
            elig_b=decay * state.elig_b + 1.0,
            nu_theta=nu_theta, nu_w=nu_w, nu_b=nu_b, corr_theta=corr_theta, corr_out=corr_out,
            v_prev=v_t, t=state.t + 1, stage=stage, **new_stats,
        )  # fmt: skip
        return new, {"v": v_t, "delta": delta, "stage": stage}

    def classify(
        state: StagedState, x_t: jax.Array, y_t: jax.Array, hp: HParams
    ) -> tuple[StagedState, dict[str, jax.Array]]:
        """Cross-entropy at labelled steps: ``dL/dtheta = (W^T dL/dlogits / std) . trace``
        for the learning stage, from this step's traces (``learners.readout``)."""
        stage, x_hat, h, c, preacts, feats = forward(state, x_t, hp)
        new_stats = stats(state, stage, x_t, h, hp)
        h_hat, inv_std = features(state, stage, h, new_stats["feat_mean"], new_stats["feat_var"])
        logits = state.w @ h_hat + state.b
        loss, dlogits = cross_entropy(logits, y_t)
        on = y_t >= 0
        keep = same_stage(stage, state)
        nu0, corr0 = rms_start(hp)
        nu_theta = jnp.where(keep, state.nu_theta, nu0)
        corr_theta = jnp.where(keep, state.corr_theta, corr0)
        trace_h, trace_c = traces(state, stage, x_hat, feats, preacts)
        g = (state.w.T @ dlogits) * inv_std  # dL/dh of every column
        g_cur = jax.lax.dynamic_slice(g, (stage * P,), (P,))
        grad_theta = g_cur[:, None, None] * trace_h
        (w, b), (nu_w, nu_b), corr_out = descend(
            (state.w, state.b), (jnp.outer(dlogits, h_hat), dlogits), (state.nu_w, state.nu_b),
            state.corr_out, on, readout_alpha(hp, (stage + 1) * P), rmsprop,
        )  # fmt: skip
        (theta_cur,), (nu_theta,), corr_theta = descend(
            (stage_theta(state.theta, stage),), (grad_theta,), (nu_theta,), corr_theta, on, hp,
            rmsprop,
        )  # fmt: skip
        new = state._replace(
            theta=set_stage_theta(state.theta, stage, theta_cur), h=h, c=c, w=w, b=b,
            trace_h=trace_h, trace_c=trace_c, nu_theta=nu_theta, nu_w=nu_w, nu_b=nu_b,
            corr_theta=corr_theta, corr_out=corr_out, t=state.t + 1, stage=stage, **new_stats,
        )  # fmt: skip
        return new, {**readout_out(logits, loss, y_t), "stage": stage}

    settings = dict(n_inputs=m, n_features=N, per_stage=P, rmsprop=rmsprop)
    if C:
        settings["n_classes"] = C
    return Learner(name, init, classify if C else step, n_params, settings, reset_recurrent)


def columnar(n_inputs: int, n_columns: int, **kw) -> Learner:
    """``n_columns`` independent LSTM columns that all learn for ever (one stage)."""
    return staged(n_inputs, n_columns, n_columns, name="columnar", **kw)


def constructive(n_inputs: int, n_features: int, **kw) -> Learner:
    """One column per stage: each new feature reads every earlier one."""
    return staged(n_inputs, n_features, 1, name="constructive", **kw)


def hybrid(n_inputs: int, n_features: int, per_stage: int, **kw) -> Learner:
    """The CCN: stages of ``per_stage`` independent columns."""
    return staged(n_inputs, n_features, per_stage, name="hybrid", **kw)


__all__ = ["STAGE_FOREVER", "StagedState", "columnar", "constructive", "hybrid", "staged"]
