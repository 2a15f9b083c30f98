"""ccn-study: studies of online recurrent learners.

Modules moved into the engine, orchestration and comparison rooms keep their old names for
what was pickled under them: a study recorded before the move (Tune's searcher and callbacks
name ``study.pack_search``, ``study.console``, ...) resumes unchanged, each old name resolving
to the very module it became.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    **{f"study.{m}": f"study.engine.{m}"
       for m in ("loop", "trial", "kinds", "program", "pack", "classify", "clock", "threads")},
    **{f"study.{m}": f"study.orchestration.{m}"
       for m in ("plan", "execute", "trainable", "pack_search", "tracking", "local_ray", "lock",
                 "stores", "console")},
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


if not any(isinstance(f, _Moved) for f in sys.meta_path):
    sys.meta_path.append(_Moved())
