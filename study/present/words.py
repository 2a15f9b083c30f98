"""What a task kind's numbers are called for people: axis labels, the verdict's sentence, and
how to read a study in MLflow. A kind (``study.engine.kinds``) holds keys, defaults and pure
functions of statistics; its words live here, looked up by the kind's name, so the engine
computes and this room says.

``words(kind)`` gives a kind's :class:`Words`; ``verdict_line(kind, values)`` the one line
that says whether per-seed values show learning; ``verdict_of(kind, metrics)`` the same line
from a trial's report; ``conclusion(kind, learned)`` its last words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Words:
    label: str  # axis label of the final value
    curve_label: str  # axis label of the learning curve
    figure_label: str  # axis label of the curve a trial's learning_curve.png draws
    verdict_text: str  # the verdict's values, named
    no_learning_text: str  # what no learning scores, said
    not_learned: str  # why a learner did not learn, in a verdict
    reading: str  # how to read a study of this kind in MLflow (its experiment's description)


WORDS: dict[str, Words] = {
    "prediction": Words(
        label="final windowed MSRE",
        curve_label="windowed MSRE",
        figure_label="normalised MSRE",
        verdict_text="normalised MSRE",
        no_learning_text="1 = the best constant predictor's",
        not_learned="a constant predictor does as well",
        reading="The runs are listed best first by `final_nmsre_windowed`, the final windowed "
        "MSRE over the best constant predictor's (below 1: something was learned), with its "
        "95% interval over seeds (`_ci95`) and the verdict (`learned`: the whole interval "
        "below 1). Each run's `curve_nmsre_windowed` and `curve_msre_windowed` are its "
        "learning curves against environment steps; its `learning_curve.png` draws every "
        "seed's normalised MSRE with a line at 1, and `finals.json` holds every final number.",
    ),
    "classification": Words(
        label="final held-out accuracy",
        curve_label="online accuracy (windowed)",
        figure_label="online accuracy (windowed)",
        verdict_text="held-out accuracy",
        no_learning_text="chance 0.1",
        not_learned="no better than chance",
        reading="The runs are listed best first by `final_heldout_accuracy`, the accuracy on "
        "held-out images scored without learning (chance is 0.1), with its 95% interval over "
        "seeds (`_ci95`) and the verdict (`learned`: the whole interval above chance). Each "
        "run's `curve_accuracy_windowed` (online accuracy, before learning from each image) "
        "and `curve_heldout_accuracy` are its learning curves against environment steps (one "
        "step per pixel row); its `learning_curve.png` draws every seed's online accuracy "
        "with a line at chance, and `finals.json` holds every final number.",
    ),
}


def words(kind: Any) -> Words:
    """The words of a kind (anything with the ``name`` of one: ``prediction``,
    ``classification``)."""
    return WORDS[kind.name]


def conclusion(kind: Any, learned: bool) -> str:
    """The verdict's last words: learned, or why not."""
    return "learned" if learned else f"NOT LEARNED: {words(kind).not_learned}"


def too_short(steps: int | None, learns_in: int | None) -> str:
    """What a verdict of no learning adds when the run was shorter than the length the
    families' defaults are known to learn in on its task (``learns_in``; None: not known)."""
    if steps is None or learns_in is None or steps >= learns_in:
        return ""
    return (f" (a run of {steps:,} steps, shorter than the {learns_in:,} the families' "
            f"defaults learn in: too short to show learning; --smoke checks that everything "
            f"runs)")  # fmt: skip


def verdict_line(kind: Any, values: Any, steps: int | None = None,
                 learns_in: int | None = None) -> str:  # fmt: skip
    """One line saying whether per-seed ``verdict_key`` values show learning: their mean and
    95% interval against what no learning scores, over the finite seeds, with the diverged
    seeds counted apart (a diverged seed shows no learning); a run of ``steps`` shorter than
    ``learns_in`` that shows none says it was too short (:func:`too_short`)."""
    said = words(kind)
    values = np.asarray(values, np.float64).ravel()
    finite = values[np.isfinite(values)]
    gone = values.size - finite.size
    apart = f"; {gone} of {values.size} seeds diverged" if gone else ""
    if finite.size < 2:
        shown = f"{finite[0]:.3f} on 1 finite seed" if finite.size else "no finite seed"
        return (f"{said.verdict_text} {shown} ({said.no_learning_text}{apart}): not shown "
                f"either way: one seed gives no interval (run 2 or more)")  # fmt: skip
    mean, half, ok = kind.learned(finite)
    ok = ok and not gone
    return (f"{said.verdict_text} {mean:.3f} ± {half:.3f} (95% CI over {finite.size} "
            f"{'finite ' if gone else ''}seeds; {said.no_learning_text}{apart}): "
            f"{conclusion(kind, ok)}{'' if ok else too_short(steps, learns_in)}")  # fmt: skip


def verdict_of(kind: Any, metrics: dict[str, Any], steps: int | None = None,
               learns_in: int | None = None) -> str:  # fmt: skip
    """:func:`verdict_line` of a trial's last report ``metrics`` (its per-seed
    ``verdict_key`` values); empty without them."""
    prefix = f"{kind.verdict_key}_seed"
    values = [metrics[k] for k in metrics if k.startswith(prefix)]
    if not values:
        return ""
    return verdict_line(kind, np.asarray(values, np.float64), steps, learns_in)


__all__ = ["WORDS", "Words", "conclusion", "too_short", "verdict_line", "verdict_of", "words"]
