"""The learner families, one record each: how to build one, its sizes, its defaults, its cost.

Every part of the platform that needs to know a family reads it here (``make_learner``, the
ledger's ``cost`` and ``size_for_budget``, ``study.bench``'s sizes, the reports' order), so a
new family is one module of its own plus one ``Family`` in ``FAMILIES`` (and its search space
in ``search_spaces``, keyed by the same name). Model: ``study.tasks.PRESETS``.

Sizes: ``n_features`` is every family's size (columns or hidden units); ``per_stage`` (columns
per stage), ``truncation`` (T-BPTT's k) and ``layers`` (the online LRU's stack) are the other
shape settings, each owned by the families that list it in ``sizes``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from learners import ledger
from learners.api import Learner
from learners.dense import rtrl, snap1
from learners.linear import linear
from learners.lru import lru
from learners.rtu import rtu, rtu_linear
from learners.staged import columnar, constructive, hybrid
from learners.tbptt import tbptt
from learners.uoro import uoro


@dataclass(frozen=True)
class Family:
    """One learner family.

    ``build(n_inputs, size, rmsprop, n_classes)`` makes the learner from its full ``size``
    (``sizes`` with the caller's values over them). ``cost(m, size, rmsprop)`` is its ledger
    entry, with the number of readout features and recurrent eligibilities that a classifier
    readout replaces (``ledger.classifier_cost``). ``grow(n, size)`` is the size with ``n``
    units on its budget axis (``None``: the family has no size, as linear). ``bench`` lists the
    sizes ``study.bench`` times, smallest first. ``reference_rule``: the values of
    ``learners.api.RULE_KEYS`` that give the authors' C++ update for this family (the keys it
    reads; ``None``: it reads none, and has only ours).
    """

    name: str
    about: str
    build: Callable[..., Learner]
    sizes: dict[str, int]
    defaults: dict[str, float]
    cost: Callable[[int, dict[str, int], bool], tuple[ledger.Cost, int, int]]
    grow: Callable[[int, dict[str, int]], dict[str, int]] | None = None
    bench: tuple[dict[str, int], ...] = field(default_factory=tuple)
    reference_rule: dict[str, float] | None = None


def _staged_cost(m: int, size: dict[str, int], rms: bool) -> tuple[ledger.Cost, int, int]:
    N, P = size["n_features"], size.get("per_stage", size["n_features"])
    return ledger.staged_cost(m, N, P, rms), N, P * 4 * (m + N - P + 2)


def _dense_cost(entry: Callable[..., ledger.Cost]):
    def cost(m: int, size: dict[str, int], rms: bool) -> tuple[ledger.Cost, int, int]:
        H = size["n_features"]
        extra = {"truncation": size["truncation"]} if "truncation" in size else {}
        return entry(m, H, rmsprop=rms, **extra), H, ledger.dense_params(m, H)

    return cost


def _rtu_cost(m: int, size: dict[str, int], rms: bool) -> tuple[ledger.Cost, int, int]:
    H = size["n_features"]
    return ledger.rtu_cost(m, H, rms), 2 * H, H * (2 * (m + 1) + 2)


def _lru_cost(m: int, size: dict[str, int], rms: bool) -> tuple[ledger.Cost, int, int]:
    N = size["n_features"]
    entry = ledger.lru_cost(m, N, rms, size.get("layers", 1))
    return entry, N, entry.params - N - 1


def _units(n: int, size: dict[str, int]) -> dict[str, int]:
    return {**size, "n_features": n}


_TD = dict(alpha=1e-3, lambda_=0.99)
# The authors' C++: IncrementalNetworks::update_parameters and LSTM::update_weights (second
# moments from 1, never corrected; the readout's step size over its features), and
# DenseLSTMRmsProp::update_parameters (moments from 1; the readout's step size alpha).
_CPP_STAGED = dict(nu_init=1.0, readout_per_feature=1.0)
_CPP_TBPTT = dict(nu_init=1.0)

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "columnar", "n_features independent LSTM columns, exact RTRL (one stage)",
            lambda m, s, **kw: columnar(m, s["n_features"], **kw),
            {"n_features": 7}, dict(_TD, init_scale=0.5),
            lambda m, s, rms: _staged_cost(m, {"n_features": s["n_features"]}, rms), _units,
            tuple(dict(n_features=n) for n in (7, 32, 128, 512, 2048, 16384)),
            reference_rule=_CPP_STAGED,
        ),
        Family(
            "constructive", "one LSTM column per stage, earlier stages frozen, exact RTRL",
            lambda m, s, **kw: constructive(m, s["n_features"], **kw),
            {"n_features": 10}, dict(_TD, init_scale=0.2),
            lambda m, s, rms: _staged_cost(m, {"n_features": s["n_features"], "per_stage": 1},
                                           rms),
            _units, tuple(dict(n_features=n) for n in (4, 8, 16, 32)), reference_rule=_CPP_STAGED,
        ),
        Family(
            "hybrid", "CCN: stages of per_stage columns, earlier stages frozen, exact RTRL",
            lambda m, s, **kw: hybrid(m, s["n_features"], s["per_stage"], **kw),
            {"n_features": 20, "per_stage": 4}, dict(_TD, init_scale=0.5), _staged_cost,
            # the budget axis counts stages: n stages of per_stage columns
            lambda n, s: {**s, "n_features": n * s["per_stage"]},
            tuple(dict(n_features=n, per_stage=p)
                  for n, p in ((8, 4), (20, 4), (64, 16), (256, 64))),
            reference_rule=_CPP_STAGED,
        ),
        Family(
            "tbptt", "dense LSTM of n_features units, T-BPTT with truncation k every step",
            lambda m, s, **kw: tbptt(m, s["n_features"], s["truncation"], **kw),
            {"n_features": 8, "truncation": 5}, dict(alpha=3e-4, lambda_=0.99, init_scale=2.0),
            _dense_cost(ledger.tbptt_cost), _units,
            tuple(dict(n_features=8, truncation=k) for k in (5, 15, 30)),
            reference_rule=_CPP_TBPTT,
        ),
        Family(
            "snap1", "dense LSTM of n_features units, SnAp-1 traces (own rows, own Jacobian "
            "block)",
            lambda m, s, **kw: snap1(m, s["n_features"], **kw),
            {"n_features": 8}, dict(_TD, init_scale=1.0), _dense_cost(ledger.snap1_cost),
            _units, tuple(dict(n_features=n) for n in (8, 32, 128)),
        ),
        Family(
            "rtrl", "dense LSTM of n_features units, exact RTRL (O(n^2 params) per step; "
            "small nets)",
            lambda m, s, **kw: rtrl(m, s["n_features"], **kw),
            {"n_features": 4}, dict(_TD, init_scale=1.0), _dense_cost(ledger.rtrl_cost),
            _units, tuple(dict(n_features=n) for n in (2, 4, 8)),
        ),
        Family(
            "uoro", "dense LSTM of n_features units, UORO (unbiased rank-one estimate of the "
            "RTRL Jacobian)",
            lambda m, s, **kw: uoro(m, s["n_features"], **kw),
            {"n_features": 8}, dict(_TD, alpha=1e-4, init_scale=1.0),
            _dense_cost(ledger.uoro_cost),
            _units, tuple(dict(n_features=n) for n in (8, 32, 128)),
        ),
        Family(
            "rtu", "n_features non-linear recurrent trace units (diagonal complex "
            "recurrence), exact RTRL",
            lambda m, s, **kw: rtu(m, s["n_features"], **kw),
            {"n_features": 16}, dict(_TD, alpha=3e-4, init_scale=1.0), _rtu_cost, _units,
            tuple(dict(n_features=n) for n in (16, 64, 256, 1024, 4096)),
        ),
        Family(
            "rtu_linear", "n_features linear recurrent trace units (diagonal complex "
            "recurrence, tanh on the output), exact RTRL",
            lambda m, s, **kw: rtu_linear(m, s["n_features"], **kw),
            {"n_features": 16}, dict(_TD, alpha=3e-4, init_scale=1.0), _rtu_cost, _units,
            tuple(dict(n_features=n) for n in (16, 64, 256, 1024, 4096)),
        ),
        Family(
            "lru", "online LRU: layers of n_features complex units, each with a GLU, exact "
            "RTRL in each layer's recurrence",
            lambda m, s, **kw: lru(m, s["n_features"], layers=s["layers"], **kw),
            {"n_features": 8, "layers": 1}, dict(_TD, alpha=3e-4, init_scale=1.0), _lru_cost,
            _units,
            tuple(dict(n_features=n, layers=1) for n in (8, 32, 128, 512)),
        ),
        Family(
            "linear", "linear TD(lambda) on the observation (memoryless baseline)",
            lambda m, s, **kw: linear(m, **kw),
            {}, dict(alpha=3e-4, lambda_=0.9),
            lambda m, s, rms: (ledger.linear_cost(m, rms), m, 0), None, ({},),
        ),
    )
}  # fmt: skip
# Also the order in which reports and tables list the families.
ORDER: tuple[str, ...] = tuple(FAMILIES)
SHAPE_KEYS = ("n_features", "per_stage", "truncation", "layers")


def update_rule(name: str, rule: str) -> dict[str, float]:
    """The values of ``learners.api.RULE_KEYS`` of update rule ``rule`` (ours, or the
    reference code's for family ``name``); a one-line ValueError for an unknown rule or a
    family that has only its own."""
    from learners.api import DEFAULTS, RULE_KEYS, UPDATE_RULES

    if rule not in UPDATE_RULES:
        raise ValueError(f"update_rule={rule!r} is not allowed; allowed: "
                         f"{', '.join(UPDATE_RULES)}")  # fmt: skip
    ours = {k: DEFAULTS[k] for k in RULE_KEYS}
    if rule == "ours":
        return ours
    reference = family(name).reference_rule
    if reference is None:
        having = ", ".join(f for f, rec in FAMILIES.items() if rec.reference_rule)
        raise ValueError(f"update_rule=reference applies to {having} only, not {name}")
    return {**ours, **reference}


def check_update_rule(name: str, hparams: dict[str, float]) -> None:
    """Refuse, in one line, a value of ``learners.api.RULE_KEYS`` other than ours that family
    ``name`` does not read (it would run ours and record otherwise)."""
    from learners.api import DEFAULTS, RULE_KEYS

    reads = family(name).reference_rule or {}
    for key in RULE_KEYS:
        value = float(hparams.get(key, DEFAULTS[key]) or 0.0)
        if value != DEFAULTS[key] and key not in reads:
            having = ", ".join(f for f, rec in FAMILIES.items()
                               if key in (rec.reference_rule or {}))  # fmt: skip
            raise ValueError(f"{key}={hparams[key]} applies to {having} only, not {name}")


def family(name: str) -> Family:
    """The family ``name``; a one-line ValueError names those that exist."""
    if name not in FAMILIES:
        raise ValueError(f"unknown learner {name!r}; allowed: {', '.join(FAMILIES)}")
    return FAMILIES[name]


# -- what the records give: a learner's ledger entry, a size for a budget ------------------


def cost(name: str, m: int, settings: dict) -> ledger.Cost:
    """The ledger entry of learner ``name`` with static ``settings`` (as ``Learner.settings``;
    ``n_classes`` > 0 prices the classification readout, ``classifier_cost``). The formula is
    the family's record's."""
    fam = family(name)
    rms = settings.get("rmsprop", True)
    size = {k: settings[k] for k in fam.sizes if settings.get(k) is not None}
    entry, features, elig = fam.cost(m, size, rms)
    n_classes = settings.get("n_classes", 0)
    return ledger.classifier_cost(entry, features, elig, n_classes, rms) if n_classes else entry


def size_for_budget(
    name: str,
    m: int,
    budget_flops: float,
    *,
    per_stage: int | None = None,
    truncation: int | None = None,
    layers: int | None = None,
    rmsprop: bool = True,
    model: str = "ledger",
) -> int:
    """The largest size (columns, features or hidden units) of ``name`` within the budget.

    Hybrid sizes are multiples of ``per_stage`` (default 4); T-BPTT keeps its ``truncation``
    (default 5), a stacked family its ``layers`` (default 1). ``model="reference"`` sizes
    T-BPTT by ``ledger.tbptt_reference_flops`` instead of the full ledger. Raises a one-line
    ValueError when even the smallest network does not fit.
    """
    if model not in ("ledger", "reference"):
        raise ValueError(f"model={model!r} is unknown; allowed: ledger, reference")
    if model == "reference" and name != "tbptt":
        raise ValueError(f"model='reference' exists for tbptt only, not {name}")

    fam = family(name)
    if fam.grow is None:
        raise ValueError(f"no size to choose for learner {name!r}: it has none")
    given = {"per_stage": per_stage, "truncation": truncation, "layers": layers}
    fixed = {**fam.sizes, **{k: v for k, v in given.items() if v is not None and k in fam.sizes}}

    def flops(n: int) -> int:
        if model == "reference":
            return ledger.tbptt_reference_flops(m, n, fixed["truncation"])
        return fam.cost(m, fam.grow(n, fixed), rmsprop)[0].flops

    if flops(1) > budget_flops:
        raise ValueError(
            f"--budget-flops {budget_flops:g} is below the smallest {name} network "
            f"({flops(1)} flops/step)"
        )
    # flops(n) grows with n: double past the budget, then bisect (a huge budget stays quick)
    lo, hi = 1, 2
    while flops(hi) <= budget_flops:
        lo, hi = hi, hi * 2
        if hi > 1 << 24:
            raise ValueError(f"budget of {budget_flops:g} flops/step is beyond any {name} "
                             f"network this ledger sizes (over 16M units)")  # fmt: skip
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if flops(mid) <= budget_flops else (lo, mid)
    return fam.grow(lo, fixed)["n_features"]
