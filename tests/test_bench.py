"""``python -m study.bench`` as a user runs it, on a tiny budget: the table's columns and their
arithmetic, the autodiff baseline beside the closed form, the memory check against the ledger,
and bad input. (Speed targets are read from its output, never asserted here.)"""

from __future__ import annotations

import csv

import pytest

from study import native
from study.bench import main


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_learner_table_has_the_columns_and_consistent_figures(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    argv = ["--learners", "columnar,columnar_autodiff,tbptt", "--streams", "2", "--steps", "50",
            "--repeats", "1", "--max-params", "2000", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    rows = read(out)
    for col in ("learner", "params_per_stream", "streams", "steps_per_s", "param_steps_per_s",
                "flops_per_step_ledger", "machine"):  # fmt: skip
        assert col in rows[0]
    assert {r["learner"] for r in rows} == {"columnar", "columnar_autodiff", "tbptt"}
    from learners import make_learner

    for r in rows:
        assert int(r["params_per_stream"]) * int(r["streams"]) <= 2000
        # the size column names the network whose parameters the row counts (catches a row
        # timed on one size and labelled with another): "7" is 7 columns, "k5:8" T-BPTT with
        # truncation 5 and 8 units
        label = r["size"]
        size = {}
        if label.startswith("k"):
            k, label = label[1:].split(":")
            size["truncation"] = int(k)
        size["n_features"] = int(label)
        name = r["learner"].removesuffix("_autodiff")
        assert make_learner(name, 12, **size).n_params == int(r["params_per_stream"])
        assert "cores" in r["machine"] and "jax" in r["machine"]
        # the full loop (task + learner + MSRE) beside the learner alone, and which engine
        # ran it: the compiled CPU loop for the learners it has, JAX for the others
        assert float(r["loop_steps_per_s"]) > 0
        expected = "jax" if r["learner"] == "columnar_autodiff" or native.ensure() else "native"
        assert r["loop_engine"] == expected
    text = capsys.readouterr().out
    assert "closed-form traces against autodiff" in text and "7 columns, streams=2" in text


def test_markdown_table_holds_the_csvs_figures_and_names_its_command(tmp_path):
    """``--markdown``: the table the docs paste has one row per CSV row with the same figures,
    and its footer names the command as typed, jax's version and the commit."""
    import jax

    out, md = tmp_path / "bench.csv", tmp_path / "bench.md"
    argv = ["--learners", "columnar,tbptt", "--streams", "1", "--steps", "50", "--repeats",
            "1", "--max-params", "700", "--out", str(out), "--markdown", str(md)]  # fmt: skip
    assert main(argv) == 0
    rows = read(out)
    text = md.read_text()
    body = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in body[1:]]
    assert len(cells) == len(rows) >= 2
    for cell, row in zip(cells, rows, strict=True):
        assert cell[:4] == [row["learner"], row["size"], f"{int(row['params_per_stream']):,}",
                            row["streams"]]  # fmt: skip
        assert cell[4] == f"{float(row['steps_per_s']):,.0f}"
        assert cell[-1] == row["loop_engine"]
    footer = text.strip().splitlines()[-1]
    assert footer.startswith("Made by `python -m study.bench --learners columnar,tbptt ")
    assert f"jax {jax.__version__}" in footer and "commit " in footer


def test_a_footer_never_shows_a_password_of_the_command():
    from study.cli import Parser, provenance

    p = Parser(prog="python -m study.x")
    p.add_argument("--storage")
    args = p.parse_args(["--storage", "postgresql://me:pa/ss@99@db:5432/x"])
    assert args.command_line == "python -m study.x --storage postgresql://me:pa/ss@99@db:5432/x"
    footer = provenance(args.command_line)
    assert "pa/ss" not in footer and "99@" not in footer and "db:5432/x" in footer


def test_memory_check_measures_the_state_the_ledger_predicts(tmp_path):
    out = tmp_path / "memory.csv"
    assert main(["--memory-steps", "20000", "--memory-streams", "2", "--out", str(out)]) == 0
    (row,) = read(out)
    assert row["state_bytes_per_stream"] == row["state_bytes_ledger"]
    # the process holds at least the streams' state (catches a figure in the wrong unit)
    streams = 2
    assert int(row["steps"]) == 20000
    assert int(row["rss_bytes"]) >= streams * int(row["state_bytes_per_stream"])


def test_crossover_is_the_smallest_batch_from_which_the_accelerator_stays_ahead():
    from study.bench import overtakes

    figures = {1: {"cpu": 5.0, "gpu": 1.0}, 16: {"cpu": 5.0, "gpu": 6.0},
               256: {"cpu": 5.0, "gpu": 4.0}, 1024: {"cpu": 5.0, "gpu": 9.0},
               4096: {"cpu": 4.0, "gpu": 30.0}}  # fmt: skip
    # Ahead at 16 but behind again at 256: the crossover is 1024, not 16.
    assert overtakes(figures, "gpu") == 1024
    figures[4096]["gpu"] = 3.0
    assert overtakes(figures, "gpu") is None
    assert overtakes({1: {"cpu": 1.0}}, "gpu") is None


def test_crossover_sweep_times_every_batch_on_every_platform(tmp_path, capsys):
    from study.bench import CROSSOVER_MIN_STEPS, platforms

    out = tmp_path / "cross.csv"
    argv = ["--crossover", "--learners", "columnar", "--streams", "1", "3", "--steps", "40",
            "--crossover-budget", "60", "--repeats", "1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    rows = read(out)
    have = sorted(platforms())
    assert sorted((int(r["streams"]), r["device"]) for r in rows) == sorted(
        (s, p) for s in (1, 3) for p in have
    )
    for r in rows:
        # 60 stream-steps per call: 40 steps for one stream, 20 -> the floor for three.
        want = 40 if r["streams"] == "1" else CROSSOVER_MIN_STEPS
        assert int(r["steps"]) == want
        assert r["size"] == "7" and int(r["params_per_stream"]) == 400
        pss = float(r["steps_per_s"]) * 400 * int(r["streams"])
        assert float(r["param_steps_per_s"]) == pytest.approx(pss, rel=1e-3)
    if have == ["cpu"]:
        assert "no accelerator here" in capsys.readouterr().out
