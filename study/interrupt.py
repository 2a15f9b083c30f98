"""Ctrl+C in a command: one line and exit code 130 whatever the moment (while Python imports
JAX and Ray, while a study starts, after ``main`` has answered), never a traceback.

``study/__init__.py`` installs :func:`on_sigint` and :func:`quiet_unraisable` as a
``python -m study.X`` process starts; each command's ``main`` is :func:`interruptible`.
"""

from __future__ import annotations

import atexit
import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

COMMAND_PROCESS = False  # this process is a command's (python -m study.X): study/__init__.py


# Ctrl+Cs this process received (on_sigint) and answered (interruptible): more received than
# answered means one was swallowed on its way (by a library's bare ``except:`` while it
# imports or starts, seen under heavy load), and the command answers it at its next check.
_COUNT = {"received": 0, "answered": 0}


def on_sigint(signum: int, frame: Any) -> None:
    """Ctrl+C in a command's process: KeyboardInterrupt, as Python's own handler raises it
    (a named handler, so that :func:`quiet_unraisable` knows the signal is still ours)."""
    _COUNT["received"] += 1
    raise KeyboardInterrupt


def check() -> None:
    """Raise the KeyboardInterrupt of a Ctrl+C that something swallowed (a command calls it
    before work that would otherwise run to its end: Ray Tune's run)."""
    if pending():
        raise KeyboardInterrupt


def quiet_unraisable(hook: Any) -> Any:
    """``sys.unraisablehook`` of a command's process: a KeyboardInterrupt Python swallowed
    (raised in a garbage-collection callback, as JAX's while it starts) is delivered again
    50 ms later from another thread, silently; anything else goes to ``hook``."""
    import _thread

    def again() -> None:
        time.sleep(0.05)
        if signal.getsignal(signal.SIGINT) is on_sigint:
            _thread.interrupt_main(signal.SIGINT)

    def unraisable(info: Any) -> None:
        if not isinstance(info.exc_value, KeyboardInterrupt):
            hook(info)
            return
        while True:  # never raise here: that would be swallowed too
            try:  # a bare thread: threading's start waits, and Ctrl+C could land there
                _thread.start_new_thread(again, ())
                return
            except KeyboardInterrupt:
                continue

    return unraisable


def exit_at_once(code: int) -> Callable[..., None]:
    """The SIGINT handler of a command process whose ``main`` returned ``code``: a Ctrl+C
    during the exit ends it at once (the launch's watcher stops Ray's processes)."""

    def handler(signum: int, frame: Any) -> None:
        os._exit(code)

    return handler


def forget_unstarted_ray() -> None:
    """Drop Ray's exit hook when Ray started nothing in this process: a Ctrl+C that stopped
    Ray's import half-way leaves a hook that raises at exit (it imports Ray modules the
    interrupted import left unfinished) and prints a traceback after ``interrupted``."""
    worker = sys.modules.get("ray._private.worker")
    if worker is None:
        return
    started = getattr(worker, "_global_node", None) is not None
    connected = getattr(getattr(worker, "global_worker", None), "connected", False)
    if not started and not connected:
        atexit.unregister(worker.shutdown)


def pending() -> bool:
    """Whether this process received a Ctrl+C that nothing answered yet. An exception that
    ends the command then is that Ctrl+C's doing: a KeyboardInterrupt raised inside a
    compiled library can come back as the library's own error (pydantic's schema builder,
    while MLflow imports, raises a ``SchemaError`` whose cause reads ``KeyboardInterrupt``)."""
    return _COUNT["received"] > _COUNT["answered"]


def answered(ours: bool = True) -> int:
    """Answer the Ctrl+C: one line, exit code 130 (and a second Ctrl+C during the exit ends
    it at once, in a command's own process)."""
    _COUNT["answered"] = _COUNT["received"]
    forget_unstarted_ray()
    if ours and COMMAND_PROCESS:
        signal.signal(signal.SIGINT, exit_at_once(130))
    print("interrupted (Ctrl+C)", file=sys.stderr, flush=True)
    return 130


def interruptible(main: Callable[..., int]) -> Callable[..., int]:
    """A command's ``main`` that answers Ctrl+C where nothing else does (while it starts up,
    before a study can pause) with one line and exit code 130, not a traceback, whatever the
    moment (:func:`quiet_unraisable`); in a command's own process (``python -m study.X``), a Ctrl+C
    after ``main`` has answered ends the exit at once (:func:`exit_at_once`)."""

    @functools.wraps(main)
    def run(argv: list[str] | None = None) -> int:
        ours = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, on_sigint) if ours else None
        code = 130
        try:
            if ours:
                check()  # a Ctrl+C swallowed while the command's modules were imported
            code = main(argv)
            return code
        except KeyboardInterrupt:
            return answered(ours)
        except Exception:
            if ours and pending():  # a library made the Ctrl+C an error of its own
                return answered(ours)
            raise
        finally:
            if ours:
                signal.signal(signal.SIGINT, exit_at_once(code) if COMMAND_PROCESS else previous)

    return run
