"""What a preset's run is given (``--preset``): a frozen record of typed values that the
preset's modules read, never the command line's parsed arguments.

:func:`preset_options` makes one from ``python -m study.compare``'s arguments after the
command line's own refusals (:func:`refuse_search_options`); a Python caller builds one
directly. The texts a refusal echoes (``eval_seeds``, ``racing``, the thresholds) stay as
typed and are checked where they are read, before anything starts.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from study.compare.budget import FAMILIES
from study.stats import N_RESAMPLES


@dataclasses.dataclass(frozen=True)
class PresetOptions:
    """A preset's run: which preset, at which scale, which families, how many seeds, how the
    picks are judged, and where and how its launches run (``study.compare``'s options of
    the same names)."""

    preset: str | None
    scale: float = 1.0
    spaces: str = ",".join(FAMILIES)  # the preset's families to run, comma-separated
    name: str | None = None
    seeds: int | None = None  # tuning seeds (default: the preset's)
    eval_seeds: str = "30"  # a count, FIRST-LAST, A,B,C, auto or auto:CAP
    racing: str | None = None  # S1,S2,...: tuning seeds of each racing round
    stability_threshold: str = "0.5"
    equivalence_margin: str = "0.05"
    bootstrap_resamples: int = N_RESAMPLES
    budget_flops: str | None = None  # paper (default), match or a number
    update_rule: str | None = None  # ours or reference (default)
    extend_grid: bool = False
    games: str | None = None  # atari-prediction: the games, comma-separated
    resume: bool = False
    pack: str = "auto"
    runs_dir: str = "runs"
    tracking_uri: str | None = None
    storage: str | None = None
    address: str | None = None
    expose_ray: bool = False
    concurrency: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    reuse_actors: bool = False
    data_dir: str | None = None
    command_line: str = ""


def preset_options(args: Any) -> PresetOptions:
    """The preset's options of ``study.compare``'s parsed arguments ``args``."""
    return PresetOptions(**{f.name: getattr(args, f.name)
                            for f in dataclasses.fields(PresetOptions)})  # fmt: skip


def refuse_search_options(args: Any) -> None:
    """A one-line ValueError for an option of a search given with ``--preset``, whose grid
    is fixed (``--steps`` scales with ``--scale``)."""
    given = [f"--{k.replace('_', '-')}" for k in ("trials", "eval_steps")
             if getattr(args, k) is not None] + [f"--{k}" for k in ("set", "range")
                                                 if getattr(args, k)]  # fmt: skip
    if args.steps is not None:
        given.append("--steps (use --scale)")
    if given:
        raise ValueError(f"{given[0]} does not apply to --preset: its grid is fixed")
