"""The kill scripts check a recorded pid is still the process they started (start time, command
line) before signalling it: a stale file never kills a process that reuses the number."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from simulation.services.procid import identity
from simulation.services.vllm_server import pid_alive

ROOT = Path(__file__).resolve().parents[2]


def _bystander() -> subprocess.Popen:
    return subprocess.Popen(["sleep", "300"], start_new_session=True)


def _run(args: list[str], env: dict[str, str]) -> str:
    p = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=120, cwd=ROOT,
                       env={**os.environ, **env})
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_stale_manifest_and_node_files_spare_other_processes(tmp_path):
    stranger, legacy, ours = _bystander(), _bystander(), _bystander()
    try:
        time.sleep(0.2)
        me = identity(ours.pid)
        assert me is not None and me["cmd"].startswith("sleep")
        manifest = tmp_path / "llm.json"
        entry = {"config_name": "x@1", "client_args": {"base_url": "http://127.0.0.1:1/v1"}}
        manifest.write_text(json.dumps([
            # the number a vLLM server once had, now reused: another start time (an hour earlier)
            {**entry, "pid": stranger.pid, "identity": {"start": identity(stranger.pid)["start"] - 360_000,
                                                        "cmd": "python -m vllm..."}},
            {**entry, "pid": legacy.pid},  # an older file: no identity, and not a vLLM command line
            {**entry, "pid": ours.pid, "identity": me}]))
        out = _run(["simulation.services.launch", "stop", "llm"], {"GENSIM_LLM_MANIFEST": str(manifest)})
        time.sleep(0.5)
        assert pid_alive(stranger.pid) and pid_alive(legacy.pid), out
        assert out.count("skipped") == 2 and f"stopped llm server pid {ours.pid}" in out
        ours.wait(timeout=10)

        nodes = tmp_path / "nodes"
        nodes.mkdir()
        (nodes / "node_7000.json").write_text(json.dumps({"pid": stranger.pid, "pgid": stranger.pid,
                                                          "address": "127.0.0.1:7000", "base_port": 7000,
                                                          "role": "head"}))
        out = _run(["simulation.services.agent_servers", "stop"], {"GENSIM_AGENT_SERVERS_DIR": str(nodes)})
        time.sleep(0.5)
        assert pid_alive(stranger.pid) and "skipped agent-server node" in out
        assert not (nodes / "node_7000.json").exists()
    finally:
        for p in (stranger, legacy, ours):
            if p.poll() is None:
                p.kill()
                p.wait()
