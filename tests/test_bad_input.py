"""Every command refuses bad input the same way (README, "What is refused"): exit code 2
within 10 s of work (CPU seconds, so that a busy machine does not fail it), at most 3 lines, the
option named as typed, no traceback, no password echoed, and not a byte written or changed in
the runs folder or in any database it was pointed at.

Each case is ``(command, argv, needles)``; in ``argv``, ``{d}`` is a fresh folder holding
``file`` (a plain file), ``theirs.db`` (someone's SQLite database), ``corrupt.db`` (random
bytes), ``store/mlflow.db`` (an MLflow store with an experiment ``empty`` that has no runs),
``theirs/mlflow.db``, ``corrupt/mlflow.db`` and ``traces/`` (a made-up Pong trace of 30,000
frames, never replayed: a refusal comes before any replay). Each case also runs with the
temporary folder pointed at an empty one, which must stay empty.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from terminal import foreground

from study import bench, compare, defaults, launch, report, run, ui

COMMANDS = {"launch": launch.main, "run": run.main, "report": report.main,
            "compare": compare.main, "bench": bench.main, "defaults": defaults.main,
            "ui": ui.main}  # fmt: skip
PW = "s3cret-pw"

CASES = [
    # -- study.ui ---------------------------------------------------------------------------
    ("ui", "--runs-dir {d}/nowhere", ["--runs-dir {d}/nowhere: no MLflow store in it"]),
    ("ui", "--runs-dir {d}/file", ["--runs-dir {d}/file: no MLflow store in it"]),
    ("ui", "--runs-dir {d}/store --port 0", ["argument --port: 0: allowed: an integer in [1,"]),
    ("ui", "--runs-dir {d}/store --port http", ["argument --port: 'http'"]),
    ("ui", "--runs-dir {d}/store --host 203.0.113.9", ["--host 203.0.113.9 --port 5000: cannot"]),
    # -- study.launch -----------------------------------------------------------------------
    ("launch", "--space gru", ["--space", "unknown space 'gru'; allowed: linear"]),
    ("launch", "--task nope", ["unknown task 'nope'"]),
    ("launch", "--space tbptt --budget-flops 10", ["--budget-flops 10", "below the smallest"]),
    ("launch", "--trials 0", ["argument --trials: 0: allowed: an integer >= 1"]),
    ("launch", "--trials many", ["argument --trials: 'many'"]),
    ("launch", "--seeds 0", ["argument --seeds: 0"]),
    ("launch", "--steps 0", ["argument --steps: 0"]),
    ("launch", "--steps 12345", ["--steps 12345", "a multiple of 10000"]),
    ("launch", "--concurrency 0", ["argument --concurrency: 0"]),
    ("launch", "--pack 0", ["--pack 0: allowed: a whole number of configurations per trial"]),
    ("launch", "--pack half", ["--pack half: allowed: a whole number", "or auto"]),
    ("launch", "--pack 7 --trials 6", ["--pack 7: larger than the study's 6 trials"]),
    ("launch", "--set alpha", ["--set 'alpha' must have the form NAME=VALUE"]),
    ("launch", "--range alpha=1:x", ["--range 'alpha=1:x' must be NAME=LOW:HIGH"]),
    ("launch", "--space linear --set n_features=3", ["--set", "unknown parameter 'n_features'"]),
    ("launch", "--range alpha=1:0.1", ["--range alpha=1:0.1", "need LOW < HIGH"]),
    ("launch", "--range alpha=1e-5:inf", ["--range alpha=1e-05:inf is not allowed"]),
    ("launch", "--set alpha=inf", ["--set alpha=inf", "finite"]),
    ("launch", "--set norm_floor=0", ["--set norm_floor=0", "above 0"]),
    ("launch", "--set norm_rate=1.5", ["--set norm_rate=1.5", "within [0, 1]"]),
    ("launch", "--set last_stage_at=1", ["--set last_stage_at=1", "(0, 1)"]),
    (
        "launch",
        "--steps 100000 --set steps_per_stage=100000",
        ["--set steps_per_stage=100000", "does not fit a run of 100000 steps"],
    ),  # fmt: skip
    ("launch", "--budget-flops inf", ["--budget-flops inf: allowed: a number of flops"]),
    ("launch", "--budget-flops nan", ["--budget-flops nan: allowed"]),
    ("launch", "--budget-flops 1e12", ["--budget-flops 1e12: allowed"]),
    ("launch", "--budget-flops lots", ["--budget-flops lots: allowed"]),
    ("launch", "--cpus-per-trial nan", ["argument --cpus-per-trial: nan: allowed: a finite"]),
    ("launch", "--cpus-per-trial inf", ["argument --cpus-per-trial: inf"]),
    ("launch", "--cpus-per-trial 0", ["argument --cpus-per-trial: 0"]),
    ("launch", "--gpus-per-trial -1", ["argument --gpus-per-trial: -1"]),
    ("launch", "--sampler-seed x", ["argument --sampler-seed"]),
    ("launch", "--scheduler bogus", ["argument --scheduler: invalid choice: 'bogus'"]),
    ("launch", "--no-such-option", ["unrecognized arguments: --no-such-option"]),
    ("launch", "--address 127.0.0.1:1", ["--address 127.0.0.1:1: cannot reach a Ray cluster"]),
    (
        "launch",
        "--tracking-uri http://127.0.0.1:1",
        ["--tracking-uri http://127.0.0.1:1: cannot reach an MLflow store"],
    ),  # fmt: skip
    ("launch", f"--tracking-uri http://me:{PW}@127.0.0.1:1", ["--tracking-uri http://me:***@"]),
    (
        "launch",
        f"--storage postgresql://me:{PW}@127.0.0.1:1/db",
        ["--storage postgresql://me:***@127.0.0.1:1/db: cannot reach"],
    ),  # fmt: skip
    ("launch", "--storage mongodb://127.0.0.1/x", ["--storage mongodb://", "allowed: sqlite"]),
    ("launch", "--resume", ["--resume: no study 'hybrid-trace_patterning' to resume"]),
    ("launch", "--task seq_mnist --data-dir /nonexistent", ["MNIST folder /nonexistent"]),
    (
        "launch",
        "--data-dir /tmp",
        ["--data-dir/--traces-dir applies to seq_mnist and atari_GAME tasks only"],
    ),
    ("launch", "--runs-dir {d}/file", ["--runs-dir {d}/file: a file; allowed: a folder"]),
    ("launch", "--runs-dir {d}/file/sub", ["--runs-dir {d}/file/sub", "is a file"]),
    ("launch", "--runs-dir {d}/theirs", ["--runs-dir sqlite:///", "not an MLflow store"]),
    ("launch", "--runs-dir {d}/corrupt", ["--runs-dir sqlite:///", "not a readable SQLite"]),
    ("launch", "--storage sqlite:///{d}/theirs.db", ["--storage sqlite:///", "not an Optuna"]),
    ("launch", "--storage sqlite:///{d}/corrupt.db", ["--storage", "not a readable SQLite"]),
    ("launch", "--storage sqlite:///{d}/store/mlflow.db", ["--storage", "not an Optuna"]),
    ("launch", "--tracking-uri sqlite:///{d}/theirs.db", ["--tracking-uri", "not an MLflow"]),
    ("launch", "--storage-path {d}/file", ["--storage-path {d}/file: a file"]),
    ("launch", "--study-name ../up", ["--study-name '../up': allowed: letters"]),
    ("launch", "--study-name ''", ["--study-name '': allowed"]),
    # stores and paths checked for what they are, not only that they exist
    (
        "launch",
        "--storage sqlite:///{d}/damaged.db",
        ["--storage sqlite:///", "a damaged SQLite database (quick_check"],
    ),
    ("launch", "--storage sqlite:////dev/null", ["not a regular file"]),
    ("launch", "--runs-dir /proc/ccn-x", ["--runs-dir /proc/ccn-x: under /proc, a system"]),
    ("launch", "--storage-path /sys/ccn", ["--storage-path /sys/ccn: under /sys"]),
    ("launch", "--storage-path ftp://h/x", ["--storage-path ftp://h/x: scheme 'ftp' is not"]),
    ("launch", "--storage-path file://{d}/file/sub", ["--storage-path {d}/file/sub", "is a file"]),
    # names typed empty or as paths, named by their option
    ("launch", "--task ''", ["--task: unknown task ''; allowed:"]),
    ("compare", "--name ''", ["--name '': allowed: letters, digits"]),
    ("compare", "--name ../x", ["--name '../x': allowed: letters, digits"]),
    # a long name is echoed cut to 80 characters, its length stated
    ("compare", "--name " + "x" * 5000, ["--name 'xxxx", "... (5002 characters): allowed"]),
    ("bench", "--study --study-space gru", ["--study-space 'gru': unknown space; allowed:"]),
    # memory: the state's bytes (the ledger's, x streams) against what this machine has
    (
        "launch",
        "--space rtrl --set n_features=2000 --budget-flops none",
        ["rtrl n_features=2000 on 5 seeds", "its state needs", "more than the"],
    ),
    (
        "launch",
        "--space rtrl --set n_features=128 --budget-flops none --seeds 4096",
        ["(--seeds, --pack, --concurrency): its state needs"],
    ),
    # -- study.run --------------------------------------------------------------------------
    (
        "run",
        "--learner rtrl --features 2000",
        ["rtrl --features 2000 on 4 seeds x 1 configuration: its state needs"],
    ),
    ("run", "--learner uoro --features 100000", ["40,005,300,001 parameters", "more than"]),
    ("run", "--learner rtrl --features 128 --seeds 4096", ["on 4096 seeds", "state needs"]),
    ("run", "--task nope", ["unknown task 'nope'; allowed:"]),
    ("run", "--learner lstm9", ["unknown learner 'lstm9'; allowed: columnar, constructive"]),
    ("run", "--task ''", ["--task: unknown task ''; allowed:"]),
    ("run", "--learner ''", ["--learner: unknown learner ''; allowed: columnar"]),
    ("run", "--gamma 1.5", ["argument --gamma: 1.5: allowed: a finite number in [0, 1)"]),
    ("run", "--gamma nan", ["argument --gamma: nan"]),
    ("run", "--features 0", ["argument --features: 0"]),
    ("run", "--learner hybrid --features 10 --per-stage 3", ["--per-stage 3 does not divide"]),
    ("run", "--learner hybrid --stage-steps -5", ["argument --stage-steps: -5"]),
    ("run", "--norm-floor 0", ["argument --norm-floor: 0: allowed: a finite number in (0, 1]"]),
    ("run", "--norm-floor -0.1", ["argument --norm-floor: -0.1"]),
    ("run", "--norm-rate 1.5", ["argument --norm-rate: 1.5"]),
    ("run", "--alpha inf", ["argument --alpha: inf: allowed: a finite number > 0"]),
    ("run", "--alpha nan", ["argument --alpha: nan"]),
    ("run", "--alpha 1e-3 -1", ["argument --alpha: -1"]),
    ("run", "--lambda 2", ["argument --lambda: 2"]),
    ("run", "--beta2 -0.5", ["argument --beta2: -0.5"]),
    ("run", "--init-scale 0", ["argument --init-scale: 0"]),
    ("run", "--block 0", ["argument --block: 0"]),
    ("run", "--window 0", ["argument --window: 0"]),
    ("run", "--steps 2000 --block 1000 --window 1500", ["--window 1500 is not a multiple"]),
    ("run", "--steps 12345 --block 1000", ["--steps 12345 is not a multiple of the block"]),
    ("run", "--steps 1e6", ["argument --steps: '1e6'"]),
    ("run", "--seeds 0", ["argument --seeds: 0"]),
    ("run", "--seed-offset -1", ["argument --seed-offset: -1"]),
    ("run", "--threads -1", ["argument --threads: -1"]),
    ("run", "--learner columnar --per-stage 2", ["--per-stage", "hybrid learner only"]),
    ("run", "--learner tbptt --truncation 0", ["argument --truncation: 0"]),
    ("run", "--learner hybrid --truncation 3", ["--truncation", "tbptt learner only"]),
    ("run", "--learner columnar --layers 2", ["--layers 2", "lru learner only"]),
    ("run", "--learner lru --layers 0", ["--layers 0 must be between 1 and 8"]),
    (
        "run",
        "--data-dir /tmp",
        ["--data-dir/--traces-dir applies to seq_mnist and atari_GAME tasks only"],
    ),
    # -- study.report -----------------------------------------------------------------------
    ("report", "--runs-dir {d}/store", ["the following arguments are required: --experiment"]),
    ("report", "--experiment , --runs-dir {d}/store", ["--experiment ',' names no experiment"]),
    ("report", "--experiment nope --runs-dir {d}/store", ["unknown experiment 'nope'", "empty"]),
    ("report", "--experiment empty --runs-dir {d}/store", ["experiment 'empty' has no trial"]),
    ("report", "--experiment x --runs-dir {d}", ["--runs-dir {d}: no MLflow store in it"]),
    ("report", "--experiment x --runs-dir {d}/theirs", ["--runs-dir", "not an MLflow store"]),
    ("report", "--experiment x --runs-dir {d}/corrupt", ["--runs-dir", "not a readable SQLite"]),
    (
        "report",
        "--experiment x --tracking-uri http://127.0.0.1:1",
        ["--tracking-uri http://127.0.0.1:1: cannot reach"],
    ),  # fmt: skip
    (
        "report",
        "--experiment x --tracking-uri sqlite:///{d}/missing.db",
        ["--tracking-uri sqlite:///", "no such file"],
    ),  # fmt: skip
    (
        "report",
        "--experiment x --tracking-uri sqlite:///{d}/theirs.db",
        ["--tracking-uri", "not an MLflow store"],
    ),  # fmt: skip
    (
        "report",
        "--experiment empty --runs-dir {d}/store --out {d}/file",
        ["--out {d}/file: a file; allowed: a folder"],
    ),  # fmt: skip
    (
        "report",
        "--experiment empty --runs-dir {d}/store --out {d}/file/r",
        ["--out {d}/file/r", "is a file"],
    ),  # fmt: skip
    # -- study.compare ----------------------------------------------------------------------
    ("compare", "--spaces columnar,nope", ["unknown space 'nope'"]),
    ("compare", "--spaces columnar,columnar", ["--spaces 'columnar,columnar' names a family"]),
    ("compare", "--spaces ,", ["--spaces ',' names no family"]),
    ("compare", "--eval-seeds 1", ["--eval-seeds 1: 1 fresh seed(s); allowed: 2 to 4096"]),
    ("compare", "--seeds 5 --eval-seeds 2-8", ["--eval-seeds 2-8 overlaps the tuning seeds"]),
    ("compare", "--bootstrap-resamples 10", ["--bootstrap-resamples 10 is not allowed"]),
    ("compare", "--budget-flops 10", ["--budget-flops 10: no family of columnar, constructive"]),
    (
        "compare",
        "--preset jmlr-trace-patterning --update-rule paper",
        ["argument --update-rule: invalid choice: 'paper'"],
    ),
    ("compare", "--update-rule reference", ["--update-rule reference applies to --preset"]),
    (
        "run",
        "--learner rtrl --update-rule reference",
        ["--update-rule reference: update_rule=reference applies to columnar"],
    ),
    ("report", "--experiment x --bootstrap-resamples 5000000", ["--bootstrap-resamples 5000000"]),
    ("compare", "--eval-steps -5", ["argument --eval-steps: -5"]),
    ("compare", "--spaces columnar --set hybrid.alpha=0.1", ["--set 'hybrid.alpha=0.1'"]),
    ("compare", "--cpus-per-trial inf", ["argument --cpus-per-trial: inf"]),
    ("compare", "--runs-dir {d}/file", ["--runs-dir {d}/file: a file"]),
    ("compare", "--runs-dir {d}/theirs", ["--runs-dir", "not an MLflow store"]),
    ("compare", "--name fresh --resume --runs-dir {d}/store", ["--resume: no comparison"]),
    ("compare", "--preset jmlr", ["unknown --preset 'jmlr'"]),
    ("compare", "--scale 10", ["--scale applies to --preset only"]),
    ("compare", "--preset jmlr-trace-patterning --scale nan", ["--scale nan is not allowed"]),
    ("compare", "--preset jmlr-trace-patterning --trials 3", ["--trials does not apply"]),
    ("compare", "--pack -1", ["--pack -1: allowed: a whole number"]),
    (
        "compare",
        "--preset jmlr-trace-patterning --pack 500",
        ["--pack 500: larger than the preset's 112 configurations"],
    ),
    # -- study.bench ------------------------------------------------------------------------
    ("bench", "--learners gru", ["--learners 'gru': unknown learner 'gru'"]),
    ("bench", "--learners ,", ["--learners ','"]),
    ("bench", "--memory-steps 12345", ["--memory-steps 12345: allowed: a multiple of 10000"]),
    ("bench", "--threads -2", ["argument --threads: -2"]),
    ("bench", "--streams 1 0", ["argument --streams: 0"]),
    ("bench", "--steps 0", ["argument --steps: 0"]),
    ("bench", "--study --study-packs 1 0", ["--study-packs 0: allowed: a whole number"]),
    ("bench", "--study --study-set '--set alpha=x'", ["--study-set '--set alpha=x': --set alpha"]),
    ("bench", "--study --study-set '--trials 0'", ["argument --trials: 0"]),
    ("bench", "--repeats x", ["argument --repeats: 'x'"]),
    ("bench", "--device tpu", ["--device 'tpu' is not available here"]),
    ("bench", "--out {d}/missing/x.csv", ["--out {d}/missing/x.csv: its folder does not exist"]),
    ("bench", "--out {d}", ["--out {d}: a folder"]),
    # -- study.defaults ---------------------------------------------------------------------
    ("defaults", "--seeds 1", ["argument --seeds: 1"]),
    ("defaults", "--learners gru", ["--learners 'gru': allowed"]),
    ("defaults", "--task seq_mnist", ["--task seq_mnist: allowed: a prediction task"]),
    ("defaults", "--out {d}/missing/x.csv", ["--out {d}/missing/x.csv"]),
]
# Commands that write into a runs folder get one in the case's folder unless the case gives it.
RUNS_DIR = {"launch", "compare"}
OUT = {"bench", "defaults"}


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> Path:
    """The files every case starts from (copied, so that each case is checked on its own)."""
    from mlflow.tracking import MlflowClient

    d = tmp_path_factory.mktemp("bad-input")
    (d / "file").write_text("not a folder\n")
    con = sqlite3.connect(d / "theirs.db")
    con.execute("create table customers (id integer primary key, name text)")
    con.execute("insert into customers (name) values ('Ada')")
    con.commit()
    con.close()
    (d / "corrupt.db").write_bytes(bytes(range(256)) * 64)
    # an Optuna storage whose tables read but whose pages are damaged
    con = sqlite3.connect(d / "damaged.db")
    for table in ("studies", "trials", "version_info"):
        con.execute(f"create table {table} (x)")
    con.execute("create index by_x on trials (x)")
    con.executemany("insert into trials values (?)", [(bytes([i % 256]) * 200,)
                                                      for i in range(3000)])  # fmt: skip
    con.commit()
    con.close()
    damaged = bytearray((d / "damaged.db").read_bytes())
    damaged[4096 * 5 : 4096 * 5 + 2000] = b"\xab" * 2000
    (d / "damaged.db").write_bytes(bytes(damaged))
    (d / "store").mkdir()
    MlflowClient(f"sqlite:///{d / 'store' / 'mlflow.db'}").create_experiment("empty")
    for name in ("theirs", "corrupt"):
        (d / name).mkdir()
        shutil.copy(d / f"{name}.db", d / name / "mlflow.db")
    (d / "traces").mkdir()
    (d / "traces" / "PongNoFrameskip-v4.txt").write_text("R" + "a" * 29_999)
    return d


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file() else "folder"
        for p in sorted(folder.rglob("*"))
    }  # fmt: skip


def _argv(command: str, text: str, d: Path) -> list[str]:
    import shlex

    argv = [a.replace("{d}", str(d)) for a in shlex.split(text)]
    if command in RUNS_DIR and "--runs-dir" not in argv:
        argv += ["--runs-dir", str(d / "runs")]
    if command in OUT and "--out" not in argv:
        argv += ["--out", str(d / "out.csv")]
    if command == "run" and "--steps" not in argv:
        argv += ["--steps", "1000"]
    return argv


def refuse(command: str, text: str, stores: Path, tmp_path: Path, capsys):
    """Run ``command`` with ``text`` on a fresh copy of the stores, with the temporary folder
    an empty one: its exit code, what it printed, how long it took, the copy, and the copy's
    snapshot from before. A refusal that leaves anything in the temporary folder fails."""
    import os
    import tempfile

    d = tmp_path / "d"
    shutil.copytree(stores, d)
    before = snapshot(d)
    temporary = tmp_path / "temporary"
    temporary.mkdir()
    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir, os.environ["TMPDIR"] = str(temporary), str(temporary)
    t0 = time.process_time()  # work done, not the wall clock a busy machine stretches
    try:
        code = COMMANDS[command](_argv(command, text, d))
    except SystemExit as e:  # argparse's refusals
        code = e.code
    finally:
        tempfile.tempdir = saved[0]
        if saved[1] is None:
            os.environ.pop("TMPDIR")
        else:
            os.environ["TMPDIR"] = saved[1]
    seconds = time.process_time() - t0
    captured = capsys.readouterr()
    output = (captured.out + captured.err).strip()
    assert sorted(p.name for p in temporary.iterdir()) == [], output
    return code, output, seconds, d, before


def test_the_table_has_every_command_and_enough_cases():
    assert len(CASES) >= 70
    assert {c for c, _, _ in CASES} == set(COMMANDS)


@pytest.mark.parametrize("command,text,needles", CASES, ids=[f"{c} {t}" for c, t, _ in CASES])
def test_bad_input_is_refused_in_one_line_and_changes_nothing(
    command, text, needles, stores, tmp_path, capsys
):
    code, output, seconds, d, before = refuse(command, text, stores, tmp_path, capsys)
    assert code == 2, output
    assert seconds < 10
    lines = output.splitlines()
    assert 1 <= len(lines) <= 3, output
    assert "Traceback" not in output and PW not in output
    for needle in needles:
        assert needle.replace("{d}", str(d)) in output, output
    assert snapshot(d) == before  # nothing written, created or changed


@pytest.mark.parametrize(
    "command,text,needle",
    [("launch", "--budget-flops inf", "--budget-flops inf"),
     ("run", "--window 0", "argument --window: 0"),
     ("report", "--experiment x --tracking-uri http://127.0.0.1:1", "--tracking-uri"),
     ("compare", "--eval-steps -5", "argument --eval-steps: -5"),
     ("bench", "--out {d}/missing/x.csv", "--out")],
)  # fmt: skip
def test_as_a_process_the_refusal_is_one_line_on_stderr_with_exit_code_2(
    command, text, needle, tmp_path
):
    """The same refusals from the real entry points: no warning or log line before them."""
    argv = _argv(command, text, tmp_path)
    import resource

    def children() -> float:
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        return used.ru_utime + used.ru_stime

    t0 = children()
    proc = subprocess.run([sys.executable, "-m", f"study.{command}", *argv], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert children() - t0 < 10 + 10  # CPU seconds; a fresh interpreter imports JAX first
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
    assert needle in proc.stderr
    assert not any(tmp_path.iterdir())


def _killed_writer(path: Path, tables: tuple[str, ...]) -> None:
    """A SQLite file whose writer died mid-transaction, leaving a hot journal beside it."""
    code = (
        "import os, sqlite3, sys\n"
        "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "for t in sys.argv[2:]: con.execute(f'create table {t} (x)')\n"
        "con.execute('pragma cache_size=2'); con.execute('begin')\n"
        "for _ in range(500): con.execute(f'insert into {sys.argv[2]} values (randomblob(1000))')\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path), *tables], check=True)
    assert Path(f"{path}-journal").stat().st_size > 0


@pytest.mark.parametrize("own", [True, False])
def test_a_store_left_by_a_killed_writer_is_checked_without_writing(tmp_path, own):
    """A store whose writer was killed (a study's driver under the OOM killer) holds a hot
    journal that a read-only connection may not roll back: the check still reads its tables,
    accepts it when it is the store's own and refuses it when not, and leaves the file and its
    journal as they were for the store's next open to roll back."""
    from study.orchestration import stores

    db = tmp_path / "optuna.db"
    _killed_writer(db, ("studies", "trials", "version_info") if own else ("accounts",))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    uri = f"sqlite:///{db}"
    if own:
        stores.check(uri, "--storage", "optuna", must_exist=True)
    else:
        with pytest.raises(ValueError, match="not an Optuna storage \\(tables: accounts\\)"):
            stores.check(uri, "--storage", "optuna")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


# (command, arguments, the secret): passwords with the characters that once leaked (``/``,
# ``@``, ``:``), a token without a user, query parameters, and every scheme.
SECRETS = [
    ("launch", "--storage postgresql://me:pa/ss99q@127.0.0.1:1/db", "pa/ss99q"),
    ("launch", "--storage mysql://me:p@ss99q@127.0.0.1:1/db", "p@ss99q"),
    ("launch", "--storage postgresql://127.0.0.1:1/db?password=zz99q&sslmode=x", "zz99q"),
    ("launch", "--storage postgresql+psycopg2://me:a:b99q@127.0.0.1:1/db", "a:b99q"),
    ("launch", "--storage postgresql://me:pa/ss99q@127.0.0.1:x/db", "pa/ss99q"),  # bad port
    ("launch", "--address ray://me:sec/r@t99q@127.0.0.1:1", "sec/r@t99q"),
    ("launch", "--address me:sec/r@t99q@127.0.0.1:1", "sec/r@t99q"),
    ("launch", "--tracking-uri https://tok99qxyz@127.0.0.1:1", "tok99qxyz"),
    ("launch", "--tracking-uri http://127.0.0.1:1/?api_token=tk99q", "tk99q"),
    ("compare", "--storage postgresql://me:pa/ss99q@127.0.0.1:1/db", "pa/ss99q"),
    ("compare", "--address ray://me:p@ss99q@127.0.0.1:1", "p@ss99q"),
    ("report", "--experiment x --tracking-uri http://me:pa/ss99q@127.0.0.1:1", "pa/ss99q"),
]


def _pieces(secret: str) -> set[str]:
    """Every run of 3 or more characters of ``secret`` between its punctuation: none may
    appear in what a command prints."""
    import re

    return {p for p in re.split(r"[/@:]", secret) if len(p) >= 3} | {secret}


@pytest.mark.parametrize("command,text,secret", SECRETS, ids=[t for _, t, _ in SECRETS])
def test_a_secret_in_any_form_is_never_printed(command, text, secret, stores, tmp_path, capsys):
    code, output, _, d, before = refuse(command, text, stores, tmp_path, capsys)
    assert code == 2 and len(output.splitlines()) == 1, output
    assert "***" in output and not any(p in output for p in _pieces(secret)), output
    assert snapshot(d) == before


def test_ray_address_from_the_environment_is_named_as_the_variable(stores, tmp_path, capsys,
                                                                     monkeypatch):  # fmt: skip
    monkeypatch.setenv("RAY_ADDRESS", "ray://me:env/pw99q@127.0.0.1:1")
    code, err, _, _, _ = refuse("launch", "", stores, tmp_path, capsys)
    assert code == 2
    assert err.startswith("error: RAY_ADDRESS (environment) ray://me:***@127.0.0.1:1: cannot "
                          "reach a Ray cluster"), err  # fmt: skip
    assert "--address" not in err and "env/pw99q" not in err and "pw99q" not in err


@pytest.mark.parametrize("url, shown", [
    ("postgresql://me:pa/ss@h:5432/db", "postgresql://me:***@h:5432/db"),
    ("mysql://me:p@ss@h/db", "mysql://me:***@h/db"),
    ("mysql://u:pw@h/d?sslkey=/k&api_token=zzz", "mysql://u:***@h/d?sslkey=***&api_token=***"),
    ("ray://me:s:e:c@10.0.0.1:10001", "ray://me:***@10.0.0.1:10001"),
    ("me:secret@127.0.0.1:1: bad port", "me:***@127.0.0.1:1: bad port"),
    ("https://TOKEN@github.com/x", "https://***@github.com/x"),
    ("postgresql://h/db;password=x1", "postgresql://h/db;password=***"),
    # nothing to hide
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ("http://127.0.0.1:5000/#/experiments/1/runs", "http://127.0.0.1:5000/#/experiments/1/runs"),
    ("[10:02:11 +3s] started", "[10:02:11 +3s] started"),
])  # fmt: skip
def test_redact_hides_every_secret_of_a_url_and_nothing_else(url, shown):
    from study.cli import redact

    assert redact(url) == shown


# (command, arguments, environment, what the one line says): variables are checked before
# anything starts, named as the variable.
ENVIRONMENT = [
    ("launch", "", {"CCN_ENGINE": "bogus"}, "CCN_ENGINE='bogus' is not allowed; allowed: auto"),
    ("launch", "", {"CCN_SCAN_UNROLL": "abc"}, "CCN_SCAN_UNROLL=abc: allowed: a whole number"),
    ("launch", "--space linear", {"CCN_ENGINE": "native"},
     "CCN_ENGINE=native: the kernel has no linear learner; allowed: auto or jax"),
    ("launch", "--space columnar --task seq_mnist", {"CCN_ENGINE": "native"},
     "CCN_ENGINE=native: the kernel predicts; it does not classify"),
    ("compare", "--spaces columnar,linear", {"CCN_ENGINE": "native"},
     "CCN_ENGINE=native: the kernel has no linear learner"),
    ("compare", "", {"CCN_SCAN_UNROLL": "0"}, "CCN_SCAN_UNROLL=0"),
    ("run", "--learner linear", {"CCN_ENGINE": "native"}, "the kernel has no linear learner"),
    ("run", "", {"CCN_ENGINE": "bogus"}, "CCN_ENGINE='bogus'"),
    ("defaults", "", {"CCN_ENGINE": "bogus"}, "CCN_ENGINE='bogus'"),
    ("defaults", "", {"CCN_SCAN_UNROLL": "1001"}, "CCN_SCAN_UNROLL=1001"),
    ("bench", "", {"CCN_ENGINE": "gpu"}, "CCN_ENGINE='gpu'"),
    ("bench", "", {"CCN_SCAN_UNROLL": "x"}, "CCN_SCAN_UNROLL=x"),
    # MLflow's own variable is honoured, and checked as any store, named as the variable
    ("launch", "", {"MLFLOW_TRACKING_URI": "sqlite:///{d}/theirs.db"},
     "MLFLOW_TRACKING_URI (environment) sqlite:///{d}/theirs.db: a database that is not an "
     "MLflow store (tables: customers)"),
    ("report", "--experiment x", {"MLFLOW_TRACKING_URI": "sqlite:///{d}/theirs.db"},
     "MLFLOW_TRACKING_URI sqlite:///{d}/theirs.db: a database that is not an MLflow store"),
    # the Atari cache: a plain file, a system folder (checked before any replay)
    ("run", "--task atari_pong --traces-dir {d}/traces", {"CCN_ATARI_CACHE": "{d}/file"},
     "CCN_ATARI_CACHE {d}/file: a file; allowed: a folder"),
    ("launch", "--task atari_pong --traces-dir {d}/traces",
     {"CCN_ATARI_CACHE": "/proc/1/ccn-cache"}, "CCN_ATARI_CACHE /proc/1/ccn-cache: under /proc"),
    ("compare", "--preset atari-prediction --traces-dir {d}/traces",
     {"CCN_ATARI_CACHE": "{d}/file/cache"}, "CCN_ATARI_CACHE {d}/file/cache: {d}/file is a file"),
    # every option of the Atari preset, checked before the stores, the replay or Ray
    *[("compare", f"--preset atari-prediction --traces-dir {{d}}/traces {options}",
       {"CCN_ATARI_CACHE": "{d}/cache"}, needle) for options, needle in (
        ("--scale 0", "--scale 0 is not allowed"),
        ("--scale 2501", "--scale 2501 is not allowed"),
        ("--eval-seeds 1", "--eval-seeds 1: 1 fresh seed(s)"),
        ("--seeds 5 --eval-seeds 2-8", "--eval-seeds 2-8 overlaps the tuning seeds"),
        ("--pack 500", "--pack 500: larger than the preset's"),
        ("--racing 5,3", "--racing 5,3"),
        ("--games Pong,Boxing", "--games Pong,Boxing: no trace for 'Boxing'"))],
    # a name or a path longer than the file system holds
    ("launch", "--runs-dir {d}/" + "r" * 300, {}, "a name of 300 bytes; allowed: at most"),
    ("compare", "--runs-dir {d}/" + "r" * 300, {}, "a name of 300 bytes; allowed: at most"),
]  # fmt: skip


@pytest.mark.parametrize("command,text,env,needle", ENVIRONMENT,
                         ids=[f"{c} {t} {e}" for c, t, e, _ in ENVIRONMENT])  # fmt: skip
def test_a_bad_variable_is_refused_by_its_name_before_anything_is_written(
    command, text, env, needle, stores, tmp_path, capsys, monkeypatch
):
    for key, value in env.items():  # {d}: the copy of the stores refuse() makes
        monkeypatch.setenv(key, value.replace("{d}", str(tmp_path / "d")))
    code, output, _, d, before = refuse(command, text, stores, tmp_path, capsys)
    assert code == 2 and len(output.splitlines()) == 1 and "Traceback" not in output, output
    assert output.startswith("error: ") and needle.replace("{d}", str(d)) in output, output
    assert snapshot(d) == before


def test_ctrl_c_while_a_command_still_imports_its_modules_is_one_line_and_exit_code_130():
    """Ctrl+C while ``python -m study.launch`` is still importing (JAX, Ray, MLflow: seconds,
    before ``main`` can answer it): one line and exit 130, not Python's traceback. The signal
    is sent once the process has mapped numpy's compiled module, which only the command's own
    imports load (the package ``study`` itself imports nothing of the kind)."""
    import signal

    proc = subprocess.Popen(foreground("-m", "study.launch", "--help"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    maps = Path(f"/proc/{proc.pid}/maps")
    while time.monotonic() < deadline and proc.poll() is None:
        if "numpy" in maps.read_text():
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert (proc.returncode, err, out) == (130, "interrupted (Ctrl+C)\n", "")


def test_the_import_hook_is_only_a_commands():
    """A program importing ``study`` keeps its own ``sys.excepthook``; a ``python -m`` start
    gets the one-line answer."""
    code = ("import sys; sys.argv[:1] = [{arg!r}]; import study; "
            "print(sys.excepthook is sys.__excepthook__)")  # fmt: skip
    for arg, expected in (("-m", "False"), ("prog.py", "True")):
        run = subprocess.run([sys.executable, "-c", code.format(arg=arg)],
                             capture_output=True, text=True, check=True)  # fmt: skip
        assert run.stdout.strip() == expected, (arg, run.stdout, run.stderr)


def test_ctrl_c_before_a_study_can_pause_is_one_line_and_exit_code_130(capsys):
    """Ctrl+C while a command starts up (before a study's own pause handles it): one line,
    exit code 130, no traceback; every command's main answers it so."""
    from study.interrupt import interruptible

    @interruptible
    def starting(argv=None):
        raise KeyboardInterrupt

    assert starting([]) == 130
    assert capsys.readouterr().err == "interrupted (Ctrl+C)\n"
    assert all(getattr(main, "__wrapped__", None) is not None for main in COMMANDS.values())


def test_ctrl_c_that_stopped_rays_import_half_way_leaves_no_traceback_at_exit():
    """Ctrl+C landing while Ray imports leaves Ray's exit hook registered over modules the
    interrupted import never finished; the hook then raised at exit and printed a traceback
    after ``interrupted (Ctrl+C)`` (seen once in CI at 6.5 s into a launch). Here a module that
    hook imports is made unimportable, as the half-done import leaves it, and the command
    process answers Ctrl+C: one line, exit 130, nothing else."""
    code = """if True:
        import sys
        sys.argv[:1] = ["-m"]
        import study
        import ray._private.worker
        sys.modules["ray.dag.compiled_dag_node"] = None  # what Ray's exit hook imports first
        from study.interrupt import interruptible

        @interruptible
        def main(argv=None):
            raise KeyboardInterrupt

        sys.exit(main([]))
    """
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert (run.returncode, run.stderr, run.stdout) == (130, "interrupted (Ctrl+C)\n", "")


def test_a_ctrl_c_a_library_swallowed_is_answered_when_the_command_starts():
    """A library's bare ``except:`` can swallow the KeyboardInterrupt of a Ctrl+C while the
    command imports it (seen under heavy load: the launch then ran its study to the end with
    exit 0). The command counts the Ctrl+Cs it received against those it answered and answers
    a swallowed one before its work: one line, exit 130, nothing run."""
    code = """if True:
        import os, signal, sys, time
        sys.argv[:1] = ["-m"]
        import study
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler raises here
        except:  # noqa: E722 - a library's, as some are
            pass
        from study.interrupt import interruptible

        @interruptible
        def main(argv=None):
            print("ran to its end")
            return 0

        sys.exit(main([]))
    """
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert (run.returncode, run.stderr, run.stdout) == (130, "interrupted (Ctrl+C)\n", "")


@pytest.mark.parametrize("where", ["main", "import"])
def test_a_ctrl_c_a_library_made_its_own_error_is_answered_not_a_traceback(where):
    """A KeyboardInterrupt raised inside a compiled library can come back as the library's own
    error (pydantic's schema builder, while MLflow imports under load, raised a
    ``SchemaError`` whose cause read ``KeyboardInterrupt``: the Ctrl+C sweep beside a second
    CI run got exit 1 and a traceback). After an unanswered Ctrl+C, an error that ends the
    command, in its ``main`` or while its modules import, is that Ctrl+C's: one line, 130.
    Without a Ctrl+C the same error stays a traceback."""
    code = """if True:
        import os, signal, sys, time
        sys.argv[:1] = ["-m"]
        import study
        class SchemaError(Exception):
            pass
        def library():  # turns the KeyboardInterrupt into an error of its own
            try:
                if CTRL_C:
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(5)  # the handler raises here
                raise KeyboardInterrupt
            except KeyboardInterrupt:
                raise SchemaError("Error building serializer: KeyboardInterrupt") from None
        from study.interrupt import interruptible

        @interruptible
        def main(argv=None):
            library()
            return 0

        if WHERE == "import":
            library()
        sys.exit(main([]))
    """
    for ctrl_c in (True, False):
        script = code.replace("CTRL_C", str(ctrl_c)).replace("WHERE", repr(where))
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             timeout=300)  # fmt: skip
        if ctrl_c:
            assert (run.returncode, run.stderr, run.stdout) == (130, "interrupted (Ctrl+C)\n", "")
        else:
            assert run.returncode == 1 and "SchemaError" in run.stderr, run.stderr


def test_mlflow_tracking_uri_is_honoured_unless_tracking_uri_is_given(tmp_path, monkeypatch):
    """As MLflow users expect: a launch (and compare, report) records where the variable
    points; ``--tracking-uri`` still wins; unset, the runs folder's SQLite store."""
    from study.orchestration.plan import make_plan

    theirs = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", theirs)
    assert make_plan("linear", runs_dir=tmp_path / "runs", smoke=True).tracking_uri == theirs
    given = f"sqlite:///{tmp_path / 'given.db'}"
    plan = make_plan("linear", runs_dir=tmp_path / "runs", smoke=True, tracking_uri=given)
    assert plan.tracking_uri == given
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    plan = make_plan("linear", runs_dir=tmp_path / "runs", smoke=True)
    assert plan.tracking_uri == f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to run a process as another user")  # fmt: skip
def test_a_ray_cluster_another_user_runs_is_refused_before_anything_is_written(
    stores, tmp_path, capsys
):
    """``--address`` naming a cluster whose processes belong to another user is refused in one
    line before the lock, the stores or Ray. Ray's processes name their cluster on their
    command line (``--gcs-address=HOST:PORT``, as Ray's own ``auto`` finds them): a process of
    user ``nobody`` carrying that argument, and a port that answers, stand for that cluster."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    theirs = subprocess.Popen(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/sh", "-c",
         "sleep 60", f"--gcs-address=127.0.0.1:{port}"],
    )  # fmt: skip
    try:
        time.sleep(0.5)  # the process has its command line
        code, output, _, d, before = refuse("launch", f"--address 127.0.0.1:{port}", stores,
                                            tmp_path, capsys)  # fmt: skip
        assert code == 2 and len(output.splitlines()) == 1, output
        assert f"--address 127.0.0.1:{port}: a Ray cluster another user (nobody)" in output
        assert snapshot(d) == before
        # an address that no process of another user serves is not refused for it
        from study.orchestration.local_ray import foreign

        assert foreign(f"127.0.0.1:{port}", "--address") is not None
        assert foreign("127.0.0.1:1", "--address") is None
    finally:
        theirs.kill()
        theirs.wait()
        listener.close()
