"""Tasks by name: presets of the animal-learning testbed (prediction), the Atari prediction
benchmark (prediction from recorded games, ``study.tasks.atari``: ``atari_GAME`` for every
trace found) and sequential MNIST (classification, ``study.tasks.seq_mnist``).

A task is registered as a :class:`Task`: its name, description, kind (``prediction``,
``classification`` or ``atari``: ``study.engine.kinds.BY_NAME``), what runs its steps, and how
to make it. ``find_task(name)`` gives the record (every ``atari_GAME`` is made on demand) and
refuses an unknown name; ``make_task(name, **overrides)`` returns ``(env, params)``; ``TASKS``
maps every name to its description (``python -m study.run --list-tasks`` prints them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from study.tasks.animal import Animal, AnimalParams, isi_range
from study.tasks.atari import PREFIX as ATARI_PREFIX
from study.tasks.atari import is_atari
from study.tasks.atari_task import atari_env, make_atari, prepare_stream
from study.tasks.seq_mnist import TASKS as CLASSIFICATION_TASKS
from study.tasks.seq_mnist import is_classification, make_seq_mnist


@dataclass(frozen=True)
class Preset:
    description: str
    env: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)


_CONDITIONING_GAMMA = {10: 0.9, 20: 0.95, 30: 0.966, 40: 0.975, 80: 0.9875}

PRESETS: dict[str, Preset] = {
    "trace_patterning": Preset(
        "JMLR paper preset: 6 CS + US + 5 distractors, one-step 3-of-6 patterns (10 of 20 "
        "positive per seed), ISI 24..36, ITI 80..120, gamma 0.9",
        env=dict(n_cs=6, n_distractors=5, n_patterns=10, rule="half_patterns"),
        params=dict(isi=(24, 36), iti=(80, 120), cs_len=1, us_len=1, distractor_len=1, gamma=0.9),
    ),
    "trace_patterning_short": Preset(
        "as trace_patterning with the earlier paper version's ISI 14..26",
        env=dict(n_cs=6, n_distractors=5, n_patterns=10, rule="half_patterns"),
        params=dict(isi=(14, 26), iti=(80, 120), cs_len=1, us_len=1, distractor_len=1, gamma=0.9),
    ),
    "trace_patterning_testbed": Preset(
        "testbed trace patterning: 6 CS, 10 stored 3-of-6 patterns shown with the testbed's "
        "p, else random CS vectors; 10 per-trial distractors; ISI setting 10 (7..13)",
        env=dict(
            n_cs=6, n_distractors=10, n_patterns=10, rule="patterning", distractors="per_trial"
        ),
        params=dict(isi=isi_range(10), gamma=0.9),
    ),
    "noisy_patterning": Preset(
        "testbed noisy patterning: trace_patterning_testbed with ISI fixed to the CS length "
        "(4) and 10% of outcomes flipped",
        env=dict(
            n_cs=6, n_distractors=10, n_patterns=10, rule="patterning", distractors="per_trial"
        ),
        params=dict(isi=(4, 4), noise=0.1, gamma=0.9),
    ),
}
for _s, _g in _CONDITIONING_GAMMA.items():
    PRESETS[f"trace_conditioning_isi{_s}"] = Preset(
        f"testbed trace conditioning, ISI setting {_s} ({isi_range(_s)[0]}..{isi_range(_s)[1]}), "
        f"ITI 80..120, 10 per-step distractors, gamma {_g}",
        env=dict(n_cs=1, n_distractors=10, rule="conditioning"),
        params=dict(isi=isi_range(_s), gamma=_g),
    )
PRESETS["trace_conditioning"] = Preset(
    "alias of trace_conditioning_isi10",
    **{k: getattr(PRESETS["trace_conditioning_isi10"], k) for k in ("env", "params")},
)

ATARI_DESCRIPTION = (
    "Atari prediction benchmark: a recorded agent's game (atari_pong, atari_ms_pacman, ...: "
    "one per trace in --traces-dir or $CCN_ATARI_TRACES), 275 inputs, clipped rewards, gamma "
    "0.98 (needs the [atari] extra)"
)
DEFAULT_TASK = "trace_patterning"


@dataclass(frozen=True)
class Task:
    """A registered task: ``make(**overrides)`` gives ``(env, params)`` and ``env(data_dir)``
    the environment alone (its static shape, without JAX arrays); ``kind`` names its kind and
    ``runner`` what runs its steps (``testbed``, ``atari`` or ``classification``: the compiled
    loop runs the testbed only); ``prepare(data_dir)`` what a driver does once its checks
    have passed and before any trial starts (an Atari stream's replay)."""

    name: str
    description: str
    kind: str
    runner: str
    make: Callable[..., tuple[Any, Any]]
    env: Callable[[str | None], Any]
    # what a driver does once every check has passed, before the first trial (data_dir)
    prepare: Callable[[str | None], None] = lambda data_dir=None: None
    # steps in which the families' defaults are known to learn it (a shorter run that shows
    # no learning says it was too short); None: not stated
    learns_in: int | None = None


def _preset(name: str) -> Task:
    preset = PRESETS[name]

    def make(**overrides: Any) -> tuple[Any, Any]:
        overrides.pop("data_dir", None)
        env = Animal(**preset.env)
        kwargs = {**preset.params, **{k: v for k, v in overrides.items() if v is not None}}
        return env, env.make_params(**kwargs)

    # 2M: the README's table of each family's defaults (python -m study.defaults)
    return Task(name, preset.description, "prediction", "testbed", make,
                lambda data_dir=None: Animal(**preset.env), learns_in=2_000_000)  # fmt: skip


def _classification(name: str) -> Task:
    return Task(name, CLASSIFICATION_TASKS[name], "classification", "classification",
                lambda **o: make_seq_mnist(name, o.get("data_dir")),
                lambda data_dir=None: make_seq_mnist(name, data_dir)[0])  # fmt: skip


def _atari(name: str) -> Task:
    return Task(name, ATARI_DESCRIPTION, "atari", "atari",
                lambda **o: make_atari(name, o.get("data_dir"), o.get("gamma")),
                lambda data_dir=None: atari_env(name, data_dir),
                lambda data_dir=None: prepare_stream(name, data_dir))  # fmt: skip


REGISTRY: dict[str, Task] = {
    **{name: _preset(name) for name in sorted(PRESETS)},
    **{name: _classification(name) for name in CLASSIFICATION_TASKS},
}
# every task's one-line description (the Atari games as one entry)
TASKS: dict[str, str] = {
    **{name: t.description for name, t in REGISTRY.items() if t.kind == "prediction"},
    f"{ATARI_PREFIX}GAME": ATARI_DESCRIPTION,
    **{name: t.description for name, t in REGISTRY.items() if t.kind != "prediction"},
}


def find_task(name: str) -> Task:
    """The registered task ``name`` (an ``atari_GAME`` made on demand; whether its trace
    exists is checked when it is made); a one-line error naming ``--task`` otherwise."""
    if name in REGISTRY:
        return REGISTRY[name]
    if is_atari(name):
        return _atari(name)
    raise ValueError(f"--task: unknown task {name!r}; allowed: {', '.join(sorted(TASKS))}")


def make_task(name: str, **overrides: Any) -> tuple[Any, Any]:
    """The task ``name`` with parameter overrides (``isi=(lo, hi)``, ``gamma=...``, ...);
    for a classification task (``seq_mnist``, ``seq_mnist_carry``) the only override is
    ``data_dir``, the folder of MNIST files."""
    return find_task(name).make(**overrides)


def make_env(name: str, data_dir: str | None = None) -> Any:
    """The environment of task ``name`` alone (its static shape, e.g. ``obs_size``), without
    its parameters: a driver that only checks and sizes a study builds no JAX array, so it
    starts no JAX backend (whose threads would make every later ``fork`` unsafe), and does no
    long work (an Atari task's trace is read and checked, not replayed: ``Task.prepare``)."""
    return find_task(name).env(data_dir)


def task_family(name: str) -> str:
    """``testbed``, ``atari`` or ``classification``: what runs a task's steps."""
    return find_task(name).runner


__all__ = [
    "Animal",
    "AnimalParams",
    "DEFAULT_TASK",
    "REGISTRY",
    "TASKS",
    "Task",
    "find_task",
    "is_atari",
    "is_classification",
    "make_env",
    "make_task",
    "task_family",
]
