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
    done (Tune sets its status after the callback), or a time left from the wrong totals."""
    clock = [100.0]
    monkeypatch.setattr(console.time, "monotonic", lambda: clock[0])
    p = console.Progress("msre_windowed", steps=1000, configurations=10)
    trials = [_trial("a", "RUNNING", members=4), _trial("b", "RUNNING", members=4)]
    for t in trials:
        p.on_trial_start(0, trials, t)
        p.on_trial_result(0, trials, t, {"steps_done": 0})
    assert p.overall(trials) == "configurations 0/10 done"
    clock[0] = 110.0  # 10 s later: a at 500 steps, b at 250 -> 3,000 configuration-steps
    p.last["a"] = {"steps_done": 500}
    p.last["b"] = {"steps_done": 250}
    text = p.overall(trials)
    assert text.startswith("configurations 0/10 done, 300 configuration-steps/s")
    # a: 500 left at 50/s (10 s), b: 750 at 25/s (30 s); the 2 configurations in no trial
    # yet make one trial of 4 (at the mean speed, 37.5/s: 27 s) after a, on its slot: 37 s
    assert text.endswith("about 37 s left"), text
    p.last["a"] = {"steps_done": 1000}
    assert p.overall(trials, ended="a").startswith("configurations 4/10 done")


def test_a_resumed_trials_restored_steps_are_not_counted_in_the_rate(monkeypatch):
    """Catches the rate (and so the time left) of a resumed study inflated by the steps its
    trials had done before the interruption: a trial restored at 480 steps once counted those
    480 as done in the seconds since."""
    clock = [100.0]
    monkeypatch.setattr(console.time, "monotonic", lambda: clock[0])
    p = console.Progress("msre_windowed", steps=5000, configurations=16)
    a, b = _trial("a", "RUNNING", members=8), _trial("b", "RUNNING", members=8)
    a.last_result, b.last_result = {"steps_done": 4470}, {"steps_done": 480}
    trials = [a, b]
    p.on_trial_start(0, trials, a)
    p.on_trial_start(0, trials, b)
    p.on_trial_result(0, trials, a, {"steps_done": 4480})
    p.on_trial_result(0, trials, b, {"steps_done": 480})
    clock[0] = 110.0  # 10 s later: a 100 steps further, b 110
    p.last["a"] = {"steps_done": 4580}
    p.last["b"] = {"steps_done": 590}
    text = p.overall(trials)
    # this launch: a 4470 -> 4580 and b 480 -> 590 since they started: (880 + 880) / 10 s
    assert text.startswith("configurations 0/16 done, 176 configuration-steps/s"), text
    # b: 4,410 steps left at 11 steps/s (its speed, 8 configurations at once): 401 s
    assert text.endswith("about 7 min left"), text


def test_the_time_left_counts_the_start_up_every_later_trial_pays(monkeypatch):
    """Catches a time left from the loop's speed alone: 4 trials, 1 at a time, each starting
    up and compiling for 30 s, then running 10,000 steps at 100 steps/s. 10 s into the first
    trial's loop: its 90 s left, then 3 trials of 130 s: 8 min (from the loop's speed alone,
    6.5 min; from the rate since the start, 26 min). Once a trial has ended, its whole
    duration is what a trial takes."""
    clock = [100.0]
    monkeypatch.setattr(console.time, "monotonic", lambda: clock[0])
    p = console.Progress("msre_windowed", steps=10_000, configurations=4)
    trials = [_trial("a", "RUNNING"), *(_trial(t, "PENDING") for t in "bcd")]
    p.on_trial_start(0, trials, trials[0])
    clock[0] = 130.0  # started up and compiled: the first result
    p.on_trial_result(0, trials, trials[0], {"steps_done": 0})
    clock[0] = 140.0
    p.last["a"] = {"steps_done": 1000}
    assert p.overall(trials).endswith("25 configuration-steps/s, about 8 min left")
    clock[0] = 230.0  # a ends after 130 s; b starts
    p.last["a"] = {"steps_done": 10_000}
    p.on_trial_complete(0, trials, trials[0])
    trials = [_trial("a", "TERMINATED"), _trial("b", "RUNNING"), _trial("c", "PENDING"),
              _trial("d", "PENDING")]  # fmt: skip
    p.on_trial_start(0, trials, trials[1])
    clock[0] = 250.0  # b still compiling: 110 s of it left, then 2 x 130 s
    assert p.overall(trials).endswith("about 6 min left")


@pytest.mark.parametrize("seconds,text", [(42, "42 s"), (600, "10 min"), (9000, "2.5 h")])
def test_durations_read_well(seconds, text):
    assert console._duration(seconds) == text


def test_a_packs_name_lists_the_configurations_it_holds():
    """The name a pack's trial has on the console and on Ray's dashboard says which
    configurations it runs: family, shape, count, then each member's step size in order (and
    lambda where they differ); a long pack lists six and counts the rest."""
    base = {"learner": "hybrid", "n_features": 20, "per_stage": 4, "steps_per_stage": 1000}
    pack = [{**base, "alpha": a, "lambda_": lam}
            for a, lam in ((1e-3, 0.99), (4.2e-4, 0.9), (1.5e-4, 0.99))]  # fmt: skip
    assert console.trial_label({"pack": pack}) == "hybrid 20:4 x3 a=1e-3,4.2e-4,1.5e-4 l=.99,.9,.99"
    same = [{**m, "lambda_": 0.99} for m in pack]
    assert console.trial_label({"pack": same}) == "hybrid 20:4 x3 a=1e-3,4.2e-4,1.5e-4"
    many = [{**base, "alpha": 1e-3 * i, "lambda_": 0.0} for i in range(1, 10)]
    assert console.trial_label({"pack": many}).endswith(" x9 a=1e-3,2e-3,3e-3,4e-3,5e-3,6e-3,+3")
    assert console.trial_label({"pack": pack[:1]}) == "hybrid 20:4 a=1e-3 l=.99"
