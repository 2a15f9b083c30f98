"""Families by name: the built-in ones (``learners.families``) and those defined outside the
package, and what a family's record gives (its update rules, its ledger entry, a size for a
budget, a configuration's arguments).

A family defined outside the package is a :class:`learners.families.Family` in the user's own
module, with its search space beside it (``Family.space``: ``search_spaces.Param`` values).
It is found by ``module:ATTRIBUTE`` (``--learner mypkg.mylearner:FAMILY``, then by its own
name in this process and the processes it starts, through ``$CCN_LEARNERS``), or by its name
alone when an installed package declares it as an entry point of the group
``ccn_study.learners`` (``mylstm = "mypkg.mylearner:FAMILY"``; what a cluster's nodes need).
It runs through every command like a built-in one: the ledger entry is its ``cost``, which
:func:`check_cost` holds to what XLA counts in its compiled step.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from typing import Any

from learners import ledger
from learners.families import FAMILIES, SHAPE_KEYS, Family

ENTRY_POINTS = "ccn_study.learners"  # the entry-point group of families outside the package
OUTSIDE_ENV = "CCN_LEARNERS"  # module:ATTRIBUTE specs that processes started here load
OUTSIDE: dict[str, Family] = {}  # the families loaded from outside, by name


def load(spec: str) -> Family:
    """The family ``module:ATTRIBUTE`` names (its module imported), registered under its own
    name and kept in ``$CCN_LEARNERS`` for the processes this one starts; a one-line
    ValueError says what is wrong."""
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"learner {spec!r}: allowed: a built-in family "
                         f"({', '.join(FAMILIES)}), module:FAMILY, or a name of the "
                         f"{ENTRY_POINTS} entry points")  # fmt: skip
    try:
        found = getattr(importlib.import_module(module), attr)
    except ImportError as e:
        raise ValueError(f"learner {spec!r}: cannot import {module} ({e})") from None
    except AttributeError:
        raise ValueError(f"learner {spec!r}: {module} has no {attr}") from None
    if not isinstance(found, Family):
        raise ValueError(f"learner {spec!r}: {attr} is a {type(found).__name__}, not a "
                         f"learners.families.Family")  # fmt: skip
    if found.name in FAMILIES:
        raise ValueError(f"learner {spec!r}: {found.name!r} is a built-in family's name; "
                         f"allowed: another name")  # fmt: skip
    known = OUTSIDE.get(found.name)
    if known is not None and known is not found:
        raise ValueError(f"learner {spec!r}: another family is already named {found.name!r}")
    OUTSIDE[found.name] = found
    specs = [s for s in os.environ.get(OUTSIDE_ENV, "").split(",") if s]
    if spec not in specs:
        os.environ[OUTSIDE_ENV] = ",".join([*specs, spec])
    return found


def _outside(name: str) -> Family | None:
    """The outside family ``name``: loaded already, declared by an entry point, or named by a
    spec of ``$CCN_LEARNERS``."""
    if name in OUTSIDE:
        return OUTSIDE[name]
    for point in importlib.metadata.entry_points(group=ENTRY_POINTS):
        if point.name == name:
            return load(point.value)
    for spec in os.environ.get(OUTSIDE_ENV, "").split(","):
        if spec and spec.partition(":")[2] and load(spec).name == name:
            return OUTSIDE[name]
    return None


def family(name: str) -> Family:
    """The family ``name`` (built in, ``module:ATTRIBUTE``, or outside by name); a one-line
    ValueError names those that exist."""
    if name in FAMILIES:
        return FAMILIES[name]
    if ":" in name:
        return load(name)
    found = _outside(name)
    if found is None:
        raise ValueError(f"unknown learner {name!r}; allowed: {', '.join(FAMILIES)}, "
                         f"module:FAMILY, or a name of the {ENTRY_POINTS} entry "
                         f"points")  # fmt: skip
    return found


def known(name: str) -> Family | None:
    """The family ``name``, or None where no family has that name (a report of runs whose
    family is not installed here)."""
    try:
        return family(name)
    except ValueError:
        return None


def resolve(name: str) -> str:
    """A family's own name: ``module:ATTRIBUTE`` loaded and named as its record names it."""
    return family(name).name


def check_cost(name: str, n_inputs: int = 12, size: dict[str, int] | None = None,
               within: float = 2.5) -> float:  # fmt: skip
    """XLA's count of the flops of family ``name``'s compiled step over its ledger entry's
    (``Family.cost``); a one-line ValueError when the two differ by more than ``within`` either
    way (the built-ins measure 0.6 to 2.0). Starts JAX: call it from a test or a bench, not a
    study's driver."""
    import jax
    import jax.numpy as jnp

    from learners.api import make_hparams

    fam = family(name)
    learner = fam.build(n_inputs, {**fam.sizes, **(size or {})}, rmsprop=True, n_classes=0)
    hp = make_hparams(**fam.hparams(), steps_per_stage=1000)
    state = learner.init(jax.random.PRNGKey(0), hp)
    step = jax.jit(learner.step).lower(state, jnp.zeros(n_inputs), jnp.zeros(()), hp).compile()
    analysis = step.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    ratio = float(analysis["flops"]) / cost(name, n_inputs, learner.settings).flops
    if not 1 / within <= ratio <= within:
        off, way = (1 / ratio, "above") if ratio < 1 else (ratio, "below")
        raise ValueError(f"learner {name!r}: its declared cost is {off:.1f}x {way} what XLA "
                         f"counts in its step; allowed: within {within:g}x (fix "
                         f"Family.cost)")  # fmt: skip
    return ratio


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
    a family by its ``reference_cost`` (T-BPTT's: ``ledger.tbptt_reference_flops``) instead of
    the full ledger. Raises a one-line ValueError when even the smallest network does not fit.
    """
    if model not in ("ledger", "reference"):
        raise ValueError(f"model={model!r} is unknown; allowed: ledger, reference")
    fam = family(name)
    if model == "reference" and fam.reference_cost is None:
        having = [f for f, v in FAMILIES.items() if v.reference_cost is not None]
        raise ValueError(f"model='reference' exists for {', '.join(having)} only, not {name}")
    if fam.grow is None:
        raise ValueError(f"no size to choose for learner {name!r}: it has none")
    given = {"per_stage": per_stage, "truncation": truncation, "layers": layers}
    fixed = {**fam.sizes, **{k: v for k, v in given.items() if v is not None and k in fam.sizes}}

    def flops(n: int) -> int:
        if model == "reference":
            return fam.reference_cost(m, fam.grow(n, fixed))
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
