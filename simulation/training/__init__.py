"""Train LoRA adapters from a run's corrections (``gensim train sft|ppo``) and merge them into a base.

:func:`train` checks the data and the parent adapter, trains into a hidden folder, writes the
manifest and only then moves the adapter into place: a cancelled run (Ctrl-C) leaves nothing
half-written behind.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections import Counter
from pathlib import Path

from ..config import ConfigError, ConfigProblem
from .data import Example, file_hash, load_examples, sft_records
from .manifest import (
    MANIFEST,
    SNAPSHOTS,
    AdapterManifest,
    read_manifest,
    same_base,
    snapshot_step,
    snapshots,
    write_manifest,
)
from .watch import TrainingCancelled, TrainWatch

DEFAULT_LR = {"sft": 1e-3, "ppo": 1e-5}
LR_SCHEDULES = ("constant", "linear")  # sft's: the rate held, or decayed linearly to almost 0 at the last step

__all__ = ["DEFAULT_ROWS", "KEPT_SHARE", "LR_SCHEDULES", "MANIFEST", "SNAPSHOTS", "AdapterManifest", "Example", "TrainWatch", "TrainingCancelled", "default_base", "load_examples",
           "merge_adapter", "read_manifest", "sft_records", "snapshots", "spread_sample", "train"]


def default_base() -> str:
    """The chat model the simulation serves by default (on CPU, the bundled SmolLM2 folder)."""
    from ..services.model_assets import chat_model_dir

    return str(chat_model_dir())


DEFAULT_ROWS = 1600
"""Training rows per correction iteration by default (``gensim correct --max-samples``, the loop's options and
the web interface's form): every rated row of job seeking at 320 agents (about 1,200) and about 130 rows per
decision nothing corrects (see :data:`KEPT_SHARE`)."""

KEPT_SHARE = 0.75
"""The most of a row cap that rows marked ``keep`` take while other rows are left: run M (kept rows 80% of
1,000) left 50 rows per untargeted decision and drifted 0.71; run K (64%, 72 each) drifted 0.12. Run N (60%,
100 each) still drifted 0.96: the share alone does not hold those decisions (README, row N). At 60% of
1,000, job seeking's four checked decisions (about 1,200 rated rows) got 150 rows each, and screening, learned
from its 358 rated rows alone or beside the others (run K), was not learned (runs U-W); so the loop's default cap
is 1,600 rows, of which the rated ones take up to 75% and each untargeted decision gets about 130, as in W."""


def _even_quota(by: dict[str, list[int]], n: int) -> dict[str, int]:
    """How many of each action's rows to take so that ``n`` rows are shared evenly (an action with fewer
    rows than its share gives all of them, the rest going to the others)."""
    quota = dict.fromkeys(by, 0)
    left = n
    while left > 0:
        open_ = [a for a in sorted(by) if quota[a] < len(by[a])]
        if not open_:  # fewer rows than asked: all of them
            break
        share = max(1, left // len(open_))
        for a in open_:
            take = min(share, len(by[a]) - quota[a], left)
            quota[a] += take
            left -= take
            if left == 0:
                break
    return quota


def spread_sample(examples: list[Example], n: int, seed: int) -> list[Example]:
    """A seeded sample of ``n`` examples spread evenly over actions: each action gets an equal share
    (all its rows when it has fewer, the rest going to the others), so a decision with many calls
    (``memory.importance`` is most of a run's calls) does not crowd out the corrected ones.
    Rows marked ``keep`` are all taken first, up to :data:`KEPT_SHARE` of ``n`` (more only where the
    other rows cannot fill the rest); past it they are spread among themselves, so the decisions
    nothing corrects keep enough rows to hold their answers. Rows of one recorded call (``call``: its
    reorderings and repeats) are taken together, so a sample keeps each call's orders balanced; at most
    one call per action is cut. The sample keeps the file's order."""
    import random

    def call_of(i: int) -> object:
        c = examples[i].call
        return ("row", i) if c is None else c

    rng = random.Random(seed)
    kept_by: dict[str, list[int]] = {}
    rest_by: dict[str, list[int]] = {}
    for i, e in enumerate(examples):
        (kept_by if e.keep else rest_by).setdefault(e.action, []).append(i)
    n_kept = sum(map(len, kept_by.values()))
    n_rest = len(examples) - n_kept
    kept_n = min(n_kept, n, max(int(n * KEPT_SHARE), n - n_rest))
    picked = []
    for by, m in ((kept_by, kept_n), (rest_by, n - kept_n)):
        quota = _even_quota(by, m)
        for a, idx in by.items():
            # a seeded order of the action's calls, each call's rows together; the first quota rows of it
            calls = list(dict.fromkeys(map(call_of, idx)))
            rank = {c: r for r, c in enumerate(rng.sample(calls, len(calls)))}
            picked += sorted(idx, key=lambda i: (rank[call_of(i)], i))[:quota[a]]
    return [examples[i] for i in sorted(picked)]


def _check_base(base: str) -> str:
    if not (Path(base) / "config.json").is_file():
        raise ConfigError([ConfigProblem(base, "--base", "not a Hugging Face model folder (no config.json)")])
    return str(Path(base).resolve())


def train(method: str, data: Path, out: Path, base: str | None = None, parent: Path | None = None,
          epochs: float = 1.0, lora_rank: int = 16, learning_rate: float | None = None, batch_size: int = 8,
          seed: int = 0, progress: bool = True, max_samples: int | None = None,
          watch: TrainWatch | None = None, objective: str = "tokens", lr_schedule: str = "constant",
          save_every: int | None = None) -> AdapterManifest:
    """Train an adapter on ``data`` (a ``gensim dataset`` file) into ``out``; returns its manifest.
    A ``watch`` sees each step and loss and may cancel (:class:`TrainingCancelled`; nothing is written).
    sft's ``objective``: ``tokens`` (trl's loss on the answer's tokens) or ``choices`` (rows naming their
    options train the constrained decoder's choice, toward ``meta.target`` where given: ``training.choice``).
    sft's ``lr_schedule``: ``constant`` or ``linear`` (step k of n at ``learning_rate * (n - k + 1) / n``); ppo keeps trl's.
    ``save_every`` (the choices objective): the adapter after every that many steps too, each a servable
    adapter with its own manifest (``step`` set) in ``out/snapshots/step-NNNNN`` (:func:`snapshots`)."""
    if method not in ("sft", "ppo"):
        raise ConfigError([ConfigProblem("<command line>", "method", f"sft or ppo, got {method!r}")])
    if objective not in ("tokens", "choices") or (method == "ppo" and objective != "tokens"):
        raise ConfigError([ConfigProblem("<command line>", "--objective", "tokens or choices (choices: sft only), "
                                         f"got {objective!r}")])
    if lr_schedule not in LR_SCHEDULES or (method == "ppo" and lr_schedule != "constant"):
        raise ConfigError([ConfigProblem("<command line>", "--lr-schedule", "constant or linear (linear: sft only), "
                                         f"got {lr_schedule!r}")])
    if save_every is not None and (objective != "choices" or isinstance(save_every, bool)
                                   or not isinstance(save_every, int) or save_every < 1):
        raise ConfigError([ConfigProblem("<command line>", "--save-every", "a whole number of steps, 1 or more, for sft's "
                                         f"choices objective only; got {save_every!r} with {method} {objective}")])
    for name, v, low in (("--epochs", epochs, 0), ("--lora-rank", lora_rank, 0), ("batch_size", batch_size, 0)):
        if not v > low:
            raise ConfigError([ConfigProblem("<command line>", name, f"must be above {low}, got {v}")])
        if not math.isfinite(v):
            raise ConfigError([ConfigProblem("<command line>", name, f"must be a finite number, got {v}")])
    # 0 is allowed from Python (an adapter copied unchanged onto a new parent); the CLI asks for > 0
    if learning_rate is not None and not (math.isfinite(learning_rate) and learning_rate >= 0):
        raise ConfigError([ConfigProblem("<command line>", "--lr", f"must be a finite number >= 0, got {learning_rate}")])
    examples = load_examples(Path(data), method)
    if max_samples is not None and len(examples) > max_samples:
        examples = spread_sample(examples, max_samples, seed)
    if method == "ppo" and len({e.reward for e in examples}) < 2:
        raise ConfigError([ConfigProblem(str(data), "reward", "every row has the same reward: "
                                         "a reward model can learn nothing from it")])
    parent_manifest = None
    if parent is not None:
        parent_manifest = read_manifest(Path(parent))
        base = base or parent_manifest.base_model
    base = _check_base(base or default_base())
    if parent_manifest is not None and not same_base(parent_manifest.base_model, base):
        raise ConfigError([ConfigProblem(str(parent), "--from", f"trained on base {parent_manifest.base_model}, "
                                         f"not {base}")])
    if parent is not None and Path(parent).resolve() == Path(out).resolve():
        raise ConfigError([ConfigProblem(str(out), "--out", "must differ from --from (the parent stays as it was)")])
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError([ConfigProblem(str(out), "--out", "already exists and is not empty")])
    lr = learning_rate if learning_rate is not None else DEFAULT_LR[method]
    from .trainers import device, train_ppo, train_sft

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    t0 = time.perf_counter()
    rm_losses: list[float] = []
    try:
        if method == "sft" and objective == "choices":
            from .choice import train_choices

            losses = train_choices(examples, base, parent, tmp, epochs, lora_rank, lr, batch_size, seed, progress, watch,
                                   schedule=lr_schedule, save_every=save_every)
        elif method == "sft":
            losses = train_sft(examples, base, parent, tmp, epochs, lora_rank, lr, batch_size, seed, progress, watch,
                               schedule=lr_schedule)
        else:
            losses, rm_losses = train_ppo(examples, base, parent, tmp, epochs, lora_rank, lr, batch_size, seed,
                                          progress, watch=watch)
        shutil.rmtree(tmp / "_trainer", ignore_errors=True)
        manifest = AdapterManifest(
            base_model=base, method=method, objective=objective, data_file=str(Path(data).resolve()), data_sha256=file_hash(Path(data)),
            samples=len(examples), epochs=epochs, lora_rank=lora_rank if parent_manifest is None else parent_manifest.lora_rank,
            learning_rate=lr, lr_schedule=lr_schedule if method == "sft" else None, losses=losses, reward_model_loss=rm_losses, train_s=round(time.perf_counter() - t0, 3),
            device=device(), parent=str(Path(parent).resolve()) if parent else None,
            parent_chain=([str(Path(parent).resolve()), *parent_manifest.parent_chain] if parent_manifest else []),
            actions=dict(Counter(e.action for e in examples if e.action)),
            created=time.strftime("%Y-%m-%dT%H:%M:%S"))
        write_manifest(tmp, manifest)
        for snap in snapshots(tmp):  # each a point of the same training: its steps' losses, its share of the epochs
            k = snapshot_step(snap)
            write_manifest(snap, manifest.model_copy(update={"losses": losses[:k], "step": k,
                                                             "epochs": round(epochs * k / len(losses), 6)}))
        if out.exists():
            out.rmdir()
        tmp.replace(out)
        return manifest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def merge_adapter(adapter: Path, out: Path, base: str | None = None) -> Path:
    """The base with ``adapter`` merged in, saved as a plain model folder vLLM serves at full speed."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manifest = read_manifest(Path(adapter), "adapter")
    base = base or manifest.base_model
    if not same_base(manifest.base_model, base):
        raise ConfigError([ConfigProblem(str(adapter), "adapter", f"trained on base {manifest.base_model}, "
                                         f"but the servers run {base}")])
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        merged.save_pretrained(str(tmp))
        AutoTokenizer.from_pretrained(base).save_pretrained(str(tmp))
        for extra in ("chat_template.jinja", "generation_config.json"):
            if (Path(base) / extra).is_file():
                shutil.copy(Path(base) / extra, tmp / extra)
        shutil.rmtree(out, ignore_errors=True)
        tmp.replace(out)
        return out
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
