"""Search spaces sample valid learners; with a budget every learner fits it and is the largest
that does."""

from __future__ import annotations

import jax
import optuna
import pytest

from learners import DEFAULT_SIZES, FAMILIES, family_defaults, make_hparams, make_learner
from learners.registry import config_to_args, cost
from search_spaces import SPACES, describe, make_space

optuna.logging.set_verbosity(optuna.logging.WARNING)


def sample(name, n, budget=None, seed=0):
    return sample_space(make_space(name, budget), n, seed)


@pytest.mark.parametrize("name", list(SPACES))
def test_every_space_samples_buildable_learners_within_ranges(name):
    ranges = {p.name: p for p in SPACES[name]}
    for config in sample(name, 25):
        for key, p in ranges.items():
            if p.only_if is not None and not config[p.only_if]:
                assert key not in config  # a conditional parameter is not sampled
                continue
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


@pytest.mark.parametrize("name", [n for n, f in FAMILIES.items() if f.grow is not None])
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
    assert any(line.startswith("per_stage in {2, 4, 8}") for line in lines)
    with pytest.raises(ValueError, match="unknown space 'gru'; allowed: linear, columnar"):
        make_space("gru")
    with pytest.raises(ValueError, match="below the smallest tbptt network"):
        make_space("tbptt", budget_flops=50.0)
    with pytest.raises(ValueError, match="does not apply to the linear space"):
        make_space("linear", budget_flops=1e4)


def sample_space(space, n, seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    configs = []
    for _ in range(n):
        trial = study.ask()
        constants = space(trial)
        configs.append({**trial.params, **constants})
        study.tell(trial, 0.0)
    return configs


def test_fixed_parameters_leave_the_search_and_ranges_replace_bounds():
    space = make_space(
        "hybrid", fixed={"per_stage": 2, "rmsprop": False}, ranges={"alpha": (0.5, 2.0)}
    )
    configs = sample_space(space, 40)
    assert all(c["per_stage"] == 2 and c["rmsprop"] is False for c in configs)
    assert all(c["n_features"] == 2 * c["n_stages"] for c in configs)
    alphas = [c["alpha"] for c in configs]
    assert min(alphas) >= 0.5 and max(alphas) <= 2.0
    assert max(alphas) / min(alphas) > 2.0  # still searched over the new range
    names = {p.name for p in space.params}
    assert "per_stage" not in names and "alpha" in names
    # An integer size with a new range samples integers inside it.
    sizes = {
        c["n_features"]
        for c in sample_space(make_space("columnar", ranges={"n_features": (3, 5)}), 30)
    }
    assert sizes == {3, 4, 5}


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(fixed={"gamma": 0.5}), "unknown parameter 'gamma' of space columnar; allowed: alpha"),
        (dict(ranges={"alpha": (1e-2, 1e-3)}), "range alpha=0.01:0.001 is not allowed"),
        (dict(ranges={"alpha": (0.0, 1e-3)}), "LOW > 0"),
        (dict(ranges={"lambda_": (0.5, 0.9)}), "--range lambda_: a choice of {0.0, 0.5, 0.9"),
        (dict(ranges={"n_features": (2.5, 8)}), "must be integers"),
        (dict(fixed={"lambda_": 2.0}), "lambda_=2.0 must be a finite number within [0, 1]"),
        (dict(fixed={"alpha": float("inf")}), "alpha=inf must be a finite number"),
        (
            dict(fixed={"norm_floor": 0.0}),
            "norm_floor=0.0 must be a finite number within [0, 1], above 0",
        ),
        (dict(fixed={"rmsprop": "no"}), "rmsprop='no' must be true or false"),
        (dict(fixed={"n_features": 0}), "n_features=0 must be an integer >= 1"),
        (dict(fixed={"alpha": 1e-3}, ranges={"alpha": (1e-4, 1e-2)}), "either fixed or ranged"),
        (dict(fixed={"n_features": 4}, budget_flops=1e4), "set by --budget-flops"),
    ],
)
def test_bad_fixed_values_and_ranges_are_one_line_errors(kwargs, needle):
    with pytest.raises(ValueError) as info:
        make_space("columnar", **kwargs)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_choice_cannot_take_a_range():
    with pytest.raises(ValueError, match="--range per_stage: a choice of"):
        make_space("hybrid", ranges={"per_stage": (1, 4)})
    with pytest.raises(ValueError, match=r"per_stage=3 is not one of \{2, 4, 8\}"):
        make_space("hybrid", fixed={"per_stage": 3})


@pytest.mark.parametrize("name", ["constructive", "hybrid"])
def test_staged_spaces_grow_every_stage_within_the_run(name):
    """Catches a stage length sampled regardless of the run (a network that never grows its
    later stages): with ``steps`` known, the last stage starts inside the run, at the sampled
    ``last_stage_at`` fraction of it."""
    steps = 200_000
    configs = sample_space(make_space(name, steps=steps), 40)
    for c in configs:
        _, static, hp = config_to_args({**c, "steps": steps})
        stages = static["n_features"] // static.get("per_stage", 1)
        if stages == 1:
            continue
        last_start = (stages - 1) * hp["steps_per_stage"]
        assert last_start < steps, c
        assert abs(last_start - c["last_stage_at"] * steps) <= stages, c
    # the same rule after sizing by a budget
    for c in sample_space(make_space(name, budget_flops=20_000.0, steps=steps), 10):
        _, static, hp = config_to_args({**c, "steps": steps})
        stages = static["n_features"] // static.get("per_stage", 1)
        assert stages == 1 or (stages - 1) * hp["steps_per_stage"] < steps


def test_an_absolute_stage_length_is_still_available_and_checked_against_the_run():
    space = make_space("hybrid", fixed={"steps_per_stage": 50_000}, steps=200_000)
    assert "last_stage_at" not in {p.name for p in space.params}
    assert {c["steps_per_stage"] for c in sample_space(space, 5)} == {50_000}
    with pytest.raises(ValueError, match=r"steps_per_stage=200000 does not fit a run of 200000"):
        make_space("hybrid", fixed={"steps_per_stage": 200_000}, steps=200_000)
    with pytest.raises(ValueError, match="unknown parameter 'steps_per_stage' of space snap1"):
        make_space("snap1", fixed={"steps_per_stage": 10})


@pytest.mark.parametrize("name", list(SPACES))
def test_the_first_point_is_the_family_defaults(name):
    """Catches a study whose first trial is not the family's defaults (the point a study must
    at least match): the point lies in the space and maps back to those hyperparameters."""
    space = make_space(name, steps=1_000_000)
    point = space.first_point()
    assert point is not None
    params = {p.name: p for p in space.params}
    assert set(point) <= set(params)
    _, static, hp = config_to_args({"learner": name, **point, "steps": 1_000_000})
    want = family_defaults(name)
    for key in ("alpha", "lambda_", "norm_rate", "init_scale"):
        if key in hp and key in point:
            assert hp[key] == want[key]
    assert {k: v for k, v in static.items()} == {
        k: v for k, v in DEFAULT_SIZES[name].items() if k in static
    }
    # A range that excludes a default drops the point rather than leaving the range.
    assert make_space(name, ranges={"alpha": (0.5, 0.9)}).first_point() is None


def test_every_parameter_a_space_samples_reaches_the_learner_or_its_run():
    """A parameter added to a space but read by nothing would be sampled and logged while the
    trial ignores it: every sampled name must be a shape setting of the family
    (learners.families.SHAPE_KEYS), a field of HParams, or one that config_to_args turns into
    those (n_stages, last_stage_at)."""
    from learners import HParams
    from learners.families import SHAPE_KEYS

    derived = {"n_stages", "last_stage_at"}
    for name, params in SPACES.items():
        for p in params:
            assert p.name in {*SHAPE_KEYS, *HParams._fields, *derived}, (name, p.name)
        # and a change of each numeric one changes what config_to_args returns
        point = make_space(name, None, 7, steps=1_000_000).first_point() or {}
        base = config_to_args({"learner": name, "steps": 1_000_000, **point})
        for p in params:
            if p.name not in point or isinstance(point[p.name], bool):
                continue
            if p.name == "n_stages":
                continue  # read through per_stage x n_stages: covered by the sizes test
            values = p.choices or (p.low, p.high)
            value = next(v for v in values if v != point[p.name])
            other = dict(point, **{p.name: int(value) if p.integer else value})
            assert config_to_args({"learner": name, "steps": 1_000_000, **other}) != base, (
                name,
                p.name,
            )
