"""Optuna search spaces, one per learner family, define-by-run.

``make_space(name, budget_flops=None)`` returns ``space(trial) -> dict``: it only samples (log
scales for step sizes, sizes and stage lengths) and returns the constants that follow from the
samples, as ``OptunaSearch`` expects. With a per-step compute budget the network's size is not
searched: it is the largest network of the family whose ledger flops per step fit the budget
(``learners.registry.size_for_budget``), so studies of different families compare learners at
matched compute. What a sampled configuration means to a learner is its family's
(``learners.registry.config_to_args``): this package only samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from learners import family_defaults, stage_steps
from learners.api import BOUNDS
from learners.families import SHAPE_KEYS
from learners.registry import family, size_for_budget


@dataclass(frozen=True)
class Param:
    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] | None = None
    size: bool = False  # sets the network's size: derived from the budget when one is given
    only_if: str | None = None  # sampled only when this earlier parameter is non-zero

    def suggest(self, trial) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def describe(self) -> str:
        if self.choices is not None:
            return f"{self.name} in {{{', '.join(str(c) for c in self.choices)}}}"
        scale = "log" if self.log else "uniform"
        kind = "int" if self.integer else "float"
        return f"{self.name} {kind} [{self.low:g}, {self.high:g}] {scale}"

    def describe_when(self) -> str:
        text = self.describe()
        return f"{text} (when {self.only_if} > 0)" if self.only_if else text


def _common(
    alpha: tuple[float, float] = (1e-4, 3e-2), init: tuple[float, float] | None = (0.05, 1.0)
) -> list[Param]:
    """Step size, lambda, normalisation and initialisation. ``init`` is the range of
    ``init_scale``: absolute for columns, relative to 1 / sqrt(fan-in) for a dense layer."""
    params = [
        Param("alpha", *alpha, log=True),
        # the paper's grid and 0.95: uniform sampling on [0, 1) would rarely reach 0.99
        Param("lambda_", choices=(0.0, 0.5, 0.9, 0.95, 0.99)),
        # 1 - the reference's normalization_rate (0.99999 in its paper runs): 0 is off
        Param("norm_rate", choices=(0.0, 1e-5, 1e-4, 1e-3)),
        # the reference's std_cap, a floor on the running variance (0.01 or 0.1 in its runs)
        Param("norm_floor", choices=(0.01, 0.1), only_if="norm_rate"),
    ]
    if init:
        params.append(Param("init_scale", *init, log=True))
    return params


_DENSE_INIT = (0.1, 4.0)


# How a staged run is divided: the last stage starts at this fraction of ``steps``, and the
# stages before it share the time before that equally (``steps_per_stage``). Every sampled
# network therefore grows all its stages within the run, whatever ``--steps`` is; an absolute
# ``steps_per_stage`` is still available through ``--set``.
_LAST_STAGE = Param("last_stage_at", 0.3, 0.9)

SPACES: dict[str, list[Param]] = {
    "linear": _common(init=None),
    "columnar": [*_common(), Param("n_features", 2, 64, log=True, integer=True, size=True)],
    "constructive": [
        *_common(),
        Param("n_features", 2, 16, integer=True, size=True),
        _LAST_STAGE,
    ],
    "hybrid": [
        *_common(),
        # one column per stage is the constructive space, and per_stage = n_features the
        # columnar one; at matched compute a 1-column hybrid has 37 stages and runs 3x slower
        Param("per_stage", choices=(2, 4, 8)),
        Param("n_stages", 1, 8, integer=True, size=True),
        _LAST_STAGE,
    ],
    "snap1": [
        *_common(init=_DENSE_INIT),
        Param("n_features", 2, 64, log=True, integer=True, size=True),
    ],
    "tbptt": [
        *_common(alpha=(1e-5, 3e-3), init=_DENSE_INIT),
        Param("truncation", 1, 64, log=True, integer=True),
        Param("n_features", 2, 32, log=True, integer=True, size=True),
    ],
    "rtrl": [*_common(init=_DENSE_INIT), Param("n_features", 1, 8, integer=True, size=True)],
    "uoro": [
        *_common(init=_DENSE_INIT),
        Param("n_features", 2, 64, log=True, integer=True, size=True),
    ],
    "lru": [
        *_common(init=_DENSE_INIT),
        Param("n_features", 2, 64, log=True, integer=True, size=True),
        Param("layers", choices=(1, 2, 3)),
    ],
    # RTUs: input weights relative to 1 / sqrt(fan-in), as a dense layer's
    "rtu": [
        *_common(init=_DENSE_INIT),
        Param("n_features", 2, 256, log=True, integer=True, size=True),
    ],
    "rtu_linear": [
        *_common(init=_DENSE_INIT),
        Param("n_features", 2, 256, log=True, integer=True, size=True),
    ],
}


def describe(name: str) -> list[str]:
    """One line per searched parameter of space ``name``."""
    _check(name)
    return [p.describe_when() for p in params_of(name)]


def params_of(name: str) -> list[Param]:
    """The parameters of family ``name``'s space: a built-in's (:data:`SPACES`), or the one a
    family defined outside the package gives beside it (``Family.space``)."""
    if name in SPACES:
        return SPACES[name]
    try:
        fam = family(name)
    except ValueError:
        raise ValueError(f"--space {name}: unknown space {name!r}; allowed: "
                         f"{', '.join(SPACES)}, or module:FAMILY") from None  # fmt: skip
    if not fam.space or not all(isinstance(p, Param) for p in fam.space):
        raise ValueError(f"--space {name}: the family gives no search space; allowed: a family "
                         f"whose Family.space holds search_spaces.Param values")  # fmt: skip
    return list(fam.space)


def _check(name: str) -> None:
    params_of(name)


@dataclass(frozen=True)
class Space:
    """A define-by-run space (a picklable callable, as Ray Tune checkpoints its searcher)."""

    name: str
    params: tuple[Param, ...]
    budget_flops: float | None
    n_inputs: int

    fixed: tuple[tuple[str, Any], ...] = ()
    steps: int | None = None  # the run's length: staged spaces divide it into their stages

    def __call__(self, trial) -> dict[str, Any]:
        sampled = dict(self.fixed)
        for p in self.params:
            if p.only_if is None or sampled.get(p.only_if):
                sampled[p.name] = p.suggest(trial)
        out: dict[str, Any] = {"learner": self.name, **dict(self.fixed)}
        if self.budget_flops is not None:
            out["n_features"] = _sized(self.name, self.n_inputs, self.budget_flops, sampled)
            out["budget_flops"] = float(self.budget_flops)
        elif (fam := family(self.name)).from_sampled is not None:
            out.update(fam.from_sampled(sampled))
        if "last_stage_at" in sampled and self.steps is not None:
            n = out.get("n_features", sampled.get("n_features"))
            size = {"n_features": n, "per_stage": sampled.get("per_stage")}
            stages = family(self.name).stages(size)
            out["steps_per_stage"] = stage_steps(self.steps, stages, sampled["last_stage_at"])
        return out

    def shape_params(self) -> list[str]:
        """The searched parameters that set a network's shape (its size and the static
        settings ``config_to_args`` passes to ``make_learner``): a pack of configurations
        (``study.engine.pack``) samples them once."""
        return [p.name for p in self.params if p.size or p.name in SHAPE_KEYS]

    def first_point(self) -> dict[str, Any] | None:
        """The family's defaults (``learners.family_defaults``) as a point of this space, for
        the search to try first; None when a default lies outside a range the user set."""
        defaults = {**family_defaults(self.name), **family(self.name).sizes}
        if "per_stage" in defaults:
            defaults["n_stages"] = defaults["n_features"] // defaults["per_stage"]
        stages = family(self.name).stages({})
        defaults["last_stage_at"] = (stages - 1) / stages  # equal stages, as study.run
        point = {}
        for p in self.params:
            if p.name not in defaults:
                return None
            value = defaults[p.name]
            if p.only_if is not None and not point.get(p.only_if, dict(self.fixed).get(p.only_if)):
                continue
            if p.choices is not None and value not in p.choices:
                return None
            if p.choices is None and not p.low <= value <= p.high:
                return None
            point[p.name] = value
        return point


# How a refusal names the options it is about: as typed on the command line, or as Python's
# keywords (study.api); "none" is the budget that leaves sizes to the search.
CLI_WORDS = {"set": "--set", "range": "--range", "budget": "--budget-flops", "none": "none"}
PYTHON_WORDS = {"set": "fixed", "range": "ranges", "budget": "budget_flops", "none": '"none"'}


def make_space(
    name: str,
    budget_flops: float | None = None,
    n_inputs: int = 12,
    fixed: dict[str, Any] | None = None,
    ranges: dict[str, tuple[float, float]] | None = None,
    steps: int | None = None,
    cli: bool = True,
) -> Space:
    """The define-by-run space of family ``name``; see the module docstring.

    ``fixed`` takes parameters out of the search at a given value (any parameter of the space,
    ``rmsprop``, or for a staged family an absolute ``steps_per_stage``); ``ranges`` replaces
    the bounds of numeric parameters; ``steps`` is the run's length, which a staged family
    divides into its stages (``last_stage_at``). Raises a one-line ValueError for an unknown
    name or parameter, a bad value or range, stages that cannot fit the run, a space without a
    size (linear) given a budget, or a budget below the family's smallest network; each names
    the option as the command line spells it (``--set``), or with ``cli=False`` as Python does
    (``fixed``, ``ranges``, ``budget_flops``).
    """
    w = CLI_WORDS if cli else PYTHON_WORDS
    _check(name)
    params = list(params_of(name))
    fixed = dict(fixed or {})
    by_name = {p.name: p for p in params}
    allowed = [*by_name, "rmsprop", *(["steps_per_stage"] if "last_stage_at" in by_name else []),
               *(["update_rule"] if family(name).reference_rule else [])]  # fmt: skip
    for key in [*fixed, *(ranges or {})]:
        if key not in allowed:
            raise ValueError(
                f"{w['set']}/{w['range']} {key}: unknown parameter {key!r} of space {name}; "
                f"allowed: "
                f"{', '.join(allowed)}"
            )
    for key, (low, high) in (ranges or {}).items():
        if key in fixed:
            raise ValueError(f"{w['set']} {key} and {w['range']} {key}: a parameter is either "
                             f"fixed or "
                             f"ranged; choose one")  # fmt: skip
        params[params.index(by_name[key])] = _ranged(by_name[key], low, high, w)
    for key, value in fixed.items():
        _check_fixed(by_name.get(key), key, value, w)
    if "steps_per_stage" in fixed:
        if "last_stage_at" in fixed:
            raise ValueError(
                f"{w['set']} steps_per_stage and {w['set']} last_stage_at both divide the run; "
                f"set one"
            )
        if steps is not None and fixed["steps_per_stage"] >= steps:
            raise ValueError(
                f"{w['set']} steps_per_stage={fixed['steps_per_stage']} does not fit a run of "
                f"{steps} "
                f"steps: no second stage would start; allowed: below {steps}"
            )
        params = [p for p in params if p.name != "last_stage_at"]
    if budget_flops is not None:
        if family(name).grow is None:
            raise ValueError(f"{w['budget']} does not apply to the {name} space (it has no size)")
        if not 0 < budget_flops < 1e12:
            raise ValueError(
                f"{w['budget']}={budget_flops:g} is not allowed: need a number of flops per "
                "step in (0, 1e12)"
            )
        # Fails now, before any trial, if even the cheapest choice does not fit.
        sized = [k for k in fixed if by_name.get(k) and by_name[k].size]
        if sized:
            raise ValueError(f"{w['set']} {sized[0]}: the size is set by {w['budget']}; give "
                             f"{w['budget']} {w['none']} to fix it")  # fmt: skip
        _sized(name, n_inputs, budget_flops, {"per_stage": 1, "truncation": 1, **fixed})
        params = [p for p in params if not p.size]
    params = [p for p in params if p.name not in fixed]
    return Space(name, tuple(params), budget_flops, n_inputs, tuple(sorted(fixed.items())), steps)


# The bounds of a range or a fixed value: the hyperparameters' own (learners.api.BOUNDS), and
# the fraction of the run at which a staged network's last stage starts.
_UNIT = {
    **{k: (lo, math.inf if hi is None else hi) for k, (lo, hi, _, _) in BOUNDS.items()},
    "last_stage_at": (0.0, 1.0),
}


def _ranged(param: Param, low: float, high: float, w: dict[str, str] | None = None) -> Param:
    w = w or CLI_WORDS
    if param.choices is not None:
        raise ValueError(
            f"{w['range']} {param.name}: a choice of {{{', '.join(map(str, param.choices))}}}: "
            f"fix it with {w['set']} {param.name}=VALUE instead of a range"
        )
    lo, hi = _UNIT.get(param.name, (0.0, float("inf")))
    finite = math.isfinite(low) and math.isfinite(high)
    if (not finite or not lo <= low < high <= hi or (param.log and low <= 0)
            or (param.integer and low < 1)):  # fmt: skip
        raise ValueError(
            f"{w['range']} {param.name}={low:g}:{high:g} is not allowed: need LOW < HIGH, within "
            f"[{lo:g}, {hi:g}]{', LOW > 0' if param.log else ''}"
            f"{', integers >= 1' if param.integer else ''}"
        )
    if param.integer and (low != int(low) or high != int(high)):
        raise ValueError(f"{w['range']} {param.name}={low:g}:{high:g} must be integers")
    return replace(param, low=low, high=high)


def _check_fixed(param: Param | None, key: str, value: Any,
                 w: dict[str, str] | None = None) -> None:  # fmt: skip
    w = w or CLI_WORDS
    if key == "update_rule":
        from learners.api import UPDATE_RULES

        if value not in UPDATE_RULES:
            raise ValueError(f"{w['set']} update_rule={value!r} is not one of "
                             f"{{{', '.join(UPDATE_RULES)}}}")  # fmt: skip
        return
    if key == "steps_per_stage":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{w['set']} steps_per_stage={value!r} must be an integer >= 1")
        return
    if param is None:  # rmsprop
        if not isinstance(value, bool):
            raise ValueError(f"{w['set']} rmsprop={value!r} must be true or false")
        return
    if param.choices is not None and key not in _UNIT:  # a numeric grid takes any value
        if value not in param.choices:
            allowed = ", ".join(map(str, param.choices))
            raise ValueError(f"{w['set']} {key}={value!r} is not one of {{{allowed}}}")
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{w['set']} {key}={value!r} must be a number")
    if param.integer and (value != int(value) or value < 1):
        raise ValueError(f"{w['set']} {key}={value!r} must be an integer >= 1")
    if key == "last_stage_at" and not 0.0 < value < 1.0:
        raise ValueError(
            f"{w['set']} last_stage_at={value!r} must be a fraction of the run in (0, 1)"
        )
    lo, hi = _UNIT.get(key, (0.0, float("inf")))
    positive = param.log or key == "norm_floor"
    if not (lo <= value <= hi and math.isfinite(value)) or (positive and value <= 0):
        raise ValueError(f"{w['set']} {key}={value!r} must be a finite number within "
                         f"[{lo:g}, {hi:g}]{', above 0' if positive else ''}")  # fmt: skip


def _sized(name: str, n_inputs: int, budget: float, sampled: dict[str, Any]) -> int:
    return size_for_budget(
        name,
        n_inputs,
        budget,
        per_stage=sampled.get("per_stage"),
        truncation=sampled.get("truncation"),
        layers=sampled.get("layers"),
    )


__all__ = ["SPACES", "Param", "Space", "describe", "make_space", "params_of"]
