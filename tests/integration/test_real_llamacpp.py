"""Any OpenAI-compatible server, for real: job seeking on llama.cpp (not vLLM) with the bundled GGUF.

llama.cpp has no ``/version`` and ignores vLLM's ``structured_outputs``; it honours the standard
``response_format`` JSON schema, which GenSim now sends first on every non-vLLM server. Choices and
JSON answers must be as valid as on vLLM, and the market must get past the search step.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from simulation.cli import main
from simulation.testing.procs import start_llamacpp
from tests.conftest import copy_scenario, set_models

pytestmark = pytest.mark.integration


def test_job_seeking_on_llamacpp_gets_valid_structured_answers(real_servers, tmp_path, capsys):
    _, emb = real_servers
    server = start_llamacpp()
    try:
        folder = copy_scenario(tmp_path, "job_seeking")
        set_models(folder, [
            {"config_name": "llamacpp", "model_name": "smollm2", "client_args": {"base_url": server.base_url},
             "max_concurrency": 8},
            {"config_name": "emb", "model_type": "openai_embedding", "model_name": emb.spec.served_name,
             "client_args": {"base_url": emb.base_url}}])
        run = tmp_path / "run"
        assert main(["run", str(folder), "--agents", "10", "--rounds", "1", "--out", str(run), "--no-progress",
                     "--json", "llm.timeout_s=300", "scenario.applications=list"]) == 0  # JSON answers too
    finally:
        server.stop()
    out = capsys.readouterr()
    assert "asked for in the prompt" not in out.err, "llama.cpp honours schemas: no fallback to prose"
    summary = json.loads(out.out.strip().splitlines()[-1])
    with sqlite3.connect(run / "run.sqlite") as db:
        structured = db.execute("SELECT action, valid, completion, error FROM llm_calls "
                                "WHERE choices IS NOT NULL OR json_schema IS NOT NULL").fetchall()
        actions = db.execute("SELECT action, valid FROM actions").fetchall()
    assert structured and all(v == 1 and e is None for _, v, _, e in structured), \
        [s for s in structured if s[1] != 1][:5]
    assert summary["invalid_calls"] == 0 and not summary["invalid_actions"]
    kinds = {a for a, _ in actions}
    assert "search_decision" in kinds and ("apply" in kinds or "wait" in kinds)
    assert any(a == "apply" for a, *_ in structured), "the list form's JSON calls were made and valid"
    assert summary["applications"] > 0, "the market never got past the search step"
