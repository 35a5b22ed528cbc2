"""The page: one Gradio Blocks app whose handlers call :mod:`simulation.ui.actions` (no simulation logic here)."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # else a version-check thread calls out

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from ..config import ConfigError  # noqa: E402
from ..control import JobStatus, LiveStatus  # noqa: E402
from ..training import DEFAULT_ROWS  # noqa: E402
from .actions import UIContext, call_filter, correction_tables  # noqa: E402
from .forms import SECTIONS, SettingField, form_value  # noqa: E402
from .security import UIError  # noqa: E402

PAGE = 25  # rows per page of the long tables
TRAIN_PROGRESS = gr.Progress(track_tqdm=True)  # a long step's tqdm bar (the judge's), shown on the page
MAP_POINTS = 3000  # agents drawn on the map at most (a seeded sample beyond)
EMPTY_METRICS = pd.DataFrame({"round": pd.Series(dtype=int), "value": pd.Series(dtype=float),
                              "series": pd.Series(dtype=str)})
EMPTY_LOSS = pd.DataFrame({"step": pd.Series(dtype=int), "loss": pd.Series(dtype=float)})
EMPTY_BARS = pd.DataFrame({"bar": pd.Series(dtype=str), "balanced accuracy": pd.Series(dtype=float),
                           "model": pd.Series(dtype=str)})
EMPTY_MAP = pd.DataFrame({"x": pd.Series(dtype=float), "y": pd.Series(dtype=float), "type": pd.Series(dtype=str),
                          "agent_id": pd.Series(dtype=str), "last_action": pd.Series(dtype=str)})


def _message(e: Exception) -> str:
    if isinstance(e, ConfigError):
        return "problems:\n" + "\n".join(f"- {p}" for p in e.problems)
    return f"error: {e}"


def _safe(fn: Any) -> Any:
    """Handlers show a refused request as its one-line reason (gr.Error), never a traceback."""
    @functools.wraps(fn)  # Gradio reads the signature (gr.Progress, gr.SelectData) through it
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (UIError, ConfigError, KeyError, ValueError, FileNotFoundError, RuntimeError) as e:
            raise gr.Error(_message(e).removeprefix("error: ").strip("'\""), print_exception=False) from None

    return wrapped


def phase_line(st: LiveStatus, now: float) -> str:
    """The Monitor's line for the phase in progress: which, its steps done of those scheduled, and time."""
    took = now - st.round_started if st.round_started else 0.0
    done, scheduled = st.steps
    steps = f"{done} of {scheduled} steps ({done / scheduled:.0%}), " if scheduled else ""
    return f"in progress: phase {st.phase_no} ({st.phase}) of the next round: {steps}{took:.0f}s into the round"


def build_app(ctx: UIContext) -> gr.Blocks:
    """The whole page for ``ctx``."""
    scenarios = ctx.scenarios()
    with gr.Blocks(title="GenSim", analytics_enabled=False) as demo:
        gr.Markdown("# GenSim")
        with gr.Row():
            run_pick = gr.Dropdown(label="Run folder (what the tabs below show)", choices=_run_names(ctx), value=None,
                                   allow_custom_value=True, elem_id="run-pick", scale=4)
            refresh_runs = gr.Button("Refresh runs", scale=1, elem_id="refresh-runs")

        # -- Configure --
        with gr.Tab("Configure", id="configure"):
            with gr.Row():
                scenario = gr.Dropdown(label="Scenario", choices=scenarios, value=scenarios[0] if scenarios else None,
                                       elem_id="scenario")
                run_name = gr.Textbox(label="Run name (a folder under the runs folder; blank: scenario-time)",
                                      elem_id="run-name")
            @gr.render(inputs=scenario)
            def settings_form(name: str | None) -> None:
                if not name:
                    return
                try:
                    fields = ctx.setting_fields(name)
                except (UIError, ConfigError) as e:
                    gr.Markdown(_message(e))
                    return
                by: dict[str, list[SettingField]] = {}
                for f in fields:
                    by.setdefault(f.section, []).append(f)
                for section in [s for s, _ in SECTIONS] + ["Other"]:
                    group = by.get(section, [])
                    if not group:
                        continue
                    with gr.Accordion(section, open=section == SECTIONS[0][0]):
                        for k in range(0, len(group), 4):
                            with gr.Row():
                                for f in group[k:k + 4]:
                                    w = _widget(f)
                                    # input: the user's own edits only (change also fires as widgets mount)
                                    w.input(functools.partial(_write_setting, f), [w, settings], settings,
                                            show_progress="hidden")

            settings = gr.Dataframe(label="All settings (the form above writes here; or edit a value; keys are those "
                                          "of `gensim run key=value`)",
                                    headers=["setting", "value"], datatype=["str", "str"], interactive=True,
                                    column_count=(2, "fixed"), max_height=420, elem_id="settings")
            with gr.Row():
                check_btn = gr.Button("Check", elem_id="check")
                dry_btn = gr.Button("Check --dry-run", elem_id="dry-run")
                start_btn = gr.Button("Start run", variant="primary", elem_id="start")
            check_out = gr.Textbox(label="Check", lines=6, interactive=False, elem_id="check-out")
            with gr.Accordion("Import profiles (GenSim format)", open=False):
                with gr.Row():
                    upload_type = gr.Textbox(label="Agent type", elem_id="upload-type")
                    upload = gr.File(label="Profile file", file_types=[".json", ".jsonl", ".csv", ".yaml"],
                                     type="filepath", elem_id="upload")
                import_out = gr.Textbox(label="Import report", interactive=False, elem_id="import-out")

        # -- Monitor --
        with gr.Tab("Monitor", id="monitor"):
            status = gr.Markdown("no live run", elem_id="status")
            with gr.Row():
                pause_btn = gr.Button("Pause", elem_id="pause")
                resume_btn = gr.Button("Resume", elem_id="resume")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
            metric_pick = gr.Textbox(label="Metrics (glob patterns, comma-separated)",
                                     value="check.*.fail_rate, decision.*.first_share, employment_rate",
                                     elem_id="metric-pick")
            plot = gr.LinePlot(EMPTY_METRICS, x="round", y="value", color="series", label="Per-round metrics",
                               elem_id="metrics-plot", height=320)
            metrics_table = gr.Dataframe(label="Metrics by round", interactive=False, elem_id="metrics-table")
            timer = gr.Timer(2.0)

        # -- Agents --
        with gr.Tab("Agents", id="agents") as agents_tab:
            with gr.Row():
                search = gr.Textbox(label="Search id or name", elem_id="agent-search")
                type_pick = gr.Dropdown(label="Type", choices=["any"], value="any", elem_id="agent-type")
                page_no = gr.Number(label="Page", value=1, precision=0, minimum=1, elem_id="agent-page")
            agents_info = gr.Markdown()
            agents_table = gr.Dataframe(interactive=False, elem_id="agents-table", max_height=360)
            gr.Markdown("Map: agents placed by their profiles (a seeded sample of at most "
                        f"{MAP_POINTS:,}); drag across it to list the agents in that range.")
            agent_map = gr.ScatterPlot(EMPTY_MAP, x="x", y="y", color="type", tooltip=["agent_id", "last_action"],
                                       elem_id="agent-map", height=320)
            in_range = gr.Dataframe(label="Agents in the selected range", interactive=False, elem_id="map-range",
                                    headers=["agent_id", "type", "last_action", "x", "y"])
            with gr.Row():
                agent_id = gr.Textbox(label="Agent id", elem_id="agent-id")
                open_btn = gr.Button("Open agent", elem_id="open-agent")
            with gr.Row():
                profile = gr.JSON(label="Profile", elem_id="agent-profile")
                memory = gr.JSON(label="State and memory (at the last checkpoint)", elem_id="agent-memory")
            agent_actions = gr.Dataframe(label="Actions", interactive=False, elem_id="agent-actions", max_height=260)
            agent_checks = gr.Dataframe(label="Check verdicts", interactive=False, max_height=200)
            agent_calls = gr.Dataframe(label="LLM calls", interactive=False, max_height=260)
            with gr.Row():
                question = gr.Textbox(label="Interview question", elem_id="question", scale=4)
                ask_btn = gr.Button("Ask", elem_id="ask", scale=1)
            answer = gr.Textbox(label="Answer (in character; memory untouched; recorded)", interactive=False,
                                elem_id="answer")
            with gr.Row():
                attr_path = gr.Textbox(label="Attribute (dotted path)", elem_id="attr-path")
                attr_value = gr.Textbox(label="Value (JSON or text)", elem_id="attr-value")
                attr_btn = gr.Button("Set from next round", elem_id="set-attr")
            attr_out = gr.Markdown(elem_id="attr-out")

        # -- Events and interventions --
        with gr.Tab("Events", id="events") as events_tab:
            with gr.Row():
                news = gr.Textbox(label="Global intervention (reaches every prompt from the next round)",
                                  elem_id="news", scale=4)
                news_btn = gr.Button("Set", elem_id="set-news", scale=1)
                clear_btn = gr.Button("Clear", elem_id="clear-news", scale=1)
            news_out = gr.Markdown(elem_id="news-out")
            events = gr.Dataframe(label="Interventions, deployments, interviews, failed steps, stops", interactive=False,
                                  elem_id="events")

        # -- Feedback --
        with gr.Tab("Feedback", id="feedback"):
            with gr.Row():
                f_round = gr.Textbox(label="Round", elem_id="f-round")
                f_action = gr.Textbox(label="Action", elem_id="f-action")
                f_type = gr.Textbox(label="Agent type", elem_id="f-type")
                f_model = gr.Textbox(label="Model", elem_id="f-model")
                f_failed = gr.Textbox(label="Failed check (* any)", elem_id="f-failed")
                f_rater = gr.Textbox(label="Rated by (* anyone)", elem_id="f-rater")
            with gr.Row():
                f_page = gr.Number(label="Page", value=1, precision=0, minimum=1, elem_id="f-page")
                show_btn = gr.Button("Show calls", elem_id="show-calls")
                s_n = gr.Number(label="Sample size", value=10, precision=0, minimum=1, elem_id="sample-size")
                s_seed = gr.Number(label="Seed", value=0, precision=0)
                sample_btn = gr.Button("Random sample", elem_id="sample-calls")
            calls_info = gr.Markdown()
            calls_table = gr.Dataframe(interactive=False, elem_id="calls-table", max_height=360, wrap=True)
            with gr.Row():
                call_id = gr.Number(label="Call id", precision=0, elem_id="call-id")
                rater = gr.Textbox(label="Your name (rater)", value="human", elem_id="rater")
                score = gr.Radio(["1", "2", "3", "4", "5"], label="Score", elem_id="score")
            call_prompt = gr.Textbox(label="Prompt", lines=6, interactive=False, elem_id="call-prompt")
            call_answer = gr.Textbox(label="Answer", interactive=False, elem_id="call-answer")
            rewrite_choice = gr.Dropdown(label="Rewrite: pick one of the call's options", choices=[],
                                         allow_custom_value=False, elem_id="rewrite-choice")
            rewrite_text = gr.Textbox(label="Rewrite (free text or JSON for its schema)", elem_id="rewrite-text")
            with gr.Row():
                rate_btn = gr.Button("Save rating", variant="primary", elem_id="save-rating")
                checks_btn = gr.Button("Rate with the checks", elem_id="rate-checks")
                judge_btn = gr.Button("Rate a sample with the judge (sample size, seed, action and round above)",
                                      elem_id="rate-judge")
            rate_out = gr.Markdown(elem_id="rate-out")
            with gr.Row():
                ds_kind = gr.Dropdown(["sft", "preference", "reward"], value="sft", label="Dataset kind",
                                      elem_id="ds-kind")
                ds_rater = gr.Textbox(label="Only this rater (blank: all)", elem_id="ds-rater")
                ds_btn = gr.Button("Export dataset", elem_id="export-dataset")
            ds_out = gr.Markdown(elem_id="ds-out")
            ds_file = gr.File(label="Dataset file", interactive=False, elem_id="ds-file")

        # -- Model library --
        with gr.Tab("Models", id="models") as models_tab:
            with gr.Row():
                tr_data = gr.Textbox(label="Dataset (path under the runs folder)", elem_id="tr-data")
                tr_name = gr.Textbox(label="Adapter name", value="adapter-1", elem_id="tr-name")
                tr_method = gr.Dropdown(["sft", "ppo"], value="sft", label="Method (ppo: a reward dataset)",
                                        elem_id="tr-method")
                tr_objective = gr.Dropdown(["tokens", "choices"], value="tokens", elem_id="tr-objective",
                                           label="sft loss (choices: on the options of choice rows)")
                tr_epochs = gr.Number(label="Epochs", value=1, elem_id="tr-epochs")
                # Gradio shows an empty number as 0, so 0 is the documented "default" value
                tr_lr = gr.Number(label="Learning rate (0: the method's default)", value=0, minimum=0,
                                  elem_id="tr-lr")
                tr_max = gr.Number(label="Max rows (0: all)", value=0, precision=0, minimum=0, elem_id="tr-max")
            with gr.Row():
                train_btn = gr.Button("Train adapter", variant="primary", elem_id="train")
                cancel_btn = gr.Button("Cancel training", variant="stop", elem_id="cancel-train")
            train_out = gr.Markdown(elem_id="train-out")
            loss_plot = gr.LinePlot(EMPTY_LOSS, x="step", y="loss", label="Training loss", elem_id="loss-plot",
                                    height=240)
            adapters = gr.Dataframe(label="Adapters", interactive=False, elem_id="adapters")
            with gr.Row():
                dep_adapter = gr.Textbox(label="Adapter (path under the runs folder)", elem_id="dep-adapter")
                dep_share = gr.Slider(0, 1, value=1.0, step=0.05, label="Share of agents", elem_id="dep-share")
                dep_types = gr.Textbox(label="Agent types (comma-separated; blank: all)", elem_id="dep-types")
                dep_btn = gr.Button("Deploy into the live run", elem_id="deploy")
            dep_out = gr.Markdown(elem_id="dep-out")
            gr.Markdown("### Correction loop (`gensim correct`)\nRate by the checks, train on the treated agents, "
                        "fork the base run with the adapter, sit the paired held-out exam; the scenario is the one "
                        "picked on the Configure tab.")
            with gr.Row():
                c_base = gr.Textbox(label="Base run (a run folder; blank: run a new base)", elem_id="c-base")
                c_name = gr.Textbox(label="Loop folder (blank: correct-scenario-time)", elem_id="c-name")
                c_iter = gr.Number(label="Iterations", value=1, precision=0, minimum=1, elem_id="c-iter")
                c_agents = gr.Number(label="Agents", value=320, precision=0, minimum=1, elem_id="c-agents")
                c_rounds = gr.Number(label="Rounds", value=3, precision=0, minimum=1, elem_id="c-rounds")
                c_method = gr.Dropdown(["sft", "ppo"], value="sft", label="Method", elem_id="c-method")
                c_max = gr.Number(label="Max rows", value=DEFAULT_ROWS, precision=0, minimum=1, elem_id="c-max")
            c_over = gr.Textbox(label="Settings for the base run (key=value, comma-separated)", elem_id="c-over")
            with gr.Row():
                c_btn = gr.Button("Run the correction loop", variant="primary", elem_id="correct")
                c_resume = gr.Button("Go on with the stopped loop named above", elem_id="c-resume")
            c_log = gr.Textbox(label="Correction loop", lines=8, interactive=False, elem_id="c-log")
            c_iters = gr.Dataframe(label="Iterations: held-out and control failure shares, the exam, adoption",
                                   interactive=False, elem_id="c-iters", wrap=True)
            c_exam = gr.Dataframe(label="Held-out exam: balanced accuracy per decision", interactive=False,
                                  elem_id="c-exam")
            c_plot = gr.BarPlot(EMPTY_BARS, x="bar", y="balanced accuracy", color="model",
                                label="Exam balanced accuracy (base vs adapter)", elem_id="c-plot", height=260)
            jobs_timer = gr.Timer(2.0)

        # -- Runs and compare --
        with gr.Tab("Runs", id="runs") as runs_tab:
            runs_table = gr.Dataframe(ctx.runs(), label="Run folders", interactive=False, elem_id="runs-table")
            gr.Markdown("Click a run to select it. Fork and resume use the scenario picked on the Configure tab "
                        "for a scenario that is not bundled: a run folder's recorded code is never imported on its own.")
            with gr.Row():
                fork_round = gr.Number(label="Fork: re-run from round", value=2, precision=0, minimum=1,
                                       elem_id="fork-round")
                fork_adapter = gr.Textbox(label="Fork with adapter (path under the runs folder; blank: as recorded)",
                                          elem_id="fork-adapter")
                fork_btn = gr.Button("Fork the selected run", elem_id="fork")
                resume_run_btn = gr.Button("Resume the selected run", elem_id="resume-run")
                replay_btn = gr.Button("Replay the selected run", elem_id="replay-run")
            runs_out = gr.Markdown(elem_id="runs-out")
            compare_pick = gr.Dropdown(label="Compare runs", choices=_run_names(ctx), multiselect=True,
                                       elem_id="compare-pick")
            compare_metric = gr.Textbox(label="Metrics (glob)", value="check.*.fail_rate", elem_id="compare-metric")
            compare_btn = gr.Button("Compare", elem_id="compare")
            compare_plot = gr.LinePlot(EMPTY_METRICS, x="round", y="value", color="series", label="Runs compared",
                                       elem_id="compare-plot", height=320)
            gr.Markdown("### Experiments (`gensim experiment`): last round by cell, mean with its 95% t-interval and "
                        "the difference from the baseline cell (Welch)")
            with gr.Row():
                # value=None: Gradio preselects the first choice otherwise, and picking it then fires no change
                exp_pick = gr.Dropdown(label="Experiment folder", choices=ctx.experiments(), value=None,
                                       allow_custom_value=True,
                                       elem_id="exp-pick", scale=3)
                exp_metric = gr.Textbox(label="Metrics (glob)", value="*", elem_id="exp-metric", scale=2)
                exp_btn = gr.Button("Show experiment", elem_id="exp-show", scale=1)
            exp_table = gr.Dataframe(label="Last round by cell", interactive=False, elem_id="exp-table")
            exp_plot = gr.LinePlot(EMPTY_METRICS, x="round", y="value", color="series",
                                   label="Mean by round and cell", elem_id="exp-plot", height=300)
            loop_pick = gr.Dropdown(label="Correction loop folder (held-out vs control)", value=None,
                                    choices=ctx.correction_loops(), allow_custom_value=True, elem_id="loop-pick")
            loop_table = gr.Dataframe(label="Correction loop: held-out and control groups by iteration",
                                      interactive=False, elem_id="loop-table", wrap=True)

        # ----------------------------------------------------------------- handlers
        def runs_changed() -> tuple[Any, Any, Any, Any, Any]:
            names = _run_names(ctx)
            return (gr.update(choices=names), gr.update(choices=names), ctx.runs(),
                    gr.update(choices=ctx.correction_loops()), gr.update(choices=ctx.experiments()))

        refresh_runs.click(runs_changed, None, [run_pick, compare_pick, runs_table, loop_pick, exp_pick],
                           api_name="runs")
        runs_tab.select(runs_changed, None, [run_pick, compare_pick, runs_table, loop_pick, exp_pick])

        @_safe
        def load_settings(name: str) -> pd.DataFrame:
            return ctx.settings(name) if name else pd.DataFrame(columns=["setting", "value"])

        scenario.change(load_settings, scenario, settings, api_name="settings")
        demo.load(load_settings, scenario, settings)

        @_safe
        def do_check(name: str, edited: pd.DataFrame) -> str:
            return ctx.check(name, edited)

        @_safe
        def do_dry(name: str, edited: pd.DataFrame) -> str:
            return ctx.check(name, edited, dry_run=True)

        check_btn.click(do_check, [scenario, settings], check_out, api_name="check")
        dry_btn.click(do_dry, [scenario, settings], check_out, api_name="dry_run")

        @_safe
        def do_start(name: str, edited: pd.DataFrame, run: str) -> tuple[str, Any]:
            report = ctx.check(name, edited)
            if report.startswith("problems:"):
                return report + "\n(not started: fix the settings above)", gr.update()
            out = ctx.start(name, edited, run)
            rel = str(out.relative_to(ctx.runs_dir))
            return f"{report}\nstarted: {rel}", gr.update(choices=_run_names(ctx) + [rel], value=rel)

        start_btn.click(do_start, [scenario, settings, run_name], [check_out, run_pick], api_name="start")

        @_safe
        def do_import(name: str, agent_type: str, path: str | None, edited: pd.DataFrame) -> tuple[str, pd.DataFrame]:
            if not path:
                return "", edited
            report, override = ctx.import_profiles(name, agent_type.strip(), path)
            key, _, value = override.partition("=")
            df = edited.copy()
            if key in set(df["setting"]):
                df.loc[df["setting"] == key, "value"] = value
            else:
                df.loc[len(df)] = [key, value]
            return report + f"\nsetting {key} = {value}", df

        upload.upload(do_import, [scenario, upload_type, upload, settings], [import_out, settings], api_name="import")

        def live_view(run: str | None, patterns: str) -> tuple[str, pd.DataFrame, pd.DataFrame]:
            st = ctx.controller.status()
            lines = [f"**{st.state}**"]
            if st.run_dir is not None:
                rel = st.run_dir.relative_to(ctx.runs_dir) if ctx.guard.inside(st.run_dir) else st.run_dir
                lines.append(f"run `{rel}`: round {st.round} of {st.rounds} done")
                if st.phase and st.active:
                    lines.append(phase_line(st, time.time()))
            if st.error:
                lines.append(f"error: {st.error}")
            if st.state == "starting":
                lines.append(f"setting up for {st.since_start_s or 0:.0f}s (the embedded model servers take about "
                             "2 minutes to start)")
                lines += [f"`{line.strip()}`" for line in st.lines[-6:]]
            show = run or (str(st.run_dir.relative_to(ctx.runs_dir)) if st.run_dir and ctx.guard.inside(st.run_dir)
                           else None)
            if not show:
                return "\n\n".join(lines), EMPTY_METRICS, pd.DataFrame()
            try:
                long = ctx.metrics_long([show], _patterns(patterns))
                with ctx.query(show) as rq:
                    wide = rq.metrics().reset_index()
            except (UIError, OSError, sqlite3.Error, pd.errors.DatabaseError) as e:  # a folder still being made
                return "\n\n".join(lines + [f"({e})"]), EMPTY_METRICS, pd.DataFrame()
            if len(wide):
                last = wide.iloc[-1]
                warn = sorted({c.split(".")[1] for c in wide.columns
                               if c.startswith("decision.") and ".share." in c and last[c] > 0.9})
                if warn:
                    lines.append("skewed decisions (one option over 90% in the last round): " + ", ".join(warn))
                for col in ("failed_steps", "invalid_actions"):
                    if col in wide:
                        lines.append(f"{col.replace('_', ' ')}: {int(last[col])}")
                invalid = sorted(f"{c.split('.')[1]} {last[c]:.0%}" for c in wide.columns
                                 if c.startswith("decision.") and c.endswith(".invalid_share") and last[c] > 0)
                if invalid:
                    lines.append("invalid answers in the last round: " + ", ".join(invalid))
            return "\n\n".join(lines), _line_plot(long), wide.round(4)

        timer.tick(live_view, [run_pick, metric_pick], [status, plot, metrics_table], api_name="live",
                   show_progress="hidden")
        run_pick.change(live_view, [run_pick, metric_pick], [status, plot, metrics_table])
        metric_pick.submit(live_view, [run_pick, metric_pick], [status, plot, metrics_table])

        @_safe
        def do_pause() -> str:
            ctx.controller.pause()
            return "**pausing** (after the round in progress)"

        @_safe
        def do_resume() -> str:
            ctx.controller.resume()
            return "**running**"

        @_safe
        def do_stop() -> str:
            ctx.controller.stop()
            return "**stopping** (after the round in progress; the folder can be resumed)"

        pause_btn.click(do_pause, None, status, api_name="pause")
        resume_btn.click(do_resume, None, status, api_name="resume")
        stop_btn.click(do_stop, None, status, api_name="stop")

        @_safe
        def agents_page(run: str, text: str, typ: str, page: float) -> tuple[str, pd.DataFrame, Any]:
            if not run:
                return "pick a run folder above", pd.DataFrame(), gr.update()
            with ctx.query(run) as rq:
                p = rq.agents(text or None, None if typ in (None, "", "any") else typ, (int(page or 1) - 1) * PAGE, PAGE)
                types = ["any", *rq.agent_types()]
            pages = max(1, -(-p.total // PAGE))
            return f"{p.total:,} agents · page {int(page or 1):,} of {pages:,}", p.rows, gr.update(choices=types)

        agent_inputs = [run_pick, search, type_pick, page_no]
        for ev in (search.submit, type_pick.input, page_no.submit, run_pick.change, agents_tab.select):
            ev(agents_page, agent_inputs, [agents_info, agents_table, type_pick])
        demo.load(agents_page, agent_inputs, [agents_info, agents_table, type_pick])

        @_safe
        def open_agent(run: str, aid: str) -> tuple[Any, ...]:
            with ctx.query(run) as rq:
                a = rq.agent(aid.strip())
                mem = rq.agent_memory(aid.strip())
            calls = a["calls"].copy()
            for col in ("prompt", "completion"):
                calls[col] = calls[col].astype(str).str.slice(0, 300)
            return a["profile"], mem, a["actions"], a["checks"], calls

        agent_outs = [profile, memory, agent_actions, agent_checks, agent_calls]
        open_btn.click(open_agent, [run_pick, agent_id], agent_outs, api_name="agent")
        agent_id.submit(open_agent, [run_pick, agent_id], agent_outs)

        def pick_row(evt: gr.SelectData) -> str:
            row = evt.row_value or []
            return str(row[0]) if row else gr.update()

        agents_table.select(pick_row, None, agent_id).then(open_agent, [run_pick, agent_id], agent_outs)
        in_range.select(pick_row, None, agent_id).then(open_agent, [run_pick, agent_id], agent_outs)

        @_safe
        def draw_map(run: str) -> pd.DataFrame:
            if not run:
                return EMPTY_MAP
            with ctx.query(run) as rq:
                return rq.agent_map(MAP_POINTS)

        run_pick.change(draw_map, run_pick, agent_map)
        agents_tab.select(draw_map, run_pick, agent_map)
        demo.load(draw_map, run_pick, agent_map)

        @_safe
        def map_range(run: str, evt: gr.SelectData) -> pd.DataFrame:
            lo, hi = sorted(evt.index) if isinstance(evt.index, (list, tuple)) else (evt.index, evt.index)
            with ctx.query(run) as rq:
                df = rq.agent_map(MAP_POINTS)  # the same seeded sample the map shows
            hit = df[(df["x"] >= lo) & (df["x"] <= hi)]
            return hit[["agent_id", "type", "last_action", "x", "y"]].head(200)

        agent_map.select(map_range, run_pick, in_range)

        @_safe
        def ask(run: str, aid: str, q: str) -> str:
            if not aid.strip() or not q.strip():
                raise UIError("give an agent id and a question")
            st = ctx.controller.status()
            if st.active and run and st.run_dir == ctx.run_dir(run):
                return ctx.controller.interview(aid.strip(), q.strip())
            import asyncio

            from ..control.interview import interview_agent

            out = asyncio.run(interview_agent(ctx.run_dir(run), aid.strip(), q.strip()))
            return out["answer"]

        ask_btn.click(ask, [run_pick, agent_id, question], answer, api_name="interview")

        @_safe
        def set_attr(aid: str, path: str, raw: str) -> str:
            try:
                value: Any = json.loads(raw)
            except ValueError:
                value = raw
            r = ctx.controller.set_attribute(aid.strip(), path.strip(), value)
            return f"{aid}.{path} = {value!r} from round {r}"

        attr_btn.click(set_attr, [agent_id, attr_path, attr_value], attr_out, api_name="set_attribute")

        @_safe
        def intervene(text: str) -> str:
            if not text.strip():
                raise UIError("write the intervention's text (Clear removes it)")
            return f"intervention from round {ctx.controller.intervene(text.strip())}: {text.strip()}"

        @_safe
        def clear_news() -> str:
            return f"intervention cleared from round {ctx.controller.intervene(None)}"

        news_btn.click(intervene, news, news_out, api_name="intervene")
        clear_btn.click(clear_news, None, news_out, api_name="clear_intervention")

        @_safe
        def show_events(run: str) -> pd.DataFrame:
            if not run:
                return pd.DataFrame()
            with ctx.query(run) as rq:
                ev = rq.events()
            ev["data"] = [json.dumps(d, ensure_ascii=False)[:300] for d in ev["data"]]
            return ev

        run_pick.change(show_events, run_pick, events)
        news_out.change(show_events, run_pick, events)
        events_tab.select(show_events, run_pick, events)
        demo.load(show_events, run_pick, events)

        filters = [f_round, f_action, f_type, f_model, f_failed, f_rater]

        @_safe
        def calls_page(run: str, r: str, a: str, t: str, m: str, fc: str, ra: str, page: float) -> tuple[str, pd.DataFrame]:
            if not run:
                return "pick a run folder above", pd.DataFrame()
            with ctx.query(run) as rq:
                p = rq.calls(call_filter(r, a, t, m, fc, ra), (int(page or 1) - 1) * PAGE, PAGE)
            return f"{p.total:,} calls · page {int(page or 1):,} of {max(1, -(-p.total // PAGE)):,}", _short(p.rows)

        show_btn.click(calls_page, [run_pick, *filters, f_page], [calls_info, calls_table], api_name="calls")

        @_safe
        def calls_sample(run: str, r: str, a: str, t: str, m: str, fc: str, ra: str, n: float, seed: float) -> tuple[str, pd.DataFrame]:
            with ctx.query(run) as rq:
                df = rq.sample_calls(int(n or 10), int(seed or 0), call_filter(r, a, t, m, fc, ra))
            return f"a seeded sample of {len(df)} calls (seed {int(seed or 0)})", _short(df)

        sample_btn.click(calls_sample, [run_pick, *filters, s_n, s_seed], [calls_info, calls_table], api_name="sample")

        @_safe
        def show_call(run: str, cid: float) -> tuple[str, str, Any]:
            if not run or cid is None:
                return "", "", gr.update(choices=[], value=None)
            with ctx.query(run) as rq:
                c = rq.call(int(cid))
            try:
                msgs = json.loads(c["prompt"])
                prompt = "\n\n".join(f"[{m.get('role')}] {m.get('content')}" for m in msgs)
            except (ValueError, TypeError, AttributeError):
                prompt = str(c["prompt"])
            return prompt, c["completion"] or "", gr.update(choices=c["choices"] or [], value=None)

        call_id.change(show_call, [run_pick, call_id], [call_prompt, call_answer, rewrite_choice], api_name="call")

        def pick_call(evt: gr.SelectData) -> Any:
            row = evt.row_value or []
            return int(row[0]) if row else gr.update()

        calls_table.select(pick_call, None, call_id)

        @_safe
        def save_rating(run: str, cid: float, who: str, s: str | None, choice: str | None, text: str) -> str:
            if cid is None:
                raise UIError("pick a call (its id) first")
            rewrite = choice or (text or "").strip() or None
            return ctx.rate(run, int(cid), who, float(s) if s else None, rewrite)

        rate_btn.click(save_rating, [run_pick, call_id, rater, score, rewrite_choice, rewrite_text], rate_out,
                       api_name="rate")

        @_safe
        def rate_checks(run: str, a: str, r: str) -> str:
            return ctx.rate_by_checks(run, a or None, int(r) if (r or "").strip() else None)

        checks_btn.click(rate_checks, [run_pick, f_action, f_round], rate_out, api_name="rate_checks")

        @_safe
        def rate_judge(run: str, a: str, r: str, n: float, seed: float, name: str,
                       progress: gr.Progress = TRAIN_PROGRESS) -> str:
            if not run:
                raise UIError("pick a run folder above")
            return ctx.judge(run, a or None, int(r) if (r or "").strip() else None, int(n or 10), int(seed or 0), name)

        judge_btn.click(rate_judge, [run_pick, f_action, f_round, s_n, s_seed, scenario], rate_out,
                        api_name="rate_judge")

        @_safe
        def export_ds(run: str, kind: str, who: str) -> tuple[str, str | None]:
            path, n = ctx.export_dataset(run, kind, (who or "").strip() or None)
            return f"{n} {kind} rows → `{path.relative_to(ctx.runs_dir)}`", str(path)

        ds_btn.click(export_ds, [run_pick, ds_kind, ds_rater], [ds_out, ds_file], api_name="export_dataset")

        @_safe
        def do_train(data: str, name: str, method: str, epochs: float, lr: float | None, max_rows: float | None,
                     objective: str = "tokens") -> str:
            objective = objective if method == "sft" else "tokens"
            if epochs is None or not epochs > 0:
                raise UIError(f"Epochs must be a number above 0, got {epochs}")
            ctx.train(data, name, epochs, lr or None, int(max_rows) if max_rows else None, method, objective)
            return (f"**training** {method}{' (choice loss)' if objective == 'choices' else ''} into "
                    f"adapters/{name.strip()} (progress below)")

        train_btn.click(do_train, [tr_data, tr_name, tr_method, tr_epochs, tr_lr, tr_max, tr_objective], train_out,
                        api_name="train")

        @_safe
        def do_cancel() -> str:
            if ctx.training is None or not ctx.training.status().running:
                raise UIError("no training is running")
            ctx.training.cancel()
            return "**cancelling** (at the next step; no adapter is written)"

        cancel_btn.click(do_cancel, None, train_out, api_name="cancel_training")

        @_safe
        def do_correct(name: str, base: str, loop_name: str, iters: float, agents: float, rounds: float, method: str,
                       max_rows: float, over: str) -> str:
            ctx.correct(name, (base or "").strip() or None, loop_name, int(iters or 1), int(agents) if agents else None,
                        int(rounds or 3), method, int(max_rows or DEFAULT_ROWS),
                        [o.strip() for o in (over or "").split(",") if o.strip()])
            return "correction loop started"

        c_btn.click(do_correct, [scenario, c_base, c_name, c_iter, c_agents, c_rounds, c_method, c_max, c_over], c_log,
                    api_name="correct")

        @_safe
        def do_resume(loop_name: str) -> str:
            ctx.resume_correction(loop_name)
            return "correction loop going on (what it finished is kept)"

        c_resume.click(do_resume, [c_name], c_log, api_name="resume_correction")

        def jobs_view(seen: dict) -> tuple[Any, ...]:
            """The training's and the correction loop's progress; unchanged outputs are not redrawn."""
            seen = dict(seen or {})
            out: list[Any] = [gr.update()] * 7
            t = ctx.training.status() if ctx.training else None
            if t is not None and seen.get("t") != (id(ctx.training), t.state, t.step, len(t.losses)):
                seen["t"] = (id(ctx.training), t.state, t.step, len(t.losses))
                out[0] = _train_line(t)
                out[1] = _loss_plot(t.losses)
                if not t.running:
                    out[2] = ctx.adapters()
            c = ctx.correction.status() if ctx.correction else None
            if c is not None and seen.get("c") != (id(ctx.correction), c.state, len(c.lines)):
                seen["c"] = (id(ctx.correction), c.state, len(c.lines))
                head = {"running": f"running for {c.elapsed_s:.0f}s", "done": f"done in {c.elapsed_s:.0f}s"}.get(
                    c.state, f"{c.state}: {c.error}")
                out[3] = "\n".join([f"[{head}]", *c.lines[-40:]])
                if c.state == "done":
                    its, exam = correction_tables(c.result)
                    out[4], out[5], out[6] = its, exam, _exam_bars(exam)
            return (*out, seen)

        jobs_seen = gr.State({})
        jobs_timer.tick(jobs_view, jobs_seen, [train_out, loss_plot, adapters, c_log, c_iters, c_exam, c_plot,
                                               jobs_seen], api_name="jobs", show_progress="hidden")

        @_safe
        def show_loop(loop: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
            if not loop:
                return pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), EMPTY_BARS
            its, exam = correction_tables(ctx.correction_report(loop))
            return its, its, exam, _exam_bars(exam)

        exp_title = gr.State("")

        @_safe
        def show_experiment(name: str, metric: str) -> tuple[pd.DataFrame, Any, str]:
            if not name:
                return pd.DataFrame(), EMPTY_METRICS, ""
            table, series = ctx.experiment_summary(name, metric)
            return table, *_plot_data(series)

        for trigger, api in ((exp_pick.change, "experiment"), (exp_metric.submit, None), (exp_btn.click, None)):
            trigger(show_experiment, [exp_pick, exp_metric], [exp_table, exp_plot, exp_title], api_name=api).success(
                _redraw, exp_title, exp_plot, show_progress="hidden")

        loop_pick.change(show_loop, loop_pick, [loop_table, c_iters, c_exam, c_plot], api_name="loop")

        @_safe
        def do_deploy(adapter: str, share: float, types: str) -> str:
            got = ctx.deploy(adapter, share, [t.strip() for t in (types or "").split(",") if t.strip()])
            return (f"deployed `{got['name']}` ({got['mode']}) to {got['share']:.0%} of the agents from round "
                    f"{got['round']}")

        dep_btn.click(do_deploy, [dep_adapter, dep_share, dep_types], dep_out, api_name="deploy")
        demo.load(ctx.adapters, None, adapters)
        models_tab.select(ctx.adapters, None, adapters)

        @_safe
        def do_fork(run: str, r: float, name: str, adapter: str) -> tuple[str, Any]:
            over = [f"llm.adapter={ctx.guard.resolve(adapter, 'adapter')}"] if (adapter or "").strip() else []
            out = ctx.fork(run, int(r), name, overrides=over)
            rel = str(out.relative_to(ctx.runs_dir))
            return f"fork `{rel}` of `{run}` from round {int(r)} started", gr.update(choices=_run_names(ctx) + [rel])

        fork_btn.click(do_fork, [run_pick, fork_round, scenario, fork_adapter], [runs_out, compare_pick], api_name="fork")

        @_safe
        def do_replay(run: str) -> str:
            out = ctx.replay(run)
            return f"replay {out.relative_to(ctx.runs_dir)} of {run} started"

        replay_btn.click(do_replay, run_pick, runs_out, api_name="replay")

        @_safe
        def do_resume_run(run: str, name: str) -> str:
            ctx.resume(run, name)
            return f"resuming `{run}`"

        resume_run_btn.click(do_resume_run, [run_pick, scenario], runs_out, api_name="resume_run")

        def pick_run(evt: gr.SelectData) -> Any:
            row = evt.row_value or []
            return str(row[0]) if row else gr.update()

        runs_table.select(pick_run, None, run_pick)

        compare_title = gr.State("")

        @_safe
        def compare(runs: list[str], patterns: str) -> tuple[Any, str]:
            if not runs:
                raise UIError("pick one or more runs to compare")
            return _plot_data(ctx.metrics_long(list(runs), _patterns(patterns)))

        compare_btn.click(compare, [compare_pick, compare_metric], [compare_plot, compare_title],
                          api_name="compare").success(_redraw, compare_title, compare_plot, show_progress="hidden")
    return demo


def _round_title(long: pd.DataFrame) -> str:
    rounds = int(long["round"].max()) if len(long) else 0
    series = long["series"].nunique() if len(long) else 0
    return f"round (1 to {rounds}; {series} series)"


def _line_plot(long: pd.DataFrame) -> Any:
    """A line plot update whose axis title names the rounds and series shown. Gradio 6.31's native plot
    draws new data into its old view without colours; a changed title makes it build a new view."""
    return gr.LinePlot(_plottable(long), x_title=_round_title(long))


# An axis title no data gives: the first step of a redraw (see _plot_data)
_PLAIN_TITLE = "round "


def _plot_data(long: pd.DataFrame) -> tuple[Any, str]:
    """The first of two updates that draw a line plot filled at once (not by a timer): the data under a
    plain axis title, and the title the second update (``_redraw``) sets. Gradio 6.31's native plot builds a
    new view when its title changes, but may build it from the data it had before the same update; a
    title changed alone, after the data, builds it from the new data with a colour for every series."""
    return gr.LinePlot(_plottable(long), x_title=_PLAIN_TITLE), _round_title(long)


def _redraw(title: str) -> Any:
    """The second update of ``_plot_data``: the axis title alone, so the plot is built anew from its data."""
    return gr.LinePlot(x_title=title or "round")


def _widget(f: SettingField) -> Any:
    """A form widget for one setting, of its kind."""
    common = {"label": f.key, "info": f.help or None, "elem_id": f.elem_id, "interactive": True}
    if f.kind == "bool":
        return gr.Checkbox(value=f.value == "true", **common)
    if f.kind == "choice":
        return gr.Dropdown(list(f.choices), value=f.value if f.value in f.choices else None, **common)
    if f.kind in ("int", "float") and f.value != "":  # a blank (optional) number stays a text box
        try:
            value = (int if f.kind == "int" else float)(f.value) if f.value != "" else None
        except ValueError:
            value = None
        return gr.Number(value=value, precision=0 if f.kind == "int" else None, **common)
    return gr.Textbox(value=f.value, placeholder="blank: the default" if f.kind in ("int", "float") else None, **common)


def _write_setting(f: SettingField, raw: Any, table: pd.DataFrame) -> pd.DataFrame:
    """The settings table with the form field's value written into its row."""
    value = form_value(f, raw)
    df = table.copy()
    hit = df["setting"] == f.key
    if hit.any():
        if str(df.loc[hit, "value"].iloc[0]) == value:
            return gr.update()
        df.loc[hit, "value"] = value
    else:
        df.loc[len(df)] = [f.key, value]
    return df


def _train_line(t: JobStatus) -> str:
    if t.state == "done":
        return t.lines[-1] if t.lines else "done"
    if t.state in ("failed", "cancelled"):
        return f"**{t.state}**: {t.error}"
    loss = f", loss {t.losses[-1][1]:.4f}" if t.losses else ""
    return f"**training**: step {t.step} of {t.total or '?'}{loss} ({t.elapsed_s:.0f}s)"


def _loss_plot(losses: list[tuple[int, float]]) -> Any:
    df = pd.DataFrame(losses, columns=["step", "loss"]) if losses else EMPTY_LOSS
    return gr.LinePlot(df, x_title=f"step ({len(df)} logged)")


def _exam_bars(exam: pd.DataFrame) -> pd.DataFrame:
    """The exam table as bars: base and adapter side by side for each iteration's decision."""
    rows = [{"bar": f"{r.decision} {m} (iteration {r.iteration})", "balanced accuracy": getattr(r, m), "model": m}
            for r in exam.itertuples() for m in ("base", "adapter") if getattr(r, m) is not None]
    return pd.DataFrame(rows, columns=list(EMPTY_BARS.columns)) if rows else EMPTY_BARS


def _plottable(long: pd.DataFrame) -> pd.DataFrame:
    """Rows for a line plot, one line per series. Gradio's line plot draws no line for a colour value
    holding a '.' (nor, it seems, other punctuation such as '='), so those become spaces there (the
    table keeps the names)."""
    out = long[["round", "value", "series"]].copy()
    out["series"] = out["series"].str.replace(r"[^\w\s-]", " ", regex=True)
    return out


def _patterns(text: str | None) -> list[str] | None:
    pats = [p.strip() for p in (text or "").split(",") if p.strip()]
    return pats or None


def _short(df: pd.DataFrame) -> pd.DataFrame:
    out = df.drop(columns=[c for c in ("choices",) if c in df]).copy()
    for col in ("prompt", "completion"):
        if col in out:
            out[col] = out[col].astype(str).str.slice(-240 if col == "prompt" else 0, None if col == "prompt" else 240)
    return out


def _run_names(ctx: UIContext) -> list[str]:
    return list(ctx.runs()["run"])
