"""Online recurrent learners in JAX: ``make_learner(name, n_inputs, ...)`` builds one by name.

No learner imports Ray, Optuna or MLflow; see ``learners.api`` for the interface.
"""

from __future__ import annotations

from learners.api import DEFAULTS, STAGE_FOREVER, HParams, Learner, make_hparams, stage_steps
from learners.dense import rtrl, snap1
from learners.families import FAMILIES, ORDER, Family
from learners.linear import linear
from learners.registry import config_to_args, family
from learners.staged import columnar, constructive, hybrid, staged
from learners.tbptt import tbptt

LEARNERS: dict[str, str] = {name: f.about for name, f in FAMILIES.items()}
# The paper's sizes (12 inputs): columnar 7, constructive 10:1, CCN 20:4, T-BPTT's 5:8 pair.
DEFAULT_SIZES: dict[str, dict[str, int]] = {name: f.sizes for name, f in FAMILIES.items()}
# Each family's defaults over ``learners.api.DEFAULTS``: what ``study.run --learner X`` uses
# and what every study tries first. Chosen by measurement (README, "Defaults that learn";
# ``python -m study.defaults`` reproduces the table).
FAMILY_DEFAULTS: dict[str, dict[str, float]] = {name: f.defaults for name, f in FAMILIES.items()}


def make_learner(
    name: str,
    n_inputs: int,
    *,
    n_features: int | None = None,
    per_stage: int | None = None,
    truncation: int | None = None,
    layers: int | None = None,
    rmsprop: bool = True,
    n_classes: int = 0,
) -> Learner:
    """Build a learner by name (``learners.families``). Sizes default to the paper's:
    columnar 7, constructive 10, hybrid 20 features in stages of 4; SnAp-1 8 and RTRL 4
    hidden units; T-BPTT 8 units with truncation 5 (the paper's 5:8 pair). A size the family
    does not have is refused. ``n_classes > 0`` makes it a classifier (``learners.readout``)."""
    fam = family(name)
    given = dict(n_features=n_features, per_stage=per_stage, truncation=truncation, layers=layers)
    for key, value in given.items():
        if value is not None and key not in fam.sizes:
            owners = [f for f, rec in FAMILIES.items() if key in rec.sizes]
            if len(owners) == 1:
                raise ValueError(f"{key}={value} applies to the {owners[0]} learner only, not "
                                 f"{name}")  # fmt: skip
            raise ValueError(f"{key}={value} does not apply to the {name} learner")
    size = {**fam.sizes, **{k: v for k, v in given.items() if v is not None}}
    return fam.build(n_inputs, size, rmsprop=rmsprop, n_classes=n_classes)


def family_defaults(name: str) -> dict[str, float]:
    """The hyperparameters family ``name`` runs with unless told otherwise (every field of
    ``HParams`` but ``gamma``, which is the task's, and ``steps_per_stage``)."""
    return family(name).hparams()


def num_stages(learner: Learner) -> int:
    """How many stages the learner's network has (1 for learners without stages), from its
    settings (also for learners no family builds, as ``learners.autodiff``'s)."""
    s = learner.settings
    if "per_stage" not in s:
        return 1
    return s["n_features"] // s["per_stage"]


__all__ = [
    "DEFAULTS",
    "DEFAULT_SIZES",
    "FAMILIES",
    "ORDER",
    "Family",
    "family",
    "FAMILY_DEFAULTS",
    "LEARNERS",
    "STAGE_FOREVER",
    "HParams",
    "Learner",
    "columnar",
    "config_to_args",
    "constructive",
    "family_defaults",
    "hybrid",
    "linear",
    "make_hparams",
    "make_learner",
    "num_stages",
    "rtrl",
    "snap1",
    "stage_steps",
    "staged",
    "tbptt",
]
