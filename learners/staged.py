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

from learners.api import STAGE_FOREVER, HParams, Learner
from learners.lstm_column import gates_from_preact, preact, trace_step
from learners.td import next_corr, normalise, td_update, update_stats


class StagedState(NamedTuple):
    theta: jax.Array  # [S, P, 4, K+2] column parameters of every stage
    h: jax.Array  # [N] hidden state of every column (0 for stages not started)
    c: jax.Array  # [N] cell state
    w: jax.Array  # [N] readout weights
    b: jax.Array  # [] readout bias
    trace_h: jax.Array  # [P, 4, K+2] dh/dtheta of the learning stage
    trace_c: jax.Array  # [P, 4, K+2] dc/dtheta of the learning stage
    elig_theta: jax.Array  # [P, 4, K+2] TD(lambda) eligibility of the learning stage
    elig_w: jax.Array  # [N]
    elig_b: jax.Array  # []
    nu_theta: jax.Array  # [P, 4, K+2] RMSProp second moments of the learning stage
    nu_w: jax.Array  # [N]
    nu_b: jax.Array  # []
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
) -> Learner:
    """The staged network with ``n_features`` columns, ``per_stage`` learning at a time."""
    if n_inputs < 1:
        raise ValueError(f"n_inputs={n_inputs} must be >= 1")
    if n_features < 1:
        raise ValueError(f"n_features={n_features} must be >= 1 (a network needs a column)")
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
    read_mask = jnp.stack(
        [
            jnp.concatenate([jnp.ones(m), (jnp.arange(N - P) < s * P).astype(float)])
            for s in range(S)
        ]
    )
    n_params = sum(P * 4 * (m + s * P + 2) for s in range(S)) + N + 1

    def init(key: jax.Array, hp: HParams) -> StagedState:
        dtype = hp.alpha.dtype
        scale = hp.init_scale
        theta = jax.random.uniform(key, (S, P, 4, K + 2), dtype, -1.0, 1.0) * scale
        mask = jnp.concatenate([read_mask, jnp.ones((S, 2))], axis=1).astype(dtype)
        theta = theta * mask[:, None, None, :]
        zs = jnp.zeros((), dtype)
        zt = jnp.zeros((P, 4, K + 2), dtype)
        zn = jnp.zeros(N, dtype)
        return StagedState(
            theta=theta, h=zn, c=zn, w=zn, b=zs,
            trace_h=zt, trace_c=zt, elig_theta=zt, elig_w=zn, elig_b=zs,
            nu_theta=zt, nu_w=zn, nu_b=zs, corr_theta=zs, corr_out=zs,
            obs_mean=jnp.zeros(m, dtype), obs_var=jnp.ones(m, dtype),
            feat_mean=zn, feat_var=zn + 1.0, v_prev=zs,
            t=jnp.zeros((), jnp.int32), stage=jnp.zeros((), jnp.int32),
        )  # fmt: skip

    def step(
        state: StagedState, x_t: jax.Array, c_t: jax.Array, hp: HParams
    ) -> tuple[StagedState, dict[str, jax.Array]]:
        stage = jnp.minimum(state.t // hp.steps_per_stage, S - 1)
        new_stage = stage != state.stage
        x_hat = normalise(x_t, state.obs_mean, state.obs_var, hp)
        std = jnp.maximum(jnp.sqrt(state.feat_var), hp.norm_floor)

        # Forward pass, stage by stage: stage s reads the features of stages < s at step t.
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
            feats.append(jnp.where(active, (h_s - state.feat_mean[sl]) / std[sl], 0.0))
        h = jnp.concatenate(hs)
        c = jnp.concatenate(cs)
        h_hat = jnp.concatenate(feats)
        v_t = jnp.dot(state.w, h_hat) + state.b

        # TD(lambda): apply delta_{t-1} with the eligibilities of step t-1 (the stage that
        # learned then takes its last update even when a new stage starts now).
        delta = c_t + hp.gamma * v_t - state.v_prev
        corr_out = next_corr(state.corr_out, hp)
        corr_theta = next_corr(state.corr_theta, hp)
        w, nu_w = td_update(state.w, state.elig_w, state.nu_w, corr_out, delta, hp, rmsprop)
        b, nu_b = td_update(state.b, state.elig_b, state.nu_b, corr_out, delta, hp, rmsprop)
        theta_old = state.theta[state.stage]
        theta_new, nu_theta = td_update(
            theta_old, state.elig_theta, state.nu_theta, corr_theta, delta, hp, rmsprop
        )
        theta = state.theta.at[state.stage].set(theta_new)

        # Traces of the stage learning now, from the forward pass above (pre-update theta).
        keep = jnp.logical_not(new_stage)
        trace_h = jnp.where(keep, state.trace_h, 0.0)
        trace_c = jnp.where(keep, state.trace_c, 0.0)
        elig_theta = jnp.where(keep, state.elig_theta, 0.0)
        nu_theta = jnp.where(keep, nu_theta, 0.0)
        corr_theta = jnp.where(keep, corr_theta, 0.0)
        z_cur = jnp.concatenate([x_hat, h_hat[: N - P] * read_mask[stage, m:]])
        start = stage * P
        h_prev = jax.lax.dynamic_slice(state.h, (start,), (P,))
        c_prev = jax.lax.dynamic_slice(state.c, (start,), (P,))
        gt = gates_from_preact(jnp.stack(preacts)[stage], c_prev)
        trace_h, trace_c = trace_step(
            state.theta[stage], z_cur, h_prev, c_prev, gt, trace_h, trace_c
        )
        w_cur = jax.lax.dynamic_slice(state.w, (start,), (P,))
        std_cur = jax.lax.dynamic_slice(std, (start,), (P,))
        grad_theta = (w_cur / std_cur)[:, None, None] * trace_h
        decay = hp.gamma * hp.lambda_
        learning = (jnp.arange(N) // P) == stage
        feat_mean, feat_var = update_stats(h, state.feat_mean, state.feat_var, hp.norm_rate)
        obs_mean, obs_var = update_stats(x_t, state.obs_mean, state.obs_var, hp.norm_rate)
        new = StagedState(
            theta=theta,
            h=h,
            c=c,
            w=w,
            b=b,
            trace_h=trace_h,
            trace_c=trace_c,
            elig_theta=decay * elig_theta + grad_theta,
            elig_w=decay * state.elig_w + h_hat,
            elig_b=decay * state.elig_b + 1.0,
            nu_theta=nu_theta,
            nu_w=nu_w,
            nu_b=nu_b,
            corr_theta=corr_theta,
            corr_out=corr_out,
            obs_mean=obs_mean,
            obs_var=obs_var,
            feat_mean=jnp.where(learning, feat_mean, state.feat_mean),
            feat_var=jnp.where(learning, feat_var, state.feat_var),
            v_prev=v_t,
            t=state.t + 1,
            stage=stage,
        )
        return new, {"v": v_t, "delta": delta, "stage": stage}

    settings = dict(n_inputs=m, n_features=N, per_stage=P, rmsprop=rmsprop)
    return Learner(name, init, step, n_params, settings)


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
