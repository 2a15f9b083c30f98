"""The memory check's arithmetic and its two sources: an accelerator's free memory (checked
here with a stand-in device, since CI has no accelerator) and the host's available memory."""

from __future__ import annotations

import types

import jax
import psutil
import pytest

from study.engine import memory


def _device(platform: str, stats: dict[str, int] | None):
    return types.SimpleNamespace(platform=platform, memory_stats=lambda: stats)


def test_an_accelerator_counts_its_free_memory_not_the_hosts(monkeypatch):
    gpu = _device("gpu", {"bytes_limit": 16_000_000_000, "bytes_in_use": 4_000_000_000})
    monkeypatch.setattr(jax, "devices", lambda *a: [gpu])
    assert memory.available() == (12_000_000_000, "gpu memory")
    # 3 x 2 GB x 2 streams = 12 GB: over 80% of the 12 GB free on the device, refused
    with pytest.raises(ValueError) as refused:
        memory.check("rtrl", {"n_features": 900}, 2_000_000_000, 10**9, 2, "2 seeds")
    text = str(refused.value)
    assert "n_features=900 on 2 seeds" in text and "12.0 GB (1,000,000,000 parameters" in text
    assert text.endswith("more than the 12.0 GB of gpu memory; allowed: a smaller network or "
                         "fewer streams")  # fmt: skip
    # 3 x 1.5 GB x 2 = 9 GB fits in 80% of 12 GB (9.6 GB)
    memory.check("rtrl", {"n_features": 800}, 1_500_000_000, 10**9, 2, "2 seeds")


def test_the_host_is_counted_on_a_cpu_or_when_asked_or_when_a_device_tells_nothing(monkeypatch):
    host = psutil.virtual_memory().available
    for device, kwargs in ((_device("cpu", None), {}),
                           (_device("gpu", {"bytes_limit": 1}), {"host": True}),
                           (_device("gpu", None), {})):  # fmt: skip
        monkeypatch.setattr(jax, "devices", lambda *a, d=device: [d])
        have, where = memory.available(**kwargs)
        assert where == "memory available" and abs(have - host) < 0.25 * host


def test_needed_is_the_state_three_times_per_stream():
    assert memory.needed(1_000, 7) == 21_000
