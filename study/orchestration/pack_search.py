"""A study's search: Ray Tune's ``OptunaSearch`` that leaves alone an Optuna trial an earlier
launch finished (``StudySearch``), and, for a packed study, asking one Optuna trial per
configuration of a pack (``study.engine.pack``), each told its own result (``PackSearch``)."""

from __future__ import annotations

import logging
import math
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from study.engine.pack import member_results


def _report(trial: optuna.Trial, value: float, step: int) -> None:
    """``trial.report``, unless an earlier launch finished that trial: a launch killed after
    Optuna recorded a trial's end but before Tune did runs it again on --resume."""
    try:
        trial.report(value, step)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass


class StudySearch(OptunaSearch):
    """``OptunaSearch`` whose trials, run again after a resume, report nothing to an Optuna
    trial that is already finished (``OptunaSearch`` would stop the study with
    ``UpdateFinishedTrialError``); telling it its end again is already only a warning."""

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._completed_trials or isinstance(self.metric, list):
            return
        _report(self._ot_trials[trial_id], result[self.metric], result["training_iteration"])


class PackSearch(StudySearch):
    """Asks ``pack`` Optuna trials per Tune trial (the last trial fewer, so that ``trials``
    configurations are asked in all). Each configuration of a pack is its own Optuna trial:
    the first is sampled freely; the shape parameters it drew are enqueued as fixed for the
    others, whose remaining parameters the sampler draws. Each is reported its intermediate
    values as the pack reports, and told its own objective when the pack ends."""

    def __init__(self, pack: int, trials: int, **kw: Any) -> None:
        super().__init__(**kw)
        self._pack, self._trials, self._asked = pack, trials, 0
        self._shape_names = kw["space"].shape_params()

    def suggest(self, trial_id: str) -> dict | None:
        if trial_id not in self._ot_trials:
            k = min(self._pack, self._trials - self._asked)
            if k < 1:
                return None
            self._ot_trials[trial_id] = self._ask_pack(k)
            self._asked += k
        members = self._ot_trials[trial_id]
        configs = [self._suggest_from_define_by_run_func(self._space, t) for t in members]
        return {"pack": configs, "pack_trials": [t.number for t in members]}

    def _ask_pack(self, k: int) -> list:
        first = self._ot_study.ask()
        self._suggest_from_define_by_run_func(self._space, first)
        fixed = {n: first.params[n] for n in self._shape_names if n in first.params}
        members = [first]
        while len(members) < k:
            self._ot_study.enqueue_trial(fixed)
            t = self._ot_study.ask()
            self._suggest_from_define_by_run_func(self._space, t)
            if all(t.params.get(n) == v for n, v in fixed.items()):
                members.append(t)
            else:  # a waiting trial an earlier launch left came first: not this pack's
                self._ot_study.tell(t, state=optuna.trial.TrialState.FAIL)
        return members

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._completed_trials:
            return
        step = result.get("training_iteration", 0)
        for t, value in zip(self._ot_trials[trial_id], member_results(result, self.metric),
                            strict=False):  # fmt: skip
            if value is not None and math.isfinite(value):
                _report(t, float(value), step)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:  # fmt: skip
        if trial_id in self._completed_trials:
            return
        members = self._ot_trials[trial_id]
        values = member_results(result or {}, self.metric)
        values += [None] * (len(members) - len(values))
        for t, value in zip(members, values, strict=True):
            state = optuna.trial.TrialState.COMPLETE
            if value is None:
                state = optuna.trial.TrialState.FAIL if error else optuna.trial.TrialState.PRUNED
            try:
                self._ot_study.tell(t, None if value is None else float(value), state=state)
            except Exception as e:  # noqa: BLE001 - as OptunaSearch does: e.g. a NaN value
                logging.getLogger(__name__).warning(e)
        self._completed_trials.add(trial_id)
