"""What a report reads: the trials of one or more studies from MLflow, each family's best
trial, the summary rows and the learning-curve bands over seeds."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from learners.families import ORDER
from learners.registry import known
from study.cli import sqlite_file
from study.engine.kinds import PREDICTION, TaskKind, kind_of
from study.records.tags import CONFIG_TAG, PARENT_TAG, ROLE_TAG, STATUS_TAG
from study.report.claims import family_summary
from study.stats import N_RESAMPLES, mean_ci


def measure_for(trials: list[Trial]) -> TaskKind:
    """The task kind of the trials' studies (its final value and curve are what the report
    compares): one kind per report."""
    kinds = {kind_of(t.task) for t in trials if t.task}
    if len(kinds) > 1:
        tasks = sorted({t.task for t in trials})
        raise ValueError(f"cannot compare classification and prediction studies in one report "
                         f"(tasks: {', '.join(tasks)})")  # fmt: skip
    return kinds.pop() if kinds else PREDICTION


@dataclass
class Trial:
    """One child run: a trial of a study."""

    run_id: str
    experiment: str
    learner: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    seeds: list[int]
    role: str = "tuning"
    seed_finals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    task: str = ""
    measure: TaskKind = PREDICTION
    config: dict[str, Any] = field(default_factory=dict)  # as run (ccn.config), per-study keys out

    @property
    def final(self) -> float:
        value = self.metrics.get(self.measure.final, self.measure.worst)
        if abs(value) >= sys.float_info.max:  # MLflow's SQL store keeps infinities so
            return math.copysign(math.inf, value)
        return value

    @property
    def alpha(self) -> float:
        return float(self.params.get("alpha", "nan"))

    @property
    def flops(self) -> float:
        return float(self.params.get("ledger_flops_per_step", "nan"))

    @property
    def n_params(self) -> float:
        return float(self.params.get("ledger_params", "nan"))

    def ci(self) -> tuple[float, float]:
        """Mean and 95% t half-width of the final value over the trial's finite seeds (a
        diverged seed is counted apart: ``summary_rows``' ``diverged_*``)."""
        finite = self.seed_finals[np.isfinite(self.seed_finals)]
        if self.seed_finals.size and not self.measure.higher_better:
            return mean_ci(finite) if finite.size else (math.nan, math.nan)
        return mean_ci(self.seed_finals) if self.seed_finals.size else (self.final, math.nan)

    def normalised_values(self) -> np.ndarray:
        """The final normalised MSRE (ours over the best constant predictor's on the same
        window) of each seed; empty for classification or runs that predate it."""
        keys = [f"final_nmsre_windowed_seed{s}" for s in self.seeds]
        if self.measure.higher_better or not keys or any(k not in self.metrics for k in keys):
            return np.zeros(0)
        # a seed that diverged (its value NaN, or infinite) has the worst error: infinite
        values = [self.metrics[k] for k in keys]
        return np.asarray([math.inf if math.isnan(v) or abs(v) >= sys.float_info.max else v
                           for v in values], np.float64)  # fmt: skip

    def seed_values(self) -> np.ndarray:
        """What comparisons use, one value per seed: the normalised MSRE of a prediction
        trial, the final value of the task's measure otherwise (or when it is missing)."""
        values = self.normalised_values()
        return values if values.size else self.seed_finals

    def normalised_ci(self) -> tuple[float, float]:
        """Mean and 95% t half-width over the seeds of the final normalised MSRE; NaN for
        classification or runs that predate it."""
        values = self.normalised_values()
        return mean_ci(values) if values.size else (math.nan, math.nan)

    def stage_starts(self, steps: float) -> list[int]:
        """The steps where a new stage starts (every ``steps_per_stage`` steps until the last
        of ``n_features / per_stage`` stages, which never ends), up to ``steps``."""
        from learners.registry import known

        fam = known(self.learner)
        if fam is None:
            return []
        try:
            sps = int(float(self.params.get("steps_per_stage", "")))
            size = {k: int(float(self.params[k])) for k in ("n_features", "per_stage")
                    if self.params.get(k) not in (None, "", "None")}  # fmt: skip
            n_stages = fam.stages(size)
        except (KeyError, ValueError, ZeroDivisionError):
            return []
        return [k * sps for k in range(1, n_stages) if k * sps <= steps]

    @property
    def normalisation(self) -> bool:
        """Whether the running normalisation of inputs and features was on."""
        return float(self.params.get("norm_rate", "0") or 0) > 0

    def setting(self) -> tuple[tuple[str, str], ...]:
        """Everything that sets the trial apart except its step size: trials of one setting
        differ only in alpha (a line of the sensitivity figure)."""
        skip = {"alpha", "budget_flops"}
        return tuple(sorted((k, v) for k, v in self.params.items()
                            if k not in skip and not k.startswith(("ledger_", "xla")))
                     )  # fmt: skip

    def learned(self) -> str:
        """``yes`` when the normalised MSRE of the finite seeds is below 1 with 95% confidence
        (diverged seeds are counted apart), ``NO`` when it is not (a constant predicts as
        well, or fewer than two seeds stayed finite), ``""`` when unknown (classification)."""
        from study.engine.kinds import PREDICTION

        values = self.normalised_values()
        values = values[np.isfinite(values)] if values.size else values
        if self.normalised_values().size and not values.size:
            return "NO"
        if not values.size:
            return ""
        return "yes" if PREDICTION.learned(values)[2] else "NO"

    def label(self) -> str:
        keys = (
            "alpha",
            "lambda_",
            "norm_rate",
            "n_features",
            "per_stage",
            "truncation",
            "layers",
            "steps_per_stage",
            "update_rule",
        )
        if self.measure.higher_better:  # a classifier keeps no eligibility: lambda is unused
            keys = tuple(k for k in keys if k != "lambda_")
        shown = []
        for k in keys:
            if k in self.params and self.params[k] not in ("None", ""):
                v = self.params[k]
                try:
                    v = f"{float(v):.3g}"
                except ValueError:
                    pass
                shown.append(f"{k}={v}")
        return ", ".join(shown)


def load_trials(tracking_uri: str, experiments: list[str]) -> tuple[list[Trial], dict[str, str]]:
    """Every child run of the named experiments, and each experiment's latest parent run id.

    Raises a one-line ValueError naming an unknown experiment and listing those that exist.
    """
    from study.records.store import Store

    records = Store(tracking_uri)
    store = sqlite_file(tracking_uri)
    folder = store.parent if store is not None else None  # an embedded store's runs folder
    trials: list[Trial] = []
    parents: dict[str, str] = {}
    for name in experiments:
        exp = records.experiment(name)
        if exp is None:
            known = records.experiment_names()
            raise ValueError(
                f"unknown experiment {name!r} in {tracking_uri}; experiments: "
                f"{', '.join(known) or '(none)'}"
            )
        runs = records.runs(exp.experiment_id)
        if not any(PARENT_TAG in r.data.tags for r in runs):
            raise ValueError(f"experiment {name!r} has no trial recorded yet: nothing to report")
        launches = [r for r in runs if PARENT_TAG not in r.data.tags]
        if launches:
            parents[name] = max(launches, key=lambda r: r.info.start_time).info.run_id
        for r in runs:
            tags = r.data.tags
            if PARENT_TAG not in tags:
                continue
            seeds = [int(s) for s in tags.get("seeds", "").split(",") if s]
            trials.append(
                Trial(
                    run_id=r.info.run_id,
                    experiment=name,
                    learner=tags.get("learner", "?"),
                    status=tags.get(STATUS_TAG, "unknown"),
                    params=dict(r.data.params),
                    # finals.json has every digit; a run's metrics are the few worth a
                    # chart, rounded (and all a run recorded before there was one)
                    metrics={**r.data.metrics, **records.finals(r.info.run_id, tags, folder)},
                    seeds=seeds,
                    role=tags.get(ROLE_TAG, "tuning"),
                    task=tags.get("task", ""),
                    config=_config(tags),
                )
            )
    measure = measure_for(trials)
    for t in trials:
        finals = np.array(
            [t.metrics.get(f"{measure.final}_seed{s}", np.nan) for s in t.seeds], np.float64
        )
        finals[np.abs(finals) >= sys.float_info.max] *= np.inf
        if t.status == "diverged":  # its diverged seeds' values: the worst there is
            finals[np.isnan(finals)] = measure.worst
        t.measure, t.seed_finals = measure, finals
    return trials, parents


# Set by a stage, not by the configuration (study.compare.stages.PER_STUDY and the run's own).
# What a run of a configuration records beside it that is not the configuration: how and where
# it ran, and which study's space launched it (an evaluation's launch names its first family's).
_PER_RUN = ("task", "seeds", "steps", "chunk_steps", "block", "window", "role", "report_min_s",
            "space")  # fmt: skip


def _config(tags: dict[str, str]) -> dict[str, Any]:
    import json

    if CONFIG_TAG not in tags:
        return {}
    return {k: v for k, v in json.loads(tags[CONFIG_TAG]).items() if k not in _PER_RUN}


def config_key(t: Trial) -> str:
    """What identifies a configuration across stages: its recorded configuration, or (for
    runs recorded without one) its parameters."""
    import json

    return json.dumps([t.learner, t.config or dict(t.setting()), t.params.get("alpha")],
                      sort_keys=True, default=str)  # fmt: skip


def merge_rounds(trials: list[Trial]) -> list[Trial]:
    """Trials of one configuration and role run in several stages on other seeds (racing
    rounds on more tuning seeds, fresh seeds added in rounds) as one trial over all their
    seeds: seeds and per-seed values joined, the final value the mean over them, diverged
    when any part diverged, failed or unfinished when any part is."""
    groups: dict[tuple[str, str], list[Trial]] = {}
    for t in trials:
        groups.setdefault((t.role, config_key(t)), []).append(t)
    out = []
    for group in groups.values():
        seeds = [s for t in group for s in t.seeds]
        if len(group) == 1 or len(set(seeds)) < len(seeds):  # the same seeds twice: apart
            out.extend(group)
            continue
        group = sorted(group, key=lambda t: min(t.seeds, default=0))
        first = group[0]
        statuses = {t.status for t in group}
        status = next((s for s in ("failed", "interrupted", "running", "unknown", "diverged")
                       if s in statuses), first.status)  # fmt: skip
        metrics: dict[str, float] = {}
        for t in group:
            metrics.update(t.metrics)
        finals = np.concatenate([t.seed_finals for t in group])
        finite = finals[np.isfinite(finals)]
        metrics[first.measure.final] = float(finals.mean()) if finals.size else math.nan
        if finite.size < finals.size:
            metrics[first.measure.final] = first.measure.worst
        out.append(Trial(run_id=first.run_id, experiment="+".join(dict.fromkeys(
            t.experiment for t in group)), learner=first.learner, status=status,
            params=first.params, metrics=metrics, seeds=[s for t in group for s in t.seeds],
            role=first.role, seed_finals=finals, task=first.task, measure=first.measure,
            config=first.config))  # fmt: skip
    return out


def best_per_learner(trials: list[Trial], role: str | None = None) -> dict[str, Trial]:
    """Per learner, the trial with the best final value (lowest MSRE, highest accuracy) among
    those that finished. Evaluation runs (``ccn.role`` = ``eval``: a pick on fresh seeds)
    take precedence over tuning trials, and count whatever their outcome: a pick that
    diverged on a fresh seed is reported as it did (that seed the worst), never replaced by
    its tuning run; a family whose evaluation did not end (failed, interrupted) is left out
    rather than reported on its tuning seeds. Tuning trials compete among those run on the
    most seeds (after racing, the finalists). ``role`` keeps only the runs of that role."""
    best: dict[str, Trial] = {}
    for learner in _learners(trials):
        mine = [t for t in trials if t.learner == learner]
        if role is not None:
            mine = [t for t in mine if t.role == role]
        evals = [t for t in mine if t.role == "eval"]
        if evals:
            pool = [t for t in evals if t.status in ("finished", "diverged")]
        else:  # among those run on the most seeds (a race's finalists)
            pool = [t for t in mine if t.status == "finished"]
            most = max((len(t.seeds) for t in pool), default=0)
            pool = [t for t in pool if len(t.seeds) == most]
        if pool:
            best[learner] = pool[0].measure.best(pool)
    return best


def _learners(trials: list[Trial]) -> list[str]:
    names = {t.learner for t in trials}
    return [n for n in ORDER if n in names] + sorted(names - set(ORDER))


def summary_rows(best: dict[str, Trial], same: dict[str, Trial] | None = None,
                 n_resamples: int = N_RESAMPLES) -> list[dict[str, Any]]:  # fmt: skip
    """One row per learner: its pick's figures over the seeds it ran (fresh seeds when it was
    evaluated): its diverged seeds as a count and a rate with an exact interval, and over the
    finite seeds the bootstrap interval, median and IQM of the compared value (the
    normalised MSRE, or the task's measure); ``same`` adds each learner's pick as the
    tuning seeds saw it (``same_seeds_*``: selected and reported on the same seeds)."""
    rows = []
    for learner, t in best.items():
        mean, half = t.ci()
        boot = family_summary(t.seed_values(), n_resamples)
        row = {
            "learner": learner,
            "experiment": t.experiment,
            "selection": "fresh seeds" if t.role == "eval" else "same seeds",
            "configuration": t.label(),
            "params": int(t.n_params) if math.isfinite(t.n_params) else "",
            "flops_per_step": int(t.flops) if math.isfinite(t.flops) else "",
            "seeds": len(t.seeds),
            f"{t.measure.measure}_mean": mean,
            f"{t.measure.measure}_ci95": half,
            **_normalised_columns(t),
            # seeds whose run diverged, apart: a count, a rate and its exact 95% interval
            "diverged_seeds": boot["diverged"],
            "diverged_rate": boot["diverged_rate"],
            "diverged_low": boot["diverged_low"],
            "diverged_high": boot["diverged_high"],
            # over the finite seeds
            "boot_low": boot["boot_low"],
            "boot_high": boot["boot_high"],
            "boot_method": boot["boot_method"],
            "median": boot["median"],
            "iqm": boot["iqm"],
        }
        if same is not None:
            s = same.get(learner)
            values = s.seed_values() if s is not None else np.zeros(0)
            row["same_seeds_mean"] = float(values.mean()) if values.size else math.nan
            row["same_seeds_ci95"] = mean_ci(values)[1] if values.size else math.nan
            row["same_seeds_n"] = int(values.size)
            row["same_seeds_configuration"] = s.label() if s is not None else ""
        row["steps_per_s"] = t.metrics.get("final_steps_per_s", math.nan)
        row["run_id"] = t.run_id
        rows.append(row)
    return rows


def _normalised_columns(t: Trial) -> dict[str, Any]:
    """``nmsre_mean`` and ``nmsre_ci95`` over the finite seeds (a diverged seed is counted
    apart, ``diverged_*``) and ``learned`` over every seed, of a prediction trial (none for
    classification)."""
    if t.measure.higher_better:
        return {}
    values = t.normalised_values()
    finite = values[np.isfinite(values)]
    mean, half = mean_ci(finite) if finite.size else (math.nan, math.nan)
    return {"nmsre_mean": mean, "nmsre_ci95": half, "learned": t.learned()}


def truncated(learner: str) -> bool:
    """Whether the family truncates its gradient (T-BPTT: its size is a truncation:hidden
    pair, drawn as pairs)."""
    fam = known(learner)
    return fam is not None and "truncation" in fam.sizes


def sized(learner: str) -> bool:
    """Whether the family has a size a budget sets (linear has none)."""
    fam = known(learner)
    return fam is not None and fam.grow is not None
