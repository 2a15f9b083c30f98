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
