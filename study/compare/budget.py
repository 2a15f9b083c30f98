"""``--budget-flops match``: the compute every family of a comparison is sized to, and the
families the paper compares."""

from __future__ import annotations

# The paper's five families, in its order: a comparison's default --spaces and the order of
# every table and figure of the Atari preset.
FAMILIES = ("columnar", "constructive", "hybrid", "tbptt", "snap1")

# --budget-flops match: every family sized to the compute of this family's default network
# (the paper's CCN 20:4), the headline learner at the paper's size and the main job's budget.
MATCH_FAMILY = "hybrid"


def matched_budget(text: str | None, task: str, data_dir: str | None = None) -> str:
    """``--budget-flops`` of every tuning study: ``match`` (the default) is the ledger flops of
    ``MATCH_FAMILY``'s default network on ``task``; ``paper`` is each family's own default
    (``study.launch``'s ``auto``); a number or ``none`` passes through."""
    word = "match" if text is None else str(text).strip().lower()
    if word == "paper":
        return "auto"
    if word != "match":
        return str(text)
    from learners import make_learner
    from learners.registry import cost
    from study.tasks import make_env

    m = make_env(task, data_dir=data_dir).obs_size
    return str(cost(MATCH_FAMILY, m, make_learner(MATCH_FAMILY, m).settings).flops)
