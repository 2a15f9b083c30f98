"""``python -m study.compare --spaces columnar,hybrid,...``: tune each family, then evaluate
the best configuration of each on fresh seeds, and report.

Stages, each a launch of ``study.launch`` recorded in MLflow like any other:

1. one tuning study per family (experiment ``NAME-SPACE``; Optuna study of the same name),
   on seeds ``0..S-1``;
2. one evaluation (experiment ``NAME``): Ray Tune runs the best configuration of every family
   (the Optuna trial with the lowest final windowed MSRE) on ``--eval-seeds`` seeds that no
   tuning trial used, one trial per family, its child run tagged ``ccn.role=eval``;
3. the report of the evaluation and the tuning studies together (``study.report``), whose
   summary table takes its numbers from the evaluation runs.

A stage whose latest launch finished is not run again, so the same command continues a
comparison killed part way (with ``--resume`` when a stage was interrupted mid-way, as
``study.launch`` asks).

``--preset jmlr-trace-patterning`` runs instead the paper's experiment (Javed et al., JMLR
2023) as a grid, with no search: every configuration of ``PRESETS`` on the same seeds, then
the report and the paper's orderings checked with intervals (``orderings``). ``--scale F``
divides its steps and stage lengths by F and ``--seeds`` sets its seeds, so the same protocol
runs on a laptop.
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
from study.tasks import DEFAULT_TASK

FAMILIES = ("columnar", "constructive", "hybrid", "tbptt", "snap1")


class Preset(NamedTuple):
    """A published protocol: a grid of configurations on fixed seeds."""

    task: str
    steps: int  # per seed, before --scale
    seeds: int
    configs: tuple[dict[str, Any], ...]  # stage lengths in steps, before --scale
    claims: str  # what the paper reports, for the page


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
    return Preset("trace_patterning", 50_000_000, 30, configs, claims)


PRESETS = {"jmlr-trace-patterning": _jmlr_trace_patterning()}
EVAL_SEED_BASE = 1000  # evaluation seeds start here, or after the largest tuning seed
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
    p.add_argument("--eval-seeds", type=count(2, 4096, "for an interval"), default=30,
                   help="fresh seeds per family (30)")  # fmt: skip
    p.add_argument("--eval-steps", type=count(1, 10**12), default=None,
                   help="default: the tuning steps")  # fmt: skip
    p.add_argument("--budget-flops", default=None,
                   help="size every family's network to this per-step budget (default auto: "
                   "each family's paper-sized compute; none: sizes are searched)")  # fmt: skip
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
    p.add_argument("--pack", default="auto",
                   help="configurations per trial, run as one program (as in study.launch; "
                   "an evaluation packs only configurations of one shape)")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue an interrupted stage")
    p.add_argument("--smoke", action="store_true", help="tiny budget, for checks")
    return p


def _has_size(space: str) -> bool:
    from learners.families import family

    return family(space).grow is not None


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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.preset is not None or args.scale != 1.0:
        return run_preset(args)
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
        stages = {}  # study name -> (launch argv, its plan)
        for s in spaces:
            a = _launch_argv(args, s, f"{name}-{s}")
            stages[f"{name}-{s}"] = (a, launch._plan(launch._parser().parse_args(a)))
        # The evaluation runs one configuration per family: a pack of K holds at most those.
        size = parse_pack(args.pack)  # (checked with the tuning studies' plans above)
        pack = args.pack if size is None else str(min(size, len(spaces)))
        evaluation = argparse.Namespace(**{**vars(args), "trials": len(spaces), "pack": pack,
                                           "seeds": args.eval_seeds,
                                           "steps": args.eval_steps or args.steps})  # fmt: skip
        eval_argv = _launch_argv(evaluation, spaces[0], name)
        eval_plan = launch._plan(launch._parser().parse_args(eval_argv))
    except ValueError as e:
        return fail(str(e))
    return _compare(args, name, spaces, stages, eval_argv, eval_plan)


def _state(tracking_uri: str, experiment: str) -> str:
    """``new`` (never launched), ``interrupted`` (its latest launch still marked running) or
    ``done``."""
    from mlflow.tracking import MlflowClient

    from study.tracking import latest_launch

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    last = latest_launch(client, found.experiment_id) if found else None
    if last is None:
        return "new"
    return "interrupted" if last.info.status == "RUNNING" else "done"


def _running(runs, studies: list[str]) -> str | None:
    """The refusal when one of ``studies`` is running now (``study.lock``), else None."""
    from study.lock import holder

    for study in studies:
        if who := holder(runs, study):
            return f"study {study!r} is running: {who}; wait for it to finish"
    return None


def _compare(args, name: str, spaces: list[str], stages: dict, eval_argv: list[str],
             eval_plan: dict[str, Any]) -> int:  # fmt: skip
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
                configs, seeds = best_configs(args, stages, eval_plan)
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
    return _report(eval_plan, [name, *stages])


def best_configs(args, stages: dict, eval_plan: dict[str, Any]):
    """The best configuration of each tuning study, as its trial ran it (the ``ccn.config``
    tag of the finished child run with the best final value of the study's objective: the
    lowest windowed MSRE, or the highest held-out accuracy on sequential MNIST; the run the
    report calls best), and the evaluation seeds: ``--eval-seeds`` seeds from ``EVAL_SEED_BASE`` on,
    or after the largest seed any tuning run used (their ``seeds`` tags). Raises a one-line
    ValueError when no family has a finished trial."""
    from mlflow.tracking import MlflowClient

    from study.kinds import kind_of
    from study.tracking import CONFIG_TAG, PARENT_TAG, STATUS_TAG

    client = MlflowClient(eval_plan["tracking_uri"])
    kind = kind_of(args.task)
    final, pick = kind.final, max if kind.higher_better else min
    configs, used, lost = [], {-1}, []
    for study in stages:
        exp = client.get_experiment_by_name(study)
        runs = [r for r in client.search_runs([exp.experiment_id], max_results=50_000)
                if PARENT_TAG in r.data.tags]  # fmt: skip
        for r in runs:
            used.update(int(s) for s in r.data.tags.get("seeds", "").split(",") if s)
        done = [
            r
            for r in runs
            if r.data.tags.get(STATUS_TAG) == "finished"
            and CONFIG_TAG in r.data.tags
            and math.isfinite(r.data.metrics.get(final, math.inf))
        ]
        if not done:
            lost.append(study)
            continue
        best = pick(done, key=lambda r: r.data.metrics[final])
        config = json.loads(best.data.tags[CONFIG_TAG])
        configs.append({k: v for k, v in config.items() if k not in PER_STUDY})
    for study in lost:
        print(f"{study}: no trial finished with a finite error; the family is left out")
    if not configs:
        raise ValueError(f"no tuning study of {', '.join(stages)} has a finished trial")
    start = max(EVAL_SEED_BASE, max(used) + 1)
    return configs, list(range(start, start + args.eval_seeds))


def preset_plan(args: argparse.Namespace) -> tuple[Preset, list[dict[str, Any]], list[str]]:
    """The preset's configurations at ``--scale`` and the launch arguments that run them;
    raises a one-line ValueError for a bad preset, scale or option."""
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
    configs = []
    for c in preset.configs:
        if c["learner"] not in families:
            continue
        c = dict(c)
        if "steps_per_stage" in c:
            c["steps_per_stage"] = max(1, round(c["steps_per_stage"] / args.scale))
        configs.append(c)
    seeds = args.seeds if args.seeds is not None else preset.seeds
    name = args.name or args.preset
    argv = ["--space", configs[0]["learner"], "--task", preset.task, "--study-name", name,
            "--trials", str(len(configs)),
            "--runs-dir", args.runs_dir, "--steps", str(steps), "--seeds", str(seeds),
            "--concurrency", str(args.concurrency), "--cpus-per-trial", str(args.cpus_per_trial),
            "--gpus-per-trial", str(args.gpus_per_trial), "--pack", str(args.pack)]  # fmt: skip
    for key in ("address", "tracking_uri", "storage"):
        if getattr(args, key) is not None:
            argv += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    flags = [f"--{f.replace('_', '-')}" for f in ("expose_ray", "reuse_actors") if getattr(args, f)]
    return preset, configs, argv + flags


def run_preset(args: argparse.Namespace) -> int:
    """``--preset``: the grid as one evaluation launch, then its report and orderings."""
    try:
        preset, configs, argv = preset_plan(args)
        launch_args = launch._parser().parse_args(argv)
        plan = launch._plan(launch_args)
    except ValueError as e:
        return fail(str(e))
    name = plan["name"]
    if running := _running(plan["runs"], [name]):
        return fail(running)
    state = _state(plan["tracking_uri"], name)
    if state == "interrupted" and not args.resume:
        return fail(f"preset run {name!r} was interrupted; add --resume to continue it")
    if args.resume and state == "new":
        return fail(f"--resume: no preset run {name!r} in {plan['tracking_uri']}")
    base = plan["base"]
    print(
        f"preset {args.preset} at scale 1/{args.scale:g}: {len(configs)} configurations x "
        f"{base['seeds']} seeds x {base['steps']:,} steps ({preset.claims}, in the paper)"
    )
    if state == "done":
        print("already run; reporting")
    else:
        if args.resume:
            launch_args = launch._parser().parse_args([*argv, "--resume"])
        launch_args.argv = ["python -m study.compare", *sys.argv[1:]]
        rc = launch._launch(
            launch_args, {**plan, "configs": configs, "seeds": list(range(base["seeds"]))}
        )
        if rc:
            return rc
    return _report(plan, [name], orderings_of=preset)


def orderings(summary: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The paper's orderings on trace patterning checked against each family's best
    configuration: ``(claim, verdict, evidence)``; verdict ``holds`` (separated by the 95%
    intervals), ``holds in the means`` (intervals overlap), ``does not hold``, or ``not
    measured``. "About equal" holds when the intervals overlap."""
    rows = {r["learner"]: (r["msre_mean"], r["msre_ci95"]) for r in summary}

    def bounds(name):
        m, h = rows[name]
        h = h if math.isfinite(h) else 0.0
        return m - h, m + h

    def text(names):
        return "; ".join(f"{n} {rows[n][0]:.4g} ± {rows[n][1]:.2g}" for n in names)

    def above(name, others, claim):
        need = [name, *others]
        if any(n not in rows for n in need):
            return claim, "not measured", f"needs {', '.join(need)}"
        mean = all(rows[name][0] > rows[o][0] for o in others)
        sep = all(bounds(name)[0] > bounds(o)[1] for o in others)
        return (
            claim,
            "holds" if sep else "holds in the means" if mean else "does not hold",
            text(need),
        )

    def below(name, others, claim):
        need = [name, *others]
        if any(n not in rows for n in need):
            return claim, "not measured", f"needs {', '.join(need)}"
        mean = all(rows[name][0] < rows[o][0] for o in others)
        sep = all(bounds(name)[1] < bounds(o)[0] for o in others)
        return (
            claim,
            "holds" if sep else "holds in the means" if mean else "does not hold",
            text(need),
        )

    out = [
        above("snap1", ["tbptt", "columnar", "constructive", "hybrid"], "SnAp-1 worst"),
        above(
            "tbptt",
            ["columnar", "constructive", "hybrid"],
            "T-BPTT next worst (above columnar, constructive, CCN)",
        ),  # fmt: skip
    ]
    claim = "columnar about equal to constructive"
    if "columnar" in rows and "constructive" in rows:
        lo_a, hi_a = bounds("columnar")
        lo_b, hi_b = bounds("constructive")
        overlap = lo_a <= hi_b and lo_b <= hi_a
        out.append((claim, "holds" if overlap else "does not hold",
                    text(["columnar", "constructive"])))  # fmt: skip
    else:
        out.append((claim, "not measured", "needs columnar, constructive"))
    out.append(below("hybrid", ["columnar", "constructive", "tbptt", "snap1"], "CCN lowest"))
    return out


def _report(
    plan: dict[str, Any], experiments: list[str], orderings_of: Preset | None = None
) -> int:
    from study.report import make_report, table_text

    out = plan["runs"] / "reports" / experiments[0]

    def notes(summary):
        heading = (f"The paper's orderings at this scale ({orderings_of.claims}, in the paper); "
                   "best configuration per family, mean ± 95% CI over seeds")  # fmt: skip
        return heading, [f"{c}: {v} ({e})" for c, v, e in orderings(summary)]

    result = make_report(plan["tracking_uri"], experiments, out,
                         notes=notes if orderings_of is not None else None)  # fmt: skip
    print("\n" + table_text(result["summary"], result["measure"].measure))
    if orderings_of is not None:
        heading, lines = notes(result["summary"])
        text = "\n".join([heading + ":", *(f"- {line}" for line in lines)])
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
