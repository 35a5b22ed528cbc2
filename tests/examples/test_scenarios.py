"""Every scenario, smoke-tested against the stub LLM: checks pass, runs are valid, replays identical."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from simulation.cli import main
from simulation.core import Action
from tests.conftest import EXAMPLES, copy_scenario, set_models

SCENARIOS = {  # name -> (extra arguments, metrics every round must have)
    "job_seeking": ([], ["employment_rate", "applications", "offers", "acceptances"]),
    "recommendation": (["scenario.catalogue_size=400"],
                       ["mean_rating", "rating_3.5", "genre_entropy", "genres_watched", "chats", "posts", "watches"]),
    "chatting": (["--agents", "10"], ["messages", "mentions", "goodbyes", "joins", "mean_words"]),
    "polling": ([], ["share_yes", "share_no", "share_unsure"]),
}


def q(run: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(run / "run.sqlite") as db:
        return list(db.execute(sql, args))


@pytest.fixture()
def scenario_run(request, tmp_path, stub):
    from simulation.testing.procs import stub_models

    name = request.param
    folder = copy_scenario(tmp_path, name)
    set_models(folder, stub_models([stub], embed=stub))
    extra, _ = SCENARIOS[name]
    run = tmp_path / "run"
    assert main(["run", str(folder), *extra, "--rounds", "2", "--out", str(run), "--no-progress"]) == 0
    return name, run


def test_every_shipped_scenario_is_listed():
    shipped = {p.name for p in EXAMPLES.iterdir() if (p / "scenario.py").is_file()}
    assert shipped == set(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_check_passes(name, capsys):
    assert main(["check", name]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(f"ok: {name}")


@pytest.mark.parametrize("scenario_run", sorted(SCENARIOS), indirect=True)
def test_scenario_runs_valid_and_replays_identically(scenario_run, tmp_path):
    name, run = scenario_run
    actions = q(run, "SELECT round, phase, agent_id, action, valid, data FROM actions ORDER BY id")
    assert actions and all(a[4] == 1 for a in actions), [a for a in actions if a[4] != 1][:3]
    assert {r for r, *_ in actions} == {1, 2}
    metrics = {(r, n) for r, n in q(run, "SELECT round, name FROM metrics")}
    for r in (1, 2):
        for m in SCENARIOS[name][1] + ["actions", "failed_steps"]:
            assert (r, m) in metrics, (r, m)
    assert q(run, "SELECT COUNT(*) FROM llm_calls WHERE error IS NOT NULL")[0][0] == 0
    assert json.loads(q(run, "SELECT value FROM meta WHERE key = 'population'")[0][0])
    replay = tmp_path / "replay"
    assert main(["run", str(tmp_path / name), "--replay", str(run), "--out", str(replay), "--no-progress"]) == 0
    assert q(replay, "SELECT round, phase, agent_id, action, valid, data FROM actions ORDER BY id") == actions


@pytest.mark.parametrize("scenario_run", ["recommendation"], indirect=True)
def test_recommendation_semantics(scenario_run):
    _, run = scenario_run
    rows = [(r, a, act, json.loads(d)) for r, a, act, d in q(run, "SELECT round, agent_id, action, data FROM actions")]
    kinds = Counter(act for _, _, act, _ in rows)
    assert kinds["watch"] and kinds["chat"] and kinds["post"] and kinds["read_post"]
    watched = {(a, d["film"]) for _, a, act, d in rows if act == "watch"}
    for _, a, act, d in rows:
        if act == "rate":  # ratings are data: half stars, of films the user watched
            assert d["stars"] in [x / 2 for x in range(1, 11)] and (a, d["film"]) in watched
    chats = {(r, a, d["to"]) for r, a, act, d in rows if act == "chat"}
    replies = {(r, d["to"], a) for r, a, act, d in rows if act == "chat_reply"}
    assert chats and chats <= replies, "each chat is answered by the friend's own agent"
    means = dict(q(run, "SELECT round, value FROM metrics WHERE name = 'mean_rating'"))
    for r, mean in means.items():
        stars = [d["stars"] for rr, _, act, d in rows if act == "rate" and rr == r]
        assert mean == (round(sum(stars) / len(stars), 4) if stars else 0.0)


@pytest.mark.parametrize("scenario_run", ["chatting"], indirect=True)
def test_chatting_turns_cap_and_transcript(scenario_run):
    _, run = scenario_run
    says = [(r, a, json.loads(d)) for r, a, d in q(run, "SELECT round, agent_id, data FROM actions WHERE action = 'say' "
                                                       "ORDER BY id")]
    assert says
    per_room = Counter((r, d["room"]) for r, _, d in says)
    assert max(per_room.values()) <= 8, "the turn cap (max_turns) holds"
    phases = q(run, "SELECT round, phase, COUNT(*) FROM actions WHERE action = 'say' GROUP BY round, phase")
    rooms = {d["room"] for _, _, d in says}
    assert all(n <= len(rooms) for _, _, n in phases), "at most one speaker per room and turn"
    for (r1, a1, d1), (r2, a2, d2) in zip(says, says[1:], strict=False):
        if r1 == r2 and d1["room"] == d2["room"]:
            assert a1 != a2, "nobody speaks twice in a row"


def test_movielens_import_and_bad_file(tmp_path):
    from simulation.examples.recommendation.catalogue import import_movielens

    good = tmp_path / "movies.csv"
    good.write_text('movieId,title,genres\n1,Toy Story (1995),Adventure|Animation|Children\n'
                    '2,"Heat, The (1995)",Action|Crime\n3,Untitled,(no genres listed)\n')
    films = import_movielens(good)
    assert films[0] == {"id": "m1", "title": "Toy Story", "year": 1995, "genres": ["Adventure", "Animation", "Children"]}
    assert films[1]["title"] == "Heat, The" and films[2] == {"id": "m3", "title": "Untitled", "year": None, "genres": []}
    bad = tmp_path / "bad.csv"
    bad.write_text("id,name\n1,x\n")
    with pytest.raises(ValueError, match="missing column"):
        import_movielens(bad)


def test_recommendation_with_movielens_file_and_a_broken_one(tmp_path, stub, capsys):
    from simulation.testing.procs import stub_models

    folder = copy_scenario(tmp_path, "recommendation")
    set_models(folder, stub_models([stub], embed=stub))
    rows = "\n".join(f"{i},Film {i} ({1990 + i % 30}),Drama|Comedy" for i in range(1, 60))
    (folder / "configs" / "movies.csv").write_text("movieId,title,genres\n" + rows + "\n")
    assert main(["run", str(folder), "--rounds", "1", "--out", str(tmp_path / "ok"), "--no-progress",
                 "scenario.movies_csv=movies.csv"]) == 0
    assert json.loads(q(tmp_path / "ok", "SELECT value FROM meta WHERE key = 'summary'")[0][0])["films"] == 59
    (folder / "configs" / "movies.csv").write_text("title\nx\n")
    capsys.readouterr()
    assert main(["run", str(folder), "--rounds", "1", "--out", str(tmp_path / "bad"), "--no-progress",
                 "scenario.movies_csv=movies.csv"]) == 2
    err = capsys.readouterr().err
    assert "movies.csv" in err and "scenario.movies_csv" in err and "Traceback" not in err


def test_chat_room_rules_unit():
    import asyncio

    from simulation.core import Phase
    from simulation.examples.chatting.agents import own_words
    from simulation.examples.chatting.environment import ChatRooms

    class Sim:
        def profiles(self, t):
            return [(f"member-{i}", {"name": n}) for i, n in enumerate(["Ann Lee", "Bo Kim", "Cy Park"])]

    env = ChatRooms({"room_size": 3}, 1)
    asyncio.run(env.setup(Sim()))
    env.observe(Phase("join", "member", "join"), 1, [Action(f"member-{i}", "join", True, {}) for i in range(3)], [])
    assert list(env.route(Phase("join", "member", "join"), [])) == ["member-0"]
    env.observe(Phase("turn_1", "member", "speak"), 1, [Action("member-0", "say", True, {"text": "@Cy what is the plan?"})], [])
    assert list(env.route(Phase("turn_1", "member", "speak"), [])) == ["member-2"], "an @mention takes the turn"
    env.observe(Phase("turn_2", "member", "speak"), 1, [Action("member-2", "say", True, {"text": "Goodbye all"})], [])
    assert env.rooms["room-0"].present == ["member-0", "member-1"] and env.counts["goodbyes"] == 1
    assert list(env.route(Phase("turn_2", "member", "speak"), [])) == ["member-0"]
    env.observe(Phase("turn_3", "member", "speak"), 1, [Action("member-0", "say", True, {"text": "bye"})], [])
    assert env.route(Phase("turn_3", "member", "speak"), []) == {}, "one member left: the session ends"
    assert own_words("Ann Lee: sure thing\nBo Kim: me too", "Ann Lee", ["Bo Kim"]) == "sure thing"
    assert own_words("ok. Bo: I agree", "Ann Lee", ["Bo Kim"]) == "ok."
    assert own_words("Bo Kim: Ah, hello there", "Ann Lee", ["Bo Kim"]) == "Ah, hello there", "never in another's name"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_prompts_put_the_question_before_the_memory(name, tmp_path):
    """vLLM reuses a prompt's longest seen prefix: a prompt that recalls memory states its question
    first, so the agent's prompts of that action share it from round to round; memory changes every round."""
    extra, _ = SCENARIOS[name]
    run = tmp_path / "run"
    assert main(["run", name, *extra, "--llm", "fake", "--rounds", "3", "--out", str(run), "--no-progress"]) == 0
    recalled = 0
    for action, prompt in q(run, "SELECT action, prompt FROM llm_calls WHERE action NOT LIKE 'memory.%'"):
        user = json.loads(prompt)[-1]["content"]
        if "What you remember:" in user:
            recalled += 1
            assert user.split("What you remember:")[0].strip(), f"{name} {action}: the prompt starts with the memory"
    assert recalled, f"{name}: no prompt recalled a memory in 3 rounds"


def test_job_seeking_interview_prompts_start_as_the_screening_did(tmp_path):
    """The interview (ask, decide) of a candidate starts with the screening prompt's opening, CV included,
    so it reuses the work vLLM did for the screening."""
    run = tmp_path / "run"
    assert main(["run", "job_seeking", "--llm", "fake", "--agents", "40", "--rounds", "2", "--out", str(run),
                 "--no-progress"]) == 0
    screened: dict[tuple[str, str], str] = {}  # (interviewer, CV) -> the screening's opening
    later: list[tuple[str, str, str]] = []
    for agent, action, prompt in q(run, "SELECT agent_id, action, prompt FROM llm_calls WHERE action IN "
                                        "('screen', 'ask', 'offer_decision') ORDER BY id"):
        msgs = json.loads(prompt)
        user = msgs[1]["content"]
        cv = user.split("CV: ", 1)[1].split("\n", 1)[0]
        head = msgs[0]["content"] + user.split(cv, 1)[0] + cv
        if action == "screen":
            screened[(agent, cv)] = head
        else:
            later.append((agent, cv, msgs[0]["content"] + user))
    assert later and screened
    for agent, cv, text in later:
        assert text.startswith(screened[(agent, cv)]), (agent, cv)
