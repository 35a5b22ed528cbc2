"""Agent servers on this host: a Ray node offering ``N`` agent-group slots (behind launch_server.sh).

    python -m simulation.services.agent_servers start N BASE_PORT SCENARIO [--head HOST:PORT] [--host ADDR]
    python -m simulation.services.agent_servers stop
    python -m simulation.services.agent_servers status

The first host (no ``--head``) starts the cluster's head, listening at ``BASE_PORT``; every other
host joins it with ``--head``. Each node's Ray processes run in their own session, recorded with its
process-group id in ``simulation/.agent_servers/`` (``GENSIM_AGENT_SERVERS_DIR`` overrides), so
``stop`` ends exactly those processes and nothing else. Binds 127.0.0.1 unless ``--host`` says
otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .procid import identity, same_process, session_members

SLOT = "gensim_slot"
READY = "block forever"  # what `ray start --block` prints once the node is up


def state_dir() -> Path:
    env = os.environ.get("GENSIM_AGENT_SERVERS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1] / ".agent_servers"


def launched_address() -> str | None:
    """The cluster address ``launch_server.sh`` recorded on this host, if it started one."""
    f = state_dir() / "cluster.json"
    try:
        return json.loads(f.read_text())["address"] if f.is_file() else None
    except (ValueError, KeyError):
        return None


def token_file() -> Path:
    return Path.home() / ".ray" / "auth_token"


def ray_bin() -> str:
    exe = Path(sys.executable).with_name("ray")
    return str(exe) if exe.exists() else "ray"


def node_ports(base: int, head: bool) -> list[str]:
    """Every port a node opens, derived from its base port so that nodes on one host never collide."""
    ports = ["--node-manager-port", str(base + 1), "--object-manager-port", str(base + 2),
             "--metrics-export-port", str(base + 3), "--runtime-env-agent-port", str(base + 4),
             "--dashboard-agent-listen-port", str(base + 5), "--dashboard-agent-grpc-port", str(base + 6),
             "--min-worker-port", str(base + 100), "--max-worker-port", str(base + 999)]
    if head:
        ports = ["--port", str(base), "--ray-client-server-port", str(base + 7), *ports]
    return ports


def fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def ephemeral_range() -> tuple[int, int] | None:
    """The ports this kernel hands to outgoing connections (Linux), or None where it does not say."""
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return None


def ephemeral_overlap(base_port: int, eph: tuple[int, int] | None) -> str | None:
    """Why a node's ports ``base_port``..``base_port+999`` may be taken: outgoing connections get
    ports of the ephemeral range at random. None when they lie outside it."""
    if eph is None or base_port > eph[1] or base_port + 999 < eph[0]:
        return None
    return (f"base port {base_port}: ports {base_port}..{base_port + 999} overlap the ephemeral range "
            f"{eph[0]}..{eph[1]}, where outgoing connections may take them; choose a base port below {eph[0] - 999}")


def log_reason(log: Path, lines: int = 40) -> str:
    """The line of a node's log that says why it stopped: the last error Ray printed, else its last line."""
    try:
        tail = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()][-lines:]
    except OSError:
        return ""
    errors = [ln for ln in tail if "error" in ln.lower() or "failed" in ln.lower()]
    return (errors or tail or [""])[-1][:300]


def start(n: int, base_port: int, scenario: str, head: str | None, host: str, timeout: float = 120.0) -> int:
    if n < 1:
        return fail(f"server_num_per_host must be at least 1, got {n}")
    if not 1024 < base_port < 64000:
        return fail(f"base_port must be between 1025 and 63999, got {base_port}")
    from ..config import ConfigError, resolve_scenario_dir
    from ..core.scenario import load_scenario

    try:  # agents of this scenario will live here: it must import on this host
        load_scenario(resolve_scenario_dir(scenario))
    except ConfigError as e:
        return fail(str(e.problems[0]))
    if warning := ephemeral_overlap(base_port, ephemeral_range()):
        print(f"warning: {warning}", file=sys.stderr)
    d = state_dir()
    d.mkdir(parents=True, exist_ok=True)
    node_file = d / f"node_{base_port}.json"
    if node_file.exists():
        return fail(f"{node_file}: a node with base port {base_port} is already running here (kill_all_server.sh)")
    cmd = [sys.executable, "-m", "simulation.services.ray_node", "start", "--block", "--node-ip-address", host, "--resources", json.dumps({SLOT: n}),
           "--num-cpus", str(os.cpu_count() or 1), "--disable-usage-stats", *node_ports(base_port, head is None)]
    cmd += ["--head", "--include-dashboard=false"] if head is None else ["--address", head]
    log = d / f"node_{base_port}.log"
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", MALLOC_ARENA_MAX="2")
    if head is None:  # the cluster's token: created once, then copied to every host that joins
        subprocess.run([ray_bin(), "get-auth-token", "--generate"], env=env, capture_output=True, check=False)
        if token_file().is_file():  # Ray writes it world-readable; it is the cluster's only secret
            token_file().chmod(0o600)
    elif not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH") or token_file().is_file()):
        return fail(f"no Ray auth token here: copy {token_file()} from the head host (or set RAY_AUTH_TOKEN)")
    with open(log, "w") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, env=env)
    address = head or f"{host}:{base_port}"
    node_file.write_text(json.dumps({"pid": p.pid, "pgid": p.pid, "identity": identity(p.pid), "address": address,
                                     "host": host,
                                     "base_port": base_port, "slots": n, "scenario": scenario,
                                     "role": "head" if head is None else "worker"}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            node_file.unlink(missing_ok=True)
            why = log_reason(log)
            return fail(f"ray start exited with {p.returncode}{': ' + why if why else ''}; see {log}")
        if READY in log.read_text(errors="replace"):
            break
        time.sleep(0.2)
    else:
        _stop_group(p.pid)
        node_file.unlink(missing_ok=True)
        return fail(f"the Ray node did not come up in {timeout:.0f}s; see {log}")
    (d / "cluster.json").write_text(json.dumps({"address": address}))
    print(f"agent servers: {n} slot(s) on {host} ({'head' if head is None else 'joined ' + head}), "
          f"cluster address {address}, pid {p.pid}")
    return 0


def group_alive(pgid: int) -> bool:
    """Whether any process of the process group ``pgid`` is still running."""
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _stop_group(pgid: int, grace: float = 5.0) -> None:
    """SIGTERM the node's process group (ray cleans up its children), then SIGKILL what is left of it
    and of its session: Ray's worker processes move to process groups of their own and, once their
    raylet is gone, would linger for about a minute, holding ports a new node may be given."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and group_alive(pgid):
            time.sleep(0.1)
        if not group_alive(pgid):
            break
    stragglers = session_members(pgid)  # the node was started as its own session: pgid == sid
    for pid in stragglers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5.0
    while stragglers and time.monotonic() < deadline:
        time.sleep(0.1)
        stragglers = session_members(pgid)


def stop() -> int:
    d = state_dir()
    nodes = sorted(d.glob("node_*.json"), key=lambda f: json.loads(f.read_text()).get("role") == "head")
    for f in nodes:  # workers first, the head last
        info = json.loads(f.read_text())
        ours, why = same_process(int(info["pid"]), info.get("identity"), "ray_node")
        f.unlink(missing_ok=True)
        if not ours:  # a stale file: the number may belong to someone else's process now
            print(f"skipped agent-server node {info['address']}: {why}; removed the stale {f.name}")
            continue
        _stop_group(int(info["pgid"]))
        print(f"stopped agent-server node {info['address']} (base port {info['base_port']}, pid {info['pid']})")
    (d / "cluster.json").unlink(missing_ok=True)
    if not nodes:
        print("no agent servers were running here")
    return 0


def status() -> int:
    for f in sorted(state_dir().glob("node_*.json")):
        info = json.loads(f.read_text())
        state = "running" if group_alive(int(info["pgid"])) else "dead"
        print(f"{info['role']:<6} {info['host']}:{info['base_port']} slots={info['slots']} pid={info['pid']} {state}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="launch_server.sh", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start")
    s.add_argument("server_num_per_host", type=int)
    s.add_argument("base_port", type=int)
    s.add_argument("scenario")
    s.add_argument("--head", metavar="HOST:PORT", help="join the cluster whose head listens there")
    s.add_argument("--host", default="127.0.0.1", help="address this node binds and announces (default 127.0.0.1)")
    sub.add_parser("stop")
    sub.add_parser("status")
    a = ap.parse_args(argv)
    if a.cmd == "start":
        return start(a.server_num_per_host, a.base_port, a.scenario, a.head, a.host)
    return stop() if a.cmd == "stop" else status()


if __name__ == "__main__":
    sys.exit(main())
