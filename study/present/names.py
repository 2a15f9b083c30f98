"""How a study's runs read in MLflow, as pure functions of values: a trial's short name, its
colour, the few final numbers worth a column, and the sentence that states a study's outcome.
Nothing here reads or writes a record (``study.records`` does, and asks this room how)."""

from __future__ import annotations

from typing import Any

import numpy as np

from study.present.words import conclusion, words

# Twenty colours told apart at a glance (Sasha Trubetskoy's list, reordered so that any
# first few are far apart): trial i of a study gets PALETTE[i % 20].
PALETTE = (
    "#e6194b", "#4363d8", "#3cb44b", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324",
    "#000075", "#bfef45", "#800000", "#469990", "#ffe119", "#808000", "#dcbeff", "#fabed4",
    "#aaffc3", "#ffd8b1", "#a9a9a9", "#000000",
)  # fmt: skip


def colour(index: int) -> str:
    """The colour of a study's ``index``-th trial (0-based)."""
    return PALETTE[index % len(PALETTE)]


def place(trial_id: str, pack: tuple[int, int] | None, optuna_trial: int | None) -> int | None:
    """A configuration's place in its study, for its colour: its Optuna trial's number in a
    packed search, else its Tune trial's (a grid's ``ID_00003``; times the pack's size, plus
    its index in it); None when neither says (a search's Tune ids are random)."""
    if optuna_trial is not None:
        return optuna_trial
    tail = trial_id.rsplit("_", 1)[-1]
    if not tail.isdigit():
        return None
    return int(tail) * pack[1] + pack[0] if pack else int(tail)


def short(x: float) -> str:
    """``0.99`` as ``.99``, ``1e-3`` as ``1e-3``, ``4.2e-4`` as ``4.2e-4``: the fewest
    characters that keep the value a reader compares."""
    if x != 0 and abs(x) < 0.01:
        mantissa, exponent = f"{float(x):.1e}".split("e")
        return f"{mantissa.removesuffix('.0')}e{int(exponent)}"
    text = f"{x:.3g}"
    return text[1:] if text.startswith("0.") else text


def shape(settings: dict[str, Any]) -> str:
    """A network's shape as run names write it: ``20:4`` (columns:per stage), ``7`` (one
    stage), ``h8 k=5`` (hidden units, truncation), ``h8 x2`` (layers); "" without a size."""
    if "per_stage" in settings:  # columns
        n, per = settings["n_features"], settings["per_stage"]
        return str(n) if per == n else f"{n}:{per}"
    if "n_features" not in settings:
        return ""
    text = f"h{settings['n_features']}"  # hidden units of a dense LSTM
    text += f" k={settings['truncation']}" if "truncation" in settings else ""
    return text + (f" x{settings['layers']}" if settings.get("layers", 1) > 1 else "")


def run_name(settings: dict[str, Any], config: dict[str, Any], family: str = "") -> str:
    """A trial's run name: its shape and key hyperparameters, short enough for the runs
    table's default column (a study's experiment names the family; a run among several
    families names its ``family`` first): ``20:4 a=1e-3 l=.99`` (columns:per stage),
    ``7 a=3e-4 l=0``, ``h8 k=5 a=1e-3 l=.9`` (hidden units, truncation), ``hybrid 20:4
    a=1e-3 l=.99``."""
    parts = [family, shape(settings)]
    if isinstance(config.get("alpha"), int | float):
        parts.append(f"a={short(float(config['alpha']))}")
    if isinstance(config.get("lambda_"), int | float):
        parts.append(f"l={short(float(config['lambda_']))}")
    return " ".join(p for p in parts if p)


def rounded(x: float) -> str:
    """``x`` to three significant digits as a table column shows it: ``4.24e-4``, ``.99``,
    ``0``, ``12.5``."""
    if x != 0 and abs(x) < 0.01:
        mantissa, exponent = f"{float(x):.2e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    text = f"{x:.3g}"
    return text[1:] if text.startswith("0.") else text


def table_values(settings: dict[str, Any], config: dict[str, Any]) -> dict[str, str]:
    """What the runs table shows of a trial beside its result (``study.records.tags.TABLE``):
    its family, shape, step size and lambda, rounded to read at a glance."""
    values = {"learner": str(config.get("learner", "")), "size": shape(settings)}
    for key, name in (("alpha", "alpha"), ("lambda_", "lambda")):
        if isinstance(config.get(key), int | float) and not isinstance(config[key], bool):
            values[name] = rounded(float(config[key]))
    return values


def headline_keys(kind: Any) -> tuple[str, ...]:
    """The names :func:`headline` gives its numbers (each logged as ``final_NAME``)."""
    return tuple(dict.fromkeys((kind.verdict_key, f"{kind.verdict_key}_ci95", "learned",
                                kind.metric)))  # fmt: skip


def headline(kind: Any, final: dict[str, float]) -> dict[str, float]:
    """The few final numbers worth a column and a chart, from a configuration's last report
    ``final``: the verdict's measure (mean over seeds, ``_ci95`` its 95% half-width), whether
    it learned (1 or 0), and the objective; the rest of ``final`` goes to ``finals.json``."""
    prefix = f"{kind.verdict_key}_seed"
    values = np.asarray([v for k, v in final.items() if k.startswith(prefix)], np.float64)
    out = {}
    if values.size:
        mean, half, learned = kind.learned(values)
        mean = final.get(kind.verdict_key, mean)  # the kind's own: the worst once diverged
        out = {kind.verdict_key: mean, f"{kind.verdict_key}_ci95": half,
               "learned": float(learned)}  # fmt: skip
    if kind.metric in final:
        out[kind.metric] = final[kind.metric]
    # 4 significant digits, as a table shows them; finals.json keeps every digit
    return {k: float(f"{float(v):.4g}") for k, v in out.items() if v is not None}


def outcome_sentence(kind: Any, name: str, value: float, half: float, seeds: int,
                     learned: bool, n_learned: int, n_runs: int) -> str:  # fmt: skip
    """The sentence stating a study's outcome: its best configuration ``name``, the verdict's
    measure ``value`` with its 95% half-width over ``seeds`` seeds, learned or not, and how
    many of its ``n_runs`` configurations learned."""
    return (
        f"best configuration **{name}**: {words(kind).verdict_text} {value:.3f} ± {half:.3f} (95% "
        f"t-interval of the mean over {seeds} seeds; {words(kind).no_learning_text}): "
        f"{conclusion(kind, learned)}. {n_learned} of {n_runs} configurations learned."
    )
