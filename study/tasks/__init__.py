"""Tasks by name: presets of the animal-learning testbed (prediction), the Atari prediction
benchmark (prediction from recorded games, ``study.tasks.atari``: ``atari_GAME`` for every
trace found) and sequential MNIST (classification, ``study.tasks.seq_mnist``).

``make_task(name, **overrides)`` returns ``(env, params)``; ``TASKS`` maps every preset name to
a one-line description (``python -m study.run --list-tasks`` prints them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from study.tasks.animal import Animal, AnimalParams, isi_range
from study.tasks.atari import PREFIX as ATARI_PREFIX
from study.tasks.atari import atari_env, is_atari, make_atari
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

TASKS: dict[str, str] = {
    **{name: p.description for name, p in sorted(PRESETS.items())},
    f"{ATARI_PREFIX}GAME": "Atari prediction benchmark: a recorded agent's game (atari_pong, "
    "atari_ms_pacman, ...: one per trace in --traces-dir or $CCN_ATARI_TRACES), 275 inputs, "
    "clipped rewards, gamma 0.98 (needs the [atari] extra)",
    **CLASSIFICATION_TASKS,
}
DEFAULT_TASK = "trace_patterning"


def make_task(name: str, **overrides: Any) -> tuple[Any, Any]:
    """The preset ``name`` with parameter overrides (``isi=(lo, hi)``, ``gamma=...``, ...);
    for a classification task (``seq_mnist``, ``seq_mnist_carry``) the only override is
    ``data_dir``, the folder of MNIST files."""
    if name in CLASSIFICATION_TASKS:
        return make_seq_mnist(name, overrides.get("data_dir"))
    if is_atari(name):
        return make_atari(name, overrides.get("data_dir"), overrides.get("gamma"))
    if name not in PRESETS:
        raise ValueError(f"--task: unknown task {name!r}; allowed: {', '.join(sorted(TASKS))}")
    overrides.pop("data_dir", None)
    preset = PRESETS[name]
    env = Animal(**preset.env)
    kwargs = {**preset.params, **{k: v for k, v in overrides.items() if v is not None}}
    return env, env.make_params(**kwargs)


def make_env(name: str, data_dir: str | None = None) -> Any:
    """The environment of task ``name`` alone (its static shape, e.g. ``obs_size``), without
    its parameters: a driver that only checks and sizes a study builds no JAX array, so it
    starts no JAX backend (whose threads would make every later ``fork`` unsafe). An Atari
    task's stream is replayed and cached here, once, before any trial needs it."""
    if name in CLASSIFICATION_TASKS:
        return make_seq_mnist(name, data_dir)[0]
    if is_atari(name):
        return atari_env(name, data_dir)
    if name not in PRESETS:
        raise ValueError(f"--task: unknown task {name!r}; allowed: {', '.join(sorted(TASKS))}")
    return Animal(**PRESETS[name].env)


def task_family(name: str) -> str:
    """``testbed``, ``atari`` or ``classification``: what runs a task's steps."""
    if is_classification(name):
        return "classification"
    return "atari" if is_atari(name) else "testbed"


__all__ = [
    "Animal",
    "AnimalParams",
    "DEFAULT_TASK",
    "TASKS",
    "is_atari",
    "is_classification",
    "make_env",
    "make_task",
    "task_family",
]
