"""Break a feature on purpose and check that the tests notice: a mutation benchmark.

Each mutation is a small patch (one exact piece of text replaced in one file) applied to a
temporary copy of the checkout; the tests that should catch it are run on that copy, and the
mutation counts as caught when they fail. Not part of CI (it runs the slow end-to-end tests many
times); run it before you stop when you touch replay, resume, recovery, routing or config errors.

    python bench/mutations.py                 # every mutation; prints caught/total and the survivors
    python bench/mutations.py --list          # names only
    python bench/mutations.py --only resume-skips-truncate routing-ignores-load
"""

from __future__ import annotations

import argparse
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
             "ResponseCache(src.response_cache())", "ResponseCache({})",
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
             "s.routing.model_for(self.agent.id, self.agent.agent_type))", "None)",
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
             "        if call.agent_id in exclude_agents:\n            continue\n", "",
             ("tests/correction/test_correct_loop.py",
              "tests/correction/test_ratings_and_datasets.py::test_sft_corrections_anchors_and_balance")),
    Mutation("correction-kept-beside-original", "datasets", "simulation/correction/datasets.py",
             "call.completion if call.valid and call_id not in low and score is not None else None)",
             "call.completion if call.valid and score is not None else None)",
             ("tests/correction/test_ratings_and_datasets.py::test_sft_corrections_anchors_and_balance",)),
    Mutation("collapse-never-refused", "correction loop", "simulation/correction/measure.py",
             "        if share > SKEW and before.top(action)[1] <= SKEW:", "        if False:",
             ("tests/correction/test_measure.py",)),
    Mutation("merged-servers-outlive-the-run", "deploy (real vLLM)", "simulation/services/deploy.py",
             "        self.owned = owned  #", "        self.owned = dict(owned)  #",
             ("tests/integration/test_real_adapters.py",)),
    Mutation("single-lora-slot", "deploy (real vLLM)", "simulation/services/deploy.py",
             "str(max(2, max_loras))", "\"1\"",
             ("tests/integration/test_real_adapters.py",)),
]


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return [f for f in out.splitlines() if (ROOT / f).is_file()]


def make_copy(dst: Path, files: list[str], src: Path = ROOT) -> None:
    for f in files:
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / f, dst / f)


def apply(copy: Path, m: Mutation) -> None:
    path = copy / m.file
    text = path.read_text()
    n = text.count(m.old)
    if n != 1:
        raise SystemExit(f"error: mutation {m.name}: {m.file} holds its text {n} times (need exactly 1): "
                         "update bench/mutations.py")
    path.write_text(text.replace(m.old, m.new))


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
