"""The learner families, one record each: how to build one, its sizes, its defaults, its cost.

Every part of the platform that needs to know a family reads it here, through
``learners.registry`` (``make_learner``, the ledger's ``cost`` and ``size_for_budget``,
``study.bench``'s sizes, the reports' order), so a new built-in family is one module of its
own plus one ``Family`` in ``FAMILIES`` (and its search space in ``search_spaces``, keyed by
the same name); a family of the user's own is a ``Family`` in the user's module
(``learners.registry``). Model: ``study.tasks.PRESETS``.

Sizes: ``n_features`` is every family's size (columns or hidden units); ``per_stage`` (columns
per stage), ``truncation`` (T-BPTT's k) and ``layers`` (the online LRU's stack) are the other
shape settings, each owned by the families that list it in ``sizes``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from learners import ledger
from learners.api import Learner
from learners.dense import rtrl, snap1
from learners.linear import linear
from learners.lru import lru
from learners.rtu import rtu, rtu_linear
from learners.staged import columnar, constructive, hybrid
from learners.tbptt import tbptt
from learners.uoro import uoro


@dataclass(frozen=True, kw_only=True)
class Family:
    """One learner family.

    ``build(n_inputs, size, rmsprop, n_classes)`` makes the learner from its full ``size``
    (``sizes`` with the caller's values over them). ``cost(m, size, rmsprop)`` is its ledger
    entry, with the number of readout features and recurrent eligibilities that a classifier
    readout replaces (``ledger.classifier_cost``). ``grow(n, size)`` is the size with ``n``
    units on its budget axis (``None``: the family has no size, as linear). ``stage_width
    (size)`` is the columns each stage of a staged network adds (``None``: one stage, no
    stages). ``from_sampled(sampled)`` is the size a search space's sampled values give when
    they do not name ``n_features`` (the hybrid samples its stages; ``None``: none). ``bench``
    lists the sizes ``study.bench`` times, smallest first. ``reference_rule``: the values of
    ``learners.api.RULE_KEYS`` that give the authors' C++ update for this family (the keys it
    reads; ``None``: it reads none, and has only ours). ``native``: the compiled CPU loop's
    kind of learner state for this family (``staged``, ``tbptt`` or ``snap1``; ``None``: JAX
    only).
    """

    name: str
    about: str
    build: Callable[..., Learner]
    sizes: dict[str, int]
    defaults: dict[str, float]
    cost: Callable[[int, dict[str, int], bool], tuple[ledger.Cost, int, int]]
    grow: Callable[[int, dict[str, int]], dict[str, int]] | None = None
    stage_width: Callable[[dict[str, int]], int] | None = None
    from_sampled: Callable[[dict[str, Any]], dict[str, int]] | None = None
    bench: tuple[dict[str, int], ...] = field(default_factory=tuple)
    reference_rule: dict[str, float] | None = None
    # the compiled CPU loop's name for this family's state (its field list in study/native),
    # None where only JAX runs it
    native: str | None = None
    # the search space of a family defined outside the package (search_spaces.Param values;
    # the built-ins' are in search_spaces.SPACES)
    space: tuple[Any, ...] = ()
    # flops per step by the authors' reference count, ``(m, size) -> flops``, for sizing at
    # their matched compute (registry.size_for_budget model="reference"); None: ours only
    reference_cost: Callable[[int, dict[str, int]], int] | None = None

    def size(self, given: dict[str, Any]) -> dict[str, int]:
        """The family's full size: its ``sizes`` with the values ``given`` has for them (a
        configuration's, a learner's settings); None counts as not given."""
        return {**self.sizes, **{k: given[k] for k in self.sizes if given.get(k) is not None}}

    def stages(self, given: dict[str, Any]) -> int:
        """How many stages a network of this family of size ``given`` has (1 without
        stages)."""
        if self.stage_width is None:
            return 1
        size = self.size(given)
        return size["n_features"] // self.stage_width(size)

    def hparams(self) -> dict[str, float]:
        """The hyperparameters the family runs with unless told otherwise: every field of
        ``HParams`` but ``gamma`` (the task's) and ``steps_per_stage``, over
        ``learners.api.DEFAULTS``."""
        from learners.api import DEFAULTS

        out = {k: v for k, v in DEFAULTS.items() if k not in ("gamma", "steps_per_stage")}
        return {**out, **self.defaults}


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


def _every_column_one_stage(size: dict[str, int]) -> int:
    return size["n_features"]


def _hybrid_from_sampled(sampled: dict[str, Any]) -> dict[str, int]:
    if "n_stages" not in sampled:  # sized otherwise, or the family's default size
        return {}
    return {"n_features": sampled["per_stage"] * sampled["n_stages"]}


def _hybrid_grow(n: int, size: dict[str, int]) -> dict[str, int]:
    return {**size, "n_features": n * size["per_stage"]}  # the budget axis counts stages


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            name="columnar",
            native="staged",
            about="n_features independent LSTM columns, exact RTRL (one stage)",
            build=lambda m, s, **kw: columnar(m, s["n_features"], **kw),
            sizes={"n_features": 7}, defaults=dict(_TD, init_scale=0.5),
            cost=lambda m, s, rms: _staged_cost(m, {"n_features": s["n_features"]}, rms),
            grow=_units, stage_width=_every_column_one_stage,
            bench=tuple(dict(n_features=n) for n in (7, 32, 128, 512, 2048, 16384)),
            reference_rule=_CPP_STAGED,
        ),
        Family(
            name="constructive",
            native="staged",
            about="one LSTM column per stage, earlier stages frozen, exact RTRL",
            build=lambda m, s, **kw: constructive(m, s["n_features"], **kw),
            sizes={"n_features": 10}, defaults=dict(_TD, init_scale=0.2),
            cost=lambda m, s, rms: _staged_cost(m, {"n_features": s["n_features"],
                                                    "per_stage": 1}, rms),
            grow=_units, stage_width=lambda s: 1,
            bench=tuple(dict(n_features=n) for n in (4, 8, 16, 32)), reference_rule=_CPP_STAGED,
        ),
        Family(
            name="hybrid",
            native="staged",
            about="CCN: stages of per_stage columns, earlier stages frozen, exact RTRL",
            build=lambda m, s, **kw: hybrid(m, s["n_features"], s["per_stage"], **kw),
            sizes={"n_features": 20, "per_stage": 4}, defaults=dict(_TD, init_scale=0.5),
            cost=_staged_cost, grow=_hybrid_grow, stage_width=lambda s: s["per_stage"],
            from_sampled=_hybrid_from_sampled,
            bench=tuple(dict(n_features=n, per_stage=p)
                        for n, p in ((8, 4), (20, 4), (64, 16), (256, 64))),
            reference_rule=_CPP_STAGED,
        ),
        Family(
            name="tbptt",
            native="tbptt",
            about="dense LSTM of n_features units, T-BPTT with truncation k every step",
            build=lambda m, s, **kw: tbptt(m, s["n_features"], s["truncation"], **kw),
            sizes={"n_features": 8, "truncation": 5},
            defaults=dict(alpha=3e-4, lambda_=0.99, init_scale=2.0),
            cost=_dense_cost(ledger.tbptt_cost), grow=_units,
            bench=tuple(dict(n_features=8, truncation=k) for k in (5, 15, 30)),
            reference_rule=_CPP_TBPTT,
            reference_cost=lambda m, s: ledger.tbptt_reference_flops(m, s["n_features"],
                                                                     s["truncation"]),
        ),
        Family(
            name="snap1",
            native="snap1",
            about="dense LSTM of n_features units, SnAp-1 traces (own rows, own Jacobian "
            "block)",
            build=lambda m, s, **kw: snap1(m, s["n_features"], **kw),
            sizes={"n_features": 8}, defaults=dict(_TD, init_scale=1.0),
            cost=_dense_cost(ledger.snap1_cost), grow=_units,
            bench=tuple(dict(n_features=n) for n in (8, 32, 128)),
            # not the C++'s SnAp-1 (its readout takes no RMSProp step): T-BPTT's reference
            # rule, so that every family of the paper's preset can run one rule
            reference_rule=_CPP_TBPTT,
        ),
        Family(
            name="rtrl",
            about="dense LSTM of n_features units, exact RTRL (O(n^2 params) per step; "
            "small nets)",
            build=lambda m, s, **kw: rtrl(m, s["n_features"], **kw),
            sizes={"n_features": 4}, defaults=dict(_TD, init_scale=1.0),
            cost=_dense_cost(ledger.rtrl_cost), grow=_units,
            bench=tuple(dict(n_features=n) for n in (2, 4, 8)),
        ),
        Family(
            name="uoro",
            about="dense LSTM of n_features units, UORO (unbiased rank-one estimate of the "
            "RTRL Jacobian)",
            build=lambda m, s, **kw: uoro(m, s["n_features"], **kw),
            sizes={"n_features": 8}, defaults=dict(_TD, alpha=1e-4, init_scale=1.0),
            cost=_dense_cost(ledger.uoro_cost), grow=_units,
            bench=tuple(dict(n_features=n) for n in (8, 32, 128)),
        ),
        Family(
            name="rtu",
            about="n_features non-linear recurrent trace units (diagonal complex "
            "recurrence), exact RTRL",
            build=lambda m, s, **kw: rtu(m, s["n_features"], **kw),
            sizes={"n_features": 16}, defaults=dict(_TD, alpha=3e-4, init_scale=1.0),
            cost=_rtu_cost, grow=_units,
            bench=tuple(dict(n_features=n) for n in (16, 64, 256, 1024, 4096)),
        ),
        Family(
            name="rtu_linear",
            about="n_features linear recurrent trace units (diagonal complex recurrence, "
            "tanh on the output), exact RTRL",
            build=lambda m, s, **kw: rtu_linear(m, s["n_features"], **kw),
            sizes={"n_features": 16}, defaults=dict(_TD, alpha=3e-4, init_scale=1.0),
            cost=_rtu_cost, grow=_units,
            bench=tuple(dict(n_features=n) for n in (16, 64, 256, 1024, 4096)),
        ),
        Family(
            name="lru",
            about="online LRU: layers of n_features complex units, each with a GLU, exact "
            "RTRL in each layer's recurrence",
            build=lambda m, s, **kw: lru(m, s["n_features"], layers=s["layers"], **kw),
            sizes={"n_features": 8, "layers": 1},
            defaults=dict(_TD, alpha=3e-4, init_scale=1.0), cost=_lru_cost, grow=_units,
            bench=tuple(dict(n_features=n, layers=1) for n in (8, 32, 128, 512)),
        ),
        Family(
            name="linear",
            about="linear TD(lambda) on the observation (memoryless baseline)",
            build=lambda m, s, **kw: linear(m, **kw),
            sizes={}, defaults=dict(alpha=3e-4, lambda_=0.9),
            cost=lambda m, s, rms: (ledger.linear_cost(m, rms), m, 0), bench=({},),
        ),
    )
}  # fmt: skip
# Also the order in which reports and tables list the families.
ORDER: tuple[str, ...] = tuple(FAMILIES)
SHAPE_KEYS = ("n_features", "per_stage", "truncation", "layers")
