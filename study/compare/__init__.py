"""``python -m study.compare --spaces columnar,hybrid,...``: tune each family, then evaluate
the best configuration of each on fresh seeds, and report.

Stages, each a launch of ``study.launch`` recorded in MLflow like any other:

1. one tuning study per family (experiment ``NAME-SPACE``; Optuna study of the same name),
   on seeds ``0..S-1``, every family sized to one budget of flops per step unless told
   otherwise (``--budget-flops match``: the CCN 20:4's, ``matched_budget``);
2. one evaluation (experiment ``NAME``): Ray Tune runs the best configuration of every family
   (the Optuna trial with the lowest final windowed MSRE) on ``--eval-seeds`` seeds that no
   tuning trial used, one trial per family, its child run tagged ``ccn.role=eval``;
3. the report of the evaluation and the tuning studies together (``study.report``), whose
   summary table takes its numbers from the evaluation runs.

A stage whose latest launch finished is not run again, so the same command continues a
comparison killed part way (with ``--resume`` when a stage was interrupted mid-way, as
``study.launch`` asks).

``--preset jmlr-trace-patterning`` runs instead the paper's experiment (Javed et al., JMLR 2023) as
a grid, with no search (``study.compare.preset``). Each stage is a ``study.orchestration.plan.Plan``
run by ``study.orchestration.execute``, on one Ray session for the whole comparison
(``study.orchestration.local_ray.session``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from study.cli import (
    Parser,
    count,
    fail,
    pack_option,
    shown,
    space_options,
    study_options,
)
from study.compare.budget import FAMILIES, MATCH_FAMILY, matched_budget  # noqa: F401
from study.compare.comparison import NAME, Comparison, plan_comparison, run_comparison
from study.compare.options import PresetOptions, preset_options, refuse_search_options
from study.compare.preset import (  # noqa: F401 - re-exported
    MULTI,
    PRESETS,
    beyond,
    preset_plan,
    run_preset,
)
from study.compare.stages import (  # noqa: F401 - eval_seeds and picks re-exported
    check_stage,
    digest,
    eval_seeds,
    fresh_text,
    picks,
    report,
    run_stage,
    running_refusal,
    seeds_text,
    stage_options,
    stage_state,
)
from study.interrupt import interruptible
from study.orchestration.plan import space_name
from study.stats import N_RESAMPLES, check_resamples
from study.tasks import DEFAULT_TASK

__all__ = [
    "FAMILIES",
    "Comparison",
    "MATCH_FAMILY",
    "MULTI",
    "PRESETS",
    "PresetOptions",
    "beyond",
    "check_stage",
    "digest",
    "eval_seeds",
    "fresh_text",
    "main",
    "matched_budget",
    "picks",
    "plan_comparison",
    "preset_options",
    "preset_plan",
    "report",
    "run_comparison",
    "run_preset",
    "run_stage",
    "running_refusal",
    "seeds_text",
    "stage_options",
    "stage_state",
]


def _parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m study.compare",
        description="Tune each learner family, evaluate each best configuration on fresh "
        "seeds, and report the comparison.",
    )
    p.add_argument("--spaces", default=",".join(FAMILIES),
                   help="families, comma-separated (with --preset: the preset's families to "
                   "run, default all)")  # fmt: skip
    study_options(p, DEFAULT_TASK, "run a worker's trials in one Ray actor (as in "
                  "study.launch)")  # fmt: skip
    p.add_argument("--name", default=None, help="comparison name (default compare-TASK)")
    p.add_argument("--trials", type=count(1), default=None, help="tuning trials per family")
    p.add_argument("--seeds", type=count(1, 4096), default=None, help="seeds per tuning trial")
    p.add_argument("--steps", type=count(1, 10**12), default=None,
                   help="steps per seed when tuning")  # fmt: skip
    p.add_argument("--eval-seeds", default="30",
                   help="fresh seeds per family's pick: a count (30; they start at 1000, or "
                   "after the largest tuning seed), a range FIRST-LAST or a list A,B,C; never a "
                   "tuning seed; with --preset also auto or auto:CAP: seeds added in rounds "
                   "(20, 40, 80, ... a family, cap 200) until every claim is resolved")  # fmt: skip
    p.add_argument("--racing", default=None, metavar="S1,S2,...",
                   help="--preset: race the grid over tuning seeds: every configuration on the "
                   "first S1 seeds, each family's better half on seeds up to S2, and so on; the "
                   "last count must be at least 20 (e.g. 5,10,20)")  # fmt: skip
    p.add_argument("--stability-threshold", default="0.5",
                   help="--preset with --racing: a pick re-selected in fewer bootstrap "
                   "resamples of its tuning seeds than this share also runs its runner-up on "
                   "the fresh seeds (default 0.5)")  # fmt: skip
    p.add_argument("--equivalence-margin", default="0.05",
                   help="--preset: two families are equivalent when the difference of their "
                   "mean normalised MSRE is shown within +-this (two one-sided tests; default "
                   "0.05)")  # fmt: skip
    p.add_argument("--bootstrap-resamples", type=count(1, None), default=N_RESAMPLES,
                   help=f"resamples of every bootstrap interval ({N_RESAMPLES:,}; 1,000 to "
                   "1,000,000)")  # fmt: skip
    p.add_argument("--eval-steps", type=count(1, 10**12), default=None,
                   help="default: the tuning steps")  # fmt: skip
    p.add_argument("--budget-flops", default=None,
                   help="flops per step per stream every family's network is sized to: a "
                   "number; match (default): the paper's CCN 20:4 on the task, so every family "
                   "gets the same compute; paper: each family's own paper-sized network; none: "
                   "sizes are searched")  # fmt: skip
    p.add_argument("--set", action="append", default=[], metavar="SPACE.NAME=VALUE",
                   help="fix a parameter of one family's space; repeatable")  # fmt: skip
    p.add_argument("--range", action="append", default=[], metavar="SPACE.NAME=LOW:HIGH",
                   help="new bounds for a parameter of one family's space; repeatable")  # fmt: skip
    p.add_argument(
        "--preset",
        default=None,
        help=f"run a published protocol as a grid instead: {', '.join([*PRESETS, *MULTI])}",
    )
    p.add_argument("--games", default=None,
                   help="--preset atari-prediction: games, comma-separated (Pong,MsPacman or "
                   "atari_pong,...; default every trace in --traces-dir)")  # fmt: skip
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="--preset: divide its steps and stage lengths by this (default 1)",
    )
    p.add_argument("--update-rule", default=None, choices=("ours", "reference"),
                   help="--preset: every family's update rule (default reference, the "
                   "authors' C++, so the step-size axis is the paper's; SnAp-1 takes "
                   "T-BPTT's)")  # fmt: skip
    p.add_argument("--extend-grid", action="store_true",
                   help="--preset: where a family's pick has the smallest or largest step size "
                   "of its grid, run two more beyond that edge (the pick's setting otherwise), "
                   "pick again and run the picks on the fresh seeds, reported apart in "
                   "NAME-extended (the paper's grid and its report stay as they are)")  # fmt: skip
    p.add_argument("--pack", default="auto",
                   help="configurations per trial, run as one program (as in study.launch; "
                   "an evaluation packs only configurations of one shape)")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue an interrupted stage")
    p.add_argument("--smoke", action="store_true", help="tiny budget, for checks")
    return p


@interruptible
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        check_resamples(args.bootstrap_resamples)
        if args.name is not None and not NAME.fullmatch(args.name):
            raise ValueError(f"--name {shown(args.name)}: allowed: letters, digits and ._- (at "
                             f"most 90, not starting with a dot)")  # fmt: skip
    except ValueError as e:
        return fail(str(e))
    if args.preset is not None or args.scale != 1.0:
        try:
            refuse_search_options(args)
        except ValueError as e:
            return fail(str(e))
        if args.preset == "atari-prediction":
            from study.compare.atari import run_atari

            return run_atari(preset_options(args))
        return run_preset(preset_options(args))
    if args.games is not None:
        return fail("--games applies to --preset atari-prediction only")
    if args.extend_grid:
        return fail("--extend-grid applies to --preset (a search has no grid to extend)")
    if args.racing is not None:
        return fail(f"--racing {args.racing} applies to --preset (a search has no grid to race)")
    if str(args.eval_seeds).strip().lower().startswith("auto"):
        return fail(f"--eval-seeds {args.eval_seeds} applies to --preset (whose claims it "
                    f"resolves); allowed here: a count, FIRST-LAST or A,B,C")  # fmt: skip
    if args.update_rule is not None:
        return fail(f"--update-rule {args.update_rule} applies to --preset; a comparison sets it "
                    f"per family: --set FAMILY.update_rule={args.update_rule}")  # fmt: skip
    spaces = [s.strip() for s in args.spaces.split(",") if s.strip()]
    try:
        if not spaces:
            raise ValueError(f"--spaces {args.spaces!r} names no family")
        spaces = [space_name(s, True, "spaces") for s in spaces]  # module:FAMILY loaded
        if len(set(spaces)) < len(spaces):
            raise ValueError(f"--spaces {args.spaces!r} names a family twice")
        fixed: dict[str, dict[str, Any]] = {}
        ranges: dict[str, dict[str, Any]] = {}
        for flag, into in (("set", fixed), ("range", ranges)):
            for text in getattr(args, flag):
                family, dot, rest = text.partition(".")
                if not dot or family not in spaces:
                    raise ValueError(f"--{flag} {text!r} must start with one of the families "
                                     f"compared: {', '.join(s + '.' for s in spaces)}")  # fmt: skip
                parsed = space_options(*(([rest], []) if flag == "set" else ([], [rest])))
                into.setdefault(family, {}).update(parsed["fixed" if flag == "set" else "ranges"])
        comparison = plan_comparison(
            spaces, args.task, name=args.name, fixed=fixed, ranges=ranges,
            budget_flops=args.budget_flops, eval_seeds=args.eval_seeds,
            eval_steps=args.eval_steps, resume=args.resume,
            bootstrap_resamples=args.bootstrap_resamples, cli=True,
            runs_dir=args.runs_dir, concurrency=args.concurrency,
            cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
            pack=pack_option(args.pack), trials=args.trials, seeds=args.seeds, steps=args.steps,
            address=args.address, tracking_uri=args.tracking_uri, storage=args.storage,
            data_dir=args.data_dir, smoke=args.smoke, reuse_actors=args.reuse_actors,
            expose_ray=args.expose_ray, command=args.command_line)  # fmt: skip
    except ValueError as e:
        return fail(str(e))
    return run_comparison(comparison)


if __name__ == "__main__":
    sys.exit(main())
