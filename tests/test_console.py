"""The study console's overall line: configurations done (a pack counts its members), the rate
in configuration-steps per second and the time left."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from study.orchestration import console


def _trial(tid, status, members=1):
    config = {"fixed": {"pack": [{}] * members}} if members > 1 else {"learner": "columnar"}
    return SimpleNamespace(trial_id=tid, status=status, config=config)


def test_the_overall_line_counts_pack_members_and_estimates_the_time_left(monkeypatch):
    """Catches a pack counted as one configuration, a trial that just ended counted as not
    done (Tune sets its status after the callback), or an ETA from the wrong totals."""
    clock = [100.0]
    monkeypatch.setattr(console.time, "monotonic", lambda: clock[0])
    p = console.Progress("msre_windowed", steps=1000, configurations=10)
    trials = [_trial("a", "RUNNING", members=4), _trial("b", "RUNNING", members=4)]
    p.on_trial_result(0, trials, trials[0], {"steps_done": 0})
    assert p.overall(trials) == "configurations 0/10 done"
    clock[0] = 110.0  # 10 s later: a at 500 steps, b at 250 -> 3,000 configuration-steps
    p.last["a"] = {"steps_done": 500}
    p.last["b"] = {"steps_done": 250}
    text = p.overall(trials)
    assert text.startswith("configurations 0/10 done, 300 configuration-steps/s")
    # 10 x 1000 in all, 3,000 done: 7,000 left at 300/s
    assert text.endswith("about 23 s left")
    p.last["a"] = {"steps_done": 1000}
    assert p.overall(trials, ended="a").startswith("configurations 4/10 done")


def test_a_resumed_trials_restored_steps_are_not_counted_in_the_rate(monkeypatch):
    """Catches the rate (and so the time left) of a resumed study inflated by the steps its
    trials had done before the interruption: a trial restored at 480 steps whose first result
    comes after the rate's start once counted those 480 as done in the seconds since."""
    clock = [100.0]
    monkeypatch.setattr(console.time, "monotonic", lambda: clock[0])
    p = console.Progress("msre_windowed", steps=5000, configurations=16)
    a, b = _trial("a", "RUNNING", members=8), _trial("b", "RUNNING", members=8)
    a.last_result, b.last_result = {"steps_done": 4470}, {"steps_done": 480}
    trials = [a, b]
    p.on_trial_start(0, trials, a)
    p.on_trial_start(0, trials, b)
    p.on_trial_result(0, trials, a, {"steps_done": 4480})
    p.last["a"] = {"steps_done": 4480}
    clock[0] = 110.0  # 10 s later: each trial 100 steps further, 8 configurations each
    p.last["a"] = {"steps_done": 4580}
    p.last["b"] = {"steps_done": 590}
    text = p.overall(trials)
    # this launch: a 4480 -> 4580 and b 480 -> 590 since the rate started: (800 + 880) / 10 s
    assert text.startswith("configurations 0/16 done, 168 configuration-steps/s"), text
    # left: 16 x 5000 - 8 x (4580 + 590) = 38,640 at 168/s
    assert text.endswith("about 4 min left"), text


@pytest.mark.parametrize("seconds,text", [(42, "42 s"), (600, "10 min"), (9000, "2.5 h")])
def test_durations_read_well(seconds, text):
    assert console._duration(seconds) == text
