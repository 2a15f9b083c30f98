"""Where a trial's time goes (:class:`Clock`)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import jax


class Clock:
    """Where a trial's time goes, in seconds, summed over the trial (since the trainable
    started in this process): ``wall``; ``compute`` (the compiled chunks, waiting for their
    results included); ``compile`` (JAX tracing, lowering and XLA compilation, from JAX's
    own monitoring events, wherever it happened); ``logging`` (every MLflow call);
    ``checkpoint`` (writing the checkpoint and ``tune.report``, which waits for the driver).
    ``loop = compute - compile inside compute`` is the time the compiled run loop (task,
    learner and metric) computed."""

    PARTS = ("compute", "compile", "logging", "checkpoint")
    _compile_total = [0.0]  # this process's compile seconds, from JAX's events
    _listening = [False]

    def __init__(self) -> None:
        if not Clock._listening[0]:
            jax.monitoring.register_event_duration_secs_listener(Clock._on_event)
            Clock._listening[0] = True
        self.t0 = time.perf_counter()
        self.compile0 = Clock._compile_total[0]
        self.totals = dict.fromkeys(self.PARTS, 0.0)
        self.compile_in_compute = 0.0

    @staticmethod
    def _on_event(event: str, duration: float, **_: Any) -> None:
        if event.startswith("/jax/core/compile/"):
            Clock._compile_total[0] += duration

    @contextlib.contextmanager
    def part(self, name: str):
        """Count the time inside the ``with`` block as ``name`` (also when it raises, as
        ``tune.report`` does when Tune stops the trial)."""
        t, compiled = time.perf_counter(), Clock._compile_total[0]
        try:
            yield
        finally:
            self.totals[name] += time.perf_counter() - t
            if name == "compute":
                self.compile_in_compute += Clock._compile_total[0] - compiled

    def metrics(self) -> dict[str, float]:
        out = {f"time_{k}_s": v for k, v in self.totals.items() if k != "compile"}
        out["time_compile_s"] = Clock._compile_total[0] - self.compile0
        out["time_loop_s"] = self.totals["compute"] - self.compile_in_compute
        out["time_wall_s"] = time.perf_counter() - self.t0
        return out
