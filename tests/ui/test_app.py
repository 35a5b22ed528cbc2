"""The page as built, without a browser: what its components start with."""

from __future__ import annotations

from dataclasses import replace

import gradio as gr
import pytest

from simulation.control import LiveStatus
from simulation.ui.actions import UIContext
from simulation.ui.app import build_app, phase_line


def test_folder_pickers_start_empty_so_picking_the_only_folder_shows_it(tmp_path):
    """Gradio preselects a dropdown's first choice unless told otherwise; a loop or experiment folder that
    existed when the page was built was then already "picked", and picking it fired no change, so its
    table never filled (the screenshot bench waited on it for minutes)."""
    runs = tmp_path / "runs"
    (runs / "loop").mkdir(parents=True)
    (runs / "loop" / "correction.json").write_text("{}")
    (runs / "exp").mkdir()
    (runs / "exp" / "experiment.json").write_text("{}")
    (runs / "exp" / "summary.csv").write_text("")
    app = build_app(UIContext(runs))
    pickers = {c["props"]["elem_id"]: c["props"] for c in app.config["components"]
               if c.get("type") == "dropdown" and c["props"].get("elem_id") in ("loop-pick", "exp-pick")}
    assert [v for _, v in pickers["loop-pick"]["choices"]] == ["loop"]
    assert [v for _, v in pickers["exp-pick"]["choices"]] == ["exp"]
    assert pickers["loop-pick"].get("value") is None and pickers["exp-pick"].get("value") is None


def test_the_monitor_shows_the_phase_in_progress_with_its_steps():
    st = LiveStatus("running", phase="screen", phase_no=2, round_started=100.0, steps=(120, 300))
    assert phase_line(st, 135.4) == "in progress: phase 2 (screen) of the next round: 120 of 300 steps (40%), 35s into the round"
    assert phase_line(replace(st, steps=(0, 0)), 135.4) == "in progress: phase 2 (screen) of the next round: 35s into the round"


def _handler(app, api_name: str):
    return next(f.fn for f in app.fns.values() if f.api_name == api_name)


def test_training_refuses_epochs_not_above_zero_before_starting(tmp_path, monkeypatch):
    """The Models tab's epochs field: 0, a negative number or a blank is refused with its one-line reason,
    and no training starts (a blank used to reach the trainer as None)."""
    started = []
    monkeypatch.setattr(UIContext, "train", lambda self, *a, **k: started.append(a))
    app = build_app(UIContext(tmp_path / "runs"))
    train = _handler(app, "train")
    for bad in (0, -1.0, None):
        with pytest.raises(gr.Error, match=f"Epochs must be a number above 0, got {bad}"):
            train("data.jsonl", "a1", "sft", bad, None, None)
    assert started == []
    assert "training" in train("data.jsonl", "a1", "sft", 0.5, None, None)
    assert started == [("data.jsonl", "a1", 0.5, None, None, "sft", "tokens")]
