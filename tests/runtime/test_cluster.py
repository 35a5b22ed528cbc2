"""A two-node Ray cluster on loopback, started and stopped with the shell scripts a user runs.

Agents are spread over both nodes and interact across them; nothing listens beyond 127.0.0.1; and
kill_all_server.sh stops exactly the processes launch_server.sh started.
"""

from __future__ import annotations

import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulation.services.agent_servers import group_alive
from simulation.services.procid import session_members
from simulation.testing.procs import start_stub, stub_models
from tests.conftest import copy_scenario, set_models

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}  # 127.0.0.1, ::1, ::ffff:127.0.0.1


def free_base(avoid: int | None = None) -> int:
    """A base port whose 1,000 derived ports are all free, below the ephemeral range (outgoing
    connections of a busy machine take ports there at random, and a node's port taken so fails
    ``ray start``), and at least 1,000 away from ``avoid``."""
    rng = random.Random(os.getpid())
    for _ in range(200):
        base = rng.randrange(20000, 31000, 10)
        if avoid is not None and abs(base - avoid) < 1000:
            continue
        if all(port_free(p) for p in range(base, base + 1000)):
            return base
    raise RuntimeError("no free block of 1,000 ports between 20000 and 32000")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def listening() -> set[tuple[str, str]]:
    """(address, port) of every listening TCP socket on this machine, from /proc/net."""
    out = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A":  # LISTEN
                addr, port = f[1].split(":")
                out.add((addr, port))
    return out


def scripts_env(state: Path) -> dict:
    """The shell scripts run this test's own Python (a bare clone has no .venv for them to find)."""
    return dict(os.environ, GENSIM_AGENT_SERVERS_DIR=str(state), GENSIM_VENV=sys.prefix)


def sh(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture()
def cluster(tmp_path):
    state = tmp_path / "servers"
    env = scripts_env(state)
    head_port = free_base()
    worker_port = free_base(avoid=head_port)  # each node uses ports base .. base+999
    before = listening()
    head = sh("simulation/launch_server.sh", "1", str(head_port), "job_seeking", env=env)
    assert head.returncode == 0, head.stderr
    try:
        worker = sh("simulation/launch_server.sh", "1", str(worker_port), "job_seeking",
                    "--head", f"127.0.0.1:{head_port}", env=env)
        assert worker.returncode == 0, worker.stderr
        yield env, state, before
    finally:
        pids = [json.loads(f.read_text())["pid"] for f in state.glob("node_*.json")]
        stop = sh("simulation/kill_all_server.sh", env=env)
        assert stop.returncode == 0, stop.stderr
        # every node this fixture started is stopped: none skipped as "another process", nothing left
        assert "skipped" not in stop.stdout, stop.stdout
        assert not [p for n in pids for p in session_members(n)], "a node outlived kill_all_server.sh"


def test_two_node_cluster_cross_node_interactions_and_loopback_only(cluster, tmp_path):
    env, state, before = cluster
    nodes = [json.loads(f.read_text()) for f in sorted(state.glob("node_*.json"))]
    assert sorted(n["role"] for n in nodes) == ["head", "worker"]
    token = Path.home() / ".ray" / "auth_token"
    assert token.is_file() and token.stat().st_mode & 0o077 == 0, "the cluster token must be private (0600)"
    stub = start_stub()
    try:
        folder = copy_scenario(tmp_path)
        set_models(folder, stub_models([stub], embed=stub))
        run = tmp_path / "run"
        # a relative run folder (the actors' working directories differ from the driver's)
        p = subprocess.run([sys.executable, "-m", "simulation.cli", "run", str(folder), "--agents", "120",
                            "--rounds", "2", "--runtime", "ray", "--out", os.path.relpath(run, ROOT), "--no-progress"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        # listening while the cluster, the stub and the run's workers were up: loopback only
        opened = listening() - before
        assert opened, "the cluster should have opened ports"
        assert {a for a, _ in opened} <= LOOPBACK, f"listening beyond loopback: {opened - {x for x in opened if x[0] in LOOPBACK}}"
    finally:
        stub.stop()
    with sqlite3.connect(run / "run.sqlite") as db:
        groups = json.loads(db.execute("SELECT value FROM meta WHERE key = 'groups'").fetchone()[0])
        grp = dict(db.execute("SELECT agent_id, grp FROM agents"))
        applied = [(a, json.loads(d)["job"]) for a, d in db.execute("SELECT agent_id, data FROM actions WHERE action = 'apply'")]
        answers = [(a, json.loads(d)["job"]) for a, d in db.execute("SELECT agent_id, data FROM actions WHERE action = 'answer'")]
    node = {g["group"]: g["node"] for g in groups}
    assert len(set(node.values())) == 2, "one agent server on each node"
    assert {grp[a] for a in grp} == {0, 1}
    cross_apply = [(s, j) for s, j in applied if node[grp[s]] != node[grp[j]]]
    cross_dialogue = [(s, j) for s, j in answers if node[grp[s]] != node[grp[j]]]
    assert cross_apply, "a seeker on one node applied to an interviewer on the other"
    assert cross_dialogue, "an interview dialogue crossed nodes"


def test_parallel_experiment_runs_split_the_cluster(cluster, tmp_path):
    """gensim experiment --parallel 2 on a two-slot cluster: each run takes half the slots (one agent
    server), so the two runs share the cluster instead of each asking for every slot (two runs each
    holding one slot and waiting for the other's could wait forever)."""
    env, _, _ = cluster
    out = tmp_path / "exp"
    p = subprocess.run([sys.executable, "-m", "simulation.cli", "experiment", "polling", "--seeds", "2", "--parallel", "2",
                        "--llm", "fake", "--agents", "40", "--rounds", "2", "--out", str(out), "--no-progress",
                        "runtime=ray"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    folders = sorted(p for p in out.glob("runs/*/seed-*") if p.is_dir())
    assert len(folders) == 2
    for run in folders:
        with sqlite3.connect(run / "run.sqlite") as db:
            groups = json.loads(db.execute("SELECT value FROM meta WHERE key = 'groups'").fetchone()[0])
            finished = json.loads(db.execute("SELECT value FROM meta WHERE key = 'finished'").fetchone()[0])
        config = json.loads((run / "config.json").read_text())
        assert finished is True
        assert config["simulation"]["cluster_share"] == 0.5
        assert len(groups) == 1 and groups[0]["node"] != "local" and groups[0]["agents"] == 40


def test_kill_all_server_stops_exactly_what_was_started(tmp_path):
    state = tmp_path / "servers"
    env = scripts_env(state)
    port = free_base()
    assert sh("simulation/launch_server.sh", "2", str(port), "job_seeking", env=env).returncode == 0
    info = json.loads((state / f"node_{port}.json").read_text())
    assert info["slots"] == 2 and info["host"] == "127.0.0.1" and group_alive(info["pgid"])
    bystander = subprocess.Popen(["sleep", "60"])  # a process that is not ours to stop
    try:
        out = sh("simulation/kill_all_server.sh", env=env)
        assert out.returncode == 0 and "stopped" in out.stdout
        assert not group_alive(info["pgid"]) and not list(state.glob("node_*.json"))
        assert not session_members(info["pid"]), "a process of the node outlived kill_all_server.sh"
        assert bystander.poll() is None
    finally:
        bystander.kill()


def test_launch_server_rejects_bad_arguments(tmp_path):
    env = scripts_env(tmp_path / "s")
    for args, needle in ((["0", "30000", "job_seeking"], "server_num_per_host"),
                         (["1", "80", "job_seeking"], "base_port"),
                         (["1", "30000", "no_such_scenario"], "no_such_scenario")):
        p = sh("simulation/launch_server.sh", *args, env=env)
        assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr


def test_agent_servers_of_a_killed_driver_end_within_seconds(cluster, tmp_path):
    """SIGKILL a driver using the cluster: its agent-server processes end within seconds (Ray ends
    actors whose owner is gone), and the cluster stays up for the next run."""
    from simulation.services.vllm_server import pid_alive

    env, state, _ = cluster
    run = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "simulation.cli", "run", "polling", "--llm", "fake", "--runtime", "ray",
                          "--agents", "60", "--rounds", "100000", "--out", str(run), "--no-progress"],
                         cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        groups, deadline = None, time.monotonic() + 180
        while groups is None and time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                with sqlite3.connect(run / "run.sqlite") as db:
                    row = db.execute("SELECT value FROM meta WHERE key = 'groups'").fetchone()
                groups = json.loads(row[0]) if row else None
            except sqlite3.Error:
                pass
        assert groups, "the run never created its agent servers"
        pids = {g["pid"] for g in groups}
        assert all(pid_alive(x) for x in pids)
        p.kill()
        p.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(pid_alive(x) for x in pids) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(pid_alive(x) for x in pids), "agent servers outlived their driver"
    finally:
        if p.poll() is None:
            p.kill()
    assert all(group_alive(json.loads(f.read_text())["pgid"]) for f in state.glob("node_*.json"))
    nodes = [json.loads(f.read_text())["pid"] for f in state.glob("node_*.json")]
    stop = sh("simulation/kill_all_server.sh", env=env)
    assert stop.returncode == 0, stop.stderr
    # the run's Ray workers left the node's process group; stopping the node ends them too
    assert not [p for n in nodes for p in session_members(n)], "Ray workers outlived kill_all_server.sh"
