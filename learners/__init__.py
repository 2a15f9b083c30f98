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
    kw = dict(rmsprop=rmsprop, n_classes=n_classes)
    if name == "linear":
        return linear(n_inputs, **kw)
    if name == "snap1":
        return snap1(n_inputs, 8 if n_features is None else n_features, **kw)
    if name == "tbptt":
        return tbptt(
            n_inputs,
            8 if n_features is None else n_features,
            5 if truncation is None else truncation,
            **kw,
        )
    if name == "rtrl":
        return rtrl(n_inputs, 4 if n_features is None else n_features, **kw)
    if name == "columnar":
        return columnar(n_inputs, 7 if n_features is None else n_features, **kw)
    if name == "constructive":
        return constructive(n_inputs, 10 if n_features is None else n_features, **kw)
    return hybrid(
        n_inputs,
        20 if n_features is None else n_features,
        4 if per_stage is None else per_stage,
        **kw,
    )


def num_stages(learner: Learner) -> int:
    """How many stages the learner's network has (1 for learners without stages)."""
    s = learner.settings
    if "per_stage" not in s:
        return 1
    return s["n_features"] // s["per_stage"]


__all__ = [
    "DEFAULTS",
    "LEARNERS",
    "STAGE_FOREVER",
    "HParams",
    "Learner",
    "columnar",
    "constructive",
    "hybrid",
    "linear",
    "make_hparams",
    "make_learner",
    "num_stages",
    "rtrl",
    "snap1",
    "staged",
    "tbptt",
]
