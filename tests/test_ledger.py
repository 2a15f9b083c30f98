"""The compute ledger agrees with the learners it describes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learners import FAMILIES, family_defaults, make_hparams, make_learner
from learners.ledger import tbptt_cost, tbptt_reference_flops
from learners.registry import cost, size_for_budget

CONFIGS = [
    ("linear", {}),
    ("columnar", dict(n_features=7)),
    ("constructive", dict(n_features=5)),
    ("hybrid", dict(n_features=12, per_stage=4)),
    ("snap1", dict(n_features=6)),
    ("rtrl", dict(n_features=3)),
    ("tbptt", dict(n_features=5, truncation=8)),
    ("uoro", dict(n_features=5)),
    ("rtu", dict(n_features=6)),
    ("rtu_linear", dict(n_features=6)),
    ("lru", dict(n_features=5)),
    ("lru", dict(n_features=5, layers=3)),
]


@pytest.mark.parametrize("n_classes", [0, 10])
@pytest.mark.parametrize("name,kw", CONFIGS)
def test_ledger_params_and_state_bytes_match_the_learner(name, kw, n_classes):
    learner = make_learner(name, 12, n_classes=n_classes, **kw)
    entry = cost(name, 12, learner.settings)
    assert entry.params == learner.n_params
    shapes = jax.eval_shape(learner.init, jax.random.PRNGKey(0), make_hparams())
    nbytes = sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(shapes))
    assert entry.state_bytes == nbytes
    if n_classes:
        # The readout's shapes are what the parameter count says: W [C, F] and b [C].
        F = shapes.w.shape[-1]
        assert shapes.w.shape == (n_classes, F) and shapes.b.shape == (n_classes,)
        assert learner.n_params == cost(name, 12, {**learner.settings, "n_classes": 0}).params + (
            n_classes - 1
        ) * (F + 1)


def test_classifier_traces_do_not_grow_with_the_classes():
    """Flops per step of a CCN classifier: the traces are shared by the classes, so going
    from 2 to 20 classes adds only readout work (a few flops per readout weight)."""
    s = dict(n_features=20, per_stage=4)
    few, many = (cost("hybrid", 28, {**s, "n_classes": c}) for c in (2, 20))
    # per extra class (F = 20 features): logits 2F, W^T dlogits 2F, outer product F, softmax
    # cross-entropy 5, and the descent of its F + 1 readout weights with RMSProp, 10 each
    F = 20
    assert many.flops - few.flops == 18 * (5 * F + 5 + 10 * (F + 1))
    assert many.flops - few.flops < 0.5 * few.flops


def test_ledger_scaling_laws():
    # Columnar flops grow linearly in columns; RTRL's per parameter grow with hidden size;
    # T-BPTT's grow linearly in truncation.
    c = [cost("columnar", 12, dict(n_features=n, per_stage=n)).flops for n in (10, 20, 40)]
    assert c[2] - c[1] == pytest.approx(2 * (c[1] - c[0]), rel=0.01)
    r = [cost("rtrl", 12, dict(n_features=h)) for h in (2, 4, 8)]
    per_param = [e.flops / e.params for e in r]
    assert per_param[2] / per_param[1] > 2.5
    t = [tbptt_cost(12, 5, k).flops for k in (5, 10, 20)]
    assert t[2] - t[1] == pytest.approx(2 * (t[1] - t[0]))


def test_size_for_budget_fits_and_is_largest():
    budget = cost("columnar", 12, dict(n_features=7, per_stage=7)).flops
    assert size_for_budget("columnar", 12, budget) == 7
    cases = [("snap1", {}), ("tbptt", dict(truncation=10)), ("hybrid", dict(per_stage=4)),
             ("lru", dict(layers=3))]  # fmt: skip
    for name, kw in cases:
        n = size_for_budget(name, 12, budget, **kw)
        settings = {"truncation": kw.get("truncation"), "n_features": n,
                    "per_stage": kw.get("per_stage"), "layers": kw.get("layers")}  # fmt: skip
        assert cost(name, 12, settings).flops <= budget
        bigger = dict(settings, n_features=n + (kw.get("per_stage") or 1))
        assert cost(name, 12, bigger).flops > budget
    with pytest.raises(ValueError, match="below the smallest tbptt network"):
        size_for_budget("tbptt", 12, 100.0)


PAPER_PAIRS = [(2, 13), (3, 10), (5, 8), (8, 5), (10, 5), (15, 4), (20, 3), (30, 2)]


def test_reference_model_reproduces_the_paper_pairs_within_one_unit():
    budget = tbptt_reference_flops(12, 8, 5)  # the 5:8 pair's cost
    for k, h in PAPER_PAIRS:
        got = size_for_budget("tbptt", 12, budget, truncation=k, model="reference")
        assert abs(got - h) <= 1, (k, h, got)
    with pytest.raises(ValueError, match="model='reference' exists for tbptt only"):
        size_for_budget("columnar", 12, budget, model="reference")


def test_ledger_flops_linear_in_params_for_snap1_and_ccn():
    for name, sizes in [
        ("snap1", [dict(n_features=h) for h in (8, 32, 128)]),
        ("hybrid", [dict(n_features=n, per_stage=n // 4) for n in (16, 64, 256)]),
        ("columnar", [dict(n_features=n, per_stage=n) for n in (8, 64, 512)]),
    ]:
        per_param = [cost(name, 12, s).flops / cost(name, 12, s).params for s in sizes]
        assert max(per_param) / min(per_param) < 1.35, (name, per_param)
    # RTRL is not: flops per parameter grow with the hidden size.
    r = [cost("rtrl", 12, dict(n_features=h)) for h in (8, 32)]
    assert (r[1].flops / r[1].params) / (r[0].flops / r[0].params) > 3


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(name="tbptt", n_features=4, truncation=0), "truncation=0 must be >= 1"),
        (dict(name="tbptt", n_features=0), "n_features=0 must be >= 1"),
        (dict(name="snap1", n_features=0), "n_features=0 must be >= 1"),
        (dict(name="rtrl", n_features=-1), "n_features=-1 must be >= 1"),
    ],
)
def test_bad_dense_settings_fail_with_one_line(kwargs, needle):
    with pytest.raises(ValueError) as e:
        make_learner(kwargs.pop("name"), 12, **kwargs)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_every_family_is_in_the_registry_once_and_everywhere_that_lists_families():
    """A family is one record (learners.families): the learners, the defaults, the ledger,
    the bench, the reports and the search spaces all know the same names."""
    from learners import DEFAULT_SIZES, FAMILIES, FAMILY_DEFAULTS, LEARNERS, make_learner
    from learners.families import ORDER
    from search_spaces import SPACES
    from study.bench import SIZES

    names = set(FAMILIES)
    assert set(LEARNERS) == set(DEFAULT_SIZES) == set(FAMILY_DEFAULTS) == names
    assert set(SPACES) == names and set(ORDER) == names
    assert set(SIZES) - {"columnar_autodiff"} == names
    for name, fam in FAMILIES.items():
        learner = make_learner(name, 12)
        # the record's default sizes are what the learner is built with
        assert {k: learner.settings[k] for k in fam.sizes} == fam.sizes
        assert cost(name, 12, learner.settings).params == learner.n_params, name


@pytest.mark.parametrize("name", list(FAMILIES))
def test_ledger_flops_follow_what_xla_counts_in_the_compiled_step(name):
    """The ledger counts by hand; XLA's cost analysis counts the compiled step's operations
    (its own conventions: transcendentals apart, fused elementwise work, padding). Measured
    here: XLA / ledger from 0.6 (T-BPTT) to 2.0 (linear, whose step is tiny). The test holds
    each family within a factor 2.5 either way, and, which catches a wrong growth law (a
    ledger term missing a factor of the size), the ratio at 4x the paper's size (and for a
    stacked family at 3 layers) within 35% of the ratio at the paper's size."""
    fam = FAMILIES[name]
    sizes = [fam.sizes]
    if "n_features" in fam.sizes:
        sizes.append({**fam.sizes, "n_features": 4 * fam.sizes["n_features"]})
    if "layers" in fam.sizes:  # and a deeper stack
        sizes.append({**fam.sizes, "layers": 3})
    ratios = []
    for size in sizes:
        learner = make_learner(name, 12, **size)
        hp = make_hparams(**family_defaults(name), steps_per_stage=1000)
        state = learner.init(jax.random.PRNGKey(0), hp)
        compiled = jax.jit(learner.step).lower(state, jnp.zeros(12), jnp.zeros(()), hp).compile()
        analysis = compiled.cost_analysis()
        analysis = analysis[0] if isinstance(analysis, list) else analysis
        ratios.append(analysis["flops"] / cost(name, 12, learner.settings).flops)
    assert all(1 / 2.5 <= r <= 2.5 for r in ratios), ratios
    assert all(1 / 1.35 <= r / ratios[0] <= 1.35 for r in ratios[1:]), ratios
