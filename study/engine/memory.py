"""What a trial's state needs against what the machine has, checked before anything is built.

The ledger (``learners.ledger``) knows the bytes of a learner's state per stream; a trial runs
``streams`` of them (seeds x configurations of a pack) and its compiled step holds the state
about three times over (the carry, the updated carry, the step's temporaries). A trial that
would not fit is refused in one line with the estimate, instead of a stall or an out-of-memory
kill minutes later.
"""

from __future__ import annotations

from typing import Any

HEADROOM = 3  # the carry, the next carry and the step's temporaries
SPARE = 0.8  # of the memory available now, what a trial may count on


def available(host: bool = False) -> tuple[int, str]:
    """Bytes a trial may use now, and where: the default JAX device's free memory on an
    accelerator, else (or with ``host``: a driver that must not start JAX) the host's
    available memory."""
    import jax

    device = None if host else jax.devices()[0]
    if device is not None and device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return stats["bytes_limit"] - stats.get("bytes_in_use", 0), f"{device.platform} memory"
    import psutil

    return psutil.virtual_memory().available, "memory available"


def needed(state_bytes: int, streams: int) -> int:
    """Bytes a trial of ``streams`` streams of a learner of ``state_bytes`` per stream needs."""
    return HEADROOM * state_bytes * streams


def check(name: str, settings: dict[str, Any], state_bytes: int, params: int, streams: int,
          what: str, host: bool = False) -> None:  # fmt: skip
    """Refuse (a one-line ValueError) a trial of learner ``name`` with ``settings`` whose
    ``streams`` streams would not fit; ``what`` says what the streams are (``2 seeds x 3
    configurations``). The sizes are named as ``key=value`` (``n_features=2000``)."""
    need = needed(state_bytes, streams)
    have, where = available(host)
    if need <= SPARE * have:
        return
    sizes = " ".join(f"{k}={v}" for k, v in settings.items()
                     if k in ("n_features", "per_stage", "truncation", "layers"))  # fmt: skip
    raise ValueError(
        f"{name} {sizes} on {what}: its state needs {_gb(need)} ({params:,} parameters, "
        f"{_gb(state_bytes)} per stream, x{HEADROOM} for the step's buffers), more than the "
        f"{_gb(have)} of {where}; allowed: a smaller network or fewer streams"
    )


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.1f} MB"
