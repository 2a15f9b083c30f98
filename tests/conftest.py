"""Shared fixtures. Float64 is switched on only inside the tests that ask for it, so that it
never leaks into the float32 learning and run-loop tests that follow them."""

import os
import tempfile
from pathlib import Path

# Every Ray the tests start (ray.init here, the launches' local Rays, `ray start` nodes) runs
# its workers at normal priority, as study.orchestration.local_ray does for a launch: at Ray's
# default niceness (15) the trials starve when the machine is busy with other work.
os.environ.setdefault("RAY_worker_niceness", "0")
# A developer's own MLflow server stays out of the tests: a launch honours the variable.
os.environ.pop("MLFLOW_TRACKING_URI", None)

# Before JAX starts (here and in the processes the tests start, which inherit it): one
# compilation cache for the whole run, so that a program compiled by one test or trial is
# not compiled again by another.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
_run = os.environ.get("PYTEST_XDIST_TESTRUNUID", str(os.getpid()))
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", str(Path(tempfile.gettempdir()) / f"ccn-test-jax-{_run}")
)

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def x64():
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the tests of this xdist worker that ask for it (group "ray")."""
    ray = pytest.importorskip("ray")
    from study.orchestration.local_ray import worker_env

    ray.init(
        address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
        object_store_memory=100_000_000,
        runtime_env={"env_vars": worker_env(Path(tempfile.gettempdir()))},
    )  # fmt: skip
    yield ray
    ray.shutdown()


def pytest_collection_finish(session):
    """Stop at once if xdist's groups are not in effect (as with pytest 9.2): the tests of a
    group share one Ray and one study, and must not run on two workers at once."""
    if not hasattr(session.config, "workerinput"):
        return
    if session.config.getoption("dist", "no") != "loadgroup":
        return
    for item in session.items:
        mark = item.get_closest_marker("xdist_group")
        if mark is not None:
            group = mark.args[0] if mark.args else mark.kwargs.get("name")
            if not item.nodeid.endswith(f"@{group}"):
                raise pytest.UsageError(
                    f"xdist group {group!r} is not in effect for {item.nodeid}: use a pytest "
                    f"that keeps --dist loadgroup working (pyproject pins it)"
                )
