"""``python -m study.ui``: MLflow's UI on a runs folder, wherever the folder now lies.

MLflow's store names each run's artifact folder by absolute path, so ``mlflow ui`` on a runs
folder that was copied or moved shows the original's artifacts (or none, once the original
is gone). This command first points the folder's store at its own ``artifacts/`` (what a
launch into the folder does too; ``study.orchestration.stores.relocate``), prints each
study's results page, then runs ``mlflow ui`` on the store in the foreground (Ctrl+C stops
it). Every check comes before anything is written or started.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from study.cli import Parser, count, fail, interruptible
from study.orchestration import stores


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
    print(f"MLflow UI on {server} (Ctrl+C stops it)", flush=True)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", args.host, "--port", str(args.port)]  # fmt: skip
    os.execv(sys.executable, command)
    return 0  # not reached: the process is MLflow's UI now


if __name__ == "__main__":
    sys.exit(main())
