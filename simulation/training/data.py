"""Training data: read a ``gensim dataset`` JSONL file, check it, and convert it to trl's input.

SFT rows (``messages``) become trl's ``prompt``/``completion`` pairs, so the loss covers the answer
only: with the conversational ``messages`` format trl 1.12 puts the loss on the whole prompt for
SmolLM2's chat template. Reward rows keep ``prompt``/``completion``/``reward``.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ConfigError, ConfigProblem

KEYS = {"sft": ("messages",), "reward": ("prompt", "completion", "reward")}
METHOD_KIND = {"sft": "sft", "ppo": "reward"}


@dataclass(frozen=True, slots=True)
class Example:
    """One training example: a chat prompt, the assistant's answer and, for reward data, its score."""

    prompt: list[dict[str, str]]
    completion: str
    reward: float | None = None
    action: str = ""
    options: tuple[str, ...] = ()  # a choice call's options (``meta.options``): the choice loss applies
    target: dict[str, float] | None = None  # a distribution over ``options`` to train toward (``meta.target``)
    keep: bool = False  # ``meta.keep``: a row a row cap takes first, up to 60% of it (``spread_sample``)
    call: int | None = None  # ``meta.call_id``: the recorded call it came from (its reorderings share it)


def file_hash(path: Path) -> str:
    """sha256 of a data file, recorded in the adapter's manifest."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _messages(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in v)


def load_examples(path: Path, method: str) -> list[Example]:
    """The file's examples for ``method`` (sft or ppo); every problem is one line naming file and line."""
    kind = METHOD_KIND[method]
    if not path.is_file():
        raise ConfigError([ConfigProblem(str(path), "--data", "file not found")])
    lines = [(n, line) for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if line.strip()]
    if not lines:
        raise ConfigError([ConfigProblem(str(path), "--data", "the file is empty")])
    out: list[Example] = []
    for n, line in lines:
        where = f"line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError([ConfigProblem(str(path), where, f"invalid JSON: {e.msg}")]) from None
        if not isinstance(row, dict):
            raise ConfigError([ConfigProblem(str(path), where, "a row must be a JSON object")])
        keys = set(row) - {"meta"}
        if keys != set(KEYS[kind]):
            other = next((k for k, ks in KEYS.items() if keys == set(ks)), None)
            why = (f"this is {other} data; gensim train {method} needs the {kind} kind (gensim dataset --kind {kind})"
                   if other else f"expected keys {', '.join(KEYS[kind])} (the {kind} kind), got {', '.join(sorted(keys)) or 'none'}")
            raise ConfigError([ConfigProblem(str(path), where, why)])
        meta = row.get("meta") or {}
        if not isinstance(meta, dict):  # metadata is optional: a row without a mapping there has none
            meta = {}
        action = str(meta.get("action", ""))
        if kind == "sft":
            msgs = row["messages"]
            if not _messages(msgs) or msgs[-1]["role"] != "assistant" or len(msgs) < 2:
                raise ConfigError([ConfigProblem(str(path), f"{where}: messages", "a list of chat messages "
                                                 "ending with the assistant's answer")])
            options, target = _choice(meta, msgs[-1]["content"], str(path), where)
            call = meta.get("call_id")
            out.append(Example(msgs[:-1], msgs[-1]["content"], None, action, options, target, bool(meta.get("keep")),
                               call if isinstance(call, int) and not isinstance(call, bool) else None))
        else:
            comp, reward = row["completion"], row["reward"]
            if not _messages(row["prompt"]):
                raise ConfigError([ConfigProblem(str(path), f"{where}: prompt", "a list of chat messages")])
            if not _messages(comp) or comp[-1]["role"] != "assistant":
                raise ConfigError([ConfigProblem(str(path), f"{where}: completion", "one assistant message")])
            if isinstance(reward, bool) or not isinstance(reward, int | float):
                raise ConfigError([ConfigProblem(str(path), f"{where}: reward", f"a number, got {reward!r}")])
            out.append(Example(row["prompt"], comp[-1]["content"], float(reward), action))
    return out


def _choice(meta: dict[str, Any], answer: str, path: str,
            where: str) -> tuple[tuple[str, ...], dict[str, float] | None]:
    """A row's ``meta.options`` and ``meta.target``, checked: the answer is one of the options, the
    target's keys are options and its weights non-negative numbers with a positive sum."""
    options = meta.get("options")
    if options is None:
        if meta.get("target") is not None:
            raise ConfigError([ConfigProblem(path, f"{where}: meta.target", "needs meta.options")])
        return (), None
    if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, str) for o in options) \
            or len(set(options)) != len(options):
        raise ConfigError([ConfigProblem(path, f"{where}: meta.options", "a list of two or more distinct strings")])
    if answer not in options:
        raise ConfigError([ConfigProblem(path, f"{where}: meta.options", f"the answer {answer!r} is not an option")])
    target = meta.get("target")
    if target is not None:
        ok = isinstance(target, dict) and set(target) <= set(options) and all(
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in target.values())
        if not ok or sum(target.values()) <= 0:
            raise ConfigError([ConfigProblem(path, f"{where}: meta.target", "a map from options to non-negative "
                                             "weights with a positive sum")])
        target = {str(k): float(v) for k, v in target.items()}
    return tuple(options), target


def sft_records(examples: list[Example]) -> list[dict[str, Any]]:
    """trl's conversational prompt/completion records (loss on the completion only)."""
    return [{"prompt": e.prompt, "completion": [{"role": "assistant", "content": e.completion}]} for e in examples]


def reward_pairs(examples: list[Example]) -> list[dict[str, Any]]:
    """Preference pairs for the reward model: for each prompt, every higher-rated answer over every
    lower-rated one; prompts with a single score give none (nothing to tell apart)."""
    by_prompt: dict[str, list[Example]] = {}
    for e in examples:
        by_prompt.setdefault(json.dumps(e.prompt, sort_keys=True), []).append(e)
    pairs = []
    for group in by_prompt.values():
        for hi in group:
            for lo in group:
                if hi.reward is not None and lo.reward is not None and hi.reward > lo.reward and hi.completion != lo.completion:
                    pairs.append({"prompt": hi.prompt, "chosen": [{"role": "assistant", "content": hi.completion}],
                                  "rejected": [{"role": "assistant", "content": lo.completion}]})
    return pairs


def batch_order(n: int, epochs: float, batch_size: int, seed: int) -> list[list[int]]:
    """The rows (indices into ``n`` examples) of each step of a trainer (the choice loss's in
    ``training.choice``, ppo's reward model in ``training.trainers``): ``ceil(n * epochs / batch_size)``
    steps (at least one), each epoch a seeded shuffle of every row, a batch running on into the next
    epoch's shuffle. Shown on its own so a run's batches can be replayed offline
    (``bench/batch_mix.py``: which answers the last steps leaned on)."""
    rng = random.Random(seed)
    order: list[int] = []
    batches = []
    for _ in range(max(1, math.ceil(n * epochs / batch_size))):
        if len(order) < batch_size:
            order += rng.sample(range(n), n)
        batches.append([order.pop(0) for _ in range(min(batch_size, n))])
    return batches
