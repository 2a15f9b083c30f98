"""The stores a command is given, checked before it opens them: a SQLite file is read without
writing a byte (``mode=ro``) and must be empty or already hold the store's own tables, so no
command turns someone's database into an MLflow or Optuna store; a server is probed with a
short timeout. Each check raises a one-line ValueError naming the option as typed."""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from study.cli import probe, redact, sqlite_file, writable_folder

# Tables every store of the kind has had since long before the versions pinned here.
KINDS = {
    "mlflow": ("an MLflow store", {"experiments", "runs", "metrics", "params", "tags"}),
    "optuna": ("an Optuna storage", {"studies", "trials", "version_info"}),
}
DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "http": 80, "https": 443}


def tables(path: Path) -> set[str]:
    """The tables of the SQLite file ``path``, read without writing; raises sqlite3.Error
    when it is not a SQLite database. A writer killed mid-transaction leaves a hot journal
    that a read-only connection may not roll back ("attempt to write a readonly database");
    the schema is then read from the file as it lies (``immutable``), and the journal is left
    for the store's own next open to roll back."""
    try:
        return _tables(path, "mode=ro")
    except sqlite3.OperationalError as e:
        if "readonly" not in str(e):
            raise
        return _tables(path, "mode=ro&immutable=1")


def damaged(path: Path) -> str | None:
    """SQLite's ``PRAGMA quick_check`` of the file, read-only: None when it reads whole, else
    its first complaint. Once per process for a file unchanged since (a 250 MB MLflow store
    takes about 4 s; a comparison checks its stores before every stage)."""
    stat = path.stat()
    return _damaged(path.resolve(), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _damaged(path: Path, size: int, mtime_ns: int) -> str | None:
    for query in ("mode=ro", "mode=ro&immutable=1"):  # the second past a hot journal
        con = sqlite3.connect(f"{path.resolve().as_uri()}?{query}", uri=True)
        try:
            (first,) = con.execute("pragma quick_check(1)").fetchone()
            return None if first == "ok" else str(first).splitlines()[0][:200]
        except sqlite3.OperationalError as e:
            if "readonly" not in str(e):
                return str(e)
        except sqlite3.DatabaseError as e:
            return str(e)
        finally:
            con.close()
    return None


def _tables(path: Path, query: str) -> set[str]:
    con = sqlite3.connect(f"{path.resolve().as_uri()}?{query}", uri=True)
    try:
        return {name for (name,) in con.execute("select name from sqlite_master where "
                                                "type = 'table'")}  # fmt: skip
    finally:
        con.close()


def check(uri: str, flag: str, kind: str, must_exist: bool = False) -> None:
    """Refuse ``uri`` (given as ``flag``) unless it can be ``kind``'s store: a SQLite file that
    is new, empty or already ``kind``'s (``must_exist``: already ``kind``'s), or a server that
    answers. Reads only."""
    what, own = KINDS[kind]
    path = sqlite_file(uri)
    if path is not None:
        if not path.exists():
            if must_exist:
                raise ValueError(f"{flag} {uri}: no such file; allowed: {what}")
            writable_folder(str(path.parent), flag)
            return
        if path.is_dir():
            raise ValueError(f"{flag} {uri}: a folder; allowed: a SQLite file")
        if not path.is_file():
            raise ValueError(f"{flag} {uri}: not a regular file (a device or a pipe); "
                             f"allowed: a SQLite file")  # fmt: skip
        try:
            found = tables(path)
        except sqlite3.Error as e:
            raise ValueError(f"{flag} {uri}: not a readable SQLite database ({e}); "
                             f"allowed: {what}") from None  # fmt: skip
        damage = damaged(path) if found else None
        if damage:
            raise ValueError(f"{flag} {uri}: a damaged SQLite database (quick_check: {damage}); "
                             f"allowed: {what} that reads whole, or a new file")  # fmt: skip
        if (found or must_exist) and not own <= found:
            others = ", ".join(sorted(found)[:4]) + (", ..." if len(found) > 4 else "")
            raise ValueError(f"{flag} {uri}: a database that is not {what} (tables: "
                             f"{others or 'none'}); allowed: {what}, or a new file")  # fmt: skip
        return
    scheme = urlsplit(uri).scheme.split("+")[0]
    if scheme in DEFAULT_PORTS and not (kind == "optuna" and scheme.startswith("http")):
        probe(uri, flag, what, DEFAULT_PORTS[scheme])
        return
    if kind == "mlflow" and scheme in ("file", "databricks"):
        return
    servers = "http(s)://HOST:PORT, " if kind == "mlflow" else ""
    raise ValueError(f"{flag} {redact(uri)}: allowed: sqlite:///PATH, {servers}"
                     f"postgresql://... or mysql://...")  # fmt: skip


def relocate(path: Path, folder: Path) -> int:
    """Point an embedded MLflow store ``path`` at its runs ``folder`` after the folder was
    copied or moved: every experiment's artifact location ``file://OLD/artifacts`` (where
    the study ran) and its runs' artifact URIs become ``folder``'s, so that what a launch
    logs, and what ``mlflow ui`` shows, are this folder's files and never the original's.
    Returns how many rows changed (0 for a folder that never moved)."""
    new = (folder.resolve() / "artifacts").as_uri()
    con = sqlite3.connect(path)
    try:
        olds = {loc for (loc,) in con.execute(
            "select artifact_location from experiments where artifact_location like 'file:%'")
            if loc.endswith("/artifacts") and loc != new}  # fmt: skip
        changed = 0
        for old in olds:
            changed += con.execute("update experiments set artifact_location = ? where "
                                   "artifact_location = ?", (new, old)).rowcount  # fmt: skip
            changed += con.execute(
                "update runs set artifact_uri = ? || substr(artifact_uri, ?) where "
                "substr(artifact_uri, 1, ?) = ?", (new, len(old) + 1, len(old) + 1, old + "/"),
            ).rowcount  # fmt: skip
        con.commit()
        return changed
    finally:
        con.close()


# -- opening and settling the Optuna store ------------------------------------------------


def created(open_store: Callable[[], Any]) -> Any:
    """``open_store()``, tried again when a new SQLite store that another process (an
    ``mlflow ui``, an Optuna dashboard, a monitoring script) creates at the same moment fails
    with "already exists"."""
    for attempt in range(4):
        try:
            return open_store()
        except Exception as e:
            if attempt == 3 or "already exists" not in str(e):
                raise
            time.sleep(1.0 + attempt)


def running_optuna_trials(storage, name: str) -> list[int]:
    """The ids of study ``name``'s trials still marked running in an Optuna ``storage``."""
    import optuna

    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return []
    running = storage.get_all_trials(study_id, states=(optuna.trial.TrialState.RUNNING,))
    return [storage.get_trial_id_from_study_id_trial_number(study_id, t.number) for t in running]


def fail_optuna_trials(storage, trial_ids: list[int]) -> None:
    """Mark those of ``trial_ids`` still running as failed (trials a killed launch lost)."""
    import optuna

    for trial_id in trial_ids:
        if storage.get_trial(trial_id).state == optuna.trial.TrialState.RUNNING:
            storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
