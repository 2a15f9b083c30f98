"""``python -m study.ui``: MLflow's UI on a runs folder, wherever the folder now lies.

MLflow's store names each run's artifact folder by absolute path, so ``mlflow ui`` on a runs
folder that was copied or moved shows the original's artifacts (or none, once the original
is gone). This command first points the folder's store at its own ``artifacts/`` (what a
launch into the folder does too; ``study.orchestration.stores.relocate``), prints each
study's results page, then runs ``mlflow ui`` on the store until Ctrl+C. Every check comes
before anything is written or started.

The server runs in a session of its own, its output in ``logs/ui-*.log`` of the runs folder:
Ctrl+C (the terminal's SIGINT to its foreground group) reaches this command alone, which
stops the server in order (SIGTERM to its group, which MLflow's workers answer by shutting
down) and says so in one line, instead of each worker printing its traceback. A server
whose parent dies is sent SIGTERM by the kernel (Linux), so none outlives the command.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from study.cli import Parser, count, fail
from study.interrupt import interruptible
from study.orchestration import stores
from study.records.ui_app import APP_NAME


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise ValueError(f"--host {host} --port {port}: cannot listen there ({e.strerror});"
                             " give another --port") from None  # fmt: skip


def pages(uri: str, server: str) -> list[str]:
    """One line per experiment with runs: its name and its results page on ``server``."""
    from study.records.store import Store
    from study.records.view import runs_page

    store = Store(uri)
    return [f"{name}: {runs_page(server, store.experiment(name).experiment_id)}"
            for name in store.experiment_names(with_runs=True)]  # fmt: skip


@interruptible
def main(argv: list[str] | None = None) -> int:
    p = Parser(
        prog="python -m study.ui",
        description="MLflow's UI on a runs folder (copied or moved ones included).",
    )
    p.add_argument("--runs-dir", default="runs", help="folder of the embedded stores (runs)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=count(1, 65535), default=5000, help="port to listen on (5000)")
    args = p.parse_args(argv)
    try:
        runs = Path(args.runs_dir).expanduser().resolve()
        store = runs / "mlflow.db"
        if not store.is_file():
            raise ValueError(f"--runs-dir {args.runs_dir}: no MLflow store in it ({store})")
        uri = f"sqlite:///{store}"
        stores.check(uri, "--runs-dir", "mlflow", True)
        if not os.access(store, os.W_OK) or not os.access(runs, os.W_OK):
            raise ValueError(f"--runs-dir {args.runs_dir}: not writable (MLflow's UI writes "
                             "to its store)")  # fmt: skip
        _check_port(args.host, args.port)
    except ValueError as e:
        return fail(str(e))
    moved = stores.relocate(store, runs)
    if moved:
        print(f"this runs folder was copied or moved: its store now points at "
              f"{runs / 'artifacts'} ({moved} locations)")  # fmt: skip
    server = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}"
    for line in pages(uri, server):
        print(line)
    # One server process: MLflow's default of 4 runs uvicorn's supervisor, which kills a worker
    # that misses its 5-second health check, and on a busy machine (workers still importing
    # MLflow) it killed them again and again; pages then failed half-loaded ("Something went
    # wrong"). One person's browser needs no more.
    command = [sys.executable, "-m", "mlflow", "ui", "--app-name", APP_NAME,
               "--backend-store-uri", uri, "--host", args.host,
               "--port", str(args.port), "--workers", "1"]  # fmt: skip
    return serve(command, server, runs / "logs" / f"ui-{time.strftime('%Y%m%d-%H%M%S')}.log")


def _die_with_parent() -> None:
    """In the server's process before it runs: SIGTERM when this command's process dies
    (Linux's ``PR_SET_PDEATHSIG``; elsewhere nothing)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def serve(command: list[str], server: str, log: Path) -> int:
    """Run the server ``command`` until it ends (2: it failed, its log named) or Ctrl+C or
    SIGTERM stops it (130, one line)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent)  # fmt: skip
    print(f"MLflow UI on {server} (Ctrl+C stops it; the server's log: {log})", flush=True)

    def stop(signum, frame):  # noqa: ANN001 - a signal handler's signature
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        _stop(proc)
        print("MLflow UI stopped (Ctrl+C)", file=sys.stderr, flush=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return fail(f"the MLflow UI stopped by itself (exit {code}); its log: {log}")


def _stop(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """Stop the server's whole group in order, then by force after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


if __name__ == "__main__":
    sys.exit(main())
