"""The learner interface shared by every learner, and the hyperparameter pytree.

A learner is built by a factory from static settings (anything that sets a shape) and is a
:class:`Learner` of two pure functions::

    state = learner.init(key, hparams)
    state, out = learner.step(state, x_t, c_t, hparams)   # out["v"] is v_t, the prediction

``step`` consumes observation ``x_t`` and the cumulant ``c_t`` that arrived with it, predicts
``v_t`` and learns from the TD error of the previous prediction,
``delta_{t-1} = c_t + gamma * v_t - v_{t-1}`` (Sutton and Barto, ch. 12). Both functions are
written for one stream; callers ``vmap`` them over seeds and over hyperparameters.

A learner built with ``n_classes = C > 0`` classifies instead (``learners.readout``): its
``step(state, x_t, y_t, hparams)`` takes an int32 label ``y_t`` (-1 at steps without one),
returns ``out["logits"]`` [C], ``out["loss"]`` and ``out["correct"]``, and takes one
cross-entropy gradient step at each labelled step; ``learner.reset(state)`` starts a new
sequence (zero recurrent state and traces, weights kept).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

STAGE_FOREVER = 2**31 - 1  # steps_per_stage of a learner whose stage never ends


class HParams(NamedTuple):
    """Dynamic hyperparameters: arrays, so one compiled program sweeps them with ``vmap``.

    Every learner reads the fields it uses and ignores the rest.
    """

    alpha: jax.Array  # step size
    lambda_: jax.Array  # trace-decay parameter of TD(lambda), in [0, 1]
    gamma: jax.Array  # discount, in [0, 1); the run loop sets it from the task
    beta2: jax.Array  # decay of the RMSProp second-moment estimate (if rmsprop is on)
    eps: jax.Array  # RMSProp's denominator floor
    # Running normalisation of inputs and features (``learners.td.update_stats``): the
    # reference's normalization_rate r is ``1 - norm_rate`` and its std_cap (a floor on the
    # variance) is ``norm_floor``. norm_rate = 0 turns it off.
    norm_rate: jax.Array  # in [0, 1]
    norm_floor: jax.Array  # floor on the running variance, in (0, 1]
    # Columns start U(-init_scale, init_scale); a dense LSTM's layer U(-s, s) with
    # s = init_scale / sqrt(fan-in) (``learners.dense``).
    init_scale: jax.Array
    steps_per_stage: jax.Array  # int32, steps each constructive stage learns for
    # The update rule (staged families; ``UPDATE_RULES``). RMSProp's second moments start,
    # and restart with each new stage, at ``nu_init``: 0 with a bias correction of the zero
    # start (ours), or a positive value and no correction (the reference code starts at 1).
    nu_init: jax.Array
    # The readout's step size is alpha / n^readout_per_feature, n the features it reads: 0
    # (ours) gives the readout alpha, 1 divides it by n as the reference code does.
    readout_per_feature: jax.Array


# Measured on trace_patterning (README, "Defaults"): without normalisation and with weights
# starting U(-0.5, 0.5) the columnar learner is ahead of linear TD within 500k steps; with the
# reference's running normalisation (rate 1e-4, floor 1e-2) and U(-0.1, 0.1) it was not at 1M.
DEFAULTS: dict[str, float] = dict(
    alpha=1e-3,
    lambda_=0.9,
    gamma=0.9,
    beta2=0.9999,
    eps=1e-8,
    norm_rate=0.0,
    norm_floor=0.01,
    init_scale=0.5,
    steps_per_stage=STAGE_FOREVER,
    nu_init=0.0,
    readout_per_feature=0.0,
)

# ``update_rule`` (a configuration's key, ``study.run --update-rule``): "ours" is DEFAULTS'
# values of these; "reference" is the rule of the authors' C++ for the family
# (``learners.families.Family.reference_rule``).
UPDATE_RULES = ("ours", "reference")
RULE_KEYS = ("nu_init", "readout_per_feature")


def make_hparams(**values: Any) -> HParams:
    """An :class:`HParams` from ``DEFAULTS`` updated by ``values`` (scalars or arrays).

    Floats take JAX's default float dtype (float64 when x64 is on).
    """
    unknown = set(values) - set(DEFAULTS)
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {sorted(unknown)}; allowed: {', '.join(DEFAULTS)}"
        )
    merged = {**DEFAULTS, **{k: v for k, v in values.items() if v is not None}}
    check_hparams(merged)
    fdtype = jnp.result_type(float)
    return HParams(
        **{
            k: jnp.asarray(v, jnp.int32 if k == "steps_per_stage" else fdtype)
            for k, v in merged.items()
        }
    )


# The allowed values of every hyperparameter, declared once: (low, high, low open, high open);
# None is unbounded. ``check_hparams`` and the search spaces' ranges both read it.
BOUNDS: dict[str, tuple[float, float | None, bool, bool]] = {
    "alpha": (0.0, None, False, False),
    "lambda_": (0.0, 1.0, False, False),
    "gamma": (0.0, 1.0, False, True),
    "beta2": (0.0, 1.0, False, True),
    "eps": (0.0, None, False, False),
    "norm_rate": (0.0, 1.0, False, False),
    "norm_floor": (0.0, 1.0, True, False),
    "init_scale": (0.0, None, False, False),
    "steps_per_stage": (1, None, False, False),
    "nu_init": (0.0, None, False, False),
    "readout_per_feature": (0.0, 1.0, False, False),
}


def bounds_rule(name: str) -> str:
    """``BOUNDS[name]`` in words, e.g. ``0 < norm_floor <= 1`` or ``alpha >= 0``."""
    lo, hi, lo_open, hi_open = BOUNDS[name]
    left = f"{lo:g} {'<' if lo_open else '<='} "
    if hi is None:
        return f"{name} {'>' if lo_open else '>='} {lo:g}"
    return f"{left}{name} {'<' if hi_open else '<='} {hi:g}"


def check_hparams(values: dict[str, Any]) -> None:
    """Raise a one-line ValueError naming the first value outside its ``BOUNDS`` (NaN and
    infinities included)."""
    import numpy as np

    for name, (lo, hi, lo_open, hi_open) in BOUNDS.items():
        v = np.asarray(values[name], np.float64)
        bad = (
            not np.all(np.isfinite(v))
            or np.any(v <= lo if lo_open else v < lo)
            or (hi is not None and np.any(v >= hi if hi_open else v > hi))
        )
        if bad:
            raise ValueError(f"{name}={values[name]} is not allowed; need {bounds_rule(name)}")


def check_sizes(n_inputs: int, n_features: int | None, n_classes: int, unit: str = "") -> None:
    """The one-line errors every learner factory raises for impossible sizes: no input, no
    unit (``unit`` names what a network needs one of; ``n_features=None``: no size to check),
    a negative number of classes."""
    if n_classes < 0:
        raise ValueError(f"n_classes={n_classes} must be >= 0 (0: prediction)")
    if n_inputs < 1:
        raise ValueError(f"n_inputs={n_inputs} must be >= 1")
    if n_features is not None and n_features < 1:
        raise ValueError(f"n_features={n_features} must be >= 1 ({unit} needs a unit)")


class Learner(NamedTuple):
    name: str
    init: Callable[[jax.Array, HParams], Any]
    step: Callable[[Any, jax.Array, jax.Array, HParams], tuple[Any, dict[str, jax.Array]]]
    n_params: int  # number of learnable parameters (readout included)
    settings: dict[str, Any]  # the static settings it was built with
    # The recurrent state (and its traces) back to the start of a sequence, weights kept:
    # ``reset(state) -> state``. Classification tasks call it between images.
    reset: Callable[[Any], Any] | None = None


def reset_recurrent(state: Any) -> Any:
    """``state`` with its recurrent state and traces (``h``, ``c``, ``trace_h``, ``trace_c``)
    zeroed and everything else kept: the start of a new sequence."""
    zero = jnp.zeros_like
    return state._replace(
        h=zero(state.h), c=zero(state.c), trace_h=zero(state.trace_h), trace_c=zero(state.trace_c)
    )


def stage_steps(steps: int, n_stages: int, last_stage_at: float | None = None) -> int:
    """``steps_per_stage`` that divides a run of ``steps`` into ``n_stages`` stages: the last
    starts at ``last_stage_at`` x ``steps`` and the others share the time before it equally;
    by default all stages are equal (``steps // n_stages``). One stage never ends."""
    if n_stages <= 1:
        return STAGE_FOREVER
    if last_stage_at is None:
        return max(1, steps // n_stages)
    if not 0.0 < last_stage_at < 1.0:
        raise ValueError(f"last_stage_at={last_stage_at} is not allowed; need 0 < value < 1")
    return max(1, int(last_stage_at * steps) // (n_stages - 1))
