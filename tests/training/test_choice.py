"""The choice loss (``training.choice``): option probabilities as the constrained decoder gives them,
and soft targets learned as distributions (on a tiny random base)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulation.training import read_manifest, train
from simulation.training.choice import choice_row, option_logprobs, path_logprobs, sharpened
from simulation.training.data import Example, load_examples
from simulation.training.trainers import tokenizer_for

ASK = [{"role": "system", "content": "You are Ann."}, {"role": "user", "content": "How important, 1 to 10?"}]


def model_and_tok(folder: Path, adapter: Path | None = None):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).eval()
    return model, tokenizer_for(str(folder))


def probs(model, tok, e: Example) -> dict[str, float]:
    import torch

    row = choice_row(tok, e)
    with torch.no_grad():
        (lp,) = option_logprobs(model, [row], tok.pad_token_id, "cpu")
    return dict(zip(row.options, lp.exp().tolist(), strict=True))


def test_option_probabilities_equal_the_scorers_on_full_passes(tiny_base):
    """"10" begins with "1": the end token tells them apart, as the vLLM scorer has it; the batched
    branch-point pass equals ``constrained_probs`` on each option's own full forward pass."""
    import torch

    from simulation.llm.scoring import constrained_probs

    model, tok = model_and_tok(tiny_base)
    e = Example(ASK, "10", None, "memory.importance", ("1", "2", "10"))
    row = choice_row(tok, e)
    end = tok.convert_tokens_to_ids("<|im_end|>")
    assert row.paths[0][-1] == end and row.paths[2][-1] != end and len(row.paths[1]) == 1
    with torch.no_grad():
        got = [p.exp().tolist() for p in option_logprobs(model, [row, choice_row(tok, Example(ASK, "2", None, "x",
                                                                                                ("2", "3")))],
                                                          tok.pad_token_id, "cpu")]
    paths = {}
    for o, path in zip(row.options, row.paths, strict=True):
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([row.prompt + path])).logits[0], -1)
        paths[o] = [(t, float(lp[len(row.prompt) + k - 1, t])) for k, t in enumerate(path)]
    want = constrained_probs(paths)
    assert got[0] == pytest.approx([want[o] for o in row.options], abs=1e-5)
    assert sum(got[1]) == pytest.approx(1.0) and len(got[1]) == 2


def test_full_path_logprobs_count_every_token_over_the_whole_vocabulary(tiny_base):
    """The second figure of ``path_logprobs``: each option's path log-probability, every token over
    the whole vocabulary, equal to the sum over its own full forward pass."""
    import torch

    model, tok = model_and_tok(tiny_base)
    row = choice_row(tok, Example(ASK, "keep looking", None, "offer", ("hire", "keep looking", "10", "1")))
    assert max(len(p) for p in row.paths) > 1
    with torch.no_grad():
        ((constrained, full),) = path_logprobs(model, [row], tok.pad_token_id, "cpu")
        for k, path in enumerate(row.paths):
            lp = torch.log_softmax(model(torch.tensor([row.prompt + path])).logits[0], -1)
            want = sum(float(lp[len(row.prompt) + i - 1, t]) for i, t in enumerate(path))
            assert float(full[k]) == pytest.approx(want, abs=1e-4)
    assert float(constrained.exp().sum()) == pytest.approx(1.0)
    assert float(full.exp().sum()) < 1.0, "a random model puts most mass on other tokens"


def option_mass(model, tok, e: Example) -> float:
    """The whole-vocabulary probability of all of ``e``'s options' paths together."""
    import torch

    with torch.no_grad():
        ((_, full),) = path_logprobs(model, [choice_row(tok, e)], tok.pad_token_id, "cpu")
    return float(full.exp().sum())


def rows_file(path: Path, target: dict[str, float] | None, n: int = 16) -> Path:
    meta = {"action": "screen", "options": ["pass", "reject"], **({"target": target} if target else {})}
    row = {"messages": [*ASK[:1], {"role": "user", "content": "Hire? pass or reject"},
                        {"role": "assistant", "content": "pass"}], "meta": meta}
    path.write_text("".join(json.dumps(row) + "\n" for _ in range(n)))
    return path


def test_a_soft_target_is_learned_as_a_distribution(tmp_path, wide_base):
    """The same prompt trained toward 70/30 ends near 70/30; trained on its answer alone ("pass",
    one-hot) it ends near 100/0: the target, not the drawn answer, is what the choice loss fits."""
    got = {}
    base_model, tok = model_and_tok(wide_base)
    base_mass = option_mass(base_model, tok, load_examples(rows_file(tmp_path / "x.jsonl", None), "sft")[0])
    for name, target in (("soft", {"pass": 0.7, "reject": 0.3}), ("hard", None)):
        data = rows_file(tmp_path / f"{name}.jsonl", target)
        m = train("sft", data, tmp_path / name, base=str(wide_base), lora_rank=4, batch_size=4, epochs=6,
                  learning_rate=3e-2, progress=False, objective="choices")
        assert m.objective == "choices" and read_manifest(tmp_path / name).objective == "choices"
        assert len(m.losses) == 24 and m.losses[-1] < m.losses[0]
        model, tok = model_and_tok(wide_base, tmp_path / name)
        (e,) = load_examples(data, "sft")[:1]
        got[name] = probs(model, tok, e)["pass"]
        # the options' own tokens take the mass: guided decoding cannot wander onto other spellings
        assert option_mass(model, tok, e) > 20 * base_mass, (name, option_mass(model, tok, e), base_mass)
    before = probs(base_model, tok, load_examples(tmp_path / "soft.jsonl", "sft")[0])["pass"]
    assert abs(before - 0.7) > 0.1, f"the base is not already there ({before:.2f})"
    assert got["soft"] == pytest.approx(0.7, abs=0.07), got
    assert got["hard"] > 0.95, got


def test_rows_without_options_keep_the_token_loss(tmp_path, tiny_base):
    """A JSON answer beside choice rows: one batch trains both, and each step's loss is logged."""
    data = tmp_path / "mixed.jsonl"
    rows_file(data, None, 4)
    with open(data, "a") as f:
        f.write(json.dumps({"messages": [*ASK, {"role": "assistant", "content": '{"apply":[1]}'}],
                            "meta": {"action": "apply"}}) + "\n")
    m = train("sft", data, tmp_path / "a", base=str(tiny_base), lora_rank=4, batch_size=5, epochs=2,
              learning_rate=1e-2, progress=False, objective="choices")
    log = [json.loads(x) for x in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in log] == [1, 2] and [x["loss"] for x in log] == m.losses
    assert m.actions == {"screen": 4, "apply": 1}


def test_a_step_in_bounded_passes_is_the_same_step(tmp_path, tiny_base, monkeypatch):
    """A batch split into forward passes of at most FORWARD_TOKENS tokens (memory: run T's offer
    responses took 23 GiB in one pass) trains exactly as one pass: same losses, same adapter."""
    from simulation.training import choice

    assert choice.passes([5, 5, 20, 3, 3], budget=10) == [[0, 1], [2], [3, 4]], "a row over the budget goes alone"
    assert choice.passes([5, 5, 5], budget=100) == [[0, 1, 2]]
    data = tmp_path / "mixed.jsonl"
    rows_file(data, None, 6)
    with open(data, "a") as f:
        f.write(json.dumps({"messages": [*ASK, {"role": "assistant", "content": '{"apply":[1]}'}],
                            "meta": {"action": "apply"}}) + "\n")
    got: dict[str, list[float]] = {}
    split: list[int] = []
    real = choice.passes

    def counted(sizes: list[int], budget: int | None = None) -> list[list[int]]:
        split.append(len(real(sizes, budget)))
        return real(sizes, budget)

    monkeypatch.setattr(choice, "passes", counted)
    for name, budget in (("one", 10**9), ("split", 1)):
        monkeypatch.setattr(choice, "FORWARD_TOKENS", budget)
        split.clear()
        got[name] = train("sft", data, tmp_path / name, base=str(tiny_base), lora_rank=4, batch_size=7, epochs=2,
                          learning_rate=1e-2, progress=False, objective="choices").losses
        assert split == ([1, 1] if name == "one" else [7, 7]), split
    assert got["one"] == pytest.approx(got["split"], rel=1e-4) and got["one"][0] != got["one"][1]


@pytest.mark.parametrize("meta, says", [
    ({"options": ["pass"]}, "meta.options: a list of two or more distinct strings"),
    ({"options": ["hire", "reject"]}, "the answer 'pass' is not an option"),
    ({"options": ["pass", "reject"], "target": {"maybe": 1.0}}, "meta.target: a map from options"),
    ({"options": ["pass", "reject"], "target": {"pass": -1, "reject": 0.5}}, "meta.target: a map from options"),
    ({"target": {"pass": 1.0}}, "meta.target: needs meta.options"),
])
def test_bad_options_or_targets_are_one_line_errors(tmp_path, meta, says):
    from simulation.config import ConfigError

    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"messages": [*ASK, {"role": "assistant", "content": "pass"}], "meta": meta}) + "\n")
    with pytest.raises(ConfigError) as e:
        load_examples(data, "sft")
    assert says in str(e.value) and "line 1" in str(e.value)


def test_the_choice_objective_is_sft_only(tmp_path, tiny_base):
    from simulation.config import ConfigError

    with pytest.raises(ConfigError, match="--objective"):
        train("ppo", rows_file(tmp_path / "d.jsonl", None), tmp_path / "a", base=str(tiny_base), objective="choices")


def test_each_right_answer_of_a_decision_weighs_alike():
    """Rated rows (one right answer) are weighted per decision so each answer's rows sum to the same
    weight; anchors with a target and rows without options weigh 1."""
    from simulation.training.choice import answer_weights

    def ex(action: str, answer: str, target: dict | None = None, options=("pass", "reject")) -> Example:
        return Example(ASK, answer, None, action, options, target)

    rows = [ex("screen", "pass")] * 6 + [ex("screen", "reject")] * 2 + [ex("screen", "pass", {"pass": 0.6})] \
        + [ex("offer", "hire", None, ("hire", "keep looking"))] * 3 + [Example(ASK, '{"apply":[1]}', None, "apply")]
    w = answer_weights(rows)
    assert w[:6] == [8 / 12] * 6 and w[6:8] == [8 / 4] * 2, "6 pass and 2 reject: each answer weighs 4 in all"
    assert w[8] == 1.0 and w[-1] == 1.0, "a soft target and a JSON answer weigh 1"
    assert w[9:12] == [1.0] * 3, "one answer only: nothing to balance"


def test_training_uses_the_answer_weights(tmp_path, wide_base, monkeypatch):
    """One prompt rated "pass" 6 times and "reject" twice: unweighted, the fit leans to the majority's
    "pass"; weighted alike, it moves far toward "reject". (Where the fit ends exactly depends on the
    tiny random base, whose options start with almost none of the probability: the weighted batch loss
    is checked against its arithmetic below.)"""
    import torch

    from simulation.training import choice

    meta = {"action": "screen", "options": ["pass", "reject"]}
    row = [*ASK[:1], {"role": "user", "content": "Hire? pass or reject"}]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"messages": [*row, {"role": "assistant", "content": a}], "meta": meta}) + "\n"
                            for a in ["pass"] * 6 + ["reject"] * 2))
    examples = load_examples(data, "sft")
    model, tok = model_and_tok(wide_base)
    weights = choice.answer_weights(examples)
    with torch.no_grad():
        each = [float(choice.batch_loss(model, tok, [e], "cpu")) for e in examples]
        got = float(choice.batch_loss(model, tok, examples, "cpu", weights))
    assert got == pytest.approx(sum(w * x for w, x in zip(weights, each, strict=True)) / len(examples), rel=1e-4)
    fits = {}
    for name in ("weighted", "unweighted"):
        if name == "unweighted":
            monkeypatch.setattr(choice, "answer_weights", lambda rows: [1.0] * len(rows))
        train("sft", data, tmp_path / name, base=str(wide_base), lora_rank=4, batch_size=8, epochs=30,
              learning_rate=3e-2, progress=False, objective="choices")
        fits[name] = probs(*model_and_tok(wide_base, tmp_path / name), examples[0])["pass"]
    assert fits["unweighted"] > 0.7 and fits["weighted"] < fits["unweighted"] - 0.3, fits


def test_explicit_weights_must_match_the_examples(tmp_path):
    """A weight list of the wrong length is refused before any model is loaded (the base here does not exist)."""
    from simulation.training import choice

    rows = [Example(ASK, a, None, "screen", ("pass", "reject")) for a in ("pass", "reject")]
    with pytest.raises(ValueError, match="1 weights for 2 examples"):
        choice.train_choices(rows, str(tmp_path / "no-model"), None, tmp_path, 1.0, 4, 1e-3, 2, 0, False, weights=[1.0])


def _lora_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


@pytest.mark.parametrize("objective", ["choices", "tokens"])
def test_a_linear_schedule_decays_the_rate_that_trains(tmp_path, tiny_base, objective):
    """--lr-schedule linear: the rate falls step by step (the choice loss: step k of n at lr * (n - k + 1) / n)
    and the manifest says so; the adapter differs from the constant rate's on the same seed and data, so
    the rate reached the optimiser and is not only logged."""
    import torch

    data = rows_file(tmp_path / "d.jsonl", None, 8)
    rates, weights = {}, {}
    for schedule in ("constant", "linear"):
        m = train("sft", data, tmp_path / schedule, base=str(tiny_base), lora_rank=4, batch_size=2, learning_rate=1e-2,
                  progress=False, objective=objective, lr_schedule=schedule)
        assert m.lr_schedule == schedule and read_manifest(tmp_path / schedule).lr_schedule == schedule
        log = [json.loads(x) for x in (tmp_path / schedule / "train_log.jsonl").read_text().splitlines()]
        rates[schedule] = [x["learning_rate"] for x in log if "learning_rate" in x]
        weights[schedule] = _lora_weights(tmp_path / schedule)
    assert len(rates["constant"]) == len(rates["linear"]) == 4, rates
    assert set(rates["constant"]) == {1e-2}
    assert all(a > b for a, b in zip(rates["linear"], rates["linear"][1:], strict=False)), rates
    if objective == "choices":
        assert rates["linear"] == pytest.approx([1e-2, 7.5e-3, 5e-3, 2.5e-3])
    assert any(not torch.equal(weights["constant"][k], weights["linear"][k]) for k in weights["constant"])


def test_a_schedule_other_than_constant_is_sft_only(tmp_path, tiny_base):
    """ppo keeps trl's own schedule: asking it for another is a one-line error, not silently ignored."""
    from simulation.config import ConfigError
    from simulation.training import choice

    with pytest.raises(ConfigError, match="--lr-schedule") as e:
        train("ppo", rows_file(tmp_path / "d.jsonl", None), tmp_path / "a", base=str(tiny_base), lr_schedule="linear")
    assert "sft only" in str(e.value)
    with pytest.raises(ConfigError, match="--lr-schedule"):
        train("sft", rows_file(tmp_path / "d.jsonl", None), tmp_path / "a", base=str(tiny_base), lr_schedule="cosine")
    with pytest.raises(ValueError, match="schedule: constant or linear"):
        choice.train_choices([], str(tiny_base), None, tmp_path, 1.0, 4, 1e-3, 2, 0, False, schedule="cosine")


def test_a_sharpened_target_keeps_its_order_and_sums_to_one():
    p = {"search": 0.54, "wait": 0.46}
    assert sharpened(p, 1) is p and sharpened(None, 4) is None
    s4 = sharpened(p, 4)
    assert s4 == pytest.approx({"search": 0.54**4 / (0.54**4 + 0.46**4), "wait": 0.46**4 / (0.54**4 + 0.46**4)})
    assert s4["search"] > 0.65 and sum(s4.values()) == pytest.approx(1.0)
    three = sharpened({"1": 0.2, "2": 0.5, "3": 0.3}, 3)
    assert sorted(three, key=three.get) == ["1", "3", "2"] and sum(three.values()) == pytest.approx(1.0)
    assert sharpened({"a": 0.5, "b": 0.5}, 8) == {"a": 0.5, "b": 0.5}


def test_training_steps_through_the_batch_order(tmp_path, tiny_base, monkeypatch):
    """The trainer trains the batches :func:`batch_order` gives, step by step (replayed offline by
    bench/batch_mix.py, which is only true if the trainer uses it)."""
    from simulation.training import choice

    data = tmp_path / "d.jsonl"
    meta = {"action": "screen", "options": ["pass", "reject"]}
    data.write_text("".join(json.dumps({"messages": [*ASK[:1], {"role": "user", "content": f"CV {k}: pass or reject"},
                                                     {"role": "assistant", "content": "pass"}], "meta": meta}) + "\n"
                            for k in range(8)))
    examples = load_examples(data, "sft")
    planned = [[3, 1], [0], [7, 6, 2]]
    monkeypatch.setattr(choice, "batch_order", lambda n, epochs, batch_size, seed: planned)
    steps: list[set[str]] = [set()]
    real = choice.batch_loss

    def record(model, tok, rows, dev, weights=None):
        steps[-1].update(r.prompt[-1]["content"] for r in rows)
        return real(model, tok, rows, dev, weights)

    class Marks:
        def on_step(self, step, total):
            steps.append(set())

        def on_loss(self, step, loss):
            pass

        def cancelled(self):
            return False

    monkeypatch.setattr(choice, "batch_loss", record)
    losses = choice.train_choices(examples, str(tiny_base), None, tmp_path, 1.0, 4, 1e-3, 2, 0, False, Marks())
    assert len(losses) == 3
    assert steps[:-1] == [{f"CV {k}: pass or reject" for k in b} for b in planned]


def test_a_snapshot_is_the_adapter_trained_that_many_steps(tmp_path, tiny_base):
    """--save-every 2 over 5 steps: snapshots after steps 2 and 4 (the fifth is the adapter), each servable
    (a manifest naming its step and its losses) and equal, weight for weight, to an adapter trained only
    that far on the same seed (epochs 0.4: the same first batches), so a trajectory read from them is
    that training's."""
    import torch

    from simulation.training import snapshots

    data = tmp_path / "d.jsonl"
    meta = {"action": "screen", "options": ["pass", "reject"]}
    data.write_text("".join(json.dumps({"messages": [*ASK[:1], {"role": "user", "content": f"CV {k}: pass or reject"},
                                                     {"role": "assistant", "content": ("pass", "reject")[k % 2]}],
                                        "meta": meta}) + "\n" for k in range(10)))
    full = train("sft", data, tmp_path / "full", base=str(tiny_base), lora_rank=4, batch_size=2, learning_rate=1e-2,
                 progress=False, objective="choices", seed=3, save_every=2)
    snaps = snapshots(tmp_path / "full")
    assert [s.name for s in snaps] == ["step-00002", "step-00004"] and len(full.losses) == 5
    two = read_manifest(snaps[0])
    assert two.step == 2 and two.losses == full.losses[:2] and two.epochs == pytest.approx(0.4)
    assert read_manifest(tmp_path / "full").step is None
    short = train("sft", data, tmp_path / "short", base=str(tiny_base), lora_rank=4, batch_size=2, learning_rate=1e-2,
                  progress=False, objective="choices", seed=3, epochs=0.4)
    assert short.losses == full.losses[:2]
    a, b, end = _lora_weights(snaps[0]), _lora_weights(tmp_path / "short"), _lora_weights(tmp_path / "full")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], end[k]) for k in a)  # a snapshot is not the finished adapter


def test_save_every_is_for_the_choices_objective(tmp_path, tiny_base):
    """Snapshots come from the choice trainer: asking trl's token loss or ppo for them is a one-line error."""
    from simulation.config import ConfigError

    for method, objective, every in (("sft", "tokens", 2), ("ppo", "tokens", 2), ("sft", "choices", 0)):
        with pytest.raises(ConfigError, match="--save-every"):
            train(method, rows_file(tmp_path / "d.jsonl", None), tmp_path / "a", base=str(tiny_base),
                  objective=objective, save_every=every)
