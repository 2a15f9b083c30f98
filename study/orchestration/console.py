"""What a study prints while it runs (Ray Tune's own console output is switched off): a line
when a trial starts, a table of the running trials every ``every_s`` seconds (steps done,
windowed MSRE and its normalised value, steps per second), and a line when a trial ends."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from ray.tune import Callback

PACK_SHOWN = 6  # a pack's step sizes listed in its name, the rest counted


def trial_label(config: dict[str, Any]) -> str:
    """A trial's readable name from its configuration (its learner, then
    ``study.present.run_name``); a pack's names its shape, how many configurations it holds
    and their step sizes (and lambdas, where they differ), in order: ``hybrid 20:4 x3
    a=1e-3,4.2e-4,1.5e-4 l=.99,.9,.99``."""
    from learners import make_learner
    from learners.registry import config_to_args
    from study.engine.pack import members_of
    from study.present.names import run_name, short

    config = {**{k: v for k, v in config.items() if k != "fixed"}, **config.get("fixed", {})}
    if config.get("pack"):  # a pack (study.engine.pack): its shape and its configurations
        members = members_of(config)
        if len(members) == 1:
            return trial_label(members[0])
        shape = {k: v for k, v in members[0].items() if k not in ("alpha", "lambda_")}
        text = f"{trial_label(shape)} x{len(members)}"
        for key, letter in (("alpha", "a"), ("lambda_", "l")):
            values = [m[key] for m in members if isinstance(m.get(key), int | float)]
            if len(values) < len(members) or (key != "alpha" and len(set(values)) == 1):
                continue
            listed = ",".join(short(float(v)) for v in values[:PACK_SHOWN])
            more = len(values) - PACK_SHOWN
            text += f" {letter}={listed}" + (f",+{more}" if more > 0 else "")
        return text
    try:
        name, static, _ = config_to_args(config)
        settings = make_learner(name, 1, **static).settings  # (builds no JAX array)
    except (KeyError, ValueError, TypeError):
        return str(config.get("learner", "?"))
    return f"{name} {run_name(settings, config)}".strip()


def _members(config: dict[str, Any]) -> int:
    """How many configurations a trial runs (its pack's members, or 1)."""
    pack = (config.get("fixed") or {}).get("pack") or config.get("pack")
    return len(pack) if isinstance(pack, list) else 1


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Progress(Callback):
    """Ray Tune callback printing a study's progress on the driver's console."""

    def __init__(self, metric: str, steps: int, every_s: float = 30.0,
                 configurations: int | None = None) -> None:  # fmt: skip
        self.metric, self.steps, self.every_s = metric, steps, every_s
        self.configurations = configurations  # in the whole study, for the ETA
        # when the first trial started: the rate counts compilation and start-up
        self.started_t0: float | None = None
        self.rate_t0: float | None = None  # when the first result came (no rate before it)
        # each trial's clock, for the time left (:meth:`time_left`): when it started, when
        # its first result came and at which step, when it ended; the most trials that ran
        # at once
        self.start_t: dict[str, float] = {}
        self.first: dict[str, tuple[float, float]] = {}
        self.end_t: dict[str, float] = {}
        self.slots = 1
        # configuration-steps each trial had done when this launch started it (a resumed
        # trial's restored progress is not this launch's work, nor in its rate)
        self.base: dict[str, float] = {}
        self.last: dict[str, dict[str, Any]] = {}
        self.labels: dict[str, str] = {}
        self.t0 = self.printed = time.monotonic()
        self.running: set[str] = set()
        # The trials running when the user pressed Ctrl+C; None while not interrupted.
        self.interrupted: set[str] | None = None
        # Ray Tune handles Ctrl+C itself and says so only on its logger: its notices are
        # replaced by lines of ours, and the launch learns of the interruption here.
        logging.getLogger("ray.tune.tune").addFilter(self._tune_notice)

    def close(self) -> None:
        """Stop watching Tune's logger (a comparison runs several studies in one process:
        each launch's callback must hear only its own Ctrl+C)."""
        logging.getLogger("ray.tune.tune").removeFilter(self._tune_notice)

    def _tune_notice(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Stop signal received"):
            self.interrupted = set(self.running)
            print(f"{self._stamp()} stopping: saving the state of {len(self.running)} running "
                  f"trial(s) (Ctrl+C again stops at once)", flush=True)  # fmt: skip
            return False
        return not message.startswith("Experiment has been interrupted")

    def _label(self, trial) -> str:
        if trial.trial_id not in self.labels:
            self.labels[trial.trial_id] = trial_label(trial.config)
        return self.labels[trial.trial_id]

    def _line(self, trial, result: dict[str, Any]) -> str:
        steps = int(result.get("steps_done", 0))
        value = result.get(self.metric, math.nan)
        parts = [f"  {trial.trial_id:>14s}  {self._label(trial):28s} {steps:>11,}/{self.steps:,}"]
        if "nmsre_windowed" in result:
            parts.append(f"nMSRE {result['nmsre_windowed']:.3f}")
        parts.append(f"{self.metric} {value:.5g}")
        if "steps_per_s" in result:
            parts.append(f"{result['steps_per_s']:,.0f} steps/s")
        return "  ".join(parts)

    def _stamp(self) -> str:
        return f"[{time.strftime('%H:%M:%S')} +{time.monotonic() - self.t0:.0f}s]"

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        if self.started_t0 is None:
            self.started_t0 = time.monotonic()
        self.start_t[trial.trial_id] = time.monotonic()
        self.first.pop(trial.trial_id, None)
        self.running.add(trial.trial_id)
        self.slots = max(self.slots, len(self.running))
        restored = getattr(trial, "last_result", None) or {}
        self.base[trial.trial_id] = _members(trial.config) * float(
            restored.get("steps_done", 0) or 0
        )
        print(f"{self._stamp()} started  {trial.trial_id}  {self._label(trial)}", flush=True)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.last[trial.trial_id] = result
        if trial.trial_id not in self.first:
            self.first[trial.trial_id] = (time.monotonic(), float(result.get("steps_done") or 0))
        if self.rate_t0 is None:
            self.rate_t0 = time.monotonic()

    def _work(self, trials, ended: str | None = None) -> tuple[float, int, float]:
        """Configuration-steps done (each trial's members x its steps), configurations
        finished (``ended``: a trial that ended but whose status Tune sets after the
        callback), and configuration-steps this launch did (from where it started each
        trial: a resumed trial's restored steps are not counted)."""
        done, finished, progress = 0.0, 0, 0.0
        for t in trials:
            members, tid = _members(t.config), t.trial_id
            base = self.base.get(tid, 0.0)
            if t.status in ("TERMINATED", "ERROR") or tid == ended:
                now = members * self.steps
                finished += members
            elif (self.last.get(tid) or {}).get("steps_done") is not None:
                now = members * float(self.last[tid]["steps_done"])
            else:
                now = base  # started, no result yet
            done += now
            if tid in self.base or tid in self.last:  # run by this launch
                progress += now - base
        return done, finished, progress

    def overall(self, trials, ended: str | None = None) -> str:
        """``configurations 40/112 done, 2.1M configuration-steps/s, about 35 min left``: the
        rate of this launch's work since its first trial started (its compilation and start-up
        included, as every later trial's will be); none before the first result."""
        done, finished, progress = self._work(trials, ended)
        total = self.configurations
        text = f"configurations {finished}/{total or '?'} done"
        if self.rate_t0 is None or time.monotonic() - self.rate_t0 < 1.0:
            return text
        rate = progress / (time.monotonic() - (self.started_t0 or self.rate_t0))
        text += f", {rate:,.0f} configuration-steps/s"
        left = self.time_left(trials, ended) if total else None
        if left is not None:
            text += f", about {_duration(left)} left"
        return text

    def time_left(self, trials, ended: str | None = None) -> float | None:
        """Seconds until the study ends, trial by trial: a running trial's steps left at its
        own speed since its first result (its compilation behind it); a trial not started yet
        (the configurations in no started trial, in trials of the packs' size) takes what a
        whole trial took here (start-up and compilation included), or before any ended, the
        start-up seen so far plus the steps at the trials' speed; these queue on as many
        slots as ran at once. None until every running trial has a speed."""
        now = time.monotonic()
        running, speeds, started = {}, [], 0
        for t in trials:
            tid, members = t.trial_id, _members(t.config)
            if tid in self.start_t or tid in self.first:
                started += members
            if t.status in ("TERMINATED", "ERROR") or tid == ended or tid in self.end_t:
                continue
            if t.status != "RUNNING" and tid not in self.start_t:
                continue
            first = self.first.get(tid)
            done = float((self.last.get(tid) or {}).get("steps_done") or 0)
            if first is None or now - first[0] < 1.0 or done <= first[1]:
                running[tid] = None  # no speed yet
                continue
            speed = (done - first[1]) / (now - first[0])
            speeds.append(speed)
            running[tid] = (self.steps - done) / speed
        whole = [self.end_t[t] - self.start_t[t] for t in self.end_t if t in self.start_t]
        startup = [f[0] - self.start_t[t] for t, f in self.first.items() if t in self.start_t]
        if whole:
            fresh = sum(whole) / len(whole)
        elif speeds and startup:
            fresh = sum(startup) / len(startup) + self.steps / (sum(speeds) / len(speeds))
        else:
            return None
        for tid, left in running.items():
            if left is None:  # not yet a speed: a whole trial less what it has run
                running[tid] = max(0.0, fresh - (now - self.start_t.get(tid, now)))
        per_trial = max((_members(t.config) for t in trials), default=1)
        pending = math.ceil(max(0, (self.configurations or 0) - started) / per_trial)
        slots = sorted([*running.values(), *[0.0] * max(0, self.slots - len(running))])
        for _ in range(pending):
            slots[0] += fresh
            slots.sort()
        return max(slots, default=0.0)

    def on_step_end(self, iteration, trials, **info) -> None:
        if time.monotonic() - self.printed < self.every_s:
            return
        self.printed = time.monotonic()
        running = [t for t in trials if t.status == "RUNNING"]
        pending = sum(t.status == "PENDING" for t in trials)
        done = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
        print(f"{self._stamp()} {len(running)} running, {pending} pending, {done} done; "
              f"{self.overall(trials)}", flush=True)  # fmt: skip
        for t in running:
            result = self.last.get(t.trial_id)
            if result is None:
                print(f"  {t.trial_id:>14s}  {self._label(t):28s} compiling / first chunk")
            else:
                print(self._line(t, result))

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.running.discard(trial.trial_id)
        if (self.last.get(trial.trial_id) or {}).get("steps_done", 0) >= self.steps:
            self.end_t[trial.trial_id] = time.monotonic()  # a whole trial: its duration counts
        result = self.last.get(trial.trial_id, {})
        how = "diverged" if result.get("diverged") else "finished"
        if how == "finished" and result.get("steps_done", self.steps) < self.steps:
            how = "stopped" if self.interrupted is None else "paused "  # ASHA or Ctrl+C
        print(f"{self._stamp()} {how} {self._line(trial, result).lstrip()}", flush=True)
        if self.configurations and self.configurations > 1:
            print(f"{self._stamp()} {self.overall(trials, trial.trial_id)}", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.running.discard(trial.trial_id)
        self.end_t.pop(trial.trial_id, None)
        where = trial.local_path or "the Ray results"
        print(f"{self._stamp()} FAILED   {trial.trial_id}  {self._label(trial)} (Ray Tune "
              f"retries it; its error is in {where})", flush=True)  # fmt: skip
