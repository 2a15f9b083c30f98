"""Figures of the report are readable: log axes show numbers without overlapping labels,
whether the data span several decades or less than one."""

from __future__ import annotations

import numpy as np
import pytest

from study.report.figures import _finish_axes, _plt


def visible_labels(fig, axis, index: int):
    """Tick labels with text inside the axis' view, and their boxes on the canvas."""
    fig.canvas.draw()
    lo, hi = axis.get_view_interval()
    shown = [
        t
        for t in axis.get_ticklabels(which="both")
        if t.get_text() and lo * (1 - 1e-9) <= t.get_position()[index] <= hi * (1 + 1e-9)
    ]
    renderer = fig.canvas.get_renderer()
    return [t.get_text() for t in shown], [t.get_window_extent(renderer) for t in shown]


@pytest.mark.parametrize(
    ("low", "high", "at_least"),
    # less than a decade, several, and the 1.2 decades of a report's compute axis whose only
    # label once was 10^4
    [(0.02, 0.05, 3), (1e-4, 1.0, 4), (1.6e3, 2.7e4, 3), (0.0181, 0.0213, 3), (10, 1e9, 4)],
)
def test_log_axis_labels_are_shown_and_do_not_overlap(low, high, at_least):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    x = np.geomspace(low, high, 50)
    ax.plot(x, x, label="line")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _finish_axes(ax, "title", "x", "y")
    for index, axis in enumerate((ax.xaxis, ax.yaxis)):
        texts, boxes = visible_labels(fig, axis, index)
        assert len(texts) >= at_least, texts
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert not a.overlaps(b), texts
    plt.close(fig)


@pytest.mark.parametrize("span", [(1.6e3, 2.7e4), (0.0181, 0.0213), (1e-6, 1e6), (3e3, 3.2e3)])
def test_log_ticks_are_few_readable_numbers_inside_the_span(span):
    from study.report.figures import log_ticks

    lo, hi = span
    ticks = log_ticks(lo, hi)
    assert 3 <= len(ticks) <= 8
    assert all(lo <= t <= hi for t in ticks) and ticks == sorted(set(ticks))
    # round numbers: at most three significant digits
    assert all(float(f"{t:.3g}") == t for t in ticks), ticks


def _trial(learner, run_id="r", status="finished", seeds=(0, 1, 2), values=(0.2, 0.3, 0.4),
           **params):  # fmt: skip
    from study.report.load import Trial

    metrics = {f"final_nmsre_windowed_seed{s}": v for s, v in zip(seeds, values, strict=True)}
    metrics["final_msre_windowed"] = float(np.mean(values)) / 50
    return Trial(run_id, "e", learner, status, {k: str(v) for k, v in params.items()}, metrics,
                 list(seeds))  # fmt: skip


def test_stage_lines_are_drawn_where_stages_start():
    """Catches a line at the end of the run: a CCN 20:4 with stages of 400k starts stages at
    0.4, 0.8, 1.2 and 1.6M (the fifth never ends), a columnar network has none."""
    ccn = _trial("hybrid", n_features=20, per_stage=4, steps_per_stage=400_000)
    assert ccn.stage_starts(2_000_000) == [400_000, 800_000, 1_200_000, 1_600_000]
    assert ccn.stage_starts(1_000_000) == [400_000, 800_000]
    constructive = _trial("constructive", n_features=10, per_stage=1, steps_per_stage=200_000)
    assert constructive.stage_starts(1e9)[-1] == 1_800_000
    columnar = _trial("columnar", n_features=7, steps_per_stage=2**31 - 1)
    assert columnar.stage_starts(2_000_000) == []


def test_the_sensitivity_figure_calls_out_a_pick_at_the_grid_edge(tmp_path):
    """A pick with the smallest step size its family tried is named; one inside the grid is
    not; T-BPTT gets its panel of pairs; a diverged trial does not break the figure."""
    from study.report.figures import _colors
    from study.report.sensitivity import plot_sensitivity

    trials = [
        _trial("columnar", f"c{i}", alpha=a, lambda_=0.99, norm_rate=0.0, n_features=7,
               values=(0.1 + i / 10,) * 3)
        for i, a in enumerate((0.001, 0.003, 0.01))
    ] + [
        _trial("tbptt", f"t{k}{a}", alpha=a, lambda_=0.99, norm_rate=0.0, truncation=k,
               n_features=h, values=(0.5 + a * 100,) * 3)
        for k, h in ((2, 13), (5, 8)) for a in (1e-4, 3e-4, 1e-3)
    ] + [_trial("columnar", "dead", status="diverged", alpha=0.3, lambda_=0.99, norm_rate=0.0,
                n_features=7, values=(np.inf,) * 3)]  # fmt: skip
    picks = {"columnar": trials[0], "tbptt": trials[4]}
    edges = plot_sensitivity(trials, _colors(["columnar", "tbptt"]), tmp_path / "s.png",
                             picks=picks)  # fmt: skip
    assert edges == ["columnar's pick has the smallest step size tried (0.001 of 0.001-0.3): "
                     "its best may lie beyond the grid"]  # fmt: skip
    assert (tmp_path / "s.png").stat().st_size > 10_000


def test_every_legend_entry_of_the_sensitivity_figure_is_drawn_apart(tmp_path, monkeypatch):
    """Families by colour only (no marker borrowed from one lambda), each setting's line
    style, each lambda's marker, the line at 1 in a style of its own (not read as a dashed
    'normalisation on'), a diverged trial and a pick: each named once, no two alike."""
    import matplotlib.figure

    from study.report.figures import _colors
    from study.report.sensitivity import plot_sensitivity

    trials = [
        _trial("columnar", f"c{i}{lam}", alpha=a, lambda_=lam, norm_rate=rate, n_features=7,
               values=(0.5 + i / 10,) * 3)
        for i, a in enumerate((0.001, 0.003)) for lam, rate in ((0.0, 0.0), (0.99, 1e-3))
    ] + [_trial("linear", f"l{a}", alpha=a, lambda_=0.5, norm_rate=0.0, values=(0.9,) * 3)
         for a in (0.01, 0.1)]  # fmt: skip
    saved = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, *a, **k: saved.append(fig))  # fmt: skip
    plot_sensitivity(trials, _colors(["columnar", "linear"]), tmp_path / "s.png",
                     picks={"columnar": trials[0]})  # fmt: skip
    legend = saved[0].axes[0].get_legend()
    entries = {t.get_text(): h for t, h in zip(legend.get_texts(), legend.legend_handles,
                                                 strict=True)}  # fmt: skip
    assert list(entries) == [
        "columnar",
        "linear",
        "normalisation off",
        "normalisation on",
        "lambda 0.9 or more (or none)",
        "lambda 0.3 to 0.9",
        "lambda below 0.3",
        "best constant predictor (1)",
        "diverged (at the top)",
        "each family's pick",
    ]
    looks = [(h.get_color(), h.get_linestyle(), h.get_marker()) for h in entries.values()]
    assert len(set(looks)) == len(looks), looks
    assert entries["columnar"].get_marker() in ("None", "", None)
    assert entries["best constant predictor (1)"].get_linestyle() != "--"


@pytest.mark.parametrize("low, high, scale", [(0.93, 1.17, "linear"), (0.2, 3e4, "log")])
def test_a_normalised_axis_has_a_labelled_tick_at_1(low, high, scale):
    from study.report.figures import tick_at_one

    plt = _plt()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [low, high])
    ax.set_yscale(scale)
    ax.set_ylim(low, high)
    ax.set_yticks([0.95, 1.05, 1.15] if scale == "linear" else [0.2, 2, 20, 200, 2000, 20000])
    tick_at_one(ax)
    assert 1.0 in list(ax.get_yticks()) and ax.get_ylim() == pytest.approx((low, high))
    fig.canvas.draw()
    at_one = [t.label1.get_text() for t in ax.yaxis.get_major_ticks() if t.get_loc() == 1.0]
    assert at_one and at_one[0].strip("$"), at_one  # drawn with a label
    plt.close(fig)
