"""Training data in isolation: reading dataset files into examples, every refusal, and the pairs a
reward model learns from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulation.config import ConfigError
from simulation.training.data import Example, file_hash, load_examples, reward_pairs, sft_records

P = [{"role": "system", "content": "You are Ann."}, {"role": "user", "content": "Hire?"}]
A = [{"role": "assistant", "content": "reject"}]


def write(tmp: Path, rows: list, name: str = "d.jsonl") -> Path:
    path = tmp / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_sft_and_reward_examples(tmp_path):
    f = write(tmp_path, [{"messages": [*P, *A], "meta": {"action": "screen"}}, "", {"messages": [P[1], *A]}])
    ex = load_examples(f, "sft")
    assert ex == [Example(P, "reject", None, "screen"), Example([P[1]], "reject", None, "")]
    assert sft_records(ex)[0] == {"prompt": P, "completion": A}
    r = write(tmp_path, [{"prompt": P, "completion": A, "reward": 2, "meta": {"action": 7}}], "r.jsonl")
    (e,) = load_examples(r, "ppo")
    assert e == Example(P, "reject", 2.0, "7") and isinstance(e.reward, float)


EXACT = {"a row must be a JSON object", "a list of chat messages ending with the assistant's answer",
         "a list of chat messages", "one assistant message"}


@pytest.mark.parametrize("rows, method, where, says", [
    ([{"messages": [*P, *A]}, "[1, 2]"], "sft", "line 2", "a row must be a JSON object"),
    ([{"messages": [*P, *A]}, "{bad"], "sft", "line 2", "invalid JSON"),
    ([{"messages": [{"role": "assistant", "content": "x"}]}], "sft", "line 1: messages",
     "a list of chat messages ending with the assistant's answer"),
    ([{"messages": [*P]}], "sft", "line 1: messages", "a list of chat messages ending with the assistant's answer"),
    ([{"messages": [{"role": "user", "content": 3}, *A]}], "sft", "line 1: messages",
     "a list of chat messages ending with the assistant's answer"),
    ([{"messages": "hi"}], "sft", "line 1: messages", "a list of chat messages ending with the assistant's answer"),
    ([{"messages": [*P, *A], "extra": 1}], "sft", "line 1", "expected keys messages (the sft kind), got extra, messages"),
    ([{"meta": {}}], "sft", "line 1", "got none"),
    ([{"prompt": "hi", "completion": A, "reward": 1}], "ppo", "line 1: prompt", "a list of chat messages"),
    ([{"prompt": P, "completion": [{"role": "user", "content": "x"}], "reward": 1}], "ppo", "line 1: completion",
     "one assistant message"),
    ([{"prompt": P, "completion": [], "reward": 1}], "ppo", "line 1: completion", "one assistant message"),
    ([{"prompt": P, "completion": A, "reward": True}], "ppo", "line 1: reward", "a number, got True"),
    ([{"prompt": P, "completion": A, "reward": None}], "ppo", "line 1: reward", "a number, got None"),
    ([{"prompt": P, "chosen": A, "rejected": A}], "ppo", "line 1", "expected keys prompt, completion, reward"),
])
def test_each_refusal_names_line_and_field(tmp_path, rows, method, where, says):
    f = write(tmp_path, rows)
    with pytest.raises(ConfigError) as e:
        load_examples(f, method)
    (problem,) = e.value.problems
    assert problem.file == str(f) and problem.field == where and says in problem.reason, problem
    assert problem.reason == says if says in EXACT else True, problem.reason


def test_missing_and_empty_files(tmp_path):
    for path, reason in ((tmp_path / "nope.jsonl", "file not found"), (write(tmp_path, ["", "  "]), "the file is empty")):
        with pytest.raises(ConfigError) as e:
            load_examples(path, "sft")
        (p,) = e.value.problems
        assert (p.file, p.field, p.reason) == (str(path), "--data", reason)
    with pytest.raises(ConfigError, match="this is sft data; gensim train ppo needs the reward kind"):
        load_examples(write(tmp_path, [{"messages": [*P, *A]}]), "ppo")


def test_reward_pairs_order_each_prompts_answers():
    other = [{"role": "user", "content": "Apply?"}]
    ex = [Example(P, "pass", 1.0), Example(P, "reject", 5.0), Example(P, "maybe", 3.0), Example(P, "reject", 4.0),
          Example(other, "yes", 2.0), Example(P, "unrated", None)]
    pairs = [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in reward_pairs(ex)]
    assert sorted(pairs) == sorted([("reject", "pass"), ("reject", "maybe"), ("maybe", "pass"), ("reject", "pass"),
                                    ("reject", "maybe")])
    assert all(p["prompt"] == P for p in reward_pairs(ex))
    first = reward_pairs([Example(P, "a", 2.0), Example(P, "b", 1.0)])
    assert first == [{"prompt": P, "chosen": [{"role": "assistant", "content": "a"}],
                      "rejected": [{"role": "assistant", "content": "b"}]}]
    # the same prompt written with its keys in another order is the same prompt
    shuffled = [{"content": m["content"], "role": m["role"]} for m in P]
    assert len(reward_pairs([Example(P, "a", 2.0), Example(shuffled, "b", 1.0)])) == 1
    assert reward_pairs([Example(other, "a", 1.0), Example(other, "b", 1.0)]) == [], "equal scores: no pair"


def test_file_hash_is_the_files_sha256(tmp_path):
    import hashlib

    f = write(tmp_path, [{"messages": [*P, *A]}] * 3)
    assert file_hash(f) == hashlib.sha256(f.read_bytes()).hexdigest()


def test_spread_sample_gives_each_action_an_equal_share():
    from collections import Counter

    from simulation.training import spread_sample

    ex = ([Example(P, str(i), None, "memory.importance") for i in range(90)]
          + [Example(P, str(i), None, "screen") for i in range(30)] + [Example(P, str(i), None, "offer") for i in range(4)])
    got = spread_sample(ex, 40, seed=3)
    # 40 rows over 3 actions: offer has only 4, so the other two share the remaining 36
    assert Counter(e.action for e in got) == {"memory.importance": 18, "screen": 18, "offer": 4}
    assert [ex.index(e) for e in got] == sorted(ex.index(e) for e in got), "the file's order is kept"
    assert len({id(e) for e in got}) == 40
    assert spread_sample(ex, 40, seed=3) == got and spread_sample(ex, 40, seed=4) != got
    assert Counter(e.action for e in spread_sample(ex, 123, seed=0)) == {"memory.importance": 89, "screen": 30,
                                                                          "offer": 4}


def test_spread_sample_takes_kept_rows_whole():
    from collections import Counter

    from simulation.training import spread_sample

    ex = ([Example(P, str(i), None, "memory.importance") for i in range(90)]
          + [Example(P, str(i), None, "screen", keep=i < 25) for i in range(30)]
          + [Example(P, str(i), None, "offer", keep=True) for i in range(4)])
    got = spread_sample(ex, 100, seed=3)
    # the 29 kept rows whole (under 75 of 100); the 71 left are spread over the rest (90 memory, 5 unkept screenings)
    assert sum(e.keep for e in got) == 29
    assert Counter(e.action for e in got if not e.keep) == {"memory.importance": 66, "screen": 5}
    assert [ex.index(e) for e in got] == sorted(ex.index(e) for e in got), "the file's order is kept"


def test_spread_sample_leaves_the_other_decisions_their_share():
    from collections import Counter

    from simulation.training import KEPT_SHARE, spread_sample

    ex = ([Example(P, str(i), None, "memory.importance") for i in range(90)]
          + [Example(P, str(i), None, "screen", keep=i < 25) for i in range(30)]
          + [Example(P, str(i), None, "offer", keep=True) for i in range(4)])
    got = spread_sample(ex, 32, seed=3)
    # 29 kept rows are more than 75% of 32 (24): they are spread among themselves, the other 8 over the rest
    assert KEPT_SHARE == 0.75
    assert Counter(e.action for e in got if e.keep) == {"screen": 20, "offer": 4}
    assert Counter(e.action for e in got if not e.keep) == {"memory.importance": 4, "screen": 4}
    assert len({id(e) for e in got}) == 32
    # where the other rows cannot fill their 25%, the kept rows fill it: 5 others, so 25 kept of 30
    few_rest = ex[:5] + [e for e in ex if e.keep]
    got = spread_sample(few_rest, 30, seed=3)
    assert sum(e.keep for e in got) == 25 and sum(not e.keep for e in got) == 5
    # only kept rows: all of n is theirs
    only = [e for e in ex if e.keep]
    assert len(spread_sample(only, 10, seed=3)) == 10


def test_spread_sample_takes_a_calls_reorderings_together():
    from collections import Counter

    from simulation.training import spread_sample

    # 20 calls, each under 2 orders, beside 40 rows of another decision
    ex = ([Example(P, str(i), None, "screen", call=i // 2) for i in range(40)]
          + [Example(P, str(i), None, "memory.importance", call=100 + i) for i in range(40)])
    got = spread_sample(ex, 20, seed=3)
    per_call = Counter(e.call for e in got if e.action == "screen")
    assert sum(per_call.values()) == 10 and set(per_call.values()) == {2}, per_call
    assert spread_sample(ex, 20, seed=4) != got


def test_load_examples_reads_meta_keep(tmp_path):
    f = write(tmp_path, [{"messages": [*P, *A], "meta": {"action": "screen", "keep": True, "call_id": 7}},
                         {"messages": [*P, *A], "meta": {"action": "screen"}}])
    assert [e.keep for e in load_examples(f, "sft")] == [True, False]
    assert [e.call for e in load_examples(f, "sft")] == [7, None]


def test_the_batch_order_takes_every_row_once_an_epoch_and_runs_on():
    """7 rows in batches of 3 for 2 epochs: ceil(14 / 3) = 5 steps; the first 6 picks are 6 distinct rows
    of the first shuffle; the third batch is the first shuffle's last row and two of the second's;
    the same seed gives the same batches, another seed others; a fraction of an epoch gives its steps."""
    from simulation.training.data import batch_order

    got = batch_order(7, 2.0, 3, seed=5)
    assert len(got) == 5 and all(len(b) == 3 for b in got)
    flat = [i for b in got for i in b]
    assert sorted(flat[:7]) == list(range(7)), "the first epoch is a shuffle of every row"
    assert len(set(flat[7:14])) == 7, "the second epoch takes every row once again"
    assert flat[:7] != list(range(7)), "shuffled, not in file order"
    assert batch_order(7, 2.0, 3, seed=5) == got and batch_order(7, 2.0, 3, seed=6) != got
    assert len(batch_order(1600, 0.5, 8, seed=43)) == 100 and batch_order(1600, 0.5, 8, 43) == batch_order(1600, 1.0, 8, 43)[:100]
    assert [sorted(b) for b in batch_order(2, 1.0, 8, seed=0)] == [[0, 1]], "a batch larger than the data: every row once"

