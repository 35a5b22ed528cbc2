"""``gensim``: run, check, rate and export simulations, and build datasets from the ratings."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from pathlib import Path
from typing import NoReturn

from loguru import logger

from .config import ConfigError, resolve_scenario_dir
from .core.errors import RunStopped
from .correction import ADAPTER_SCOPES, PICKS, RATED_ROWS, UNGRADED, UNTARGETED
from .training import (  # light: the trainers load torch only when called
    DEFAULT_ROWS,
    KEPT_SHARE,
    LR_SCHEDULES,
)


def _count(text: str) -> int:
    """A whole number of at least 1 (agents, rounds, iterations...)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _positive(text: str) -> float:
    """A finite number above 0 (epochs, learning rates)."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(x) and x > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return x


class _Parser(argparse.ArgumentParser):
    """argparse with the project's one-line errors (exit 2; ``--help`` shows the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


class _Help(argparse.HelpFormatter):
    """Help lines end with the option's default, unless it is off, empty, or the text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        if "default" in text or d is None or d is False or d == [] or d is argparse.SUPPRESS or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def _parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="gensim", description="GenSim: LLM-agent social simulations.", formatter_class=_Help)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, formatter_class=_Help)

    r = command("run", "run a scenario (or replay / resume / fork a run)")
    r.add_argument("scenario", nargs="?", help="scenario name (under simulation/examples) or folder")
    r.add_argument("overrides", nargs="*", metavar="key=value", help="override any config field by dotted path")
    r.add_argument("--agents", type=_count, help="scale the population to N agents in its configured proportions "
                   "(default: the config's counts)")
    r.add_argument("--rounds", type=_count, help="rounds to run (default: the config's rounds)")
    r.add_argument("--seed", type=int, help="the seed of every random choice (default: the config's seed)")
    r.add_argument("--runtime", choices=["local", "ray"], help="where agent groups run (default: the config's runtime)")
    r.add_argument("--llm", choices=["servers", "fake"], help="fake: an in-process fake model, no servers (its answers "
                   "mean nothing: for writing and testing a scenario) (default: servers)")
    r.add_argument("--replay", metavar="RUN_DIR", help="re-run a recorded run from its recorded LLM responses, "
                   "with its recorded interventions")
    r.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    r.add_argument("--fork", metavar="RUN_DIR", help="start a new run from RUN_DIR's checkpoint before --from-round, "
                   "repeating its interventions (key=value changes its config; with --replay RUN_DIR it answers "
                   "from the parent's recording)")
    r.add_argument("--from-round", type=_count, metavar="R", help="the first round a fork runs again")
    r.add_argument("--out", metavar="DIR", help="run folder (default: <out_dir>/<name>-<time>-seed<seed>)")
    r.add_argument("--intervene", action="append", default=[], metavar="ROUND:TEXT",
                   help="from ROUND on, every agent's prompts carry TEXT (an empty TEXT clears it); repeatable")
    r.add_argument("--set", action="append", default=[], metavar="ROUND:AGENT:PATH=VALUE", dest="set_attr",
                   help="before ROUND, change a field the agent's profile has, to a value of its type "
                   "(e.g. 2:seeker-03:traits.patience=High); repeatable")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--json", action="store_true", help="print the summary as JSON on the last line")
    c = command("check", "validate a scenario's configs, profiles and templates, then dry-run it on the fake model")
    c.add_argument("scenario", help="scenario name (under simulation/examples) or folder")
    c.add_argument("overrides", nargs="*", metavar="key=value", help="override any config field by dotted path")
    c.add_argument("--dry-run", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the setup and one round on the fake model (no servers, a scratch run folder, "
                   "about a second): catches code that crashes; --no-dry-run checks the files only (default: on)")
    c.add_argument("--agents", type=_count, help="scale the population to N agents, as run --agents does "
                   "(default: the config's counts)")
    c.add_argument("--endpoints", action="store_true", help="also ask each configured endpoint for its models")
    i = command("interview", "ask an agent of a run a question; it answers in character")
    i.add_argument("run_dir", help="the run folder")
    i.add_argument("agent", help="the agent's id")
    i.add_argument("question", help="the question")
    i.add_argument("--scenario", metavar="FOLDER", help="the run's scenario, when it is not a bundled one")
    ra = command("rate", "rate a run's LLM calls: from its checks, an LLM judge, or a file of human ratings")
    ra.add_argument("run_dir", help="the run folder")
    ra.add_argument("--by", required=True, choices=["checks", "judge", "file"], help="where the ratings come from")
    ra.add_argument("--judge", metavar="CONFIG_NAME", help="the judge's model_configs.json entry (default: the run's model)")
    ra.add_argument("--sample", type=_count, metavar="N", help="judge N calls, seeded, spread over actions, failed "
                    "checks first (default: every call)")
    ra.add_argument("--action", help="only calls (or checks) of this action (default: all actions)")
    ra.add_argument("--round", type=int, dest="round_", metavar="R", help="only round R (default: every round)")
    ra.add_argument("--seed", type=int, default=0, help="the judge's sample")
    ra.add_argument("--file", metavar="F", help="CSV (comma, semicolon or tab) or JSONL: llm_call_id, score and/or "
                    "rewrite, [rater, reason]")
    ra.add_argument("--scenario", metavar="FOLDER", help="the run's scenario, for the judge's rubric, when it is not "
                    "a bundled one")
    ra.add_argument("--no-rewrite", action="store_true", help="the judge scores only")
    ds = command("dataset", "write a training dataset (JSONL, Hugging Face conventions) from a run's ratings")
    ds.add_argument("run_dir", help="the run folder")
    ds.add_argument("--kind", required=True, choices=["sft", "preference", "reward"], help="the dataset's format")
    ds.add_argument("--out", required=True, metavar="FILE.jsonl", help="where to write it")
    ds.add_argument("--min-score", type=float, default=4.0, help="sft: keep original answers scored at least this")
    ds.add_argument("--rater", metavar="PREFIX", help="only ratings whose rater starts with PREFIX, e.g. check: or "
                    "human: (default: every rater)")
    ds.add_argument("--anchor", action="store_true", help="sft: keep the recorded answers of decisions nobody rated")
    ds.add_argument("--balance", action="store_true", help="sft: repeat each decision's rarer answers (up to 4x)")
    ds.add_argument("--permute", type=int, default=0, metavar="N", help="sft: add up to N copies of each choice row "
                    "with its options stated in other orders (runs with llm.shuffle_options)")
    ds.add_argument("--seed", type=int, default=0, help="the seed of the permuted copies' orders")
    t = command("train", "train a LoRA adapter on a dataset: sft (sft kind) or ppo (reward kind)")
    t.add_argument("method", choices=["sft", "ppo"], help="sft or ppo")
    t.add_argument("--data", required=True, metavar="FILE.jsonl", help="a gensim dataset file")
    t.add_argument("--out", required=True, metavar="ADAPTER_DIR", help="the adapter folder to write")
    t.add_argument("--base", metavar="MODEL_DIR", help="base model folder (default: the served chat model)")
    t.add_argument("--from", dest="parent", metavar="ADAPTER_DIR", help="continue training this adapter "
                   "(default: a new adapter)")
    t.add_argument("--epochs", type=_positive, default=1.0, help="passes over the data")
    t.add_argument("--lora-rank", type=_count, default=16, help="the adapter's LoRA rank")
    t.add_argument("--lr", type=_positive, help="learning rate (default: 1e-3 for sft, 1e-5 for ppo)")
    t.add_argument("--batch-size", type=_count, default=8, help="examples per step")
    t.add_argument("--max-samples", type=_count, help="train on a seeded sample of at most N rows, spread evenly over "
                   "actions, each recorded call's rows together; rows meta.keep marks first, up to 60%% (default: all rows)")
    t.add_argument("--seed", type=int, default=0, help="the sample's and the training's seed")
    t.add_argument("--objective", choices=["tokens", "choices"], default="tokens", help="sft's loss: tokens (the "
                   "answer's tokens, trl) or choices (rows with meta.options train the option the constrained decoder "
                   "picks, toward meta.target where given); default tokens")
    t.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant", help="sft's learning rate: "
                   "constant, or linear (decayed to almost 0 at the last step); default constant")
    t.add_argument("--save-every", type=_count, metavar="N", help="the choices objective: save the adapter every N "
                   "steps too (ADAPTER_DIR/snapshots/step-NNNNN, each a servable adapter with its manifest); default: "
                   "the finished adapter only")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    co = command("correct", "the correction loop: run, rate, dataset, train, deploy, re-run; measured on held-out "
                 "agents against a control group")
    co.add_argument("scenario", nargs="?", help="scenario name (under simulation/examples) or folder (none with "
                    "--resume)")
    co.add_argument("overrides", nargs="*", metavar="key=value", help="override any config field by dotted path")
    co.add_argument("--resume", metavar="DIR", help="go on with the stopped loop in DIR, with the options it was "
                    "started with (DIR/loop.json): stopped runs resumed, finished adapters and measured iterations "
                    "kept, the rest done again; give no scenario or other option but --no-progress and --json")
    co.add_argument("--iterations", type=_count, default=1, help="rate-train-deploy cycles")
    co.add_argument("--method", choices=["sft", "ppo"], default="sft", help="how each adapter is trained")
    co.add_argument("--rater", choices=["checks", "judge"], default="checks", help="where the ratings come from")
    co.add_argument("--judge", metavar="CONFIG_NAME", help="judge model (model_configs.json; default: the run's model)")
    co.add_argument("--judge-score", action="store_true", help="also give every run a judge score (a second column)")
    co.add_argument("--base", metavar="RUN_DIR", help="start from this base run (default: run one)")
    co.add_argument("--rounds", type=_count, default=3, help="the base run's rounds (each fork re-runs them all with "
                    "the adapter): more rounds, more exam calls")
    co.add_argument("--judge-samples", "--samples", dest="samples", metavar="N", type=_count, default=None,
                    help="LLM calls the judge rates per run, with --rater judge or --judge-score (default 24; "
                    "--rater checks rates every checked call)")
    co.add_argument("--holdout", type=float, default=0.5, help="share of agents never trained on (their calls are "
                    "the exam)")
    co.add_argument("--control", type=float, default=0.3, help="share of agents that keep the base model")
    co.add_argument("--agents", type=_count, default=320, help="scale the base run's population to N agents: "
                    "on job seeking, 320 gives about 200 held-out exam calls per checked decision over 3 rounds")
    co.add_argument("--seed", type=int, help="the seed of every random choice (default: the config's seed; "
                    "with --base, the base run's)")
    co.add_argument("--train-seed", type=int, help="training's seed alone: its row sample, LoRA start and batch "
                    "order (default: the base run's seed); replicates an adapter on one base and data")
    co.add_argument("--epochs", type=_positive, default=1.0, help="training passes per iteration")
    co.add_argument("--lr", type=_positive, help="learning rate (default: 1e-3 for sft, 1e-5 for ppo)")
    co.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant", help="sft's learning rate: "
                    "constant, or linear (decayed to almost 0 at the last step); default constant")
    co.add_argument("--save-every", type=_count, metavar="N", help="sft's choices objective: save each adapter "
                    "every N training steps too (adapter-K/snapshots/step-NNNNN, servable adapters; bench/trajectory.py "
                    "examines them); default: the finished adapter only")
    co.add_argument("--pick", choices=PICKS, default="last", help="which step of each training the "
                    "fork serves: last, the finished adapter (default); anchors, the snapshot from half the training "
                    "on (or the finished adapter) whose picks on the training agents' calls no check grades stay "
                    "closest to the base model's (needs --save-every and a server giving option probabilities)")
    co.add_argument("--anchor-power", type=_positive, default=1.0, help="sft: raise each anchor's target (the base "
                    "model's order-averaged option probabilities) to this power, renormalised: above 1 a near-tied "
                    "call keeps the base's pick with a margin; default 1 (the probabilities themselves)")
    co.add_argument("--max-samples", type=_count, default=DEFAULT_ROWS, help="training rows per iteration, at most "
                    "(a seeded sample spread evenly over actions; the rated rows --rated-rows keeps take at most "
                    f"{KEPT_SHARE * 100:.0f}%%)")
    co.add_argument("--rated-rows", choices=RATED_ROWS, default="all", help="sft with --rater checks: all trains every "
                    "rated row of a decision whose checks name the right option, and leaves out its calls they name "
                    "none for; spread gives those decisions an even share of --max-samples like the others")
    co.add_argument("--ungraded", choices=UNGRADED, help="sft with --rated-rows all: a "
                    "checked decision's calls no check names a right option for (a CV meeting some of a job's "
                    "requirements): anchor them to the base model's preference with position averaged out, so the "
                    "adapter keeps the base's answers there (default where it applies), or leave them out of training")
    co.add_argument("--no-train", action="append", default=[], metavar="DECISION", help="rate and examine "
                    "this decision (an action name, e.g. respond_offers) but give it no training row; the guard "
                    "holds it like any decision no example targeted (repeatable)")
    co.add_argument("--adapter-scope", choices=ADAPTER_SCOPES, default="targeted", help="targeted: the fork "
                    "sends only the decisions with rated training rows to the adapter (llm.adapter_actions) and every "
                    "other call to the base model, so those cannot drift and get no anchor rows (default); all: the "
                    "adapter answers every call of its agents")
    co.add_argument("--untargeted", choices=UNTARGETED, default=None, help="with --adapter-scope targeted, who "
                    "answers the choice decisions the adapter leaves (memory.* aside): averaged, the base model's "
                    "option probabilities averaged over orders of the options, one option drawn per call "
                    "(llm.order_averaged), in the fork and on the exam (default); base, the base model as decoded, "
                    "position bias kept (a server without option probabilities needs it)")
    co.add_argument("--max-drift", type=float, default=0.15, help="refuse an adapter that moves a decision no example "
                    "targeted further than this (total variation distance) from the base model, on the exam")
    co.add_argument("--permute", type=int, default=5, metavar="N", help="sft: copies of each choice example with "
                    "its options in other orders (all other orders of two options; 0: none)")
    co.add_argument("--objective", choices=["tokens", "choices"], default="choices", help="sft's loss: choices "
                    "(the constrained decoder's pick over each choice row's options; anchors trained toward the "
                    "base's order-averaged probabilities) or tokens (the answer's tokens); default choices")
    co.add_argument("--out", metavar="DIR", help="the loop's folder (default: runs/correct-<scenario>-<time>)")
    co.add_argument("--no-progress", action="store_true", help="no progress bars")
    co.add_argument("--json", action="store_true", help="print the results as JSON on the last line")
    e = command("export", "export a run's tables to CSV, JSONL or Parquet")
    e.add_argument("run_dir", help="the run folder")
    e.add_argument("--format", choices=["csv", "jsonl", "parquet"], default="csv", help="the files' format")
    e.add_argument("--out", default=None, help="the folder to write (default: <run_dir>/export)")
    x = command("experiment", "replications over seeds and a parameter grid, with confidence intervals")
    x.add_argument("scenario", help="a bundled scenario's name or a scenario folder")
    x.add_argument("overrides", nargs="*", metavar="key=value", help="settings every run shares")
    x.add_argument("--seeds", type=_count, required=True, metavar="N", help="runs per cell, seeds --seed .. --seed+N-1")
    x.add_argument("--seed", type=int, default=1, help="the first seed (default 1)")
    x.add_argument("--grid", action="append", default=[], metavar="key=v1,v2",
                   help="a swept setting (repeatable; the full factorial is run; agents and rounds may be keys)")
    x.add_argument("--baseline", metavar="key=v", help="the cell every other is compared with (Welch interval; default: none)")
    x.add_argument("--parallel", type=_count, default=1, metavar="P", help="runs at once (default 1)")
    x.add_argument("--agents", type=_count, help="population size of every run (unless a grid key; default: the scenario's)")
    x.add_argument("--rounds", type=_count, help="rounds of every run (unless a grid key; default: the scenario's)")
    x.add_argument("--llm", choices=["servers", "fake"], help="fake: the in-process fake model (no servers; default: the config's backend)")
    x.add_argument("--out", metavar="DIR", help="the experiment's folder (default: runs/experiment-<scenario>)")
    x.add_argument("--no-progress", action="store_true", help="no server start lines")
    x.add_argument("--dry-run", action="store_true", help="run a one-round pilot on a few agents and print the runs, "
                   "LLM calls, tokens and time the experiment would take (stored, compared with the real figures later)")
    me = command("metrics", "print a run's per-round metrics and what each round cost")
    me.add_argument("run_dir", help="the run folder")
    me.add_argument("--format", choices=["table", "csv", "json"], default="table", help="how to print them (default: table)")
    me.add_argument("--metric", action="append", default=[], metavar="GLOB",
                    help="only metrics matching this pattern (repeatable; costs are left out then)")
    pl = command("plot", "draw a run's per-round metrics to a PNG, one panel per metric")
    pl.add_argument("run_dir", help="the run folder")
    pl.add_argument("--metric", action="append", default=[], metavar="GLOB",
                    help="metrics to draw (repeatable; default: the scenario's key metrics, else all of its own)")
    pl.add_argument("--out", default=None, metavar="FILE.png", help="the file (default: <run_dir>/metrics.png)")
    u = command("ui", "serve the web interface: configure, run and watch, agents, interviews, ratings, training")
    u.add_argument("--host", default="127.0.0.1", help="address to bind (any other than loopback needs --auth)")
    u.add_argument("--port", type=int, default=7860, help="port")
    u.add_argument("--auth", metavar="USER:PASSWORD", default=None, help="require this login (default: none, on loopback only)")
    u.add_argument("--runs", metavar="DIR", default="runs", help="the runs folder the page reads and writes")
    u.add_argument("--scenarios", metavar="DIR", action="append", default=[],
                   help="a folder of scenario folders to offer beside the bundled ones (repeatable)")
    return ap


def _fail(msg: str, code: int = 1) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return code


def _on_terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _terminate_like_interrupt() -> object:
    """SIGTERM (``kill PID``, a job scheduler's stop) ends a command as Ctrl-C does: the run stops
    resumable and the embedded servers it started are stopped (without it they outlive it).
    Returns the handler it replaced (None off the main thread, where none can be set)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _on_terminate)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come after the options too: gensim run s --agents 9 llm.max_tokens=8
    stray = [x for x in extra if x.startswith("-") or "=" not in x or args.cmd not in ("run", "check", "correct", "experiment")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("GENSIM_LOG_LEVEL", "WARNING"),
               format="<level>{level: <7}</level> {message}", filter=lambda r: not r["extra"].get("run_log_only"))
    previous = _terminate_like_interrupt()
    try:
        return _dispatch(args)
    except ConfigError as e:
        for p in e.problems:
            print(f"error: {p}", file=sys.stderr)
        return 2
    except RunStopped as e:  # what was recorded stays, and the run can be resumed
        from .runner import Interrupted, format_summary

        if isinstance(e, Interrupted):  # Ctrl-C: the summary of what ran, then where it stopped
            if e.summary:
                print(format_summary(e.summary))
            return _fail(str(e), 130)
        return _fail(f"stopped: {e}", 4)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as e:  # one line for the user; GENSIM_DEBUG=1 shows the traceback
        if os.environ.get("GENSIM_DEBUG"):
            raise
        return _fail(f"{type(e).__name__}: {e} (GENSIM_DEBUG=1 shows the traceback)")
    finally:
        if previous is not None:  # main() called from Python (tests, notebooks) leaves no handler behind
            import signal

            signal.signal(signal.SIGTERM, previous)


def _correct(args: argparse.Namespace) -> int:
    """``gensim correct``: a new loop, or a stopped one gone on with (``--resume``)."""
    from .correction.loop import LOOP_FILE, CorrectOptions, correct, default_out, resume_options
    from .runner import dump_json

    if args.resume:
        given = _given_with_resume(args)
        if given:
            return _fail(f"--resume: goes on with the options {args.resume}/{LOOP_FILE} records; leave out "
                         f"{', '.join(given)}", 2)
        opts = resume_options(Path(args.resume), progress=not args.no_progress)
    else:
        if args.scenario is None:
            return _fail("correct: give a scenario (or --resume DIR to go on with a stopped loop)", 2)
        if args.samples is not None and args.rater == "checks" and not args.judge_score:
            return _fail("--judge-samples: sizes the judge's sample, and no judge rates this loop (--rater checks "
                         "rates every checked call): add --judge-score or --rater judge, or leave it out", 2)
        opts = CorrectOptions(
            args.scenario, iterations=args.iterations, method=args.method, rater=args.rater, judge=args.judge,
            judge_score=args.judge_score, samples=args.samples or 24, holdout=args.holdout, control=args.control,
            agents=args.agents, seed=args.seed, train_seed=args.train_seed, overrides=args.overrides,
            out=args.out or default_out(args.scenario), epochs=args.epochs, lr=args.lr, lr_schedule=args.lr_schedule,
            save_every=args.save_every, anchor_power=args.anchor_power, max_samples=args.max_samples,
            progress=not args.no_progress, base=args.base, max_drift=args.max_drift, permute=args.permute,
            rounds=args.rounds, objective=args.objective, rated_rows=args.rated_rows, ungraded=args.ungraded,
            no_train=tuple(args.no_train), adapter_scope=args.adapter_scope, untargeted=args.untargeted,
            pick=args.pick)
    try:
        res = correct(opts, resume=bool(args.resume))
    except (KeyboardInterrupt, RunStopped):
        if (Path(opts.out) / LOOP_FILE).is_file():  # what it finished stays; the rest can be done
            print(f"correct: stopped; gensim correct --resume {opts.out} goes on with the loop", file=sys.stderr)
        raise
    if args.json:
        print(dump_json(res))
    return 0


def _given_with_resume(args: argparse.Namespace) -> list[str]:
    """The loop options given beside ``gensim correct --resume`` (which takes the recorded ones)."""
    defaults = vars(_parser().parse_args(["correct"]))
    quiet = {"resume", "no_progress", "json", "cmd"}
    return [k if k in ("scenario", "overrides") else "--" + k.replace("_", "-") for k, v in vars(args).items()
            if k not in quiet and v != defaults.get(k) and not (k == "overrides" and not v)]


def _dispatch(args: argparse.Namespace) -> int:
    from .runner import RunOptions, dump_json, format_summary, run_simulation
    from .schedule import parse_attribute, parse_intervention

    if args.cmd == "ui":
        from .ui.security import UIError
        from .ui.server import serve

        try:
            serve(args.host, args.port, args.auth, args.runs, args.scenarios)
        except UIError as e:
            return _fail(str(e), 2)
        return 0
    if args.cmd == "check":
        from .checking import check_scenario

        return check_scenario(args.scenario, args.overrides, args.dry_run, args.agents, args.endpoints)
    if args.cmd in ("interview", "export", "rate", "dataset", "metrics", "plot") and not (Path(args.run_dir) / "run.sqlite").is_file():
        return _fail(f"{args.run_dir}: not a run folder (no run.sqlite)", 2)
    if args.cmd == "interview":
        from .control.interview import interview_agent

        run_dir = Path(args.run_dir)
        out = asyncio.run(interview_agent(run_dir, args.agent, args.question, args.scenario))
        print(f"{out['agent']} (after round {out['round']}): {out['answer']}")
        return 0
    if args.cmd == "rate":
        from .correction import rate_run

        out = rate_run(args.run_dir, args.by, args.judge, args.sample, args.action, args.round_, args.seed,
                       args.file, rewrite=not args.no_rewrite, scenario=args.scenario)
        agreement = out.pop("judge_vs_checks", None)
        print(" ".join(f"{k}={v}" for k, v in out.items()))
        if agreement is not None:
            from .correction.ratings import judge_warning

            print(f"judge vs checks: {agreement['verdict']} (AUC {agreement['auc']}, {agreement['passed']} passing and "
                  f"{agreement['failed']} failing calls, scores {agreement['distinct_scores']})")
            if (warning := judge_warning(agreement)) is not None:
                print(f"warning: {warning}", file=sys.stderr)
        return 0
    if args.cmd == "dataset":
        from .correction import write_dataset

        n = write_dataset(Path(args.run_dir), args.kind, Path(args.out), args.min_score, args.rater,
                          anchor=args.anchor, balance=args.balance, permute=args.permute, seed=args.seed)
        print(f"{n} {args.kind} rows -> {args.out}")
        return 0
    if args.cmd == "correct":
        return _correct(args)
    if args.cmd == "train":
        from .training import train

        m = train(args.method, Path(args.data), Path(args.out), args.base, Path(args.parent) if args.parent else None,
                  args.epochs, args.lora_rank, args.lr, args.batch_size, args.seed, not args.no_progress,
                  args.max_samples, objective=args.objective, lr_schedule=args.lr_schedule,
                  save_every=args.save_every)
        last = f"{m.losses[-1]:.4g}" if m.losses else "n/a"
        print(f"{m.method} adapter -> {args.out} ({m.samples} samples, {m.train_s:.1f}s, last loss {last}, "
              f"parent {m.parent or 'none'})")
        return 0
    if args.cmd == "experiment":
        return _experiment(args)
    if args.cmd == "metrics":
        from .store.results import run_metrics, write_metrics

        df = run_metrics(args.run_dir, args.metric or None)
        if args.metric and df.empty or not len(df.columns):
            return _fail(f"--metric: no per-round metric of {args.run_dir} matches {', '.join(args.metric)}", 2)
        print(write_metrics(df, args.format).rstrip("\n"))
        return 0
    if args.cmd == "plot":
        from .store.results import plot_run, run_metrics

        df = run_metrics(args.run_dir, args.metric or None, costs=False)
        if not args.metric:  # the scenario's own: its key metrics, else all but the framework's
            from .store.results import _framework

            keys = [c for c in df.columns if not _framework(c)]
            df = df[keys[:9]]
        if df.empty or not len(df.columns):
            return _fail(f"--metric: no per-round metric of {args.run_dir} matches {', '.join(args.metric) or 'any'}", 2)
        out = plot_run(df, args.out or Path(args.run_dir) / "metrics.png", title=Path(args.run_dir).name)
        print(out)
        return 0
    if args.cmd == "export":
        from .store.query import export_run

        run_dir = Path(args.run_dir)
        files = export_run(run_dir, args.out or run_dir / "export", args.format)
        print("\n".join(str(f) for f in files))
        return 0
    if not (args.scenario or args.replay or args.resume or args.fork):
        return _fail("run needs a scenario, --replay RUN_DIR, --resume RUN_DIR or --fork RUN_DIR", 2)
    if args.resume and (args.replay or args.fork):
        return _fail("--resume continues a run as it was: it goes with neither --replay nor --fork", 2)
    if args.from_round is not None and not args.fork:
        return _fail("--from-round goes with --fork RUN_DIR", 2)
    if (args.replay or args.resume or args.fork) and args.scenario and "=" in args.scenario:
        args.overrides, args.scenario = [args.scenario, *args.overrides], None  # no scenario: key=value only
    if args.scenario and "=" in args.scenario and not Path(args.scenario).exists():
        return _fail("the first argument of 'run' must be the scenario, before any key=value", 2)
    if args.llm:
        args.overrides = [*args.overrides, f"llm.backend={args.llm}"]
    opts = RunOptions(scenario=args.scenario, agents=args.agents, rounds=args.rounds, seed=args.seed,
                      runtime=args.runtime, replay=args.replay, resume=args.resume, out=args.out,
                      fork=args.fork, from_round=args.from_round,
                      overrides=args.overrides, progress=not args.no_progress,
                      interventions=[parse_intervention(x) for x in args.intervene],
                      attributes=[parse_attribute(x) for x in args.set_attr])
    summary = asyncio.run(run_simulation(opts))
    if "already_finished" in summary:
        print(summary["already_finished"])
        return 0
    print(format_summary(summary))
    from .store.results import format_table, run_metrics

    print("\nPer-round metrics (all of them: gensim metrics RUN_DIR)")
    print(format_table(run_metrics(summary["run_dir"], costs=False)))
    if args.json:
        print(dump_json(summary))
    return 0


def run_scenario_main(folder: Path) -> None:
    """Entry point of a scenario's thin ``simulator.py``: run it with its own configs (extra CLI args pass on)."""
    sys.exit(main(["run", str(folder), *sys.argv[1:]]))


def _experiment(args: argparse.Namespace) -> int:
    from .core.scenario import load_scenario
    from .experiments import (
        ExperimentDesign,
        last_round_table,
        parse_baseline,
        parse_grid,
        run_experiment,
        summarise,
    )
    from .experiments.design import cell_name
    from .experiments.run import failed_runs

    grid = parse_grid(args.grid)
    design = ExperimentDesign(scenario=args.scenario, seeds=list(range(args.seed, args.seed + args.seeds)), grid=grid,
                              baseline=parse_baseline(args.baseline, grid), agents=args.agents, rounds=args.rounds,
                              llm=args.llm, overrides=list(args.overrides))
    out = Path(args.out or Path("runs") / f"experiment-{Path(args.scenario).name}")
    if args.dry_run:
        from .experiments.run import forecast

        forecast(design, out, parallel=args.parallel)
        return 0
    results = run_experiment(design, out, parallel=args.parallel, progress=not args.no_progress)
    base = design.baseline_cell()
    summary = summarise(results, cell_name(base) if base is not None else None)
    keys = load_scenario(resolve_scenario_dir(args.scenario)).key_metrics or sorted(
        m for m in summary["metric"].unique() if not m.startswith(("decision.", "check.", "cost.")))[:5]
    print(f"\nLast round by cell (mean ± half of the 95% t-interval; {out}/summary.csv has every round)")
    print(last_round_table(summary, [*keys, "cost.wall_s"]))
    print(f"results: {out / 'results.parquet'}; plots: {out / 'plots'}")
    failed = failed_runs(out)
    if failed:  # the aggregates hold the other runs; the command says the experiment is not complete
        return _fail(f"{len(failed)} run(s) failed (listed above; the summary says how many seeds each cell has): "
                     "run the same command again to retry them", 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
