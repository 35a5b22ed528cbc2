"""SFT on choices as the simulation asks them: a loss on the option the constrained decoder picks.

A choice call is answered under a grammar that allows only its options (``llm.scoring``). Token-level
SFT trains the answer's tokens against the whole vocabulary, so a row answering "10" also raises the
"1" that begins it, and a decision whose rows disagree (anchors drawn from the base's preference)
teaches only its commonest option. Here each choice row's loss is the cross-entropy between a target
distribution over its options and the model's probabilities of the options' token paths (the end
token included where it tells "1" from "10") under the whole vocabulary: the constrained decoder's
cross-entropy over the options, plus a term that keeps the probability on the options' own tokens
(guided decoding accepts any spelling of an option, and greedy decoding follows wherever the mass
went). The target is one-hot for a rated answer, the base model's order-averaged option
probabilities for an anchor (``meta.target``: distillation, so the adapter keeps the base's
per-call preference rather than its mode). Rows without options (a JSON answer) keep the usual
token loss on the answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..llm.scoring import branch_points, option_paths
from .data import Example, batch_order
from .watch import TrainingCancelled, TrainWatch


@dataclass(frozen=True, slots=True)
class ChoiceRow:
    """A choice example tokenised: the prompt, each option's token path, the targets."""

    prompt: list[int]
    options: list[str]
    paths: list[list[int]]
    target: list[float]


def end_token(tok: Any, messages: list[dict[str, str]], prompt: list[int]) -> list[int]:
    """The token the chat template closes an answer with: the first one after the prompt in the
    conversation with an empty answer (as ``VLLMOptionScorer`` finds it)."""
    full = _ids(tok.apply_chat_template([*messages, {"role": "assistant", "content": ""}], tokenize=True,
                                        add_generation_prompt=False))
    return full[len(prompt):len(prompt) + 1] if full[:len(prompt)] == prompt else []


def _ids(got: Any) -> list[int]:
    """Token ids from ``apply_chat_template(tokenize=True)``, whichever form this tokenizer returns."""
    if isinstance(got, dict) or hasattr(got, "input_ids"):
        got = got["input_ids"]
    return list(got)


def choice_row(tok: Any, e: Example) -> ChoiceRow:
    """``e`` tokenised for the choice loss; the end token joins an option that begins another."""
    prompt = _ids(tok.apply_chat_template(e.prompt, tokenize=True, add_generation_prompt=True))
    ids = {o: list(tok(o, add_special_tokens=False)["input_ids"]) for o in e.options}
    paths = option_paths(ids, end_token(tok, e.prompt, prompt))
    want = e.target if e.target is not None else {e.completion: 1.0}
    total = sum(want.get(o, 0.0) for o in e.options)
    return ChoiceRow(prompt, list(e.options), [paths[o] for o in e.options], [want.get(o, 0.0) / total for o in e.options])


def _last_logits(model: Any, seqs: list[list[int]], pad: int, dev: str) -> Any:
    """The next-token logits after each sequence: one left-padded forward pass (positions counted
    from each sequence's first real token) that computes the vocabulary projection at the last
    position only, a fifth of a small model's work at every other position."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=dev)
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=dev)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1).logits[:, -1]


def path_prefixes(paths: list[list[int]]) -> list[tuple[int, ...]]:
    """Every distinct proper prefix of the options' token paths, in order: the sequences (after the
    prompt) whose next-token logits :func:`path_logprobs` reads."""
    return list(dict.fromkeys(tuple(path[:k]) for path in paths for k in range(len(path))))


def path_logprobs(model: Any, rows: list[ChoiceRow], pad: int, dev: str) -> list[tuple[Any, Any]]:
    """Per row, two tensors over its options (carrying gradients), from one forward pass over every
    prefix of every option's token path:

    - the constrained decoder's log-probabilities: at each point where the options part, the option's
      next token renormalised over the tokens the options allow there (``llm.scoring``'s computation);
    - each path's log-probability under the whole vocabulary, every token of it counted.

    The second is what training must raise. The server's guided decoding allows *any* tokenization of
    an option ("h" + "ire" as well as "hire"), so a loss on the renormalised probabilities alone is
    free to move the canonical tokens' mass onto other spellings, and greedy decoding then follows
    those: run F's adapter pushed "hire" and "keep" out of its top 8 next tokens, and said "hire" to
    all 170 exam offers although its renormalised probabilities preferred "keep looking" for 58%."""
    import torch

    seqs: list[list[int]] = []
    where: list[dict[tuple[int, ...], int]] = []
    for r in rows:
        points: dict[tuple[int, ...], int] = {}
        for prefix in path_prefixes(r.paths):
            points[prefix] = len(seqs)
            seqs.append(r.prompt + list(prefix))
        where.append(points)
    logp = torch.log_softmax(_last_logits(model, seqs, pad, dev).float(), dim=-1) if seqs else None
    out = []
    for r, points in zip(rows, where, strict=True):
        branches = branch_points(r.paths)
        constrained, full = [], []
        for path in r.paths:
            c = torch.zeros((), device=dev)
            f = torch.zeros((), device=dev)
            for k, t in enumerate(path):
                prefix = tuple(path[:k])
                row = logp[points[prefix]]
                f = f + row[t]
                allowed = branches.get(prefix)
                if allowed is not None:
                    c = c + row[t] - torch.logsumexp(row[allowed], dim=-1)
            constrained.append(c)
            full.append(f)
        out.append((torch.log_softmax(torch.stack(constrained), dim=-1), torch.stack(full)))
    return out


def option_logprobs(model: Any, rows: list[ChoiceRow], pad: int, dev: str) -> list[Any]:
    """Per row, the log-probability of each option under the constrained decoder (see :func:`path_logprobs`)."""
    return [c for c, _ in path_logprobs(model, rows, pad, dev)]


def _token_loss(model: Any, tok: Any, examples: list[Example], dev: str) -> Any:
    """Mean over rows of the mean negative log-likelihood of each answer's tokens and end token."""
    import torch

    seqs, starts = [], []
    for e in examples:
        prompt = _ids(tok.apply_chat_template(e.prompt, tokenize=True, add_generation_prompt=True))
        full = _ids(tok.apply_chat_template([*e.prompt, {"role": "assistant", "content": e.completion}],
                                            tokenize=True, add_generation_prompt=False))
        answer = full[len(prompt):] if full[:len(prompt)] == prompt else list(tok(e.completion)["input_ids"])
        seqs.append(prompt + answer)
        starts.append(len(prompt))
    width = max(len(s) for s in seqs)
    pad = tok.pad_token_id
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=dev)
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=dev)
    logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits[:, :-1], dim=-1)
    total = torch.zeros((), device=dev)
    for b, (s, st) in enumerate(zip(seqs, starts, strict=True)):
        pos = torch.arange(st - 1, len(s) - 1, device=dev)
        total = total - logp[b, pos, torch.tensor(s[st:], device=dev)].mean()
    return total / len(seqs)


def answer_weights(examples: list[Example]) -> list[float]:
    """Per row, its weight in the loss: rows with one right answer (options, no target) are weighted
    so that each answer of a decision carries the same total weight, ``n_d / (k_d * n_da)`` for
    ``n_d`` such rows of decision ``d``, ``k_d`` distinct answers and ``n_da`` rows answering ``a``;
    other rows weigh 1. The exam scores balanced accuracy (each right option counts alike), while
    the rated rows are mostly one answer (job seeking: 118 screenings "pass" for 41 "reject"), and
    unweighted the rare answer is the one the adapter never gives (run D, 2026-12-04)."""
    hard: dict[str, dict[str, int]] = {}
    for e in examples:
        if e.options and e.target is None:
            hard.setdefault(e.action, {}).setdefault(e.completion, 0)
            hard[e.action][e.completion] += 1
    out = []
    for e in examples:
        counts = hard.get(e.action) if e.options and e.target is None else None
        out.append(sum(counts.values()) / (len(counts) * counts[e.completion]) if counts else 1.0)
    return out


def batch_loss(model: Any, tok: Any, examples: list[Example], dev: str,
               weights: list[float] | None = None) -> Any:
    """The weighted mean per-row loss of a batch: the choice cross-entropy for rows with options,
    the token loss for the others (``weights``: :func:`answer_weights`' of these rows; 1 each by default)."""
    import torch

    w = weights or [1.0] * len(examples)
    choices = [(e, x) for e, x in zip(examples, w, strict=True) if e.options]
    tokens = [(e, x) for e, x in zip(examples, w, strict=True) if not e.options]
    loss = torch.zeros((), device=dev)
    if choices:
        rows = [choice_row(tok, e) for e, _ in choices]
        for (_, x), r, (_, full) in zip(choices, rows, path_logprobs(model, rows, tok.pad_token_id, dev), strict=True):
            # soft-target cross-entropy of the options' paths over the whole vocabulary: the constrained
            # decoder's cross-entropy plus the mass kept on the options' own tokens (path_logprobs)
            loss = loss - x * (torch.tensor(r.target, device=dev) * full).sum()
    if tokens:
        loss = loss + _token_loss(model, tok, [e for e, _ in tokens], dev) * sum(x for _, x in tokens)
    return loss / len(examples)


FORWARD_TOKENS = 2048  # tokens in one forward pass; a step's rows are split into passes of at most this many


def forward_tokens(tok: Any, e: Example) -> int:
    """Tokens ``e`` puts through the model in :func:`batch_loss`: its prompt once per prefix of its
    options' paths (see :func:`path_logprobs`), or its whole conversation for the token loss."""
    if e.options:
        r = choice_row(tok, e)
        return len(path_prefixes(r.paths)) * (len(r.prompt) + max(len(path) for path in r.paths))
    return len(_ids(tok.apply_chat_template([*e.prompt, {"role": "assistant", "content": e.completion}],
                                            tokenize=True, add_generation_prompt=False)))


def passes(sizes: list[int], budget: int | None = None) -> list[list[int]]:
    """Consecutive groups of the indices of ``sizes`` holding at most ``budget`` tokens each (a row
    larger than it goes alone). The activations kept for the backward pass grow with the tokens of a
    forward pass: run T's 8 offer responses, 5 prefixes of a 360-token prompt each, took 23 GiB and the
    machine's memory with it (one at a time: 6.5 GiB)."""
    budget = budget or FORWARD_TOKENS
    out: list[list[int]] = []
    held = 0
    for i, n in enumerate(sizes):
        if out and held + n <= budget:
            out[-1].append(i)
            held += n
        else:
            out.append([i])
            held = n
    return out


def sharpened(target: dict[str, float] | None, power: float) -> dict[str, float] | None:
    """``target`` raised to ``power`` and renormalised (None and power 1 unchanged): above 1 it moves
    toward its likeliest option, keeping the options' order of preference."""
    if target is None or power == 1:
        return target
    raised = {o: p ** power for o, p in target.items()}
    total = sum(raised.values())
    return {o: p / total for o, p in raised.items()} if total > 0 else target


def train_choices(examples: list[Example], base: str, parent: Path | None, out: Path, epochs: float, rank: int,
                  lr: float, batch_size: int, seed: int, progress: bool,
                  watch: TrainWatch | None = None, weights: list[float] | None = None,
                  schedule: str = "constant", save_every: int | None = None) -> list[float]:
    """Fit a LoRA adapter with :func:`batch_loss` (AdamW, seeded order); logs each step and its learning
    rate to ``out/train_log.jsonl``; returns the losses. ``weights``: one per example (default
    :func:`answer_weights`). ``schedule``: ``constant`` holds ``lr``; ``linear`` takes step k of n at
    ``lr * (n - k + 1) / n`` (transformers' linear schedule without warm-up), so the adapter is not the
    last few batches' noise: at a constant rate the final steps move near-tied decisions either way.
    ``save_every``: also save the LoRA weights after every that many steps (the last aside: it is the
    adapter) in ``out/snapshots/step-NNNNN``, the points of one training's trajectory."""
    import torch
    from tqdm import tqdm

    from . import LR_SCHEDULES
    from .manifest import snapshot_folder
    from .trainers import device, load_policy, lora_config, quiet_libraries, tokenizer_for

    if schedule not in LR_SCHEDULES:
        raise ValueError(f"schedule: constant or linear, got {schedule!r}")
    if weights is None:
        weights = answer_weights(examples)
    elif len(weights) != len(examples):
        raise ValueError(f"{len(weights)} weights for {len(examples)} examples")
    quiet_libraries()
    dev = device()
    torch.manual_seed(seed)
    tok = tokenizer_for(base)
    model = load_policy(base, parent, dev)
    if parent is None:
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(rank))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    sizes = [forward_tokens(tok, e) for e in examples]
    batches = batch_order(len(examples), epochs, batch_size, seed)
    steps = len(batches)
    losses: list[float] = []
    model.train()
    with open(out / "train_log.jsonl", "a", encoding="utf-8") as log:
        for step, picked in enumerate(tqdm(batches, desc="training", unit="step", disable=not progress), start=1):
            rate = lr * (steps - step + 1) / steps if schedule == "linear" else lr
            for group in opt.param_groups:
                group["lr"] = rate
            opt.zero_grad()
            total = 0.0
            # the batch's loss in passes of bounded size, gradients summed: the same step as one pass
            for part in passes([sizes[i] for i in picked]):
                rows = [picked[k] for k in part]
                loss = batch_loss(model, tok, [examples[i] for i in rows], dev, [weights[i] for i in rows])
                loss = loss * (len(rows) / len(picked))
                loss.backward()
                total += float(loss.detach())
            opt.step()
            value = float(f"{total:.6g}")
            losses.append(value)
            log.write(json.dumps({"step": step, "loss": value, "learning_rate": float(f"{rate:.6g}")}) + "\n")
            log.flush()  # readable while training runs (tail -f)
            if save_every and step % save_every == 0 and step < steps:
                model.save_pretrained(str(snapshot_folder(out, step)))
            if watch is not None:
                watch.on_step(step, steps)
                watch.on_loss(step, value)
                if watch.cancelled():
                    raise TrainingCancelled(f"cancelled at step {step} of {steps}")
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return losses
