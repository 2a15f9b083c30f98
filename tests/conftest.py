"""Shared fixtures. Float64 is switched on only inside the tests that ask for it, so that it
never leaks into the float32 learning and run-loop tests that follow them."""

import os

import jax
import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture
def x64():
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)
