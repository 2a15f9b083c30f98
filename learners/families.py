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


def config_to_args(config: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(learner name, make_learner kwargs, make_hparams kwargs)`` of a configuration (a
    search space's sample, a preset's grid point, a trial's).

    Sizes are the configuration's (or, where it samples them otherwise, the family's
    ``from_sampled``). Hyperparameters are every key of ``HParams`` the configuration holds,
    over the family's defaults (``Family.hparams``), with its ``update_rule``'s values. A
    staged network's ``steps_per_stage`` comes from the configuration, else from
    ``last_stage_at`` and ``steps``, else from ``steps`` alone (equal stages, as
    ``study.run`` divides a run).
    """
    from learners.api import STAGE_FOREVER, HParams, stage_steps

    name = config["learner"]
    fam = family(name)
    static = {k: config[k] for k in SHAPE_KEYS if config.get(k) is not None}
    if fam.from_sampled is not None and "n_features" not in static:
        static.update(fam.from_sampled(config))
    hparams = {**fam.hparams(), **{k: config[k] for k in HParams._fields if k in config}}
    hparams.pop("gamma", None)  # the task's
    if config.get("update_rule") is not None:
        hparams.update(update_rule(name, config["update_rule"]))
    check_update_rule(name, hparams)
    stages = fam.stages(static)
    if stages == 1:
        hparams["steps_per_stage"] = STAGE_FOREVER
    elif "steps_per_stage" not in config and "steps" in config:
        hparams["steps_per_stage"] = stage_steps(int(config["steps"]), stages,
                                                 config.get("last_stage_at"))  # fmt: skip
    return name, static, hparams
