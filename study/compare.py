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

``--preset jmlr-trace-patterning`` runs instead the paper's experiment (Javed et al., JMLR
2023) as a grid, with no search: every configuration of ``PRESETS`` on the tuning seeds
(experiment ``NAME``), each family's pick on fresh seeds (``NAME-fresh``), then the report
and the paper's orderings judged on the fresh seeds with bootstrap intervals
(``study.report.claims``); ``--extend-grid`` adds step sizes past the edge a pick is at.
``--scale F`` divides its steps and stage lengths by F and ``--seeds`` sets its tuning seeds,
so the same protocol runs on a laptop.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, NamedTuple

from search_spaces import SPACES
from study import launch
from study.cli import Parser, count, fail, real
from study.pack import parse_pack
from study.report.claims import PAPER_TRACE_PATTERNING, Claim
from study.stats import N_RESAMPLES, check_resamples
from study.tasks import DEFAULT_TASK

FAMILIES = ("columnar", "constructive", "hybrid", "tbptt", "snap1")


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
EVAL_SEED_BASE = 1000  # evaluation seeds start here, or after the largest tuning seed
# --budget-flops match: every family sized to the compute of this family's default network
# (the paper's CCN 20:4), the headline learner at the paper's size and the main job's budget.
MATCH_FAMILY = "hybrid"
# Set by the evaluation itself, not taken from the tuning trial's configuration.
PER_STUDY = ("task", "seeds", "steps", "chunk_steps", "block", "window", "role")


def _parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m study.compare",
        description="Tune each learner family, evaluate each best configuration on fresh "
        "seeds, and report the comparison.",
    )
    p.add_argument("--spaces", default=",".join(FAMILIES),
                   help="families, comma-separated (with --preset: the preset's families to "
                   "run, default all)")  # fmt: skip
    p.add_argument("--task", default=DEFAULT_TASK)
    p.add_argument("--data-dir", default=None, help="seq_mnist: folder of the MNIST files")
    p.add_argument("--name", default=None, help="comparison name (default compare-TASK)")
    p.add_argument("--trials", type=count(1), default=None, help="tuning trials per family")
    p.add_argument("--seeds", type=count(1, 4096), default=None, help="seeds per tuning trial")
    p.add_argument("--steps", type=count(1, 10**12), default=None,
                   help="steps per seed when tuning")  # fmt: skip
    p.add_argument("--eval-seeds", default="30",
                   help="fresh seeds per family's pick: a count (30; they start at 1000, or "
                   "after the largest tuning seed), a range FIRST-LAST or a list A,B,C; never a "
                   "tuning seed")  # fmt: skip
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
    p.add_argument("--concurrency", type=count(1, 4096), default=2, help="trials at once")
    p.add_argument("--address", default=None, help="address of an existing Ray cluster")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default SQLite)")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default SQLite)")
    p.add_argument("--runs-dir", default="runs", help="folder of the embedded stores")
    p.add_argument("--cpus-per-trial", type=real(0, 4096, low_open=True), default=1.0)
    p.add_argument("--gpus-per-trial", type=real(0, 64), default=0.0)
    p.add_argument(
        "--expose-ray",
        action="store_true",
        help="let the local Ray listen on every interface (default: 127.0.0.1)",
    )
    p.add_argument(
        "--reuse-actors",
        action="store_true",
        help="run a worker's trials in one Ray actor (as in study.launch)",
    )
    p.add_argument("--set", action="append", default=[], metavar="SPACE.NAME=VALUE",
                   help="fix a parameter of one family's space; repeatable")  # fmt: skip
    p.add_argument("--range", action="append", default=[], metavar="SPACE.NAME=LOW:HIGH",
                   help="new bounds for a parameter of one family's space; repeatable")  # fmt: skip
    p.add_argument(
        "--preset",
        default=None,
        help=f"run a published protocol as a grid instead: {', '.join(PRESETS)}",
    )
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="--preset: divide its steps and stage lengths by this (default 1)",
    )
    p.add_argument("--update-rule", default=None, choices=("ours", "reference"),
                   help="--preset: the update rule of the families that have the reference "
                   "code's (columnar, constructive, hybrid, tbptt; default reference, so the "
                   "step-size axis is the paper's)")  # fmt: skip
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
    from learners.families import family

    return family(space).grow is not None


def _sized_by_hand(args: argparse.Namespace, space: str) -> bool:
    """Whether ``--set`` or ``--range`` gives a size parameter of ``space``'s family."""
    sizes = {p.name for p in SPACES[space] if p.size}
    return any(text.partition(".")[0] == space and text.partition(".")[2].split("=")[0] in sizes
               for text in [*args.set, *args.range])  # fmt: skip


def _launch_argv(args: argparse.Namespace, space: str, name: str) -> list[str]:
    argv = ["--space", space, "--task", args.task, "--study-name", name,
            "--runs-dir", args.runs_dir, "--concurrency", str(args.concurrency),
            "--cpus-per-trial", str(args.cpus_per_trial),
            "--gpus-per-trial", str(args.gpus_per_trial), "--pack", str(args.pack)]  # fmt: skip
    for key in (
        "trials",
        "seeds",
        "steps",
        "budget_flops",
        "address",
        "tracking_uri",
        "storage",
        "data_dir",
    ):
        value = getattr(args, key)
        if key == "budget_flops" and not _has_size(space):
            continue  # a family with no size (linear) runs as it is beside the budget
        if (
            key == "budget_flops"
            and getattr(args, "budget_default", False)
            and _sized_by_hand(args, space)
        ):
            value = "auto"  # the default budget yields to a size the user set (launch's auto)
        if value is not None:
            argv += [f"--{key.replace('_', '-')}", str(value)]
    for flag in ("set", "range"):
        for text in getattr(args, flag):
            family, _, rest = text.partition(".")
            if family == space:
                argv += [f"--{flag}", rest]
    return argv + [
        f"--{f.replace('_', '-')}" for f in ("smoke", "reuse_actors") if getattr(args, f)
    ]


def eval_seeds(text: str, tuning: int) -> int | list[int]:
    """``--eval-seeds`` as typed: a count (the seeds are chosen after the tuning seeds at run
    time) or an explicit list (``FIRST-LAST`` or ``A,B,C``) disjoint from the tuning seeds
    ``0..tuning-1``. Raises a one-line ValueError."""
    form = "a count, FIRST-LAST or A,B,C"
    word = str(text).strip()
    try:
        if "-" in word.lstrip("-"):
            first, _, last = word.partition("-")
            seeds: int | list[int] = list(range(int(first), int(last) + 1))
        elif "," in word:
            seeds = [int(v) for v in word.split(",") if v.strip()]
        else:
            seeds = int(word)
    except ValueError:
        raise ValueError(f"--eval-seeds {text!r}: allowed: {form}") from None
    n = seeds if isinstance(seeds, int) else len(seeds)
    if n < 2 or n > 4096:
        raise ValueError(f"--eval-seeds {text}: {n} fresh seed(s); allowed: 2 to 4096 (an "
                         f"interval needs at least 2)")  # fmt: skip
    if isinstance(seeds, list):
        if len(set(seeds)) < len(seeds) or min(seeds) < 0 or max(seeds) >= 2**31:
            raise ValueError(f"--eval-seeds {text}: allowed: distinct seeds from 0 to 2^31-1")
        if min(seeds) < tuning:
            raise ValueError(f"--eval-seeds {text} overlaps the tuning seeds 0-{tuning - 1}; "
                             f"allowed: seeds from {tuning} on")  # fmt: skip
    return seeds


def matched_budget(text: str | None, task: str, data_dir: str | None = None) -> str:
    """``--budget-flops`` of every tuning study: ``match`` (the default) is the ledger flops of
    ``MATCH_FAMILY``'s default network on ``task``; ``paper`` is each family's own default
    (``study.launch``'s ``auto``); a number or ``none`` passes through."""
    word = "match" if text is None else str(text).strip().lower()
    if word == "paper":
        return "auto"
    if word != "match":
        return str(text)
    from learners import make_learner
    from learners.ledger import cost
    from study.tasks import make_env

    m = make_env(task, data_dir=data_dir).obs_size
    return str(cost(MATCH_FAMILY, m, make_learner(MATCH_FAMILY, m).settings).flops)


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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        check_resamples(args.bootstrap_resamples)
    except ValueError as e:
        return fail(str(e))
    if args.preset is not None or args.scale != 1.0:
        return run_preset(args)
    if args.extend_grid:
        return fail("--extend-grid applies to --preset (a search has no grid to extend)")
    if args.update_rule is not None:
        return fail(f"--update-rule {args.update_rule} applies to --preset; a comparison sets it "
                    f"per family: --set FAMILY.update_rule={args.update_rule}")  # fmt: skip
    spaces = [s.strip() for s in args.spaces.split(",") if s.strip()]
    name = args.name or f"compare-{args.task}"
    try:
        if not spaces:
            raise ValueError(f"--spaces {args.spaces!r} names no family")
        for s in spaces:
            if s not in SPACES:
                raise ValueError(f"unknown space {s!r}; allowed: {', '.join(SPACES)}")
        if len(set(spaces)) < len(spaces):
            raise ValueError(f"--spaces {args.spaces!r} names a family twice")
        for flag in ("set", "range"):
            for text in getattr(args, flag):
                family, dot, _ = text.partition(".")
                if not dot or family not in spaces:
                    raise ValueError(f"--{flag} {text!r} must start with one of the families "
                                     f"compared: {', '.join(s + '.' for s in spaces)}")  # fmt: skip
        given_budget = args.budget_flops
        args.budget_default = given_budget is None
        args.budget_flops = matched_budget(given_budget, args.task, args.data_dir)
        _check_budget(args.budget_flops, spaces, args.task, given_budget)
        stages = {}  # study name -> (launch argv, its plan)
        for s in spaces:
            a = _launch_argv(args, s, f"{name}-{s}")
            stages[f"{name}-{s}"] = (a, launch._plan(launch._parser().parse_args(a)))
        tuning = max(plan["base"]["seeds"] for _, plan in stages.values())
        fresh = eval_seeds(args.eval_seeds, tuning)
        # The evaluation runs one configuration per family: a pack of K holds at most those.
        size = parse_pack(args.pack)  # (checked with the tuning studies' plans above)
        pack = args.pack if size is None else str(min(size, len(spaces)))
        evaluation = argparse.Namespace(**{**vars(args), "trials": len(spaces), "pack": pack,
                                           "seeds": fresh if isinstance(fresh, int)
                                           else len(fresh),
                                           "steps": args.eval_steps or args.steps})  # fmt: skip
        eval_argv = _launch_argv(evaluation, spaces[0], name)
        eval_plan = launch._plan(launch._parser().parse_args(eval_argv))
    except ValueError as e:
        return fail(str(e))
    if args.budget_flops not in ("auto", "none"):
        why = ("the paper's CCN 20:4 on this task, for every family (--budget-flops match; "
               "'paper' sizes each family as in the paper)" if given_budget is None
               or str(given_budget).strip().lower() == "match" else f"--budget-flops "
               f"{given_budget}")  # fmt: skip
        by_hand = [s for s in spaces if args.budget_default and _sized_by_hand(args, s)]
        print(f"every family with a size is sized to {float(args.budget_flops):,.0f} flops per "
              f"step per stream: {why}"
              + (f"; not {', '.join(by_hand)}, whose size --set or --range gives" if by_hand
                 else ""))  # fmt: skip
    return _compare(args, name, spaces, stages, eval_argv, eval_plan, fresh)


def _state(tracking_uri: str, experiment: str) -> str:
    """``new`` (never launched), ``done`` (its latest launch finished) or ``interrupted``
    (its latest launch still marked running, stopped with Ctrl+C, or failed: ``--resume``
    continues it)."""
    from mlflow.tracking import MlflowClient

    from study.tracking import latest_launch

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    last = latest_launch(client, found.experiment_id) if found else None
    if last is None:
        return "new"
    return "done" if last.info.status == "FINISHED" else "interrupted"


def _running(runs, studies: list[str]) -> str | None:
    """The refusal when one of ``studies`` is running now (``study.lock``), else None."""
    from study.lock import holder

    for study in studies:
        if who := holder(runs, study):
            return f"study {study!r} is running: {who}; wait for it to finish"
    return None


def _compare(args, name: str, spaces: list[str], stages: dict, eval_argv: list[str],
             eval_plan: dict[str, Any], fresh: int | list[int]) -> int:  # fmt: skip
    import ray

    from study import local_ray
    from study.lock import lock_dir

    uri = eval_plan["tracking_uri"]
    states = {study: _state(uri, study) for study in [*stages, name]}
    stopped = [study for study, state in states.items() if state == "interrupted"]
    if stopped and not args.resume:
        return fail(f"comparison {name!r} was interrupted in {stopped[0]}; add --resume "
                            f"to continue it")  # fmt: skip
    if args.resume and not stopped and all(v == "new" for v in states.values()):
        return fail(f"--resume: no comparison {name!r} to resume in {uri}")
    if running := _running(eval_plan["runs"], [*stages, name]):
        return fail(running)
    own_ray, watcher = not ray.is_initialized(), None
    pidfile = lock_dir(eval_plan["runs"]) / f"{name}.ray.json"
    saved = local_ray.prepare(args.address, args.expose_ray) if own_ray else {}
    if own_ray:
        launch.reap_leftovers(eval_plan["runs"], name)
        try:
            dashboard = local_ray.start(args.address, eval_plan["runs"], expose=args.expose_ray)
        except Exception as e:  # noqa: BLE001
            local_ray.restore(saved)
            return fail(f"cannot reach Ray at --address {args.address}: {e}")
        if not args.address:
            watcher = local_ray.watch_driver(pidfile)
        if dashboard:
            print(local_ray.dashboard_hint(dashboard))
    try:
        n = len(stages) + 1
        for i, (study, (argv, _)) in enumerate(stages.items(), 1):
            print(f"\n== [{i}/{n}] tuning: {study} ({states[study]})")
            if states[study] == "done":
                print("already tuned; not run again")
                continue
            rc = launch.main(argv + (["--resume"] if states[study] == "interrupted" else []))
            if rc:
                return rc
        print(f"\n== [{n}/{n}] evaluation: {name} ({states[name]})")
        if states[name] == "done":
            print("already evaluated; not run again")
        else:
            try:
                configs, seeds = picks(eval_plan["tracking_uri"], list(stages), args.task, fresh)
            except ValueError as e:
                return fail(str(e))
            eval_args = launch._parser().parse_args(
                eval_argv + (["--resume"] if states[name] == "interrupted" else [])
            )
            eval_args.argv = ["python -m study.compare", *sys.argv[1:]]
            rc = launch._launch(eval_args, {**eval_plan, "configs": configs, "seeds": seeds})
            if rc:
                return rc
    finally:
        if own_ray:
            ray.shutdown()
        if watcher is not None:
            local_ray.unwatch(watcher, pidfile)
        local_ray.restore(saved)
    return _report(eval_plan, [name, *stages], args.bootstrap_resamples)


def picks(tracking_uri: str, experiments: list[str], task: str, fresh: int | list[int]):
    """Each family's pick among the tuning runs of ``experiments``, as its trial ran it (the
    ``ccn.config`` tag of the finished child run with the best final value of the objective:
    the lowest windowed MSRE, or the highest held-out accuracy on sequential MNIST; the run
    the report calls best), and the fresh seeds to run them on: the ``fresh`` list, or
    ``fresh`` seeds from ``EVAL_SEED_BASE`` on or after the largest seed any tuning run used
    (their ``seeds`` tags). Raises a one-line ValueError when no family has a finished run or
    a listed seed was used in tuning."""
    from mlflow.tracking import MlflowClient

    from study.kinds import kind_of
    from study.tracking import CONFIG_TAG, PARENT_TAG, STATUS_TAG

    client = MlflowClient(tracking_uri)
    kind = kind_of(task)
    final, pick = kind.final, max if kind.higher_better else min
    best: dict[str, Any] = {}
    families: list[str] = []
    used = {-1}
    for study in experiments:
        exp = client.get_experiment_by_name(study)
        runs = [r for r in client.search_runs([exp.experiment_id], max_results=50_000)
                if PARENT_TAG in r.data.tags]  # fmt: skip
        for r in runs:
            used.update(int(s) for s in r.data.tags.get("seeds", "").split(",") if s)
            learner = r.data.tags.get("learner", "?")
            families += [learner] if learner not in families else []
            if (
                r.data.tags.get(STATUS_TAG) == "finished"
                and CONFIG_TAG in r.data.tags
                and math.isfinite(r.data.metrics.get(final, math.inf))
            ):
                best[learner] = pick([r, *([best[learner]] if learner in best else [])],
                                     key=lambda r: r.data.metrics[final])  # fmt: skip
    for learner in families:
        if learner not in best:
            print(f"{learner}: no trial finished with a finite error; the family is left out")
    if not best:
        raise ValueError(f"no tuning study of {', '.join(experiments)} has a finished trial")
    configs = [
        {k: v for k, v in json.loads(best[f].data.tags[CONFIG_TAG]).items() if k not in PER_STUDY}
        for f in families
        if f in best
    ]
    if isinstance(fresh, list):
        if overlap := sorted(used & set(fresh)):
            raise ValueError(f"--eval-seeds: seed {overlap[0]} was a tuning seed; allowed: "
                             f"seeds after {max(used)}")  # fmt: skip
        return configs, fresh
    start = max(EVAL_SEED_BASE, max(used) + 1)
    return configs, list(range(start, start + fresh))


def preset_plan(args: argparse.Namespace) -> tuple[Preset, list[dict[str, Any]], list[str]]:
    """The preset's configurations at ``--scale`` and the launch arguments that run them on
    the tuning seeds; raises a one-line ValueError for a bad preset, scale or option."""
    if args.preset is None:
        raise ValueError("--scale applies to --preset only")
    if args.preset not in PRESETS:
        raise ValueError(f"unknown --preset {args.preset!r}; allowed: {', '.join(PRESETS)}")
    preset = PRESETS[args.preset]
    if not (math.isfinite(args.scale) and 1.0 <= args.scale <= preset.steps / 20_000):
        raise ValueError(f"--scale {args.scale:g} is not allowed: need a number from 1 to "
                         f"{preset.steps / 20_000:g} (at least 20,000 steps a run)")  # fmt: skip
    given = [f"--{k.replace('_', '-')}" for k in ("trials", "budget_flops", "eval_steps")
             if getattr(args, k) is not None] + [f"--{k}" for k in ("set", "range")
                                                 if getattr(args, k)]  # fmt: skip
    if args.steps is not None:
        given.append("--steps (use --scale)")
    if given:
        raise ValueError(f"{given[0]} does not apply to --preset: its grid is fixed")
    block = 10_000
    steps = max(2 * block, round(preset.steps / args.scale / block) * block)
    families = [s.strip() for s in args.spaces.split(",") if s.strip()]
    known = sorted({c["learner"] for c in preset.configs})
    if not families or any(f not in known for f in families):
        raise ValueError(f"--spaces {args.spaces!r} with --preset: allowed: families of the "
                         f"preset, {', '.join(known)}")  # fmt: skip
    from learners.families import family

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
    seeds = args.seeds if args.seeds is not None else preset.seeds
    name = args.name or args.preset
    return preset, configs, _preset_argv(args, preset, name, len(configs), steps, seeds)


def _preset_argv(args, preset: Preset, name: str, trials: int, steps: int, seeds: int):
    argv = ["--space", preset.configs[0]["learner"], "--task", preset.task, "--study-name", name,
            "--trials", str(trials),
            "--runs-dir", args.runs_dir, "--steps", str(steps), "--seeds", str(seeds),
            "--concurrency", str(args.concurrency), "--cpus-per-trial", str(args.cpus_per_trial),
            "--gpus-per-trial", str(args.gpus_per_trial)]  # fmt: skip
    size = parse_pack(args.pack)
    argv += ["--pack", args.pack if size is None else str(min(size, trials))]
    for key in ("address", "tracking_uri", "storage"):
        if getattr(args, key) is not None:
            argv += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    flags = [f"--{f.replace('_', '-')}" for f in ("expose_ray", "reuse_actors") if getattr(args, f)]
    return argv + flags


def run_preset(args: argparse.Namespace) -> int:
    """``--preset``: the grid on the tuning seeds (experiment NAME), each family's pick on
    fresh seeds (experiment NAME-fresh), then the report and the orderings judged on the
    fresh seeds."""
    try:
        preset, configs, argv = preset_plan(args)
        if parse_pack(args.pack) is not None and parse_pack(args.pack) > len(configs):
            raise ValueError(f"--pack {args.pack}: larger than the preset's {len(configs)} "
                             f"configurations; allowed: 1 to {len(configs)}, or auto")  # fmt: skip
        plan = launch._plan(launch._parser().parse_args(argv))
        base = plan["base"]
        fresh = eval_seeds(args.eval_seeds, base["seeds"])
        n_fresh = fresh if isinstance(fresh, int) else len(fresh)
        families = list(dict.fromkeys(c["learner"] for c in configs))
        fresh_name = f"{plan['name']}-fresh"
        fresh_argv = _preset_argv(args, preset, fresh_name, len(families), base["steps"],
                                  n_fresh)  # fmt: skip
        fresh_plan = launch._plan(launch._parser().parse_args(fresh_argv))
    except ValueError as e:
        return fail(str(e))
    name, uri = plan["name"], plan["tracking_uri"]
    if running := _running(plan["runs"], [name, fresh_name]):
        return fail(running)
    states = {study: _state(uri, study) for study in (name, fresh_name)}
    stopped = [study for study, state in states.items() if state == "interrupted"]
    if stopped and not args.resume:
        return fail(f"preset run {stopped[0]!r} was interrupted; add --resume to continue it")
    if args.resume and all(v == "new" for v in states.values()):
        return fail(f"--resume: no preset run {name!r} in {uri}")
    print(
        f"preset {args.preset} at scale 1/{args.scale:g}: {len(configs)} configurations x "
        f"{base['seeds']} tuning seeds x {base['steps']:,} steps, then each family's pick on "
        f"{n_fresh} fresh seeds ({preset.claims}, in the paper)"
    )
    command = ["python -m study.compare", *sys.argv[1:]]
    print(f"\n== [1/2] grid on the tuning seeds: {name} ({states[name]})")
    if states[name] == "done":
        print("already run; not run again")
    else:
        rc = _run_stage(argv, plan, configs, list(range(base["seeds"])), "tuning",
                        states[name] == "interrupted", command)  # fmt: skip
        if rc:
            return rc
    print(f"\n== [2/2] each family's pick on fresh seeds: {fresh_name} ({states[fresh_name]})")
    rc = _fresh_stage(uri, [name], preset.task, fresh, fresh_argv, fresh_plan,
                      states[fresh_name], command)  # fmt: skip
    if rc:
        return rc
    rc = _report(fresh_plan, [fresh_name, name], args.bootstrap_resamples, preset)
    if rc or not args.extend_grid:
        return rc
    return _extend(args, preset, configs, plan, fresh, command)


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


def _extend(args, preset: Preset, configs, plan, fresh, command) -> int:
    """``--extend-grid``: the edge picks' step sizes beyond the grid on the tuning seeds
    (NAME-extended), the picks among the grid and those on the fresh seeds
    (NAME-extended-fresh), and their report (``reports/NAME-extended``)."""
    name, uri, base = plan["name"], plan["tracking_uri"], plan["base"]
    ext_name, ext_fresh = f"{name}-extended", f"{name}-extended-fresh"
    states = {study: _state(uri, study) for study in (ext_name, ext_fresh)}
    if running := _running(plan["runs"], [ext_name, ext_fresh]):
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
            argv = _preset_argv(args, preset, ext_name, len(extra), base["steps"], base["seeds"])
            ext_plan = launch._plan(launch._parser().parse_args(argv))
        except ValueError as e:
            return fail(str(e))
        rc = _run_stage(argv, ext_plan, extra, list(range(base["seeds"])), "tuning",
                        states[ext_name] == "interrupted", command)  # fmt: skip
        if rc:
            return rc
    families = len({c["learner"] for c in configs})
    n_fresh = fresh if isinstance(fresh, int) else len(fresh)
    try:
        argv = _preset_argv(args, preset, ext_fresh, families, base["steps"], n_fresh)
        fresh_plan = launch._plan(launch._parser().parse_args(argv))
    except ValueError as e:
        return fail(str(e))
    print(f"\n== [extend] each family's pick on fresh seeds: {ext_fresh} ({states[ext_fresh]})")
    rc = _fresh_stage(uri, [name, ext_name], preset.task, fresh, argv, fresh_plan,
                      states[ext_fresh], command)  # fmt: skip
    if rc:
        return rc
    return _report(fresh_plan, [ext_fresh, name, ext_name], args.bootstrap_resamples, preset)


def _fresh_stage(uri: str, tuning: list[str], task: str, fresh, argv, plan, state: str,
                 command) -> int:  # fmt: skip
    """Each family's pick among the ``tuning`` experiments, run on the fresh seeds (unless
    the stage's ``state`` is done)."""
    if state == "done":
        print("already run; not run again")
        return 0
    try:
        picked, seeds = picks(uri, tuning, task, fresh)
    except ValueError as e:
        return fail(str(e))
    return _run_stage(argv, plan, picked, seeds, "eval", state == "interrupted", command)


def _run_stage(argv, plan, configs, seeds, role: str, resume: bool, command) -> int:
    """One launch of ``configs`` on ``seeds``, its runs tagged ``ccn.role=role``."""
    launch_args = launch._parser().parse_args([*argv, *(["--resume"] if resume else [])])
    launch_args.argv = command
    return launch._launch(launch_args, {**plan, "configs": configs, "seeds": seeds, "role": role})


def _report(plan: dict[str, Any], experiments: list[str], n_resamples: int,
            preset: Preset | None = None) -> int:  # fmt: skip
    """The report of the evaluation (first) and tuning experiments; a preset's orderings
    judged on the fresh seeds, written to ``orderings.txt`` and printed."""
    from study.report import make_report, table_text

    out = plan["runs"] / "reports" / experiments[0].removesuffix("-fresh")
    claims = preset.orderings if preset is not None else ()
    heading = (f"The paper's orderings at this scale ({preset.claims}, in the paper), judged "
               f"on the fresh seeds" if preset is not None else "")  # fmt: skip
    result = make_report(plan["tracking_uri"], experiments, out, claims=claims,
                         claims_heading=heading, n_resamples=n_resamples)  # fmt: skip
    print("\n" + table_text(result["summary"], result["measure"].measure))
    if result["judged"]:
        text = "\n".join([heading + ":", *(f"- {j.claim}: {j.verdict} ({j.evidence})"
                                           for j in result["judged"]),
                          result["method"]])  # fmt: skip
        (out / "orderings.txt").write_text(text + "\n")
        print("\n" + text)
    print(f"\nreport: {out / 'report.html'}")
    from mlflow.tracking import MlflowClient

    from study.tracking import browse_hint

    m = result["measure"]
    evaluation = MlflowClient(plan["tracking_uri"]).get_experiment_by_name(experiments[0])
    if evaluation is not None:  # its runs sorted by result, each by name
        print(browse_hint(plan["tracking_uri"], evaluation.experiment_id, m.metric,
                                  m.mode))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
