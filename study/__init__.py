"""ccn-study: studies of online recurrent learners.

``python -m study.COMMAND`` interrupted with Ctrl+C while Python still imports the command's
modules (JAX, Ray and MLflow take seconds) ends as the command's own ``main`` would end it: one
line and exit code 130, not a traceback.

Modules moved into the engine, orchestration, records and comparison rooms keep their old
names for what was pickled under them: a study recorded before the move (Tune's searcher and
callbacks name ``study.pack_search``, ``study.console``, ...) resumes unchanged, each old name
resolving to the very module it became.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import sys

MOVED = {
    **{f"study.{m}": f"study.engine.{m}"
       for m in ("loop", "trial", "kinds", "program", "pack", "classify", "clock", "threads")},
    **{f"study.{m}": f"study.orchestration.{m}"
       for m in ("plan", "execute", "trainable", "pack_search", "local_ray", "lock", "stores",
                 "console")},
    # a pickled trainable holds the launch's Tracking, defined here before the records room
    "study.tracking": "study.records.study",
    "study.orchestration.tracking": "study.records.study",
    **{f"study.{m}": f"study.compare.{m}" for m in ("preset", "stages")},
}  # fmt: skip


class _Moved(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module name of :data:`MOVED` and loads it as the module it became."""

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001, ARG002
        if name not in MOVED:
            return None
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec):  # noqa: ANN001
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module):  # noqa: ANN001, ARG002
        pass  # the module it became ran when it was imported


def lazy_exports(package: str, where: dict[str, str]):
    """``(__all__, __getattr__)`` of a room whose public names (``where``: name -> module)
    are each imported from their module on first use, so that importing the room starts
    nothing heavy (JAX, Ray)."""

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)

    return sorted(where), __getattr__


if not any(isinstance(f, _Moved) for f in sys.meta_path):
    sys.meta_path.append(_Moved())


def _interrupted_while_importing(kind, value, tb):  # noqa: ANN001
    """``sys.excepthook`` of a ``python -m study.COMMAND`` run: Ctrl+C before the command's
    ``main`` runs (which answers it itself: ``study.interrupt.interruptible``) is one line and
    exit code 130."""
    interrupt = sys.modules.get("study.interrupt")
    # a Ctrl+C, or an error a library made of one (study.interrupt.pending)
    if issubclass(kind, KeyboardInterrupt) or (interrupt is not None and interrupt.pending()):
        print("interrupted (Ctrl+C)", file=sys.stderr, flush=True)
        os._exit(130)  # nothing has started yet that an orderly exit would have to stop
    sys.__excepthook__(kind, value, tb)


# ``python -m study.X`` imports this package while ``sys.argv[0]`` is still "-m": a command is
# starting. A program or notebook importing the package keeps its own hook.
if sys.argv[:1] == ["-m"] and sys.excepthook is sys.__excepthook__:
    sys.excepthook = _interrupted_while_importing
    # Ctrl+C raised where Python swallows it (JAX's garbage-collection callback, while the
    # command imports) is delivered again (study.interrupt.quiet_unraisable), from the start
    import signal as _signal

    from study import interrupt as _interrupt

    if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
        _interrupt.COMMAND_PROCESS = True
        _signal.signal(_signal.SIGINT, _interrupt.on_sigint)
        sys.unraisablehook = _interrupt.quiet_unraisable(sys.unraisablehook)
