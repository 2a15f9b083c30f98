"""What a comparison's stages share: whether a stage is new, done or interrupted, and whether
what was recorded under its name is what the command now asks for (a stage is what its
options make it: ``stage_options``, ``check_stage``), each family's pick among tuning runs
and the fresh seeds to run it on, one stage run as a planned launch, and the report at the
end. ``study.compare`` (a search per family, then an
evaluation) and ``study.compare.preset`` (a published protocol as a grid) are made of these."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any

from study.orchestration.execute import execute
from study.orchestration.plan import Plan, evaluation_plan
from study.present.words import too_short
from study.tasks import find_task

EVAL_SEED_BASE = 1000  # evaluation seeds start here, or after the largest tuning seed
# Set by the evaluation itself, not taken from the tuning trial's configuration.
PER_STUDY = ("task", "seeds", "steps", "chunk_steps", "block", "window", "role")
# On a stage's launch (its parent run): the options that define it, as JSON.
STAGE_TAG = "ccn.stage"
# Each recorded option, and the command-line options that set it (for the refusal).
SET_BY = {
    "task": "--task or --preset",
    "steps": "--scale or --steps",
    "block": "the task",
    "window": "the task",
    "seeds": "--seeds",
    "configurations": "--spaces, --update-rule, --budget-flops or the preset's grid",
    "search": "--set, --range or --budget-flops",
    "trials": "--trials",
    "fresh seeds": "--eval-seeds",
    "picked from": "the stages before it",
    "racing": "--racing",
    "round": "--racing",
}
# Keys not to derive from the runs of a stage recorded before stages carried their options.
_LEGACY = ("task", "steps", "seeds")


def seeds_text(seeds: list[int] | tuple[int, ...]) -> str:
    """``0-4`` for a run of consecutive seeds, else ``0,2,7``."""
    seeds = sorted(seeds)
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def fresh_text(fresh: int | list[int]) -> str:
    """``--eval-seeds`` as a stage records it: a count as typed, a list as ``seeds_text``."""
    return str(fresh) if isinstance(fresh, int) else seeds_text(fresh)


def digest(configs: list[dict[str, Any]]) -> str:
    """A short fingerprint of a list of configurations, whatever their order."""
    text = json.dumps(sorted(json.dumps(c, sort_keys=True, default=str) for c in configs))
    return f"{len(configs)} ({hashlib.sha256(text.encode()).hexdigest()[:12]})"


def stage_options(plan: Plan, **more: Any) -> dict[str, str]:
    """The options that make a stage what it is: the task, the steps and the measure's
    window, and ``more`` (its seeds, its configurations' digest, what it picks from...);
    never where or how fast it runs (concurrency, packs, stores, cluster)."""
    out = {"task": plan.task, "steps": f"{plan.steps:,}", "block": f"{plan.block:,}",
           "window": f"{plan.window:,}"}  # fmt: skip
    out.update({k: str(v) for k, v in more.items()})
    return out


def _recorded(store: Any, last: Any) -> dict[str, str] | None:
    """The options a stage's latest launch recorded; for one recorded before stages carried
    them, what its runs show (task, steps, seeds); None when nothing shows."""
    if STAGE_TAG in last.data.tags:
        return json.loads(last.data.tags[STAGE_TAG])
    from study.records.tags import CONFIG_TAG

    runs = store.children(last, limit=1)
    if not runs or CONFIG_TAG not in runs[0].data.tags:
        return None
    config = json.loads(runs[0].data.tags[CONFIG_TAG])
    seeds = [int(v) for v in runs[0].data.tags.get("seeds", "").split(",") if v]
    return {"task": str(config.get("task", "")), "steps": f"{int(config.get('steps', 0)):,}",
            "seeds": seeds_text(seeds)}  # fmt: skip


def check_stage(tracking_uri: str, experiment: str, options: dict[str, str]) -> None:
    """Refuse, in one ValueError line, a stage whose latest launch recorded other options
    than ``options``: naming each option that differs (recorded, then now), what sets it,
    and how to start anew or report the recorded run. A new stage passes."""
    from study.cli import redact
    from study.records.store import Store

    store = Store(tracking_uri)
    last = store.latest_launch(experiment)
    if last is None:
        return
    recorded = _recorded(store, last)
    if recorded is None:
        return
    tagged = STAGE_TAG in last.data.tags
    keys = [k for k in options if k in recorded or tagged]
    differ = [k for k in keys if k != "command" and recorded.get(k) != options[k]]
    if not differ:
        return
    what = "; ".join(f"{k} {recorded.get(k, '(none)')} there, {options[k]} now "
                     f"({SET_BY.get(k, k)})" for k in differ)  # fmt: skip
    made = recorded.get("command")
    raise ValueError(f"stage {experiment!r} was recorded with other options: {what}; it stays "
                     f"as it is: give another --name (or --runs-dir) to run these options"
                     + (f", or repeat its command to report it: {redact(made)}" if made
                        else ""))  # fmt: skip


def stage_state(tracking_uri: str, experiment: str) -> str:
    """``new`` (never launched), ``done`` (its latest launch finished) or ``interrupted``
    (its latest launch still marked running, stopped with Ctrl+C, or failed: ``--resume``
    continues it)."""
    from study.records.store import Store

    last = Store(tracking_uri).latest_launch(experiment)
    if last is None:
        return "new"
    return "done" if last.info.status == "FINISHED" else "interrupted"


def running_refusal(runs, studies: list[str]) -> str | None:
    """The refusal when one of ``studies`` is running now (``study.orchestration.lock``), else
    None."""
    from study.orchestration.lock import holder

    for study in studies:
        if who := holder(runs, study):
            return f"study {study!r} is running: {who}; wait for it to finish"
    return None


def eval_seeds(text: str, tuning: int) -> int | list[int]:
    """``--eval-seeds`` as typed: a count (the seeds are chosen after the tuning seeds at run
    time) or an explicit list (``FIRST-LAST`` or ``A,B,C``) disjoint from the tuning seeds
    ``0..tuning-1``. Raises a one-line ValueError."""
    form = "a count, FIRST-LAST or A,B,C"
    word = str(text).strip()
    try:
        if "-" in word.lstrip("-"):
            first, _, last = word.partition("-")
            seeds: int | list[int] = list(range(int(first), int(last) + 1))
        elif "," in word:
            seeds = [int(v) for v in word.split(",") if v.strip()]
        else:
            seeds = int(word)
    except ValueError:
        raise ValueError(f"--eval-seeds {text!r}: allowed: {form}") from None
    n = seeds if isinstance(seeds, int) else len(seeds)
    if n < 2 or n > 4096:
        raise ValueError(f"--eval-seeds {text}: {n} fresh seed(s); allowed: 2 to 4096 (an "
                         f"interval needs at least 2)")  # fmt: skip
    if isinstance(seeds, list):
        if len(set(seeds)) < len(seeds) or min(seeds) < 0 or max(seeds) >= 2**31:
            raise ValueError(f"--eval-seeds {text}: allowed: distinct seeds from 0 to 2^31-1")
        if min(seeds) < tuning:
            raise ValueError(f"--eval-seeds {text} overlaps the tuning seeds 0-{tuning - 1}; "
                             f"allowed: seeds from {tuning} on")  # fmt: skip
    return seeds


def picks(tracking_uri: str, experiments: list[str], task: str, fresh: int | list[int]):
    """Each family's pick among the tuning runs of ``experiments``, as its trial ran it (the
    ``ccn.config`` tag of the finished child run with the best final value of the objective:
    the lowest windowed MSRE, or the highest held-out accuracy on sequential MNIST; the run
    the report calls best), and the fresh seeds to run them on: the ``fresh`` list, or
    ``fresh`` seeds from ``EVAL_SEED_BASE`` on or after the largest seed any tuning run used
    (their ``seeds`` tags). Raises a one-line ValueError when no family has a finished run or
    a listed seed was used in tuning."""
    from study.engine.kinds import kind_of
    from study.records.store import Store
    from study.records.tags import CONFIG_TAG, STATUS_TAG

    store = Store(tracking_uri)
    kind = kind_of(task)
    final, pick = kind.final, max if kind.higher_better else min
    best: dict[str, Any] = {}
    families: list[str] = []
    used = {-1}
    for study in experiments:
        for r in store.trials(store.experiment(study).experiment_id):
            used.update(int(s) for s in r.data.tags.get("seeds", "").split(",") if s)
            learner = r.data.tags.get("learner", "?")
            families += [learner] if learner not in families else []
            if (
                r.data.tags.get(STATUS_TAG) == "finished"
                and CONFIG_TAG in r.data.tags
                and math.isfinite(r.data.metrics.get(final, math.inf))
            ):
                best[learner] = pick([r, *([best[learner]] if learner in best else [])],
                                     key=lambda r: r.data.metrics[final])  # fmt: skip
    for learner in families:
        if learner not in best:
            print(f"{learner}: no trial finished with a finite error; the family is left out")
    if not best:
        raise ValueError(f"no tuning study of {', '.join(experiments)} has a finished trial")
    configs = [
        {k: v for k, v in json.loads(best[f].data.tags[CONFIG_TAG]).items() if k not in PER_STUDY}
        for f in families
        if f in best
    ]
    if isinstance(fresh, list):
        if overlap := sorted(used & set(fresh)):
            raise ValueError(f"--eval-seeds: seed {overlap[0]} was a tuning seed; allowed: "
                             f"seeds after {max(used)}")  # fmt: skip
        return configs, fresh
    start = max(EVAL_SEED_BASE, max(used) + 1)
    return configs, list(range(start, start + fresh))


def run_stage(plan: Plan, configs: list[dict[str, Any]], seeds: list[int], role: str,
              resume: bool, command: str,
              options: dict[str, str] | None = None) -> int:  # fmt: skip
    """One launch of ``plan`` evaluating ``configs`` on ``seeds``, its runs tagged
    ``ccn.role=role`` (``study.orchestration.execute``), its launch recording ``options``
    (``stage_options``) and ``command``."""
    stage = json.dumps({**(options or {}), "command": command}) if options else ""
    planned = evaluation_plan(plan, configs, list(seeds), role, plan.name)
    return execute(dataclasses.replace(planned, resume=resume, command=command, stage=stage))


def report(plan: Plan, experiments: list[str], n_resamples: int, claims: tuple = (),
           claims_text: str = "", *, margin: float | None = None, looks: int = 1,
           notes: list[str] | None = None, folder: str | None = None) -> int:  # fmt: skip
    """The report of the evaluation (first) and tuning experiments in ``reports/FOLDER``
    (default the first experiment's name less ``-fresh``); a preset's orderings judged on the
    fresh seeds (``claims``: ``study.report.claims.Claim``; ``claims_text``: what the paper
    reports; ``margin`` and ``looks``: ``study.verdicts``), written to ``orderings.txt`` and
    printed; ``notes``: lines on the selection (pick stability), on the page and printed."""
    from study.report import make_report, table_text
    from study.verdicts import MARGIN

    out = plan.runs / "reports" / (folder or experiments[0].removesuffix("-fresh"))
    heading = (f"The paper's orderings at this scale ({claims_text}, in the paper), judged "
               f"on the fresh seeds" if claims else "")  # fmt: skip
    result = make_report(plan.tracking_uri, experiments, out, claims=claims,
                         claims_heading=heading, n_resamples=n_resamples,
                         command=plan.command, margin=MARGIN if margin is None else margin,
                         looks=looks, notes=notes or [])  # fmt: skip
    print("\n" + table_text(result["summary"], result["measure"].measure))
    if any(r.get("learned") == "NO" for r in result["summary"]):
        if short := too_short(plan.steps, find_task(plan.task).learns_in):
            print(f"learned NO{short}")
    if notes:
        print("\nSelection on the tuning seeds:\n" + "\n".join(f"- {line}" for line in notes))
    if result["judged"]:
        text = "\n".join([heading + ":", *(f"- {j.claim}: {j.verdict} ({j.evidence})"
                                           for j in result["judged"]),
                          result["method"]])  # fmt: skip
        (out / "orderings.txt").write_text(text + "\n")
        print("\n" + text)
    print(f"\nreport: {out / 'report.html'}")
    from study.records.store import Store
    from study.records.view import browse_hint

    evaluation = Store(plan.tracking_uri).experiment(experiments[0])
    if evaluation is not None:  # its runs sorted by result, each by name
        print(browse_hint(plan.tracking_uri, evaluation.experiment_id))
    return 0
