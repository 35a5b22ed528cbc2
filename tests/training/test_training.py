"""Training inputs, the adapter manifest, --from chaining and the base check (on a tiny random base)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulation.cli import main
from simulation.training import read_manifest, train
from simulation.training.data import load_examples, reward_pairs, sft_records

PROMPT = [{"role": "system", "content": "You are Ann."}, {"role": "user", "content": "Hire? pass or reject"}]


def write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def sft_row(answer: str = "reject", action: str = "screen") -> dict:
    return {"messages": [*PROMPT, {"role": "assistant", "content": answer}], "meta": {"action": action}}


def reward_row(answer: str, reward: float) -> dict:
    return {"prompt": PROMPT, "completion": [{"role": "assistant", "content": answer}], "reward": reward, "meta": {}}


def test_sft_rows_become_prompt_completion_pairs(tmp_path):
    ex = load_examples(write(tmp_path / "d.jsonl", [sft_row(), sft_row("pass", "hire")]), "sft")
    recs = sft_records(ex)
    assert recs[0] == {"prompt": PROMPT, "completion": [{"role": "assistant", "content": "reject"}]}
    assert [e.action for e in ex] == ["screen", "hire"]


def test_reward_rows_and_preference_pairs(tmp_path):
    ex = load_examples(write(tmp_path / "r.jsonl", [reward_row("pass", 1.0), reward_row("reject", 5.0),
                                                    reward_row("reject", 5.0)]), "ppo")
    assert [e.reward for e in ex] == [1.0, 5.0, 5.0]
    pairs = reward_pairs(ex)
    assert pairs and all(p["chosen"][0]["content"] == "reject" and p["rejected"][0]["content"] == "pass" for p in pairs)


@pytest.mark.parametrize("rows, method, says", [
    ([], "sft", "the file is empty"),
    ([reward_row("pass", 1.0)], "sft", "this is reward data"),
    ([sft_row()], "ppo", "this is sft data"),
    ([{"messages": [], "answer": 1}], "sft", "expected keys messages"),
    (["{not json"], "sft", "line 1: invalid JSON"),
    ([{"messages": PROMPT}], "sft", "ending with the assistant's answer"),
    ([{**reward_row("pass", 1.0), "reward": "high"}], "ppo", "reward: a number"),
    ([reward_row("pass", 3.0), reward_row("reject", 3.0)], "ppo", "every row has the same reward"),
])
def test_bad_data_is_one_line_error(tmp_path, capsys, rows, method, says):
    data = write(tmp_path / "bad.jsonl", rows)
    assert main(["train", method, "--data", str(data), "--out", str(tmp_path / "ad"), "--base", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err and str(data) in err, err
    assert not (tmp_path / "ad").exists()


def adapter_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def test_manifest_and_from_chaining(tmp_path, tiny_base, capfd):
    data = write(tmp_path / "d.jsonl", [sft_row()] * 6 + [sft_row("pass", "hire")] * 2)
    a = tmp_path / "a"
    capfd.readouterr()
    m = train("sft", data, a, base=str(tiny_base), lora_rank=4, batch_size=4, progress=False)
    printed = capfd.readouterr()
    assert "'loss'" not in printed.out + printed.err, "the step logs go to the adapter folder, not the console"
    assert "Tokenizing" not in printed.err
    logged = [json.loads(line) for line in (a / "train_log.jsonl").read_text().splitlines()]
    assert [float(x["loss"]) for x in logged if "loss" in x] == pytest.approx([float(x) for x in m.losses], rel=1e-4)
    assert [x["step"] for x in logged if "loss" in x] == [1, 2]
    assert (a / "adapter_config.json").is_file() and not list(tmp_path.glob(".a.partial-*"))
    got = read_manifest(a)
    assert got == m and m.base_model == str(tiny_base.resolve()) and m.method == "sft" and m.samples == 8
    assert m.parent is None and len(m.losses) == 2 and m.actions == {"screen": 6, "hire": 2}
    assert len(m.data_sha256) == 64 and m.train_s > 0 and m.device == "cpu"
    # --from continues the parent's weights: with a zero learning rate the child is the parent
    b = tmp_path / "b"
    mb = train("sft", data, b, parent=a, learning_rate=0.0, batch_size=4, progress=False)
    assert mb.parent == str(a.resolve()) and mb.parent_chain == [str(a.resolve())]
    assert mb.base_model == m.base_model and mb.lora_rank == 4  # the base and rank come from the parent
    wa, wb = adapter_weights(a), adapter_weights(b)
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)
    c = tmp_path / "c"
    mc = train("sft", data, c, parent=b, learning_rate=1e-2, batch_size=4, progress=False)
    assert mc.parent_chain == [str(b.resolve()), str(a.resolve())]
    assert any(not (wb[k] == adapter_weights(c)[k]).all() for k in wb)


def test_from_an_adapter_of_another_base_is_refused(tmp_path, tiny_base, capsys):
    data = write(tmp_path / "d.jsonl", [sft_row()] * 4)
    a = tmp_path / "a"
    train("sft", data, a, base=str(tiny_base), lora_rank=4, batch_size=4, progress=False)
    other = tmp_path / "other-base"
    other.mkdir()
    (other / "config.json").write_text((tiny_base / "config.json").read_text())
    capsys.readouterr()  # the first training's progress output
    assert main(["train", "sft", "--data", str(data), "--out", str(tmp_path / "b"), "--from", str(a),
                 "--base", str(other)]) == 2
    err = capsys.readouterr().err
    assert "--from" in err and "trained on base" in err and len(err.strip().splitlines()) == 1
    assert main(["train", "sft", "--data", str(data), "--out", str(tmp_path / "c"), "--from", str(tmp_path)]) == 2
    assert "not a PEFT adapter folder" in capsys.readouterr().err


def test_cancelled_training_leaves_nothing(tmp_path, tiny_base, monkeypatch):
    import simulation.training.trainers as trainers

    def interrupted(*a, **k):
        (a[3] / "adapter_config.json").write_text("{}")  # half-written
        raise KeyboardInterrupt

    monkeypatch.setattr(trainers, "train_sft", interrupted)
    data = write(tmp_path / "d.jsonl", [sft_row()] * 4)
    with pytest.raises(KeyboardInterrupt):
        train("sft", data, tmp_path / "ad", base=str(tiny_base), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl"]


def test_ppo_smoke_gives_a_loadable_adapter(tmp_path, tiny_base):
    """Reward model plus two PPO steps on tiny data, then the adapter loads onto the base."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    data = write(tmp_path / "r.jsonl", [reward_row("reject", 5.0), reward_row("pass", 1.0)] * 2)
    m = train("ppo", data, tmp_path / "ppo", base=str(tiny_base), lora_rank=4, batch_size=2, epochs=2, progress=False)
    assert m.method == "ppo" and len(m.losses) >= 2 and m.reward_model_loss
    assert any("loss/policy_avg" in json.loads(line) for line in (tmp_path / "ppo" / "train_log.jsonl").read_text().splitlines())
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), str(tmp_path / "ppo"))
    assert any("lora" in n for n, _ in model.named_parameters())


def test_pad_token_is_distinct_from_the_end_token_or_the_base_is_refused(tmp_path):
    from transformers import AutoTokenizer

    from simulation.config.errors import ConfigError
    from simulation.services.model_assets import chat_model_dir
    from simulation.training.trainers import tokenizer_for

    tok = tokenizer_for(str(chat_model_dir()))  # SmolLM2 pads with its end token: another one is chosen
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    # a base whose every candidate is its end token: a clear refusal, not a bare StopIteration
    bad = AutoTokenizer.from_pretrained(str(chat_model_dir()), eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    bad.save_pretrained(tmp_path / "bad")
    with pytest.raises(ConfigError, match="no token to pad with"):
        tokenizer_for(str(tmp_path / "bad"))


def test_sft_loss_covers_the_answer_only(tmp_path, tiny_base):
    """The batches trl trains on: every prompt token is masked out of the loss (-100), the answer's
    tokens are not, so the adapter learns the answer and not the prompt."""
    from simulation.training.trainers import sft_trainer

    ex = load_examples(write(tmp_path / "d.jsonl", [sft_row("reject because the CV lacks a degree")]), "sft")
    trainer = sft_trainer(ex, str(tiny_base), None, tmp_path / "out", 1.0, 4, 1e-3, 1, 0, False)
    batch = next(iter(trainer.get_train_dataloader()))
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    scored = [i for i, x in zip(ids, labels, strict=True) if x != -100]
    tok = trainer.processing_class
    answer = tok.decode(scored)
    assert "reject because the CV lacks a degree" in answer
    assert "Hire?" not in answer and "You are Ann" not in answer, answer
    first = labels.index(next(x for x in labels if x != -100))
    assert all(x == -100 for x in labels[:first]) and first > len(tok(PROMPT[1]["content"])["input_ids"])


class Watch:
    """A TrainWatch that records what it sees and cancels after ``stop_after`` steps (None: never)."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.steps: list[tuple[int, int]] = []
        self.losses: list[tuple[int, float]] = []
        self.stop_after = stop_after

    def on_step(self, step: int, total: int) -> None:
        self.steps.append((step, total))

    def on_loss(self, step: int, loss: float) -> None:
        self.losses.append((step, loss))

    def cancelled(self) -> bool:
        return self.stop_after is not None and len(self.steps) >= self.stop_after


def test_a_watch_sees_every_step_and_loss_and_can_cancel(tmp_path, tiny_base, capfd):
    """SFT and PPO report each step (of the right total) and each logged loss; a cancel stops the
    training at the next step and leaves no adapter folder. With progress on, the console gets the
    bar and not the step dictionaries."""
    from simulation.training import TrainingCancelled

    data = write(tmp_path / "d.jsonl", [sft_row("reject"), sft_row("pass")] * 4)
    w = Watch()
    capfd.readouterr()
    m = train("sft", data, tmp_path / "a", base=str(tiny_base), lora_rank=4, batch_size=2, progress=True, watch=w)
    printed = capfd.readouterr()
    assert "4/4" in printed.err and "'loss'" not in printed.out + printed.err
    assert [s for s, _ in w.steps] == list(range(1, len(w.steps) + 1)) and w.steps[-1] == (4, 4)
    assert [round(loss, 4) for _, loss in w.losses] == pytest.approx(m.losses, abs=1e-4)
    stop = Watch(stop_after=1)
    with pytest.raises(TrainingCancelled, match="step 1 of 4"):
        train("sft", data, tmp_path / "b", base=str(tiny_base), lora_rank=4, batch_size=2, progress=False, watch=stop)
    assert not (tmp_path / "b").exists() and not list(tmp_path.glob(".b.partial-*"))
    rdata = write(tmp_path / "r.jsonl", [reward_row("reject", 5.0), reward_row("pass", 1.0)] * 2)
    early = Watch(stop_after=1)
    with pytest.raises(TrainingCancelled, match="reward model"):
        train("ppo", rdata, tmp_path / "p", base=str(tiny_base), lora_rank=4, batch_size=2, progress=False,
              watch=early)
    assert not (tmp_path / "p").exists()


def test_the_correction_loop_trains_in_a_child_process(tmp_path, tiny_base):
    """``gensim correct`` trains in a spawned process (its memory goes back when it ends): the adapter
    and manifest are those of an in-process training, and a data error comes back as the same one-line
    ConfigError."""
    import simulation.correction.loop as loop
    from simulation.config import ConfigError

    data = write(tmp_path / "d.jsonl", [sft_row()] * 4)
    m = loop.train("sft", data, tmp_path / "a", base=str(tiny_base), lora_rank=4, batch_size=4, progress=False)
    assert m.samples == 4 and read_manifest(tmp_path / "a") == m
    assert (tmp_path / "a" / "train_log.jsonl").read_text()
    with pytest.raises(ConfigError) as e:
        loop.train("sft", write(tmp_path / "bad.jsonl", ["{not json"]), tmp_path / "b", base=str(tiny_base))
    assert str(e.value) == f"{tmp_path / 'bad.jsonl'}: line 1: invalid JSON: Expecting property name enclosed in " \
        "double quotes" and len(e.value.problems) == 1


def test_a_config_error_survives_pickling():
    import pickle

    from simulation.config import ConfigError, ConfigProblem

    e = ConfigError([ConfigProblem("f.yaml", "x", "bad"), ConfigProblem("g", "y", "worse")])
    back = pickle.loads(pickle.dumps(e))
    assert str(back) == str(e) and back.problems == e.problems
