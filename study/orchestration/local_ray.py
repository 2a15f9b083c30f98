"""The Ray a launch starts on this machine: private by default, and never outliving its driver.

Private: Ray binds its servers (GCS, raylet, workers, dashboard, agents, metrics) to every
interface unless its node address is the loopback one, which Ray does only in the single-machine
mode it uses on macOS and Windows, switched by ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (read
when Ray starts its processes). A launch sets it unless ``--expose-ray`` is given; token
authentication stays on (Ray turns it on for a local cluster unless ``RAY_AUTH_MODE=disabled``),
and :func:`dashboard_hint` says where the token is.

Never outliving: Ray's agents survive a SIGKILL of the driver. :func:`watch_driver` starts a
small watcher process (its own session, so a signal to the driver's group does not reach it)
that records the driver's descendant processes every second in a file and, once the driver is
gone, stops every one still alive; the next launch in the same runs folder does the same from
that file (:func:`reap`) should the watcher itself have been killed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

LOCAL_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def prepare(address: str | None, expose: bool = False) -> dict[str, str | None]:
    """Set what a local Ray reads from the environment: loopback only unless ``expose``, and
    token authentication said explicitly (only before Ray is first imported, which reads it;
    Ray's own default for a local cluster). Returns the previous values for :func:`restore`,
    so that nothing leaks into processes this one starts later (another machine's ``ray
    start``)."""
    saved: dict[str, str | None] = {}
    if address:
        return saved

    def put(key: str, value: str) -> None:
        saved.setdefault(key, os.environ.get(key))
        os.environ[key] = value

    if not expose:
        put(LOCAL_ONLY, "0")
    if "RAY_worker_niceness" not in os.environ:
        # Ray starts its workers at niceness 15: on a machine busy with other work the
        # trials, which are the study, then get a few percent of a core (a 2-core machine
        # running two busy processes beside the test suite: 31 tests in 18 minutes). At 0
        # they share the machine fairly with that work.
        put("RAY_worker_niceness", "0")
    if "ray" not in sys.modules and "RAY_AUTH_MODE" not in os.environ:
        # Ray turns token authentication on for a local cluster by itself, with a warning on
        # every launch ("Set RAY_AUTH_MODE=disabled to opt out"); saying so is the same
        # choice, without the warning. Ray creates the token (~/.ray/auth_token) when a first
        # local cluster needs one, as it does unasked.
        put("RAY_AUTH_MODE", "token")
    return saved


def restore(saved: dict[str, str | None]) -> None:
    """Undo :func:`prepare` (after ``ray.shutdown()``)."""
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if LOCAL_ONLY in saved and "ray" in sys.modules:
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = os.environ.get(LOCAL_ONLY, "1").lower() not in (
            "0", "false"
        )  # fmt: skip


def owners(address: str) -> set[int]:
    """The users (uids) of this machine's Ray processes serving the cluster at ``address``
    (HOST:PORT): Ray's own processes name it on their command line (``--gcs-address=``, the
    way Ray's ``auto`` finds a cluster). Empty when none runs here (a remote cluster)."""
    import psutil

    found = set()
    for proc in psutil.process_iter(["cmdline", "uids"]):
        try:
            line = proc.info["cmdline"] or []
            if f"--gcs-address={address}" in line or f"--gcs_address={address}" in line:
                found.add(proc.info["uids"].real)
        except (psutil.Error, TypeError, AttributeError):
            continue
    return found


def foreign(address: str, flag: str) -> str | None:
    """Why the Ray cluster at ``address`` is not this user's to use (another user's
    processes serve it: a study would write its stores, then wait on workers it may not
    start or reach), or None."""
    theirs = owners(address) - {os.getuid()}
    if not theirs:
        return None
    import pwd

    names = []
    for uid in sorted(theirs):
        try:
            names.append(pwd.getpwuid(uid).pw_name)
        except KeyError:
            names.append(f"uid {uid}")
    return (f"{flag} {address}: a Ray cluster another user ({', '.join(names)}) started on "
            f"this machine; allowed: HOST:PORT of a cluster of yours (`ray start --head` "
            f"prints it), or no --address (a Ray of the study's own)")  # fmt: skip


class Unreachable(RuntimeError):
    """Ray could not be started, or the cluster at ``--address`` reached (:func:`session`)."""


@contextlib.contextmanager
def environment(address: str | None, expose: bool = False) -> Iterator[None]:
    """:func:`prepare` on entry (unless Ray already runs in this process) and :func:`restore`
    on exit: what a launch or a comparison holds while it imports and runs Ray."""
    running = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    saved = {} if running else prepare(address, expose)
    try:
        yield
    finally:
        restore(saved)


@contextlib.contextmanager
def session(address: str | None, runs: Path, name: str,
            expose: bool = False) -> Iterator[str | None]:  # fmt: skip
    """The Ray a study or a comparison runs on, for the length of the ``with`` block: the Ray
    this process already runs (a comparison's, for its stages) as it is, yielding None;
    otherwise, after stopping what killed launches left running in ``runs``
    (:func:`reap_leftovers`), a local Ray started (or the cluster at ``address`` joined),
    yielding its dashboard's address, watched so that it never outlives this process
    (:func:`watch_driver`), and shut down on exit. :class:`Unreachable` when it cannot
    start."""
    with environment(address, expose):
        import ray

        from study.orchestration.lock import lock_dir

        if ray.is_initialized():
            yield None
            return
        if stopped := reap_leftovers(runs, name):
            print(f"stopped {stopped} process(es) of an earlier launch's Ray that was killed")
        pidfile, watcher = lock_dir(runs) / f"{name}.ray.json", None
        try:
            dashboard = start(address, runs, expose=expose)
        except Exception as e:  # noqa: BLE001 - whatever Ray raises, the user's address
            raise Unreachable(f"cannot reach Ray at --address {address}: {e}") from None
        try:
            if not address:
                watcher = watch_driver(pidfile)
            yield dashboard
        finally:
            if ray.is_initialized():
                ray.shutdown()
            if watcher is not None:
                unwatch(watcher, pidfile)


def reap_leftovers(runs: Path, name: str) -> int:
    """Stop the Ray processes that launches killed before they could (their watcher killed
    too) left running: those recorded for this study, whose lock this process holds, and those
    of any other study in ``runs`` whose lock is free, unless the process that recorded them
    still runs (a comparison holds no study lock while its studies run on its Ray). Returns
    how many were stopped."""
    from study.orchestration.lock import is_free, lock_dir

    stopped = 0
    for pidfile in sorted(lock_dir(runs).glob("*.ray.json")):
        study = pidfile.name.removesuffix(".ray.json")
        if driver_alive(pidfile):  # not left over: e.g. study.compare's own Ray
            continue
        if study == name or is_free(lock_dir(runs) / f"{study}.lock"):
            stopped += reap(pidfile)
    return stopped


def start(address: str | None, runs: Path, expose: bool = False) -> str | None:
    """Start a local Ray (or connect to ``address``) with what JAX needs in every worker;
    returns the dashboard address when there is one. Call :func:`prepare` first."""
    import ray
    from ray._private import ray_constants

    if not address:  # the constant is read at import, which may have happened already
        ray_constants.ENABLE_RAY_CLUSTER = expose
    ctx = ray.init(
        address=address or "local",
        runtime_env={"env_vars": worker_env(runs)},
        include_dashboard=None if address else True,
        dashboard_host="0.0.0.0" if expose and not address else "127.0.0.1",
        log_to_driver=False,
        logging_level=logging.WARNING,  # the launch prints the dashboard itself
    )
    return getattr(ctx, "dashboard_url", None)


def dashboard_hint(url: str) -> str:
    """How to open the dashboard at ``url`` under token authentication."""
    if os.environ.get("RAY_AUTH_MODE", "token").lower() == "disabled":
        return f"Ray dashboard: http://{url}"
    if os.environ.get("RAY_AUTH_TOKEN"):
        where = "the value of $RAY_AUTH_TOKEN"
    else:
        path = os.environ.get("RAY_AUTH_TOKEN_PATH") or "~/.ray/auth_token"
        where = f"the contents of {path} (cat {path})"
    return f"Ray dashboard: http://{url} (it asks for a token: paste {where})"


def worker_env(runs: Path) -> dict[str, str]:
    """The environment every Ray worker of a study gets (set before JAX starts there)."""
    env_vars = {
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
        "RAY_USAGE_STATS_ENABLED": "0",
        # Trials of one shape compile once across worker processes and resumed launches.
        "JAX_COMPILATION_CACHE_DIR": str(runs / "jax-cache"),
        # A trial stopped by the scheduler closes its MLflow run (curve plot, final metrics)
        # before its actor is reused; Tune's default of 2 s for that is too short on a busy
        # machine, and a failed reuse errors the next trial before it starts.
        "TUNE_FUNCTION_THREAD_TIMEOUT_S": "60",
    }
    for key in ("JAX_PLATFORMS", "XLA_FLAGS", "JAX_COMPILATION_CACHE_DIR"):
        if key in os.environ:
            env_vars[key] = os.environ[key]
    return env_vars


# -- processes ------------------------------------------------------------------------------


def _descendants(pid: int) -> dict[int, float]:
    """``{pid: start time}`` of every descendant process of ``pid``."""
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return {}
    found = {}
    for child in children:
        try:
            found[child.pid] = child.create_time()
        except psutil.Error:
            pass
    return found


def _alive(pid: int, started: float) -> bool:
    """Whether ``pid`` is still the process that started at ``started`` (pids are reused)."""
    import psutil

    try:
        return abs(psutil.Process(pid).create_time() - started) < 0.01
    except psutil.Error:
        return False


def reap(pidfile: Path, grace: float = 3.0) -> int:
    """Stop every process recorded in ``pidfile`` (and its descendants) that still runs:
    SIGTERM, then SIGKILL after ``grace`` seconds (Ray's agents ignore SIGTERM). Removes the
    file; returns how many processes were still running."""
    try:
        recorded = {int(k): float(v) for k, v in json.loads(pidfile.read_text())["pids"].items()}
    except (OSError, ValueError, KeyError):
        pidfile.unlink(missing_ok=True)
        return 0
    live = {pid: t for pid, t in recorded.items() if pid != os.getpid() and _alive(pid, t)}
    for pid in list(live):
        live.update(_descendants(pid))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid, started in live.items():
            if _alive(pid, started):
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
        end = time.monotonic() + grace
        while time.monotonic() < end and any(_alive(p, t) for p, t in live.items()):
            time.sleep(0.1)
    pidfile.unlink(missing_ok=True)
    return len(live)


def driver_alive(pidfile: Path) -> bool:
    """Whether the driver that wrote ``pidfile`` still runs (a zombie does not)."""
    import psutil

    try:
        driver = int(json.loads(pidfile.read_text())["driver"])
        return psutil.Process(driver).status() != psutil.STATUS_ZOMBIE
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return False


def _write(pidfile: Path, driver: int, pids: dict[int, float]) -> None:
    pidfile.parent.mkdir(parents=True, exist_ok=True)  # (a fresh --runs-dir has no locks yet)
    tmp = pidfile.with_suffix(".tmp")
    tmp.write_text(json.dumps({"driver": driver, "pids": pids}))
    tmp.replace(pidfile)


def watch_driver(pidfile: Path) -> subprocess.Popen:
    """Record this process's Ray processes in ``pidfile`` now and start the watcher that
    keeps the record and stops them once this process is gone. Stop it with :func:`unwatch`
    after ``ray.shutdown()``."""
    driver = os.getpid()
    _write(pidfile, driver, _descendants(driver))
    return subprocess.Popen(
        [sys.executable, "-m", "study.orchestration.local_ray", str(driver), str(pidfile)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def unwatch(watcher: subprocess.Popen | None, pidfile: Path) -> None:
    """Stop the watcher of a driver that shut its Ray down itself."""
    if watcher is not None:
        watcher.terminate()
        watcher.wait(timeout=10)
    pidfile.unlink(missing_ok=True)


def _watch(driver: int, pidfile: Path) -> None:
    import psutil

    try:
        started = psutil.Process(driver).create_time()
    except psutil.Error:
        started = None
    me = os.getpid()
    known: dict[int, float] = {}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    while not stop and started is not None and _alive(driver, started):
        found = {p: t for p, t in _descendants(driver).items() if p != me}
        if set(found) - set(known):
            known.update(found)
            _write(pidfile, driver, known)
        time.sleep(1.0)
    if not stop:  # the driver died without shutting its Ray down
        reap(pidfile)


if __name__ == "__main__":
    _watch(int(sys.argv[1]), Path(sys.argv[2]))
