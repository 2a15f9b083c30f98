"""Optuna search spaces, one per learner family, define-by-run.

``make_space(name, budget_flops=None)`` returns ``space(trial) -> dict``: it only samples (log
scales for step sizes, sizes and stage lengths) and returns the constants that follow from the
samples, as ``OptunaSearch`` expects. With a per-step compute budget the network's size is not
searched: it is the largest network of the family whose ledger flops per step fit the budget
(``learners.ledger.size_for_budget``), so studies of different families compare learners at
matched compute. ``config_to_args(config)`` splits a sampled configuration into the arguments
of ``make_learner`` and ``make_hparams``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from learners import STAGE_FOREVER
from learners.ledger import size_for_budget


@dataclass(frozen=True)
class Param:
    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] | None = None
    size: bool = False  # sets the network's size: derived from the budget when one is given

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


def _common(alpha: tuple[float, float] = (1e-4, 3e-2), init: bool = True) -> list[Param]:
    params = [
        Param("alpha", *alpha, log=True),
        Param("lambda_", 0.0, 0.99),
        Param("norm_rate", choices=(0.0, 1e-4, 1e-3)),
    ]
    if init:
        params.append(Param("init_scale", 0.05, 1.0, log=True))
    return params


_STAGE = Param("steps_per_stage", 10_000, 5_000_000, log=True, integer=True)

SPACES: dict[str, list[Param]] = {
    "linear": _common(init=False),
    "columnar": [*_common(), Param("n_features", 2, 64, log=True, integer=True, size=True)],
    "constructive": [
        *_common(),
        Param("n_features", 2, 16, integer=True, size=True),
        _STAGE,
    ],
    "hybrid": [
        *_common(),
        Param("per_stage", choices=(1, 2, 4, 8)),
        Param("n_stages", 1, 8, integer=True, size=True),
        _STAGE,
    ],
    "snap1": [*_common(), Param("n_features", 2, 64, log=True, integer=True, size=True)],
    "tbptt": [
        *_common(alpha=(1e-5, 3e-3)),
        Param("truncation", 1, 64, log=True, integer=True),
        Param("n_features", 2, 32, log=True, integer=True, size=True),
    ],
    "rtrl": [*_common(), Param("n_features", 1, 8, integer=True, size=True)],
}


def describe(name: str) -> list[str]:
    """One line per searched parameter of space ``name``."""
    _check(name)
    return [p.describe() for p in SPACES[name]]


def _check(name: str) -> None:
    if name not in SPACES:
        raise ValueError(f"unknown space {name!r}; allowed: {', '.join(SPACES)}")


@dataclass(frozen=True)
class Space:
    """A define-by-run space (a picklable callable, as Ray Tune checkpoints its searcher)."""

    name: str
    params: tuple[Param, ...]
    budget_flops: float | None
    n_inputs: int

    fixed: tuple[tuple[str, Any], ...] = ()

    def __call__(self, trial) -> dict[str, Any]:
        sampled = {p.name: p.suggest(trial) for p in self.params}
        out: dict[str, Any] = {"learner": self.name, **dict(self.fixed)}
        sampled.update(self.fixed)
        if self.budget_flops is not None:
            out["n_features"] = _sized(self.name, self.n_inputs, self.budget_flops, sampled)
            out["budget_flops"] = float(self.budget_flops)
        elif self.name == "hybrid":
            out["n_features"] = sampled["per_stage"] * sampled["n_stages"]
        return out


def make_space(
    name: str,
    budget_flops: float | None = None,
    n_inputs: int = 12,
    fixed: dict[str, Any] | None = None,
    ranges: dict[str, tuple[float, float]] | None = None,
) -> Space:
    """The define-by-run space of family ``name``; see the module docstring.

    ``fixed`` takes parameters out of the search at a given value (any parameter of the space,
    or ``rmsprop``); ``ranges`` replaces the bounds of numeric parameters. Raises a one-line
    ValueError for an unknown name or parameter, a bad value or range, a space without a size
    (linear) given a budget, or a budget below the family's smallest network.
    """
    _check(name)
    params = list(SPACES[name])
    fixed = dict(fixed or {})
    by_name = {p.name: p for p in params}
    allowed = [*by_name, "rmsprop"]
    for key in [*fixed, *(ranges or {})]:
        if key not in allowed:
            raise ValueError(
                f"unknown parameter {key!r} of space {name}; allowed: {', '.join(allowed)}"
            )
    for key, (low, high) in (ranges or {}).items():
        if key in fixed:
            raise ValueError(f"{key} is both fixed and given a range; choose one")
        params[params.index(by_name[key])] = _ranged(by_name[key], low, high)
    for key, value in fixed.items():
        _check_fixed(by_name.get(key), key, value)
    if budget_flops is not None:
        if name == "linear":
            raise ValueError("--budget-flops does not apply to the linear space (it has no size)")
        if budget_flops <= 0:
            raise ValueError(f"budget_flops={budget_flops:g} must be > 0")
        # Fails now, before any trial, if even the cheapest choice does not fit.
        sized = [k for k in fixed if by_name.get(k) and by_name[k].size]
        if sized:
            raise ValueError(f"{sized[0]} is set by --budget-flops; do not fix it as well")
        _sized(name, n_inputs, budget_flops, {"per_stage": 1, "truncation": 1, **fixed})
        params = [p for p in params if not p.size]
    params = [p for p in params if p.name not in fixed]
    return Space(name, tuple(params), budget_flops, n_inputs, tuple(sorted(fixed.items())))


_UNIT = {"lambda_": (0.0, 1.0), "init_scale": (0.0, float("inf"))}


def _ranged(param: Param, low: float, high: float) -> Param:
    if param.choices is not None:
        raise ValueError(
            f"{param.name} is a choice of {{{', '.join(map(str, param.choices))}}}: fix it with "
            f"--set {param.name}=VALUE instead of a range"
        )
    lo, hi = _UNIT.get(param.name, (0.0, float("inf")))
    if not lo <= low < high <= hi or (param.log and low <= 0) or (param.integer and low < 1):
        raise ValueError(
            f"range {param.name}={low:g}:{high:g} is not allowed: need LOW < HIGH, within "
            f"[{lo:g}, {hi:g}]{', LOW > 0' if param.log else ''}"
            f"{', integers >= 1' if param.integer else ''}"
        )
    if param.integer and (low != int(low) or high != int(high)):
        raise ValueError(f"range {param.name}={low:g}:{high:g} must be integers")
    return Param(param.name, low, high, param.log, param.integer, None, param.size)


def _check_fixed(param: Param | None, key: str, value: Any) -> None:
    if param is None:  # rmsprop
        if not isinstance(value, bool):
            raise ValueError(f"rmsprop={value!r} must be true or false")
        return
    if param.choices is not None:
        if value not in param.choices:
            allowed = ", ".join(map(str, param.choices))
            raise ValueError(f"{key}={value!r} is not one of {{{allowed}}}")
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key}={value!r} must be a number")
    if param.integer and (value != int(value) or value < 1):
        raise ValueError(f"{key}={value!r} must be an integer >= 1")
    lo, hi = _UNIT.get(key, (0.0, float("inf")))
    if not lo <= value <= hi or (param.log and value <= 0):
        raise ValueError(f"{key}={value!r} must be within [{lo:g}, {hi:g}]")


def _sized(name: str, n_inputs: int, budget: float, sampled: dict[str, Any]) -> int:
    return size_for_budget(
        name,
        n_inputs,
        budget,
        per_stage=sampled.get("per_stage"),
        truncation=sampled.get("truncation"),
    )


def config_to_args(config: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(learner name, make_learner kwargs, make_hparams kwargs)`` of a sampled config."""
    name = config["learner"]
    static = {
        k: config[k] for k in ("n_features", "per_stage", "truncation") if config.get(k) is not None
    }
    hparams = {
        k: config[k]
        for k in ("alpha", "lambda_", "norm_rate", "init_scale", "steps_per_stage")
        if k in config
    }
    if name == "hybrid" and "n_features" not in config:
        static["n_features"] = config["per_stage"] * config["n_stages"]
    if name in ("columnar", "snap1", "rtrl", "tbptt", "linear"):
        hparams.setdefault("steps_per_stage", STAGE_FOREVER)
    return name, static, hparams


__all__ = ["SPACES", "Param", "Space", "config_to_args", "describe", "make_space"]
