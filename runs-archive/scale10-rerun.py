"""Re-run two fresh-seed trials of the raced scale-10 run whose seeds stopped early: a trial
stopped every seed of a pick when one diverged (an evaluation now runs its other seeds to the
end). Columnar's round 2 (seeds 1020-1039; its first run also hit the kernel's cross-stream
NaN) and SnAp-1's round 1 (seeds 1000-1019). The runs replaced are kept, soft-deleted
(MLflow's deleted lifecycle, restorable) and tagged with why."""

import dataclasses
import json
import sys

from study import api
from study.records.store import Store

URI = "sqlite:///runs/mlflow.db"
WHY = (
    "stopped every seed where one diverged (an evaluation now runs its other seeds to the "
    "end, commit {commit}); re-run on the same seeds by the launch after this one"
)
store = Store(URI)


def rerun(name: str, learner: str, commit: str) -> int:
    exp = store.experiment(name)
    old = [r for r in store.trials(exp.experiment_id) if r.data.tags.get("learner") == learner]
    assert len(old) == 1, old
    old = old[0]
    launch = store.client.get_run(old.data.tags["mlflow.parentRunId"])
    stage = launch.data.tags.get("ccn.stage")
    if stage is None:  # the re-run of the first script: its launch copied the stage
        raise SystemExit(f"{name}: no stage options on its launch")
    config = json.loads(old.data.tags["ccn.config"])
    keep = (
        "learner",
        "alpha",
        "lambda_",
        "n_features",
        "norm_rate",
        "update_rule",
        "truncation",
        "per_stage",
        "steps_per_stage",
    )
    pick = {k: config[k] for k in keep if k in config}
    seeds = [int(s) for s in old.data.tags["seeds"].split(",")]
    plan = api.plan_study(
        learner, "trace_patterning", steps=config["steps"], runs_dir="runs", concurrency=1
    )
    plan = dataclasses.replace(
        plan,
        chunk=config["chunk_steps"],
        min_report_s=config["report_min_s"],
        stage=stage,
        command=json.loads(stage)["command"],
    )
    plan = api.evaluation(plan, [pick], seeds, role="eval", name=name)
    store.client.set_tag(old.info.run_id, "ccn.invalidated", WHY.format(commit=commit))
    store.client.delete_run(old.info.run_id)
    print(f"{name}: re-running {pick} on seeds {seeds[0]}-{seeds[-1]}", flush=True)
    return api.run_study(plan)


commit = sys.argv[1]
rc = rerun("jmlr-trace-patterning-race-fresh2", "columnar", commit)
rc = rc or rerun("jmlr-trace-patterning-race-fresh", "snap1", commit)
sys.exit(rc)
