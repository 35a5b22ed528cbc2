"""Pieces of launch_server.sh that need no Ray node: the port-range warning and the failure reason."""

from __future__ import annotations

from simulation.services.agent_servers import ephemeral_overlap, log_reason


def test_a_base_port_overlapping_the_ephemeral_range_is_named():
    eph = (32768, 60999)
    assert ephemeral_overlap(6379, eph) is None
    assert ephemeral_overlap(31768, eph) is None  # its last port, 32767, lies just below
    assert ephemeral_overlap(61000, eph) is None
    for base in (31769, 40000, 60999):
        msg = ephemeral_overlap(base, eph)
        assert msg is not None and f"base port {base}" in msg and "32768..60999" in msg and "below 31769" in msg
    assert ephemeral_overlap(40000, None) is None  # a kernel that does not say


def test_a_failed_node_names_ray_s_last_error(tmp_path):
    log = tmp_path / "node.log"
    log.write_text("Usage stats collection is disabled.\n"
                   "Local node IP: 127.0.0.1\n"
                   "ConnectionError: Failed to connect to GCS at 127.0.0.1:30000\n"
                   "\n  \n")
    assert log_reason(log) == "ConnectionError: Failed to connect to GCS at 127.0.0.1:30000"
    log.write_text("starting\nnode stopped\n")
    assert log_reason(log) == "node stopped"  # no error line: the last line
    assert log_reason(tmp_path / "missing.log") == ""
