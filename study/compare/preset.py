"""``python -m study.compare --preset NAME``: a published protocol run as a grid.

``jmlr-trace-patterning`` is the paper's experiment (Javed et al., JMLR 2023): every
configuration of its grid on the tuning seeds (experiment ``NAME``), each family's pick on
fresh seeds (``NAME-fresh``), then the report and the paper's orderings judged on the fresh
seeds with bootstrap intervals (``study.report.claims``); ``--extend-grid`` adds step sizes
past the edge a pick is at. ``--scale F`` divides its steps and stage lengths by F and
``--seeds`` sets its tuning seeds, so the same protocol runs on a laptop. A stage whose latest
launch finished is not run again; ``--resume`` continues one that was interrupted.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from study.cli import fail, pack_option
from study.compare.options import PresetOptions
from study.compare.stages import (
    check_stage,
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
from study.report.claims import PAPER_TRACE_PATTERNING, Claim
from study.verdicts import check_margin


class Preset(NamedTuple):
    """A published protocol: a grid of configurations on fixed tuning seeds, each family's
    pick then run again on fresh seeds, and the orderings the paper reports."""

    task: str
    steps: int  # per seed, before --scale
    seeds: int  # tuning seeds
    configs: tuple[dict[str, Any], ...]  # stage lengths in steps, before --scale
    claims: str  # what the paper reports, for the page
    orderings: tuple[Claim, ...]  # the same, as claims the report judges


def _jmlr_trace_patterning() -> Preset:
    """Trace patterning as in the paper: columnar 7, constructive 10:1 (stages of 5M), CCN 20:4
    (stages of 10M), T-BPTT at the eight matched-compute truncation:hidden pairs, SnAp-1 on
    the 5:8 pair's network; the paper's step-size grids; lambda 0.99; the reference's
    normalisation (rate 1 - 0.99999, variance floor 0.01) on and off; 30 seeds x 50M steps."""
    rtrl_alphas = (0.3, 0.1, 0.03, 0.01, 0.003, 0.001)
    tbptt_alphas = (1e-3, 3e-4, 1e-4, 3e-5)
    shapes = [
        (dict(learner="columnar", n_features=7), rtrl_alphas),
        (dict(learner="constructive", n_features=10, steps_per_stage=5_000_000), rtrl_alphas),
        (dict(learner="hybrid", n_features=20, per_stage=4, steps_per_stage=10_000_000),
         rtrl_alphas),
        (dict(learner="snap1", n_features=8), rtrl_alphas),
        *((dict(learner="tbptt", truncation=k, n_features=h), tbptt_alphas)
          for k, h in ((2, 13), (3, 10), (5, 8), (8, 5), (10, 5), (15, 4), (20, 3), (30, 2))),
    ]  # fmt: skip
    norms = (dict(norm_rate=0.0), dict(norm_rate=1e-5, norm_floor=0.01))
    configs = tuple(
        {**shape, "alpha": a, "lambda_": 0.99, **norm}
        for shape, alphas in shapes
        for norm in norms
        for a in alphas
    )
    claims = ("SnAp-1 worst, then T-BPTT; columnar about equal to constructive; the hybrid "
              "(CCN) lowest")  # fmt: skip
    return Preset("trace_patterning", 50_000_000, 30, configs, claims, PAPER_TRACE_PATTERNING)


PRESETS = {"jmlr-trace-patterning": _jmlr_trace_patterning()}
# Protocols over several tasks, each a Preset per task (study.compare.atari).
MULTI = ("atari-prediction",)


def preset_plan(
    args: PresetOptions,
    preset: Preset | None = None,
    name: str | None = None,
    seeds: int | None = None,
) -> tuple[Preset, list[dict[str, Any]], dict[str, Any]]:
    """The preset's configurations at ``--scale`` and the launch
    (``study.orchestration.plan.make_plan``'s keywords) that runs them on the tuning seeds,
    as experiment ``name`` (default ``--name``, else the preset's); raises a one-line
    ValueError for a bad preset, scale or option."""
    if args.preset is None:
        raise ValueError("--scale applies to --preset only")
    if preset is None and args.preset not in PRESETS:
        raise ValueError(f"unknown --preset {args.preset!r}; allowed: "
                         f"{', '.join([*PRESETS, *MULTI])}")  # fmt: skip
    preset = preset or PRESETS[args.preset]
    if not (math.isfinite(args.scale) and 1.0 <= args.scale <= preset.steps / 20_000):
        raise ValueError(f"--scale {args.scale:g} is not allowed: need a number from 1 to "
                         f"{preset.steps / 20_000:g} (at least 20,000 steps a run)")  # fmt: skip
    block = 10_000
    steps = max(2 * block, round(preset.steps / args.scale / block) * block)
    families = [s.strip() for s in args.spaces.split(",") if s.strip()]
    known = sorted({c["learner"] for c in preset.configs})
    if not families or any(f not in known for f in families):
        raise ValueError(f"--spaces {args.spaces!r} with --preset: allowed: families of the "
                         f"preset, {', '.join(known)}")  # fmt: skip
    from learners.registry import family

    rule = args.update_rule or "reference"
    configs = []
    for c in preset.configs:
        if c["learner"] not in families:
            continue
        c = dict(c)
        if "steps_per_stage" in c:
            c["steps_per_stage"] = max(1, round(c["steps_per_stage"] / args.scale))
        if family(c["learner"]).reference_rule is not None:
            c["update_rule"] = rule
        configs.append(c)
    budget = preset_budget(args, preset.task)
    if budget is not None:
        configs = sized(configs, budget, preset.task, args.data_dir)
    seeds = seeds or (args.seeds if args.seeds is not None else preset.seeds)
    name = name or default_name(args)
    return preset, configs, _preset_kw(args, preset, name, len(configs), steps, seeds)


def preset_budget(args: PresetOptions, task: str) -> float | None:
    """``--budget-flops`` of a preset: None for the paper's sizes (not given, or ``paper``);
    ``match``: the CCN 20:4's flops on the task; or a positive number. A one-line
    ValueError otherwise."""
    text = args.budget_flops
    word = None if text is None else str(text).strip().lower()
    if word in (None, "paper"):
        return None
    if word == "match":
        from study.compare.budget import matched_budget

        return float(matched_budget("match", task, args.data_dir))
    try:
        value = float(word)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"--budget-flops {text} with --preset: allowed: paper (default), match "
                         f"or a positive number of flops per step")  # fmt: skip
    return value


def sized(configs: list[dict[str, Any]], budget: float, task: str,
          data_dir: str | None) -> list[dict[str, Any]]:  # fmt: skip
    """Each configuration's network at the largest size within ``budget`` flops per step per
    stream (the ledger's count), keeping its stage width and truncation: every T-BPTT pair
    sized on its own. A family that has no network within the budget: a one-line ValueError."""
    from learners.registry import size_for_budget
    from study.tasks import make_env

    m = make_env(task, data_dir=data_dir).obs_size
    out, sizes = [], {}
    for c in configs:
        key = (c["learner"], c.get("per_stage"), c.get("truncation"))
        if key not in sizes:
            try:
                sizes[key] = size_for_budget(c["learner"], m, budget, per_stage=c.get("per_stage"),
                                             truncation=c.get("truncation"))  # fmt: skip
            except ValueError as e:
                raise ValueError(f"--budget-flops: {e}") from None
        out.append({**c, "n_features": sizes[key]})
    return out


def default_name(args: PresetOptions) -> str:
    """``--name``, else the preset's name, the scale when it is not 1 and the budget when
    one is given (so that runs of other options never share a name):
    ``jmlr-trace-patterning-scale10``, ``jmlr-trace-patterning-scale10-match``."""
    if args.name:
        return args.name
    budget = str(args.budget_flops or "paper").strip().lower()
    suffix = "" if budget == "paper" else "-match" if budget == "match" else f"-flops{budget}"
    return args.preset + (f"-scale{args.scale:g}" if args.scale != 1.0 else "") + suffix


def _preset_kw(args: PresetOptions, preset: Preset, name: str, trials: int, steps: int,
               seeds: int) -> dict[str, Any]:  # fmt: skip
    """``make_plan``'s keywords of one stage of the preset."""
    size = pack_option(args.pack)
    return dict(
        space=preset.configs[0]["learner"], task=preset.task, study_name=name, trials=trials,
        runs_dir=args.runs_dir, steps=steps, seeds=seeds, concurrency=args.concurrency,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        pack=None if size is None else min(size, trials), address=args.address,
        tracking_uri=args.tracking_uri, storage=args.storage, expose_ray=args.expose_ray,
        reuse_actors=args.reuse_actors, data_dir=args.data_dir, command=args.command_line,
        cli=True,
    )  # fmt: skip


def run_preset(args: PresetOptions) -> int:
    """``--preset``: the grid on the tuning seeds (experiment NAME), each family's pick on
    fresh seeds (experiment NAME-fresh), then the report and the orderings judged on the
    fresh seeds (a protocol over several tasks, ``MULTI``, runs this per task:
    ``study.compare.atari``)."""
    if args.games is not None:
        return fail("--games applies to --preset atari-prediction only")
    return run_protocol(args)


def protocol_plan(
    args: PresetOptions, preset: Preset | None = None, name: str | None = None
) -> tuple[Any, Preset, list[dict[str, Any]], Plan]:
    """Every check of one preset's run that needs no store, no Ray and no replay: its racing
    schedule, threshold and margin, its configurations at ``--scale``, ``--pack``, the tuning
    plan and ``--eval-seeds`` against it. Returns ``(schedule, preset, configs, plan)``;
    raises a one-line ValueError."""
    from study.compare import protocol, racing

    schedule = racing.parse_racing(args.racing, args.seeds)
    racing.check_threshold(args.stability_threshold)
    check_margin(args.equivalence_margin)
    auto = protocol.auto_schedule(args.eval_seeds)
    if args.extend_grid and (schedule or auto):
        raise ValueError("--extend-grid runs on the grid's tuning seeds and a fixed number "
                         "of fresh seeds; allowed: without --racing and --eval-seeds "
                         "auto")  # fmt: skip
    preset, configs, kw = preset_plan(args, preset, name, schedule[0] if schedule else None)
    if pack_option(args.pack) is not None and pack_option(args.pack) > len(configs):
        raise ValueError(f"--pack {args.pack}: larger than the preset's {len(configs)} "
                         f"configurations; allowed: 1 to {len(configs)}, or auto")  # fmt: skip
    plan = make_plan(**kw)
    if not auto:
        eval_seeds(args.eval_seeds, (schedule or (plan.seeds,))[-1])
    return schedule, preset, configs, plan


def run_protocol(args: PresetOptions, preset: Preset | None = None,
                 name: str | None = None) -> int:  # fmt: skip
    """One preset (``preset``, default ``--preset``'s) as experiment ``name``: its grid (and
    racing rounds), its picks on fresh seeds, its report (``study.compare.protocol``)."""
    from study.compare import protocol

    try:
        schedule, preset, configs, plan = protocol_plan(args, preset, name)
    except ValueError as e:
        return fail(str(e))

    def stage_kw(study: str, trials: int, seeds: int) -> dict[str, Any]:
        return _preset_kw(args, preset, study, trials, plan.steps, seeds)

    rc = protocol.run(args, preset, configs, plan, stage_kw, schedule)
    if rc or not args.extend_grid:
        return rc
    return _extend(args, preset, configs, plan, eval_seeds(args.eval_seeds, plan.seeds),
                   args.command_line)  # fmt: skip


def beyond(values: list[float], edge: float, n: int = 2) -> list[float]:
    """The ``n`` step sizes past ``edge`` on the grid's 1-3 ladder (..., 1e-4, 3e-4, 1e-3,
    ...): below it when ``edge`` is the smallest of ``values``, above it when the largest."""
    k = math.floor(math.log10(edge))
    ladder = sorted({float(f"{m}e{e}") for e in range(k - n - 1, k + n + 2) for m in (1, 3)})
    if edge <= min(values):
        return [a for a in ladder if a < edge * 0.99][-n:][::-1]
    return [a for a in ladder if a > edge * 1.01][:n]


def edge_extensions(uri: str, experiment: str, configs: list[dict[str, Any]],
                    task: str) -> list[dict[str, Any]]:  # fmt: skip
    """For each family whose pick (``picks``) has the smallest or largest step size that its
    configurations in ``configs`` try, the pick's configuration at the two step sizes past
    that edge (``beyond``)."""
    picked, _ = picks(uri, [experiment], task, 2)
    out = []
    for pick in picked:
        tried = sorted({c["alpha"] for c in configs if c["learner"] == pick["learner"]})
        if len(tried) < 3 or pick["alpha"] not in (tried[0], tried[-1]):
            continue
        out += [{**pick, "alpha": a} for a in beyond(tried, pick["alpha"])]
    return out


def _extend(args: PresetOptions, preset: Preset, configs, plan, fresh, command) -> int:
    """``--extend-grid``: the edge picks' step sizes beyond the grid on the tuning seeds
    (NAME-extended), the picks among the grid and those on the fresh seeds
    (NAME-extended-fresh), and their report (``reports/NAME-extended``)."""
    name, uri = plan.name, plan.tracking_uri
    ext_name, ext_fresh = f"{name}-extended", f"{name}-extended-fresh"
    ext_options = stage_options(plan, seeds=seeds_text(range(plan.seeds)),
                                **{"picked from": name})  # fmt: skip
    fresh_options = stage_options(plan, **{"fresh seeds": fresh_text(fresh),
                                           "picked from": f"{name},{ext_name}"})  # fmt: skip
    try:
        for study, options in ((ext_name, ext_options), (ext_fresh, fresh_options)):
            check_stage(uri, study, options)
    except ValueError as e:
        return fail(str(e))
    states = {study: stage_state(uri, study) for study in (ext_name, ext_fresh)}
    if running := running_refusal(plan.runs, [ext_name, ext_fresh]):
        return fail(running)
    stopped = [study for study, state in states.items() if state == "interrupted"]
    if stopped and not args.resume:
        return fail(f"preset run {stopped[0]!r} was interrupted; add --resume to continue it")
    print(f"\n== [extend] step sizes past the grid's edge: {ext_name} ({states[ext_name]})")
    if states[ext_name] == "done":
        print("already run; not run again")
    else:
        extra = edge_extensions(uri, name, configs, preset.task)
        if not extra:
            print("no family's pick is at the edge of its grid: nothing to extend")
            return 0
        for c in extra:
            print(f"  {c['learner']}: alpha {c['alpha']:g}")
        try:
            ext_plan = make_plan(**_preset_kw(args, preset, ext_name, len(extra), plan.steps,
                                              plan.seeds))  # fmt: skip
        except ValueError as e:
            return fail(str(e))
        rc = run_stage(ext_plan, extra, list(range(plan.seeds)), "tuning",
                       states[ext_name] == "interrupted", command, ext_options)  # fmt: skip
        if rc:
            return rc
    families = len({c["learner"] for c in configs})
    n_fresh = fresh if isinstance(fresh, int) else len(fresh)
    try:
        fresh_plan = make_plan(**_preset_kw(args, preset, ext_fresh, families, plan.steps,
                                            n_fresh))  # fmt: skip
    except ValueError as e:
        return fail(str(e))
    print(f"\n== [extend] each family's pick on fresh seeds: {ext_fresh} ({states[ext_fresh]})")
    rc = _fresh_stage(uri, [name, ext_name], preset.task, fresh, fresh_plan,
                      states[ext_fresh], command, fresh_options)  # fmt: skip
    if rc:
        return rc
    return report(fresh_plan, [ext_fresh, name, ext_name], args.bootstrap_resamples,
                  preset.orderings, preset.claims)  # fmt: skip


def _fresh_stage(uri: str, tuning: list[str], task: str, fresh, plan: Plan, state: str,
                 command: str, options: dict[str, str]) -> int:  # fmt: skip
    """Each family's pick among the ``tuning`` experiments, run on the fresh seeds (unless
    the stage's ``state`` is done)."""
    if state == "done":
        print("already run; not run again")
        return 0
    try:
        picked, seeds = picks(uri, tuning, task, fresh)
    except ValueError as e:
        return fail(str(e))
    return run_stage(plan, picked, seeds, "eval", state == "interrupted", command, options)
