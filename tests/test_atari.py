"""The Atari prediction benchmark: the shrink, the traces, the replay against what a trained
agent scores, the cache, the task's observations, learning on it, and its refusals."""

from __future__ import annotations

import gzip
import importlib.metadata
import os
from pathlib import Path

import numpy as np
import pytest

from study.run import main as run
from study.tasks import atari, atari_task

SHARED = Path(__file__).resolve().parents[2] / "shared" / "atari-traces"
PONG = SHARED / "PongNoFrameskip-v4.txt.gz"


@pytest.fixture(scope="module")
def traces():
    if not PONG.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"the shared Atari traces are missing ({SHARED})")
        pytest.skip(f"no shared Atari traces at {SHARED}")
    return SHARED


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(atari.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def pong_cache(tmp_path_factory):
    """One cache for the tests of the whole Pong stream (one xdist group): replayed once."""
    return tmp_path_factory.mktemp("atari-cache")


WHOLE_PONG = pytest.mark.xdist_group("atari-pong")


def short_pong(folder: Path, frames: int) -> Path:
    """The first ``frames`` characters of the Pong trace, as a traces folder of one game."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "PongNoFrameskip-v4.txt").write_bytes(gzip.decompress(PONG.read_bytes())[:frames])
    return folder


def test_the_shrink_is_the_exact_area_mean_rounded():
    rng = np.random.default_rng(0)
    screens = rng.integers(0, 256, (3, 210, 160)).astype(np.uint8)
    # Each output cell is the mean of a 210/16 x 160/16 area: blow every pixel up 16 x 16,
    # then every output cell is a whole 210 x 160 block of the blown-up screen.
    big = np.kron(screens.astype(float), np.ones((1, 16, 16)))
    expected = np.rint(big.reshape(3, 16, 210, 16, 160).mean(axis=(2, 4)))
    assert np.array_equal(atari.shrink(screens), expected.astype(np.uint8))
    w = atari.area_weights(210, 16)
    assert np.allclose(w.sum(axis=1), 1) and np.allclose(w.sum(axis=0), 16 / 210)
    # a row 13 of the way in lies in cell 0 for 1/8 of its height (13.125 rows per cell)
    assert w[0, 13] == pytest.approx(0.125 / 13.125) and w[1, 13] == pytest.approx(0.875 / 13.125)


def test_returns_follow_the_reference_recursion():
    r = np.array([0, 1, 0, 0, -1, 1], np.float32)
    g = atari.returns(r, 0.5)
    # G_t = r_{t+1} + 0.5 r_{t+2} + ...; the last step has nothing after it
    assert g.tolist() == [1 + 0 + 0 - 0.125 + 0.0625, 0 + 0 - 0.25 + 0.125, 0 - 0.5 + 0.25,
                          -1 + 0.5, 1, 0]  # fmt: skip


@WHOLE_PONG
def test_replaying_pong_scores_what_the_trained_agent_scored(traces, pong_cache, monkeypatch,
                                                             capsys):  # fmt: skip
    """The replay is checked, not assumed: out of step with the recording, the agent plays
    like a random one (about -21 a game); in step, it wins every game 21-0. Then the cache
    reads it back identical."""
    monkeypatch.setenv(atari.CACHE_ENV, str(pong_cache))
    stream = atari.load_stream("atari_pong", str(traces))
    scores, _ = atari.episode_scores(stream)
    assert len(stream.frames) == 250_000 and len(scores) == 37
    assert scores == [21.0] * 37
    assert stream.rewards.min() == 0 and stream.rewards.max() == 1
    assert "replaying PongNoFrameskip-v4.txt.gz" in capsys.readouterr().err
    (file,) = pong_cache.glob("atari_pong-*.npz")
    again = atari.load_stream("atari_pong", str(traces))
    assert capsys.readouterr().err == ""  # from the cache
    assert all(np.array_equal(a, b) for a, b in zip(stream, again, strict=True))
    text = atari.describe("atari_pong", str(traces))
    assert "37 finished episodes" in text and "score mean 21.0, min 21, max 21" in text


def test_a_damaged_or_foreign_cache_is_rebuilt(traces, cache, tmp_path, capsys, monkeypatch):
    folder = short_pong(tmp_path / "traces", 20_000)
    first = atari.load_stream("atari_pong", str(folder))
    (file,) = cache.glob("atari_pong-*.npz")
    assert atari.episode_scores(first)[0] == [21.0] * 3  # the first games, whole
    capsys.readouterr()
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])  # truncated
    assert np.array_equal(atari.load_stream("atari_pong", str(folder)).frames, first.frames)
    assert "cache unreadable" in capsys.readouterr().err
    # the same file name holding another stream (its digest no longer matches)
    with np.load(file) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["rewards"] = arrays["rewards"] * 0
    np.savez(file.with_suffix(".tmp.npz"), **arrays)
    file.with_suffix(".tmp.npz").replace(file)
    assert np.array_equal(atari.load_stream("atari_pong", str(folder)).rewards, first.rewards)
    assert "do not match their digest" in capsys.readouterr().err
    # another emulator version: another key, so another file, built anew
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda n: "0.12.99" if n == "ale-py" else real(n))  # fmt: skip
    atari.load_stream("atari_pong", str(folder))
    assert "cache not built yet" in capsys.readouterr().err
    assert len(list(cache.glob("atari_pong-*.npz"))) == 2


def test_the_observation_is_reward_screen_and_action(traces, cache, tmp_path):
    import jax.numpy as jnp

    folder = short_pong(tmp_path / "traces", 2_000)
    stream = atari.load_stream("atari_pong", str(folder))
    env, params = atari_task.make_atari("atari_pong", str(folder))
    assert (
        env.obs_size == 275 and env.length == 2_000 and float(params.gamma) == pytest.approx(0.98)
    )
    obs, t = env.reset(None, params)
    assert int(t) == 0
    for step in range(1, 1_200):
        obs, t, cumulant = env.step_u(env.uniforms(None, t, 1)[0], t, params)
        assert int(t) == step
    assert float(cumulant) == stream.rewards[step] == float(obs[0])
    assert np.allclose(np.asarray(obs[1:257]), stream.frames[step].reshape(-1) / 256.0)
    assert np.asarray(obs[257:]).tolist() == np.eye(18)[stream.actions[step]].tolist()
    # the scored rewards: the first point of Pong comes after about a thousand frames
    hit = int(np.flatnonzero(stream.rewards)[0])
    obs = env.observe(jnp.asarray(hit), params)
    assert float(obs[0]) == 1.0


@WHOLE_PONG
def test_a_learner_predicts_pong_better_than_the_constant_predictor(
    traces, pong_cache, monkeypatch, capsys
):
    """``python -m study.run --task atari_pong --learner hybrid`` on the whole recorded game:
    every seed's normalised MSRE over the last 50,000 steps below 0.9 (measured about 0.6)."""
    monkeypatch.setenv(atari.CACHE_ENV, str(pong_cache))
    assert run(["--task", "atari_pong", "--learner", "hybrid", "--traces-dir", str(traces),
                "--seeds", "3"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "250,000 steps x 3 seeds" in out
    values = [float(line.split("normalised ")[1].split()[0])
              for line in out.splitlines() if line.strip().startswith("seed")]  # fmt: skip
    assert len(values) == 3 and max(values) < 0.9, out


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--task", "atari_pongg"], "--task atari_pongg: no trace for it in {traces}; found: "
         "atari_pong"),
        (["--task", "atari_pong", "--steps", "30000"], "--steps 30000: the atari_pong stream "
         "has 20,000 frames; allowed: at most that"),
        (["--task", "trace_patterning"], "--data-dir/--traces-dir applies to seq_mnist and "
         "atari_GAME tasks only, not trace_patterning"),
    ],
)  # fmt: skip
def test_atari_bad_input_is_one_line(argv, needle, traces, cache, tmp_path, capsys):
    folder = short_pong(tmp_path / "traces", 20_000)
    assert run([*argv, "--traces-dir", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: " + needle.format(traces=folder), err
    assert run(["--task", "trace_patterning", "--describe"]) == 2
    assert capsys.readouterr().err.endswith(
        "--describe applies to atari_GAME tasks only, not trace_patterning\n"
    )


@pytest.mark.parametrize(
    "content,needle",
    [
        (b"", "empty; allowed: one character per frame"),
        (b"\n", "empty; allowed: one character per frame"),
        (b"Raab!b", "character '!' at frame 4; allowed: R (reset) and a..r (actions 0 to 17)"),
        (b"Raaz", "character 'z' at frame 3"),
        (b"\x1f\x8b\x08\x00garbage", "not a readable gzip file"),
        (b"Raag", "its trace plays 'g' (action 6), outside the game's 6 actions (a..f)"),
    ],
)
def test_a_bad_trace_is_refused_in_one_line_before_anything_runs(content, needle, tmp_path,
                                                                  cache, capsys):  # fmt: skip
    (tmp_path / "PongNoFrameskip-v4.txt").write_bytes(content)
    assert run(["--task", "atari_pong", "--traces-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert not cache.exists() or not list(cache.iterdir())


def test_no_traces_folder_and_no_emulator_are_one_line_each(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(atari.TRACES_ENV, raising=False)
    assert run(["--task", "atari_pong"]) == 2
    assert capsys.readouterr().err == (
        "error: the Atari tasks read recorded traces: give --traces-dir FOLDER or set "
        "CCN_ATARI_TRACES (README: the Atari prediction benchmark)\n"
    )
    monkeypatch.setenv(atari.TRACES_ENV, str(tmp_path / "nowhere"))
    assert run(["--task", "atari_pong"]) == 2
    assert "CCN_ATARI_TRACES " + str(tmp_path / "nowhere") in capsys.readouterr().err
    (tmp_path / "PongNoFrameskip-v4.txt").write_bytes(b"Raab")
    real = importlib.metadata.version

    def missing(name):
        if name == "ale-py":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert run(["--task", "atari_pong", "--traces-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        'error: the Atari tasks need ale-py: pip install -e ".[atari]"\n'
    )


def test_the_compiled_loop_is_refused_for_atari_in_one_line(traces, cache, tmp_path,
                                                             monkeypatch, capsys):  # fmt: skip
    from study import native

    assert native.family_refusal("hybrid", "atari") == (
        "the kernel runs the animal-learning testbed, not the atari tasks"
    )
    assert native.family_refusal("hybrid", "testbed") is None
    folder = short_pong(tmp_path / "traces", 20_000)
    monkeypatch.setenv("CCN_ENGINE", "native")
    assert run(["--task", "atari_pong", "--traces-dir", str(folder), "--steps", "10000"]) == 2
    captured = capsys.readouterr()
    assert (
        captured.err.strip()
        .splitlines()[-1]
        .startswith("error: CCN_ENGINE=native: the kernel runs the animal-learning")
    )


@pytest.mark.xdist_group("ray")
def test_the_atari_preset_runs_a_game_and_aggregates_across_games(
    ray_local, traces, cache, tmp_path, capsys
):
    """``--preset atari-prediction`` on a short Pong (20,000 frames), columnar only: the grid
    on the tuning seeds and the pick on fresh seeds as experiments of their own, the game's
    report, and the aggregate's tables and figure."""
    from mlflow.tracking import MlflowClient

    from study.compare import main as compare

    folder = short_pong(tmp_path / "traces", 20_000)
    runs = tmp_path / "runs"
    assert compare(["--preset", "atari-prediction", "--games", "Pong", "--traces-dir",
                    str(folder), "--spaces", "columnar", "--seeds", "2", "--eval-seeds", "2",
                    "--runs-dir", str(runs), "--concurrency", "1"]) == 0  # fmt: skip
    client = MlflowClient(f"sqlite:///{runs / 'mlflow.db'}")
    grid = client.get_experiment_by_name("atari-prediction-pong")
    fresh = client.get_experiment_by_name("atari-prediction-pong-fresh")
    tuned = [r for r in client.search_runs([grid.experiment_id])
             if r.data.tags.get("ccn.role") == "tuning"]  # fmt: skip
    assert sorted(float(r.data.params["alpha"]) for r in tuned) == [3e-4, 1e-3, 3e-3]
    (pick,) = [r for r in client.search_runs([fresh.experiment_id])
               if r.data.tags.get("ccn.role") == "eval"]  # fmt: skip
    assert pick.data.params["task"] == "atari_pong" and pick.data.params["n_features"] == "5"
    out = runs / "reports" / "atari-prediction"
    summary = (out / "summary.md").read_text()
    row = next(line for line in summary.splitlines() if line.startswith("| pong |"))
    value = float(row.split("|")[2].split()[0])
    assert value == pytest.approx(pick.data.metrics["final_nmsre_windowed"], rel=1e-3)
    aggregate = (out / "aggregate.csv").read_text().splitlines()
    assert aggregate[0].startswith("learner,games,iqm") and aggregate[1].startswith("columnar,1,")
    assert (out / "games.png").stat().st_size > 10_000
    assert (runs / "reports" / "atari-prediction-pong" / "report.html").is_file()


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--preset", "atari-prediction", "--games", "Pongg"],
         "--games Pongg: no trace for 'Pongg' in {folder}; found: atari_pong"),
        (["--preset", "atari-prediction", "--games", ","], "--games ',' names no game"),
        (["--preset", "jmlr-trace-patterning", "--games", "Pong"],
         "--games applies to --preset atari-prediction only"),
        (["--games", "Pong"], "--games applies to --preset atari-prediction only"),
    ],
)  # fmt: skip
def test_the_atari_preset_refuses_bad_games_in_one_line(argv, needle, traces, cache, tmp_path,
                                                         capsys):  # fmt: skip
    from study.compare import main as compare

    folder = short_pong(tmp_path / "traces", 2_000)
    runs = tmp_path / "runs"
    assert compare([*argv, "--traces-dir", str(folder), "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: " + needle.format(folder=folder)]
    assert not runs.exists()


@pytest.mark.xdist_group("ray")
def test_the_atari_preset_extends_a_grid_whose_pick_is_at_its_edge(
    ray_local, traces, cache, tmp_path
):
    """``--extend-grid``: a game whose pick sits at its grid's edge gets the two step sizes
    past it on the tuning seeds (``NAME-GAME-extended``), the picks made again run on fresh
    seeds, and the aggregate across games is reported apart (``reports/NAME-extended``)."""
    from mlflow.tracking import MlflowClient

    from study.compare import main as compare

    folder = short_pong(tmp_path / "traces", 20_000)
    runs = tmp_path / "runs"
    argv = ["--preset", "atari-prediction", "--games", "Pong", "--traces-dir", str(folder),
            "--spaces", "snap1", "--seeds", "2", "--eval-seeds", "2", "--runs-dir", str(runs),
            "--concurrency", "1", "--update-rule", "ours"]  # fmt: skip
    assert compare([*argv, "--extend-grid"]) == 0
    client = MlflowClient(f"sqlite:///{runs / 'mlflow.db'}")
    picked = client.get_experiment_by_name("atari-prediction-pong-fresh")
    (pick,) = [r for r in client.search_runs([picked.experiment_id])
               if r.data.tags.get("ccn.role") == "eval"]  # fmt: skip
    edge = float(pick.data.params["alpha"])
    assert edge in (3e-3, 3e-4), "this game's pick must sit at an edge for the test to test"
    extended = client.get_experiment_by_name("atari-prediction-pong-extended")
    beyond = sorted(float(r.data.params["alpha"]) for r in client.search_runs(
        [extended.experiment_id]) if r.data.tags.get("ccn.role") == "tuning")  # fmt: skip
    assert beyond == ([1e-4, 3e-5][::-1] if edge == 3e-4 else [1e-2, 3e-2])
    assert (runs / "reports" / "atari-prediction-extended" / "summary.md").is_file()
    assert (runs / "reports" / "atari-prediction" / "summary.md").is_file()  # unchanged too
