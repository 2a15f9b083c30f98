"""A command started as a terminal's shell starts a foreground job: Ctrl+C (SIGINT) at its
default disposition.

A test run started in the background by a shell without job control (``cmd &`` in a script,
``nohup``) inherits SIGINT *ignored*, and so would every command it starts: a Ctrl+C sent to
that command before its ``main`` runs is then dropped by the kernel, and the command runs to
its end. Tests that send Ctrl+C start their command through :func:`foreground`, so they test
what a user at a terminal meets whatever started the suite.
"""

from __future__ import annotations

import sys

# SIG_DFL survives exec (an ignored signal would too): the command starts as a terminal's would
_DEFAULT_SIGINT_THEN_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


def foreground(*args: str) -> list[str]:
    """The argv running ``python ARGS`` (e.g. ``"-m", "study.launch", ...``) in this very
    process id with SIGINT at its default, as a terminal's shell runs a foreground job."""
    return [sys.executable, "-c", _DEFAULT_SIGINT_THEN_EXEC, *args]
