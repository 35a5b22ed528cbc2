"""The Configure tab's typed form: one field per setting, its kind and choices read from the pydantic
config models (the simulation's, the memory's and the scenario's own parameters), so a number gets a
number box, a yes/no a checkbox and a fixed set of values a dropdown. The settings table stays the one
source of the overrides; a form field writes its row."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

SECTIONS = (("Population and rounds", ("seed", "rounds", "agents.", "activation.", "id_digits")),
            ("LLM", ("llm.",)), ("Embedded servers", ("embedded.",)), ("Embeddings", ("embedding.",)),
            ("Memory", ("memory.",)), ("Scenario parameters", ("scenario.",)),
            ("Runtime and run", ("runtime", "ray_address", "servers", "concurrency", "out_dir", "checkpoint_every",
                                 "max_failed_step_share", "memory_config", "model_config")))


@dataclass(frozen=True)
class SettingField:
    """One setting as a form field."""

    key: str  # as in ``gensim run key=value``
    kind: Literal["int", "float", "bool", "choice", "text"]
    value: str  # as the settings table holds it
    choices: tuple[str, ...] = ()
    help: str = ""
    section: str = "Other"

    @property
    def elem_id(self) -> str:
        return "set-" + self.key.replace(".", "-").replace("_", "-")


def _strip_optional(ann: Any) -> Any:
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if models:
            return models[0]
        return args[0] if len(args) == 1 else ann
    return ann


def _lookup(model: type[BaseModel], parts: list[str]) -> tuple[Any, str]:
    """The annotation and description of the field at ``parts`` under ``model`` (None: unknown)."""
    ann: Any = model
    desc = ""
    for part in parts:
        ann = _strip_optional(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            fields = {**ann.model_fields, **{f.alias: f for f in ann.model_fields.values() if f.alias}}
            if part not in fields:
                return None, ""
            ann, desc = fields[part].annotation, fields[part].description or ""
        elif typing.get_origin(ann) is dict:
            ann = typing.get_args(ann)[1]
        else:
            return None, ""
    return _strip_optional(ann), desc


def _kind(ann: Any, value: str) -> tuple[str, tuple[str, ...]]:
    if typing.get_origin(ann) is Literal:
        return "choice", tuple(str(a) for a in typing.get_args(ann))
    if ann is bool:
        return "bool", ()
    if ann is int:
        return "int", ()
    if ann is float:
        return "float", ()
    if ann is None:  # a scenario parameter without a model: judged by its value
        if value in ("true", "false"):
            return "bool", ()
        for kind, cast in (("int", int), ("float", float)):
            try:
                cast(value)
                return kind, ()
            except ValueError:
                pass
    return "text", ()


def _section(key: str) -> str:
    for name, prefixes in SECTIONS:
        if any(key == p or (p.endswith(".") and key.startswith(p)) for p in prefixes):
            return name
    return "Other"


def setting_fields(rows: list[tuple[str, str]], simulation: type[BaseModel], memory: type[BaseModel],
                   params: type[BaseModel] | None) -> list[SettingField]:
    """A form field for each ``(key, value)`` settings row, typed from the config models."""
    out = []
    for key, value in rows:
        parts = key.split(".")
        if parts[0] == "memory":
            ann, desc = _lookup(memory, parts[1:])
        elif parts[0] == "scenario":
            ann, desc = _lookup(params, parts[1:]) if params is not None else (None, "")
        else:
            ann, desc = _lookup(simulation, parts)
        kind, choices = _kind(ann, value)
        out.append(SettingField(key, kind, value, choices, desc, _section(key)))  # type: ignore[arg-type]
    return out


def form_value(field: SettingField, raw: Any) -> str:
    """A form widget's value as the settings table writes it."""
    if raw is None:
        return ""
    if field.kind == "bool":
        return "true" if raw else "false"
    if field.kind == "int" and isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw)
