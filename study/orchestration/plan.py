"""A study's plan: every input of a launch, checked before anything starts, as one typed
value that nothing changes afterwards.

:func:`make_plan` takes what ``python -m study.launch`` takes (as keyword arguments named
after its options) and returns a :class:`Plan`, or raises a one-line ValueError naming the
option as typed. ``study.launch`` builds one from its command line, ``study.compare`` one per
stage, and ``study.api`` offers it to Python. A plan's evaluation fields (``configs``,
``seed_list``, ``role``) turn a search into an evaluation of given configurations; a
variant of a plan is a new plan (``dataclasses.replace``), never an edit of one.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from search_spaces import Space, make_space
from study.cli import probe, redact, writable_folder
from study.engine.kinds import TaskKind, kind_of
from study.engine.trial import REPORT_MIN_S
from study.orchestration import stores
from study.orchestration.local_ray import foreign
from study.orchestration.values import FLAGS, INTEGERS, NUMBERS, TEXTS, check_values, shown, spelled
from study.tasks import DEFAULT_TASK, make_env, task_family

_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
SMOKE = dict(trials=2, seeds=2, steps=20_000, chunk=10_000, block=1_000, window=10_000)
# The main job: 6 trials x 5 seeds x 2M steps, under two minutes on 2 cores (README, "What the
# main job shows"); its first trial is the family's defaults.
DEFAULT = dict(trials=6, seeds=5, steps=2_000_000, chunk=100_000, block=10_000, window=100_000)


@dataclass(frozen=True)
class Plan:
    """Everything a launch runs, checked (:func:`make_plan`)."""

    name: str  # the study: MLflow experiment, Optuna study and Ray Tune experiment
    space_name: str  # the search space (learner family)
    space: Space  # the space, sized to the budget
    task: str
    trials: int  # configurations (of a search, or given: len(configs))
    seeds: int  # seeds per configuration
    steps: int  # steps per seed
    chunk: int  # steps between two reports of a trial
    block: int  # steps per point of the learning curve
    window: int  # steps of the windowed measure
    pack: int  # configurations per trial
    runs: Path  # the folder of the embedded stores
    tracking_uri: str
    storage: str  # Optuna's
    storage_path: str  # Ray Tune's results and checkpoints (a folder or a bucket URI)
    data_dir: str | None = None
    address: str | None = None  # an existing Ray cluster, or None: a local Ray
    expose_ray: bool = False
    concurrency: int = 2
    scheduler: str = "fifo"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    min_report_s: float = REPORT_MIN_S
    reuse_actors: bool = False
    sampler_seed: int = 0
    resume: bool = False
    pack_text: str = "auto"  # --pack as typed, for the console
    budget_text: str = "auto"  # --budget-flops as typed, for the console
    command: str = ""  # the command line that made the plan, for the record
    # An evaluation (study.compare): these configurations on these seeds, no search.
    configs: tuple[dict[str, Any], ...] | None = None
    seed_list: tuple[int, ...] | None = None
    role: str = "eval"  # ccn.role of an evaluation's runs ("tuning" for a preset's grid)
    stage: str = ""  # a comparison's stage: the options that define it, as JSON (its launch's tag)

    @property
    def kind(self) -> TaskKind:
        return kind_of(self.task)

    @property
    def tune_path(self) -> str:
        """Ray Tune's experiment folder (or URI) of this study."""
        return f"{self.storage_path.rstrip('/')}/{self.name}"

    @property
    def trial_seeds(self) -> list[int]:
        """The seeds every trial runs: the evaluation's, else ``0..seeds-1``."""
        return list(self.seed_list) if self.seed_list else list(range(self.seeds))

    @property
    def n_configurations(self) -> int:
        return len(self.configs) if self.configs else self.trials


def check_environment(family: str, task: str) -> None:
    """The ``CCN_*`` variables a study's trials read, checked in the driver before anything
    starts (a trial would fail on them, once per trial and retry): ``CCN_ENGINE`` (and that
    the compiled loop can run ``family`` when it is ``native``) and ``CCN_SCAN_UNROLL``.
    Raises a one-line ValueError naming the variable."""
    from study import native
    from study.engine.loop import check_environment as check

    check()
    if native.engine_setting() == "native":
        why = native.family_refusal(family, task_family(task))
        if why is not None:
            raise ValueError(native.native_refusal(why))


def make_plan(
    space: str = "hybrid",
    task: str = DEFAULT_TASK,
    *,
    trials: int | None = None,
    seeds: int | None = None,
    steps: int | None = None,
    smoke: bool = False,
    study_name: str | None = None,
    runs_dir: str | Path = "runs",
    tracking_uri: str | None = None,
    storage: str | None = None,
    storage_path: str | None = None,
    address: str | None = None,
    expose_ray: bool = False,
    concurrency: int = 2,
    scheduler: str = "fifo",
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    min_report_s: float = REPORT_MIN_S,
    reuse_actors: bool = False,
    budget_flops: Any = "auto",
    fixed: Mapping[str, Any] | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    pack: int | None = None,
    sampler_seed: int = 0,
    data_dir: str | None = None,
    resume: bool = False,
    command: str = "",
    cli: bool = False,
) -> Plan:
    """Check every input before anything starts and return the plan; a one-line ValueError
    names the option as typed (``--steps``, ``--set``, ...) and what is allowed. Every value
    is a plain one: ``fixed`` the parameters set (``{"n_features": 3}``: ``--set``),
    ``ranges`` those searched within bounds (``{"alpha": (1e-4, 1e-2)}``: ``--range``),
    ``pack`` the configurations per trial (None: chosen, ``--pack auto``), ``budget_flops`` a
    number, None (no budget) or ``"auto"`` (the family's default network's). The command
    line's texts are parsed by ``study.cli`` before they get here. A refusal names the
    argument as the caller spells it: ``steps`` from Python, ``--steps`` with ``cli``
    (``study.orchestration.values``)."""
    given = dict(locals())
    check_values({k: given[k] for k in (*INTEGERS, *NUMBERS, *FLAGS, *TEXTS)}, cli)
    space = space_name(space, cli)
    if not isinstance(runs_dir, str | Path):
        raise ValueError(f"{spelled('runs_dir', cli)}={runs_dir!r}: allowed: a folder's path")
    base = dict(SMOKE if smoke else DEFAULT)
    for key, value in (("trials", trials), ("seeds", seeds), ("steps", steps)):
        if value is not None:
            base[key] = int(value)
    if base["steps"] % base["block"]:
        raise ValueError(f"{spelled('steps', cli)} {base['steps']}: allowed: a multiple of "
                         f"{base['block']}")  # fmt: skip
    base["chunk"] = min(base["chunk"], base["steps"])
    base["window"] = min(base["window"], base["steps"])
    if scheduler not in ("fifo", "asha"):
        raise ValueError(f"{spelled('scheduler', cli)} {scheduler!r}: allowed: fifo, asha")
    runs = writable_folder(runs_dir, spelled("runs_dir", cli))
    if study_name is not None and not _NAME.fullmatch(study_name):
        raise ValueError(f"{spelled('study_name', cli)} {shown(study_name)}: allowed: letters, "
                         f"digits and ._- (at most 100, not starting with a dot)")  # fmt: skip
    if data_dir and not kind_of(task).takes_data_dir:
        raise ValueError(
            f"--data-dir/--traces-dir applies to seq_mnist and atari_GAME tasks only, not {task}"
        )
    if data_dir:
        data_dir = str(Path(data_dir).expanduser().resolve())
    env = make_env(task, data_dir=data_dir)
    length = getattr(env, "length", None)  # a recorded stream's (Atari's) frames
    if length is not None:
        if steps is None and not smoke:
            base["steps"] = length // base["block"] * base["block"]
        if not smoke:  # the kind's window and chunk: a recorded stream is short
            base["window"] = min(kind_of(task).window, base["steps"])
            base["chunk"] = min(kind_of(task).chunk, base["steps"])
        if base["steps"] > length:
            raise ValueError(f"{spelled('steps', cli)} {base['steps']}: the {task} stream has "
                             f"{length:,} frames; allowed: at most that")  # fmt: skip
    fixed, ranges = plain_space(fixed, ranges, cli)
    budget = budget_for(budget_flops, space, env.obs_size, {**fixed, **ranges}, cli)
    sampled = make_space(space, budget, env.obs_size, fixed, ranges, steps=base["steps"], cli=cli)
    check_environment(space, task)
    flag = "--address" if address else "RAY_ADDRESS (environment)"
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address == "auto":  # the cluster `ray start` left on this machine, if any
        try:
            from ray._private.services import canonicalize_bootstrap_address_or_die as find

            found = find("auto")
        except ConnectionError:
            raise ValueError(
                f"{flag} auto: no Ray cluster runs on this machine; allowed: "
                "HOST:PORT of one, or no --address (a local Ray)"
            ) from None
        except ImportError:  # Ray moved it: the launch says so when it connects
            found = None
        if found and (why := foreign(found, f"{flag} auto ->")):
            raise ValueError(why)
    elif address:
        probe(address, flag, "a Ray cluster", 6379)
        if why := foreign(address.removeprefix("ray://").split("/")[0], flag):
            raise ValueError(why)
    if expose_ray and address:
        raise ValueError("--expose-ray applies to the local Ray a launch starts, not to "
                         "--address")  # fmt: skip
    name = study_name or f"{space}-{task}"
    storage_path = storage_path or str(runs / "ray")
    storage_path = storage_folder(storage_path)
    # --tracking-uri, else MLflow's own variable (as MLflow users expect), else the runs folder
    from_env = not tracking_uri and bool(os.environ.get("MLFLOW_TRACKING_URI"))
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None
    uri = tracking_uri or f"sqlite:///{runs / 'mlflow.db'}"
    optuna_url = storage or f"sqlite:///{runs / 'optuna.db'}"
    flag = ("MLFLOW_TRACKING_URI (environment)" if from_env
            else "--tracking-uri" if tracking_uri else "--runs-dir")  # fmt: skip
    stores.check(uri, flag, "mlflow")
    stores.check(optuna_url, "--storage" if storage else "--runs-dir", "optuna")
    size = pack_size(pack, base["trials"], base["seeds"], concurrency, cpus_per_trial,
                     gpus_per_trial, cli)  # fmt: skip
    fits(sampled, env.obs_size, base["seeds"], size, concurrency)
    return Plan(
        name=name, space_name=space, space=sampled, task=task, trials=base["trials"],
        seeds=base["seeds"], steps=base["steps"], chunk=base["chunk"], block=base["block"],
        window=base["window"], pack=size, runs=runs, tracking_uri=uri, storage=optuna_url,
        storage_path=storage_path, data_dir=data_dir, address=address, expose_ray=expose_ray,
        concurrency=concurrency, scheduler=scheduler, cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial, min_report_s=min_report_s, reuse_actors=reuse_actors,
        sampler_seed=sampler_seed, resume=resume, pack_text="auto" if pack is None else str(pack),
        budget_text=str(budget_flops), command=command,
    )  # fmt: skip


REMOTE = ("s3", "gs", "gcs", "hdfs", "abfs", "abfss")  # what Ray Tune's storage reaches


def storage_folder(text: str) -> str:
    """``--storage-path``: a folder (or ``file://`` URI) this process may write, or a cloud
    URI of a scheme Ray Tune's storage (pyarrow) reaches. Raises a one-line ValueError."""
    if "://" not in text:
        return str(writable_folder(text, "--storage-path"))
    scheme, _, rest = text.partition("://")
    if scheme == "file":
        writable_folder(rest or "/", "--storage-path")
        return text
    if scheme not in REMOTE:
        remote = ", ".join(f"{r}://" for r in REMOTE)
        raise ValueError(f"--storage-path {redact(text)}: scheme {scheme!r} is not allowed; "
                         f"allowed: a folder, file://, {remote}")  # fmt: skip
    return text


def fits(space: Any, n_inputs: int, seeds: int, pack: int, concurrency: int) -> None:
    """Refuse a study whose trials would not fit in this machine's memory, judged on the
    space's first configuration (the family's defaults, sized to the budget) on every stream
    of the trials that run at once; without one (ranges that leave the defaults out) the
    trials check themselves (``study.engine.memory``)."""
    import optuna

    from learners import make_learner
    from learners.registry import config_to_args, cost
    from study.engine.memory import check

    point = space.first_point()
    if point is None:
        return
    name, static, _ = config_to_args(space(optuna.trial.FixedTrial(point)))
    settings = make_learner(name, n_inputs, **static).settings  # (builds no JAX array)
    entry = cost(name, n_inputs, settings)
    check(name, settings, entry.state_bytes, entry.params, seeds * pack * concurrency,
          f"{seeds} seeds x {pack} configurations per trial x {concurrency} trials at once "
          f"(--seeds, --pack, --concurrency)", host=True)  # fmt: skip


def pack_size(text: Any, trials: int, seeds: int, concurrency: int, cpus: float,
              gpus: float, cli: bool = False) -> int:  # fmt: skip
    """Configurations per trial (``--pack``): as given, at most the study's trials, or
    ``study.engine.pack.auto_size``'s choice."""
    from study.engine.pack import auto_size

    given = check_pack(text, cli)
    if given is None:
        return auto_size(trials, seeds, concurrency, cpus, gpus)
    if given > trials:
        raise ValueError(f"{spelled('pack', cli)} {text}: larger than the study's {trials} trials; "
                         f"allowed: 1 to {trials}, or auto")  # fmt: skip
    return given


def space_name(space: str, cli: bool = False, option: str = "space") -> str:
    """A family's own name, ``module:FAMILY`` (a family of the user's own) loaded; a one-line
    ValueError names the option."""
    from learners.registry import resolve
    from search_spaces import SPACES

    try:
        return resolve(space)
    except ValueError as e:
        why = str(e)
    if ":" not in space:  # a name, neither built in nor declared by an entry point
        why = f"unknown space {space!r}; allowed: {', '.join(SPACES)}, or module:FAMILY"
    raise ValueError(f"{spelled(option, cli)} {space}: {why}")


def check_pack(value: Any, cli: bool = False) -> int | None:
    """``pack`` as a plain value: None (chosen) or a whole number >= 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{spelled('pack', cli)}={shown(value)}: allowed: a whole number of "
                         f"configurations per trial >= 1, or auto (None)")  # fmt: skip
    return value


def plain_space(fixed: Mapping[str, Any] | None, ranges: Mapping[str, Any] | None,
                cli: bool = False) -> tuple[dict[str, Any], dict]:  # fmt: skip
    """``fixed`` and ``ranges`` checked as plain values: names to values, and names to
    ``(low, high)`` numbers."""
    set_, range_ = ("--set ", "--range ") if cli else ("fixed ", "ranges ")
    for name, value in (("fixed", fixed), ("ranges", ranges)):
        if value is not None and not isinstance(value, Mapping):
            raise ValueError(f"{name}={shown(value)}: allowed: a dict of parameters")
    fixed, ranges = dict(fixed or {}), dict(ranges or {})
    for key, value in fixed.items():
        if not isinstance(key, str) or not isinstance(value, bool | int | float | str):
            raise ValueError(f"{set_}{key}={shown(value)}: allowed: a name and a number, a flag "
                             f"or a word")  # fmt: skip
    for key, bounds in ranges.items():
        try:
            low, high = (float(v) for v in bounds)
        except (TypeError, ValueError):
            raise ValueError(f"{range_}{key}={shown(bounds)}: allowed: (LOW, HIGH) "
                             f"numbers") from None  # fmt: skip
        ranges[key] = (low, high)
    return fixed, ranges


def budget_for(text: Any, space: str, n_inputs: int, given: dict[str, Any],
               cli: bool = False) -> float | None:  # fmt: skip
    """``--budget-flops`` as typed: a number, ``none``, or ``auto`` (the ledger flops of the
    family's default network, ``learners.DEFAULT_SIZES``; none for a space without a size or
    when a size parameter is set or ranged)."""
    from learners import make_learner
    from learners.registry import cost
    from search_spaces import params_of

    word = str(text).strip().lower()
    if word == "none":
        return None
    try:
        sizes = [p.name for p in params_of(space) if p.size]
    except ValueError:
        return None  # make_space names the spaces allowed
    if word == "auto":
        if not sizes or any(k in given for k in sizes):
            return None
        learner = make_learner(space, n_inputs)
        return float(cost(space, n_inputs, learner.settings).flops)
    try:
        value = float(word)
    except ValueError:
        value = math.nan
    if not 0 < value < 1e12:  # NaN fails too
        raise ValueError(f"{spelled('budget_flops', cli)} {text}: allowed: a number of flops "
                         f"per step in (0, 1e12), auto or none")  # fmt: skip
    return value


def evaluation_plan(plan: Plan, configs: list[dict[str, Any]], seeds: list[int],
                    role: str = "eval", name: str | None = None) -> Plan:  # fmt: skip
    """The one way from a plan to an evaluation (``study.api.evaluation``, every stage of a
    comparison): ``plan`` made to run ``configs`` on ``seeds`` with no search, as study
    ``name`` (default ``NAME-eval``), its runs tagged ``ccn.role`` ``role``."""
    if not configs:
        raise ValueError("configs: allowed: one or more configurations")
    if name is not None and not _NAME.fullmatch(name):
        raise ValueError(f"name {name!r}: allowed: letters, digits and ._- (at most 100, not "
                         f"starting with a dot)")  # fmt: skip
    if (not isinstance(seeds, list | tuple) or not seeds
            or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds)
            or len(set(seeds)) < len(seeds) or min(seeds) < 0):  # fmt: skip
        raise ValueError(f"seeds {seeds}: allowed: distinct seeds from 0 on, at least one")
    return replace(plan, name=name or f"{plan.name}-eval", configs=tuple(dict(c) for c in configs),
                   seed_list=tuple(int(s) for s in seeds), role=role, seeds=len(seeds),
                   trials=len(configs))  # fmt: skip
