"""One compilation per trial shape, read from JAX's own compilation log: not one per
hyperparameter value, seed, stage length or stage."""

from __future__ import annotations

import logging

import jax
import pytest

from study.engine.trial import TrialRun


class CompileLog(logging.Handler):
    """Collects the names of the programs JAX compiles while it is attached."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.compiled: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Compiling jit("):
            self.compiled.append(message[len("Compiling jit(") :].split(")", 1)[0])


def compiled_while(fn) -> list[str]:
    log, logger = CompileLog(), logging.getLogger("jax")
    level = logger.level
    logger.addHandler(log)
    logger.setLevel(logging.DEBUG)
    try:
        with jax.log_compiles(True):
            fn()
    finally:
        logger.removeHandler(log)
        logger.setLevel(level)
    return log.compiled


def finish(config):
    run = TrialRun(config)
    while not run.finished:
        run.advance()


# A shape no other test compiles (hybrid 6:3 on trace_conditioning_isi20), so that the first
# run below really compiles whatever the order of the tests; the stages change mid-chunk.
PREDICTION = dict(
    learner="hybrid", n_features=6, per_stage=3, steps_per_stage=1300, alpha=3e-3,
    task="trace_conditioning_isi20", seeds=[0, 1], steps=4000, chunk_steps=1000, block=500,
    window=1000,
)  # fmt: skip
CLASSIFICATION = dict(
    learner="columnar", n_features=5, alpha=3e-3, task="seq_mnist", seeds=[0, 1], steps=5600,
    chunk_steps=2800, block=1400, window=2800,
)  # fmt: skip


@pytest.mark.parametrize("base", [PREDICTION, CLASSIFICATION], ids=["prediction", "seq_mnist"])
def test_trials_of_one_shape_compile_once(base):
    first = compiled_while(lambda: finish(base))
    # init and advance of the trial, once each (four chunks, two stage changes); evaluation
    # too for classification.
    assert first.count("advance") == 1 and first.count("init") == 1, first
    if base["task"] == "seq_mnist":
        assert first.count("evaluate") == 1, first
    other = dict(base, alpha=1e-2, lambda_=0.3, init_scale=0.2, seeds=[7, 9])
    if "steps_per_stage" in base:
        other["steps_per_stage"] = 700
    again = compiled_while(lambda: finish(other))
    assert [n for n in again if n in ("advance", "init", "evaluate")] == [], again
    # A new shape does compile: the log is really being read.
    assert "advance" in compiled_while(lambda: finish(dict(base, seeds=[0, 1, 2])))
