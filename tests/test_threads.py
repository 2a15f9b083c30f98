"""``study.engine.threads``: XLA's CPU pool gets the size asked for, the process keeps every core it
had, and a pool that has started is left alone. Each case runs in a fresh interpreter, since
the pool is made once per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import collections, json, os, sys
from study.engine.threads import limit_xla_threads, pool_size
before = sorted(os.sched_getaffinity(0))
if {early}:
    import jax; jax.devices()
got = limit_xla_threads({n})
import jax.numpy as jnp
(jnp.arange(4096.0) * 2).block_until_ready()
names = collections.Counter(
    open(f"/proc/self/task/{{t}}/comm").read().strip() for t in os.listdir("/proc/self/task")
)
print(json.dumps(dict(got=got, pool=pool_size(), before=before,
                      after=sorted(os.sched_getaffinity(0)), eigen=names["tf_XLAEigen"])))
"""

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
needs_affinity = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or not os.path.isdir("/proc/self/task"),
    reason="CPU affinity and /proc are Linux's",
)


def probe(n: int, early: bool = False) -> dict:
    code = PROBE.format(n=n, early=early)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True, cwd=os.path.dirname(os.path.dirname(__file__)))  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


@needs_affinity
def test_one_thread_pool_and_the_process_keeps_its_cores():
    r = probe(1)
    assert r["got"] == 1 and r["pool"] == 1
    assert r["eigen"] == 1  # XLA's CPU worker threads
    assert r["after"] == r["before"]


@needs_affinity
@pytest.mark.skipif(CORES < 2, reason="one core: every pool has one thread")
def test_zero_means_every_core():
    r = probe(0)
    assert r["got"] == CORES and r["eigen"] == CORES and r["after"] == r["before"]


@needs_affinity
@pytest.mark.skipif(CORES < 2, reason="one core: every pool has one thread")
def test_a_started_backend_keeps_its_pool():
    r = probe(1, early=True)
    assert r["got"] is None and r["eigen"] == CORES


def test_negative_threads_is_refused():
    from study.engine.threads import limit_xla_threads

    with pytest.raises(ValueError, match="threads=-1 must be >= 0"):
        limit_xla_threads(-1)
