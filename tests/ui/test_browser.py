"""The web interface in a real headless Chromium (Debian's, driven by Playwright), on the stub LLM: configure,
fix an inline error, run and watch, pause, intervene, open an agent and interview it, stop, rate calls and
rewrite one, rate with the checks, export a dataset, compare runs. Asserts on the page and on run.sqlite;
screenshots go to the test's folder."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import copy_scenario, set_models
from tests.runs import stand_in_training
from tests.ui.serving import serving

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
NEWS = "The town's largest employer announced layoffs."


@pytest.fixture()
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: simulation/scripts/browser.sh installs it (test.sh runs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture()
def stage(stub, tmp_path):
    """``(scenario folder, scenario root, runs folder, screenshots folder)``: job seeking on the live stub."""
    from simulation.testing.procs import stub_models

    roots = tmp_path / "scenarios"
    roots.mkdir()
    scen = copy_scenario(roots)
    set_models(scen, stub_models([stub], embed=stub))
    shots = tmp_path / "screenshots"
    shots.mkdir()
    return scen, roots, tmp_path / "runs", shots


def q(run: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(run / "run.sqlite") as db:
        return list(db.execute(sql))


def field(page, elem_id: str):
    return page.locator(f"#{elem_id}").locator("textarea, input").first


def wait_round_above(page, n: int) -> int:
    """Wait until the status shows a round above ``n``; returns it."""
    try:
        page.wait_for_function("""(n) => { const m = document.querySelector('#status').innerText.match(/round (\\d+) of/);
                                            return m && Number(m[1]) > n; }""", arg=n)
    except Exception:
        raise AssertionError(f"no round above {n}; the status says: {page.locator('#status').inner_text()!r}") from None
    return int(re.search(r"round (\d+) of", page.locator("#status").inner_text()).group(1))


def wait_state(page, state: str, timeout: float = 120_000) -> None:
    """Wait until the status names ``state`` (its text on a timeout, to say what happened instead)."""
    try:
        page.locator("#status").get_by_text(state, exact=True).wait_for(timeout=timeout)
    except Exception:
        raise AssertionError(f"not {state}; the status says: {page.locator('#status').inner_text()!r}") from None


def tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def pick_scenario(page, scen: Path) -> None:
    """Pick the job seeking copy ``scen`` and wait for its settings: the page opens on the first bundled
    scenario, whose table also has "rounds", so an edit made before the picked scenario's table arrived was
    overwritten by it (a run of 2 rounds instead of 400, when the machine was busy)."""
    field(page, "scenario").fill(str(scen))
    page.get_by_role("option", name=str(scen)).click()
    page.locator("#settings").get_by_text("agents.seeker.count", exact=True).wait_for()


def edit_setting(page, key: str, value: str) -> None:
    """Double-click the value cell of ``key`` in the settings table and type ``value``."""
    page.locator("#settings [data-testid='cell-0-0']").wait_for()
    row = page.evaluate("""(key) => {
        for (const c of document.querySelectorAll("#settings [data-col='0'][data-testid^='cell-']"))
            if (c.innerText.trim() === key) return c.dataset.row;
        return null; }""", key)
    assert row is not None, f"no setting {key!r} in the table"
    cell = page.locator(f"#settings [data-testid='cell-{row}-1']")
    cell.dblclick()
    box = cell.locator("textarea, input").first
    box.fill(value)
    box.press("Enter")


def test_the_journey(browser, stage):
    scen, roots, runs, shots = stage
    with serving(runs, [roots]) as (url, ctx):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(url)
        # configure: pick the scenario, break a setting, see the problem inline, fix it, start
        pick_scenario(page, scen)
        edit_setting(page, "rounds", "many")
        page.locator("#check").click()
        page.wait_for_function("document.querySelector('#check-out textarea').value.includes('problems')")
        assert "rounds" in field(page, "check-out").input_value()
        page.screenshot(path=str(shots / "configure-error.png"), full_page=True)
        edit_setting(page, "rounds", "400")  # the stub runs a round in ~0.05 s: room to pause
        # the typed form (kinds from the config models): a number and a yes/no, each written into the table
        page.get_by_text("Scenario parameters", exact=True).click()
        box = page.locator("#set-scenario-search-k input")
        box.fill("3")
        box.press("Enter")
        page.get_by_text("LLM", exact=True).click()
        page.locator("#set-llm-seed-per-call input[type='checkbox']").check()
        page.wait_for_timeout(3000)  # the table's rows below the fold are not in the page: config.json is checked
        field(page, "run-name").fill("journey")
        page.locator("#start").click()
        page.wait_for_function("document.querySelector('#check-out textarea').value.includes('started')")
        run = runs / "journey"
        cfg = json.loads((run / "config.json").read_text())
        assert cfg["params"]["search_k"] == 3 and cfg["simulation"]["llm"]["seed_per_call"] is True
        # monitor: the plot and table fill as rounds finish; pause holds the run
        tab(page, "Monitor")
        wait_round_above(page, 2)
        page.locator("#pause").click()
        wait_state(page, "paused")
        assert page.locator("#metrics-table [data-col='0'][data-testid^='cell-']").count() >= 3
        # lines drawn in a colour each, live (not only axes; not uncoloured lines)
        page.wait_for_function("document.querySelectorAll('#metrics-plot svg .mark-line path[stroke]').length > 0")
        page.screenshot(path=str(shots / "monitor.png"), full_page=True)
        held = ctx.controller.status().round
        # events: a global intervention from the next round
        tab(page, "Events")
        field(page, "news").fill(NEWS)
        page.locator("#set-news").click()
        page.locator("#news-out").get_by_text(f"intervention from round {held + 1}").wait_for()
        # agents: the table, an agent opened from it, an interview
        tab(page, "Agents")
        page.locator("#agents-table [data-testid='cell-2-0']").click()
        page.wait_for_function("document.querySelector('#agent-id textarea, #agent-id input').value.length > 0")
        aid = field(page, "agent-id").input_value()
        page.locator("#agent-profile").get_by_text("name").first.wait_for()
        page.locator("#agent-memory").get_by_text("short_term").first.wait_for()  # from the last checkpoint
        field(page, "question").fill("How do you feel about the job market?")
        page.locator("#ask").click()
        page.wait_for_function("document.querySelector('#answer textarea').value.length > 0")
        answer = field(page, "answer").input_value()
        page.screenshot(path=str(shots / "agents.png"), full_page=True)
        # resume, let the intervention's round run, stop
        tab(page, "Monitor")
        page.locator("#resume").click()
        wait_round_above(page, held + 1)
        page.locator("#stop").click()
        ctx.controller.wait(120)
        wait_state(page, "stopped")
        # feedback: three ratings, one a rewrite picked from the call's options; the checks rater; a dataset
        tab(page, "Feedback")
        field(page, "f-action").fill("screen")
        page.locator("#show-calls").click()
        page.locator("#calls-table [data-testid='cell-0-0']").wait_for()
        rated = []
        for i, s in enumerate(("4", "2", "5")):
            page.locator(f"#calls-table [data-testid='cell-{i}-0']").click()
            page.wait_for_function(f"document.querySelector('#call-id input').value == "
                                   f"document.querySelector(\"#calls-table [data-testid='cell-{i}-0']\").innerText.trim()")
            cid = int(field(page, "call-id").input_value())
            page.wait_for_function("document.querySelector('#call-prompt textarea').value.length > 0")
            page.locator("#score").get_by_text(s, exact=True).click()
            if i == 1:  # a rewrite: one of the call's own options
                field(page, "rewrite-choice").click()
                page.get_by_role("option").first.click()
            page.locator("#save-rating").click()
            page.locator("#rate-out").get_by_text(f"call {cid} rated by human").wait_for()
            rated.append(cid)
        field(page, "f-action").fill("")
        page.locator("#rate-checks").click()
        page.locator("#rate-out").get_by_text("checks rated").wait_for()
        by_checks = int(re.search(r"checks rated (\d+) calls", page.locator("#rate-out").inner_text()).group(1))
        page.locator("#export-dataset").click()
        page.locator("#ds-out").get_by_text("sft rows").wait_for()
        # the run's own model as judge over a seeded sample of 3 (after the export: its rewrites
        # contradict the checks', and a dataset of both raters is refused)
        field(page, "f-action").fill("screen")
        page.locator("#sample-size input").fill("3")
        page.locator("#rate-judge").click()
        page.locator("#rate-out").get_by_text("judge rated").wait_for()
        judged = page.locator("#rate-out").inner_text()
        field(page, "f-action").fill("")
        page.screenshot(path=str(shots / "feedback.png"), full_page=True)
        # runs: the run is listed and compared
        tab(page, "Runs")
        page.wait_for_function("""() => [...document.querySelectorAll("#runs-table [data-col='0'][data-testid^='cell-']")]
                                      .some(c => c.innerText.trim() === 'journey')""")
        page.screenshot(path=str(shots / "runs.png"), full_page=True)
    # what run.sqlite holds
    rows = {(k, t): json.loads(d) for k, t, d in q(run, "SELECT kind, target, data FROM interventions")}
    assert rows[("global", "*")] == {"text": NEWS}
    assert rows[("interview", aid)]["answer"] == answer
    prompts = q(run, f"SELECT prompt FROM llm_calls WHERE round = {held + 1} AND action NOT LIKE 'memory.%' "
                     "AND phase != 'interview'")
    assert prompts and all(NEWS in p for (p,) in prompts)
    human = q(run, "SELECT llm_call_id, score, rewrite FROM ratings WHERE rater = 'human' ORDER BY id")
    assert [c for c, _, _ in human] == rated and [s for _, s, _ in human] == [4.0, 2.0, 5.0]
    choices = json.loads(q(run, f"SELECT choices FROM llm_calls WHERE id = {rated[1]}")[0][0])
    assert human[1][2] in choices and human[0][2] is None
    assert q(run, "SELECT COUNT(*) FROM ratings WHERE rater LIKE 'check:%'")[0][0] == by_checks > 0
    n_judged = int(re.search(r"judge rated (\d+) calls", judged).group(1))
    got = q(run, "SELECT l.action FROM ratings r JOIN llm_calls l ON l.id = r.llm_call_id WHERE r.rater LIKE 'judge%'")
    assert len(got) == n_judged <= 3 and {a for (a,) in got} <= {"screen"}
    meta = dict(q(run, "SELECT key, value FROM meta"))
    assert json.loads(meta["stopped"])["reason"] == "stopped from the web interface"
    assert (run / "datasets" / "sft.jsonl").read_text().strip()
    assert {p.name for p in shots.iterdir()} >= {"configure-error.png", "monitor.png", "agents.png", "feedback.png"}


def start_paused_run(page, scen: Path, name: str, ctx, after: int = 2, rounds: int = 60) -> None:
    pick_scenario(page, scen)
    edit_setting(page, "rounds", str(rounds))
    field(page, "run-name").fill(name)
    page.locator("#start").click()
    page.wait_for_function("document.querySelector('#check-out textarea').value.includes('started')")
    tab(page, "Monitor")
    wait_round_above(page, after - 1)
    page.locator("#pause").click()
    wait_state(page, "paused")


def test_map_train_deploy_fork_compare(browser, stage, monkeypatch):
    scen, roots, runs, shots = stage
    with serving(runs, [roots]) as (url, ctx):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(url)
        start_paused_run(page, scen, "base", ctx, rounds=400)
        run = runs / "base"
        paused_at = ctx.controller.status().round
        # an agent opened from the map: drag across it, then click one of the agents listed
        tab(page, "Agents")
        page.wait_for_function("document.querySelectorAll('#agent-map svg path').length > 20")  # points drawn
        for _ in range(5):  # the plot ignores a drag in the second after it is redrawn: drag again
            page.wait_for_timeout(1500)
            box = page.locator("#agent-map svg").first.bounding_box()
            y = box["y"] + box["height"] / 2
            page.mouse.move(box["x"] + box["width"] * 0.08, y)  # right of the y axis
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.995, y, steps=15)
            page.mouse.up()
            try:
                page.locator("#map-range [data-testid='cell-0-0']").wait_for(timeout=10_000)
                break
            except Exception:
                continue
        page.screenshot(path=str(shots / "map-brushed.png"), full_page=True)
        picked = page.locator("#map-range [data-testid='cell-0-0']").inner_text().strip()
        page.locator("#map-range [data-testid='cell-0-0']").click()
        page.wait_for_function(f"document.querySelector('#agent-id textarea, #agent-id input').value === '{picked}'")
        page.locator("#agent-profile").get_by_text("name").first.wait_for()
        page.screenshot(path=str(shots / "map.png"), full_page=True)
        # a dataset from the checks' ratings, a tiny real SFT adapter, deployed to half the agents
        tab(page, "Feedback")
        page.locator("#rate-checks").click()
        page.locator("#rate-out").get_by_text("checks rated").wait_for()
        page.locator("#export-dataset").click()
        page.locator("#ds-out").get_by_text("sft rows").wait_for()
        tab(page, "Models")
        field(page, "tr-data").fill("base/datasets/sft.jsonl")
        field(page, "tr-name").fill("tiny")
        field(page, "tr-max").fill("8")
        field(page, "tr-epochs").fill("3")  # three steps: a loss curve
        page.locator("#train").click()
        page.locator("#train-out").get_by_text("adapter adapters/tiny:").wait_for(timeout=600_000)
        page.wait_for_function("""() => [...document.querySelectorAll("#adapters [data-col='0'][data-testid^='cell-']")]
                                  .some(c => c.innerText.trim() === 'adapters/tiny')""")
        page.wait_for_function("document.querySelectorAll('#loss-plot svg .mark-line path').length >= 1")
        # a longer training, cancelled from the page once it reports steps: no adapter is written
        field(page, "tr-name").fill("cancelled")
        field(page, "tr-max").fill("400")
        field(page, "tr-epochs").fill("30")
        page.locator("#train").click()
        page.locator("#train-out").get_by_text(re.compile(r"step \d+ of \d+")).wait_for(timeout=300_000)
        page.locator("#cancel-train").click()
        page.locator("#train-out").get_by_text(re.compile(r"cancelled at step")).wait_for(timeout=120_000)
        field(page, "dep-adapter").fill("adapters/tiny")
        slider = page.locator("#dep-share input[type='number']").first
        slider.fill("0.5")
        slider.press("Enter")
        page.locator("#deploy").click()
        page.locator("#dep-out").get_by_text(re.compile(r"deployed tiny .* to 50% of the agents")).wait_for()
        page.screenshot(path=str(shots / "models.png"), full_page=True)
        tab(page, "Monitor")
        page.locator("#resume").click()
        wait_round_above(page, paused_at + 1)
        page.locator("#stop").click()
        ctx.controller.wait(120)
        wait_state(page, "stopped")
        # fork round 2 of the run, let it finish, compare the two
        tab(page, "Runs")
        field(page, "fork-round").fill("2")
        page.locator("#fork").click()
        page.locator("#runs-out").get_by_text("started").wait_for()
        fork_name = re.search(r"fork (\S+) of base from round 2 started", page.locator("#runs-out").inner_text()).group(1)
        st = ctx.controller.wait(300)
        assert st.state == "finished", st.error
        page.locator("#refresh-runs").click()
        field(page, "compare-pick").click()
        for name in ("base", fork_name):
            page.get_by_role("option", name=name, exact=True).click()
            field(page, "compare-pick").click()
        page.locator("#compare").click()
        # a line in a colour each, drawn while on screen (Gradio 6.31 kept the old view's colours until the tab
        # was shown again: _plot_data + _redraw)
        page.wait_for_function("document.querySelectorAll('#compare-plot svg .mark-line path[stroke]').length >= 2")
        page.locator("#compare-plot svg text").filter(has_text=re.compile(r"^round \(1 to \d+; \d+ series\)$")).wait_for()
        page.screenshot(path=str(shots / "compare.png"), full_page=True)
        # the correction loop from the page (the fake model; training stood in for: real training is above
        # and in tests/correction), then its held-out/control table on the Runs tab
        import simulation.correction.loop as loop

        monkeypatch.setattr(loop, "train", stand_in_training)
        tab(page, "Models")
        field(page, "c-name").fill("loop1")
        field(page, "c-agents").fill("24")
        field(page, "c-rounds").fill("2")
        field(page, "c-over").fill("llm.backend=fake")
        page.locator("#correct").click()
        page.wait_for_function("document.querySelector('#c-log textarea').value.includes('[done in')", timeout=300_000)
        page.locator("#c-exam [data-testid='cell-0-1']").wait_for()
        page.wait_for_function("document.querySelectorAll('#c-plot svg .mark-rect path').length >= 2")
        page.screenshot(path=str(shots / "correction.png"), full_page=True)
        # the loop named above gone on with: its iteration kept as measured
        page.locator("#c-resume").click()
        try:
            page.wait_for_function("(v => v.includes('iteration 1: measured before the loop stopped') && "
                                   "v.includes('[done in'))(document.querySelector('#c-log textarea').value)",
                                   timeout=120_000)
        except Exception:
            raise AssertionError("the loop did not go on; its log: "
                                 f"{page.locator('#c-log textarea').input_value()!r}") from None
        tab(page, "Runs")
        field(page, "loop-pick").click()
        page.get_by_role("option", name="loop1", exact=True).click()
        page.locator("#loop-table [data-testid='cell-0-0']").wait_for()
        shown = float(page.locator("#loop-table [data-testid='cell-0-2']").inner_text())
        # an experiment's last-round table by cell and its plot (made on the fake model beside the page)
        from simulation.experiments import ExperimentDesign, run_experiment

        run_experiment(ExperimentDesign(scenario="polling", seeds=[1, 2], grid={"agents": ["10", "12"]}, rounds=2,
                                        llm="fake"), runs / "exp", emit=lambda line: None)
        page.locator("#refresh-runs").click()
        field(page, "exp-metric").fill("share_yes")
        field(page, "exp-pick").click()
        page.get_by_role("option", name="exp", exact=True).click()
        page.locator("#exp-show").click()
        page.locator("#exp-table [data-testid='cell-1-0']").wait_for()
        cells = {page.locator(f"#exp-table [data-testid='cell-{k}-0']").inner_text().strip() for k in (0, 1)}
        page.wait_for_function("document.querySelectorAll('#exp-plot svg .mark-line path[stroke]').length >= 2")
        page.locator("#exp-plot svg text").filter(has_text=re.compile(r"^round \(1 to 2; \d+ series\)$")).wait_for()
        page.screenshot(path=str(shots / "experiments.png"), full_page=True)
    assert cells == {"agents=10", "agents=12"}
    report = json.loads((runs / "loop1" / "correction.json").read_text())
    assert shown == pytest.approx(report["iterations"][0]["holdout_fail"], abs=1e-3)
    assert not (runs / "adapters" / "cancelled").exists()
    dep = [json.loads(d) for (d,) in q(run, "SELECT data FROM interventions WHERE kind = 'deploy'")]
    assert len(dep) == 1 and dep[0]["share"] == 0.5 and dep[0]["path"].endswith("adapters/tiny")
    after = q(run, f"SELECT DISTINCT agent_id, model FROM llm_calls WHERE round > {paused_at} AND action NOT LIKE 'memory.%'")
    models = {m for _, m in after}
    assert "tiny" in models and len(models) >= 2, "half the agents answer with the adapter, the others with the base"
    manifest = json.loads((runs / "adapters" / "tiny" / "gensim_adapter.json").read_text())
    assert manifest["method"] == "sft" and manifest["samples"] >= 1 and manifest["losses"]
    fork = runs / fork_name
    assert json.loads(dict(q(fork, "SELECT key, value FROM meta"))["finished"]) is True
    assert q(fork, "SELECT MIN(round) FROM metrics")[0][0] == 1 and q(fork, "SELECT MAX(round) FROM metrics")[0][0] == 400
