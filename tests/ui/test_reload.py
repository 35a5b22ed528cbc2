"""A live run outlives the browser (a new page sees it running) and the UI process (killed mid-run, the
folder resumes with ``gensim run --resume`` and a restarted ``gensim ui`` lists it)."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import copy_scenario, set_models
from tests.ui.serving import free_port, serving
from tests.ui.test_browser import browser, field, start_paused_run, tab, wait_round_above  # noqa: F401 (fixture)


def test_a_new_browser_sees_the_same_live_run(browser, stub, tmp_path):  # noqa: F811
    roots = tmp_path / "scenarios"
    roots.mkdir()
    scen = copy_scenario(roots)
    from simulation.testing.procs import stub_models

    set_models(scen, stub_models([stub], embed=stub))
    with serving(tmp_path / "runs", [roots]) as (url, ctx):
        first = browser.new_context()
        page = first.new_page()
        page.set_default_timeout(60_000)
        page.goto(url)
        start_paused_run(page, scen, "live", ctx, rounds=5000)  # the stub runs ~20 rounds a second
        page.locator("#resume").click()
        first.close()  # the browser goes away mid-run
        second = browser.new_context().new_page()
        second.set_default_timeout(60_000)
        second.goto(url)
        tab(second, "Monitor")
        second.locator("#status").get_by_text("running", exact=True).wait_for()
        seen = int(re.search(r"round (\d+) of 5000", second.locator("#status").inner_text()).group(1))
        wait_round_above(second, seen)
        assert "run live:" in second.locator("#status").inner_text()
        second.locator("#stop").click()
        assert ctx.controller.wait(120).state == "stopped"


def _ui(runs: Path, roots: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "simulation.cli", "ui", "--port", str(port), "--runs", str(runs),
                             "--scenarios", str(roots)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _wait_up(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else "exited"
        try:
            if httpx.get(url + "config", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("gensim ui did not come up")


def test_a_killed_ui_leaves_a_run_that_resumes_and_is_listed(stub, tmp_path):
    from gradio_client import Client

    from simulation.testing.procs import stub_models

    roots = tmp_path / "scenarios"
    roots.mkdir()
    scen = copy_scenario(roots)
    set_models(scen, stub_models([stub], embed=stub))
    runs = tmp_path / "runs"
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = _ui(runs, roots, port)
    try:
        _wait_up(url, proc)
        c = Client(url, verbose=False)
        c.predict(str(scen), {"headers": ["setting", "value"], "data": [["rounds", "40"]]}, "killed",
                  api_name="/start")
        run = runs / "killed"
        t0 = time.monotonic()
        while not (run / "checkpoints").is_dir() or len(list((run / "checkpoints").iterdir())) < 3:
            assert time.monotonic() - t0 < 120, "the run did not get going"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the UI process and everything it started, at once
        proc.wait(30)
    with sqlite3.connect(run / "run.sqlite") as db:
        meta = dict(db.execute("SELECT key, value FROM meta"))
    assert json.loads(meta.get("finished", "false")) is False
    # a restarted gensim ui lists it as incomplete
    proc = _ui(runs, roots, port)
    try:
        _wait_up(url, proc)
        table = Client(url, verbose=False).predict(api_name="/runs")[2]  # run pickers, then the runs table
        listed = {row[0]: row[2] for row in table["data"]}
        assert listed.get("killed") == "incomplete", table
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    p = subprocess.run([sys.executable, "-m", "simulation.cli", "run", str(scen), "--resume", str(run), "--no-progress"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    with sqlite3.connect(run / "run.sqlite") as db:
        assert json.loads(dict(db.execute("SELECT key, value FROM meta"))["finished"]) is True
        assert db.execute("SELECT MAX(round) FROM metrics").fetchone()[0] == 40
