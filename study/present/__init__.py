"""Presentation: how records read for people, as pure functions of values (names, colours,
columns worth showing, sentences, a kind's words, figures). It reads and writes nothing;
``study.records`` and the commands call it."""

from study.present.curve import plot_curve, step_label
from study.present.names import colour, headline, outcome_sentence, place, run_name, short
from study.present.words import conclusion, verdict_line, verdict_of, words

__all__ = ["colour", "conclusion", "headline", "outcome_sentence", "place", "plot_curve",
           "run_name", "short", "step_label", "verdict_line", "verdict_of", "words"]  # fmt: skip
