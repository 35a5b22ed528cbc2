"""Endpoints for a run: the configured ones, a launch manifest's, or embedded CPU vLLM servers started here."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

from loguru import logger

from ..config import ConfigError, ConfigProblem, RunConfig
from ..config.models import ModelConfig, SimulationConfig
from .manifest import read_manifest
from .model_assets import embedded_chat_name


def kv_cache_env(s: SimulationConfig) -> dict[str, str]:
    """The embedded chat servers' KV cache setting, as environment for them (empty: the default)."""
    from .vllm_server import auto_kv_cache_gib

    gib = s.embedded.kv_cache_gib
    if gib == "auto":  # the operator's environment variable, when set, wins over auto
        if "VLLM_CPU_KVCACHE_SPACE" in os.environ:
            return {}
        gib = auto_kv_cache_gib(sum(a.count for a in s.agents.values()), s.embedded.chat_servers)
    return {"VLLM_CPU_KVCACHE_SPACE": str(gib)}


class Services:
    """Endpoints for a run: configured, from a launch manifest, or embedded servers started here."""

    def __init__(self, progress: bool = True, on_line: Callable[[str], None] | None = None) -> None:
        self.started: list[Any] = []
        self.owned: dict[str, Any] = {}  # config_name -> the chat server this process started for it
        self.progress = progress
        self.on_line = on_line  # also gets the server start lines (the web interface's Monitor shows them)
        self.start_s: float | None = None  # how long the embedded servers took to start

    def resolve(self, cfg: RunConfig, embeddings: bool = True) -> tuple[list[ModelConfig], list[ModelConfig]]:
        """Chat and embedding endpoints; ``embeddings=False`` when only a chat model is needed (a judge)."""
        if cfg.simulation.llm.backend == "fake":  # in-process answers: no endpoint is read or started
            return [], []
        chat, emb = cfg.chat_models(), cfg.embedding_models()
        if not chat:
            chat = [ModelConfig.model_validate({k: v for k, v in e.items() if k != "pid"}) for e in read_manifest("llm")]
        if not emb:
            emb = [ModelConfig.model_validate({k: v for k, v in e.items() if k != "pid"})
                   for e in read_manifest("embedding")]
        need_chat, need_emb = not chat, not emb and embeddings
        if (need_chat or need_emb) and not cfg.simulation.embedded.enabled:
            # a scenario that never calls a model may run without one; a call would fail clearly
            logger.info("no {} endpoint configured and embedded servers are disabled",
                        "/".join(k for k, need in (("chat", need_chat), ("embedding", need_emb)) if need))
            return chat, emb
        if need_chat or need_emb:
            chat_new, emb_new = self.start_embedded(cfg, need_chat, need_emb)
            chat, emb = chat or chat_new, emb or emb_new
        return chat, emb

    def start_embedded(self, cfg: RunConfig, chat: bool, emb: bool) -> tuple[list[ModelConfig], list[ModelConfig]]:
        if os.environ.get("GENSIM_NO_EMBEDDED"):  # set by harnesses whose runs must never start servers
            raise ConfigError([ConfigProblem("<environment>", "GENSIM_NO_EMBEDDED",
                                             "set: this process may not start the embedded vLLM servers")])
        from .vllm_server import (
            chat_spec,
            embedding_spec,
            log_dir,
            log_stage,
            start_server,
            wait_healthy,
        )

        logger.info("no endpoints configured: starting the embedded CPU vLLM servers on 127.0.0.1")
        specs = []
        s = cfg.simulation
        lora_args, lora_env = ([], {})
        if s.embedded.enable_lora or (s.llm.adapter and s.llm.deploy_mode == "lora"):
            from .deploy import lora_env_args

            lora_args, lora_env = lora_env_args(s.embedded.max_lora_rank, s.embedded.max_loras)
        if chat:
            kv = kv_cache_env(s)
            for i in range(cfg.simulation.embedded.chat_servers):
                specs.append(("chat", chat_spec(log_file=str(log_dir() / f"embedded_chat_{os.getpid()}_{i}.log"),
                                                extra_args=list(lora_args), extra_env={**lora_env, **kv})))
        if emb:
            specs.append(("emb", embedding_spec(log_file=str(log_dir() / f"embedded_emb_{os.getpid()}.log"))))
        t0 = time.perf_counter()
        procs = [(k, start_server(s, wait=False)) for k, s in specs]
        self.started += [p for _, p in procs]
        def say(line: str) -> None:
            print(line, file=sys.stderr, flush=True)
            if self.on_line is not None:
                self.on_line(line)

        # printed with or without progress bars: minutes of silence look like a hang
        say("starting the embedded CPU vLLM servers (about 2 minutes): " + ", ".join(
            f"{p.spec.kind} {p.spec.served_name} on {p.base_url.removesuffix('/v1')}"
            + (f" (KV cache {p.spec.env()['VLLM_CPU_KVCACHE_SPACE']} GiB)" if p.spec.kind == "chat" else "")
            for _, p in procs))
        last_said: dict[int, float] = {}
        stages_said: set[str] = set()

        def on_wait(p: Any, elapsed: float) -> None:
            # each new line of the server's log once, or a heartbeat every 15 s while nothing new comes
            stage = log_stage(p)
            new = bool(stage) and stage not in stages_said
            if (self.progress or self.on_line) and elapsed - last_said.get(p.spec.port, 0.0) >= (3 if new else 15):
                say(f"  {p.spec.kind} server: {elapsed:4.0f}s  {stage if new else 'still starting'}")
                last_said[p.spec.port] = elapsed
                stages_said.add(stage)

        for _, p in procs:
            wait_healthy(p, cfg.simulation.embedded.startup_timeout_s, on_wait)
        self.start_s = round(time.perf_counter() - t0, 1)
        say(f"embedded servers ready in {self.start_s:.0f}s")
        out_chat = [ModelConfig(config_name=embedded_chat_name(i), model_name=p.spec.served_name,
                                client_args={"base_url": p.base_url}, max_concurrency=32, vllm_extras="on")
                    for i, (k, p) in enumerate(procs) if k == "chat"]
        chat_procs = [p for k, p in procs if k == "chat"]
        self.owned.update({m.config_name: p for m, p in zip(out_chat, chat_procs, strict=True)})
        out_emb = [ModelConfig(config_name="embedded-embedding", model_type="openai_embedding",
                               model_name=p.spec.served_name, client_args={"base_url": p.base_url}, max_concurrency=8)
                   for k, p in procs if k == "emb"]
        return out_chat, out_emb

    def stop(self) -> None:
        for p in self.started:
            p.stop()
        self.started.clear()
        for p in self.owned.values():  # servers started by deployments
            p.stop()
        self.owned.clear()
