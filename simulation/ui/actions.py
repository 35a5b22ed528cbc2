"""What the page's buttons do, as plain functions on a :class:`UIContext` (no Gradio here): they are the
API the page calls and the tests drive. Reads go through :class:`~simulation.store.query.RunQuery`; writes
through the same functions as the CLI (ratings, datasets, training, the live-run controller)."""

from __future__ import annotations

import contextlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import ConfigError
from ..config.loader import EXAMPLES_DIR
from ..control import Job, RunController
from ..runner import RunOptions
from ..store.query import CallFilter, RunQuery
from ..training import DEFAULT_ROWS
from .forms import SettingField, setting_fields
from .security import PathGuard, UIError, check_upload

SETTING_SECTIONS = ("simulation", "memory", "scenario")


@dataclass
class UIContext:
    """The interface's server-side state: where runs live, which scenarios it offers, the live run."""

    runs_dir: Path
    scenario_roots: list[Path] = field(default_factory=list)
    controller: RunController = field(default_factory=RunController)
    training: Job | None = None  # the latest training started from the page
    correction: Job | None = None  # the latest correction loop started from the page

    def __post_init__(self) -> None:
        self.runs_dir = Path(self.runs_dir).resolve()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.guard = PathGuard([self.runs_dir, *self.scenario_roots])

    # -- scenarios and settings --
    def scenarios(self) -> list[str]:
        """Bundled scenario names, then folders with a ``configs/`` under the scenario roots."""
        names = sorted(p.name for p in EXAMPLES_DIR.iterdir() if (p / "configs").is_dir())
        for root in self.scenario_roots:
            names += sorted(str(p) for p in Path(root).iterdir() if (p / "configs").is_dir())
        return names

    def _scenario(self, name: str) -> str:
        if name in {p.name for p in EXAMPLES_DIR.iterdir()}:
            return name
        path = Path(name).resolve()
        if not any(path.is_relative_to(Path(r).resolve()) for r in self.scenario_roots):
            raise UIError(f"scenario {name}: not a bundled scenario nor under a scenario root")
        return str(path)

    def settings(self, scenario: str) -> pd.DataFrame:
        """Every setting of a scenario's config as ``(setting, value)`` rows, keyed as overrides are."""
        return pd.DataFrame(self._setting_rows(scenario)[0], columns=["setting", "value"])

    def _setting_rows(self, scenario: str) -> tuple[list[tuple[str, str]], Any, Any]:
        from ..runner import prepare_config

        spec, cfg = prepare_config(RunOptions(scenario=self._scenario(scenario)))
        rows: list[tuple[str, str]] = []
        sim = cfg.simulation.model_dump(by_alias=True, mode="json")
        sim.pop("name", None)
        sim.pop("scenario", None)  # the scenario's parameters, resolved, come from cfg.params below
        _flatten("", sim, rows)
        _flatten("memory.", cfg.memory.model_dump(mode="json"), rows)
        _flatten("scenario.", cfg.params, rows)
        return rows, spec, cfg

    def setting_fields(self, scenario: str) -> list[SettingField]:
        """The settings as typed form fields (kinds and choices from the pydantic config models)."""
        from ..config.models import SimulationConfig

        rows, spec, cfg = self._setting_rows(scenario)
        return setting_fields(rows, SimulationConfig, type(cfg.memory), spec.params_model)

    def overrides(self, scenario: str, edited: pd.DataFrame | None) -> list[str]:
        """``key=value`` overrides for the rows whose value differs from the scenario's."""
        if edited is None or len(edited) == 0:
            return []
        base = dict(self.settings(scenario).itertuples(index=False))
        out = []
        for key, value in edited[["setting", "value"]].itertuples(index=False):
            key, value = str(key).strip(), "" if value is None else str(value)
            if key and base.get(key) != value:
                out.append(f"{key}={value}")
        return out

    def check(self, scenario: str, edited: pd.DataFrame | None, dry_run: bool = False) -> str:
        """``gensim check`` on the edited settings: its report, or one line per problem."""
        from ..checking import check_scenario

        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                code = check_scenario(self._scenario(scenario), self.overrides(scenario, edited), dry_run)
        except ConfigError as e:
            return "problems:\n" + "\n".join(f"- {p}" for p in e.problems)
        return buf.getvalue().strip() + ("" if code == 0 else f"\n(exit {code})")

    def import_profiles(self, scenario: str, agent_type: str, upload: str | Path) -> tuple[str, str]:
        """Validate an uploaded profile file with the scenario's importer, then keep it under the runs
        folder; returns the import report and the setting that uses it (``agents.<type>.profiles=...``)."""
        from ..config import resolve_scenario_dir
        from ..core.scenario import load_scenario
        from ..population.build import read_imported

        src = Path(upload)
        check_upload(src.name, src.stat().st_size)
        spec = load_scenario(resolve_scenario_dir(self._scenario(scenario)))
        try:
            got = read_imported(spec, agent_type, src)
        except (ConfigError, ValueError, KeyError, TypeError, OSError) as e:
            raise UIError(f"upload {src.name}: {e}") from None
        dest = self.runs_dir / "uploads" / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(src.read_bytes())  # written only once the importer accepted it
        report = f"{agent_type}: {len(got.profiles):,} profiles read from {src.name}"
        if got.ignored:
            report += f"; not used by any prompt: {', '.join(got.ignored)}"
        if got.assumed:
            report += f"; assumed: {'; '.join(got.assumed)}"
        return report, f"agents.{agent_type}.profiles={dest}"

    # -- live run --
    def start(self, scenario: str, edited: pd.DataFrame | None, name: str | None = None) -> Path:
        """Start a run of the edited settings in the background; returns its folder."""
        overrides = self.overrides(scenario, edited)
        out = self.runs_dir / (name.strip() if name and name.strip() else
                               f"{Path(scenario).name}-{time.strftime('%Y%m%d-%H%M%S')}")
        out = self.guard.resolve(str(out), "run name")
        self.controller.start(RunOptions(scenario=self._scenario(scenario), overrides=overrides, out=str(out)))
        return out

    def resume(self, run: str, scenario: str | None = None) -> Path:
        run_dir = self.run_dir(run)
        self.controller.start(RunOptions(resume=str(run_dir), scenario=self._scenario(scenario) if scenario else None))
        return run_dir

    def fork(self, run: str, from_round: int, scenario: str | None = None, name: str | None = None,
             overrides: list[str] | None = None) -> Path:
        """Roll a run back to the checkpoint before ``from_round`` and run it again from there.

        ``scenario`` is the folder the user picked: a run folder's recorded scenario code is never
        imported on its own (bundled scenarios need none)."""
        src = self.run_dir(run)
        out = self.guard.resolve(name or f"{src.name}-fork{from_round}-{time.strftime('%H%M%S')}", "fork name")
        self.controller.start(RunOptions(fork=str(src), from_round=int(from_round), out=str(out),
                                         scenario=self._scenario(scenario) if scenario else None,
                                         overrides=list(overrides or [])))
        return out

    def replay(self, run: str, name: str | None = None) -> Path:
        """Replay a recorded run into a new folder (answers from the recording; no model is called)."""
        src = self.run_dir(run)
        out = self.guard.resolve(name or f"{src.name}-replay-{time.strftime('%H%M%S')}", "replay name")
        self.controller.start(RunOptions(replay=str(src), out=str(out)))
        return out

    # -- run folders --
    def runs(self) -> pd.DataFrame:
        """The run folders under the runs folder, newest first, with their state."""
        rows = []
        for db in sorted(self.runs_dir.glob("**/run.sqlite"), key=lambda p: p.stat().st_mtime, reverse=True):
            if not self.guard.inside(db):
                continue
            try:
                with RunQuery(db.parent) as rq:
                    st = rq.status()
            except Exception as e:  # a folder being created, a foreign file: listed, not fatal
                rows.append({"run": str(db.parent.relative_to(self.runs_dir)), "scenario": "", "state": f"unreadable: {e}",
                             "rounds": "", "agents": 0})
                continue
            live = self.controller.status()
            state = live.state if live.active and live.run_dir == db.parent.resolve() else st.state
            rows.append({"run": str(db.parent.relative_to(self.runs_dir)), "scenario": st.scenario or "",
                         "state": state, "rounds": f"{st.rounds_done}/{st.rounds or '?'}", "agents": st.agents})
        return pd.DataFrame(rows, columns=["run", "scenario", "state", "rounds", "agents"])

    def run_dir(self, run: str) -> Path:
        path = self.guard.resolve(run, "run")
        if not (path / "run.sqlite").is_file():
            raise UIError(f"run {run}: not a run folder (no run.sqlite)")
        return path

    def query(self, run: str) -> RunQuery:
        return RunQuery(self.run_dir(run))

    def metrics_long(self, runs: list[str], patterns: list[str] | None = None) -> pd.DataFrame:
        """Per-round metrics of one or more runs as ``(run, round, metric, value)`` rows for a line plot."""
        import fnmatch

        frames = []
        for run in runs:
            with self.query(run) as rq:
                df = rq.metrics_long().rename(columns={"name": "metric"})
            if patterns:  # a boolean Series: an empty plain list would select no columns
                df = df[df["metric"].map(lambda m: any(fnmatch.fnmatch(m, p) for p in patterns)).astype(bool)]
            df.insert(0, "run", run)
            frames.append(df)
        if not frames:
            return pd.DataFrame(columns=["run", "round", "metric", "value"])
        out = pd.concat(frames, ignore_index=True)
        out["series"] = out["run"] + " - " + out["metric"] if len(runs) > 1 else out["metric"]
        return out

    # -- ratings and datasets --
    def rate(self, run: str, call_id: int, rater: str, score: float | None, rewrite: str | None) -> str:
        """A person's rating (1-5) or rewrite of one call, stored as ``gensim rate --file`` stores it."""
        from ..correction.ratings import Rating, add_ratings, load_calls, valid_rewrite
        from ..store import RunStore

        rater = (rater or "").strip()
        if not rater or rater in ("checks",) or rater.startswith("judge"):
            raise UIError("rater: give your name (not 'checks' or a judge's name)")
        if score is not None and not 1 <= float(score) <= 5:
            raise UIError(f"score: between 1 and 5, got {score}")
        rewrite = (rewrite or "").strip() or None
        if score is None and rewrite is None:
            raise UIError("give a score, a rewrite, or both")
        store = RunStore(self.run_dir(run) / "run.sqlite")
        try:
            calls = load_calls(store, "WHERE id = ?", (int(call_id),))
            if not calls:
                raise UIError(f"call {call_id}: no such LLM call in this run")
            if not valid_rewrite(calls[0], rewrite):
                what = "one of the call's options" if calls[0].choices else "JSON matching the call's schema"
                raise UIError(f"rewrite: must be {what}")
            store.db.execute("DELETE FROM ratings WHERE llm_call_id = ? AND rater = ?", (int(call_id), rater))
            add_ratings(store, [Rating(int(call_id), rater, float(score) if score is not None else None, rewrite)])
        finally:
            store.close()
        return f"call {call_id} rated by {rater}" + (f": {score:g}" if score is not None else "") + (
            f", rewritten as {rewrite!r}" if rewrite else "")

    def rate_by_checks(self, run: str, action: str | None = None, round_: int | None = None) -> str:
        from ..correction.ratings import add_ratings, ratings_from_checks
        from ..store import RunStore

        store = RunStore(self.run_dir(run) / "run.sqlite")
        try:
            ratings = ratings_from_checks(store, action or None, round_)
            n = add_ratings(store, ratings)
        finally:
            store.close()
        return f"checks rated {len(ratings)} calls ({n} new ratings)"

    def export_dataset(self, run: str, kind: str, rater: str | None = None, min_score: float = 4.0) -> tuple[Path, int]:
        from ..correction import write_dataset

        run_dir = self.run_dir(run)
        out = run_dir / "datasets" / f"{kind}{'-' + rater if rater else ''}.jsonl"
        n = write_dataset(run_dir, kind, out, min_score, rater or None)
        return out, n

    # -- models --
    def adapters(self) -> pd.DataFrame:
        """Trained adapters under the runs folder, with their manifests and lineage."""
        from ..training.manifest import read_manifest

        rows = []
        for f in sorted(self.runs_dir.glob("**/gensim_adapter.json")):
            try:
                m = read_manifest(f.parent, "adapter")
            except ConfigError:
                continue
            rows.append({"adapter": str(f.parent.relative_to(self.runs_dir)), "method": m.method, "samples": m.samples,
                         "epochs": m.epochs, "last_loss": round(m.losses[-1], 4) if m.losses else None,
                         "train_s": round(m.train_s, 1), "parent": m.parent or "", "created": m.created})
        return pd.DataFrame(rows, columns=["adapter", "method", "samples", "epochs", "last_loss", "train_s", "parent",
                                           "created"])

    def train(self, data: str, name: str, epochs: float = 1.0, lr: float | None = None,
              max_samples: int | None = None, method: str = "sft", objective: str = "tokens") -> Job:
        """Start SFT or PPO on a dataset file under the runs folder in the background (the adapter goes
        to ``adapters/<name>``); the job reports steps and losses and can be cancelled. sft's
        ``objective``: tokens or choices (``training.choice``)."""
        from ..training import train

        if self.training is not None and self.training.status().running:
            raise UIError("a training is already running (cancel it or wait)")
        if method not in ("sft", "ppo"):
            raise UIError(f"method: sft or ppo, got {method!r}")
        if objective not in ("tokens", "choices") or (method == "ppo" and objective != "tokens"):
            raise UIError(f"loss: tokens or choices (choices: sft only), got {objective!r} for {method}")
        path = self.guard.resolve(data, "dataset")
        if not path.is_file():
            raise UIError(f"dataset {data}: no such file")
        if not (name or "").strip():
            raise UIError("adapter name: give one")
        out = self.guard.resolve(f"adapters/{name.strip()}", "adapter name")
        if out.exists() and any(out.iterdir()):
            raise UIError(f"adapter name: adapters/{name.strip()} already exists")

        def work(job: Job) -> dict[str, Any]:
            m = train(method, path, out, epochs=float(epochs), learning_rate=lr, progress=False,
                      max_samples=int(max_samples) if max_samples else None, watch=job,
                      **({"objective": objective} if method == "sft" else {}))
            job.emit(f"adapter {out.relative_to(self.runs_dir)}: {m.samples} rows in {m.train_s:.1f}s")
            return {"adapter": str(out.relative_to(self.runs_dir)), "samples": m.samples, "losses": m.losses,
                    "train_s": m.train_s, "method": method}

        self.training = Job("training", work)
        return self.training

    def correct(self, scenario: str, base_run: str | None = None, name: str | None = None, iterations: int = 1,
                agents: int | None = 320, rounds: int = 3, method: str = "sft", max_samples: int = DEFAULT_ROWS,
                overrides: list[str] | None = None) -> Job:
        """Start ``gensim correct`` in the background (its lines, per-iteration table and exam appear as
        it goes); the loop's folder goes under the runs folder."""
        from ..correction.loop import CorrectOptions
        from ..correction.loop import correct as run_loop

        if self.correction is not None and self.correction.status().running:
            raise UIError("a correction loop is already running")
        out = self.guard.resolve(name.strip() if name and name.strip() else
                                 f"correct-{Path(scenario).name}-{time.strftime('%Y%m%d-%H%M%S')}", "loop name")
        if out.exists():
            raise UIError(f"loop name: {out.relative_to(self.runs_dir)} already exists")
        opts = CorrectOptions(self._scenario(scenario), iterations=int(iterations), method=method,
                              agents=int(agents) if agents else None, rounds=int(rounds),
                              max_samples=int(max_samples), out=str(out), progress=False,
                              base=str(self.run_dir(base_run)) if base_run else None, overrides=list(overrides or []))
        self.correction = Job("correction", lambda job: run_loop(opts, emit=job.emit))
        return self.correction

    def resume_correction(self, name: str) -> Job:
        """Go on with a stopped correction loop under the runs folder (``gensim correct --resume``), with
        the options it was started with; what it finished is kept."""
        from ..correction.loop import correct as run_loop
        from ..correction.loop import resume_options

        if self.correction is not None and self.correction.status().running:
            raise UIError("a correction loop is already running")
        if not name or not name.strip():
            raise UIError("loop folder: name the stopped loop to go on with")
        out = self.guard.resolve(name.strip(), "loop folder")
        try:
            opts = resume_options(out, progress=False)
        except ConfigError as e:
            raise UIError(str(e.problems[0]).replace(str(self.runs_dir) + "/", "")) from None
        self.correction = Job("correction", lambda job: run_loop(opts, emit=job.emit, resume=True))
        return self.correction

    def correction_loops(self) -> list[str]:
        """Folders under the runs folder that hold a correction loop's report."""
        return sorted(str(p.parent.relative_to(self.runs_dir)) for p in self.runs_dir.glob("**/correction.json"))

    def correction_report(self, loop: str) -> dict[str, Any]:
        path = self.guard.resolve(loop, "loop folder") / "correction.json"
        if not path.is_file():
            raise UIError(f"loop folder {loop}: no correction.json")
        return json.loads(path.read_text(encoding="utf-8"))

    def experiments(self) -> list[str]:
        """Folders under the runs folder holding an experiment's results."""
        return sorted(str(p.parent.relative_to(self.runs_dir)) for p in self.runs_dir.glob("**/experiment.json")
                      if (p.parent / "summary.csv").is_file())

    def experiment_summary(self, name: str, metric: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """An experiment's last-round table by cell (mean, interval, n, difference from the baseline)
        for the metrics matching ``metric`` (a glob), and its means by round and cell for a plot."""
        import fnmatch

        folder = self.guard.resolve(name, "experiment folder")
        path = folder / "summary.csv"
        if not path.is_file():
            raise UIError(f"experiment {name}: no summary.csv (not run yet?)")
        summary = pd.read_csv(path)
        pattern = (metric or "").strip() or "*"
        summary = summary[[fnmatch.fnmatch(m, pattern) for m in summary["metric"]]]
        if summary.empty:
            raise UIError(f"metric: nothing in {name} matches {pattern!r}")
        last = summary[summary["round"] == summary.groupby("metric")["round"].transform("max")]
        series = summary.assign(series=summary["cell"] + " " + summary["metric"])[["round", "mean", "series"]]
        return last.reset_index(drop=True).round(4), series.rename(columns={"mean": "value"})

    def judge(self, run: str, action: str | None = None, round_: int | None = None, sample: int = 20,
              seed: int = 0, scenario: str | None = None) -> str:
        """Rate a seeded sample of the selected calls with the run's model as judge (its progress bar is
        the page's); says how the judge agrees with the checks, and when it cannot judge. The rubric
        comes from ``scenario`` (the page's pick) where the run's scenario is not a bundled one."""
        from ..correction import rate_run
        from ..correction.ratings import judge_warning

        got = rate_run(self.run_dir(run), by="judge", sample=int(sample), action=action or None, round_=round_,
                       seed=int(seed), progress=True, scenario=self._scenario(scenario) if scenario else None)
        line = (f"judge rated {got['rated_calls']} calls ({got['ratings_added']} new ratings, mean score "
                f"{got['mean_score']}, {got['rewrites']} rewrites; no score for {got['judge_gave_no_score']})")
        warn = judge_warning(got["judge_vs_checks"])
        return line + (f"\n{warn}" if warn else "")

    def deploy(self, adapter: str, share: float = 1.0, types: list[str] | None = None) -> dict[str, Any]:
        path = self.guard.resolve(adapter, "adapter")
        return self.controller.deploy(path, share=float(share), types=types or None)


def correction_tables(report: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A correction report as two tables: one row per iteration (held-out and control failure shares
    beside the base's, the exam's cut, adoption and why not), and the exam's balanced accuracy per
    decision with its interval."""
    its, exam = [], []
    base_h, base_c = report.get("base_holdout_fail"), report.get("base_control_fail")
    for k, it in enumerate(report.get("iterations", []), 1):
        e = it.get("exam") or {}
        its.append({"iteration": k, "held-out fail (base)": base_h, "held-out fail": it.get("holdout_fail"),
                    "control fail (base)": base_c, "control fail": it.get("control_fail"),
                    "exam fail base": e.get("base_fail"), "exam fail adapter": e.get("adapter_fail"),
                    "exam cut": e.get("cut"), "cut 95% CI": _interval(e.get("cut_ci")),
                    "worst first-listed share": it.get("worst_first_share"),
                    "max untargeted drift": it.get("max_untrained_drift"), "adopted": it.get("adopted"),
                    "train s": it.get("train_s"), "reasons": "; ".join(it.get("reasons") or [])})
        for decision, (base, adapter, lo, hi) in (e.get("balanced_accuracy") or {}).items():
            exam.append({"iteration": k, "decision": decision, "base": base, "adapter": adapter,
                         "adapter 95% CI": _interval([lo, hi])})
    return pd.DataFrame(its), pd.DataFrame(exam, columns=["iteration", "decision", "base", "adapter", "adapter 95% CI"])


def _interval(pair: Any) -> str:
    if not pair or pair[0] is None:
        return ""
    return f"[{pair[0]:.2f}, {pair[1]:.2f}]"


def _flatten(prefix: str, value: Any, rows: list[tuple[str, str]]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(f"{prefix}{k}.", v, rows)
        return
    rows.append((prefix.rstrip("."), json.dumps(value) if isinstance(value, (list, dict)) else
                 ("" if value is None else str(value).lower() if isinstance(value, bool) else str(value))))


def call_filter(round_: Any, action: str | None, agent_type: str | None, model: str | None, failed: str | None,
                rater: str | None) -> CallFilter:
    """The calls page's filter widgets as a :class:`CallFilter` (blank and "any" mean no filter)."""
    def norm(v: Any) -> Any:
        return None if v in (None, "", "any") else v

    r = norm(round_)
    return CallFilter(round=int(r) if r is not None else None, action=norm(action), agent_type=norm(agent_type),
                      model=norm(model), failed_check=norm(failed), rater=norm(rater))
