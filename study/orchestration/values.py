"""The plain values of a plan checked alike from every entry point: the command line (whose
parser already refused most of them) and the Python API, each refusal one line naming the
argument as its caller spells it (``--steps`` on the command line, ``steps`` in Python)."""

from __future__ import annotations

import math
from typing import Any

from study.cli import shown

# name: (type, low, high, low open); None: unbounded
INTEGERS = {"trials": (1, None), "seeds": (1, 4096), "steps": (1, 10**12),
            "concurrency": (1, 4096), "sampler_seed": (0, 2**31 - 1)}  # fmt: skip
NUMBERS = {"cpus_per_trial": (0.0, 4096.0, True), "gpus_per_trial": (0.0, 64.0, False),
           "min_report_s": (0.0, 3600.0, False)}  # fmt: skip
FLAGS = ("smoke", "resume", "expose_ray", "reuse_actors")
TEXTS = ("space", "task", "scheduler", "study_name", "tracking_uri", "storage", "storage_path",
         "address", "data_dir", "command")  # fmt: skip


def spelled(name: str, cli: bool) -> str:
    """``steps`` as its caller spells it: ``--steps`` on the command line."""
    return "--" + name.replace("_", "-") if cli else name


def check_values(values: dict[str, Any], cli: bool = False) -> None:
    """Refuse, in one ValueError line, a value of the wrong type or out of its range; None
    passes (the default is chosen)."""
    for name, value in values.items():
        if value is None:
            continue
        where = (
            f"{spelled(name, cli)}={shown(value)}" if not cli else f"{spelled(name, cli)} {value}"
        )
        if name in INTEGERS:
            low, high = INTEGERS[name]
            allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
            if isinstance(value, bool) or not isinstance(value, int) or value < low or (
                    high is not None and value > high):  # fmt: skip
                raise ValueError(f"{where}: allowed: {allowed}")
        elif name in NUMBERS:
            low, high, open_low = NUMBERS[name]
            ok = (isinstance(value, int | float) and not isinstance(value, bool)
                  and math.isfinite(value) and (value > low if open_low else value >= low)
                  and value <= high)  # fmt: skip
            if not ok:
                left = "(" if open_low else "["
                raise ValueError(f"{where}: allowed: a finite number in {left}{low:g}, {high:g}]")
        elif name in FLAGS:
            if not isinstance(value, bool):
                raise ValueError(f"{where}: allowed: True or False")
        elif name in TEXTS and not isinstance(value, str):
            raise ValueError(f"{where}: allowed: a text")
