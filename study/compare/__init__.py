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
import dataclasses
import json
import re
import sys
from typing import Any

from search_spaces import params_of
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
from study.orchestration.execute import execute
from study.orchestration.plan import Plan, make_plan, space_name
from study.stats import N_RESAMPLES, check_resamples
from study.tasks import DEFAULT_TASK

__all__ = [
    "FAMILIES",
    "MATCH_FAMILY",
    "MULTI",
    "PRESETS",
    "beyond",
    "check_stage",
    "digest",
    "eval_seeds",
    "fresh_text",
    "main",
    "matched_budget",
    "picks",
    "preset_plan",
    "report",
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


def _has_size(space: str) -> bool:
    from learners.registry import family

    return family(space).grow is not None


def _sized_by_hand(args: argparse.Namespace, space: str) -> bool:
    """Whether ``--set`` or ``--range`` gives a size parameter of ``space``'s family."""
    sizes = {p.name for p in params_of(space) if p.size}
    return any(text.partition(".")[0] == space and text.partition(".")[2].split("=")[0] in sizes
               for text in [*args.set, *args.range])  # fmt: skip


def _launch_kw(args: argparse.Namespace, space: str, name: str, budget: Any,
               budget_default: bool, **over: Any) -> dict[str, Any]:  # fmt: skip
    """``make_plan``'s keywords of the tuning study of ``space`` at ``budget`` flops (the
    matched budget; ``budget_default``: not given, so a size set by hand wins), as plain
    values; ``over`` replaces some (the evaluation's trials, pack, seeds and steps)."""
    kw: dict[str, Any] = dict(
        space=space, task=args.task, study_name=name, runs_dir=args.runs_dir,
        concurrency=args.concurrency, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, pack=pack_option(args.pack), trials=args.trials,
        seeds=args.seeds, steps=args.steps, address=args.address,
        tracking_uri=args.tracking_uri, storage=args.storage, data_dir=args.data_dir,
        smoke=args.smoke, reuse_actors=args.reuse_actors, expose_ray=args.expose_ray, cli=True,
        command=args.command_line,
    )  # fmt: skip
    kw.update(over)
    if budget is not None and _has_size(space):  # a family with no size runs as it is
        if budget_default and _sized_by_hand(args, space):
            budget = "auto"  # the default budget yields to a size the user set (launch's auto)
        kw["budget_flops"] = budget
    mine = {flag: [text.partition(".")[2] for text in getattr(args, flag)
                   if text.partition(".")[0] == space] for flag in ("set", "range")}  # fmt: skip
    kw.update(space_options(mine["set"], mine["range"]))
    return kw


def _check_budget(budget: str, spaces: list[str], task: str, given: str | None) -> None:
    """Refuse, in one line, a budget that no family of the comparison fits."""
    from search_spaces import make_space
    from study.tasks import make_env

    try:
        value = float(budget)
    except ValueError:
        return  # auto, none or a word launch refuses by name
    sized = [s for s in spaces if _has_size(s)]
    m = make_env(task).obs_size
    fits = []
    for s in sized:
        try:
            make_space(s, value, m)
            fits.append(s)
        except ValueError:
            pass
    if sized and not fits:
        raise ValueError(f"--budget-flops {given}: no family of {', '.join(sized)} fits "
                         f"{value:,.0f} flops per step; allowed: a larger budget")  # fmt: skip


# a comparison's name: its stages' study names add a suffix (-columnar, -eval, ...)
NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,89}")


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
    if args.preset == "atari-prediction":
        from study.compare.atari import run_atari

        return run_atari(args)
    if args.preset is not None or args.scale != 1.0:
        return run_preset(args)
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
    name = args.name if args.name is not None else f"compare-{args.task}"
    try:
        if not spaces:
            raise ValueError(f"--spaces {args.spaces!r} names no family")
        spaces = [space_name(s, True, "spaces") for s in spaces]  # module:FAMILY loaded
        if len(set(spaces)) < len(spaces):
            raise ValueError(f"--spaces {args.spaces!r} names a family twice")
        for flag in ("set", "range"):
            for text in getattr(args, flag):
                family, dot, _ = text.partition(".")
                if not dot or family not in spaces:
                    raise ValueError(f"--{flag} {text!r} must start with one of the families "
                                     f"compared: {', '.join(s + '.' for s in spaces)}")  # fmt: skip
        given_budget = args.budget_flops
        by_default = given_budget is None
        budget = matched_budget(given_budget, args.task, args.data_dir)
        _check_budget(budget, spaces, args.task, given_budget)
        stages = {f"{name}-{s}": make_plan(**_launch_kw(args, s, f"{name}-{s}", budget,
                                                        by_default)) for s in spaces}  # fmt: skip
        tuning = max(plan.seeds for plan in stages.values())
        fresh = eval_seeds(args.eval_seeds, tuning)
        # The evaluation runs one configuration per family: a pack of K holds at most those.
        size = pack_option(args.pack)  # (checked with the tuning studies' plans above)
        eval_plan = make_plan(**_launch_kw(
            args, spaces[0], name, budget, by_default, trials=len(spaces),
            pack=None if size is None else min(size, len(spaces)),
            seeds=fresh if isinstance(fresh, int) else len(fresh),
            steps=args.eval_steps or args.steps))  # fmt: skip
    except ValueError as e:
        return fail(str(e))
    if budget not in ("auto", "none"):
        why = ("the paper's CCN 20:4 on this task, for every family (--budget-flops match; "
               "'paper' sizes each family as in the paper)" if given_budget is None
               or str(given_budget).strip().lower() == "match" else f"--budget-flops "
               f"{given_budget}")  # fmt: skip
        by_hand = [s for s in spaces if by_default and _sized_by_hand(args, s)]
        print(f"every family with a size is sized to {float(budget):,.0f} flops per "
              f"step per stream: {why}"
              + (f"; not {', '.join(by_hand)}, whose size --set or --range gives" if by_hand
                 else ""))  # fmt: skip
    return _compare(args, name, stages, eval_plan, fresh)


def _compare(args: argparse.Namespace, name: str, stages: dict[str, Plan], eval_plan: Plan,
             fresh: int | list[int]) -> int:  # fmt: skip
    """Run the tuning studies not yet done, then the evaluation of their picks, on one Ray
    session, and report."""
    from study.orchestration import local_ray

    uri, runs = eval_plan.tracking_uri, eval_plan.runs
    options = {study: _search_options(plan) for study, plan in stages.items()}
    options[name] = stage_options(eval_plan, **{"fresh seeds": fresh_text(fresh),
                                                "picked from": ",".join(stages)})  # fmt: skip
    try:
        for study, opts in options.items():
            check_stage(uri, study, opts)
    except ValueError as e:
        return fail(str(e))
    states = {study: stage_state(uri, study) for study in [*stages, name]}
    stopped = [study for study, state in states.items() if state == "interrupted"]
    if stopped and not args.resume:
        return fail(f"comparison {name!r} was interrupted in {stopped[0]}; add --resume "
                    f"to continue it")  # fmt: skip
    if args.resume and not stopped and all(v == "new" for v in states.values()):
        return fail(f"--resume: no comparison {name!r} to resume in {uri}")
    if running := running_refusal(runs, [*stages, name]):
        return fail(running)
    try:
        with local_ray.session(args.address, runs, name, args.expose_ray) as dashboard:
            if dashboard:
                print(local_ray.dashboard_hint(dashboard))
            rc = _stages(name, stages, eval_plan, states, fresh, args.task, options)
    except local_ray.Unreachable as e:
        return fail(str(e))
    if rc:
        return rc
    return report(eval_plan, [name, *stages], args.bootstrap_resamples)


def _search_options(plan: Plan) -> dict[str, str]:
    """What makes a tuning study of a comparison what it is: its seeds, trials and space
    (bounds, fixed values, budget; the sampler's seed)."""
    space = plan.space
    search = digest([{"params": repr(space.params), "fixed": repr(space.fixed),
                      "budget": space.budget_flops, "sampler": plan.sampler_seed}])  # fmt: skip
    return stage_options(plan, seeds=seeds_text(range(plan.seeds)), trials=plan.trials,
                         search=search.partition(" ")[2])  # fmt: skip


def _stages(name: str, stages: dict[str, Plan], eval_plan: Plan, states: dict[str, str],
            fresh: int | list[int], task: str,
            options: dict[str, dict[str, str]]) -> int:  # fmt: skip
    n = len(stages) + 1
    for i, (study, plan) in enumerate(stages.items(), 1):
        print(f"\n== [{i}/{n}] tuning: {study} ({states[study]})")
        if states[study] == "done":
            print("already tuned; not run again")
            continue
        stage = json.dumps({**options[study], "command": plan.command})
        rc = execute(dataclasses.replace(plan, resume=states[study] == "interrupted",
                                         stage=stage))  # fmt: skip
        if rc:
            return rc
    print(f"\n== [{n}/{n}] evaluation: {name} ({states[name]})")
    if states[name] == "done":
        print("already evaluated; not run again")
        return 0
    try:
        configs, seeds = picks(eval_plan.tracking_uri, list(stages), task, fresh)
    except ValueError as e:
        return fail(str(e))
    return run_stage(eval_plan, configs, seeds, eval_plan.role,
                     states[name] == "interrupted", eval_plan.command, options[name])  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
