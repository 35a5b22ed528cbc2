"""Malformed configs: each gives one line per problem naming file and field, exit 2, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from simulation.cli import main
from tests.conftest import copy_scenario


def _edit_yaml(folder: Path, fn) -> None:
    p = folder / "configs" / "simulation_config.yml"
    data = yaml.safe_load(p.read_text())
    fn(data)
    p.write_text(yaml.safe_dump(data))


def _write(folder: Path, name: str, text: str) -> None:
    (folder / "configs" / name).write_text(text)


CASES = {
    "rounds_zero": (lambda f: _edit_yaml(f, lambda d: d.update(rounds=0)), "simulation_config.yml", "rounds"),
    "rounds_text": (lambda f: _edit_yaml(f, lambda d: d.update(rounds="many")), "simulation_config.yml", "rounds"),
    "unknown_top_field": (lambda f: _edit_yaml(f, lambda d: d.update(roundz=3)), "simulation_config.yml", "roundz"),
    "runtime_bad": (lambda f: _edit_yaml(f, lambda d: d.update(runtime="mpi")), "simulation_config.yml", "runtime"),
    "negative_count": (lambda f: _edit_yaml(f, lambda d: d["agents"]["seeker"].update(count=-1)),
                       "simulation_config.yml", "agents.seeker.count"),
    "unknown_agent_type": (lambda f: _edit_yaml(f, lambda d: d["agents"].update(robot={"count": 1})),
                           "simulation_config.yml", "agents.robot"),
    "activation_prob": (lambda f: _edit_yaml(f, lambda d: d.update(activation={"mode": "probability", "probability": 1.5})),
                        "simulation_config.yml", "activation.probability"),
    "temperature": (lambda f: _edit_yaml(f, lambda d: d["llm"].update(temperature=-1)), "simulation_config.yml",
                    "llm.temperature"),
    "scenario_param": (lambda f: _edit_yaml(f, lambda d: d["scenario"].update(search_k=0)), "simulation_config.yml",
                       "scenario.search_k"),
    "scenario_unknown_param": (lambda f: _edit_yaml(f, lambda d: d["scenario"].update(colour="red")),
                               "simulation_config.yml", "scenario.colour"),
    "missing_profiles_file": (lambda f: _edit_yaml(f, lambda d: d["agents"]["seeker"].update(profiles="nope.json")),
                              "simulation_config.yml", "agents.seeker.profiles"),
    "kv_cache_text": (lambda f: _edit_yaml(f, lambda d: d.update(embedded={"kv_cache_gib": "lots"})),
                      "simulation_config.yml", "embedded.kv_cache_gib"),
    "name_escapes_out_dir": (lambda f: _edit_yaml(f, lambda d: d.update(name="../../escaped")),
                             "simulation_config.yml", "name"),
    "name_absolute": (lambda f: _edit_yaml(f, lambda d: d.update(name="/tmp/elsewhere")), "simulation_config.yml",
                      "name"),
    "yaml_syntax": (lambda f: _write(f, "simulation_config.yml", "name: [unclosed\n"), "simulation_config.yml", "line"),
    "memory_type": (lambda f: _write(f, "memory_config.json", json.dumps({"type": "photographic"})),
                    "memory_config.json", "type"),
    "memory_budget": (lambda f: _write(f, "memory_config.json", json.dumps({"token_budget": 0})),
                      "memory_config.json", "token_budget"),
    "memory_json_syntax": (lambda f: _write(f, "memory_config.json", "{type: none"), "memory_config.json", "line 1"),
    "memory_missing_file": (lambda f: (f / "configs" / "memory_config.json").unlink(), "memory_config.json", "<root>"),
    "model_not_list": (lambda f: _write(f, "model_configs.json", json.dumps({"config_name": "x"})),
                       "model_configs.json", "<root>"),
    "model_bad_url": (lambda f: _write(f, "model_configs.json", json.dumps(
        [{"config_name": "a", "model_name": "m", "client_args": {"base_url": "localhost:8000"}}])),
        "model_configs.json", "[0].client_args"),
    "model_missing_name": (lambda f: _write(f, "model_configs.json", json.dumps(
        [{"config_name": "a", "client_args": {"base_url": "http://127.0.0.1:1/v1"}}])),
        "model_configs.json", "[0].model_name"),
    "model_bad_type": (lambda f: _write(f, "model_configs.json", json.dumps(
        [{"config_name": "a", "model_type": "dalle", "model_name": "m", "client_args": {"base_url": "http://h/v1"}}])),
        "model_configs.json", "[0].model_type"),
    "model_duplicate": (lambda f: _write(f, "model_configs.json", json.dumps(
        [{"config_name": "a", "model_name": "m", "client_args": {"base_url": "http://h/v1"}}] * 2)),
        "model_configs.json", "config_name"),
    "no_agents": (lambda f: _edit_yaml(f, lambda d: [a.update(count=0) for a in d["agents"].values()]),
                  "simulation_config.yml", "agents: total agent count is 0"),
    "profile_bad_entry": (lambda f: (_write(f, "bad_seekers.json", json.dumps([{"class": "SeekerAgent", "args": {"name": ""}}])),
                                     _edit_yaml(f, lambda d: d["agents"]["seeker"].update(profiles="bad_seekers.json"))),
                          "bad_seekers.json", "[0]"),
    "empty_simulation_config": (lambda f: _write(f, "simulation_config.yml", ""), "simulation_config.yml",
                                "empty file"),
    "simulation_config_a_list": (lambda f: _write(f, "simulation_config.yml", "- name: x\n"),
                                 "simulation_config.yml", "mapping"),
    "id_digits_zero": (lambda f: _edit_yaml(f, lambda d: d.update(id_digits=0)), "simulation_config.yml", "id_digits"),
    "llm_backend_unknown": (lambda f: _edit_yaml(f, lambda d: d["llm"].update(backend="oracle")),
                            "simulation_config.yml", "llm.backend"),
    "profile_age_in_words": (lambda f: (_write(f, "words.json", json.dumps([{"class": "SeekerAgent", "args": {
        "name": "Ann", "cv": {"Education": "BA"}, "trait": {"Age": "thirty"}}}])),
        _edit_yaml(f, lambda d: d["agents"]["seeker"].update(profiles="words.json"))), "words.json", "[0].trait.Age"),
    "template_syntax": (lambda f: (f / "prompts" / "search.j2").write_text("{% if memory %}unclosed"),
                        "search.j2", "line 1"),
    "template_missing": (lambda f: (f / "prompts" / "screen.j2").unlink(), "agents.py", "render('screen.j2')"),
    "template_undefined_variable": (lambda f: (f / "prompts" / "job_count.j2").write_text("Pick 1 to {{ kk }}."),
                                    "job_count.j2", "kk: undefined variable"),
    "phase_method_not_async": (lambda f: (f / "agents.py").write_text((f / "agents.py").read_text().replace(
        "    async def screen(self, ctx: StepContext[JobBoard]) -> None:\n",
        "    def screen(self, ctx: StepContext[JobBoard]) -> None:\n        return None\n\n"
        "    async def _screen(self, ctx: StepContext[JobBoard]) -> None:\n")), "environment.py", "must be 'async def'"),
    "yaml_duplicate_key": (lambda f: (f / "configs" / "simulation_config.yml").write_text(
        (f / "configs" / "simulation_config.yml").read_text() + "rounds: 9\n"), "simulation_config.yml",
        "duplicate key 'rounds'"),
    "yaml_duplicate_nested_key": (lambda f: (f / "configs" / "simulation_config.yml").write_text(
        (f / "configs" / "simulation_config.yml").read_text().replace("llm:\n", "llm:\n  temperature: 0.5\n")),
        "simulation_config.yml", "duplicate key 'temperature'"),
    "json_duplicate_key": (lambda f: _write(f, "memory_config.json", '{"type": "none", "type": "short"}'),
                           "memory_config.json", "duplicate key 'type'"),
    "template_empty": (lambda f: (f / "prompts" / "screen.j2").write_text("  \n"), "screen.j2", "empty template"),
    "template_unknown_filter": (lambda f: (f / "prompts" / "screen.j2").write_text("{{ profile | shout }}"),
                                "screen.j2", "No filter named 'shout'"),
    "llm_model_typo": (lambda f: _edit_yaml(f, lambda d: d["llm"].update(model="smollm2-135m-instruc")),
                       "simulation_config.yml", "llm.model: 'smollm2-135m-instruc' is not a configured chat model"),
    "llm_model_typo_configured": (lambda f: (_write(f, "model_configs.json", json.dumps(
        [{"config_name": "a", "model_name": "m", "client_args": {"base_url": "http://h/v1"}}])),
        _edit_yaml(f, lambda d: d["llm"].update(model="mm"))), "simulation_config.yml", "served: a, m"),
    "llm_model_by_type_unknown_type": (lambda f: _edit_yaml(f, lambda d: d["llm"].update(
        model_by_type={"robot": "smollm2-135m-instruct"})), "simulation_config.yml", "llm.model_by_type.robot"),
    "llm_model_by_type_unknown_model": (lambda f: _edit_yaml(f, lambda d: d["llm"].update(
        model_by_type={"seeker": "gpt-9"})), "simulation_config.yml", "llm.model_by_type.seeker: 'gpt-9'"),
    "llm_adapter_types_unknown": (lambda f: _edit_yaml(f, lambda d: d["llm"].update(adapter_types=["seekr"])),
                                  "simulation_config.yml", "llm.adapter_types: no agent type 'seekr'"),
    "scenario_code_syntax_error": (lambda f: (f / "agents.py").write_text((f / "agents.py").read_text().replace(
        "async def screen(", "def screen(")), "agents.py", "line"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_config_is_one_line_per_problem(tmp_path, capsys, case):
    mutate, file_part, field_part = CASES[case]
    folder = copy_scenario(tmp_path)
    mutate(folder)
    code = main(["check", str(folder)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err, "no error printed"
    assert all(line.startswith("error: ") for line in err)
    assert any(file_part in line and field_part in line for line in err), err


def test_every_problem_in_every_file_is_reported(tmp_path, capsys):
    """Problems in the simulation config, the memory config, the model list and a profile file: all
    of them, one line each, in one go."""
    folder = copy_scenario(tmp_path)
    _edit_yaml(folder, lambda d: (d.update(rounds=0, roundz=3), d["llm"].update(temperature=-1),
                                  d["agents"]["seeker"].update(profiles="nope.json")))
    _write(folder, "memory_config.json", json.dumps({"type": "photographic", "token_budget": 0}))
    _write(folder, "model_configs.json", json.dumps([{"config_name": "a", "client_args": {"base_url": "x"}}]))
    assert main(["check", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    expected = [("simulation_config.yml", "rounds:"), ("simulation_config.yml", "roundz:"),
                ("simulation_config.yml", "llm.temperature:"), ("simulation_config.yml", "agents.seeker.profiles:"),
                ("memory_config.json", "type:"),
                ("memory_config.json", "token_budget:"), ("model_configs.json", "[0].model_name:"),
                ("model_configs.json", "[0].client_args:")]
    for file_part, field_part in expected:
        assert any(file_part in line and field_part in line for line in err), (file_part, field_part, err)
    assert len(err) == len(expected) and all(line.startswith("error: ") for line in err)


def test_bad_override_names_field(capsys):
    assert main(["check", "job_seeking", "rounds=-3"]) == 2
    err = capsys.readouterr().err
    assert "simulation_config.yml: rounds:" in err


def test_unknown_scenario(capsys):
    assert main(["check", "no_such_scenario"]) == 2
    assert "no_such_scenario: scenario:" in capsys.readouterr().err


def test_cli_subprocess_has_no_traceback(tmp_path):
    folder = copy_scenario(tmp_path)
    (folder / "configs" / "memory_config.json").write_text('{"type": "photographic"}')
    p = subprocess.run([sys.executable, "-m", "simulation.cli", "check", str(folder)], capture_output=True, text=True)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert p.stderr.strip().count("\n") == 0 and "memory_config.json: type:" in p.stderr


def test_shipped_scenario_checks_clean(capsys):
    assert main(["check", "job_seeking"]) == 0
    assert "ok: job_seeking" in capsys.readouterr().out


def test_named_models_and_types_that_exist_pass(tmp_path, capsys):
    folder = copy_scenario(tmp_path)
    _edit_yaml(folder, lambda d: d["llm"].update(model="smollm2-135m-instruct", adapter_types=["seeker"],
                                                 model_by_type={"interviewer": "embedded-chat-0"}))
    assert main(["check", str(folder), "--no-dry-run"]) == 0, capsys.readouterr().err


def test_scenario_settings_win_over_llm_max_tokens(tmp_path):
    """Job seeking's interview answers are sized by scenario.dialogue_max_tokens (the README's example sets
    it); llm.max_tokens sizes calls that set nothing. The fake model answers from the messages alone, so
    two runs take the same path and their call keys differ only by the length asked."""
    import sqlite3

    def keys(name: str, *overrides: str) -> dict:
        run = tmp_path / name
        assert main(["run", "job_seeking", "--llm", "fake", "--agents", "12", "--rounds", "1", "--out", str(run),
                     "--no-progress", *overrides]) == 0
        with sqlite3.connect(run / "run.sqlite") as db:
            return {(a, r, act, q): k for a, r, act, q, k in db.execute(
                "SELECT agent_id, round, action, seq, key FROM llm_calls WHERE choices IS NULL AND json_schema IS NULL")}

    base = keys("base")
    assert base, "job seeking makes free-text calls"
    assert keys("llm", "llm.max_tokens=7") == base
    other = keys("scenario", "scenario.dialogue_max_tokens=32")
    assert other.keys() == base.keys() and all(other[k] != base[k] for k in base)
