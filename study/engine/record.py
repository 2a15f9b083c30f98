"""What a task kind reads of one configuration (:class:`Record`) and the one summary it gives
of it (:class:`Summary`): plain values, no JAX."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Record:
    """What a kind reads of one configuration (a lone trial, or one member of a pack): its
    per-block statistics (the kind's ``stats_type``, [seeds, blocks] each), what the kind
    recorded on schedule (``scheduled``: arrays whose first axis is the seeds, or scalars),
    its seeds, and the block and window lengths and steps done."""

    stats: Any
    seeds: tuple[int, ...]
    block: int
    window: int
    steps_done: int
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def window_blocks(self) -> int:
        """Blocks in the windowed measure, never more than the run so far."""
        return max(1, min(self.window, self.steps_done) // self.block)

    @property
    def curve_window_blocks(self) -> int:
        """Blocks in the window of each point of the learning curve."""
        return max(1, self.window // self.block)


@dataclass(frozen=True)
class Summary:
    """A kind's one summary of a configuration's record: its per-seed values by metric name
    (``columns``, in the kind's order, each [seeds]), which seeds diverged, and the verdict:
    the mean and 95% half-width of the ``verdict_key`` values, whether the interval clears
    what no learning scores. ``study.run``, ``study.defaults``, the trainable and MLflow's
    descriptions format this (in words: ``study.present.words``); none of them computes a
    measure of its own."""

    seeds: tuple[int, ...]
    columns: dict[str, np.ndarray]
    diverged: np.ndarray
    mean: float
    half: float
    learned: bool
