"""What MLflow's UI shows of a study (``study.orchestration.view``), short of a browser: run
names, numbers as a table shows them, the headline metrics and their verdict, the shared
view's state, colours, and the learning-curve figure."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from study.engine.kinds import CLASSIFICATION, PREDICTION
from study.present.curve import plot_curve, step_label
from study.present.names import PALETTE, headline, place, rounded, run_name, short, table_values
from study.present.words import words
from study.records.tags import COLOUR_TAG
from study.records.view import recolour, runs_page, view_state


@pytest.mark.parametrize("x, text", [(0.99, ".99"), (0.5, ".5"), (0.0, "0"), (1.0, "1"),
                                     (1e-3, "1e-3"), (4.2e-4, "4.2e-4"), (0.0196, ".0196"),
                                     (3.0, "3")])  # fmt: skip
def test_numbers_in_run_names_are_short_and_exact_to_what_they_show(x, text):
    assert short(x) == text


def test_the_tables_columns_round_to_three_digits_and_name_family_and_shape():
    assert [rounded(x) for x in (4.2417e-4, 0.99, 0.0, 12.54, 1e-3, 0.05, 0.0196)] == [
        "4.24e-4", ".99", "0", "12.5", "1e-3", ".05", ".0196"]  # fmt: skip
    values = table_values({"n_features": 20, "per_stage": 4},
                          {"learner": "hybrid", "alpha": 4.2417e-4, "lambda_": 0.99})  # fmt: skip
    assert values == {"learner": "hybrid", "size": "20:4", "alpha": "4.24e-4", "lambda": ".99"}
    dense = table_values({"n_features": 8, "truncation": 5}, {"learner": "tbptt", "alpha": 1e-3})
    assert dense == {"learner": "tbptt", "size": "h8 k=5", "alpha": "1e-3"}


def test_run_names_show_shape_step_size_and_lambda_within_the_default_column():
    assert run_name({"n_features": 20, "per_stage": 4}, {"alpha": 1e-3, "lambda_": 0.99}) == (
        "20:4 a=1e-3 l=.99")  # fmt: skip
    assert run_name({"n_features": 7, "per_stage": 7}, {"alpha": 3e-4, "lambda_": 0.0}) == (
        "7 a=3e-4 l=0")  # fmt: skip
    assert run_name({"n_features": 8, "truncation": 5}, {"alpha": 0.0123, "lambda_": 0.9}) == (
        "h8 k=5 a=.0123 l=.9")  # fmt: skip
    # the longest a search draws still fits the runs table's name column (about 20 characters)
    worst = run_name({"n_features": 128, "per_stage": 16}, {"alpha": 1.23e-5, "lambda_": 0.999})
    assert worst == "128:16 a=1.2e-5 l=.999" and len(worst) <= 22
    # among several families (a comparison's evaluation) the family comes first
    assert run_name({"n_features": 20, "per_stage": 4}, {"alpha": 1e-3, "lambda_": 0.99},
                    "hybrid") == "hybrid 20:4 a=1e-3 l=.99"  # fmt: skip


def test_headline_is_the_verdicts_mean_interval_and_flag_rounded_for_the_table():
    seeds = {"nmsre_windowed_seed0": 0.5, "nmsre_windowed_seed1": 0.6123456,
             "nmsre_windowed_seed2": 0.7, "nmsre_windowed": 0.6041152,
             "msre_windowed": 0.0123456789, "msre_running": 0.02}  # fmt: skip
    top = headline(PREDICTION, seeds)
    values = np.array([0.5, 0.6123456, 0.7])
    half = stats.t.ppf(0.975, 2) * values.std(ddof=1) / np.sqrt(3)
    assert top == {"nmsre_windowed": 0.6041, "nmsre_windowed_ci95": float(f"{half:.4g}"),
                   "learned": 1.0, "msre_windowed": 0.01235}  # fmt: skip
    # an interval that reaches 1 learned nothing; a diverged trial is the worst there is
    assert headline(PREDICTION, {"nmsre_windowed_seed0": 0.9, "nmsre_windowed_seed1": 1.1})[
        "learned"] == 0.0  # fmt: skip
    gone = headline(PREDICTION, {"nmsre_windowed_seed0": 0.5, "nmsre_windowed_seed1": np.nan,
                                 "nmsre_windowed": np.inf, "msre_windowed": np.inf})  # fmt: skip
    assert gone["nmsre_windowed"] == np.inf and gone["learned"] == 0.0
    # classification: held-out accuracy above chance (0.1) is learning
    acc = headline(CLASSIFICATION, {"heldout_accuracy_seed0": 0.31, "heldout_accuracy_seed1": 0.33,
                                    "heldout_accuracy": 0.32})  # fmt: skip
    assert acc["heldout_accuracy"] == 0.32 and acc["learned"] == 1.0


def test_the_shared_view_lists_trials_best_first_with_result_verdict_and_parameters():
    state = view_state(PREDICTION, ["n_features", "alpha", "lambda_", "eta"])
    assert state["orderByKey"] == "metrics.`final_nmsre_windowed`" and state["orderByAsc"]
    assert state["searchFilter"] == "tags.`ccn.role` != 'launch'"
    # the result, then the configuration rounded (family, shape, alpha, lambda), then what
    # else was searched at full precision
    assert state["selectedColumns"] == [
        "metrics.`final_nmsre_windowed`", "metrics.`final_nmsre_windowed_ci95`",
        "tags.`learned`", "tags.`learner`", "tags.`size`", "tags.`alpha`", "tags.`lambda`",
        "metrics.`final_msre_windowed`", "params.`eta`"]  # fmt: skip
    assert state["columnOrder"][:2] == ["attributes.`Run Name`", "metrics.`final_nmsre_windowed`"]
    assert state["runsHiddenMode"] == "SHOW_ALL"
    best = view_state(CLASSIFICATION, [])
    assert best["orderByKey"] == "metrics.`final_heldout_accuracy`" and not best["orderByAsc"]
    page = runs_page("http://h:5000", "7")
    assert page == ("http://h:5000/#/experiments/7/runs?viewStateShareKey=results"
                    "&workflowType=machine_learning")  # fmt: skip


def test_colours_follow_the_trials_place_and_are_made_distinct_at_the_end():
    assert place("b2076_00003", None, None) == 3
    assert place("b2076_00003", (2, 12), None) == 38  # a grid's packs of 12
    assert place("c031f775", (1, 3), 4) == 4  # a packed search: its Optuna trial
    assert place("c031f775", None, None) is None  # a search's random Tune id
    assert len(set(PALETTE)) == 20

    class Client:
        def __init__(self):
            self.tags = {}

        def set_tag(self, run_id, key, value):
            self.tags[run_id] = value

    def run(i, start, colour):
        return SimpleNamespace(info=SimpleNamespace(run_id=f"r{i}", start_time=start),
                               data=SimpleNamespace(tags={COLOUR_TAG: colour}))  # fmt: skip

    client = Client()
    distinct = [run(i, 10 * i, PALETTE[i]) for i in range(5)]
    assert recolour(client, distinct) == 0 and client.tags == {}
    clash = [run(0, 30, PALETTE[0]), run(1, 10, PALETTE[1]), run(2, 20, PALETTE[1])]
    assert recolour(client, clash) == 2  # by start: r1, r2 (already PALETTE[1]), r0
    assert client.tags == {"r1": PALETTE[0], "r0": PALETTE[2]}


def test_the_learning_curve_figure_is_slide_sized(tmp_path):
    steps = np.arange(1, 21) * 100_000.0
    lines = {s: 1.0 / (1 + steps / 1e6) + 0.01 * s for s in range(5)}
    path = tmp_path / "learning_curve.png"
    said = words(PREDICTION)
    plot_curve(str(path), "study: columnar 7 a=1e-3 l=.99 on trace_patterning", steps, lines,
               said.figure_label, PREDICTION.no_learning, said.no_learning_text)  # fmt: skip
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    assert width >= 1200 and height >= 600
    assert [step_label(x) for x in (0, 50_000, 500_000, 2_000_000)] == ["0", "50k", "0.5M", "2M"]
    assert step_label(150_000) == "0.15M"


def test_the_studys_sentence_rounds_as_the_trials_own_from_every_digit(tmp_path):
    """The experiment's description states the best trial's interval from ``finals.json``,
    not from the metric rounded to 4 digits: rounding twice once gave 0.428 on the study's
    page where the trial's own sentence (and the console) said 0.429."""
    import json

    from study.records.view import outcome

    d = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    seeds = 0.545 + d * 0.42853 / PREDICTION.learned(0.545 + d)[1]  # a half-width of 0.42853
    mean, half, _ = PREDICTION.learned(seeds)
    (tmp_path / "finals.json").write_text(json.dumps(
        {f"final_nmsre_windowed_seed{i}": float(v) for i, v in enumerate(seeds)}))  # fmt: skip
    shown = headline(PREDICTION, {f"nmsre_windowed_seed{i}": v for i, v in enumerate(seeds)})
    # the case this guards: 4 digits (0.4285), then 3, is not 3 at once (0.429)
    assert f"{shown['nmsre_windowed_ci95']:.3f}" == "0.428" and f"{half:.3f}" == "0.429"

    class Client:
        def download_artifacts(self, run_id, path, dst):
            return str(tmp_path / path)

    run = SimpleNamespace(
        info=SimpleNamespace(run_id="r", run_name="20:4 a=1e-3 l=.99"),
        data=SimpleNamespace(metrics={f"final_{k}": v for k, v in shown.items()},
                             tags={"ccn.finals": "finals.json", "seeds": "0,1,2,3,4",
                                   "learned": "yes"}),
    )  # fmt: skip
    assert f"normalised MSRE {mean:.3f} ± 0.429 (95%" in outcome(PREDICTION, [run], Client())[1]
    assert "± 0.428" in outcome(PREDICTION, [run])[1]  # without the file: the metrics' digits


def test_the_printed_mlflow_hint_names_the_projects_ui_and_never_a_password():
    """A runs folder's store is browsed with ``python -m study.ui`` (MLflow's UI kept in
    model training); any other store with MLflow's own command and the project's app; a
    server's link never shows its password."""
    from study.records.view import browse_hint

    hint = browse_hint("sqlite:////tmp/a b/runs/mlflow.db", "4")
    assert hint.startswith("MLflow: run `python -m study.ui --runs-dir '/tmp/a b/runs'`, then")
    other = browse_hint("sqlite:////tmp/elsewhere.db", "4")
    assert (
        "`mlflow ui --app-name ccn-study --backend-store-uri sqlite:////tmp/elsewhere.db`" in other
    )
    served = browse_hint("https://alice:s3cret@mlflow.example:5000/", "4")
    assert "s3cret" not in served and served.startswith("MLflow: https://alice:")
    assert served.endswith("/#/experiments/4/runs?viewStateShareKey=results"
                           "&workflowType=machine_learning")  # fmt: skip


def test_the_chart_view_draws_the_curve_and_one_chart_per_searched_parameter():
    """One line chart of every trial's normalised curve, one scatter of the result per
    searched parameter; every other metric a trial logs is a removed chart, so MLflow adds
    none of its own (it adds one for any metric no chart names)."""
    from study.records.view import charts

    view = charts(PREDICTION, ["alpha", "lambda_"], [0, 1, 2])
    drawn = [c for c in view["compareRunCharts"] if not c["deleted"]]
    assert [(c["type"], c.get("metricKey") or c["xaxis"]["key"]) for c in drawn] == [
        ("LINE", "normalised MSRE/curve_nmsre_windowed"), ("SCATTER", "alpha"),
        ("SCATTER", "lambda_")]  # fmt: skip
    assert all(c["runsCountToCompare"] >= 1000 for c in drawn)
    assert drawn[1]["yaxis"] == {"key": "final_nmsre_windowed", "type": "METRIC"}
    removed = {c["metricKey"] for c in view["compareRunCharts"] if c["deleted"]}
    curves = ("windowed MSRE/curve_msre_windowed", "normalised MSRE/curve_nmsre_windowed")
    logged = {
        curves[0],
        "final_nmsre_windowed",
        "final_learned",
        "final_nmsre_windowed_ci95",
        "final_msre_windowed",
        *(f"{c}_seed{s}" for s in (0, 1, 2) for c in curves),
    }
    assert removed == logged
    sections = {c["metricSectionId"] for c in view["compareRunCharts"]}
    assert sections == {s["uuid"] for s in view["compareRunSections"]}


def test_a_view_of_many_seeds_fits_in_an_mlflow_tag_leaving_out_the_last_seeds_charts():
    """MLflow stores a tag value of at most 20,000 characters (a racing round of 16 seeds
    once went past it and the launch failed): the view keeps its drawn charts and the first
    seeds' removed ones, and leaves out the last seeds'."""
    import json

    from study.records.view import TAG_LIMIT, fitted, view_state

    state = view_state(PREDICTION, ["alpha", "lambda_"], list(range(1000, 1200)), ["alpha"])
    text = fitted(state)
    assert len(json.dumps(state)) > TAG_LIMIT >= len(text)
    kept = json.loads(text)["compareRunCharts"]
    assert [c for c in kept if not c["deleted"]] == [
        c for c in state["compareRunCharts"] if not c["deleted"]]  # fmt: skip
    keys = [c["metricKey"] for c in kept if c["deleted"]]
    assert (
        "final_nmsre_windowed" in keys and "normalised MSRE/curve_nmsre_windowed_seed1000" in keys
    )
    assert "normalised MSRE/curve_nmsre_windowed_seed1199" not in keys
    small = view_state(PREDICTION, ["alpha"], [0, 1], ["alpha"])
    assert json.loads(fitted(small)) == small


def test_a_trials_page_draws_its_curves_and_names_every_other_metric_as_removed():
    """A trial's Model metrics: the mean curve, every seed's on one chart, the raw curve; the
    final numbers (one value each: one-bar charts) and the other per-seed curves are removed
    charts, so MLflow draws nothing of its own. Within a run tag's 8,000 characters for 12
    seeds (a scaled preset's fresh seeds), and for many the last seeds' removed charts go."""
    import json

    from study.records.view import RUN_TAG_LIMIT, fitted, trial_charts

    state = trial_charts(PREDICTION, [3, 4, 5])
    drawn = [c for c in state["compareRunCharts"] if not c["deleted"]]
    mean, raw = "normalised MSRE/curve_nmsre_windowed", "windowed MSRE/curve_msre_windowed"
    assert [c["metricKey"] for c in drawn] == [mean, f"{mean}_seed3", raw]
    assert drawn[1]["selectedMetricKeys"] == [f"{mean}_seed{s}" for s in (3, 4, 5)]
    assert [c["scaleType"] for c in drawn] == ["linear", "linear", "log"]
    removed = {c["metricKey"] for c in state["compareRunCharts"] if c["deleted"]}
    finals = {f"final_{k}" for k in ("nmsre_windowed", "nmsre_windowed_ci95", "learned",
                                     "msre_windowed")}  # fmt: skip
    assert removed == finals | {f"{mean}_seed{s}" for s in (4, 5)} | {
        f"{raw}_seed{s}" for s in (3, 4, 5)}  # fmt: skip
    sections = {c["metricSectionId"] for c in state["compareRunCharts"]}
    assert sections == {s["uuid"] for s in state["compareRunSections"]}
    assert json.loads(fitted(trial_charts(PREDICTION, list(range(12))), RUN_TAG_LIMIT)) == (
        trial_charts(PREDICTION, list(range(12)))
    )
    many = json.loads(fitted(trial_charts(PREDICTION, list(range(40))), RUN_TAG_LIMIT))
    assert len(json.dumps(many)) <= RUN_TAG_LIMIT
    assert [c for c in many["compareRunCharts"] if not c["deleted"]][:3] == [
        c for c in trial_charts(PREDICTION, list(range(40)))["compareRunCharts"][:3]]  # fmt: skip
    # classification: its curve is the figure's, drawn once, then each seed's
    one = trial_charts(CLASSIFICATION, [0, 1])
    assert [c["metricKey"] for c in one["compareRunCharts"] if not c["deleted"]] == [
        CLASSIFICATION.figure_curve, f"{CLASSIFICATION.figure_curve}_seed0"]  # fmt: skip
