"""Online recurrent learners in JAX: ``make_learner(name, n_inputs, ...)`` builds one by name.

No learner imports Ray, Optuna or MLflow; see ``learners.api`` for the interface.
"""

from __future__ import annotations

from learners.api import DEFAULTS, STAGE_FOREVER, HParams, Learner, make_hparams
from learners.dense import rtrl, snap1
from learners.linear import linear
from learners.staged import columnar, constructive, hybrid, staged
from learners.tbptt import tbptt

LEARNERS: dict[str, str] = {
    "linear": "linear TD(lambda) on the observation (memoryless baseline)",
    "columnar": "n_features independent LSTM columns, exact RTRL (one stage)",
    "constructive": "one LSTM column per stage, earlier stages frozen, exact RTRL",
    "hybrid": "CCN: stages of per_stage columns, earlier stages frozen, exact RTRL",
    "snap1": "dense LSTM of n_features units, SnAp-1 traces (own rows, own Jacobian block)",
    "rtrl": "dense LSTM of n_features units, exact RTRL (O(n^2 params) per step; small nets)",
    "tbptt": "dense LSTM of n_features units, T-BPTT with truncation k every step",
}


# The paper's sizes (12 inputs): columnar 7, constructive 10:1, CCN 20:4, T-BPTT's 5:8 pair.
DEFAULT_SIZES: dict[str, dict[str, int]] = {
    "linear": {},
    "columnar": {"n_features": 7},
    "constructive": {"n_features": 10},
    "hybrid": {"n_features": 20, "per_stage": 4},
    "snap1": {"n_features": 8},
    "rtrl": {"n_features": 4},
    "tbptt": {"n_features": 8, "truncation": 5},
}


def make_learner(
    name: str,
    n_inputs: int,
    *,
    n_features: int | None = None,
    per_stage: int | None = None,
    truncation: int | None = None,
    rmsprop: bool = True,
    n_classes: int = 0,
) -> Learner:
    """Build a learner by name. Sizes default to the paper's: columnar 7, constructive 10,
    hybrid 20 features in stages of 4; SnAp-1 8 and RTRL 4 hidden units; T-BPTT 8 units with
    truncation 5 (the paper's 5:8 pair). ``n_classes > 0`` makes it a classifier
    (``learners.readout``)."""
    if name not in LEARNERS:
        raise ValueError(f"unknown learner {name!r}; allowed: {', '.join(LEARNERS)}")
    if per_stage is not None and name != "hybrid":
        raise ValueError(f"per_stage={per_stage} applies to the hybrid learner only, not {name}")
    if truncation is not None and name != "tbptt":
        raise ValueError(f"truncation={truncation} applies to the tbptt learner only, not {name}")
    if n_features is not None and name == "linear":
        raise ValueError(f"n_features={n_features} does not apply to the linear learner")
    given = dict(n_features=n_features, per_stage=per_stage, truncation=truncation)
    size = {**DEFAULT_SIZES[name], **{k: v for k, v in given.items() if v is not None}}
    kw = dict(rmsprop=rmsprop, n_classes=n_classes)
    if name == "linear":
        return linear(n_inputs, **kw)
    if name == "snap1":
        return snap1(n_inputs, size["n_features"], **kw)
    if name == "tbptt":
        return tbptt(n_inputs, size["n_features"], size["truncation"], **kw)
    if name == "rtrl":
        return rtrl(n_inputs, size["n_features"], **kw)
    if name == "columnar":
        return columnar(n_inputs, size["n_features"], **kw)
    if name == "constructive":
        return constructive(n_inputs, size["n_features"], **kw)
    return hybrid(n_inputs, size["n_features"], size["per_stage"], **kw)


# Each family's defaults over ``learners.api.DEFAULTS``: what ``study.run --learner X`` uses
# and what every study tries first. Chosen by measurement (README, "Defaults that learn";
# ``python -m study.defaults`` reproduces the table).
FAMILY_DEFAULTS: dict[str, dict[str, float]] = {
    "linear": dict(alpha=3e-4, lambda_=0.9),
    "columnar": dict(alpha=1e-3, lambda_=0.99, init_scale=0.5),
    "constructive": dict(alpha=1e-3, lambda_=0.99, init_scale=0.2),
    "hybrid": dict(alpha=1e-3, lambda_=0.99, init_scale=0.5),
    "snap1": dict(alpha=1e-3, lambda_=0.99, init_scale=1.0),
    "rtrl": dict(alpha=1e-3, lambda_=0.99, init_scale=1.0),
    "tbptt": dict(alpha=3e-4, lambda_=0.99, init_scale=2.0),
}


def family_defaults(name: str) -> dict[str, float]:
    """The hyperparameters family ``name`` runs with unless told otherwise (every field of
    ``HParams`` but ``gamma``, which is the task's, and ``steps_per_stage``)."""
    if name not in LEARNERS:
        raise ValueError(f"unknown learner {name!r}; allowed: {', '.join(LEARNERS)}")
    out = {k: v for k, v in DEFAULTS.items() if k not in ("gamma", "steps_per_stage")}
    return {**out, **FAMILY_DEFAULTS[name]}


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


def num_stages(learner: Learner) -> int:
    """How many stages the learner's network has (1 for learners without stages)."""
    s = learner.settings
    if "per_stage" not in s:
        return 1
    return s["n_features"] // s["per_stage"]


__all__ = [
    "DEFAULTS",
    "DEFAULT_SIZES",
    "FAMILY_DEFAULTS",
    "LEARNERS",
    "STAGE_FOREVER",
    "HParams",
    "Learner",
    "columnar",
    "constructive",
    "family_defaults",
    "hybrid",
    "linear",
    "make_hparams",
    "make_learner",
    "num_stages",
    "rtrl",
    "snap1",
    "stage_steps",
    "staged",
    "tbptt",
]
