"""``gensim correct --resume``: a loop stopped anywhere goes on from where it stopped. The fake model
answers in process; training is the stand-in of :mod:`tests.runs` (the real training runs in
``test_correct_loop.py``). What is checked: nothing finished is done again (no second training, no
second run of a fork or base run, no second exam of a measured iteration), what had not finished is,
the figures equal those of a loop never stopped, and a loop whose dataset would now differ from the
one its adapter was trained on is refused rather than kept."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

import simulation.correction.loop as loop
from simulation.config import ConfigError
from simulation.correction.loop import LOOP_FILE, CorrectOptions, correct, resume_options
from simulation.runner import Interrupted
from simulation.training.manifest import MANIFEST
from tests.conftest import copy_scenario
from tests.runs import gensim, rows, stand_in_training


def options(out: Path, scenario: str = "job_seeking", **kw) -> CorrectOptions:
    return CorrectOptions(scenario, **{"iterations": 2, "agents": 24, "holdout": 0.3, "control": 0.3,
                                            "out": str(out), "lr": 0.002, "max_samples": 50, "progress": False,
                                            "overrides": ["llm.backend=fake"], "max_drift": 1.0, **kw})


@pytest.fixture()
def trainings(monkeypatch) -> list[str]:
    """The data file of each training the loop starts (the stand-in writes the adapter)."""
    got: list[str] = []

    def train(method, data, out, **kw):
        got.append(Path(data).name)
        return stand_in_training(method, data, out, **kw)

    monkeypatch.setattr(loop, "train", train)
    return got


def stop_on(monkeypatch, name: str, nth: int) -> list[int]:
    """Ctrl-C in the ``nth`` call of ``loop.<name>``; the others pass through. Returns the call count."""
    real, calls = getattr(loop, name), [0]

    def stopped(*a, **kw):
        calls[0] += 1
        if calls[0] == nth:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(loop, name, stopped)
    return calls


def figures(out: Path) -> list[dict]:
    """What a loop measured, without the folders' names."""
    report = json.loads((out / "correction.json").read_text())
    keep = ("holdout_fail", "control_fail", "worst_first_share", "adopted", "reasons", "exam", "max_untrained_drift")
    return [{k: it[k] for k in keep} for it in report["iterations"]]


@pytest.fixture(scope="module")
def never_stopped(tmp_path_factory) -> list[dict]:
    """The figures of the same loop run through without a stop."""
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(loop, "train", stand_in_training)
        out = tmp_path_factory.mktemp("whole") / "loop"
        correct(options(out), emit=lambda line: None)
    finally:
        mp.undo()
    return figures(out)


def test_a_loop_stopped_in_its_exam_goes_on_without_training_or_forking_again(tmp_path, trainings, monkeypatch,
                                                                           never_stopped):
    exams = stop_on(monkeypatch, "_sit_exam", 1)
    out = tmp_path / "loop"
    # a scenario folder, not a bundled name: its resumed runs are told it again (a run folder's word is not taken)
    scenario = str(copy_scenario(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        correct(options(out, scenario), emit=lambda line: None)
    assert trainings == ["data-1.jsonl"] and (out / "adapter-1" / MANIFEST).is_file()
    assert not (out / "correction.json").exists(), "stopped before the first iteration was measured"
    fork_calls = rows(out / "iter-1", "SELECT COUNT(*), MAX(id) FROM llm_calls")
    base_calls = rows(out / "base", "SELECT COUNT(*), MAX(id) FROM llm_calls")
    data = (out / "data-1.jsonl").read_bytes()

    lines: list[str] = []
    res = correct(resume_options(out, progress=False), emit=lines.append, resume=True)
    assert trainings == ["data-1.jsonl", "data-2.jsonl"], "adapter-1 kept; the second iteration trained"
    assert exams[0] == 3, "iteration 1's exam sat again (it keeps nothing until it ends), then iteration 2's"
    assert rows(out / "iter-1", "SELECT COUNT(*), MAX(id) FROM llm_calls") == fork_calls, "the fork was not run again"
    assert rows(out / "base", "SELECT COUNT(*), MAX(id) FROM llm_calls") == base_calls
    assert (out / "data-1.jsonl").read_bytes() == data and not list(out.glob(".data-*"))
    assert any(line.startswith("iteration 1:") and "adapter-1 trained on them before the loop stopped: kept" in line
               for line in lines), lines
    assert any(line.startswith("iteration 1: fork") and "resumed" in line for line in lines), lines
    assert len(res["iterations"]) == 2
    assert figures(out) == never_stopped


def test_a_loop_stopped_in_its_base_run_resumes_it(tmp_path, trainings, monkeypatch, never_stopped):
    real = loop.run_simulation

    def base_stopped_in_round_2(opts):
        if not opts.resume and not opts.fork:
            def ctrl_c(sim, r):
                if r == 2:
                    raise KeyboardInterrupt
            opts.hooks = {"before_round": [ctrl_c]}
        return real(opts)

    monkeypatch.setattr(loop, "run_simulation", base_stopped_in_round_2)
    out = tmp_path / "loop"
    with pytest.raises(Interrupted):
        correct(options(out, str(copy_scenario(tmp_path))), emit=lambda line: None)
    assert rows(out / "base", "SELECT MAX(round) FROM actions") == [(1,)] and not trainings
    round_1 = rows(out / "base", "SELECT id, agent_id, action FROM actions WHERE round = 1")
    monkeypatch.setattr(loop, "run_simulation", real)
    lines: list[str] = []
    correct(resume_options(out, progress=False), emit=lines.append, resume=True)
    assert lines[0] == f"correct: base run {out / 'base'}: resumed (nothing to do if it finished)"
    assert rows(out / "base", "SELECT MAX(round) FROM actions") == [(3,)]
    assert rows(out / "base", "SELECT id, agent_id, action FROM actions WHERE round = 1") == round_1
    assert trainings == ["data-1.jsonl", "data-2.jsonl"]
    assert figures(out) == never_stopped


def test_a_measured_iteration_is_kept_as_it_was(tmp_path, trainings, monkeypatch, never_stopped):
    stop_on(monkeypatch, "train", 2)  # Ctrl-C in the second iteration's training
    out = tmp_path / "loop"
    with pytest.raises(KeyboardInterrupt):
        correct(options(out), emit=lambda line: None)
    first = json.loads((out / "correction.json").read_text())
    assert len(first["iterations"]) == 1
    exams = stop_on(monkeypatch, "_sit_exam", 0)  # counts, stops none
    lines: list[str] = []
    correct(resume_options(out, progress=False), emit=lines.append, resume=True)
    assert exams[0] == 1, "only the second iteration sat the exam"
    assert trainings == ["data-1.jsonl", "data-2.jsonl"]
    again = json.loads((out / "correction.json").read_text())
    assert again["iterations"][0] == first["iterations"][0] and again["details"][0] == first["details"][0]
    assert any(line.startswith("iteration 1: measured before the loop stopped") for line in lines), lines
    assert figures(out) == never_stopped
    # nothing left: a resume of a finished loop trains, runs and examines nothing, and reports the same
    trainings.clear()
    assert correct(resume_options(out, progress=False), emit=lambda line: None, resume=True)["iterations"] == \
        again["iterations"]
    assert exams[0] == 1 and not trainings


def test_an_adapter_trained_on_other_rows_is_not_kept(tmp_path, trainings, monkeypatch):
    stop_on(monkeypatch, "_sit_exam", 1)
    out = tmp_path / "loop"
    with pytest.raises(KeyboardInterrupt):
        correct(options(out, iterations=1), emit=lambda line: None)
    manifest = out / "adapter-1" / MANIFEST
    m = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**m, "data_sha256": "f" * 64}))  # as if the rows had been others
    data = (out / "data-1.jsonl").read_bytes()
    with pytest.raises(ConfigError) as e:
        correct(resume_options(out, progress=False), emit=lambda line: None, resume=True)
    assert str(e.value.problems[0]).startswith(f"{out / 'data-1.jsonl'}: --resume: written again, the dataset "
                                               "differs from the one")
    assert (out / "data-1.jsonl").read_bytes() == data and not list(out.glob(".data-*"))
    assert trainings == ["data-1.jsonl"]


def test_the_loop_records_its_options_and_a_new_loop_keeps_off_its_folder(tmp_path, trainings):
    out = tmp_path / "loop"
    given = options(out, iterations=1, no_train=("respond_offers",), save_every=None, train_seed=5)
    correct(given, emit=lambda line: None)
    assert resume_options(out, progress=False) == given
    assert resume_options(out).progress is True, "progress is the resuming command's"
    moved = tmp_path / "moved"
    out.rename(moved)
    assert resume_options(moved).out == str(moved)
    with pytest.raises(ConfigError) as e:
        correct(options(moved, iterations=1), emit=lambda line: None)
    assert str(e.value.problems[0]) == (f"{moved}: --out: holds a correction loop already: gensim correct --resume "
                                        f"{moved} goes on with it; or give another folder")


def test_resume_options_name_what_is_wrong(tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        resume_options(tmp_path / "none")
    with pytest.raises(ConfigError, match=f"no {LOOP_FILE}: not a loop folder of gensim correct"):
        resume_options(tmp_path)
    (tmp_path / LOOP_FILE).write_text("{")
    with pytest.raises(ConfigError, match="unreadable"):
        resume_options(tmp_path)
    (tmp_path / LOOP_FILE).write_text(json.dumps({"options": {"scenario": "job_seeking", "speed": 3}}))
    with pytest.raises(ConfigError, match="unknown: speed"):
        resume_options(tmp_path)
    # an option the file lacks is refused by name, not filled with today's default
    recorded = {k: v for k, v in asdict(CorrectOptions("job_seeking")).items() if k not in ("progress", "max_drift")}
    (tmp_path / LOOP_FILE).write_text(json.dumps({"options": recorded}))
    with pytest.raises(ConfigError) as e:
        resume_options(tmp_path)
    assert str(e.value.problems[0]) == (f"{tmp_path / LOOP_FILE}: options: not this version's loop options "
                                        "(unknown: none; missing: max_drift)")
    (tmp_path / LOOP_FILE).write_text(json.dumps({"options": {**recorded, "max_drift": 0.2}}))
    assert resume_options(tmp_path).max_drift == 0.2
    with pytest.raises(ConfigError, match="--resume: no loop.json"):
        correct(CorrectOptions("job_seeking", out=str(tmp_path / "x")), resume=True)


def test_the_command_takes_the_recorded_options_alone(tmp_path, capsys):
    out = tmp_path / "loop"
    assert gensim("correct", "--resume", str(out), "--lr", "0.1", "job_seeking") == 2
    assert capsys.readouterr().err.strip() == (f"error: --resume: goes on with the options {out}/loop.json records; "
                                               "leave out scenario, --lr")
    assert gensim("correct") == 2
    assert "give a scenario (or --resume DIR" in capsys.readouterr().err
    assert gensim("correct", "--resume", str(out)) == 2
    assert capsys.readouterr().err.strip() == f"error: {out}: --resume: no such folder"


def test_a_stopped_command_names_the_resume_and_the_resume_finishes_it(tmp_path, trainings, monkeypatch, capsys,
                                                                      never_stopped):
    stop_on(monkeypatch, "_sit_exam", 1)
    out = tmp_path / "loop"
    args = ["job_seeking", "--iterations", "2", "--agents", "24", "--holdout", "0.3", "--control", "0.3", "--lr", "0.002",
            "--max-samples", "50", "--max-drift", "1", "--out", str(out), "--no-progress", "llm.backend=fake"]
    assert gensim("correct", *args) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"correct: stopped; gensim correct --resume {out} goes on with the loop", "error: interrupted"]
    assert gensim("correct", "--resume", str(out), "--no-progress", "--json") == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(res["iterations"]) == 2 and trainings == ["data-1.jsonl", "data-2.jsonl"]
    assert figures(out) == never_stopped


def test_a_recorded_loop_judged_again_offline_gets_the_loop_s_own_verdicts(tmp_path, trainings, monkeypatch):
    """bench/rejudge.py runs the loop's judgement (``loop.judged``) on what a loop recorded: with the same
    rules it must reach the same reasons, iteration by iteration; with a rule changed, what it says."""
    import importlib.util

    from simulation.correction import exam as ex

    spec = importlib.util.spec_from_file_location("rejudge", Path(__file__).parents[2] / "bench" / "rejudge.py")
    rejudge = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rejudge)
    out = tmp_path / "loop"
    correct(options(out, max_drift=0.05), emit=lambda line: None)
    got = rejudge.rejudge(out)
    report = json.loads((out / "correction.json").read_text())
    assert [g["then"] for g in got] == [it["reasons"] for it in report["iterations"]]
    assert [g["now"] for g in got] == [g["then"] for g in got] and any(g["now"] for g in got), got
    monkeypatch.setattr(ex, "refusals", lambda *a, **kw: ["a new rule"])
    assert all(g["now"][-1] == "a new rule" for g in rejudge.rejudge(out))
