"""The classification run loop (sequential MNIST), the counterpart of ``study.run``'s
prediction loop.

``make_classify_runner(learner, env, block_size)`` returns pure ``init(key, hparams, params)``
and ``advance(carry, hparams, params, n_blocks)`` for one stream, built on ``lax.scan``; callers
``vmap`` them over seeds (and hyperparameters). Each step shows the learner one row of the
current image; the last row carries the label, at which the learner predicts (counted in the
online accuracy, before it learns) and takes its gradient step. Per block of ``block_size``
steps a run returns the images finished, how many were misclassified, their summed
cross-entropy, and whether any logit was NaN or infinite.

``make_evaluate(learner, env)`` scores a learner state on the held-out images without learning:
with ``env.reset`` each image from a reset state (all images side by side, in batches), else
the images one after another with the state carried, as in training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from learners import HParams, Learner
from study.tasks.seq_mnist import SeqMnist, SeqMnistParams

EVAL_BATCH = 500  # held-out images evaluated side by side


class ClassifyCarry(NamedTuple):
    key: jax.Array  # uint32 [2], the stream's key
    t: jax.Array  # int32 [] steps taken
    image: jax.Array  # int32 [] index of the training image being shown
    learner_state: Any


class ClassifyStats(NamedTuple):
    errors: jax.Array  # [n_blocks] images misclassified (online, before learning from them)
    ce_sum: jax.Array  # [n_blocks] their summed cross-entropy
    count: jax.Array  # [n_blocks] images finished in the block
    nonfinite: jax.Array  # [n_blocks] bool, any logit NaN or infinite


class ClassifyRunner(NamedTuple):
    init: Callable[[jax.Array, HParams, SeqMnistParams], ClassifyCarry]
    advance: Callable[..., tuple[ClassifyCarry, ClassifyStats]]
    block_size: int


def _where(flag: jax.Array, a: Any, b: Any) -> Any:
    return jax.tree.map(lambda x, y: jnp.where(flag, x, y), a, b)


def make_classify_runner(learner: Learner, env: SeqMnist, block_size: int) -> ClassifyRunner:
    if block_size < 1:
        raise ValueError(f"block_size={block_size} must be >= 1")
    if not learner.settings.get("n_classes"):
        raise ValueError(f"learner {learner.name} was built without n_classes; classification "
                         f"needs n_classes={env.n_classes}")  # fmt: skip
    R = env.rows

    def init(key: jax.Array, hp: HParams, tp: SeqMnistParams) -> ClassifyCarry:
        k_learner, k_run = jax.random.split(key)
        n_train = tp.train_y.shape[0]
        return ClassifyCarry(
            k_run, jnp.zeros((), jnp.int32), env.image(k_run, 0, n_train),
            learner.init(k_learner, hp),
        )  # fmt: skip

    def one_step(carry: ClassifyCarry, hp: HParams, tp: SeqMnistParams):
        row = carry.t % R
        n_train = tp.train_y.shape[0]
        image = jnp.where(row == 0, env.image(carry.key, carry.t // R, n_train), carry.image)
        state = carry.learner_state
        if env.reset:
            state = _where(row == 0, learner.reset(state), state)
        last = row == R - 1
        label = tp.train_y[image]
        state, out = learner.step(state, tp.train_x[image, row], jnp.where(last, label, -1), hp)
        stats = (
            jnp.logical_and(last, ~out["correct"]),
            jnp.where(last, out["loss"], 0.0),
            last,
            ~jnp.all(jnp.isfinite(out["logits"])),
        )
        return ClassifyCarry(carry.key, carry.t + 1, image, state), stats

    def block(carry: ClassifyCarry, hp: HParams, tp: SeqMnistParams):
        carry, (err, ce, done, bad) = jax.lax.scan(
            lambda c, _: one_step(c, hp, tp), carry, None, length=block_size
        )
        return carry, (err.sum(), ce.sum(), done.sum(), bad.any())

    def advance(carry: ClassifyCarry, hp: HParams, tp: SeqMnistParams, n_blocks: int):
        carry, stats = jax.lax.scan(lambda c, _: block(c, hp, tp), carry, None, length=n_blocks)
        return carry, ClassifyStats(*stats)

    return ClassifyRunner(init, advance, block_size)


def make_evaluate(
    learner: Learner, env: SeqMnist
) -> Callable[[Any, HParams, SeqMnistParams], tuple[jax.Array, jax.Array]]:
    """``evaluate(learner_state, hparams, params) -> (accuracy, mean cross-entropy)`` on the
    held-out images; nothing learns (every row is unlabelled for the learner)."""

    def show(state: Any, image: jax.Array, hp: HParams) -> tuple[Any, jax.Array]:
        def row(s, x):
            s, out = learner.step(s, x, jnp.asarray(-1, jnp.int32), hp)
            return s, out["logits"]

        state, logits = jax.lax.scan(row, state, image)
        return state, logits[-1]

    def score(logits: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
        ce = jax.nn.logsumexp(logits, axis=-1) - jnp.take_along_axis(logits, y[:, None], -1)[:, 0]
        return jnp.mean(jnp.argmax(logits, -1) == y), jnp.mean(ce)

    def evaluate(state: Any, hp: HParams, tp: SeqMnistParams) -> tuple[jax.Array, jax.Array]:
        if env.reset:
            fresh = learner.reset(state)
            logits = jax.lax.map(
                lambda img: show(fresh, img, hp)[1], tp.test_x, batch_size=EVAL_BATCH
            )
        else:
            _, logits = jax.lax.scan(lambda s, img: show(s, img, hp), state, tp.test_x)
        return score(logits, tp.test_y)

    return evaluate
