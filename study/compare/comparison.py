"""A comparison of learner families as a plan of plain values, and its run.

:func:`plan_comparison` checks every input and plans each stage before anything starts: one
tuning study per family (``NAME-FAMILY``, a ``study.orchestration.plan.Plan`` each) and the
evaluation of their picks on fresh seeds (``NAME``); :func:`run_comparison` runs the stages
not yet done on one Ray session and reports. ``python -m study.compare`` parses its command
line into these values; ``study.api`` exposes both.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from search_spaces import params_of
from study.cli import fail
from study.compare.budget import matched_budget
from study.compare.stages import (
    check_stage,
    digest,
    fresh_text,
    picks,
    report,
    run_stage,
    running_refusal,
    seeds_text,
    stage_options,
    stage_state,
)
from study.compare.stages import eval_seeds as parse_eval_seeds
from study.orchestration.execute import execute
from study.orchestration.plan import Plan, make_plan, space_name
from study.stats import N_RESAMPLES, check_resamples
from study.tasks import DEFAULT_TASK

# a comparison's name: its stages' study names add a suffix (-columnar, -eval, ...)
NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,89}")


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Everything a comparison runs, checked: its tuning studies by name, the evaluation of
    their picks on ``fresh`` seeds (a count, chosen after the tuning seeds, or the seeds),
    and how networks were sized (``sizing``, a line said as it starts; empty when each
    family keeps its own size)."""

    name: str
    task: str
    tuning: Mapping[str, Plan]
    evaluation: Plan
    fresh: int | tuple[int, ...]
    sizing: str = ""
    resume: bool = False
    bootstrap_resamples: int = N_RESAMPLES


def _has_size(space: str) -> bool:
    from learners.registry import family

    return family(space).grow is not None


def _sized_by_hand(space: str, fixed: Mapping[str, Any], ranges: Mapping[str, Any]) -> bool:
    """Whether ``fixed`` or ``ranges`` (one family's) set a size parameter of ``space``."""
    sizes = {p.name for p in params_of(space) if p.size}
    return bool(sizes & {*fixed, *ranges})


def _check_budget(budget: str, spaces: list[str], task: str, given: Any, flag: str) -> None:
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
        raise ValueError(f"{flag} {given}: no family of {', '.join(sized)} fits "
                         f"{value:,.0f} flops per step; allowed: a larger budget")  # fmt: skip


def plan_comparison(spaces: Sequence[str], task: str = DEFAULT_TASK, *, name: str | None = None,
                    fixed: Mapping[str, Mapping[str, Any]] | None = None,
                    ranges: Mapping[str, Mapping[str, tuple[float, float]]] | None = None,
                    budget_flops: Any = None, eval_seeds: Any = 30,
                    eval_steps: int | None = None, resume: bool = False,
                    bootstrap_resamples: int = N_RESAMPLES, cli: bool = False,
                    **launch: Any) -> Comparison:  # fmt: skip
    """The comparison of the families ``spaces`` on ``task``: a tuning study each (``launch``:
    ``make_plan``'s keywords, e.g. ``trials``, ``seeds``, ``steps``, ``pack``, ``runs_dir``),
    each family's parameters fixed or bounded by its entry of ``fixed`` / ``ranges``
    (``{"columnar": {"alpha": 1e-3}}``), every family with a size sized to ``budget_flops``
    (None or ``"match"``: the CCN 20:4's flops on the task; ``"paper"``: each family's own;
    ``"none"``: sizes searched; or a number), then the evaluation of the picks on
    ``eval_seeds`` fresh seeds (a count, or the seeds) for ``eval_steps`` (default the
    tuning steps). A one-line ValueError names the option at fault (as the command line
    spells it with ``cli``)."""
    opt = (lambda o: "--" + o.replace("_", "-")) if cli else (lambda o: o)  # noqa: E731
    fixed, ranges = dict(fixed or {}), dict(ranges or {})
    if name is not None and not NAME.fullmatch(str(name)):
        shown = str(name) if len(str(name)) <= 80 else f"{str(name)[:80]}... ({len(name)} chars)"
        raise ValueError(f"{opt('name')} {shown}: allowed: letters, digits and ._- (at most "
                         f"90, not starting with a dot)")  # fmt: skip
    check_resamples(bootstrap_resamples)
    names = [str(s).strip() for s in ([spaces] if isinstance(spaces, str) else spaces)]
    if not [s for s in names if s]:
        raise ValueError(f"{opt('spaces')} {','.join(names)!r} names no family")
    chosen = [space_name(s, True, "spaces") for s in names if s]  # module:FAMILY loaded
    if len(set(chosen)) < len(chosen):
        raise ValueError(f"{opt('spaces')} {','.join(names)!r} names a family twice")
    for option, given in (("fixed", fixed), ("ranges", ranges)):
        for family in given:
            if family not in chosen:
                raise ValueError(f"{opt(option)}: {family!r} is not a family compared; allowed: "
                                 f"{', '.join(chosen)}")  # fmt: skip
    name = name if name is not None else f"compare-{task}"
    by_default = budget_flops is None
    budget = matched_budget(budget_flops, task, launch.get("data_dir"))
    _check_budget(budget, chosen, task, budget_flops, opt("budget_flops"))

    def stage_plan(space: str, study: str, **over: Any) -> Plan:
        kw = {**launch, **over, "space": space, "task": task, "study_name": study, "cli": cli}
        mine_fixed, mine_ranges = fixed.get(space, {}), ranges.get(space, {})
        if budget is not None and _has_size(space):  # a family with no size runs as it is
            by_hand = by_default and _sized_by_hand(space, mine_fixed, mine_ranges)
            kw["budget_flops"] = "auto" if by_hand else budget  # a size set by hand wins
        return make_plan(**kw, fixed=dict(mine_fixed), ranges=dict(mine_ranges))

    tuning = {f"{name}-{s}": stage_plan(s, f"{name}-{s}") for s in chosen}
    fresh = parse_eval_seeds(_seeds_text(eval_seeds), max(p.seeds for p in tuning.values()))
    size = launch.get("pack")  # (checked with the tuning studies' plans above)
    evaluation = stage_plan(
        chosen[0], name, trials=len(chosen), pack=None if size is None else min(size, len(chosen)),
        seeds=fresh if isinstance(fresh, int) else len(fresh),
        steps=eval_steps or launch.get("steps"))  # fmt: skip
    sizing = ""
    if budget not in ("auto", "none"):
        given = str(budget_flops).strip().lower() if budget_flops is not None else None
        why = (f"the paper's CCN 20:4 on this task, for every family ({opt('budget_flops')} "
               f"match; 'paper' sizes each family as in the paper)" if given in (None, "match")
               else f"{opt('budget_flops')} {budget_flops}")  # fmt: skip
        by_hand = [
            s
            for s in chosen
            if by_default and _sized_by_hand(s, fixed.get(s, {}), ranges.get(s, {}))
        ]
        sizing = (f"every family with a size is sized to {float(budget):,.0f} flops per step "
                  f"per stream: {why}" + (f"; not {', '.join(by_hand)}, whose size "
                                          f"{opt('set')} or {opt('range')} gives" if by_hand
                                          else ""))  # fmt: skip
    return Comparison(name, task, tuning, evaluation,
                      fresh if isinstance(fresh, int) else tuple(fresh), sizing, resume,
                      bootstrap_resamples)  # fmt: skip


def _seeds_text(value: Any) -> str:
    """Fresh seeds as ``--eval-seeds`` spells them: a count or a list of seeds."""
    if isinstance(value, (list, tuple, range)):
        return ",".join(str(v) for v in value) + ("," if len(value) == 1 else "")
    return str(value)


def run_comparison(comparison: Comparison) -> int:
    """Run the tuning studies not yet done, then the evaluation of their picks, on one Ray
    session, and report: 0 when done, 130 when interrupted, 2 when refused or failed."""
    from study.orchestration import local_ray

    c, plan = comparison, comparison.evaluation
    if c.sizing:
        print(c.sizing)
    fresh = c.fresh if isinstance(c.fresh, int) else list(c.fresh)
    uri, runs = plan.tracking_uri, plan.runs
    options = {study: _search_options(p) for study, p in c.tuning.items()}
    options[c.name] = stage_options(plan, **{"fresh seeds": fresh_text(fresh),
                                             "picked from": ",".join(c.tuning)})  # fmt: skip
    try:
        for study, opts in options.items():
            check_stage(uri, study, opts)
    except ValueError as e:
        return fail(str(e))
    states = {study: stage_state(uri, study) for study in [*c.tuning, c.name]}
    stopped = [study for study, state in states.items() if state == "interrupted"]
    if stopped and not c.resume:
        return fail(f"comparison {c.name!r} was interrupted in {stopped[0]}; add --resume "
                    f"to continue it")  # fmt: skip
    if c.resume and not stopped and all(v == "new" for v in states.values()):
        return fail(f"--resume: no comparison {c.name!r} to resume in {uri}")
    if running := running_refusal(runs, [*c.tuning, c.name]):
        return fail(running)
    try:
        with local_ray.session(plan.address, runs, c.name, plan.expose_ray) as dashboard:
            if dashboard:
                print(local_ray.dashboard_hint(dashboard))
            rc = _stages(c, states, fresh, options)
    except local_ray.Unreachable as e:
        return fail(str(e))
    if rc:
        return rc
    return report(plan, [c.name, *c.tuning], c.bootstrap_resamples)


def _search_options(plan: Plan) -> dict[str, str]:
    """What makes a tuning study of a comparison what it is: its seeds, trials and space
    (bounds, fixed values, budget; the sampler's seed)."""
    space = plan.space
    search = digest([{"params": repr(space.params), "fixed": repr(space.fixed),
                      "budget": space.budget_flops, "sampler": plan.sampler_seed}])  # fmt: skip
    return stage_options(plan, seeds=seeds_text(range(plan.seeds)), trials=plan.trials,
                         search=search.partition(" ")[2])  # fmt: skip


def _stages(c: Comparison, states: dict[str, str], fresh: int | list[int],
            options: dict[str, dict[str, str]]) -> int:  # fmt: skip
    n = len(c.tuning) + 1
    for i, (study, plan) in enumerate(c.tuning.items(), 1):
        print(f"\n== [{i}/{n}] tuning: {study} ({states[study]})")
        if states[study] == "done":
            print("already tuned; not run again")
            continue
        stage = json.dumps({**options[study], "command": plan.command})
        rc = execute(dataclasses.replace(plan, resume=states[study] == "interrupted",
                                         stage=stage))  # fmt: skip
        if rc:
            return rc
    print(f"\n== [{n}/{n}] evaluation: {c.name} ({states[c.name]})")
    if states[c.name] == "done":
        print("already evaluated; not run again")
        return 0
    plan = c.evaluation
    try:
        configs, seeds = picks(plan.tracking_uri, list(c.tuning), c.task, fresh)
    except ValueError as e:
        return fail(str(e))
    return run_stage(plan, configs, seeds, plan.role, states[c.name] == "interrupted",
                     plan.command, options[c.name])  # fmt: skip
