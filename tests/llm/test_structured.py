"""Structured answers in isolation: choice matching, JSON extraction, and the repair loop's accounting."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from simulation.llm import ChatRequest, StructuredClient
from simulation.llm.structured import StructuredOutputError, match_choice, parse_json
from simulation.llm.types import CallTag, ChatResult

CHOICES = ["pass", "reject"]


def test_match_choice_cases():
    assert match_choice("pass", CHOICES) == "pass"
    assert match_choice('  "Reject".  ', CHOICES) == "reject", "quotes, dots and case"
    assert match_choice("**PASS**", CHOICES) == "pass"
    assert match_choice("I would reject this one", CHOICES) == "reject", "a unique mention"
    assert match_choice("pass or reject", CHOICES) is None, "several mentions: ambiguous"
    assert match_choice("passing grade", CHOICES) == "pass", "no whole-word mention: a prefix"
    assert match_choice("bypass", CHOICES) is None, "a word containing an option is no mention"
    assert match_choice("keep looking, thanks", ["hire", "keep looking"]) == "keep looking"
    assert match_choice("2", ["1", "2", "10"]) == "2" and match_choice("10.", ["1", "2", "10"]) == "10"
    assert match_choice("10 apples", ["1", "10"]) == "10", "the longest option that starts the answer"
    assert match_choice("", CHOICES) is None and match_choice("none of them", CHOICES) is None


def test_parse_json_cases():
    assert parse_json('{"a": 1}') == {"a": 1} and parse_json(" [1, 2] ") == [1, 2]
    assert parse_json('Sure! {"apply": [1]} hope that helps') == {"apply": [1]}
    assert parse_json('```json\n[3]\n```') == [3]
    assert parse_json('list: [1] then {"b": 2}') == [1], "the first JSON value"
    assert parse_json('obj {"b": 2} then [1]') == {"b": 2}
    with pytest.raises(ValueError, match="no JSON found"):
        parse_json("no json here")
    with pytest.raises(ValueError):
        parse_json("{broken")


class Script:
    """Answers in turn, each with its own token counts and attempts; records the requests."""

    def __init__(self, *answers: str):
        self.answers = list(answers)
        self.requests: list[ChatRequest] = []

    async def complete(self, req: ChatRequest) -> ChatResult:
        self.requests.append(req)
        n = len(self.requests)
        return ChatResult(text=self.answers[n - 1], prompt_tokens=10 * n, completion_tokens=n, attempts=n)

    async def aclose(self) -> None:
        return None


class Apply(BaseModel):
    apply: list[int]


async def test_repair_loop_accounting_and_prompts():
    inner = Script("maybe", "Reject!")
    req = ChatRequest([{"role": "user", "content": "Hire?"}], max_tokens=6, temperature=0.3, choices=CHOICES,
                      seed=9, tag=CallTag("a", 2, "p", "screen", 1), model="m1")
    res = await StructuredClient(inner, max_repairs=2).complete(req)
    assert (res.text, res.raw_text, res.repairs) == ("reject", "Reject!", 1)
    assert (res.prompt_tokens, res.completion_tokens, res.attempts) == (30, 3, 3), "summed over both tries"
    repair = inner.requests[1]
    assert repair.messages[:1] == req.messages
    assert repair.messages[1] == {"role": "assistant", "content": "maybe"}
    assert repair.messages[2] == {"role": "user", "content": "answer is not one of the options. Answer with exactly "
                                                             "one of: pass, reject."}
    assert (repair.max_tokens, repair.temperature, repair.choices, repair.seed, repair.tag, repair.model) == \
        (6, 0.3, CHOICES, 9, req.tag, "m1")
    exact = await StructuredClient(Script("pass"), 1).complete(req)
    assert exact.raw_text is None and exact.repairs == 0


async def test_json_answers_are_validated_normalised_and_repaired():
    schema = Apply.model_json_schema()
    inner = Script("no idea", 'Here: {"apply": ["x"]}', '{"apply": [2, 1]}')
    req = ChatRequest([{"role": "user", "content": "Apply?"}], json_schema=schema, validator=Apply)
    res = await StructuredClient(inner, max_repairs=2).complete(req)
    assert res.text == '{"apply":[2,1]}' and res.repairs == 2 and res.raw_text == '{"apply": [2, 1]}'
    assert inner.requests[1].messages[-1]["content"].startswith("invalid JSON answer: no JSON found. Answer with only "
                                                                 "a JSON value matching this schema: ")
    assert json.loads(inner.requests[1].messages[-1]["content"].split("schema: ", 1)[1]) == schema
    assert inner.requests[2].validator is Apply
    plain = await StructuredClient(Script('{"b":1, "a":2}'), 0).complete(
        ChatRequest([{"role": "user", "content": "?"}], json_schema={"type": "object"}))
    assert plain.text == '{"a":2,"b":1}', "compact, keys sorted"


async def test_giving_up_keeps_the_last_answer_and_its_accounting():
    inner = Script("maybe", "perhaps")
    with pytest.raises(StructuredOutputError) as e:
        await StructuredClient(inner, max_repairs=1).complete(
            ChatRequest([{"role": "user", "content": "?"}], choices=CHOICES))
    assert str(e.value) == "no valid answer after 1 repair(s): answer is not one of the options; last: 'perhaps'"
    r = e.value.result
    assert (r.text, r.valid, r.repairs, r.prompt_tokens, r.completion_tokens, r.attempts) == \
        ("perhaps", False, 1, 30, 3, 3)
    with pytest.raises(StructuredOutputError, match="after 0 repair"):
        await StructuredClient(Script("x"), max_repairs=0).complete(
            ChatRequest([{"role": "user", "content": "?"}], choices=CHOICES))


async def test_free_text_passes_through_untouched():
    inner = Script("  Hello there  ")
    res = await StructuredClient(inner, 3).complete(ChatRequest([{"role": "user", "content": "hi"}]))
    assert res.text == "  Hello there  " and res.repairs == 0 and len(inner.requests) == 1


def test_match_choice_overlapping_options():
    # exact after stripping quotes, and case-insensitive exact, before looking for mentions
    assert match_choice("'a b'", ["a", "a b"]) == "a b"
    assert match_choice("A B", ["a", "a b"]) == "a b"
    # no whole-word mention: the longest option the answer starts with
    assert match_choice("abcd", ["ab", "abc"]) == "abc" and match_choice("abcd", ["abc", "ab"]) == "abc"


def test_parse_json_takes_the_first_whole_value():
    assert parse_json('Sure: {"a": {"b": 1}} ok') == {"a": {"b": 1}}
    assert parse_json("x [[1], [2]]") == [[1], [2]]
    assert parse_json('{"a": 1} and more') == {"a": 1}, "a value at the very start, with trailing prose"
    assert parse_json("[1] and more") == [1]


async def test_defaults_and_what_each_request_carries():
    import datetime

    class Dated(BaseModel):
        d: datetime.date

    inner = Script("maybe", "perhaps", "pass")
    with pytest.raises(StructuredOutputError):
        await StructuredClient(inner).complete(ChatRequest([{"role": "user", "content": "?"}], choices=CHOICES))
    assert len(inner.requests) == 2, "one repair by default"
    req = ChatRequest([{"role": "user", "content": "hi"}])
    free = Script("hello")
    await StructuredClient(free).complete(req)
    assert free.requests == [req]
    schema = {"type": "object"}
    js = Script("no", '{"d": "2024-01-02"}')
    res = await StructuredClient(js, 1).complete(ChatRequest([{"role": "user", "content": "?"}], json_schema=schema,
                                                             validator=Dated))
    assert js.requests[1].json_schema == schema and res.text == '{"d":"2024-01-02"}'
    long = "x" * 200
    with pytest.raises(StructuredOutputError) as e:
        await StructuredClient(Script(long), 0).complete(ChatRequest([{"role": "user", "content": "?"}],
                                                                     choices=CHOICES))
    assert str(e.value).endswith(f"last: {'x' * 80!r}")
