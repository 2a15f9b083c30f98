"""Task kinds (study.engine.kinds): one object per kind answers what the trial, launch and report
used to branch on."""

from __future__ import annotations

import math

import pytest

from study.engine.kinds import ATARI, CLASSIFICATION, KINDS, PREDICTION, kind_of
from study.present.words import verdict_line, verdict_of
from study.tasks import TASKS


def test_every_task_has_the_kind_its_objective_needs():
    for task in TASKS:
        kind = kind_of(task)
        expected = (CLASSIFICATION if task.startswith("seq_mnist")
                    else ATARI if task.startswith("atari_") else PREDICTION)  # fmt: skip
        assert kind is expected, task
    # the Atari tasks: prediction, whose windowed measure is the last fifth of a stream
    assert ATARI.metric == PREDICTION.metric and ATARI.curve == PREDICTION.curve
    assert (ATARI.window, ATARI.task_options) == (50_000, ("gamma", "data_dir"))
    assert (PREDICTION.metric, PREDICTION.mode) == ("msre_windowed", "min")
    assert (CLASSIFICATION.metric, CLASSIFICATION.mode) == ("heldout_accuracy", "max")
    # the report's measure: the final value is the objective's final metric
    assert PREDICTION.final == "final_msre_windowed" and PREDICTION.worst == math.inf
    assert CLASSIFICATION.final == "final_heldout_accuracy" and CLASSIFICATION.worst == -math.inf
    assert len({k.curve for k in KINDS}) == len(KINDS)  # curves never mix in one chart


def test_a_task_has_the_kind_it_was_registered_with(monkeypatch):
    """The kind comes from the registration, not from the name: a task registered as
    classification under any name is one, and an unknown name is refused naming --task."""
    import dataclasses

    from study import tasks

    mine = dataclasses.replace(tasks.REGISTRY["seq_mnist"], name="digits_mine")
    monkeypatch.setitem(tasks.REGISTRY, "digits_mine", mine)
    assert kind_of("digits_mine") is CLASSIFICATION
    assert tasks.task_family("digits_mine") == "classification"
    other = dataclasses.replace(mine, kind="prediction", runner="testbed")
    monkeypatch.setitem(tasks.REGISTRY, "digits_mine", other)
    assert kind_of("digits_mine") is PREDICTION
    with pytest.raises(ValueError, match=r"^--task: unknown task 'no_such_task'; allowed: "):
        kind_of("no_such_task")


def test_a_kind_holds_numbers_and_its_words_live_with_the_presentation():
    """Every kind has words; none of the words is a field of the kind."""
    import dataclasses

    from study.present.words import WORDS, Words, words

    said = {f.name for f in dataclasses.fields(Words)}
    for kind in (*KINDS, ATARI):
        assert isinstance(words(kind), Words)
        assert said.isdisjoint(f.name for f in dataclasses.fields(kind)), kind.name
    assert set(WORDS) == {k.name for k in KINDS}


def _seeds(prefix, values):
    return {f"{prefix}{i}": v for i, v in enumerate(values)}


@pytest.mark.parametrize(
    ("kind", "prefix", "values", "learned"),
    [
        (PREDICTION, "nmsre_windowed_seed", [0.50, 0.60, 0.55], True),
        # mean below 1 but the interval reaches it: not shown to have learned
        (PREDICTION, "nmsre_windowed_seed", [0.70, 1.30, 0.95], False),
        (PREDICTION, "nmsre_windowed_seed", [1.01, 1.02, 1.00], False),
        (CLASSIFICATION, "heldout_accuracy_seed", [0.90, 0.92, 0.91], True),
        (CLASSIFICATION, "heldout_accuracy_seed", [0.10, 0.09, 0.12], False),
        # above chance on average, but one seed is at chance and the interval includes it
        (CLASSIFICATION, "heldout_accuracy_seed", [0.10, 0.30, 0.20], False),
    ],
)
def test_verdict_says_learned_only_when_the_interval_clears_no_learning(
    kind, prefix, values, learned
):
    line = verdict_of(kind, _seeds(prefix, values))
    assert line.endswith(": learned") is learned, line
    assert ("NOT LEARNED" in line) is (not learned), line
    assert f"over {len(values)} seeds" in line


def test_verdict_is_silent_without_per_seed_values():
    assert verdict_of(PREDICTION, {"msre_windowed": 0.1}) == ""
    assert verdict_of(CLASSIFICATION, {"heldout_accuracy": 0.9}) == ""


def test_one_seed_shows_nothing_either_way():
    """One seed gives no interval: neither "learned" nor "NOT LEARNED" (the four copies of
    this verdict disagreed here before there was one)."""
    for kind, prefix, value in ((PREDICTION, "nmsre_windowed_seed", 0.2),
                                (CLASSIFICATION, "heldout_accuracy_seed", 0.9)):  # fmt: skip
        line = verdict_of(kind, _seeds(prefix, [value]))
        assert "no interval" in line and "learned" not in line.lower(), line


def test_a_diverged_seed_is_counted_apart_and_shows_no_learning():
    """The verdict's interval is over the finite seeds, the diverged ones are named apart,
    and a configuration with a diverged seed is never called learned (its mean would be
    infinite; its finite seeds alone would look fine)."""
    line = verdict_line(PREDICTION, [0.50, 0.60, 0.55, math.inf])
    assert "over 3 finite seeds" in line and "1 of 4 seeds diverged" in line, line
    assert "inf" not in line.replace("infinite", "") and "NOT LEARNED" in line, line
    assert verdict_line(PREDICTION, [0.50, 0.60, 0.55]).endswith(": learned")


def test_a_run_too_short_to_learn_says_so_and_only_then():
    """A verdict of no learning on a run shorter than its task's known length says so; a
    learned verdict, a run as long, or a task with no stated length says nothing more."""
    flat, low = [1.01, 1.02, 1.00], [0.50, 0.52, 0.51]
    said = verdict_line(PREDICTION, flat, 20_000, 2_000_000)
    assert said.endswith(
        "NOT LEARNED: a constant predictor does as well (a run of 20,000 "
        "steps, shorter than the 2,000,000 the families' defaults learn in: "
        "too short to show learning; --smoke checks that everything runs)"
    )
    for values, steps, learns_in in ((low, 20_000, 2_000_000), (flat, 2_000_000, 2_000_000),
                                     (flat, 20_000, None)):  # fmt: skip
        assert "too short" not in verdict_line(PREDICTION, values, steps, learns_in)
    from study.tasks import find_task

    assert find_task("trace_patterning").learns_in == 2_000_000
    assert find_task("seq_mnist").learns_in is None


def test_metrics_are_the_summarys_columns():
    """The search's numbers and the commands' are one computation: each metric is its
    column's mean (the objective at its worst once a seed diverged), seed by seed where
    the kind records them."""
    import numpy as np

    from study.engine.kinds import Record
    from study.engine.loop import BlockStats

    rng = np.random.default_rng(0)
    seeds, blocks = 3, 4
    ret = rng.normal(size=(seeds, blocks)) * 10
    stats = BlockStats(sq_sum=np.abs(rng.normal(size=(seeds, blocks))) * 5,
                       ret_sum=ret, ret_sq_sum=ret**2 + 50.0,
                       count=np.full((seeds, blocks), 10.0),
                       nonfinite=np.zeros((seeds, blocks), bool))  # fmt: skip
    record = Record(stats=stats, seeds=(4, 5, 6), block=10, window=20, steps_done=40)
    got = PREDICTION.summary(record)
    metrics = PREDICTION.metrics(record)
    for name, values in got.columns.items():
        assert metrics[name] == pytest.approx(float(np.mean(values)))
    assert [metrics[f"nmsre_windowed_seed{s}"] for s in (4, 5, 6)] == pytest.approx(
        got.columns["nmsre_windowed"]
    )
    # nMSRE = windowed MSRE over the best constant's (the variance of the return) by hand
    w = slice(2, 4)
    msre = stats.sq_sum[:, w].sum(1) / 20
    mean = ret[:, w].sum(1) / 20
    const = stats.ret_sq_sum[:, w].sum(1) / 20 - mean**2
    assert got.columns["nmsre_windowed"] == pytest.approx(msre / const)
    bad = stats._replace(nonfinite=stats.nonfinite | (np.arange(blocks) == 3))
    assert (
        PREDICTION.metrics(record.__class__(**{**record.__dict__, "stats": bad}))["msre_windowed"]
        == math.inf
    )
