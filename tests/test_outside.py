"""A learner family from the user's own package (``learners.registry``): found by
``module:FAMILY`` and by its entry point, costed by its own declared formula (held to what
XLA counts), and run by ``study.run`` and ``study.compare`` (its tuning study, the evaluation
on fresh seeds and the report) at matched compute like a built-in. The package is
``tests/outside/ccn_toy``, installed for these tests by putting its folder, which holds its
dist-info and entry point, on the path."""

from __future__ import annotations

import csv
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

OUTSIDE = Path(__file__).resolve().parent / "outside"


@pytest.fixture
def installed(monkeypatch):
    """The toy package importable and its entry point visible, here and in the processes
    this test starts; what the tests register is forgotten afterwards."""
    from learners import registry

    monkeypatch.syspath_prepend(str(OUTSIDE))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(OUTSIDE), *filter(None, [os.environ.get("PYTHONPATH")])]))  # fmt: skip
    monkeypatch.setenv(registry.OUTSIDE_ENV, "")
    monkeypatch.setattr(registry, "OUTSIDE", {})
    return registry


def test_an_outside_family_is_found_by_spec_and_by_its_entry_point(installed):
    registry = installed
    fam = registry.family("ema_td")  # the entry point ccn_study.learners: ema_td
    assert fam.name == "ema_td" and fam.sizes == {"n_features": 3}
    assert registry.family("ccn_toy:FAMILY") is fam
    assert registry.resolve("ccn_toy:FAMILY") == "ema_td"
    assert "ccn_toy:FAMILY" in os.environ[registry.OUTSIDE_ENV]  # what its processes load
    from learners import make_learner
    from search_spaces import make_space

    learner = make_learner("ema_td", 12, n_features=5)
    assert learner.n_params == registry.cost("ema_td", 12, learner.settings).params == 6 * 12 + 1
    space = make_space("ema_td", 14932.0, 12)  # sized to the CCN 20:4's flops
    assert space.budget_flops == 14932.0 and [p.name for p in space.params] == ["alpha", "lambda_"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope_pkg:FAMILY", r"^learner 'nope_pkg:FAMILY': cannot import nope_pkg "),
        ("ccn_toy:NOTHING", r"^learner 'ccn_toy:NOTHING': ccn_toy has no NOTHING$"),
        ("ccn_toy:cost", r"^learner 'ccn_toy:cost': cost is a function, not a learners"),
        ("ccn_toy", r"^unknown learner 'ccn_toy'; allowed: columnar, "),
    ],
)
def test_a_bad_spec_is_refused_in_one_line(installed, spec, message):
    with pytest.raises(ValueError, match=message):
        installed.family(spec)


def test_an_outside_family_cannot_take_a_built_in_name_or_lack_a_space(installed, tmp_path):
    import ccn_toy

    (tmp_path / "clash.py").write_text(
        "import dataclasses, ccn_toy\n"
        "FAMILY = dataclasses.replace(ccn_toy.FAMILY, name='columnar')\n"
        "BARE = dataclasses.replace(ccn_toy.FAMILY, name='bare', space=())\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(ValueError, match="'columnar' is a built-in family's name"):
            installed.family("clash:FAMILY")
        from search_spaces import make_space

        installed.family("clash:BARE")
        with pytest.raises(ValueError, match="^--space bare: the family gives no search space"):
            make_space("bare")
    finally:
        sys.path.remove(str(tmp_path))
    assert ccn_toy.FAMILY.name == "ema_td"


def test_the_declared_cost_is_held_to_what_xla_counts(installed):
    """The toy's hand count is within 1.5x of XLA's at two sizes; the same family declaring
    ten times its cost is refused, naming the field to fix."""
    import ccn_toy

    for size in (3, 12):
        assert 1 / 1.5 <= installed.check_cost("ema_td", 12, {"n_features": size}) <= 1.5
    inflated = dataclasses.replace(
        ccn_toy.FAMILY, name="ema_td_x10",
        cost=lambda m, s, rms: (lambda c, f, e: (dataclasses.replace(c, flops=10 * c.flops), f,
                                                 e))(*ccn_toy.cost(m, s, rms)),
    )  # fmt: skip
    installed.OUTSIDE["ema_td_x10"] = inflated
    with pytest.raises(ValueError, match=r"declared cost is \d+\.\dx above .*Family\.cost"):
        installed.check_cost("ema_td_x10")


@pytest.mark.xdist_group("ray-cli")
def test_an_outside_family_runs_and_is_compared_at_matched_compute(installed, tmp_path):
    """``study.run --learner ema_td`` (its entry point), and ``study.compare --spaces
    linear,ccn_toy:FAMILY --smoke``: a tuning study per family (the toy's trials run in Ray's
    worker processes, which find it by name), the picks on fresh seeds, the report, the toy
    sized to the CCN 20:4's flops by its own cost."""
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    run = subprocess.run([sys.executable, "-m", "study.run", "--learner", "ema_td", "--task",
                          "trace_conditioning", "--steps", "20000", "--seeds", "2"],
                         cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=900)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "learner ema_td {" in run.stdout and "'n_features': 3" in run.stdout, run.stdout
    assert "(95% CI over 2 seeds; 1 = the best constant predictor's)" in run.stdout
    argv = ["--spaces", "linear,ccn_toy:FAMILY", "--smoke", "--name", "toy", "--concurrency",
            "1", "--reuse-actors", "--trials", "3", "--eval-seeds", "5"]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "study.compare", *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1500)  # fmt: skip
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    with open(tmp_path / "runs" / "reports" / "toy" / "summary.csv") as f:
        rows = {r["learner"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"linear", "ema_td"}
    toy = rows["ema_td"]
    assert int(toy["seeds"]) == 5 and "n_features=71" in toy["configuration"]
    # sized to the budget by its declared cost: the largest K within 14,932 flops per step
    from learners.registry import cost, family

    fam = family("ema_td")
    fits = [k for k in range(1, 200) if cost("ema_td", 12, {"n_features": k}).flops <= 14932]
    assert fam.name == "ema_td" and max(fits) == 71 and int(toy["flops_per_step"]) <= 14932
