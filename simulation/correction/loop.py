"""``gensim correct``: run a round, rate it, build a dataset, train, deploy, re-run the round; repeat.

Every step is a public function: :func:`~simulation.runner.run_simulation` (the base run and each
fork), :func:`~simulation.correction.rate_run`, :func:`~simulation.correction.write_dataset`,
:func:`~simulation.training.train`, and the deployment the fork makes of ``llm.adapter``. Results
are measured on held-out agents (never trained on) that use the adapter, against the control group
(the base model in the same round), and written to each fork's metrics, ``correction.json`` and
``correction.png``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..config import ConfigError, ConfigProblem
from ..llm.agent_llm import other_orders as option_orders
from ..llm.averaging import drawn_option
from ..llm.scoring import FakeOptionScorer, OptionScorer, VLLMOptionScorer
from ..llm.types import ChatClient, LLMError
from ..runner import RunOptions, run_simulation
from ..store import RunStore
from ..training import DEFAULT_ROWS, LR_SCHEDULES, AdapterManifest
from ..training import train as train_here
from ..training.choice import sharpened
from ..training.data import file_hash
from ..training.manifest import MANIFEST, read_manifest
from . import ADAPTER_SCOPES, PICKS, RATED_ROWS, UNGRADED, UNTARGETED, rate_run
from . import exam as ex
from .datasets import anchor_candidates, rated_actions, write_dataset
from .measure import MIN_ANSWERS, GroupMeasure, Groups, collapsed, measure, run_groups
from .pick import Pick, pick, read_pick, write_pick
from .ratings import judge_warning, load_calls

KIND = {"sft": "sft", "ppo": "reward"}
SHUFFLE = "llm.shuffle_options=true"


@dataclass
class CorrectOptions:
    """What ``gensim correct`` accepts."""

    scenario: str
    iterations: int = 1
    method: str = "sft"
    rater: str = "checks"
    judge: str | None = None  # a model_configs.json entry for the judge (default: the run's own model)
    judge_score: bool = False  # also score every run with the judge (always, with --rater judge)
    samples: int = 24  # calls the judge rates per run (--judge-samples)
    holdout: float = 0.5  # half the agents are never trained on: their calls are the exam
    control: float = 0.3
    # enough agents for about 200 held-out exam calls per checked decision (job seeking, 3 rounds:
    # 262 screening, 170 offer decisions); None keeps the scenario's counts
    agents: int | None = 320
    seed: int | None = None  # the base run's seed (with ``base``, its recorded seed stands: refused if both differ)
    # training's alone (its row sample, LoRA start and batch order); None: the base run's seed. On one base and
    # data it replicates an adapter: runs X and Y differed by 13-27 points on 200 rows' change
    train_seed: int | None = None
    overrides: list[str] = field(default_factory=list)
    out: str | None = None
    epochs: float = 1.0
    lr: float | None = None
    lr_schedule: str = "constant"  # sft's: "linear" decays it to almost 0 at the last step
    # sft's choices objective: each adapter also saved every this many steps (adapter-N/snapshots), for
    # bench/trajectory.py; None: the finished adapter only
    save_every: int | None = None
    max_samples: int = DEFAULT_ROWS
    # sft rated by checks: "all" trains every rated row of a decision whose checks name the right option, outside the
    # row cap's even spread, and leaves out its calls they name none for; "spread" shares the cap evenly
    rated_rows: str = "all"
    # with rated_rows "all": "anchor" trains a checked decision's calls the checks name no right option for toward
    # the base's order-averaged preference (as "spread" does), "leave" leaves them out; left out, the adapter carried
    # its lessons onto them (run S2: "reject" for 69% of the CVs meeting some requirements, the base 43%).
    # None: "anchor" where it applies (sft with rated_rows "all"), else "leave"
    ungraded: str | None = None
    batch_size: int | None = None  # default: 8 for sft, 4 for ppo (its rollouts hold logits of every token)
    progress: bool = True
    base: str | None = None  # an earlier base run to start from instead of running one
    rounds: int = 3  # the base run's rounds; each fork re-runs them all with the adapter
    max_drift: float = 0.15  # refuse an adapter moving an untargeted decision further from the base
    # anchors' targets (the base's order-averaged probabilities) raised to this power and renormalised: above 1
    # each call's target keeps the base's pick with a margin (search_decision is near-tied: 0.54 "search" on average,
    # and a shift of 0.02-0.04 flipped a fifth to a third of its calls in runs X, Y, L)
    anchor_power: float = 1.0
    exam: bool = True  # the paired held-out exam after each fork
    permute: int = 5  # sft: copies of each choice example under other orders of its options
    # sft's loss: "choices" trains the constrained decoder's pick over each choice row's options, anchors
    # toward the base's order-averaged probabilities (training.choice); "tokens" is trl's answer-token loss
    objective: str = "choices"
    # decisions rated and examined but given no training row (--no-train): the guard holds them like
    # any untargeted decision
    no_train: tuple[str, ...] = ()
    # "targeted": the fork sends only the decisions with rated training rows to the adapter (llm.adapter_actions)
    # and every other call to the base model, so untargeted decisions cannot drift and get no anchor rows;
    # "all": the adapter answers every call of its agents (runs X-P: untargeted decisions drifted in every one)
    adapter_scope: str = "targeted"
    # "last" keeps the finished adapter; "anchors" the --save-every snapshot (second half) or finished adapter whose
    # picks on the training agents' anchored calls stay closest to the base's (correction.pick)
    pick: str = "last"
    # with adapter_scope "targeted", who answers the choice decisions the adapter leaves: "base", the base model
    # as decoded (its position bias kept: search_decision 99% first-listed, run S4), or "averaged", the base
    # model's option probabilities averaged over orders, one option drawn per call (llm.order_averaged), in
    # the fork and on the exam; memory.* stays decoded (most of a run's calls, ten options, 23% first-listed).
    # None: "averaged" with adapter_scope "targeted" on a base run that shuffles its options (run E2), else "base"
    untargeted: str | None = None


LOOP_FILE = "loop.json"  # in a loop's folder: the options it was started with (``gensim correct --resume``)


def _write_loop_record(out: Path, opts: CorrectOptions) -> None:
    record = {k: v for k, v in asdict(opts).items() if k != "progress"}
    (out / LOOP_FILE).write_text(json.dumps({"options": record}, indent=2))


# every option CorrectOptions gained after loop.json was introduced, with the value that runs a loop as
# before the option existed: a loop.json without it is resumed so (any other option missing is refused)
SINCE_LOOP_FILE: dict[str, Any] = {"pick": "last"}


def resume_options(out: Path, progress: bool = True) -> CorrectOptions:
    """The options a loop's folder was started with (its :data:`LOOP_FILE`), to go on with it by
    :func:`correct` with ``resume=True``; a one-line error naming the folder when it holds no loop."""
    path = Path(out) / LOOP_FILE
    if not Path(out).is_dir():
        raise ConfigError([ConfigProblem(str(out), "--resume", "no such folder")])
    if not path.is_file():
        raise ConfigError([ConfigProblem(str(out), "--resume", f"no {LOOP_FILE}: not a loop folder of gensim correct "
                                         "(a loop started by an earlier gensim records none and cannot be resumed)")])
    try:
        got = json.loads(path.read_text(encoding="utf-8"))["options"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError([ConfigProblem(str(path), "options", f"unreadable: {e}")]) from None
    known = {f.name for f in fields(CorrectOptions)} - {"progress"}
    # options added after loop.json was: an older loop ran as these values make a loop run
    got = {**{k: v for k, v in SINCE_LOOP_FILE.items() if k not in got}, **got}
    unknown, missing = sorted(set(got) - known), sorted(known - set(got))
    # an option missing would silently take today's default: a loop resumed under other settings than it ran with
    if unknown or missing:
        raise ConfigError([ConfigProblem(str(path), "options", "not this version's loop options (unknown: "
                                         f"{', '.join(unknown) or 'none'}; missing: {', '.join(missing) or 'none'})")])
    got["no_train"] = tuple(got.get("no_train") or ())
    # the folder as given now: a loop moved with its folder goes on there
    return replace(CorrectOptions(**got, progress=progress), out=str(out))


def _group_line(label: str, m: GroupMeasure) -> str:
    checks = ", ".join(f"{k} {f}/{n}" for k, (f, n) in m.by_check.items()) or "no checks"
    worst = max(m.first_share.values(), default=None)
    bias = f"{worst:.0%}" if worst is not None else "n/a (no decisions)"
    judge = f"; judge {m.judge:.2f}" if m.judge is not None else ""
    tops = ", ".join(f"{a} {m.top(a)[0]} {m.top(a)[1]:.0%} (first-listed {m.first_share.get(a, 0):.0%})"
                     for a in m.decisions)
    return (f"  {label:<9} fail {m.fail if m.fail is not None else 'n/a'} ({checks}); worst first-option share "
            f"{bias}{judge}\n  {'':<9} decisions: {tops or 'none'}")


def _swap_s(run: Path) -> float:
    store = RunStore(run / "run.sqlite")
    try:
        got = [json.loads(d).get("seconds", 0.0) for (d,) in
               store.db.execute("SELECT data FROM interventions WHERE kind = 'deploy'")]
    finally:
        store.close()
    return round(sum(got), 3)


def _record(run: Path, metrics: dict[str, float]) -> None:
    store = RunStore(run / "run.sqlite")
    try:
        store.set_metrics(1, {k: v for k, v in metrics.items() if v is not None})
    finally:
        store.close()


def _measures(run: Path, groups: Groups, opts: CorrectOptions,
              emit: Callable[[str], None] | None = None) -> tuple[GroupMeasure, GroupMeasure]:
    judged = opts.judge_score or opts.rater == "judge"
    if judged:
        got = rate_run(run, by="judge", judge=opts.judge, sample=opts.samples, rewrite=opts.rater == "judge",
                       scenario=opts.scenario, progress=opts.progress)
        warning = judge_warning(got["judge_vs_checks"]) if got and "judge_vs_checks" in got else None
        if warning and emit is not None:
            emit(f"  judge of {run.name}: warning: {warning}")
    return (measure(run, groups.holdout_treated, "judge:" if judged else None),
            measure(run, groups.control, "judge:" if judged else None))


def train(*args: Any, **kw: Any) -> AdapterManifest:
    """:func:`simulation.training.train` in a child process. Training's peak memory (the logits of
    a batch over the whole vocabulary, the optimiser) stays with the allocator of the process that
    ran it; in the loop's own process it stayed through the fork and the exam, and a 320-agent loop
    beside two servers was killed for memory (11 GiB resident, 2026-12-04)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(train_here, *args, **kw).result()


@dataclass
class Session:
    """What :func:`_serving` hands out: a chat client, and the base model's option probabilities."""

    client: ChatClient
    scorer: OptionScorer
    adapter_scorer: OptionScorer | None = None  # the deployed adapter's option probabilities


@contextlib.contextmanager
def _serving(run: Path, adapter: Path | None, name: str | None, progress: bool,
             work: Path | None = None) -> Iterator[Session]:
    """A chat client on the run's endpoints (embedded servers started again where the run started
    them), with ``adapter`` deployed as ``name`` when given, and a scorer of the base model's option
    probabilities on its first default endpoint; nothing either asks is recorded in a run."""
    from ..llm.recording import NoSink
    from ..runner import Services, read_run_config
    from ..runtime.clients import build_chat_client, default_endpoints

    cfg = read_run_config(run)
    services = Services(progress)
    try:
        chat, _ = services.resolve(cfg, embeddings=False)
        if cfg.simulation.llm.backend == "fake" or not chat:
            scorer: OptionScorer = FakeOptionScorer()
        else:
            m = next(m for m, d in zip(chat, default_endpoints(cfg, chat), strict=True) if d)
            scorer = VLLMOptionScorer(m.base_url, m.model_name, m.api_key, cfg.simulation.llm.timeout_s)
        adapter_scorer: OptionScorer | None = FakeOptionScorer() if adapter is not None else None
        if adapter is not None and cfg.simulation.llm.backend != "fake":
            from ..services.deploy import ModelDeployer

            deployer = ModelDeployer(cfg, chat, services.owned, work or run)
            deployer.deploy(adapter, name, deployer.resolve_mode(cfg.simulation.llm.deploy_mode))
            chat = deployer.models
            # merge mode serves it as a model of its own server; lora mode as a name on the base's servers
            m = next((m for m in chat if m.model_name == name), None) or next(
                (m for m in chat if name in m.adapters), None)
            adapter_scorer = (VLLMOptionScorer(m.base_url, name, m.api_key, cfg.simulation.llm.timeout_s)
                              if m is not None else None)
        yield Session(build_chat_client(cfg, chat, NoSink()), scorer, adapter_scorer)
    finally:
        services.stop()


PROBS_CACHE = "option_probs.jsonl"  # in a run folder: the base model's order-averaged probabilities of its calls


def _cached_probs(cache: Path | None, seed: int, model: str) -> dict[int, dict[str, float]]:
    """The probabilities already computed for this run's calls with this seed and model."""
    if cache is None or not cache.is_file():
        return {}
    out = {}
    for line in cache.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill: computed again
            continue
        if row.get("seed") == seed and row.get("model") == model and row.get("k") == ex.ORDERS:
            out[int(row["call_id"])] = row["probs"]
    return out


async def _probs(items: list[ex.ExamItem], scorer: OptionScorer, seed: int, progress: bool,
                 what: str, cache: Path | None = None) -> list[dict[str, float] | None]:
    """:func:`exam.order_probs` with a bar; a server without prompt log-probabilities (not vLLM)
    gives none, said once, and the order-averaged answers stand in. With ``cache`` (a run folder's
    :data:`PROBS_CACHE`), calls scored before with the same seed and model are read, not asked again
    (the exam and the anchors of every loop on one base run ask the same calls)."""
    from tqdm import tqdm

    from ..llm.types import LLMError, RetriableError

    model = str(getattr(scorer, "model", type(scorer).__name__))
    known = _cached_probs(cache, seed, model)
    todo = [i for i in items if i.call_id not in known]
    bar = tqdm(total=len(todo), desc=what, unit="call", disable=not progress, leave=False)
    try:
        got = await ex.order_probs(todo, scorer, k=ex.ORDERS, seed=seed, on_done=bar.update)
    except RetriableError:  # an outage after the scorer's retries stops the loop, never passes for "no probabilities"
        raise
    except LLMError as e:
        from loguru import logger

        logger.warning("no option probabilities ({}): the base's answers under other orders stand in", e)
        return [None] * len(items)
    finally:
        bar.close()
        await scorer.aclose()
    if cache is not None and any(p is not None for p in got):
        with open(cache, "a", encoding="utf-8") as f:
            for i, p in zip(todo, got, strict=True):
                if p is not None:
                    f.write(json.dumps({"call_id": i.call_id, "seed": seed, "model": model, "k": ex.ORDERS,
                                        "probs": p}) + "\n")
    fresh = {i.call_id: p for i, p in zip(todo, got, strict=True)}
    return [known[i.call_id] if i.call_id in known else fresh[i.call_id] for i in items]


PROB_CALLS = 100  # exam calls per decision whose option probabilities are averaged over orders


def _averaged(base: Path, scope: frozenset[str]) -> frozenset[str]:
    """The base run's choice decisions outside ``scope``, ``memory.*`` aside (``--untargeted averaged``)."""
    from ..store.query import RunQuery

    with RunQuery(base) as rq:
        return frozenset(a for a in rq.choice_actions() if a not in scope and not a.startswith("memory."))


def _gives_probs(base: Path, decisions: frozenset[str], seed: int, progress: bool) -> bool:
    """Whether the base run's server gives option probabilities, asked on one recorded call of
    ``decisions`` (``--untargeted averaged`` draws from them; a server without them, not vLLM, gives none)."""
    store = RunStore(base / "run.sqlite", readonly=True)
    try:  # the first of those decisions' calls alone, not every unrated call of the run (memory.* is most of them)
        calls = load_calls(store, "WHERE id = (SELECT MIN(id) FROM llm_calls WHERE choices IS NOT NULL AND action IN "
                           f"({','.join('?' * len(decisions))}))", tuple(sorted(decisions)))
    finally:
        store.close()
    if not calls:
        return False
    with _serving(base, None, None, progress) as session:
        try:
            (got,) = asyncio.run(_probs([ex.as_item(calls[0])], session.scorer, seed, False, "option probabilities",
                                        cache=base / PROBS_CACHE))
        finally:
            asyncio.run(session.client.aclose())
    return got is not None


def _prob_sample(items: list[ex.ExamItem], seed: int, per_decision: int = PROB_CALLS) -> list[int]:
    """Indices of a seeded sample of at most ``per_decision`` items of each decision (in exam order):
    the base's order-averaged shares of a decision are taken over them."""
    rng = random.Random(f"{seed}:probs")
    by: dict[str, list[int]] = {}
    for k, i in enumerate(items):
        if i.choices:  # a structured call has no options to weigh
            by.setdefault(i.decision, []).append(k)
    return sorted(k for ks in by.values() for k in (ks if len(ks) <= per_decision else rng.sample(ks, per_decision)))


def _sit_exam(fork: Path, items: list[ex.ExamItem], adapter: Path, name: str, seed: int,
              progress: bool, base: Path | None = None, scope: frozenset[str] | None = None,
              averaged: frozenset[str] = frozenset()) -> tuple[dict[str, list[str | None]],
                                                                 list[dict[str, str | None]],
                                                                 list[dict[str, float] | None],
                                                                 list[dict[str, float] | None]]:
    """Both models' answers to the exam, and both models' order-averaged option probabilities on a
    seeded sample of each decision's calls (the base's cached in ``base``), on the fork's endpoints
    with the adapter deployed as the fork deployed it; the base's answers under other orders of the
    options only where the server gives no probabilities (empty otherwise). With ``scope`` (the
    decisions the adapter answers), other decisions' calls are the base model's on both sides; those of
    ``averaged`` (``--untargeted averaged``) are on the adapter side an option drawn from the base's
    order-averaged probabilities of the call, as ``llm.order_averaged`` answers them in the fork."""
    from tqdm import tqdm

    bar = tqdm(total=len(items), desc="exam", unit="call", disable=not progress, leave=False)
    try:
        with _serving(fork, adapter, name, progress) as session:
            client = session.client

            async def ask(what: Any) -> Any:
                try:
                    return await what
                finally:
                    await client.aclose()

            answers = asyncio.run(ask(ex.ask_both(items, client, name, seed, on_done=bar.update, scope=scope)))
            bar.close()
            sample = _prob_sample(items, seed)
            got = asyncio.run(_probs([items[k] for k in sample], session.scorer, seed, progress, "option probabilities",
                                     cache=base / PROBS_CACHE if base is not None else None))
            probs: list[dict[str, float] | None] = [None] * len(items)
            for k, p in zip(sample, got, strict=True):
                probs[k] = p
            aprobs: list[dict[str, float] | None] = [None] * len(items)
            if session.adapter_scorer is not None and any(p is not None for p in got):
                mine_k = [k for k in sample if scope is None or items[k].decision in scope]
                mine = asyncio.run(_probs([items[k] for k in mine_k], session.adapter_scorer, seed, progress,
                                          "adapter probabilities"))
                for k in set(sample) - set(mine_k):  # the base model answers the decisions outside the scope
                    aprobs[k] = probs[k]
                for k, p in zip(mine_k, mine, strict=True):
                    aprobs[k] = p
            drawn = [k for k, it in enumerate(items) if it.decision in averaged and it.choices]
            if drawn:
                every = asyncio.run(_probs([items[k] for k in drawn], session.scorer, seed, progress,
                                           "order-averaged answers", cache=base / PROBS_CACHE if base is not None else None))
                if any(p is None for p in every):
                    raise LLMError("--untargeted averaged: the server gives no option probabilities for "
                                   f"{sum(p is None for p in every)} exam calls")
                for k, p in zip(drawn, every, strict=True):
                    answers["adapter"][k] = drawn_option(p, f"exam:{seed}:{items[k].call_id}")
                    aprobs[k] = p  # an order-averaged answerer has no position bias: these for every order
            orders: list[dict[str, str | None]] = []
            if all(p is None for p in got):
                orders = asyncio.run(ask(ex.ask_orders(items, client, seed=seed)))
            return answers, orders, probs, aprobs
    finally:
        bar.close()


def _enough_calls(items: list[ex.ExamItem], rows: int, permute: int, seed: int) -> list[ex.ExamItem]:
    """A seeded sample of each decision's calls giving about 1.5 times the rows training takes of one
    decision (``rows`` spread over the decisions, each call written in ``1 + permute`` orders at most)."""
    rng = random.Random(f"{seed}:anchors")
    by: dict[str, list[ex.ExamItem]] = {}
    for i in items:
        by.setdefault(i.decision, []).append(i)
    budget = max(50, math.ceil(1.5 * rows / max(1, len(by))))
    keep: set[int] = set()
    for calls in by.values():
        got = 0
        for i in rng.sample(calls, len(calls)):
            if got >= budget:
                break
            keep.add(i.call_id)
            got += 1 + len(option_orders(i.choices, permute, "")[:permute])
    return [i for i in items if i.call_id in keep]


@dataclass(frozen=True)
class Anchors:
    """The base's preference for the calls a dataset anchors: one option drawn per call (the row's
    answer) and, where the server gives option probabilities, the order-averaged probabilities
    themselves (the choice loss's target)."""

    answers: dict[int, str]
    targets: dict[int, dict[str, float]]


def _anchor_answers(source: Path, exclude: frozenset[str], seed: int, progress: bool,
                    unsure: list[ex.ExamItem] = (), rows: int | None = None, permute: int = 5,
                    skip: frozenset[str] = frozenset()) -> Anchors | None:
    """For the calls the dataset anchors (and the ``unsure`` rated ones): an option drawn (seeded, per
    call) from the base model's preference with position averaged out (its option probabilities
    averaged over orders of the options; where the server gives none, its answers under those
    orders), so the anchors' answer shares follow that preference rather than sharpen it. With ``rows`` (training's
    row cap), only as many calls of each decision as training can use (:func:`_enough_calls`).
    None when no prompt states its order. Decisions in ``skip`` get no training row: none is asked."""
    items = [ex.as_item(c) for c in anchor_candidates(source, exclude, skip)] + list(unsure)
    items = [i for i in items if ex.other_orders(i, 5, seed)]
    if rows is not None:  # training samples a share of each decision's rows: ask only for as many
        items = _enough_calls(items, rows, permute, seed)
    if not items:
        return None
    with _serving(source, None, None, progress) as session:
        await_close = session.client.aclose
        try:
            probs = asyncio.run(_probs(items, session.scorer, seed, progress, "base preferences",
                                       cache=source / PROBS_CACHE))
        finally:
            asyncio.run(await_close())
    if all(p is None for p in probs):  # no probabilities from this server: its answers under other orders
        with _serving(source, None, None, progress) as session:
            async def ask() -> list[dict[str, str | None]]:
                try:
                    return await ex.ask_orders(items, session.client, seed=seed)
                finally:
                    await session.client.aclose()

            orders = asyncio.run(ask())
        got = {i.call_id: ex.sampled_pick(i.recorded, o, f"{seed}:{i.call_id}")
               for i, o in zip(items, orders, strict=True)}
    else:
        got = {i.call_id: ex.sampled_option(p, f"{seed}:{i.call_id}") for i, p in zip(items, probs, strict=True)}
    answers = {k: v for k, v in got.items() if v is not None}
    return Anchors(answers, {i.call_id: p for i, p in zip(items, probs, strict=True) if p and i.call_id in answers})


def _targeted(data: Path) -> set[str]:
    """The decisions a dataset corrects or confirms by a rating (anchors hold what nobody rated)."""
    out = set()
    for line in data.read_text(encoding="utf-8").splitlines():
        meta = json.loads(line)["meta"]
        if meta.get("rater") != "anchor":
            out.add(meta["action"])
    return out


def _exam_line(fig: dict[str, Any], ungraded: dict[str, float]) -> str:
    parts = [f"{d} balanced accuracy {b['base']:.0%} -> {b['adapter']:.0%} [{b['lo']:.0%}, {b['hi']:.0%}]"
             for d, b in fig["balanced_accuracy"].items() if b["base"] is not None and b["lo"] is not None]
    f = fig["fail"]
    fail = (f"fail {f['base']:.2f} -> {f['adapter']:.2f}" + (f", cut {fig['cut']:.0%} [{fig['cut_ci'][0]:.0%}, "
                                                              f"{fig['cut_ci'][1]:.0%}]" if fig["cut"] is not None
                                                              and fig["cut_ci"][0] is not None else "")
            if f["base"] is not None and f["adapter"] is not None else "no check graded an answer")
    firsts = ", ".join(f"{d} {v['base']:.0%} -> {v['adapter']:.0%}" for d, v in fig["first_share"].items()
                       if v["base"] is not None and v["adapter"] is not None)
    # a check grading far fewer of the adapter's answers may have lost its failures with them (run K: [] for all)
    fewer = ", ".join(f"{n} {c['graded']['base']} -> {c['graded']['adapter']}" for n, c in fig["checks"].items()
                      if c["graded"]["adapter"] < c["graded"]["base"] / 2)
    return (f"  {'exam':<9} {fig['n']} calls of {fig['agents']} held-out agents: " + "; ".join([*parts, fail])
            + (f"\n  {'':<9} first-listed share: {firsts}" if firsts else "")
            + (f"\n  {'':<9} checks grading under half as many answers: {fewer}" if fewer else "")
            + (f"\n  {'':<9} drift on calls no check grades: " + ", ".join(f"{d} {tv:.2f}" for d, tv in ungraded.items())
               if ungraded else ""))


def _base_problem(base: Path) -> str | None:
    """Why ``--base`` is not a run to start the loop from (None: it is)."""
    if not base.is_dir():
        return "no such folder"
    if not (base / "run.sqlite").is_file() or not (base / "config.json").is_file():
        return "not a run folder (no run.sqlite and config.json): give a run made by gensim run"
    store = RunStore(base / "run.sqlite", readonly=True)
    try:
        agents, actions = store.count("agents"), store.count("actions")
        seed = store.meta().get("seed")
    finally:
        store.close()
    if not agents or not actions or seed is None:
        return f"an empty run ({agents} agents, {actions} actions): it stopped before recording a round"
    return None


def default_out(scenario: str) -> str:
    """A loop's folder when ``--out`` names none."""
    return f"runs/correct-{Path(scenario).name}-{time.strftime('%Y%m%d-%H%M%S')}"


def correct(opts: CorrectOptions, emit: Callable[[str], None] = print, resume: bool = False) -> dict[str, Any]:
    """Run the loop; returns ``{"iterations": [...], "base_holdout_fail": f, ...}``.

    With ``resume`` (``opts`` from :func:`resume_options`), go on with a stopped loop in ``opts.out``:
    a stopped base run or fork is resumed, an adapter trained to the end is kept (its dataset, written
    again, must be the one it was trained on), an iteration already in ``correction.json`` is kept, and
    what had not finished is done again (an exam, which keeps nothing until it ends, in full).
    """
    if opts.method not in KIND or opts.rater not in ("checks", "judge"):
        raise ConfigError([ConfigProblem("<command line>", "--method/--rater", "sft|ppo and checks|judge")])
    if opts.iterations < 1 or not 0 < opts.holdout < 1 or not 0 < opts.control < 1:
        raise ConfigError([ConfigProblem("<command line>", "--iterations/--holdout/--control",
                                         "iterations >= 1; holdout and control strictly between 0 and 1")])
    if opts.rounds < 1:
        raise ConfigError([ConfigProblem("<command line>", "--rounds", f"must be 1 or more, got {opts.rounds}")])
    if opts.lr_schedule not in LR_SCHEDULES or (opts.method == "ppo" and opts.lr_schedule != "constant"):
        raise ConfigError([ConfigProblem("<command line>", "--lr-schedule", "constant or linear (linear: sft only), "
                                         f"got {opts.lr_schedule!r} with {opts.method}")])
    if opts.method == "ppo" and opts.anchor_power != 1:
        raise ConfigError([ConfigProblem("<command line>", "--anchor-power", "sft only (ppo trains no anchors)")])
    if opts.save_every is not None and (opts.method != "sft" or opts.objective != "choices" or opts.save_every < 1):
        raise ConfigError([ConfigProblem("<command line>", "--save-every", "a whole number of steps, 1 or more, for "
                                         f"sft's choices objective only; got {opts.save_every} with {opts.method} "
                                         f"{opts.objective}")])
    if opts.pick not in PICKS or (opts.pick == "anchors" and opts.save_every is None):
        raise ConfigError([ConfigProblem("<command line>", "--pick", f"{' or '.join(PICKS)}, got {opts.pick!r}"
                                         if opts.pick not in PICKS else "anchors chooses among the snapshots "
                                         "--save-every N saves: give it")])
    if opts.adapter_scope not in ADAPTER_SCOPES:
        raise ConfigError([ConfigProblem("<command line>", "--adapter-scope",
                                         f"{' or '.join(ADAPTER_SCOPES)}, got {opts.adapter_scope!r}")])
    if opts.untargeted is not None and (opts.untargeted not in UNTARGETED
                                        or (opts.untargeted == "averaged" and opts.adapter_scope != "targeted")):
        raise ConfigError([ConfigProblem("<command line>", "--untargeted",
                                         f"{' or '.join(UNTARGETED)}, got {opts.untargeted!r}" if opts.untargeted
                                         not in UNTARGETED else "averaged answers the decisions a scoped adapter "
                                         "leaves: it needs --adapter-scope targeted")])
    if opts.rated_rows not in RATED_ROWS:
        raise ConfigError([ConfigProblem("<command line>", "--rated-rows",
                                         f"{' or '.join(RATED_ROWS)}, got {opts.rated_rows!r}")])
    if opts.ungraded is not None and opts.ungraded not in UNGRADED:
        raise ConfigError([ConfigProblem("<command line>", "--ungraded", f"{' or '.join(UNGRADED)}, got {opts.ungraded!r}")])
    if opts.ungraded == "anchor" and (opts.method != "sft" or opts.rated_rows != "all"):
        raise ConfigError([ConfigProblem("<command line>", "--ungraded", "anchor is for sft with --rated-rows all "
                                         "(--rated-rows spread anchors those calls already; ppo trains no anchors)")])
    ungraded = opts.ungraded or ("anchor" if opts.method == "sft" and opts.rated_rows == "all" else "leave")
    if not 0 <= opts.max_drift <= 1 or opts.permute < 0:
        raise ConfigError([ConfigProblem("<command line>", "--max-drift/--permute",
                                         "max-drift between 0 and 1; permute 0 or more")])
    for name, v in (("--epochs", opts.epochs), ("--lr", opts.lr), ("--anchor-power", opts.anchor_power)):
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ConfigError([ConfigProblem("<command line>", name, f"must be a finite number above 0, got {v}")])
    if opts.base:
        base_problem = _base_problem(Path(opts.base))
        if base_problem:
            raise ConfigError([ConfigProblem(opts.base, "--base", base_problem)])
        _, base_seed = run_groups(Path(opts.base), opts.holdout, opts.control)
        if opts.seed is not None and opts.seed != base_seed:
            raise ConfigError([ConfigProblem("<command line>", "--seed", f"{opts.seed}, but the base run {opts.base} "
                                             f"was run with seed {base_seed}, which splits its agents: leave --seed "
                                             "out (--train-seed varies training alone)")])
    out = Path(opts.out or default_out(opts.scenario))
    if resume and not (out / LOOP_FILE).is_file():
        raise ConfigError([ConfigProblem(str(out), "--resume", f"no {LOOP_FILE}: not a loop folder of gensim correct")])
    if not resume and ((out / LOOP_FILE).is_file() or (out / "correction.json").is_file()
                       or (out / "base" / "run.sqlite").is_file()):
        raise ConfigError([ConfigProblem(str(out), "--out", f"holds a correction loop already: gensim correct --resume "
                                         f"{out} goes on with it; or give another folder")])
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        _write_loop_record(out, opts)
    if opts.base:
        base = Path(opts.base)
        emit(f"correct: starting from base run {base}")
    elif resume and (out / "base" / "run.sqlite").is_file():
        base = out / "base"
        emit(f"correct: base run {base}: resumed (nothing to do if it finished)")
        # the scenario named again: a folder's code is never run on a run folder's word alone
        asyncio.run(run_simulation(RunOptions(scenario=opts.scenario, resume=str(base), progress=opts.progress)))
    else:
        base = out / "base"
        emit(f"correct: base run -> {base}")
        # options in a seeded order per call, unless the user says otherwise (a later override wins):
        # with one fixed order, position bias and a preference for an option cannot be told apart
        asyncio.run(run_simulation(RunOptions(scenario=opts.scenario, agents=opts.agents, rounds=opts.rounds, seed=opts.seed,
                                              overrides=[SHUFFLE, *opts.overrides], out=str(base),
                                              progress=opts.progress)))
    shuffled = bool(json.loads((base / "config.json").read_text())["simulation"]["llm"].get("shuffle_options"))
    untargeted = opts.untargeted or ("averaged" if opts.adapter_scope == "targeted" and shuffled else "base")
    if opts.base and not shuffled:  # a shuffle the user turned off for a base run the loop starts was asked for
        emit("correct: warning: the base run lists every call's options in one order (llm.shuffle_options=false): "
             "position bias and option bias cannot be told apart"
             + ("; the decisions the adapter leaves stay decoded (--untargeted base)"
                if opts.untargeted is None and opts.adapter_scope == "targeted" else ""))
    if untargeted == "averaged" and not shuffled:
        raise ConfigError([ConfigProblem("<command line>", "--untargeted", "averaged asks every order of a call's "
                                         "options, and the base run states one order (llm.shuffle_options=false): "
                                         "use --untargeted base or a base run with llm.shuffle_options=true")])
    groups, seed = run_groups(base, opts.holdout, opts.control)
    if not groups.holdout_treated or not groups.control:
        raise ConfigError([ConfigProblem("<command line>", "--agents", f"{len(groups.agents)} agents leave no held-out "
                                         "treated agent or no control agent: use more agents")])
    from ..runner import read_run_config, recorded_scenario

    no_train = frozenset(opts.no_train)
    from ..store.query import RunQuery

    with RunQuery(base) as rq:
        decisions = frozenset(rq.call_actions())
    if no_train:
        unknown = sorted(no_train - decisions)
        if unknown:
            raise ConfigError([ConfigProblem("<command line>", "--no-train", f"{', '.join(unknown)}: no decision of "
                                             f"the base run {base} (its decisions: {', '.join(sorted(decisions))})"
                                             + ("" if opts.base else f"; start again from it with --base {base}"))])
        emit(f"correct: not trained (rated and examined only): {', '.join(sorted(no_train))}")
    checks = recorded_scenario(base, read_run_config(base), opts.scenario)[0].checks
    every = ex.exam_items(base, groups.agents, checks)
    # the choice decisions (call actions) whose answers a check grades: their right option can be named
    checked = frozenset(i.decision for i in every if i.action is not None and i.choices)
    items = [i for i in every if i.agent_id in groups.holdout] if opts.exam else []
    base_hold, base_ctl = _measures(base, groups, opts, emit)
    emit(f"iteration 0 (base model; {len(groups.holdout_treated)} held-out treated, {len(groups.control)} control agents)")
    emit(_group_line("held-out", base_hold))
    result: dict[str, Any] = {"base_holdout_fail": base_hold.fail, "base_control_fail": base_ctl.fail,
                              "judge_base": base_hold.judge, "not_trained": sorted(no_train), "iterations": []}
    history: list[dict[str, Any]] = []
    done = _measured(out) if resume else []
    adopted: Path | None = None
    source = base
    lr = opts.lr
    gives_probs = False  # the server's option probabilities, once shown (--untargeted averaged needs them)
    for i in range(1, opts.iterations + 1):
        adapter, fork = out / f"adapter-{i}", out / f"iter-{i}"
        if i <= len(done):  # measured before the loop stopped: kept as it was
            summary, it = done[i - 1]
            served = _served(out, i, adapter)
            emit(f"iteration {i}: measured before the loop stopped ({out / 'correction.json'}): kept, "
                 + ("adopted" if it["adopted"] else "not adopted"))
            result["iterations"].append(summary)
            history.append(it)
            refused, trained_lr = list(it["refused_because"]), float(it["learning_rate"])
        else:
            rate_run(source, by=opts.rater, judge=opts.judge, sample=opts.samples if opts.rater == "judge" else None,
                     scenario=opts.scenario,
                     progress=opts.progress)
            # a scoped adapter never answers an unrated decision: nothing to anchor there
            skip = no_train | (decisions - rated_actions(source) if opts.adapter_scope == "targeted" else frozenset())
            data = out / f"data-{i}.jsonl"
            unsure = ([u for u in ex.unsure_items(source, groups.agents - groups.holdout, checks) if u.decision not in no_train]
                      if opts.method == "sft" and opts.rater == "checks" else [])
            # "all": the checked decisions' unsure calls get no anchor answer, so the dataset leaves them out
            keep = checked if opts.method == "sft" and opts.rater == "checks" and opts.rated_rows == "all" else frozenset()
            anchors = (_anchor_answers(source, groups.holdout, seed, opts.progress,
                                       [u for u in unsure if u.decision not in keep or ungraded == "anchor"],
                                       rows=opts.max_samples,
                                       permute=opts.permute, skip=skip)
                       if opts.method == "sft" else None)
            if anchors is not None and opts.anchor_power != 1:
                anchors = replace(anchors, targets={k: sharpened(t, opts.anchor_power) for k, t in anchors.targets.items()})
            trained = _trained(adapter) if resume else None
            if trained is None and resume and (fork / "run.sqlite").is_file():
                raise ConfigError([ConfigProblem(str(fork), "--resume", f"a fork of an adapter {adapter} does not "
                                                 "hold (not trained to the end): not a folder this loop left")])
            written = data.with_name(f".{data.name}.again") if trained is not None else data
            rows = write_dataset(source, KIND[opts.method], written, rater="check:" if opts.rater == "checks" else "judge:",
                                 exclude_agents=groups.holdout, anchor=opts.method == "sft", balance=opts.method == "sft",
                                 permute=opts.permute if opts.method == "sft" else 0, seed=seed,
                                 anchor_answers=anchors.answers if anchors else None,
                                 unsure=frozenset(i.call_id for i in unsure),
                                 anchor_targets=anchors.targets if anchors else None, keep=keep, skip=skip)
            if trained is not None:  # the adapter kept must be the one these rows train
                if file_hash(written) != trained.data_sha256:
                    written.unlink()
                    raise ConfigError([ConfigProblem(str(data), "--resume", f"written again, the dataset differs from "
                                                     f"the one {adapter} was trained on (the code or the base run "
                                                     "changed since the loop started): start a new loop"
                                                     + (f" (--base {base} keeps its base run)" if base.is_dir() else ""))])
                written.replace(data)
            targeted = _targeted(data)
            scope = frozenset(targeted) if opts.adapter_scope == "targeted" else None
            if scope is not None and not scope:
                raise ConfigError([ConfigProblem("<command line>", "--adapter-scope", "targeted, but no decision has a "
                                                 f"rated training row in {source}: nothing for the adapter to answer")])
            averaged = _averaged(base, scope) if untargeted == "averaged" and scope is not None else frozenset()
            if averaged and not gives_probs:
                # anchors with probabilities show the server gives them; else one call is asked, once, before training
                gives_probs = bool(anchors and anchors.targets) or _gives_probs(base, averaged, seed, opts.progress)
            if averaged and not gives_probs:
                if opts.untargeted == "averaged":
                    raise ConfigError([ConfigProblem("<command line>", "--untargeted", "averaged draws from the model's "
                                                     "option probabilities, and the base run's server gives none (not "
                                                     "vLLM): use --untargeted base")])
                emit("correct: the server gives no option probabilities: the decisions the adapter leaves stay decoded "
                     "(--untargeted base)")
                untargeted, averaged = "base", frozenset()
            emit(f"iteration {i}: {rows} {KIND[opts.method]} rows from {source.name}; "
                 + (f"{adapter} trained on them before the loop stopped: kept" if trained is not None else
                    f"training {opts.method}" + (f" from {adopted.name}" if adopted else ""))
                 + (f"; the adapter answers {', '.join(sorted(scope))} only" if scope is not None else ""))
            train_seed = seed if opts.train_seed is None else opts.train_seed
            manifest = trained or train(opts.method, data, adapter, parent=adopted, epochs=opts.epochs, learning_rate=lr,
                                        batch_size=opts.batch_size or (8 if opts.method == "sft" else 4),
                                        seed=train_seed, progress=opts.progress, max_samples=opts.max_samples,
                                        objective=opts.objective if opts.method == "sft" else "tokens",
                                        lr_schedule=opts.lr_schedule, save_every=opts.save_every)
            served, picked = adapter, None
            if opts.pick == "anchors":
                picked = _picked(out / f"pick-{i}.json", adapter, data, scope, base, seed, opts.progress, fresh=trained is None)
                served = out / picked.chosen.folder
                emit(f"iteration {i}: {picked.line()}")
            if resume and (fork / "run.sqlite").is_file():
                emit(f"iteration {i}: fork {fork}: resumed (nothing to do if it finished)")
                asyncio.run(run_simulation(RunOptions(scenario=opts.scenario, resume=str(fork), progress=opts.progress)))
            else:
                asyncio.run(run_simulation(RunOptions(
                    scenario=opts.scenario, fork=str(base), from_round=1, out=str(fork), progress=opts.progress,
                    overrides=[f"llm.adapter={served.resolve()}", f"llm.adapter_name=adapter-{i}",
                               f"llm.adapter_share={1 - opts.control}",
                               *([f"llm.adapter_actions={json.dumps(sorted(scope))}"] if scope is not None else []),
                               *([f"llm.order_averaged={json.dumps(sorted(averaged))}"] if averaged else [])])))
            hold, ctl = _measures(fork, groups, opts, emit)
            exam, untrained, fig = None, None, None
            if opts.exam and items:
                answers, orders, probs, aprobs = _sit_exam(fork, items, served, f"adapter-{i}", seed, opts.progress,
                                                           base, scope, averaged)
                graded = ex.grade_exam(base, items, answers, checks, orders or None, probs, aprobs)
                ex.write_exam(fork / "exam.jsonl", graded)
                fig = ex.exam_figures(graded, seed=seed)
                (fork / "exam.json").write_text(json.dumps(fig, indent=2))
                exam = {**ex.summary(fig), "undecided": ex.undecided(fig, opts.max_drift, targeted),
                        "ungraded_drift": ex.ungraded_drift(fig, targeted)}
                untrained = max(ex.drift(fig, targeted, scope).values(), default=None)
            refused = judged(fork, hold, base_hold, fig, groups.holdout_treated, checks, targeted, scope, opts.max_drift)
            it = {"holdout_fail": hold.fail, "control_fail": ctl.fail, "judge": hold.judge, "judge_control": ctl.judge,
                  "train_s": manifest.train_s, "swap_s": _swap_s(fork), "samples": manifest.samples,
                  "worst_first_share": max(hold.first_share.values(), default=None),
                  "by_check": {k: f"{f}/{n}" for k, (f, n) in hold.by_check.items()},
                  "adopted": not refused, "refused_because": refused, "learning_rate": manifest.learning_rate,
                  "lr_schedule": manifest.lr_schedule, "train_seed": train_seed,
                  "anchor_power": opts.anchor_power, "ungraded": ungraded, "adapter_actions": sorted(scope) if scope is not None else None,
                  "order_averaged": sorted(averaged),
                  "picked_step": picked.chosen.step if picked else None,
                  "pick": [asdict(c) for c in picked.candidates] if picked else None,
                  "exam": exam, "max_untrained_drift": untrained}
            _record(fork, {"correction.holdout_fail": hold.fail, "correction.control_fail": ctl.fail,
                           "correction.judge": hold.judge, "correction.train_s": manifest.train_s,
                           "correction.swap_s": it["swap_s"]})
            emit(_group_line("held-out", hold))
            emit(_group_line("control", ctl))
            if exam is not None:
                emit(_exam_line(fig, exam["ungraded_drift"]))
                for line in exam["undecided"]:
                    emit(f"  {'':<9} undecided: {line}")
            emit(f"  train {manifest.train_s:.0f}s, swap {it['swap_s']:.1f}s"
                 + ("" if not refused else "; NOT adopted: " + "; ".join(refused)))
            result["iterations"].append({k: it[k] for k in ("holdout_fail", "control_fail", "judge", "train_s", "swap_s",
                                                             "worst_first_share", "adopted", "exam",
                                                             "max_untrained_drift", "adapter_actions", "order_averaged")} | {"reasons": refused})
            history.append(it)
            _write_report(out, result, history, groups)  # after every iteration: a stopped loop keeps what it measured
            trained_lr = manifest.learning_rate
        if not refused:
            adopted, source = served, fork
        else:  # the same data and parent again would give the same adapter: take a smaller step
            lr = trained_lr / 2
            if i < opts.iterations:  # the last iteration has no next one to announce
                emit(f"  next iteration: the same data from {adopted.name if adopted else 'the base'}, "
                     f"learning rate {lr:g}")
    _write_report(out, result, history, groups)
    emit(f"correct: {out / 'correction.json'}, {out / 'correction.png'}")
    return result


def _picked(path: Path, adapter: Path, data: Path, scope: frozenset[str] | None, base: Path, seed: int,
            progress: bool, fresh: bool) -> Pick:
    """``--pick anchors``: the step of ``adapter`` to serve, scored on ``data``'s anchored calls (each
    candidate served on the base run's endpoints); recorded in ``path``, read back on a resume unless the
    adapter was trained again (``fresh``)."""
    if fresh:
        path.unlink(missing_ok=True)
    got = read_pick(path)
    if got is None or not (path.parent / got.chosen.folder).is_dir():
        try:
            got = pick(adapter, data, scope, lambda folder, name, items: _snapshot_probs(
                base, folder, name, items, seed, progress, path.parent))
        except ValueError as e:
            raise ConfigError([ConfigProblem("<command line>", "--pick", f"anchors: {e} (it needs a server giving "
                                             "option probabilities: vLLM)")]) from None
        write_pick(path, got)
    return got


def _snapshot_probs(base: Path, folder: Path, name: str, items: list[ex.ExamItem], seed: int, progress: bool,
                    work: Path) -> list[dict[str, float] | None]:
    """``folder`` deployed as ``name`` on the base run's endpoints: its order-averaged probabilities
    on ``items`` (the exam's orders and seed); a merged copy, if deploying made one, removed after."""
    import shutil

    try:
        with _serving(base, folder, name, progress, work=work) as session:
            if session.adapter_scorer is None:
                return [None] * len(items)
            return asyncio.run(_probs(items, session.adapter_scorer, seed, progress, name))
    finally:
        shutil.rmtree(work / "models" / name, ignore_errors=True)


def _served(out: Path, i: int, adapter: Path) -> Path:
    """The folder a measured iteration ``i`` served: the step ``--pick anchors`` chose, else the finished
    adapter (read from its ``pick-i.json`` when the loop resumes past it)."""
    got = read_pick(out / f"pick-{i}.json")
    if got is None:
        return adapter
    if not (out / got.chosen.folder).is_dir():  # never the finished adapter in its place: not what was measured
        raise ConfigError([ConfigProblem(str(out / f"pick-{i}.json"), "chosen", f"{got.chosen.folder}: no such "
                                         "folder in the loop (the step this iteration served and measured)")])
    return out / got.chosen.folder


def judged(fork: Path, hold: GroupMeasure, base_hold: GroupMeasure, fig: dict[str, Any] | None,
           held_out: frozenset[str], checks: list[Any], targeted: set[str], scope: frozenset[str] | None,
           max_drift: float) -> list[str]:
    """Why an iteration's adapter is refused (empty: adopted): the live collapse rule on the fork's
    held-out treated agents (``hold``, against the base run's, ``base_hold``), hearing the exam where
    there is one (``fig``), then the exam's own refusals. Offline: ``bench/rejudge.py`` judges a
    recorded loop again with it."""
    if fig is None:
        return collapsed(hold, base_hold, None, set(), {})
    preferred = {d: v["base_averaged"] for d, v in fig["shares"].items() if v.get("base_averaged")}
    unchecked = {d for d, v in fig["shares"].items() if not v["right"]}
    # a live lean the live calls' right answers call for, on a decision the exam shows answering by the call
    discerning = {d: shares for d, (shares, n) in ex.live_right(fork, held_out, checks).items()
                  if n >= MIN_ANSWERS and ex.discerns(fig, d)}
    return (collapsed(hold, base_hold, preferred, unchecked, discerning)
            + ex.refusals(fig, targeted, max_drift, answered=scope))


def _trained(adapter: Path) -> AdapterManifest | None:
    """The manifest of an adapter trained to the end (training writes the folder whole, at its end)."""
    return read_manifest(adapter, "--resume") if (adapter / MANIFEST).is_file() else None


def _measured(out: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The iterations a stopped loop measured to the end: (summary, details) from its correction.json."""
    path = out / "correction.json"
    if not path.is_file():
        return []
    got = json.loads(path.read_text(encoding="utf-8"))
    return list(zip(got["iterations"], got["details"], strict=True))


def _write_report(out: Path, result: dict[str, Any], history: list[dict[str, Any]], groups: Groups) -> None:
    """``correction.json`` (the iterations so far, their details and the groups) and ``correction.png``."""
    (out / "correction.json").write_text(json.dumps({**result, "details": history,
                                                     "groups": {k: sorted(getattr(groups, k)) for k in
                                                                ("holdout", "treated", "control")}}, indent=2))
    plot_correction(result, out / "correction.png")


def correction_figure(result: dict[str, Any]) -> Any:
    """The figure of :func:`plot_correction`: failure share per iteration, held-out vs control, and the
    judge score on a second axis when there is one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = result["iterations"]
    xs = list(range(len(its) + 1))
    hold = [result["base_holdout_fail"], *[i["holdout_fail"] for i in its]]
    ctl = [result["base_control_fail"], *[i["control_fail"] for i in its]]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    ax.plot(xs, hold, "o-", label="held-out agents (adapter)")
    ax.plot(xs, ctl, "s--", label="control agents (base model)")
    ax.set_xlabel("correction iteration (0 = base model)")
    ax.set_ylabel("share of checked actions failing")
    ax.set_xticks(xs)
    ax.set_ylim(bottom=0)
    judge = [result.get("judge_base"), *[i.get("judge") for i in its]]
    if any(j is not None for j in judge):
        ax2 = ax.twinx()
        ax2.plot(xs, [j if j is not None else float("nan") for j in judge], "^:", color="gray", label="judge (1-5)")
        ax2.set_ylabel("judge score (held-out)")
        ax2.set_ylim(1, 5)
    ax.legend(loc="best", fontsize=8)
    ax.set_title("GenSim correction loop")
    fig.tight_layout()
    return fig


def plot_correction(result: dict[str, Any], path: Path) -> Path:
    """Failure share per iteration, held-out vs control (and the judge score when there is one), as a PNG."""
    import matplotlib.pyplot as plt

    fig = correction_figure(result)
    fig.savefig(path)
    plt.close(fig)
    return path
