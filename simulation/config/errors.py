"""Configuration errors that name the file, the field and the reason."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError


@dataclass(frozen=True)
class ConfigProblem:
    """One problem: which file, which field (dotted path), and why."""

    file: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field or '<root>'}: {self.reason}"


class ConfigError(Exception):
    """One or more configuration problems; ``str()`` gives one line per problem."""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    def __reduce__(self) -> tuple:
        # rebuilt from its problems (not its message) when it crosses a process boundary
        return type(self), (self.problems,)


def loc_to_path(loc: tuple) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def problems_from_validation(err: ValidationError, file: str, prefix: str = "") -> list[ConfigProblem]:
    out = []
    for e in err.errors():
        path = loc_to_path(tuple(e["loc"]))
        if prefix:
            path = f"{prefix}.{path}" if path and not path.startswith("[") else f"{prefix}{path}"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        elif e["type"] == "missing":
            msg = "required field is missing"
        elif e["type"] == "value_error":  # our validators' own words, without pydantic's prefix
            msg = msg.removeprefix("Value error, ")
        out.append(ConfigProblem(file, path, msg))
    return out
