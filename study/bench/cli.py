"""``python -m study.bench``: the options, and which tool they run."""

from __future__ import annotations

from study.bench.crossover import CROSSOVER_STREAMS, crossover
from study.bench.memory import memory_check
from study.bench.overhead import check_studies, study_overhead
from study.bench.table import learner_table
from study.bench.timing import SIZES, machine, platforms
from study.cli import Parser, count, fail, pack_option, writable_file
from study.engine.loop import check_environment
from study.engine.threads import limit_xla_threads
from study.interrupt import interruptible


@interruptible
def main(argv: list[str] | None = None) -> int:
    p = Parser(
        prog="python -m study.bench",
        description="Learner throughput (the default), memory, the CPU/GPU crossover and a "
        "study's overhead: tables and CSV.",
    )
    p.add_argument("--learners", default=None, help=f"comma list (default all: {','.join(SIZES)})")
    p.add_argument("--streams", type=count(1, 2**24), nargs="+", default=None,
                   help="batch sizes (default 1 256; with --crossover "
                   f"{' '.join(map(str, CROSSOVER_STREAMS))})")  # fmt: skip
    p.add_argument("--device", default="default",
                   help="where the learner table runs: default (JAX's), cpu or gpu")  # fmt: skip
    p.add_argument("--threads", type=count(0, 4096), default=0,
                   help="XLA CPU threads (default 0: every core, JAX's default; 1 for the "
                   "one-core figures)")  # fmt: skip
    p.add_argument("--crossover", action="store_true",
                   help="sweep batch sizes on the CPU and the GPU and find where the GPU wins "
                   "(default learners columnar,hybrid,snap1)")  # fmt: skip
    p.add_argument("--crossover-budget", type=count(1, 2**40), default=2**21,
                   help="stream-steps per timed call in --crossover (fewer steps for big "
                   "batches)")  # fmt: skip
    p.add_argument("--steps", type=count(1, 10**9), default=1000, help="timed steps per call")
    p.add_argument("--repeats", type=count(1, 1000), default=3)
    p.add_argument(
        "--max-params", type=count(1), default=1_000_000, help="skip batches with more parameters"
    )
    p.add_argument("--out", default="bench.csv", help="CSV path (default bench.csv)")
    p.add_argument("--markdown", default=None, metavar="PATH",
                   help="also write the Markdown table, with its footer (command, machine, "
                   "jax, commit, date), to this file")  # fmt: skip
    p.add_argument("--study", action="store_true",
                   help="measure a real study's overhead instead of the learners")  # fmt: skip
    p.add_argument("--study-space", default="columnar")
    p.add_argument("--study-trials", type=count(1), default=4)
    p.add_argument("--study-seeds", type=count(1, 4096), default=5)
    p.add_argument("--study-steps", type=count(1, 10**12), default=1_000_000,
                   help="steps per trial (about a minute of columnar work here)")  # fmt: skip
    p.add_argument("--study-concurrency", type=count(1, 4096), default=2)
    p.add_argument("--study-set", default="--set n_features=7",
                   help="more study.launch arguments, as one string (give it as "
                   "--study-set='--set n_features=7 --gpus-per-trial 1')")  # fmt: skip
    p.add_argument("--study-packs", nargs="+", default=["1", "auto"],
                   help="run the study once per --pack value (default: 1 auto)")  # fmt: skip
    p.add_argument("--memory-steps", type=count(0, 10**12), default=0,
                   help="measure memory over a run this long (e.g. 10000000) instead")  # fmt: skip
    p.add_argument("--memory-streams", type=count(1, 2**20), default=8)
    p.add_argument("--kernel-ratio", default=None, metavar="EXPERIMENT",
                   help="a finished study's trials: their stream-steps/s against the run "
                   "loop's own at the same shapes and streams, --study-concurrency copies at "
                   "once (each one XLA thread, as trials run)")  # fmt: skip
    p.add_argument("--runs-dir", default="runs", help="--kernel-ratio: the study's runs folder")
    p.add_argument("--atari", default=None, metavar="TASK",
                   help="an atari_GAME task: each preset learner's step there, on the "
                   "testbed widened to the same 275 inputs, and on the testbed (us per "
                   "stream-step)")  # fmt: skip
    p.add_argument(
        "--traces-dir",
        default=None,
        help="--atari: folder of the recorded traces (default $CCN_ATARI_TRACES)",
    )
    args = p.parse_args(argv)
    try:
        writable_file(args.out, "--out")
        if args.markdown is not None:
            writable_file(args.markdown, "--markdown")
        check_environment()
    except ValueError as e:
        return fail(str(e))
    limit_xla_threads(args.threads)  # before anything here starts JAX's backends
    if args.study:
        from search_spaces import SPACES

        try:
            if args.study_space not in SPACES:
                raise ValueError(f"--study-space {args.study_space!r}: unknown space; allowed: "
                                 f"{', '.join(SPACES)}")  # fmt: skip
            for pack in args.study_packs:
                pack_option(pack, "--study-packs")
            check_studies(args)
        except ValueError as e:
            return fail(str(e))
        return study_overhead(args, machine())
    if args.atari is not None:
        from study.bench.atari import atari_table
        from study.tasks import is_atari, make_env

        try:
            if not is_atari(args.atari):
                raise ValueError(f"--atari {args.atari!r}: allowed: an atari_GAME task "
                                 "(atari_pong, ...)")  # fmt: skip
            make_env(args.atari, args.traces_dir)  # the trace found and its stream cached
        except ValueError as e:
            return fail(str(e))
        return atari_table(args)
    if args.kernel_ratio is not None:
        from study.bench.ratio import kernel_ratio

        return kernel_ratio(args, machine())
    if args.memory_steps:
        if args.memory_steps % 10_000:
            return fail(f"--memory-steps {args.memory_steps}: allowed: a multiple of 10000")
        return memory_check(args, machine())
    if args.learners is None:
        args.learners = "columnar,hybrid,snap1" if args.crossover else ",".join(SIZES)
    if args.streams is None:
        args.streams = list(CROSSOVER_STREAMS) if args.crossover else [1, 256]
    names = [n.strip() for n in args.learners.split(",") if n.strip()]
    for n in names or [""]:
        if n not in SIZES:
            return fail(f"--learners {args.learners!r}: unknown learner {n!r}; allowed: "
                        f"{', '.join(SIZES)}")  # fmt: skip
    if args.crossover:
        return crossover(args, names)
    devices = platforms()
    if args.device != "default" and args.device not in devices:
        return fail(f"--device {args.device!r} is not available here; allowed: default, "
                    f"{', '.join(devices)}")  # fmt: skip
    return learner_table(args, names, devices.get(args.device))
