"""``python -m study.compare --preset atari-prediction``: the learners of the paper on the
Atari prediction benchmark, game by game, then across games.

For each game (every trace found, or ``--games``) the protocol of ``study.compare.preset``: a
grid on the tuning seeds (experiment ``NAME-GAME``), each family's pick on fresh seeds
(``NAME-GAME-fresh``), the game's report (``runs/reports/NAME-GAME``). The grid: columnar 5,
SnAp-1 5, T-BPTT 15:3 and the CCN 20:4 (stages of 50,000 steps), each at about the CCN's
153,796 flops a step on 275 inputs; constructive 10:1 (stages of 25,000 steps) at the
paper's shape, a third of that; step sizes {3e-3, 1e-3, 3e-4} ({3e-4, 1e-4, 3e-5} for
T-BPTT), lambda 0.99, gamma 0.98, no input normalisation; every run the whole stream
(250,000 steps for the published traces). Then the aggregate
(``runs/reports/NAME/``): per family, each game's fresh-seed mean normalised MSRE, and across
games their interquartile mean (and mean) with a 95% percentile-bootstrap interval over
games; ``games.csv``, ``aggregate.csv``, ``summary.md`` and ``games.png``. ``--extend-grid``
extends each game's grid past the edge a pick sits at (as the paper's preset does) and writes
the aggregate of the picks made again to ``runs/reports/NAME-extended``.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from study.cli import fail, markdown_table, provenance
from study.compare.budget import FAMILIES
from study.compare.options import PresetOptions
from study.compare.preset import Preset, default_name, protocol_plan, run_protocol
from study.compare.stages import stage_state

RTRL_ALPHAS = (3e-3, 1e-3, 3e-4)
TBPTT_ALPHAS = (3e-4, 1e-4, 3e-5)
SHAPES = (
    (dict(learner="columnar", n_features=5), RTRL_ALPHAS),
    (dict(learner="constructive", n_features=10, steps_per_stage=25_000), RTRL_ALPHAS),
    (dict(learner="hybrid", n_features=20, per_stage=4, steps_per_stage=50_000), RTRL_ALPHAS),
    (dict(learner="snap1", n_features=5), RTRL_ALPHAS),
    (dict(learner="tbptt", truncation=15, n_features=3), TBPTT_ALPHAS),
)


def atari_preset(task: str, length: int) -> Preset:
    """The grid on one game (``task``, a stream of ``length`` steps)."""
    configs = tuple({**shape, "alpha": a, "lambda_": 0.99, "norm_rate": 0.0}
                    for shape, alphas in SHAPES for a in alphas)  # fmt: skip
    steps = max(20_000, length // 10_000 * 10_000)
    return Preset(task, steps, 5, configs, "", ())


def games(args: PresetOptions) -> list[str]:
    """The tasks of ``--games`` (``Pong,MsPacman`` or ``atari_pong,...``), else every trace
    found; a one-line ValueError for a game without a trace."""
    from study.tasks.atari import PREFIX, find_traces, snake, traces_folder

    folder = traces_folder(args.data_dir)
    found = find_traces(folder)
    if args.games is None:
        if not found:
            raise ValueError(f"--traces-dir {folder}: no traces (<Game>NoFrameskip-v4.txt)")
        return list(found)
    wanted = []
    for text in (g.strip() for g in args.games.split(",")):
        if not text:
            continue
        task = text if text.startswith(PREFIX) else PREFIX + snake(text)
        if task not in found:
            raise ValueError(f"--games {args.games}: no trace for {text!r} in {folder}; found: "
                             f"{', '.join(found) or 'none'}")  # fmt: skip
        wanted.append(task)
    if not wanted:
        raise ValueError(f"--games {args.games!r} names no game")
    return list(dict.fromkeys(wanted))


def run_atari(args: PresetOptions) -> int:
    """Every game's protocol (grid, fresh seeds, report), then the aggregate."""
    from study.tasks import make_env

    base = default_name(args)
    try:  # every game's trace and options checked before any store, replay or Ray
        tasks = games(args)
        lengths = {t: make_env(t, args.data_dir).length for t in tasks}  # from the traces
        for task in tasks:
            protocol_plan(args, atari_preset(task, lengths[task]),
                          f"{base}-{task.removeprefix('atari_')}")  # fmt: skip
    except ValueError as e:
        return fail(str(e))
    uri = (args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
           or f"sqlite:///{Path(args.runs_dir).expanduser().resolve()}/mlflow.db")  # fmt: skip
    print(f"preset atari-prediction: {len(tasks)} games ({', '.join(tasks)})")
    done = []
    for i, task in enumerate(tasks, 1):
        name = f"{base}-{task.removeprefix('atari_')}"
        print(f"\n==== game {i}/{len(tasks)}: {task} ({lengths[task]:,} frames) -> {name}")
        new = all(stage_state(uri, s) == "new" for s in (name, f"{name}-fresh"))
        game_args = dataclasses.replace(args, resume=args.resume and not new)
        rc = run_protocol(game_args, atari_preset(task, lengths[task]), name)
        if rc:
            return rc
        done.append((task, name))
    command = args.command_line
    runs = Path(args.runs_dir).expanduser().resolve()
    rc = aggregate(uri, base, done, runs, args.bootstrap_resamples, command)
    if rc or not args.extend_grid:
        return rc
    return aggregate(uri, base, done, runs, args.bootstrap_resamples, command, extended=True)


def aggregate(uri: str, base: str, done: list[tuple[str, str]], runs: Path, n_resamples: int,
              command: str = "python -m study.compare", extended: bool = False) -> int:  # fmt: skip
    """Per family: each game's fresh-seed mean normalised MSRE, and across games the IQM
    and the mean with 95% percentile-bootstrap intervals over games. ``extended``
    (``--extend-grid``): each game's picks made again among its grid and the step sizes past
    its edges (``NAME-GAME-extended-fresh``, where a pick was at an edge), reported apart in
    ``reports/NAME-extended``."""
    from study.report import make_report
    from study.stats import bootstrap_ci, iqm

    out = runs / "reports" / (f"{base}-extended" if extended else base)
    out.mkdir(parents=True, exist_ok=True)
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for task, name in done:
        studies, folder = [f"{name}-fresh", name], name
        if extended and stage_state(uri, f"{name}-extended-fresh") == "done":
            studies, folder = (
                [f"{name}-extended-fresh", name, f"{name}-extended"],
                f"{name}-extended",
            )
        result = make_report(uri, studies, runs / "reports" / folder,
                             n_resamples=n_resamples, command=command)  # fmt: skip
        for row in result["summary"]:
            table.setdefault(row["learner"], {})[task] = row
    families = [f for f in FAMILIES if f in table]
    tasks = [t for t, _ in done]
    with (out / "games.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["game", "learner", "configuration", "flops_per_step", "seeds", "nmsre_mean",
                    "boot_low", "boot_high", "diverged_seeds"])  # fmt: skip
        for task in tasks:
            for fam in families:
                r = table[fam].get(task)
                if r is not None:
                    w.writerow([task, fam, r["configuration"], r["flops_per_step"], r["seeds"],
                                r["nmsre_mean"], r["boot_low"], r["boot_high"],
                                r.get("diverged_seeds", 0)])  # fmt: skip
    agg = []
    for fam in families:
        values = np.array([table[fam][t]["nmsre_mean"] for t in tasks if t in table[fam]], float)
        if len(values) >= 2:
            q = bootstrap_ci(values, iqm, method="percentile", n_resamples=n_resamples)
            m = bootstrap_ci(values, method="percentile", n_resamples=n_resamples)
        else:
            q = m = None
        agg.append(dict(learner=fam, games=len(values),
                        iqm=float(iqm(values)) if len(values) else math.nan,
                        iqm_low=q.low if q else math.nan, iqm_high=q.high if q else math.nan,
                        mean=float(values.mean()) if len(values) else math.nan,
                        mean_low=m.low if m else math.nan,
                        mean_high=m.high if m else math.nan))  # fmt: skip
    with (out / "aggregate.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(agg[0]))
        w.writeheader()
        w.writerows(agg)
    text = _markdown(tasks, families, table, agg, n_resamples) + "\n" + provenance(command) + "\n"
    (out / "summary.md").write_text(text)
    _figure(tasks, families, table, agg, out / "games.png")
    print("\n" + text)
    print(f"aggregate: {out}")
    return 0


def _cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "-"
    return f"{r['nmsre_mean']:.3f} [{r['boot_low']:.3f}, {r['boot_high']:.3f}]"


def _markdown(tasks, families, table, agg, n_resamples) -> str:
    lines = [
        "Normalised MSRE (1 = the best constant predictor) of each family's pick on fresh "
        "seeds: mean over seeds [95% BCa bootstrap interval]",
        "",
        *markdown_table(["game", *families],
                        [[t.removeprefix("atari_"), *(_cell(table[f].get(t)) for f in families)]
                         for t in tasks], right=set(range(1, len(families) + 1))),
    ]  # fmt: skip
    lines += [
        "",
        f"Across games (each game's mean; 95% percentile bootstrap over games, {n_resamples:,} "
        "resamples):",
        "",
        *markdown_table(["family", "games", "IQM [95%]", "mean [95%]"],
                        [[a["learner"], a["games"],
                          f"{a['iqm']:.3f} [{a['iqm_low']:.3f}, {a['iqm_high']:.3f}]",
                          f"{a['mean']:.3f} [{a['mean_low']:.3f}, {a['mean_high']:.3f}]"]
                         for a in agg], right={1, 2, 3}),
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def _figure(tasks, families, table, agg, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.6), width_ratios=(3, 1))
    width = 0.8 / max(1, len(families))
    for k, fam in enumerate(families):
        xs, ys, lo, hi = [], [], [], []
        for i, task in enumerate(tasks):
            r = table[fam].get(task)
            if r is None or not math.isfinite(r["nmsre_mean"]):
                continue
            xs.append(i + (k - (len(families) - 1) / 2) * width)
            ys.append(r["nmsre_mean"])
            lo.append(r["nmsre_mean"] - r["boot_low"])
            hi.append(r["boot_high"] - r["nmsre_mean"])
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", ms=5, capsize=2, label=fam, color=f"C{k}")
    ax.axhline(1.0, color="0.3", ls="--", lw=1)
    ax.set_xticks(range(len(tasks)), [t.removeprefix("atari_") for t in tasks], rotation=20)
    ax.set_ylabel("normalised MSRE (fresh seeds, 95% bootstrap)")
    ax.set_title("Each game: each family's pick")
    ax.legend(fontsize=8)
    for k, a in enumerate(agg):
        if math.isfinite(a["iqm_low"]):
            bx.errorbar([k], [a["iqm"]], yerr=[[a["iqm"] - a["iqm_low"]],
                                                [a["iqm_high"] - a["iqm"]]],
                        fmt="D", capsize=4, color=f"C{families.index(a['learner'])}")  # fmt: skip
    bx.axhline(1.0, color="0.3", ls="--", lw=1)
    bx.set_xticks(range(len(agg)), [a["learner"] for a in agg], rotation=30)
    bx.set_title("Across games: IQM, 95% bootstrap")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
