"""Pieces shared by every TD(lambda) learner: update normalisation and running statistics."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from learners.api import HParams


def td_update(
    param: jax.Array,
    elig: jax.Array,
    nu: jax.Array,
    corr: jax.Array,
    delta: jax.Array,
    hp: HParams,
    rmsprop: bool,
) -> tuple[jax.Array, jax.Array]:
    """``param + alpha * delta * elig``, optionally divided by an RMSProp scale.

    With ``rmsprop`` the update ``g = delta * elig`` is divided elementwise by
    ``sqrt(nu_hat) + eps`` where ``nu = beta2 * nu + (1 - beta2) g^2`` and ``nu_hat = nu / corr``
    removes the bias of the zero start (``corr = 1 - beta2^n`` after n updates, kept by the
    caller). Returns ``(param, nu)``.
    """
    g = delta * elig
    if not rmsprop:
        return param + hp.alpha * g, nu
    nu = hp.beta2 * nu + (1.0 - hp.beta2) * g * g
    # sqrt(nu / corr) with the division done once, on the scalar corr
    return param + hp.alpha * g / (jnp.sqrt(nu) * jax.lax.rsqrt(corr) + hp.eps), nu


def next_corr(corr: jax.Array, hp: HParams) -> jax.Array:
    """``1 - beta2^(n+1)`` from ``1 - beta2^n``. From ``corr = 1`` it stays 1 exactly (no
    correction): ``beta2 + (1 - beta2)`` is 1 in floating point, since ``1 - beta2`` is."""
    return hp.beta2 * corr + (1.0 - hp.beta2)


def rms_start(hp: HParams) -> tuple[jax.Array, jax.Array]:
    """RMSProp's second moment and bias-correction term at the start (and at each restart):
    ``(nu_init, 0)`` for the zero start, corrected as it fills (ours); ``(nu_init, 1)`` for
    a positive start, never corrected (the reference code's ``beta_2 = 1``)."""
    return hp.nu_init, jnp.where(hp.nu_init > 0, 1.0, 0.0).astype(hp.alpha.dtype)


def readout_alpha(hp: HParams, n_features: jax.Array) -> HParams:
    """``hp`` with the readout's step size: ``alpha / n_features ** readout_per_feature``."""
    n = jnp.maximum(jnp.asarray(n_features, hp.alpha.dtype), 1.0)
    return hp._replace(alpha=hp.alpha * n ** (-hp.readout_per_feature))


def normalise(x: jax.Array, mean: jax.Array, var: jax.Array) -> jax.Array:
    """``(x - mean) / sqrt(var)``; the identity at the initial ``mean = 0, var = 1``.

    ``var`` is already floored by :func:`update_stats` (the reference code floors the stored
    variance, not the value used), so it is never below ``norm_floor``.
    """
    return (x - mean) * jax.lax.rsqrt(var)


def update_stats(
    x: jax.Array, mean: jax.Array, var: jax.Array, hp: HParams
) -> tuple[jax.Array, jax.Array]:
    """The running mean and variance of the authors' reference code, one step.

    With ``r = 1 - norm_rate`` (the reference's ``normalization_rate``, 0.99999 in its paper
    runs) and ``floor = norm_floor`` (its ``std_cap``, a floor on the *variance*)::

        mean <- r mean + (1 - r) x
        var  <- max(r var + (1 - r) (x - mean)^2, floor)     # with the mean just updated

    ``norm_rate = 0`` (``r = 1``) leaves both at their start, ``mean = 0, var = 1``: no
    normalisation (``norm_floor`` is at most 1).
    """
    r = 1.0 - hp.norm_rate
    mean = r * mean + hp.norm_rate * x
    d = x - mean
    return mean, jnp.maximum(r * var + hp.norm_rate * d * d, hp.norm_floor)


def td_lambda(
    params: tuple[jax.Array, ...],
    elig: tuple[jax.Array, ...],
    nu: tuple[jax.Array, ...],
    corr: jax.Array,
    grads: tuple[jax.Array, ...],
    delta: jax.Array,
    hp: HParams,
    rmsprop: bool,
) -> tuple[tuple[jax.Array, ...], tuple[jax.Array, ...], tuple[jax.Array, ...], jax.Array]:
    """One TD(lambda) step over parallel tuples of arrays (Sutton and Barto, eq. 12.5-12.7).

    Applies ``delta_{t-1}`` with the eligibilities of step t-1, then decays them by
    ``gamma lambda`` and adds ``grads`` (``grad v_t``). Returns ``(params, elig, nu, corr)``.
    """
    corr = next_corr(corr, hp)
    updated = [
        td_update(p, e, n, corr, delta, hp, rmsprop)
        for p, e, n in zip(params, elig, nu, strict=True)
    ]
    decay = hp.gamma * hp.lambda_
    new_elig = tuple(decay * e + g for e, g in zip(elig, grads, strict=True))
    return tuple(u[0] for u in updated), new_elig, tuple(u[1] for u in updated), corr
