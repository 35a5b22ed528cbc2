"""``--pick anchors``: which saved step of a training the loop serves, chosen on the training agents'
anchored calls (never the held-out exam): the pure choice, and the loop serving what it chose."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import simulation.correction.loop as loop
from simulation.config import ConfigError
from simulation.correction import exam as ex
from simulation.correction.loop import CorrectOptions, correct, resume_options
from simulation.correction.pick import (
    Candidate,
    anchor_calls,
    candidates,
    choose,
    drifts,
    pick,
    read_pick,
    write_pick,
)
from simulation.runner import read_run_config
from simulation.training.manifest import snapshot_folder
from tests.runs import STAND_IN_STEPS, gensim, stand_in_training


def row(call: int, action: str, options: list[str], target: dict[str, float] | None, anchored: bool = True) -> str:
    meta = {"call_id": call, "action": action, "round": 1, "options": options, "rater": "check:x"}
    if anchored:
        meta |= {"anchored": True, "target": target}
    return json.dumps({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": f"q{call}"},
                                    {"role": "assistant", "content": options[0]}], "meta": meta})


def test_anchor_calls_are_the_anchored_rows_once_each_with_their_targets(tmp_path):
    data = tmp_path / "data-1.jsonl"
    data.write_text("\n".join([
        row(1, "screen", ["pass", "reject"], {"pass": 0.7, "reject": 0.3}),
        row(1, "screen", ["reject", "pass"], {"pass": 0.7, "reject": 0.3}),  # a permuted copy of call 1
        row(2, "screen", ["pass", "reject"], None, anchored=False),  # a graded row
        row(3, "offer_decision", ["hire", "keep looking"], {"hire": 0.2, "keep looking": 0.8}),
        row(4, "screen", ["pass", "reject"], None),  # anchored, but the base gave no probabilities: nothing to weigh
    ]) + "\n")
    items, base = anchor_calls(data)
    assert [(i.call_id, i.decision, i.choices) for i in items] == [(1, "screen", ["pass", "reject"]),
                                                                  (3, "offer_decision", ["hire", "keep looking"])]
    assert base == [{"pass": 0.7, "reject": 0.3}, {"hire": 0.2, "keep looking": 0.8}]
    assert items[0].messages == [{"role": "system", "content": "s"}, {"role": "user", "content": "q1"}], \
        "the prompt without the answer"
    assert [i.call_id for i in anchor_calls(data, frozenset({"offer_decision"}))[0]] == [3]


def test_drift_is_the_total_variation_of_the_position_free_picks_per_decision():
    items = [ex.ExamItem(k, "", 1, "", d, [], ["a", "b"], None) for k, d in enumerate("xxxxy")]
    base = [{"a": 0.9, "b": 0.1}] * 3 + [{"a": 0.4, "b": 0.6}, {"a": 0.6, "b": 0.4}]
    got = [{"a": 0.2, "b": 0.8}] + [{"a": 0.9, "b": 0.1}] * 2 + [{"a": 0.4, "b": 0.6}, {"a": 0.6, "b": 0.4}]
    # x: base picks a, a, a, b (a 0.75); got b, a, a, b (a 0.5): 0.25; y unchanged
    assert drifts(items, base, got) == {"x": 0.25, "y": 0.0}
    with pytest.raises(ValueError, match="no option probabilities for 1 of 5"):
        drifts(items, base, [*got[:4], None])


def test_candidates_are_the_second_half_and_the_finished_adapter(tmp_path):
    adapter = tmp_path / "adapter-1"
    stand_in_training("sft", _data(tmp_path), adapter, save_every=2)
    assert [s for s, _ in candidates(adapter)] == [4, 6, STAND_IN_STEPS]
    assert candidates(adapter)[0][1] == snapshot_folder(adapter, 4) and candidates(adapter)[-1][1] == adapter
    # a snapshot of the last step is the finished adapter: weighed once
    shutil.copytree(snapshot_folder(adapter, 6), snapshot_folder(adapter, STAND_IN_STEPS))
    assert [s for s, _ in candidates(adapter)] == [4, 6, STAND_IN_STEPS]
    other = tmp_path / "adapter-2"
    stand_in_training("sft", _data(tmp_path), other, save_every=3)
    assert [s for s, _ in candidates(other)] == [6, STAND_IN_STEPS], "step 3 of 8 is before half"


def test_the_least_worst_drift_wins_and_a_tie_goes_to_the_later_step():
    a, b, c = (Candidate(s, f"/s{s}", d) for s, d in ((4, {"x": 0.1, "y": 0.3}), (6, {"x": 0.2, "y": 0.2}),
                                                          (8, {"x": 0.0, "y": 0.2})))
    assert choose([a, b, c]) == c and choose([a, b]) == b and choose([b, a]) == b
    assert choose([Candidate(4, "/a", {}), Candidate(8, "/b", {})]).step == 8


def _data(tmp_path: Path) -> Path:
    data = tmp_path / "data-1.jsonl"
    data.write_text("\n".join(row(k, "screen", ["pass", "reject"], {"pass": 0.8, "reject": 0.2}) for k in range(4))
                    + "\n")
    return data


def test_pick_scores_each_candidate_and_the_record_round_trips(tmp_path):
    data, adapter = _data(tmp_path), tmp_path / "adapter-1"
    stand_in_training("sft", data, adapter, save_every=2)
    asked = []

    def score(folder, name, items):
        asked.append((Path(folder), name, len(items)))
        flipped = 1 if folder == snapshot_folder(adapter, 6) else 2  # step 6 moves one call of four, the others two
        return [{"pass": 0.1, "reject": 0.9}] * flipped + [{"pass": 0.9, "reject": 0.1}] * (4 - flipped)

    got = pick(adapter, data, None, score)
    assert asked == [(snapshot_folder(adapter, 4), "adapter-1-step-4", 4), (snapshot_folder(adapter, 6),
                     "adapter-1-step-6", 4), (adapter, "adapter-1-step-8", 4)]
    assert got.chosen.step == 6 and [c.worst for c in got.candidates] == [0.5, 0.25, 0.5] and got.calls == 4
    assert got.line() == ("picked step 6 (worst anchor drift 0.25 on 4 training calls no check grades; step 4 0.50; "
                          "step 6 0.25; step 8 0.50)")
    assert [c.folder for c in got.candidates] == ["adapter-1/snapshots/step-00004", "adapter-1/snapshots/step-00006",
                                                  "adapter-1"], "relative to the loop folder: a moved loop keeps them"
    write_pick(tmp_path / "pick-1.json", got)
    assert read_pick(tmp_path / "pick-1.json") == got
    asked.clear()
    assert pick(adapter, data, frozenset({"screen"}), score).calls == 4 and len(asked) == 3
    with pytest.raises(ValueError, match=f"{data}: no anchored rows with the base's probabilities to pick a step by"):
        pick(adapter, data, frozenset({"offer_decision"}), score)
    assert len(asked) == 3, "nothing scored without calls to weigh"
    assert read_pick(tmp_path / "none.json") is None


def options(out: Path, **kw) -> CorrectOptions:
    return CorrectOptions("job_seeking", **{"iterations": 1, "agents": 24, "holdout": 0.3, "control": 0.3,
                                            "out": str(out), "lr": 0.002, "max_samples": 50, "progress": False,
                                            "overrides": ["llm.backend=fake"], "max_drift": 1.0, "save_every": 2,
                                            "pick": "anchors", **kw})


def test_the_loop_serves_the_step_it_picked_and_keeps_the_pick_on_a_resume(tmp_path, monkeypatch):
    parents: list[str | None] = []

    def train(method, data, out, parent=None, **kw):
        parents.append(str(parent) if parent else None)
        return stand_in_training(method, data, out, parent=parent, **kw)

    monkeypatch.setattr(loop, "train", train)
    scored: list[str] = []
    real = loop._snapshot_probs

    def snapshot_probs(base, folder, name, items, seed, progress, work):
        scored.append(name)
        got = real(base, folder, name, items, seed, progress, work)  # the fake backend's: every step alike
        if not name.endswith("step-6"):  # steps 4 and 8 move every anchored call off the base's pick
            got = [{o: 1 - p for o, p in g.items()} for g in got]
        return got

    monkeypatch.setattr(loop, "_snapshot_probs", snapshot_probs)
    monkeypatch.setattr(loop, "judged", lambda *a, **kw: [])  # adopted whatever the fake model answered
    out = tmp_path / "loop"
    lines: list[str] = []
    correct(options(out, iterations=2), emit=lines.append)
    assert scored[:3] == ["adapter-1-step-4", "adapter-1-step-6", "adapter-1-step-8"]
    picked = read_pick(out / "pick-1.json")
    assert picked is not None and picked.chosen.step == 6 and picked.chosen.worst == 0.0
    assert f"iteration 1: {picked.line()}" in lines
    served = snapshot_folder(out / "adapter-1", 6).resolve()
    assert read_run_config(out / "iter-1").simulation.llm.adapter == str(served), "the fork serves the picked step"
    report = json.loads((out / "correction.json").read_text())
    assert parents == [None, str(served)], "the next iteration trains on from the step served, not the last"
    assert report["details"][0]["picked_step"] == 6
    assert [c["step"] for c in report["details"][0]["pick"]] == [4, 6, 8]
    # a resume keeps the recorded pick: nothing scored again
    scored.clear()
    (out / "correction.json").unlink()
    correct(resume_options(out, progress=False), emit=lines.append, resume=True)
    assert scored == [] and json.loads((out / "correction.json").read_text())["details"][0]["picked_step"] == 6
    # the step served gone: iteration 1 is scored again, never silently replaced by the finished adapter
    shutil.rmtree(snapshot_folder(out / "adapter-1", 6))
    (out / "correction.json").unlink()
    correct(resume_options(out, progress=False), emit=lines.append, resume=True)
    assert scored == ["adapter-1-step-4", "adapter-1-step-8"], "iteration 2's pick, its folder there, is kept"
    assert json.loads((out / "correction.json").read_text())["details"][0]["picked_step"] == 8
    # a measured iteration whose served step is gone is an error, not the finished adapter in its place
    shutil.rmtree(snapshot_folder(out / "adapter-2", 6))
    with pytest.raises(ConfigError) as e:
        loop._served(out, 2, out / "adapter-2")
    assert str(e.value.problems[0]) == (f"{out / 'pick-2.json'}: chosen: adapter-2/snapshots/step-00006: no such "
                                        "folder in the loop (the step this iteration served and measured)")


def test_pick_anchors_needs_snapshots_and_the_cli_passes_it(tmp_path):
    with pytest.raises(ConfigError) as e:
        correct(options(tmp_path / "x", save_every=None))
    assert str(e.value.problems[0]) == ("<command line>: --pick: anchors chooses among the snapshots --save-every N "
                                        "saves: give it")
    with pytest.raises(ConfigError, match="last or anchors, got 'best'"):
        correct(options(tmp_path / "x", pick="best"))
    assert gensim("correct", "job_seeking", "--pick", "anchors", "--out", str(tmp_path / "y")) == 2


def test_a_loop_file_from_before_pick_resumes_as_last(tmp_path):
    out = tmp_path / "loop"
    out.mkdir()
    recorded = {k: v for k, v in json.loads(json.dumps(
        {f: getattr(options(out), f) for f in CorrectOptions.__dataclass_fields__})).items()
        if k not in ("progress", "pick")}
    (out / "loop.json").write_text(json.dumps({"options": recorded}))
    assert resume_options(out).pick == "last"
