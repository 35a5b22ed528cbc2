"""LoRA training with transformers + peft + trl: SFT on rated answers, PPO against a reward model.

Heavy imports happen inside the functions: the simulation itself never needs torch's training stack.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .data import Example, batch_order, reward_pairs, sft_records
from .watch import TrainingCancelled, TrainWatch

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def tokenizer_for(base: str) -> Any:
    """The base's tokenizer with a pad token distinct from end-of-turn (SmolLM2 pads with ``<|im_end|>``,
    which would mask the answer's own end token out of the loss)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    if tok.pad_token_id is None or tok.pad_token_id == tok.eos_token_id:
        candidates = [t for t in (tok.unk_token, "<|endoftext|>") if t is not None]
        pad = next((t for t in candidates if _in_vocab(tok, t) and tok.convert_tokens_to_ids(t) != tok.eos_token_id), None)
        if pad is None:
            from ..config.errors import ConfigError, ConfigProblem

            raise ConfigError([ConfigProblem(base, "--base", "its tokenizer has no token to pad with other than its "
                                             "end token (no unk_token, no <|endoftext|>), so the answer's end would be masked out")])
        tok.pad_token = pad
    return tok


def _in_vocab(tok: Any, token: str) -> bool:
    """Whether ``token`` has an id of its own (an unknown token maps to ``unk``'s id, or to None)."""
    i = tok.convert_tokens_to_ids(token)
    return i is not None and (token == tok.unk_token or i != tok.unk_token_id)


def lora_config(rank: int, task: str = "CAUSAL_LM") -> Any:
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=LORA_TARGETS, task_type=task)


def load_policy(base: str, parent: Path | None, dev: str) -> Any:
    """The base model, or the base with the parent adapter attached and trainable (``--from``)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).to(dev)
    if parent is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(parent), is_trainable=True)
    return model


def _losses(history: list[dict[str, Any]], key: str = "loss") -> list[float]:
    return [float(f"{float(h[key]):.6g}") for h in history if key in h and math.isfinite(float(h[key]))]


def sft_trainer(examples: list[Example], base: str, parent: Path | None, out: Path, epochs: float, rank: int,
                lr: float, batch_size: int, seed: int, progress: bool, schedule: str = "constant") -> Any:
    """trl's SFTTrainer for prompt/completion pairs, the loss on the answers only (not yet trained)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    dev = device()
    tok = tokenizer_for(base)
    model = load_policy(base, parent, dev)
    args = SFTConfig(output_dir=str(out / "_trainer"), num_train_epochs=epochs, per_device_train_batch_size=batch_size,
                     learning_rate=lr, logging_steps=1, save_strategy="no", report_to=[], seed=seed,
                     completion_only_loss=True, max_length=2048, disable_tqdm=not progress, use_cpu=dev == "cpu",
                     lr_scheduler_type=schedule, dataset_num_proc=None)
    return SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(sft_records(examples)),
                      processing_class=tok, peft_config=None if parent else lora_config(rank))


def quiet(trainer: Any, out: Path, watch: TrainWatch | None = None, loss_key: str = "loss") -> Any:
    """The trainer's logs go to ``out/train_log.jsonl``, not to the console: without progress bars
    transformers prints every step's dictionary, which buries a command's own lines. The one-off
    bars of loading and tokenizing are off too; the training bar is the stage's one bar. A ``watch``
    sees every step and loss, and a cancel it asks for stops the training at the next step."""
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class BarOnly(ProgressCallback):
        """The training bar without the dictionary it writes under itself at every logged step."""

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
            return None

    class ToFile(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
            with open(out / "train_log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": state.global_step, **(logs or {})}, default=str) + "\n")
            if watch is not None and logs and loss_key in logs:
                watch.on_loss(state.global_step, float(logs[loss_key]))

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if watch is not None:
                watch.on_step(state.global_step, state.max_steps)
                if watch.cancelled():
                    raise TrainingCancelled(f"cancelled at step {state.global_step} of {state.max_steps}")

    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(BarOnly())
    trainer.add_callback(ToFile())
    return trainer


def quiet_libraries() -> None:
    """No progress bars from weight loading and dataset preparation (sub-second stages)."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def train_sft(examples: list[Example], base: str, parent: Path | None, out: Path, epochs: float, rank: int,
              lr: float, batch_size: int, seed: int, progress: bool, watch: TrainWatch | None = None,
              schedule: str = "constant") -> list[float]:
    """Fine-tune a LoRA adapter on prompt/completion pairs (loss on the answers only); returns the losses.
    ``schedule``: trl's learning-rate schedule, ``constant`` or ``linear``."""
    quiet_libraries()
    trainer = quiet(sft_trainer(examples, base, parent, out, epochs, rank, lr, batch_size, seed, progress, schedule),
                    out, watch)
    trainer.train()
    trainer.model.save_pretrained(str(out))
    trainer.processing_class.save_pretrained(str(out))
    return _losses(trainer.state.log_history)


def fit_reward_model(examples: list[Example], base: str, tok: Any, epochs: float, lr: float, batch_size: int,
                     seed: int, progress: bool, watch: TrainWatch | None = None) -> tuple[Any, list[float]]:
    """A sequence-classification head on the base, fitted to the ratings: a Bradley-Terry loss on
    every pair of answers to the same prompt rated differently, plus a regression of the centred
    rating for every example (so prompts with one answer still teach the scale)."""
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForSequenceClassification

    dev = device()
    torch.manual_seed(seed)
    rm = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype=torch.float32).to(dev)
    rm.config.pad_token_id = tok.pad_token_id
    rewards = [e.reward for e in examples if e.reward is not None]
    mid, spread = (max(rewards) + min(rewards)) / 2, max(1e-6, (max(rewards) - min(rewards)) / 2)

    def text(prompt: list[dict[str, str]], answer: str) -> str:
        return tok.apply_chat_template([*prompt, {"role": "assistant", "content": answer}], tokenize=False)

    items: list[tuple[str, Any]] = [("point", (text(e.prompt, e.completion), (e.reward - mid) / spread)) for e in examples]
    items += [("pair", (text(p["prompt"], p["chosen"][0]["content"]), text(p["prompt"], p["rejected"][0]["content"])))
              for p in reward_pairs(examples)]
    opt = torch.optim.AdamW(rm.parameters(), lr=lr)
    losses: list[float] = []
    batches = batch_order(len(items), epochs, batch_size, seed)
    steps = len(batches)
    rm.train()
    for step, picked in enumerate(tqdm(batches, desc="reward model", unit="step", disable=not progress)):
        if watch is not None:
            watch.on_step(step, steps)
            if watch.cancelled():
                raise TrainingCancelled(f"cancelled while fitting the reward model (step {step} of {steps})")
        batch = [items[i] for i in picked]
        loss = torch.zeros((), device=dev)
        for kind, data in batch:
            if kind == "point":
                enc = tok(data[0], return_tensors="pt", truncation=True, max_length=2048).to(dev)
                loss = loss + (rm(**enc).logits[0, 0] - float(data[1])) ** 2
            else:
                enc = tok(list(data), return_tensors="pt", padding=True, truncation=True, max_length=2048).to(dev)
                s = rm(**enc).logits[:, 0]
                loss = loss - torch.nn.functional.logsigmoid(s[0] - s[1])
        loss = loss / len(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(round(float(loss.detach()), 5))
    rm.eval()
    return rm, losses


def train_ppo(examples: list[Example], base: str, parent: Path | None, out: Path, epochs: float, rank: int,
              lr: float, batch_size: int, seed: int, progress: bool, response_length: int = 16,
              reward_epochs: float = 1.0, watch: TrainWatch | None = None) -> tuple[list[float], list[float]]:
    """Fit a reward model on the ratings, then optimise the LoRA policy against it with PPO
    (``trl.experimental.ppo``); returns the policy losses and the reward model's losses."""
    quiet_libraries()
    import copy

    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    dev = device()
    tok = tokenizer_for(base)
    tok.padding_side = "left"  # PPO generates after the prompt
    rm, rm_losses = fit_reward_model(examples, base, tok, reward_epochs, 1e-4, batch_size, seed, progress, watch)
    value = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype=torch.float32).to(dev)
    value.config.pad_token_id = tok.pad_token_id
    value.score.load_state_dict(copy.deepcopy(rm.score.state_dict()))
    prompts = list({tuple((m["role"], m["content"]) for m in e.prompt): e.prompt for e in examples}.values())
    rows = [{"input_ids": tok.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=False)}
            for p in prompts]
    if rows and isinstance(rows[0]["input_ids"], dict):  # some tokenizers return a BatchEncoding
        rows = [{"input_ids": r["input_ids"]["input_ids"]} for r in rows]
    policy = load_policy(base, parent, dev)
    policy.generation_config.pad_token_id = tok.pad_token_id
    n = max(1, min(batch_size, len(rows)))
    args = PPOConfig(output_dir=str(out / "_trainer"), learning_rate=lr, per_device_train_batch_size=n,
                     num_mini_batches=1, total_episodes=max(n * 2, int(len(rows) * epochs)),
                     local_rollout_forward_batch_size=n, response_length=response_length, num_ppo_epochs=1,
                     stop_token="eos", missing_eos_penalty=1.0, num_sample_generations=0, report_to=[], seed=seed,
                     save_strategy="no", logging_steps=1, disable_tqdm=not progress, use_cpu=dev == "cpu",
                     temperature=0.7)
    trainer = quiet(PPOTrainer(args=args, processing_class=tok, model=policy, ref_model=None, reward_model=rm,
                               train_dataset=Dataset.from_list(rows), value_model=value,
                               peft_config=None if parent else lora_config(rank)), out, watch, "loss/policy_avg")
    trainer.train()
    policy_model = trainer.model.policy if hasattr(trainer.model, "policy") else trainer.model
    policy_model.save_pretrained(str(out))
    tok.padding_side = "right"
    tok.save_pretrained(str(out))
    return _losses(trainer.state.log_history, "loss/policy_avg"), rm_losses
