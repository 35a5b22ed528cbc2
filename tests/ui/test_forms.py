"""The Configure tab's typed form: each setting's kind and choices come from the config models."""

from __future__ import annotations

import tempfile

from simulation.ui.actions import UIContext
from simulation.ui.forms import SettingField, form_value


def test_fields_are_typed_from_the_config_models():
    ctx = UIContext(tempfile.mkdtemp())
    fields = {f.key: f for f in ctx.setting_fields("job_seeking")}
    table = ctx.settings("job_seeking")
    assert list(fields) == list(table["setting"]), "one field per settings row, none twice"
    assert len(set(table["setting"])) == len(table)
    assert (fields["rounds"].kind, fields["seed"].kind, fields["agents.seeker.count"].kind) == ("int", "int", "int")
    assert fields["llm.backend"].kind == "choice" and set(fields["llm.backend"].choices) == {"servers", "fake"}
    assert fields["runtime"].choices == ("local", "ray") and fields["runtime"].section == "Runtime and run"
    assert fields["llm.shuffle_options"].kind == "bool" and fields["llm.temperature"].kind == "float"
    assert fields["memory.type"].kind == "choice" and "none" in fields["memory.type"].choices
    assert fields["memory.reflection.threshold"].kind == "float" and fields["memory.type"].section == "Memory"
    search = fields["scenario.search_k"]
    assert search.kind == "int" and search.help and search.section == "Scenario parameters"
    assert fields["agents.seeker.profiles"].kind == "text" and fields["llm.model_by_type"].kind == "text"
    assert fields["rounds"].elem_id == "set-rounds" and fields["llm.shuffle_options"].elem_id == "set-llm-shuffle-options"


def test_widget_values_are_written_as_the_table_holds_them():
    def f(kind):
        return SettingField("k", kind, "")

    assert form_value(f("bool"), True) == "true" and form_value(f("bool"), False) == "false"
    assert form_value(f("int"), 3.0) == "3" and form_value(f("float"), 0.5) == "0.5"
    assert form_value(f("text"), None) == "" and form_value(f("choice"), "ray") == "ray"
