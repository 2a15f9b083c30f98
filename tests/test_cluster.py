"""The cluster configs are what Ray and KubeRay take, and a study runs on a real two-node Ray
cluster (two `ray start` processes on loopback) with a real `mlflow server`, surviving the
loss of its worker node."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import jsonschema
import pytest
import yaml
from mlflow.tracking import MlflowClient

from study.engine.kinds import PREDICTION
from study.launch import _parser as launch_parser

MSRE_CURVE = PREDICTION.curve  # its MLflow key

CLUSTER = Path(__file__).parents[1] / "cluster"


def test_aws_launcher_config_passes_rays_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((CLUSTER / "aws.yaml").read_text())
    validate_config(prepare_config(config))
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"] == {"CPU": 0}
    assert types["cpu_worker"]["max_workers"] > types["cpu_worker"]["min_workers"] == 0
    assert types["gpu_worker"]["resources"]["GPU"] == 1
    assert types["gpu_worker"]["docker"]["worker_image"].endswith("ccn-study:gpu")
    assert config["docker"]["worker_image"].endswith("ccn-study:cpu")
    # The schema is strict: a misspelt key is refused, so the check above can fail.
    types["cpu_worker"]["max_worker"] = 3
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(config))


def _containers(spec):
    return spec["template"]["spec"]["containers"]


def test_kuberay_cluster_has_cpu_and_gpu_groups_with_token_auth():
    cluster = yaml.safe_load((CLUSTER / "kuberay" / "raycluster.yaml").read_text())
    assert cluster["apiVersion"] == "ray.io/v1" and cluster["kind"] == "RayCluster"
    spec = cluster["spec"]
    assert spec["authOptions"] == {"mode": "token"}
    head = _containers(spec["headGroupSpec"])[0]
    assert {p["containerPort"] for p in head["ports"]} >= {6379, 8265}
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    gpu = _containers(groups["gpu"])[0]
    assert gpu["image"].endswith("ccn-study:gpu")
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert _containers(groups["cpu"])[0]["image"].endswith("ccn-study:cpu")
    for g in groups.values():
        assert 0 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]
        env = {e["name"]: e.get("value") for e in _containers(g)[0]["env"]}
        assert env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"


def test_kuberay_job_runs_a_study_the_launcher_accepts():
    job = yaml.safe_load((CLUSTER / "kuberay" / "rayjob.yaml").read_text())
    assert job["kind"] == "RayJob" and job["spec"]["shutdownAfterJobFinishes"] is True
    words = shlex.split(job["spec"]["entrypoint"])
    assert words[:3] == ["python", "-m", "study.launch"]
    args = launch_parser().parse_args(words[3:])
    assert args.address == "auto" and args.storage_path.startswith("/shared/")
    assert args.tracking_uri == "http://ccn-mlflow:5000"
    services = list(yaml.safe_load_all((CLUSTER / "kuberay" / "services.yaml").read_text()))
    kinds = {(d["kind"], d["metadata"]["name"]) for d in services}
    assert ("Service", "ccn-mlflow") in kinds and ("Service", "ccn-postgres") in kinds
    mlflow = next(d for d in services if d["kind"] == "Deployment")
    command = " ".join(_containers(mlflow["spec"])[0]["args"])
    assert "--backend-store-uri" in command and "postgresql://" in command
    assert "--artifacts-destination /shared/" in command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # Its own session: the process and everything it starts are stopped by one killpg.
    with log.open("w") as f:
        return subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def _wait_for(what: str, check, timeout: float, procs=()) -> None:
    end = time.monotonic() + timeout
    while not check():
        for p in procs:
            assert p.poll() is None, f"{p.args[:3]} exited with {p.returncode} before {what}"
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.5)


def _ray_node(name: str, head: str | None, env, tmp_path: Path) -> subprocess.Popen:
    """`ray start --block` of one node with 1 CPU, every port of its own on loopback."""
    ray = str(Path(sys.executable).parent / "ray")
    ports = {"--node-manager-port": free_port(), "--object-manager-port": free_port(),
             "--metrics-export-port": free_port(), "--dashboard-agent-listen-port": free_port(),
             "--dashboard-agent-grpc-port": free_port(),
             "--runtime-env-agent-port": free_port()}  # fmt: skip
    cmd = [ray, "start", "--block", "--num-cpus", "1", "--node-ip-address", "127.0.0.1",
           *[str(x) for kv in ports.items() for x in kv]]  # fmt: skip
    if head is None:
        cmd += ["--head", "--port", env["CCN_TEST_GCS_PORT"], "--include-dashboard", "false",
                "--ray-client-server-port", str(free_port())]  # fmt: skip
    else:
        cmd += ["--address", head, "--resources", json.dumps({"ccn_test_worker": 1})]
    log = tmp_path / f"{name}.log"
    proc = _spawn(cmd, env, log)
    _wait_for(f"Ray {name} node", lambda: "Ray runtime started" in log.read_text(), 120, [proc])
    return proc


@pytest.fixture
def two_nodes_and_mlflow(tmp_path):
    """A Ray head and a worker node (separate `ray start` processes, 1 CPU each, token auth
    on; the worker carries a resource that names it) and an `mlflow server` (SQLite backend,
    artifacts proxied), all on 127.0.0.1 and all stopped by PID at the end. Yields the
    driver's environment, the tracking URI, the processes and the node ids."""
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16),
               RAY_USAGE_STATS_ENABLED="0", CCN_TEST_GCS_PORT=str(free_port()))  # fmt: skip
    started: dict[str, subprocess.Popen] = {}
    mlflow_port = free_port()
    try:
        started["mlflow"] = _spawn(
            [str(Path(sys.executable).parent / "mlflow"), "server",
             "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
             "--artifacts-destination", str(tmp_path / "server-artifacts"),
             "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1"],
            env, tmp_path / "mlflow.log",
        )  # fmt: skip
        head = f"127.0.0.1:{env['CCN_TEST_GCS_PORT']}"
        started["head"] = _ray_node("head", None, env, tmp_path)
        started["worker"] = _ray_node("worker", head, env, tmp_path)
        uri = f"http://127.0.0.1:{mlflow_port}"

        def healthy() -> bool:
            try:
                return urllib.request.urlopen(f"{uri}/health", timeout=2).read() == b"OK"
            except OSError:
                return False

        _wait_for("mlflow server", healthy, 120, [started["mlflow"]])
        # Which node is which, as Ray names them (trials tag their runs with these ids).
        listed = subprocess.run(
            [sys.executable, "-c", "import json, ray; ray.init(log_to_driver=False); print("
             "json.dumps({n['NodeID']: n['Resources'] for n in ray.nodes() if n['Alive']}))"],
            env=dict(env, RAY_ADDRESS=head), capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        nodes = json.loads(listed.stdout.strip().splitlines()[-1])
        assert len(nodes) == 2, listed.stderr[-2000:]
        ids = {("worker" if "ccn_test_worker" in r else "head"): n for n, r in nodes.items()}
        yield dict(env, RAY_ADDRESS=head), uri, started, ids
    finally:
        for proc in started.values():
            _kill(proc)
        # Nothing of this cluster is left: no process still names its GCS port.
        left = subprocess.run(["pgrep", "-f", f"127.0.0.1:{env['CCN_TEST_GCS_PORT']}"],
                              capture_output=True, text=True).stdout.split()  # fmt: skip
        assert left == [], f"processes left behind: {left}"
        # Ray's pointer to "the current cluster" must not name the dead one, or the next
        # ray.init() without an address would try to join it.
        current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        if current.exists() and env["CCN_TEST_GCS_PORT"] in current.read_text():
            current.unlink()


@pytest.mark.xdist_group("ray-cli")
def test_study_on_two_nodes_survives_losing_the_worker_node(two_nodes_and_mlflow, tmp_path):
    env, uri, started, node_ids = two_nodes_and_mlflow
    runs = tmp_path / "runs"
    argv = [sys.executable, "-m", "study.launch", "--space", "columnar", "--smoke",
            "--trials", "3", "--steps", "600000", "--concurrency", "2", "--min-report-s", "0",
            "--set", "n_features=2", "--tracking-uri", uri, "--runs-dir", str(runs),
            "--storage-path", str(tmp_path / "shared" / "ray")]  # fmt: skip
    driver = _spawn(argv, dict(env, PYTHONUNBUFFERED="1"), tmp_path / "driver.log")
    client = MlflowClient(uri)
    name = "columnar-trace_patterning"

    def worker_node_mid_trial() -> bool:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            return False
        running = client.search_runs([exp.experiment_id], "tags.`ccn.status` = 'running'")
        for r in running:
            if r.data.tags.get("ccn.nodes") == node_ids["worker"]:
                history = client.get_metric_history(r.info.run_id, MSRE_CURVE)
                if 30_000 <= max((m.step for m in history), default=0) <= 200_000:
                    return True
        return False

    try:
        # 600,000 steps a trial, found between 30,000 and 200,000: the node is lost mid-trial
        # also when a busy machine is slow to notice and to kill it
        _wait_for("a trial mid-way on the worker node", worker_node_mid_trial, 300, [driver])
        _kill(started.pop("worker"))  # the worker node's raylet, its workers and agents
        driver.wait(timeout=400)
    finally:
        _kill(driver)
    log = (tmp_path / "driver.log").read_text()
    assert driver.returncode == 0, log[-3000:]
    exp = client.get_experiment_by_name(name)
    runs_found = client.search_runs([exp.experiment_id])
    children = [r for r in runs_found if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 3 and len(runs_found) == 4
    nodes = [r.data.tags["ccn.nodes"].split(",") for r in children]
    assert {n for ns in nodes for n in ns} == set(node_ids.values())  # trials ran on both
    moved = [r for r, ns in zip(children, nodes, strict=True) if len(ns) > 1]
    # The trial on the lost node started again on the head: with --pack auto (2 and 1 of
    # the 3 configurations), a pack moves as a whole, every configuration's run with it.
    assert moved and all(ns == [node_ids["worker"], node_ids["head"]] for ns in nodes
                         if len(ns) > 1)  # fmt: skip
    trials_moved = {r.data.tags["ccn.trial_id"].partition(".")[0] for r in moved}
    assert len(trials_moved) == 1
    assert len(moved) == int(moved[0].data.tags.get("ccn.pack_size", "1"))
    for r in children:
        assert r.data.tags["ccn.status"] == "finished" and r.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(r.info.run_id, MSRE_CURVE)]
        assert sorted(steps) == list(range(1000, 600_001, 1000))  # complete, none twice
    # It continued from its last checkpoint: Tune's record of the trial goes back at most one
    # chunk (a result the driver recorded just before the node died, whose checkpoint had not
    # been registered yet, is run again), never to the start (a restart from scratch would
    # report 10,000 steps again).
    trial_id = trials_moved.pop()
    (result,) = (tmp_path / "shared" / "ray" / name).glob(f"*{trial_id}*/result.json")
    done = [json.loads(line)["steps_done"] for line in result.read_text().splitlines()]
    assert all(b >= a - 10_000 for a, b in zip(done, done[1:], strict=False))
    assert done.count(10_000) == 1 and done[-1] == 600_000
