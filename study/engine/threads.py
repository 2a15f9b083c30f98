"""How many threads XLA's CPU runtime uses in this process.

JAX sizes the CPU client's thread pool from the CPU affinity of the process when its backends
start, and spreads a compiled step's kernels over that pool. A paper-sized learner's step is
a few dozen kernels of a few hundred numbers each, and handing them between threads costs
more than the work: on the 2-core benchmark machine one stream of columnar 7 takes 6.6 us a
step with the default pool of two threads and 3.0 us with one, and a trial of 5 seeds of
hybrid 20:4 14 us against 26 us. Large batches (hundreds of thousands of parameter-streams)
go the other way, 1.3-1.5x faster with two threads.

``limit_xla_threads(n)`` starts the backends while the process may run on only ``n`` cores,
so that the pool gets ``n`` threads, then gives the process back every core it had: the
scheduler still moves it to whichever core is free. It must run before anything in the
process touches JAX's backends (building a learner does); once they have started, the pool
keeps its size.
"""

from __future__ import annotations

import os

import jax

_pool = [None]  # the pool size this module set, once it has


def _backends_started() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # a JAX without the check: assume they have
        return True


def limit_xla_threads(n: int) -> int | None:
    """Start JAX's backends with a CPU thread pool of ``n`` threads (0: every core, JAX's
    default). Returns the pool size in effect when this module set it, or None where it
    could not: the backends had already started, or the platform has no CPU affinity."""
    if n < 0:
        raise ValueError(f"threads={n} must be >= 0 (0: every core)")
    if _backends_started():
        return _pool[0]
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = os.sched_getaffinity(0)
    size = len(allowed) if n == 0 else min(n, len(allowed))
    try:
        os.sched_setaffinity(0, set(sorted(allowed)[:size]))
        jax.devices()  # starts the backends, and the CPU client's pool, now
    finally:
        os.sched_setaffinity(0, allowed)
    _pool[0] = size
    return size


def pool_size() -> int:
    """The CPU pool's size: the one this module set, else JAX's default (the cores this
    process may run on)."""
    if _pool[0] is not None:
        return _pool[0]
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_label(n: int) -> str:
    """``"1 thread"``, ``"2 threads"``."""
    return f"{n} thread{'s' if n > 1 else ''}"


def describe() -> str:
    """JAX's default backend, with the CPU pool's size where this module set it."""
    backend = jax.default_backend()
    if _pool[0] is None:
        return backend
    return f"{backend} (XLA CPU pool of {threads_label(_pool[0])})"
