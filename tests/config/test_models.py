"""The resolved run config's own helpers."""

from __future__ import annotations

from simulation.config.models import MemoryConfig, ModelConfig, RunConfig, SimulationConfig


def test_chat_and_embedding_models_are_told_apart():
    def model(name: str, kind: str) -> ModelConfig:
        return ModelConfig(config_name=name, model_type=kind, model_name=name,
                           client_args={"base_url": "http://127.0.0.1:1/v1"})

    models = [model("c1", "openai_chat"), model("e1", "openai_embedding"), model("c2", "openai_chat")]
    cfg = RunConfig(scenario_dir="/x", simulation=SimulationConfig(name="t", agents={"a": {"count": 1}}),
                    memory=MemoryConfig(), models=models)
    assert [m.config_name for m in cfg.chat_models()] == ["c1", "c2"]
    assert [m.config_name for m in cfg.embedding_models()] == ["e1"]
    assert RunConfig(scenario_dir="/x", simulation=cfg.simulation, memory=MemoryConfig(), models=[]).chat_models() == []
