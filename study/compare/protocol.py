"""One preset's protocol, stage by stage: the grid on the tuning seeds, the racing rounds
(``--racing``), each family's pick on fresh seeds in one stage or in rounds sized by power
(``--eval-seeds auto``), a runner-up where a pick is unstable, and the report.

Stages and their MLflow experiments (``NAME`` is ``--name`` or the preset's default name):

- ``NAME``: every configuration on the first tuning seeds;
- ``NAME-race2``, ``NAME-race3``, ...: the racing rounds (``study.compare.racing``);
- ``NAME-fresh`` (``NAME-race-fresh`` after racing): the picks on the fresh seeds; with
  ``--eval-seeds auto`` further rounds ``...-fresh2``, ``...-fresh3``, ... add seeds (20, 40,
  80, 160, ... a family, up to the cap) until every claim is resolved, each look of the
  verdict rules at ``alpha / looks`` (``study.verdicts``);
- ``...-fresh-runner-up``: after racing, the runner-up of each family whose pick's stability
  is below ``--stability-threshold``, on the first fresh round's seeds.

Every stage records the options that define it and is refused when a re-run's differ
(``study.compare.stages.check_stage``); a stage whose launch finished is not run again.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from study.cli import fail
from study.compare import racing
from study.compare.options import PresetOptions
from study.compare.stages import (
    EVAL_SEED_BASE,
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
from study.orchestration.plan import Plan, make_plan
from study.verdicts import check_margin

AUTO_FIRST = 20  # fresh seeds a family in the first round of --eval-seeds auto
AUTO_CAP = 200  # its default cap
AUTO_MIN_CAP = 10


def auto_schedule(text: str) -> tuple[int, ...] | None:
    """``--eval-seeds auto`` or ``auto:CAP`` as the cumulative fresh seeds a family after each
    round (20, 40, 80, ... then the cap); None for any other value. Raises a one-line
    ValueError for a cap outside 10 to 4096."""
    word = str(text).strip().lower()
    if word != "auto" and not word.startswith("auto:"):
        return None
    cap_text = word.partition(":")[2] or str(AUTO_CAP)
    try:
        cap = int(cap_text)
    except ValueError:
        cap = -1
    if not AUTO_MIN_CAP <= cap <= 4096:
        raise ValueError(f"--eval-seeds {text}: the cap of fresh seeds a family must be a whole "
                         f"number from {AUTO_MIN_CAP} to 4096 (auto:CAP; default "
                         f"{AUTO_CAP})")  # fmt: skip
    schedule, n = [], min(AUTO_FIRST, cap)
    while n < cap:
        schedule.append(n)
        n *= 2
    return (*schedule, cap)


class Stage:
    """A stage of the protocol: its experiment, its options, its state."""

    def __init__(self, name: str, options: dict[str, str], seeds: list[int] | None = None):
        self.name, self.options, self.seeds, self.state = name, options, seeds, "new"


def plan_stages(
    args: PresetOptions, plan: Plan, configs, schedule, fresh, auto
) -> dict[str, list[Stage]]:
    """Every stage this command asks for, with the options that define it."""
    name = plan.name
    rounds = schedule or (plan.seeds,)
    tuning = [Stage(name, stage_options(plan, seeds=seeds_text(range(rounds[0])),
                                        configurations=digest(configs)))]  # fmt: skip
    for k in range(1, len(rounds)):
        before = ",".join(s.name for s in tuning)
        tuning.append(Stage(f"{name}-race{k + 1}", stage_options(
            plan, seeds=seeds_text(range(rounds[k - 1], rounds[k])), **{"picked from": before},
            round=f"{k + 1} of {len(rounds)} ({racing.KEEP:.0%} of each family kept)"),
            list(range(rounds[k - 1], rounds[k]))))  # fmt: skip
    picked_from = ",".join(s.name for s in tuning)
    prefix = f"{name}-race-fresh" if schedule else f"{name}-fresh"
    fresh_stages = []
    if auto is None:
        options = {"fresh seeds": fresh_text(fresh), "picked from": picked_from}
        fresh_stages.append(Stage(prefix, stage_options(plan, **options)))
    else:
        start = max(EVAL_SEED_BASE, rounds[-1])
        for k, n in enumerate(auto):
            seeds = list(range(start + (auto[k - 1] if k else 0), start + n))
            fresh_stages.append(Stage(prefix + (str(k + 1) if k else ""), stage_options(
                plan, **{"fresh seeds": seeds_text(seeds), "picked from": picked_from,
                         "round": f"{k + 1} of {len(auto)} (--eval-seeds {args.eval_seeds})"}),
                seeds))  # fmt: skip
    extra = []
    if schedule:
        extra.append(Stage(f"{prefix}-runner-up", stage_options(
            plan, **{"picked from": picked_from, "fresh seeds": "the first fresh round's",
                     "stability threshold": str(args.stability_threshold)})))  # fmt: skip
    return {"tuning": tuning, "fresh": fresh_stages, "runner-up": extra}


def run(args: PresetOptions, preset, configs: list[dict[str, Any]], plan: Plan,
        stage_kw, schedule: tuple[int, ...] | None) -> int:  # fmt: skip
    """The protocol's stages, then its report; ``stage_kw(name, trials, seeds)`` gives a
    stage's ``make_plan`` keywords."""
    try:
        threshold = racing.check_threshold(args.stability_threshold)
        margin = check_margin(args.equivalence_margin)
        auto = auto_schedule(args.eval_seeds)
        if auto and not preset.orderings:
            raise ValueError(f"--eval-seeds {args.eval_seeds}: adds fresh seeds until the "
                             f"preset's claims are resolved, and this preset states none; "
                             f"allowed: a count, FIRST-LAST or A,B,C")  # fmt: skip
        fresh = None if auto else eval_seeds(args.eval_seeds, (schedule or (plan.seeds,))[-1])
        stages = plan_stages(args, plan, configs, schedule, fresh, auto)
        every = [s for group in stages.values() for s in group]
        if running := running_refusal(plan.runs, [s.name for s in every]):
            raise ValueError(running)
        for s in every:
            check_stage(plan.tracking_uri, s.name, s.options)
            s.state = stage_state(plan.tracking_uri, s.name)
    except ValueError as e:
        return fail(str(e))
    stopped = [s.name for s in every if s.state == "interrupted"]
    if stopped and not args.resume:
        return fail(f"preset run {stopped[0]!r} was interrupted; add --resume to continue it")
    if args.resume and all(s.state == "new" for s in every):
        return fail(f"--resume: no preset run {plan.name!r} in {plan.tracking_uri}")
    rounds = schedule or (plan.seeds,)
    fresh_text = (f"fresh seeds in rounds of {', '.join(map(str, auto))} a family until every "
                  f"claim is resolved" if auto else
                  f"{fresh if isinstance(fresh, int) else len(fresh)} fresh seeds")  # fmt: skip
    race_text = (f", raced to {rounds[-1]} tuning seeds ({', '.join(map(str, rounds))})"
                 if schedule else "")  # fmt: skip
    print(f"preset {args.preset} at scale 1/{args.scale:g}: {len(configs)} configurations x "
          f"{rounds[0]} tuning seeds x {plan.steps:,} steps{race_text}, then each family's pick "
          f"on {fresh_text}" + (f" ({preset.claims}, in the paper)" if preset.orderings
                                else ""))  # fmt: skip
    if str(args.budget_flops or "paper").strip().lower() != "paper":
        shapes = {(c["learner"], c.get("truncation")): c["n_features"] for c in configs}
        sizes = ", ".join(f"{f}{'' if k is None else f' k={k}'} {n}"
                          for (f, k), n in shapes.items())  # fmt: skip
        print(f"every network sized to at most {args.budget_flops} flops per step per stream "
              f"(--budget-flops; the ledger's count): {sizes}")  # fmt: skip
    command = args.command_line
    for k, s in enumerate(stages["tuning"]):
        what = "grid on the tuning seeds" if k == 0 else f"racing round {k + 1}"
        print(f"\n== [tuning {k + 1}/{len(rounds)}] {what}: {s.name} ({s.state})")
        if s.state == "done":
            print("already run; not run again")
            continue
        if k == 0:
            chosen, seeds = configs, list(range(rounds[0]))
        else:
            chosen, seeds = racing.survivors(_merged(plan, stages["tuning"][:k])), s.seeds
            print(f"  {len(chosen)} configurations on seeds {seeds_text(seeds)}")
        rc = _run(args, preset, stage_kw, s, chosen, seeds, "tuning", command)
        if rc:
            return rc
    tuning_names = [s.name for s in stages["tuning"]]
    found = racing.stability(_merged(plan, stages["tuning"]))
    picked = [{"learner": f, **s.pick.config} for f, s in found.items()]
    notes = [_rules_line(picked or configs),
             *racing.stability_lines(found, threshold, raced=bool(schedule))]  # fmt: skip
    for line in notes:
        print(f"  {line}")
    if schedule:
        chosen = [dict(s.pick.config) for s in found.values()]
        first_seeds = stages["fresh"][0].seeds or _first_fresh(rounds[-1], fresh)
    looks = len(auto) if auto else 1
    done_fresh = []
    for k, s in enumerate(stages["fresh"]):
        print(f"\n== [fresh {k + 1}/{len(stages['fresh'])}] each family's pick on fresh seeds: "
              f"{s.name} ({s.state})")  # fmt: skip
        if s.state != "done":
            if schedule:
                seeds = s.seeds or _first_fresh(rounds[-1], fresh)
                rc = _run(args, preset, stage_kw, s, chosen, seeds, "eval", command)
            else:
                try:
                    picked, seeds = picks(plan.tracking_uri, tuning_names, preset.task,
                                          s.seeds or fresh)  # fmt: skip
                except ValueError as e:
                    return fail(str(e))
                rc = _run(args, preset, stage_kw, s, picked, seeds, "eval", command)
            if rc:
                return rc
        else:
            print("already run; not run again")
        done_fresh.append(s.name)
        if auto and preset.orderings:
            open_claims = _unresolved(plan, done_fresh, preset, margin, looks)
            if not open_claims:
                print(f"  every claim resolved after {auto[k]} fresh seeds a family")
                break
            if k + 1 < len(auto):
                print(f"  unresolved after {auto[k]} fresh seeds a family: "
                      f"{'; '.join(open_claims)}; next round: {auto[k + 1]}")  # fmt: skip
            else:
                print(f"  the cap of {auto[-1]} fresh seeds a family is reached; unresolved: "
                      f"{'; '.join(open_claims)}")  # fmt: skip
    unstable = [s for s in found.values()
                if schedule and s.share < threshold and s.runner_up is not None]  # fmt: skip
    for s in stages["runner-up"]:
        if not unstable:
            break
        print(f"\n== [runner-up] unstable picks' runners-up on fresh seeds: {s.name} ({s.state})")
        if s.state != "done":
            rc = _run(args, preset, stage_kw, s, [dict(u.runner_up.config) for u in unstable],
                      first_seeds, "eval", command)  # fmt: skip
            if rc:
                return rc
        else:
            print("already run; not run again")
        notes += _runner_up_lines(plan, s.name, done_fresh[0], unstable)
    return report(plan, [*done_fresh, *tuning_names], args.bootstrap_resamples,
                  preset.orderings, preset.claims, margin=margin, looks=looks,
                  notes=notes, folder=plan.name)  # fmt: skip


def _first_fresh(last_tuning: int, fresh: int | list[int]) -> list[int]:
    if isinstance(fresh, list):
        return fresh
    start = max(EVAL_SEED_BASE, last_tuning)
    return list(range(start, start + fresh))


def _run(args, preset, stage_kw, s: Stage, configs, seeds, role: str, command: str) -> int:
    try:
        plan = make_plan(**stage_kw(s.name, len(configs), len(seeds)))
    except ValueError as e:
        return fail(str(e))
    return run_stage(plan, configs, seeds, role, s.state == "interrupted", command, s.options)


def _merged(plan: Plan, stages: list[Stage]) -> list:
    from study.report.load import load_trials, merge_rounds

    trials, _ = load_trials(plan.tracking_uri, [s.name for s in stages])
    return merge_rounds(trials)


def _unresolved(plan: Plan, fresh: list[str], preset, margin: float, looks: int) -> list[str]:
    """The claims not yet resolved on the fresh seeds so far (``--eval-seeds auto``)."""
    from study.report.claims import judge
    from study.report.load import best_per_learner, load_trials, merge_rounds

    trials, _ = load_trials(plan.tracking_uri, fresh)
    best = best_per_learner(merge_rounds(trials))
    values = {k: t.seed_values() for k, t in best.items()}
    found = judge(preset.orderings, values, margin=margin, looks=looks)
    return [f"{j.claim} (about {j.seeds_needed:,} a family for 80% power)"
            for j in found if j.verdict == "unresolved"]  # fmt: skip


def _runner_up_lines(plan: Plan, stage: str, first_fresh: str, unstable) -> list[str]:
    """Which of pick and runner-up did better on the same fresh seeds."""
    from study.report.load import load_trials
    from study.verdicts import welch

    trials, _ = load_trials(plan.tracking_uri, [stage, first_fresh])
    lines = []
    for u in unstable:
        mine = {t.experiment: t for t in trials if t.learner == u.learner and t.role == "eval"}
        if stage not in mine or first_fresh not in mine:
            continue
        a, b = mine[first_fresh].seed_values(), mine[stage].seed_values()
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if a.size < 2 or b.size < 2:
            continue
        w = welch(a, b)
        better = "the pick" if w.diff < 0 else "the runner-up"
        lines.append(f"{u.learner}: on the same fresh seeds the pick scored {a.mean():.3g}, the "
                     f"runner-up {b.mean():.3g}; {better} did better there (Welch p "
                     f"{w.p_two_sided():.2g}; the claims stay judged on the pick)")  # fmt: skip
    return lines


def _rules_line(configs: list[dict[str, Any]]) -> str:
    """Each family's update rule as its pick ran it (its recorded configuration: ours where
    it names none, as a family with no reference rule, or one recorded before the family had
    one)."""
    rules = {c["learner"]: c.get("update_rule") or "ours" for c in configs}
    return "update rule per family: " + ", ".join(f"{k} {v}" for k, v in rules.items())
