"""The real embedded default, started once for the integration tests (stopped by pid at the end)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulation.services.vllm_server import chat_spec, embedding_spec, log_dir, start_server, wait_healthy


@pytest.fixture(scope="session")
def real_servers():
    chat = start_server(chat_spec(log_file=str(log_dir() / "test_chat.log")), wait=False)
    emb = start_server(embedding_spec(log_file=str(log_dir() / "test_emb.log")), wait=False)
    try:
        wait_healthy(chat, 600)
        wait_healthy(emb, 600)
        yield chat, emb
    finally:
        chat.stop()
        emb.stop()


def real_models(chat, emb) -> list[dict]:
    return [{"config_name": "vllm", "model_name": chat.spec.served_name, "client_args": {"base_url": chat.base_url},
             "max_concurrency": 32},
            {"config_name": "emb", "model_type": "openai_embedding", "model_name": emb.spec.served_name,
             "client_args": {"base_url": emb.base_url}}]


def real_scenario(real_servers, tmp_path: Path, name: str = "job_seeking") -> Path:
    """A copy of a scenario wired to the real servers."""
    from tests.conftest import copy_scenario, set_models

    folder = copy_scenario(tmp_path, name)
    set_models(folder, real_models(*real_servers))
    return folder
