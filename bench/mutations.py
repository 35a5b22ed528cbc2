"""Break a feature on purpose and check that the tests notice: a mutation benchmark.

Each mutation is a small patch (one exact piece of text replaced in one file) applied to a
temporary copy of the checkout; the tests that should catch it are run on that copy, and the
mutation counts as caught when they fail. Not part of CI (it runs the slow end-to-end tests many
times); run it before you stop when you touch replay, resume, recovery, routing or config errors.

    python bench/mutations.py                 # every mutation; prints caught/total and the survivors
    python bench/mutations.py --list          # names only
    python bench/mutations.py --check         # every mutation still applies (after an edit), no test run
    python bench/mutations.py --only resume-skips-truncate routing-ignores-load
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOBS = "tests/examples/test_job_seeking_runs.py"
RUNTIMES = "tests/runtime/test_runtimes.py"
LLM = "tests/llm/test_llm_clients.py"
CORE = "tests/core/test_run_failures.py"


@dataclass(frozen=True)
class Mutation:
    """Replace ``old`` (which must occur exactly once in ``file``) by ``new``; ``tests`` should fail."""

    name: str
    feature: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS = [
    Mutation("replay-drops-failed-structured", "replay", "simulation/store/run_store.py",
             "WHERE (error IS NULL OR error LIKE 'StructuredOutputError%')", "WHERE error IS NULL",
             (f"{JOBS}::test_plain_openai_server_records_failures_and_replays_them",)),
    Mutation("replay-cache-empty", "replay", "simulation/runtime/host.py",
             "ResponseCache(src.response_cache(), source=src.path)", "ResponseCache({}, source=src.path)",
             (f"{JOBS}::test_run_records_everything_and_replay_reproduces",)),
    Mutation("resume-skips-truncate", "resume", "simulation/core/simulator.py",
             "        self.store.truncate_after(r)\n", "",
             (f"{JOBS}::test_live_run_killed_mid_round_then_resumed_equals_uninterrupted",)),
    Mutation("resume-of-replay-goes-live", "resume", "simulation/runner.py",
             "replay_from = Path(rf).resolve() if rf else None", "replay_from = None",
             (f"{JOBS}::test_replay_killed_mid_round_resumes_from_the_recording",)),
    Mutation("routing-ignores-load", "failover", "simulation/llm/pool.py",
             "key = (0 if local else 1, ep.load(), ep.calls)", "key = (0 if local else 1, ep.calls)", (LLM,)),
    Mutation("routing-ignores-queued-calls", "failover", "simulation/llm/pool.py",
             "return (self.in_flight + self.queued) / self.max_concurrency",
             "return self.in_flight / self.max_concurrency", (LLM,)),
    Mutation("connection-error-not-endpoint-down", "failover", "simulation/llm/http.py",
             '{type(e).__name__}: {e}", endpoint_down=True)', '{type(e).__name__}: {e}", endpoint_down=False)',
             (LLM,)),
    Mutation("failing-endpoint-never-cooled-down", "failover", "simulation/llm/pool.py",
             "ep.down_until = now + cool", "ep.down_until = 0.0",
             (f"{LLM}::test_failover_routes_around_dead_endpoint",)),
    Mutation("recovery-records-warm-calls-again", "Ray recovery (was: skip forget_calls)",
             "simulation/runtime/clients.py", "return CachingClient(recorded, warm, remember=False)",
             "return RecordingClient(CachingClient(recorded.inner, warm, remember=False), sink)",
             (f"{RUNTIMES}::test_ray_group_killed_mid_phase_of_a_live_run",)),
    Mutation("recovery-drops-interventions", "Ray recovery", "simulation/core/simulator.py",
             "for agent, path, value in self._patches:", "for agent, path, value in []:",
             (f"{RUNTIMES}::test_ray_group_killed_mid_phase_of_a_live_run",)),
    Mutation("recovery-warm-does-nothing", "Ray recovery", "simulation/runtime/host.py",
             "self._rewire_llm(ResponseCache(calls))", "calls = {}",
             (f"{RUNTIMES}::test_ray_group_killed_mid_phase_of_a_live_run",)),
    Mutation("unsorted-actions", "runtimes agree", "simulation/core/simulator.py",
             "actions.sort(key=lambda a: a.agent_id)", "actions.reverse()",
             (f"{RUNTIMES}::test_local_and_ray_replays_are_identical",)),
    Mutation("restore-does-nothing", "contract test", "simulation/runtime/host.py",
             "            self.group.set_states(states)\n", "",
             (f"{RUNTIMES}::test_contract_bulk_create_checkpoint_restore",)),
    Mutation("config-first-problem-only", "config errors", "simulation/config/loader.py",
             "    if problems or sim is None:\n        raise ConfigError(problems)",
             "    if problems or sim is None:\n        raise ConfigError(problems[:1])",
             ("tests/config/test_config_errors.py",)),
    Mutation("config-no-zero-agents-check", "config errors", "simulation/config/loader.py",
             'problems.append(ConfigProblem(str(sim_path), "agents", "total agent count is 0"))', "pass",
             ("tests/config/test_config_errors.py",)),
    Mutation("employment-rate-zero", "metrics", "simulation/examples/job_seeking/environment.py",
             'out["employment_rate"] = len(self.employed) / self.n_seekers if self.n_seekers else 0.0',
             'out["employment_rate"] = 0.0',
             (f"{JOBS}::test_run_records_everything_and_replay_reproduces",)),
    Mutation("choose-falls-back-to-first-option", "no hidden defaults", "simulation/llm/agent_llm.py",
             "        except StructuredOutputError:\n            return Answer(None, False)\n\n    async def json",
             "        except StructuredOutputError:\n            return Answer(choices[0], False)\n\n    async def json",
             (f"{CORE}::test_no_decision_is_taken_for_a_model_that_answers_off_menu",)),
    Mutation("scenario-bug-counted-as-failed-step", "scenario bugs stop the run", "simulation/core/group.py",
             "                    result.errors.append(StepError.from_exception(agent.id, phase.name, e))\n"
             "                result.steps += 1",
             "                    result.failed += 1\n                result.steps += 1",
             (f"{CORE}::test_scenario_bug_stops_the_run_then_resumes_after_the_fix",)),
    Mutation("actions-not-linked-to-calls", "checks and ratings", "simulation/core/context.py",
             "                linked.append(pick[0])\n", "",
             ("tests/correction/test_ratings_and_datasets.py::test_check_ratings_are_linked_to_the_calls_behind_each_action",)),
    Mutation("fork-from-the-wrong-checkpoint", "fork", "simulation/fork.py",
             "src = round_dir(parent_dir, from_round - 1)", "src = round_dir(parent_dir, from_round)",
             ("tests/test_fork.py::test_fork_replayed_from_the_parent_reproduces_its_later_rounds",)),
    Mutation("no-repair-step", "structured outputs", "simulation/llm/structured.py",
             "for repair in range(self.max_repairs + 1):", "for repair in range(1):",
             (f"{LLM}::test_repair_then_give_up",
              f"{JOBS}::test_plain_openai_server_records_failures_and_replays_them")),
    Mutation("agents-ignore-their-model", "model selection", "simulation/core/context.py",
             "                                 s.routing.model_for(a.id, a.agent_type), route)",
             "                                 None, route)",
             ("tests/core/test_deploy.py::test_deploy_mid_run_then_fork_resume_and_replay",)),
    Mutation("replay-key-ignores-model", "model selection", "simulation/llm/types.py",
             "        if self.model is not None:  # keys of default-model calls stay as older runs recorded them\n"
             "            parts.append(self.model)\n", "",
             ("tests/llm/test_routing.py::test_replay_key_includes_the_model",
              "tests/llm/test_routing.py::test_agents_calls_go_to_their_model_and_are_recorded_with_it")),
    Mutation("replay-forgets-deployments", "deploy", "simulation/runner.py",
             "            if when == r and not data.get(\"at_start\"):", "            if False:",
             ("tests/core/test_deploy.py::test_deploy_mid_run_then_fork_resume_and_replay",)),
    Mutation("fork-drops-deployed-adapters", "deploy", "simulation/llm/routing.py",
             "    routing.assignments += [Assignment.from_data(a) for a in deployed]\n", "",
             ("tests/core/test_deploy.py::test_deploy_mid_run_then_fork_resume_and_replay",)),
    Mutation("from-ignores-parent", "training", "simulation/training/trainers.py",
             "        model = PeftModel.from_pretrained(model, str(parent), is_trainable=True)\n", "",
             ("tests/training/test_training.py::test_manifest_and_from_chaining",)),
    Mutation("no-base-check", "training", "simulation/training/__init__.py",
             "    if parent_manifest is not None and not same_base(parent_manifest.base_model, base):",
             "    if False:",
             ("tests/training/test_training.py::test_from_an_adapter_of_another_base_is_refused",)),
    Mutation("training-trains-on-held-out-agents", "correction loop", "simulation/correction/datasets.py",
             "        if call.agent_id in exclude_agents or call.action in skip:",
             "        if call.action in skip:",
             ("tests/correction/test_correct_loop.py",
              "tests/correction/test_ratings_and_datasets.py::test_sft_corrections_anchors_and_balance")),
    Mutation("correction-kept-beside-original", "datasets", "simulation/correction/datasets.py",
             "call.completion if call.valid and call_id not in low and score is not None else None)",
             "call.completion if call.valid and score is not None else None)",
             ("tests/correction/test_ratings_and_datasets.py::test_sft_corrections_anchors_and_balance",)),
    Mutation("collapse-never-refused", "correction loop", "simulation/correction/measure.py",
             "        if share > SKEW and before.top(action)[1] <= SKEW and free <= SKEW and not (action in unchecked",
             "        if False and not (action in unchecked",
             ("tests/correction/test_measure.py",)),
    Mutation("merged-servers-outlive-the-run", "deploy (real vLLM)", "simulation/services/deploy.py",
             "        self.owned = owned  #", "        self.owned = dict(owned)  #",
             ("tests/integration/test_real_adapters.py",)),
    Mutation("single-lora-slot", "deploy (real vLLM)", "simulation/services/deploy.py",
             "str(max(2, max_loras))", "\"1\"",
             ("tests/integration/test_real_adapters.py",)),
    # issue 12: run folders inert, fast authoring, faithful import, portable structured outputs, bad input
    Mutation("run-folder-code-imported", "inert run folders", "simulation/runner.py",
             '    else:\n        raise ConfigError([ConfigProblem(where, "scenario_dir", (',
             '    else:\n        folder = recorded\n    if folder is None:\n'
             '        raise ConfigError([ConfigProblem(where, "scenario_dir", (',
             ("tests/test_cli.py::test_run_folders_never_import_the_code_they_name",)),
    Mutation("resume-scenario-argument-ignored", "inert run folders", "simulation/runner.py",
             "    if name is not None and spec.name != name:", "    if False:",
             ("tests/test_cli.py::test_resume_with_replay_or_wrong_scenario_is_refused",)),
    Mutation("run-stopped-in-setup-not-restarted", "resume", "simulation/runner.py",
             "        if latest_checkpoint(run_dir) is None:", "        if False:",
             ("tests/test_cli.py::test_a_run_killed_during_setup_is_resumed_from_the_start",)),
    Mutation("replay-runs-past-its-recording", "replay", "simulation/runner.py",
             "    if finished:\n        return cfg\n", "    return cfg\n",
             ("tests/test_cli.py::test_replay_of_an_interrupted_run_ends_where_its_recording_does",)),
    Mutation("late-intervention-dropped", "bad input", "simulation/runner.py",
             "    late = sorted({x.round for x in plan if x.round > cfg.simulation.rounds})\n    if late:",
             "    late = sorted({x.round for x in plan if x.round > cfg.simulation.rounds})\n    if late and False:",
             ("tests/test_cli.py",)),
    Mutation("fake-backend-ignored", "--llm fake", "simulation/runtime/clients.py",
             '    if s.backend == "fake":', '    if False:',
             ("tests/examples/test_guide.py::test_id_digits_keep_ids_across_scaling",)),
    Mutation("first-n-profiles", "profile import", "simulation/population/build.py",
             "    if count >= n_file:\n", "    if True:\n        return list(range(min(count, n_file)))\n",
             ("tests/population/test_population.py",)),
    Mutation("salary-invented", "profile import", "simulation/examples/job_seeking/population.py",
             "        if tr.desired_salary is not None:\n            profile[\"desired_salary\"] = tr.desired_salary",
             "        profile[\"desired_salary\"] = tr.desired_salary or 60_000",
             ("tests/population/test_population.py",)),
    Mutation("id-digits-ignored", "stable ids", "simulation/population/build.py",
             "    width = digits if digits is not None else", "    width = None or",
             ("tests/examples/test_guide.py::test_id_digits_keep_ids_across_scaling",)),
    Mutation("schema-fallback-never", "portable structured outputs", "simulation/llm/http.py",
             '        if self.mode == "schema":\n            self.mode = "prose"',
             '        if self.mode == "schema":\n            self.mode = "schema"',
             ("tests/llm/test_malformed_output.py::test_server_ignoring_schemas_falls_back_to_prose_once",)),
    Mutation("schema-never-sent", "portable structured outputs", "simulation/llm/http.py",
             '    elif self.mode in ("vllm", "schema") and', '    elif self.mode in ("vllm",) and',
             ("tests/llm/test_malformed_output.py::test_llamacpp_like_server_gets_json_schemas",)),
    Mutation("html-reply-crashes", "bad LLM output", "simulation/llm/http.py",
             "        except ValueError as e:  # an HTML error page", "        except KeyError as e:  # an HTML error page",
             ("tests/llm/test_malformed_output.py::test_every_misbehaviour_is_repaired_or_counted_and_retries_are_bounded",)),
    Mutation("stale-pid-killed", "kill scripts", "simulation/services/procid.py",
             "    now = identity(pid)\n    if now is None:", "    return True, \"\"\n    now = identity(pid)\n    if now is None:",
             ("tests/services/test_stale_pid_files.py",)),
    Mutation("token-counter-depends-on-host", "token counting", "simulation/memory/tokens.py",
             "    return HFTokenCounter(chat_tokenizer_file())",
             "    return ByteTokenCounter() if not (chat_tokenizer_file().parent.parent.name == 'models') "
             "else HFTokenCounter(chat_tokenizer_file())",
             ("tests/memory/test_agent_memory.py",)),
    Mutation("template-variables-unchecked", "gensim check", "simulation/checking.py",
             "        for var in sorted(jinja2.meta.find_undeclared_variables(tree) - kws - RENDER_GIVES):",
             "        for var in []:",
             ("tests/config/test_config_errors.py",)),
    Mutation("setup-not-awaited-check", "gensim check", "simulation/core/scenario.py",
             "    if not inspect.iscoroutinefunction(spec.environment.setup):", "    if False:",
             ("tests/examples/test_guide.py::test_check_says_setup_and_phase_methods_must_be_async",)),
    Mutation("phase-log-misses-drained-calls", "run log", "simulation/core/simulator.py",
             "                self._phase_calls += len(rows)\n", "",
             ("tests/core/test_phase_log.py",)),
    Mutation("decision-spread-counts-invalid", "decision health", "simulation/core/health.py",
             "        if valid:\n            opts = json.loads(choices)",
             "        if True:\n            opts = json.loads(choices)",
             ("tests/core/test_decision_health.py", "tests/correction/test_measure.py")),
    Mutation("pad-token-may-be-end-token", "training", "simulation/training/trainers.py",
             "        if pad is None:\n", "        if pad is None and False:\n",
             ("tests/training/test_training.py::test_pad_token_is_distinct_from_the_end_token_or_the_base_is_refused",)),
    # issue 18: nothing silently wrong
    Mutation("replay-ignores-recorded-interventions", "replay", "simulation/runner.py",
             "                plan = schedule.recorded(src)", "                plan = given",
             ("tests/test_reproducibility.py::test_replay_repeats_the_recorded_interventions_and_refuses_other_ones",)),
    Mutation("replay-accepts-other-interventions", "replay", "simulation/schedule.py",
             "    if not given or sorted(given, key=repr) == sorted(recorded_, key=repr):",
             "    if True:",
             ("tests/test_reproducibility.py::test_replay_repeats_the_recorded_interventions_and_refuses_other_ones",)),
    Mutation("fork-forgets-parent-interventions", "fork", "simulation/runner.py",
             "    inherited = parent_schedule(parent, opts.from_round)", "    inherited = []",
             ("tests/test_reproducibility.py::test_fork_repeats_the_parents_interventions",)),
    Mutation("resume-forgets-schedule", "resume", "simulation/runner.py",
             'plan = schedule.from_data(meta["schedule"]) if "schedule" in meta else given',
             "plan = given",
             ("tests/test_reproducibility.py::test_resume_continues_the_schedule_it_was_started_with",)),
    Mutation("replay-miss-unexplained", "replay", "simulation/llm/cache.py",
             "            if self.cache.source is not None:", "            if False:",
             ("tests/test_reproducibility.py::test_a_replay_that_leaves_its_recording_says_what_differs",)),
    Mutation("no-run-folder-lock", "lock", "simulation/store/lock.py",
             "            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)", "            pass",
             ("tests/test_reproducibility.py::test_one_process_per_run_folder",)),
    Mutation("ctrl-c-exits-0", "interrupt", "simulation/runner.py",
             "        if sim.stop_reason and not finished:", "        if False:",
             ("tests/test_reproducibility.py::test_ctrl_c_exits_130_and_says_how_to_resume",)),
    Mutation("finished-run-resumed-again", "resume", "simulation/runner.py",
             "        if done is not None:\n            return done", "        if False:\n            return done",
             ("tests/test_reproducibility.py::test_resuming_a_finished_run_changes_nothing",)),
    Mutation("truncated-checkpoint-trusted", "resume", "simulation/core/checkpoint.py",
             "        problem = checkpoint_problem(d)", "        problem = None",
             ("tests/test_reproducibility.py::test_a_cut_short_checkpoint_is_named_and_the_previous_one_used",)),
    Mutation("set-unchecked", "bad input", "simulation/runner.py",
             "        validate_attributes(sim, plan)\n", "",
             ("tests/test_reproducibility.py::test_set_is_checked_against_the_profile",)),
    Mutation("half-made-folder-kept", "bad input", "simulation/runner.py",
             "            shutil.rmtree(run_dir, ignore_errors=True)", "            pass",
             ("tests/test_reproducibility.py::test_set_is_checked_against_the_profile",)),
    Mutation("environment-bug-unnamed", "scenario bugs", "simulation/core/simulator.py",
             "        except (ConfigError, RunStopped, LLMError):\n            raise\n        except Exception as e:\n"
             "            logger.bind(run_log_only=True).opt(exception=e).error(\"the environment's {} raised",
             "        except Exception:\n            raise\n        except BaseException as e:\n"
             "            logger.bind(run_log_only=True).opt(exception=e).error(\"the environment's {} raised",
             ("tests/core/test_environment_errors.py",)),
    Mutation("duplicate-yaml-keys-allowed", "config", "simulation/config/loader.py",
             "            if key in seen:\n", "            if False:\n", ("tests/config/test_config_errors.py",)),
    Mutation("unknown-filter-unchecked", "config", "simulation/checking.py",
             "            env.compile(source)", "            pass", ("tests/config/test_config_errors.py",)),
    Mutation("llm-model-unchecked", "config", "simulation/config/loader.py",
             "        problems += _llm_problems(sim, models, agent_types, str(sim_path))", "        pass",
             ("tests/config/test_config_errors.py",)),
    Mutation("ratings-twice-accepted", "ratings", "simulation/correction/ratings.py",
             "        if (call.id, rater) in seen:", "        if False:",
             ("tests/correction/test_bad_inputs.py",)),
    Mutation("judge-rubric-from-run-folder", "ratings", "simulation/correction/__init__.py",
             "        prompts = spec.prompts_dir or Path(cfg.scenario_dir) / \"prompts\"",
             "        prompts = Path(read_run_config(run).scenario_dir) / \"prompts\"",
             ("tests/correction/test_bad_inputs.py::test_the_judges_rubric_comes_from_the_named_scenario",)),
    Mutation("sft-loss-on-prompt", "training", "simulation/training/trainers.py",
             "completion_only_loss=True", "completion_only_loss=False",
             ("tests/training/test_training.py::test_sft_loss_covers_the_answer_only",)),
    Mutation("names-ignore-gender", "population", "simulation/population/synth.py",
             'name = f"{FIRST_BY_GENDER[GENDERS[g]][f]} {LAST[la]}"', 'name = f"{FIRST_BY_GENDER[GENDERS[0]][f]} {LAST[la]}"',
             ("tests/population/test_population.py::test_generated_names_fit_the_generated_gender",)),
    # the live-run controller and the web interface
    Mutation("pause-ignored", "ui", "simulation/control/controller.py",
             "            self._call_soon(sim.pause)", "            pass",
             ("tests/control/test_controller.py::test_pause_act_resume_stop_then_resume_the_folder",)),
    Mutation("ui-stop-unrecorded", "ui", "simulation/runner.py",
             "        if sim.stop_reason and not finished:", "        if sim.stop_reason == 'interrupted (Ctrl-C)' and not finished:",
             ("tests/control/test_controller.py::test_pause_act_resume_stop_then_resume_the_folder",)),
    Mutation("ui-public-without-login", "ui", "simulation/ui/security.py",
             "    if not is_loopback(host) and auth is None:", "    if False:",
             ("tests/ui/test_security.py",)),
    Mutation("ui-path-escapes", "ui", "simulation/ui/security.py",
             "        if not self.inside(real):", "        if False:", ("tests/ui/test_security.py",)),
    Mutation("ui-rewrite-unchecked", "ui", "simulation/ui/actions.py",
             "            if not valid_rewrite(calls[0], rewrite):", "            if False:",
             ("tests/ui/test_actions.py",)),
    Mutation("query-type-filter-ignored", "query", "simulation/store/query.py",
             "        if agent_type:\n            where.append(\"agent_type = ?\")", "        if False:\n            where.append(\"agent_type = ?\")",
             ("tests/store/test_query.py",)),
    Mutation("query-map-uncapped", "query", "simulation/store/query.py",
             "        if total > max_points:", "        if False:", ("tests/store/test_query.py",)),
    Mutation("anchor-argmax", "correction", "simulation/correction/loop.py",
             "        got = {i.call_id: ex.sampled_option(p, f\"{seed}:{i.call_id}\")",
             "        got = {i.call_id: ex.preferred_option(p)", ("tests/correction/test_correct_loop_fast.py",)),
    Mutation("choice-soft-target-ignored", "correction", "simulation/training/choice.py",
             "    want = e.target if e.target is not None else {e.completion: 1.0}", "    want = {e.completion: 1.0}",
             ("tests/training/test_choice.py",)),
    Mutation("choice-prefix-without-end", "correction", "simulation/llm/scoring.py",
             "t + (end if any(", "t + ([] if any(", ("tests/training/test_choice.py", "tests/llm/test_scoring.py")),
    Mutation("choice-loss-renormalised-only", "correction", "simulation/training/choice.py",
             "r, (_, full) in zip(choices", "r, (full, _) in zip(choices", ("tests/training/test_choice.py",)),
    Mutation("choice-answer-weights-ignored", "correction", "simulation/training/choice.py",
             "    weights = answer_weights(examples)", "    weights = [1.0] * len(examples)",
             ("tests/training/test_choice.py",)),
    Mutation("drift-adapter-greedy", "correction", "simulation/correction/exam.py",
             'return s.get("base_averaged") or s["base"], s.get("adapter_averaged") or s["adapter"]',
             'return s.get("base_averaged") or s["base"], s["adapter"]',
             ("tests/correction/test_exam.py",)),
    Mutation("collapse-ignores-averaged", "correction", "simulation/correction/exam.py",
             '(s.get("base_averaged") or {}).get(opt, 0.0))', '0.0)', ("tests/correction/test_exam.py",)),
    Mutation("live-collapse-ignores-preference", "correction", "simulation/correction/measure.py",
             "and free <= SKEW and not (action in unchecked", "and not (action in unchecked",
             ("tests/correction/test_measure.py",)),
    Mutation("dataset-drops-targets", "correction", "simulation/correction/datasets.py",
             "        out[\"target\"] = {o: round(float(p), 4) for o, p in target.items()}", "        pass",
             ("tests/correction/test_datasets.py",)),
    Mutation("spread-ignores-keep", "correction", "simulation/training/__init__.py",
             "(kept_by if e.keep else rest_by).setdefault", "rest_by.setdefault",
             ("tests/training/test_data.py",)),
    Mutation("spread-kept-unbounded", "correction", "simulation/training/__init__.py",
             "kept_n = min(n_kept, n, max(int(n * KEPT_SHARE), n - n_rest))", "kept_n = min(n_kept, n)",
             ("tests/training/test_data.py",)),
    Mutation("spread-splits-calls", "correction", "simulation/training/__init__.py",
             "        return (\"row\", i) if c is None else c", "        return (\"row\", i)",
             ("tests/training/test_data.py",)),
    Mutation("balance-ignores-options", "correction", "simulation/correction/datasets.py",
             "        key = (r[\"meta\"][\"action\"], tuple(sorted(r[\"meta\"].get(\"options\") or ())))",
             "        key = (r[\"meta\"][\"action\"], ())",
             ("tests/correction/test_datasets.py",)),
    Mutation("no-train-keeps-rated-rows", "correction", "simulation/correction/datasets.py",
             "        if call.agent_id in exclude_agents or call.action in skip:",
             "        if call.agent_id in exclude_agents:",
             ("tests/correction/test_datasets.py", "tests/correction/test_correct_loop_fast.py")),
    Mutation("no-train-keeps-anchors", "correction", "simulation/correction/datasets.py",
             " and c.action not in skip and c.agent_id not in exclude_agents]", " and c.agent_id not in exclude_agents]",
             ("tests/correction/test_datasets.py", "tests/correction/test_correct_loop_fast.py")),
    Mutation("no-train-not-passed", "correction", "simulation/correction/loop.py",
             "        skip = no_train | (", "        skip = frozenset() | (",
             ("tests/correction/test_correct_loop_fast.py",)),
    Mutation("drift-line-without-means", "correction", "simulation/correction/exam.py",
             "    if not (s.get(\"base_mean\") and s.get(\"adapter_mean\")):",
             "    if True:",
             ("tests/correction/test_exam.py",)),
    Mutation("ungraded-line-without-means", "correction", "simulation/correction/exam.py",
             "\"{} -> {}\".format(*_compared(u)) + _means_moved(u))", "\"{} -> {}\".format(*_compared(u)))",
             ("tests/correction/test_exam.py",)),
    Mutation("trainer-ignores-batch-order", "training", "simulation/training/choice.py",
             "    batches = batch_order(len(examples), epochs, batch_size, seed)\n",
             "    batches = [list(range(min(batch_size, len(examples))))] * len(batch_order(len(examples), epochs, batch_size, seed))\n",
             ("tests/training/test_choice.py",)),
    Mutation("batch-order-drops-an-epochs-rest", "training", "simulation/training/data.py",
             "            order += rng.sample(range(n), n)", "            order = rng.sample(range(n), n)",
             ("tests/training/test_data.py",)),
    Mutation("snapshot-saved-a-step-late", "training", "simulation/training/choice.py",
             "            if save_every and step % save_every == 0 and step < steps:",
             "            if save_every and (step - 1) % save_every == 0 and 1 < step < steps:",
             ("tests/training/test_choice.py",)),
    Mutation("snapshot-manifest-keeps-every-loss", "training", "simulation/training/__init__.py",
             '"losses": losses[:k], "step": k,', '"losses": losses, "step": k,',
             ("tests/training/test_choice.py",)),
    Mutation("ungraded-without-base-mean", "correction", "simulation/correction/exam.py",
             "            \"base_mean\": _mean_probs(base), ", "",
             ("tests/correction/test_exam.py",)),
    Mutation("announces-a-next-iteration-after-the-last", "correction", "simulation/correction/loop.py",
             "            if i < opts.iterations:  # the last iteration has no next one to announce",
             "            if True:",
             ("tests/correction/test_correct_loop_fast.py",)),
    Mutation("dataset-keeps-unsure", "correction", "simulation/correction/datasets.py",
             "            elif call.action in keep:", "            if call.action in keep:",
             ("tests/correction/test_datasets.py",)),
    Mutation("rated-rows-anchor-unsure", "correction", "simulation/correction/loop.py",
             '[u for u in unsure if u.decision not in keep or ungraded == "anchor"]', "list(unsure)",
             ("tests/correction/test_correct_loop_fast.py",)),
    Mutation("rated-rows-judge-keeps", "correction", "simulation/correction/loop.py",
             'keep = checked if opts.method == "sft" and opts.rater == "checks" and opts.rated_rows == "all"',
             'keep = checked if opts.method == "sft" and opts.rated_rows == "all"',
             ("tests/correction/test_correct_loop_fast.py",)),
    Mutation("structured-collapse-unseen", "correction", "simulation/correction/measure.py",
             "        if share > SKEW and was <= SKEW and right < JUSTIFIED:\n            out.append(f\"decision '{action}' collapsed onto the answer",
             "        if False:\n            out.append(f\"decision '{action}' collapsed onto the answer",
             ("tests/correction/test_measure.py",)),
    Mutation("structured-collapse-unjustified", "correction", "simulation/correction/measure.py",
             "        if share > SKEW and was <= SKEW and right < JUSTIFIED:",
             "        if share > SKEW and was <= SKEW:", ("tests/correction/test_measure.py",)),
    Mutation("structured-right-ignores-rewrites", "correction", "simulation/correction/measure.py",
             "                right[action][_canonical(rewrites.get(cid, completion))] += 1",
             "                right[action][_canonical(completion)] += 1", ("tests/correction/test_measure.py",)),
    Mutation("structured-answers-raw", "correction", "simulation/correction/measure.py",
             "        return canonical_json(json.loads(completion))",
             "        return completion",
             ("tests/correction/test_measure.py",)),
    Mutation("low-salary-rewrite-drops-only", "checks", "simulation/examples/job_seeking/checks.py",
             "        keep = sorted(keep + better[:len(set(picks)) - len(keep)])", "        keep = sorted(keep)",
             ("tests/examples/test_checks.py",)),
    Mutation("far-below-rewrite-declines", "checks", "simulation/examples/job_seeking/checks.py",
             "                      best_paid(c, pay, LOW_PAY * desired) or \"decline all\")",
             "                      \"decline all\")", ("tests/examples/test_checks.py",)),
    Mutation("declined-desired-pay-passes", "checks", "simulation/examples/job_seeking/checks.py",
             "    best = best_paid(c, pay, desired)\n", "    best = None\n", ("tests/examples/test_checks.py",)),
    Mutation("respond-decision-accepts-only", "checks", "simulation/examples/job_seeking/agents.py",
             "        ctx.act(\"respond_offers\", valid=ok, calls=[\"respond_offers\"], offers=offers, options=labels, decision=pick,\n                job=job)",
             "        if pick != \"decline all\":\n            ctx.act(\"respond_offers\", valid=ok, calls=[\"respond_offers\"], offers=offers, options=labels, decision=pick,\n                job=job)",
             ("tests/examples/test_checks.py",)),
    Mutation("offer-options-by-number", "checks", "simulation/examples/job_seeking/agents.py",
             "    return [f\"accept offer {i}\" for i in range(1, n + 1)]",
             "    return [str(i) for i in range(1, n + 1)]", ("tests/examples/test_checks.py",)),
    Mutation("applied-low-salary-passes", "checks", "simulation/examples/job_seeking/checks.py",
             "    if pay < LOW_PAY * desired:\n        return Failed(f\"applied to a posting",
             "    if pay < 0:\n        return Failed(f\"applied to a posting", ("tests/examples/test_checks.py",)),
    Mutation("skipped-fitting-ignores-requirements", "checks", "simulation/examples/job_seeking/checks.py",
             "    if pay >= desired and fit is not None and fit[0] == fit[1]:",
             "    if pay >= desired:", ("tests/examples/test_checks.py",)),
    Mutation("posting-cap-ignored", "checks", "simulation/examples/job_seeking/agents.py",
             "        chosen = wanted[: ctx.world.params.max_applications]  # the search's best-ranked first",
             "        chosen = wanted", ("tests/examples/test_checks.py",)),
    Mutation("posting-decision-records-sent", "checks", "simulation/examples/job_seeking/agents.py",
             "            ctx.act(\"apply_posting\", valid=ok, job=job_id, decision=pick, sent=i in chosen)",
             "            ctx.act(\"apply_posting\", valid=ok, job=job_id, decision=pick if i in chosen else \"skip\","
             " sent=i in chosen)", ("tests/examples/test_checks.py",)),
    Mutation("posting-checks-not-shipped", "checks", "simulation/examples/job_seeking/checks.py",
             "CHECKS = [applied_low_salary, skipped_fitting_posting, low_salary_application,",
             "CHECKS = [low_salary_application,", ("tests/correction/test_exam.py",)),
    Mutation("posting-fit-not-stated", "checks", "simulation/examples/job_seeking/agents.py",
             "        if not ctx.world.params.state_fit:", "        if True:", ("tests/examples/test_checks.py",)),
    Mutation("state-fit-off-by-default", "checks", "simulation/examples/job_seeking/environment.py",
             "    state_fit: bool = Field(\n        default=True,", "    state_fit: bool = Field(\n        default=False,",
             ("tests/examples/test_checks.py",)),
    Mutation("offer-pay-share-not-stated", "checks", "simulation/examples/job_seeking/agents.py",
             '    return "" if share is None else f", up to {share:.0%} of the salary you want: {pay_words(share)}"',
             '    return ""',
             ("tests/examples/test_checks.py",)),
    Mutation("linear-schedule-ignored", "training", "simulation/training/choice.py",
             '            rate = lr * (steps - step + 1) / steps if schedule == "linear" else lr', "            rate = lr",
             ("tests/training/test_choice.py::test_a_linear_schedule_decays_the_rate_that_trains",)),
    Mutation("linear-schedule-logged-not-used", "training", "simulation/training/choice.py",
             '                group["lr"] = rate', "                pass",
             ("tests/training/test_choice.py::test_a_linear_schedule_decays_the_rate_that_trains",)),
    Mutation("loop-drops-lr-schedule", "correction loop", "simulation/correction/loop.py",
             "lr_schedule=opts.lr_schedule, save_every", "save_every",
             ("tests/correction/test_correct_loop_fast.py",)),
    Mutation("collapse-ignores-the-base-pick-where-no-check-grades", "correction", "simulation/correction/exam.py",
             'right += u["calls"] / calls * u["base_averaged"].get(opt, 0.0)', "pass",
             ("tests/correction/test_exam.py",)),
    Mutation("resume-of-the-base-forgets-the-scenario-folder", "correction loop", "simulation/correction/loop.py",
             "RunOptions(scenario=opts.scenario, resume=str(base),", "RunOptions(resume=str(base),", ("tests/correction/test_correct_loop_resume.py",)),
    Mutation("resume-of-a-fork-forgets-the-scenario-folder", "correction loop", "simulation/correction/loop.py",
             "RunOptions(scenario=opts.scenario, resume=str(fork),", "RunOptions(resume=str(fork),", ("tests/correction/test_correct_loop_resume.py",)),
    Mutation("resume-trains-again", "correction loop", "simulation/correction/loop.py",
             "manifest = trained or train(", "manifest = train(", ("tests/correction/test_correct_loop_resume.py",)),
    Mutation("resume-forgets-measured-iterations", "correction loop", "simulation/correction/loop.py",
             "    done = _measured(out) if resume else []", "    done = []", ("tests/correction/test_correct_loop_resume.py",)),
    Mutation("resume-keeps-an-adapter-of-other-rows", "correction loop", "simulation/correction/loop.py",
             "if file_hash(written) != trained.data_sha256:", "if False:", ("tests/correction/test_correct_loop_resume.py",)),
    Mutation("resume-forks-again", "correction loop", "simulation/correction/loop.py",
             'if resume and (fork / "run.sqlite").is_file():', "if False:", ("tests/correction/test_correct_loop_resume.py",)),
    Mutation("resume-fills-missing-options-with-defaults", "correction loop", "simulation/correction/loop.py",
             "    if unknown or missing:", "    if unknown:",
             ("tests/correction/test_correct_loop_resume.py::test_resume_options_name_what_is_wrong",)),
    Mutation("pick-serves-the-last-step", "correction loop", "simulation/correction/loop.py",
             "                served = out / picked.chosen.folder", "                served = adapter", ("tests/correction/test_pick.py",)),
    Mutation("pick-scores-again-on-resume", "correction loop", "simulation/correction/loop.py",
             "    got = read_pick(path)\n    if got is None or", "    got = None\n    if got is None or", ("tests/correction/test_pick.py",)),
    Mutation("pick-next-iteration-from-the-last-step", "correction loop", "simulation/correction/loop.py",
             "adopted, source = served, fork", "adopted, source = adapter, fork", ("tests/correction/test_pick.py",)),
    Mutation("pick-gone-serves-the-last-step", "correction loop", "simulation/correction/loop.py",
             "    if not (out / got.chosen.folder).is_dir():  # never", "    if False:  # never", ("tests/correction/test_pick.py",)),
    Mutation("pick-gone-is-not-scored-again", "correction loop", "simulation/correction/loop.py",
             "if got is None or not (path.parent / got.chosen.folder).is_dir():", "if got is None:", ("tests/correction/test_pick.py",)),
    Mutation("pick-ties-go-to-the-earlier-step", "correction loop", "simulation/correction/pick.py",
             "key=lambda c: (c.worst, -c.step)", "key=lambda c: (c.worst, c.step)", ("tests/correction/test_pick.py",)),
    Mutation("pick-weighs-the-first-half-too", "correction loop", "simulation/correction/pick.py",
             "if 2 * snapshot_step(s) >= last and", "if", ("tests/correction/test_pick.py",)),
    Mutation("pick-scores-graded-rows-too", "correction loop", "simulation/correction/pick.py",
             'if not meta.get("anchored") or not meta.get("target") or call in items:',
             'if not meta.get("target") and False or call in items:', ("tests/correction/test_pick.py",)),
    Mutation("loop-file-without-pick-refused", "correction loop", "simulation/correction/loop.py",
             'SINCE_LOOP_FILE: dict[str, Any] = {"pick": "last"}', "SINCE_LOOP_FILE: dict[str, Any] = {}", ("tests/correction/test_pick.py",)),
    Mutation("resume-runs-the-base-again", "correction loop", "simulation/correction/loop.py",
             'elif resume and (out / "base" / "run.sqlite").is_file():', "elif False:", ("tests/correction/test_correct_loop_resume.py",)),
    Mutation("anchor-power-ignored", "correction loop", "simulation/correction/loop.py",
             "        if anchors is not None and opts.anchor_power != 1:", "        if False:",
             ("tests/correction/test_correct_loop_fast.py::test_anchor_power_sharpens_the_anchors_targets_and_nothing_else",)),
    Mutation("requirements-not-sent", "job seeking", "simulation/examples/job_seeking/agents.py",
             "            fit = meets_requirements(self.profile, job) if p.state_requirements else None",
             "            fit = None",
             ("tests/examples/test_checks.py::test_screening_and_offer_prompts_state_the_requirements_met",)),
    Mutation("offer-prompt-drops-requirements", "job seeking", "simulation/examples/job_seeking/agents.py",
             'dialogue=cand["dialogue"], fit=cand.get("fit"))', 'dialogue=cand["dialogue"], fit=None)',
             ("tests/examples/test_checks.py::test_screening_and_offer_prompts_state_the_requirements_met",)),
    Mutation("train-seed-ignored", "correction loop", "simulation/correction/loop.py",
             "        train_seed = seed if opts.train_seed is None else opts.train_seed", "        train_seed = seed",
             ("tests/correction/test_correct_loop_fast.py",)),
    Mutation("base-seed-mismatch-ignored", "correction loop", "simulation/correction/loop.py",
             "        if opts.seed is not None and opts.seed != base_seed:", "        if False:",
             ("tests/correction/test_correct_loop_fast.py",)),
    Mutation("collapse-unchecked-not-anchored", "correction", "simulation/correction/exam.py",
             '        anchored = not s["right"] and bool(s.get("base_averaged"))', "        anchored = False",
             ("tests/correction/test_exam.py",)),
    Mutation("live-collapse-unchecked-not-anchored", "correction loop", "simulation/correction/measure.py",
             "and not (action in unchecked", "and not (False", ("tests/correction/test_measure.py",)),
    Mutation("exam-structured-calls-dropped", "correction", "simulation/correction/exam.py",
             "            if agent not in agents or (choices is None and action is None):",
             "            if agent not in agents or choices is None:", ("tests/correction/test_exam.py",)),
    Mutation("exam-structured-schema-dropped", "correction", "simulation/correction/exam.py",
             "                              json_schema=item.json_schema, seed=seed, model=model, tag=tag)",
             "                              seed=seed, model=model, tag=tag)", ("tests/correction/test_exam.py",)),
    Mutation("exam-structured-unsure", "correction", "simulation/correction/exam.py",
             "            if i.choices and i.action is not None]",
             "            if i.action is not None]",
             ("tests/correction/test_exam.py",)),
    Mutation("train-cancel-ignored", "training", "simulation/training/trainers.py",
             "                if watch.cancelled():\n                    raise TrainingCancelled(f\"cancelled at step",
             "                if False:\n                    raise TrainingCancelled(f\"cancelled at step",
             ("tests/training/test_training.py",)),
    Mutation("train-step-dicts-printed", "training", "simulation/training/trainers.py",
             "    if trainer.pop_callback(ProgressCallback) is not None:", "    if False:",
             ("tests/training/test_training.py",)),
    Mutation("job-cancel-lost", "control", "simulation/control/jobs.py",
             "        self._cancel.set()", "        pass", ("tests/control/test_jobs.py", "tests/ui/test_actions.py")),
    Mutation("experiment-sd-population", "experiments", "simulation/experiments/aggregate.py",
             "    sd = float(np.std(values, ddof=1))", "    sd = float(np.std(values, ddof=0))",
             ("tests/experiments/test_experiment.py",)),
    Mutation("experiment-rerun-redoes", "experiments", "simulation/experiments/run.py",
             "    todo = [r for r in runs if run_state(r.folder) != \"done\"]", "    todo = list(runs)",
             ("tests/experiments/test_experiment.py",)),
    Mutation("experiment-design-unchecked", "experiments", "simulation/experiments/run.py",
             "    elif diff:\n", "    elif False:\n",
             ("tests/experiments/test_experiment.py",)),
    Mutation("round-costs-kept-on-fork", "store", "simulation/store/run_store.py",
             "\"interventions\", \"checks\", \"round_costs\"):", "\"interventions\", \"checks\"):",
             ("tests/test_fork.py",)),
    Mutation("ui-correction-table-wrong-group", "ui", "simulation/ui/actions.py",
             "\"held-out fail\": it.get(\"holdout_fail\")", "\"held-out fail\": it.get(\"control_fail\")",
             ("tests/ui/test_actions.py",)),
    Mutation("collapse-right-share-of-graded-only", "correction", "simulation/correction/exam.py",
             "round(right.count(o) / len(right), 4)", "round(right.count(o) / len([r for r in right if r]), 4)",
             ("tests/correction/test_exam.py",)),
    Mutation("ui-loop-picker-preselected", "ui", "simulation/ui/app.py",
             'label="Correction loop folder (held-out vs control)", value=None,',
             'label="Correction loop folder (held-out vs control)",', ("tests/ui/test_app.py",)),
    Mutation("ui-plot-title-with-its-data", "ui", "simulation/ui/app.py",
             "return gr.LinePlot(_plottable(long), x_title=_PLAIN_TITLE), _round_title(long)",
             "return gr.LinePlot(_plottable(long), x_title=_round_title(long)), _round_title(long)",
             ("tests/ui/test_browser.py::test_map_train_deploy_fork_compare",)),
    Mutation("ui-train-epochs-unchecked", "ui", "simulation/ui/app.py",
             "if epochs is None or not epochs > 0:", "if epochs is None:", ("tests/ui/test_app.py",)),
    Mutation("cluster-share-ignored", "experiments", "simulation/runtime/ray_runtime.py",
             "return max(1, int(slots * self.cluster_share + 1e-9)) if self.address else slots", "return slots",
             ("tests/runtime/test_cluster.py::test_parallel_experiment_runs_split_the_cluster",)),
    Mutation("scoped-assignment-covers-every-call", "routing", "simulation/llm/routing.py",
             "        if self.actions and action not in self.actions:\n            return False\n", "",
             ("tests/llm/test_routing.py::test_a_scoped_adapter_answers_its_decisions_only",
              "tests/correction/test_correct_loop_fast.py::"
              "test_a_targeted_adapter_answers_the_decisions_it_was_trained_on_and_nothing_else")),
    Mutation("step-llm-ignores-call-scope", "routing", "simulation/core/context.py",
             "            route = functools.partial(s.routing.model_for, a.id, a.agent_type) if s.routing.scoped() else None",
             "            route = None",
             ("tests/llm/test_routing.py::test_a_scoped_adapter_answers_its_decisions_only",
              "tests/correction/test_correct_loop_fast.py::"
              "test_a_targeted_adapter_answers_the_decisions_it_was_trained_on_and_nothing_else")),
    Mutation("exam-ignores-adapter-scope", "correction loop", "simulation/correction/exam.py",
             "        if scope is not None and item.decision not in scope:", "        if False:",
             ("tests/correction/test_exam.py", "tests/correction/test_correct_loop_fast.py::"
              "test_a_targeted_adapter_answers_the_decisions_it_was_trained_on_and_nothing_else")),
    Mutation("loop-fork-not-scoped", "correction loop", "simulation/correction/loop.py",
             "*([f\"llm.adapter_actions={json.dumps(sorted(scope))}\"] if scope is not None else []),",
             "", ("tests/correction/test_correct_loop_fast.py::"
                  "test_a_targeted_adapter_answers_the_decisions_it_was_trained_on_and_nothing_else",)),
    Mutation("scoped-loop-anchors-untargeted", "correction loop", "simulation/correction/loop.py",
             'decisions - rated_actions(source) if opts.adapter_scope == "targeted" else frozenset()',
             'frozenset()', ("tests/correction/test_correct_loop_fast.py::"
                             "test_a_targeted_adapter_answers_the_decisions_it_was_trained_on_and_nothing_else",)),
    Mutation("ungraded-drift-ignored", "correction loop", "simulation/correction/exam.py",
             "        if d in targeted and u[\"calls\"] >= min_calls and u[\"base\"] and u[\"adapter\"]:",
             "        if False:", ("tests/correction/test_exam.py::test_the_guard_refuses_harm_and_accepts_a_sharpened_decision",)),
    Mutation("ungraded-drift-on-graded-calls", "correction loop", "simulation/correction/exam.py",
             "                                                    if i.decision == d and r is None], col, w)",
             "                                                    if i.decision == d], col, w)",
             ("tests/correction/test_exam.py::test_the_guard_refuses_harm_and_accepts_a_sharpened_decision",)),
    Mutation("ungraded-anchor-ignored", "correction loop", "simulation/correction/loop.py",
             'if u.decision not in keep or ungraded == "anchor"]', 'if u.decision not in keep]',
             ("tests/correction/test_correct_loop_fast.py::"
              "test_rated_rows_all_keeps_the_checked_decisions_rows_and_drops_their_unsure_calls",)),
    Mutation("default-scope-all", "correction loop", "simulation/correction/loop.py",
             '    adapter_scope: str = "targeted"', '    adapter_scope: str = "all"',
             ("tests/correction/test_correct_loop_fast.py::test_loop_passes_its_options_to_each_step",)),
    Mutation("default-ungraded-leave", "correction loop", "simulation/correction/loop.py",
             'ungraded = opts.ungraded or ("anchor" if opts.method == "sft" and opts.rated_rows == "all" else "leave")',
             'ungraded = opts.ungraded or "leave"',
             ("tests/correction/test_correct_loop_fast.py::test_loop_passes_its_options_to_each_step",)),
    Mutation("drift-ignores-scope", "correction loop", "simulation/correction/exam.py",
             "            if d not in targeted and (answered is None or d in answered) and s[\"base\"] and s[\"adapter\"]}",
             "            if d not in targeted and s[\"base\"] and s[\"adapter\"]}",
             ("tests/correction/test_exam.py::test_the_guard_refuses_harm_and_accepts_a_sharpened_decision",
              "tests/correction/test_correct_loop_fast.py::test_loop_passes_its_options_to_each_step")),
    Mutation("ungraded-ci-not-resampled", "correction loop", "simulation/correction/exam.py",
             "            got = w @ counts", "            got = np.ones_like(w) @ counts",
             ("tests/correction/test_exam.py::test_the_ungraded_drift_interval_resamples_agents",)),
    Mutation("ungraded-ci-never-undecided", "correction loop", "simulation/correction/exam.py",
             "        if lo is not None and lo <= max_drift <= hi:",
             "        if False:",
             ("tests/correction/test_exam.py::test_the_ungraded_drift_interval_resamples_agents",)),
    Mutation("live-collapse-deaf-to-exam", "correction loop", "simulation/correction/measure.py",
             "        if discerning.get(action, {}).get(opt, 0.0) >= JUSTIFIED:", "        if False:",
             ("tests/correction/test_measure.py::test_collapse_rule_edges",)),
    Mutation("live-collapse-ignores-discerns", "correction loop", "simulation/correction/loop.py",
             "if n >= MIN_ANSWERS and ex.discerns(fig, d)}", "if n >= MIN_ANSWERS}",
             ("tests/correction/test_correct_loop_fast.py::"
              "test_the_live_rule_hears_the_exam_on_decisions_answered_by_the_call",)),
    Mutation("discerns-one-option-enough", "correction loop", "simulation/correction/exam.py",
             "    return all(a is not None and a >= justified", "    return any(a is not None and a >= justified",
             ("tests/correction/test_exam.py::test_the_guard_refuses_harm_and_accepts_a_sharpened_decision",)),
    Mutation("balance-counts-anchored-rows", "correction loop", "simulation/correction/datasets.py",
             "        if r[\"meta\"].get(\"anchored\"):\n            held.setdefault(key, []).append(r)\n        else:\n"
             "            by.setdefault", "        if False:\n            held.setdefault(key, []).append(r)\n"
             "        if True:\n            by.setdefault",
             ("tests/correction/test_datasets.py::test_balance_repeats_rare_answers_up_to_a_cap",)),
    Mutation("anchors-never-repeated", "correction loop", "simulation/correction/datasets.py",
             "        out += _repeated(v, min(cap, max(1, round(top / len(v)))))", "        out += v",
             ("tests/correction/test_datasets.py::test_balance_repeats_rare_answers_up_to_a_cap",)),
    Mutation("anchors-repeated-uncapped", "correction loop", "simulation/correction/datasets.py",
             "        out += _repeated(v, min(cap, max(1, round(top / len(v)))))",
             "        out += _repeated(v, max(1, round(top / len(v))))",
             ("tests/correction/test_datasets.py::test_balance_repeats_rare_answers_up_to_a_cap",)),
    Mutation("averaging-never-asked", "llm", "simulation/llm/agent_llm.py",
             "        if action in self.settings.order_averaged and len(shown) > 1:",
             "        if False and action in self.settings.order_averaged and len(shown) > 1:",
             ("tests/llm/test_averaging.py",)),
    Mutation("averaging-shown-order-only", "llm", "simulation/llm/averaging.py",
             "                                  for o in [shown, *orders]))", "                                  for o in [shown]))",
             ("tests/llm/test_averaging.py",)),
    Mutation("averaged-key-unchanged", "llm", "simulation/llm/types.py",
             "            parts.append([\"order_averaged\", self.order_averaged])", "            pass",
             ("tests/llm/test_averaging.py",)),
    Mutation("averaged-draw-follows-shown-order", "llm", "simulation/llm/averaging.py",
             "    for option, p in sorted(probs.items()):", "    for option, p in probs.items():",
             ("tests/llm/test_averaging.py",)),
    Mutation("averaging-not-wired-fake", "llm", "simulation/runtime/clients.py",
             "        if s.order_averaged:\n            fake = ", "        if False:\n            fake = ",
             ("tests/llm/test_averaging.py",)),
    Mutation("averaging-not-wired-servers", "llm", "simulation/runtime/clients.py",
             "    if s.order_averaged:\n        # option scorers", "    if False:\n        # option scorers",
             ("tests/integration/test_real_scoring.py::test_a_run_answers_listed_decisions_from_the_real_models_averaged_probabilities",)),
    Mutation("averaging-without-order-stated", "config", "simulation/config/models.py",
             "        if self.order_averaged and not self.shuffle_options:", "        if False:",
             ("tests/llm/test_averaging.py",)),
    Mutation("untargeted-not-averaged-in-fork", "correction loop", "simulation/correction/loop.py",
             "                       *([f\"llm.order_averaged={json.dumps(sorted(averaged))}\"] if averaged else [])])))",
             "                       ])))",
             ("tests/correction/test_correct_loop_fast.py::test_untargeted_averaged_answers_the_decisions_the_adapter_leaves_from_averaged_probabilities",)),
    Mutation("untargeted-exam-not-drawn", "correction loop", "simulation/correction/loop.py",
             "                    answers[\"adapter\"][k] = drawn_option(p, f\"exam:{seed}:{items[k].call_id}\")",
             "                    pass",
             ("tests/correction/test_correct_loop_fast.py::test_untargeted_averaged_answers_the_decisions_the_adapter_leaves_from_averaged_probabilities",)),
    Mutation("untargeted-averages-memory", "correction loop", "simulation/correction/loop.py",
             " if a not in scope and not a.startswith(\"memory.\"))", " if a not in scope)",
             ("tests/correction/test_correct_loop_fast.py::test_untargeted_averaged_answers_the_decisions_the_adapter_leaves_from_averaged_probabilities",)),
    Mutation("untargeted-averaged-unscoped", "correction loop", "simulation/correction/loop.py",
             "or (opts.untargeted == \"averaged\" and opts.adapter_scope != \"targeted\")):", "or False):",
             ("tests/correction/test_correct_loop_fast.py::test_untargeted_averaged_answers_the_decisions_the_adapter_leaves_from_averaged_probabilities",)),
    Mutation("untargeted-default-decoded", "correction loop", "simulation/correction/loop.py",
             "    untargeted = opts.untargeted or (\"averaged\" if opts.adapter_scope == \"targeted\" and shuffled else \"base\")",
             "    untargeted = opts.untargeted or \"base\"",
             ("tests/correction/test_correct_loop_fast.py::test_untargeted_averaged_answers_the_decisions_the_adapter_leaves_from_averaged_probabilities",)),
    Mutation("untargeted-unshuffled-not-refused", "correction loop", "simulation/correction/loop.py",
             "    if untargeted == \"averaged\" and not shuffled:", "    if False:",
             ("tests/correction/test_correct_loop_fast.py::test_untargeted_averaged_answers_the_decisions_the_adapter_leaves_from_averaged_probabilities",)),
    Mutation("untargeted-no-probabilities-kept-averaged", "correction loop", "simulation/correction/loop.py",
             "            untargeted, averaged = \"base\", frozenset()", "            pass",
             ("tests/correction/test_correct_loop_fast.py::test_untargeted_averaging_needs_option_probabilities",)),
    Mutation("untargeted-probabilities-not-probed", "correction loop", "simulation/correction/loop.py",
             "bool(anchors and anchors.targets) or _gives_probs(base, averaged, seed, opts.progress)",
             "bool(anchors and anchors.targets)",
             ("tests/correction/test_correct_loop_fast.py::test_untargeted_averaged_answers_the_decisions_the_adapter_leaves_from_averaged_probabilities",)),
    Mutation("experiment-cells-unchecked", "experiments", "simulation/experiments/run.py",
             "    _check_design(design, out, emit)\n    check_cells(design)\n    out.mkdir(parents=True, exist_ok=True)\n"
             "    _write_record(out, design)",
             "    _check_design(design, out, emit)\n    out.mkdir(parents=True, exist_ok=True)\n    _write_record(out, design)",
             ("tests/experiments/test_experiment.py::test_a_misspelt_key_is_one_error_and_failed_runs_fail_the_command",)),
]


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return [f for f in out.splitlines() if (ROOT / f).is_file()]


def make_copy(dst: Path, files: list[str], src: Path = ROOT) -> None:
    for f in files:
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / f, dst / f)


def mutated(m: Mutation, text: str) -> str:
    """``text`` (the file's) with the mutation applied; a one-line error when its text does not occur
    exactly once, or when the result no longer parses (its text matched inside a longer line, say after
    the code was re-indented): a test failing on a syntax error says nothing about the feature."""
    n = text.count(m.old)
    if n != 1:
        raise SystemExit(f"error: mutation {m.name}: {m.file} holds its text {n} times (need exactly 1): "
                         "update bench/mutations.py")
    out = text.replace(m.old, m.new)
    if m.file.endswith(".py"):
        try:
            ast.parse(out)
        except SyntaxError as e:
            raise SystemExit(f"error: mutation {m.name}: {m.file} no longer parses once mutated (line {e.lineno}: "
                             f"{e.msg}): update bench/mutations.py") from None
    return out


def apply(copy: Path, m: Mutation) -> None:
    path = copy / m.file
    path.write_text(mutated(m, path.read_text()))


def run_tests(copy: Path, tests: tuple[str, ...], timeout_s: int) -> tuple[int, float, str]:
    """pytest's exit code on the copy (its own package first on the path), seconds, and its last line."""
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1",
               GENSIM_VENV=os.environ.get("GENSIM_VENV", sys.prefix))
    t0 = time.monotonic()
    try:
        p = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                           cwd=copy, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return 124, time.monotonic() - t0, f"timed out after {timeout_s}s"
    lines = [ln for ln in p.stdout.strip().splitlines() if ln.strip()]
    if p.returncode not in (0, 1) or os.environ.get("MUTATIONS_VERBOSE"):
        print(p.stdout[-3000:], p.stderr[-2000:], sep="\n", file=sys.stderr)
    return p.returncode, time.monotonic() - t0, lines[-1] if lines else p.stderr.strip()[-200:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run these mutations only")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--check", action="store_true", help="check that every mutation applies to the checkout "
                    "(its text once, the result parses) and exit, running no test")
    ap.add_argument("--no-baseline", action="store_true", help="skip the check that the tests pass unmutated")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per mutation")
    a = ap.parse_args()
    chosen = [m for m in MUTATIONS if not a.only or m.name in a.only]
    unknown = set(a.only or ()) - {m.name for m in MUTATIONS}
    if unknown:
        print(f"error: --only: no mutation named {', '.join(sorted(unknown))} (see --list)", file=sys.stderr)
        return 2
    if a.list:
        for m in MUTATIONS:
            print(f"{m.name:<40} {m.feature:<40} {m.file}")
        return 0
    if a.check:
        for m in chosen:
            mutated(m, (ROOT / m.file).read_text())
        print(f"{len(chosen)} mutations apply")
        return 0
    files = tracked_files()
    with tempfile.TemporaryDirectory(prefix="gensim-mut-") as tmp:
        snapshot = Path(tmp) / "snapshot"  # the tree as it is now: editing the checkout meanwhile is safe
        make_copy(snapshot, files)
        if not a.no_baseline:
            base = Path(tmp) / "baseline"
            make_copy(base, files, snapshot)
            tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
            code, secs, last = run_tests(base, tests, a.timeout * 2)
            print(f"baseline ({len(tests)} test targets, unmutated): exit {code} in {secs:.0f}s: {last}", flush=True)
            if code != 0:
                print("error: the tests fail without any mutation; fix them first "
                      "(MUTATIONS_VERBOSE=1 shows pytest's output)", file=sys.stderr)
                return 1
            shutil.rmtree(base)
        caught, survivors, broken = 0, [], []
        for m in chosen:
            copy = Path(tmp) / m.name
            make_copy(copy, files, snapshot)
            apply(copy, m)
            code, secs, last = run_tests(copy, m.tests, a.timeout)
            verdict = "caught" if code == 1 else "SURVIVED" if code == 0 else f"error (exit {code})"
            print(f"{verdict:<10} {m.name:<40} {m.feature:<38} {secs:5.0f}s  {last[:90]}", flush=True)
            if code == 1:
                caught += 1
            elif code == 0:
                survivors.append(m.name)
            else:
                broken.append(m.name)
            shutil.rmtree(copy)
    print(f"\ncaught {caught}/{len(chosen)}")
    if survivors:
        print("survivors: " + ", ".join(survivors))
    if broken:
        print("could not be judged (pytest did not run to a verdict): " + ", ".join(broken))
    return 0 if caught == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
