"""Search spaces sample valid learners; with a budget every learner fits it and is the largest
that does."""

from __future__ import annotations

import jax
import optuna
import pytest

from learners import make_hparams, make_learner
from learners.ledger import cost
from search_spaces import SPACES, config_to_args, describe, make_space

optuna.logging.set_verbosity(optuna.logging.WARNING)


def sample(name, n, budget=None, seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    space = make_space(name, budget)
    configs = []
    for _ in range(n):
        trial = study.ask()
        constants = space(trial)
        configs.append({**trial.params, **constants})
        study.tell(trial, 0.0)
    return configs


@pytest.mark.parametrize("name", list(SPACES))
def test_every_space_samples_buildable_learners_within_ranges(name):
    ranges = {p.name: p for p in SPACES[name]}
    for config in sample(name, 25):
        for key, p in ranges.items():
            value = config[key]
            if p.choices is not None:
                assert value in p.choices
            else:
                assert p.low <= value <= p.high, (key, value)
        learner_name, static, hp_kw = config_to_args(config)
        learner = make_learner(learner_name, 12, **static)
        hp = make_hparams(**hp_kw)
        jax.eval_shape(learner.init, jax.random.PRNGKey(0), hp)
        assert learner.name == name


def test_step_sizes_are_searched_on_a_log_scale():
    alphas = sorted(c["alpha"] for c in sample("columnar", 200))
    below = sum(a < 1e-3 for a in alphas)
    # Log-uniform on [1e-4, 3e-2]: P(alpha < 1e-3) = log(10)/log(300), about 0.40.
    assert 0.28 < below / len(alphas) < 0.52


@pytest.mark.parametrize("name", ["columnar", "constructive", "hybrid", "snap1", "tbptt", "rtrl"])
def test_budget_sizes_every_learner_to_the_largest_that_fits(name):
    budget = 20_000.0
    for config in sample(name, 12, budget=budget):
        learner_name, static, _ = config_to_args(config)
        learner = make_learner(learner_name, 12, **static)
        entry = cost(learner_name, 12, learner.settings)
        assert entry.flops <= budget
        bigger = dict(static)
        bigger["n_features"] += static.get("per_stage", 1)
        larger = make_learner(learner_name, 12, **bigger)
        assert cost(learner_name, 12, larger.settings).flops > budget


def test_describe_and_bad_input():
    lines = describe("hybrid")
    assert any(line.startswith("alpha float [0.0001, 0.03] log") for line in lines)
    assert any(line.startswith("per_stage in {1, 2, 4, 8}") for line in lines)
    with pytest.raises(ValueError, match="unknown space 'gru'; allowed: linear, columnar"):
        make_space("gru")
    with pytest.raises(ValueError, match="below the smallest tbptt network"):
        make_space("tbptt", budget_flops=50.0)
    with pytest.raises(ValueError, match="does not apply to the linear space"):
        make_space("linear", budget_flops=1e4)
