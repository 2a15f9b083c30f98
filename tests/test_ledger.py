"""The compute ledger agrees with the learners it describes."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from learners import make_hparams, make_learner
from learners.ledger import cost, size_for_budget, tbptt_cost

CONFIGS = [
    ("linear", {}),
    ("columnar", dict(n_features=7)),
    ("constructive", dict(n_features=5)),
    ("hybrid", dict(n_features=12, per_stage=4)),
    ("snap1", dict(n_features=6)),
    ("rtrl", dict(n_features=3)),
    ("tbptt", dict(n_features=5, truncation=8)),
]


@pytest.mark.parametrize("name,kw", CONFIGS)
def test_ledger_params_and_state_bytes_match_the_learner(name, kw):
    learner = make_learner(name, 12, **kw)
    entry = cost(name, 12, learner.settings)
    assert entry.params == learner.n_params
    shapes = jax.eval_shape(learner.init, jax.random.PRNGKey(0), make_hparams())
    nbytes = sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(shapes))
    assert entry.state_bytes == nbytes


def test_ledger_scaling_laws():
    # Columnar flops grow linearly in columns; RTRL's per parameter grow with hidden size;
    # T-BPTT's grow linearly in truncation.
    c = [cost("columnar", 12, dict(n_features=n, per_stage=n)).flops for n in (10, 20, 40)]
    assert c[2] - c[1] == pytest.approx(2 * (c[1] - c[0]), rel=0.01)
    r = [cost("rtrl", 12, dict(hidden=h)) for h in (2, 4, 8)]
    per_param = [e.flops / e.params for e in r]
    assert per_param[2] / per_param[1] > 2.5
    t = [tbptt_cost(12, 5, k).flops for k in (5, 10, 20)]
    assert t[2] - t[1] == pytest.approx(2 * (t[1] - t[0]))


def test_size_for_budget_fits_and_is_largest():
    budget = cost("columnar", 12, dict(n_features=7, per_stage=7)).flops
    assert size_for_budget("columnar", 12, budget) == 7
    for name, kw in [("snap1", {}), ("tbptt", dict(truncation=10)), ("hybrid", dict(per_stage=4))]:
        n = size_for_budget(name, 12, budget, **kw)
        settings = {"hidden": n, "truncation": kw.get("truncation"), "n_features": n,
                    "per_stage": kw.get("per_stage")}  # fmt: skip
        assert cost(name, 12, settings).flops <= budget
        bigger = dict(settings, hidden=n + 1, n_features=n + (kw.get("per_stage") or 1))
        assert cost(name, 12, bigger).flops > budget
    with pytest.raises(ValueError, match="below the smallest tbptt network"):
        size_for_budget("tbptt", 12, 100.0)
