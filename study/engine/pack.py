"""Packs: several configurations of one shape run as one trial, one compiled program.

A pack is a Ray Tune trial whose configuration holds a ``pack`` key: a list of K member
configurations that share their static shape (learner, sizes, truncation, normalisation
switch) and differ in their hyperparameters. The trial runs K x S streams (S seeds each) as
one vmapped program (``study.engine.trial.TrialRun``), so a device that is wasted on one
configuration's few seeds is filled by a whole study's. Everything else still sees one
configuration at a time:

- the search: each member is its own Optuna trial, asked and told on its own
  (:class:`PackSearch`; the shape is sampled once per pack and fixed for its other members
  by enqueued partial trials);
- the record: each member has its own MLflow child run, tagged with its pack
  (``study.orchestration.trainable``), with its own curve, final metrics and status;
- divergence: a member that diverges is closed as diverged at its step while the others run on.

The pack reports to Ray Tune its best member's metrics (so ASHA keeps a pack while its best
member is competitive at a rung, and stops it as a whole otherwise), with each member's
objective beside them as ``pack{i}_{metric}``.

``--pack auto`` (:func:`auto_size`) packs enough configurations to fill the device with
streams, but never so many that the study's trials no longer keep every worker busy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from learners.registry import config_to_args

# Streams a pack aims at: per CPU core (the compiled CPU loop's rate per stream stops rising
# near 64 streams; README, Performance), and on a GPU (where a step's fixed cost is paid
# once for thousands of streams).
STREAMS_PER_CORE = 64
STREAMS_PER_GPU = 4096
# Trial configuration keys a pack's members share (the trial's own), not searched ones.
PACK_KEYS = ("pack", "pack_trials", "fixed")


def members_of(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The configurations a trial runs: each member of its pack over the trial's own keys
    (task, seeds, steps, ...), or the trial's configuration alone."""
    pack = config.get("pack")
    if not pack:
        return [config]
    base = {k: v for k, v in config.items() if k not in PACK_KEYS}
    return [{**base, **member} for member in pack]


def shape_key(config: dict[str, Any]) -> tuple:
    """What a pack's members must share: the learner, its static settings and whether it
    normalises its steps (RMSProp)."""
    name, static, _ = config_to_args(config)
    return name, tuple(sorted(static.items())), bool(config.get("rmsprop", True))


def shape_of(members: list[dict[str, Any]]):
    """``(learner name, static settings, [hyperparameter kwargs per member], rmsprop)`` of a
    pack; a one-line ValueError when the members do not share one shape."""
    shapes = [shape_key(m) for m in members]
    for i, other in enumerate(shapes[1:], 1):
        if other != shapes[0]:
            raise ValueError(f"a pack's configurations must share their shape: configuration "
                             f"0 is {_shape_text(shapes[0])}, configuration {i} is "
                             f"{_shape_text(other)}")  # fmt: skip
    name, static, rmsprop = shapes[0]
    return name, dict(static), [config_to_args(m)[2] for m in members], rmsprop


def _shape_text(shape: tuple) -> str:
    name, static, rmsprop = shape
    settings = " ".join(f"{k}={v}" for k, v in static)
    return f"{name} {settings}{'' if rmsprop else ' rmsprop=false'}".strip()


def stream_hparams(hps: list[Any], seeds: int) -> Any:
    """One row of hyperparameters per stream: member i's repeated for its ``seeds`` streams
    (member-major, as the trial lays out its streams)."""
    import jax

    def rows(*leaves):
        return np.repeat(np.stack([np.asarray(x) for x in leaves]), seeds, axis=0)

    return jax.tree.map(rows, *hps)


def pack_metrics(kind: Any, each: list[dict[str, Any]]) -> dict[str, Any]:
    """A pack's report: its best member's metrics (among those that have not diverged, while
    any has not), with ``pack{i}_{metric}``, ``pack{i}_diverged`` for every member,
    ``pack_size``, ``pack_best`` (the best member's index) and ``config_steps_per_s`` (steps
    per second of every configuration together, per seed). The pack has diverged when every
    member has."""
    live = [i for i, m in enumerate(each) if not m["diverged"]] or list(range(len(each)))
    sign = -1.0 if kind.higher_better else 1.0
    best = min(live, key=lambda i: sign * _finite_or(each[i][kind.metric], math.inf))
    out = dict(each[best])
    out.update(pack_size=len(each), pack_best=best,
               config_steps_per_s=len(each) * float(out["steps_per_s"]))  # fmt: skip
    for i, m in enumerate(each):
        out[f"pack{i}_{kind.metric}"] = m[kind.metric]
        out[f"pack{i}_diverged"] = m["diverged"]
    everyone = all(m["diverged"] for m in each)
    out["diverged"] = everyone
    out["diverged_at_step"] = max(m["diverged_at_step"] for m in each) if everyone else -1
    return out


def _finite_or(value: float, default: float) -> float:
    return value if math.isfinite(value) else default


def member_results(result: dict[str, Any], metric: str) -> list[float | None]:
    """Each member's objective in a pack's report (None where it has none)."""
    k = int(result.get("pack_size", 0))
    return [result.get(f"pack{i}_{metric}") for i in range(k)]


# -- how many configurations a pack holds ----------------------------------------------------


def auto_size(trials: int, seeds: int, concurrency: int, cpus: float, gpus: float) -> int:
    """``--pack auto``: enough configurations that a trial runs about ``STREAMS_PER_CORE``
    streams per CPU it holds (``STREAMS_PER_GPU`` when it holds a GPU), but no more than
    keeps every one of ``concurrency`` workers busy with the study's ``trials``."""
    target = STREAMS_PER_GPU if gpus > 0 else STREAMS_PER_CORE * max(1, round(cpus))
    return max(1, min(target // max(1, seeds), math.ceil(trials / max(1, concurrency))))


def group(configs: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """Configurations (an evaluation's, a preset's grid) in packs of at most ``size`` that
    share their shape, in the order given within each shape."""
    by_shape: dict[tuple, list[dict[str, Any]]] = {}
    for c in configs:
        by_shape.setdefault(shape_key(c), []).append(c)
    packs = []
    for members in by_shape.values():
        n = math.ceil(len(members) / size)  # packs of equal size, not K, K, ..., remainder
        packs += [members[i::n] for i in range(n)]
    return packs
