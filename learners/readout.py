"""The classification readout shared by every learner (sequential MNIST).

A learner built with ``n_classes = C > 0`` reads its features ``h`` [N] (the normalised
column outputs, the LSTM's hidden units, or the observation for the linear learner) through
``logits = W h + b`` (``W`` [C, N], ``b`` [C]) and learns from the softmax cross-entropy

    L = logsumexp(logits) - logits[y],    dL/dlogits = softmax(logits) - onehot(y),

at the steps that carry a label (``y >= 0``; ``y = -1`` marks a step without one). The gradient
reaching the features is the single vector ``g = W^T dL/dlogits`` [N], so each recurrent
parameter's gradient is ``g`` contracted with the same ``dh/dtheta`` traces the prediction
learners keep: the traces do not multiply by the number of classes.

The update is gradient descent with the step size ``alpha``, optionally divided by RMSProp's
bias-corrected second-moment scale as in ``learners.td`` (``td_update`` with ``delta = -1``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from learners.api import HParams
from learners.td import next_corr, td_update


def cross_entropy(logits: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(loss, dloss/dlogits)`` of softmax cross-entropy at label ``y`` (int32 [])."""
    logz = jax.nn.logsumexp(logits)
    onehot = jax.nn.one_hot(y, logits.shape[-1], dtype=logits.dtype)
    loss = logz - jnp.dot(onehot, logits)
    return loss, jnp.exp(logits - logz) - onehot


def descend(
    params: tuple[jax.Array, ...],
    grads: tuple[jax.Array, ...],
    nu: tuple[jax.Array, ...],
    corr: jax.Array,
    on: jax.Array,
    hp: HParams,
    rmsprop: bool,
) -> tuple[tuple[jax.Array, ...], tuple[jax.Array, ...], jax.Array]:
    """One gradient-descent step on parallel tuples, taken only where ``on`` (bool []).

    Returns ``(params, nu, corr)``; with ``on`` false all three come back unchanged.
    """
    new_corr = next_corr(corr, hp)
    out_p, out_nu = [], []
    for p, g, n in zip(params, grads, nu, strict=True):
        p_new, n_new = td_update(p, g, n, new_corr, -1.0, hp, rmsprop)
        out_p.append(jnp.where(on, p_new, p))
        out_nu.append(jnp.where(on, n_new, n))
    return tuple(out_p), tuple(out_nu), jnp.where(on, new_corr, corr)


def readout_out(logits: jax.Array, loss: jax.Array, y: jax.Array) -> dict[str, jax.Array]:
    """What a classification step returns besides its state."""
    return {"logits": logits, "loss": loss, "correct": jnp.argmax(logits) == y}


__all__ = ["cross_entropy", "descend", "readout_out"]
