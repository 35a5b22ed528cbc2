"""Screenshots of every tab of ``gensim ui`` on the embedded default (the real bundled model), as a new
user would drive it: configure job seeking small, start, watch it run, open an agent, interview it, rate
a call; with ``--loop`` and ``--experiment``, a finished correction loop's and experiment's results
shown on the Runs tab. Writes ``assets/ui-<tab>.png`` (the README's "Web interface" section shows them).

    .venv/bin/python bench/ui_screenshots.py [--seekers 16] [--interviewers 4] [--rounds 2] [--out assets]
        [--loop LOOP_DIR] [--experiment EXPERIMENT_DIR]

Needs Debian's chromium (``bash simulation/scripts/browser.sh``). Minutes: the embedded servers start
(about a minute), then the run.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ui.serving import serving  # noqa: E402
from tests.ui.test_browser import ARGS, CHROMIUM, edit_setting, field, tab, wait_state  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seekers", type=int, default=16)
    ap.add_argument("--interviewers", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "assets"))
    ap.add_argument("--loop", help="a gensim correct folder whose correction.json the Runs tab shows")
    ap.add_argument("--experiment", help="a gensim experiment folder whose summary the Runs tab shows")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = Path(tempfile.mkdtemp(prefix="gensim-ui-")) / "runs"
    for given, name, files in ((a.loop, "correction", ("correction.json",)),
                               (a.experiment, "experiment", ("experiment.json", "summary.csv"))):
        if given:  # only the files the page reads: the folders' runs stay where they are
            (runs / name).mkdir(parents=True, exist_ok=True)
            for f in files:
                shutil.copy(Path(given) / f, runs / name / f)
    t0 = time.monotonic()
    with serving(runs) as (url, ctx), sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(900_000)
        page.goto(url)
        field(page, "scenario").fill("job_seeking")
        page.get_by_role("option", name="job_seeking", exact=True).click()
        # the picked scenario's table (the first bundled scenario's also has "rounds")
        page.locator("#settings").get_by_text("agents.seeker.count", exact=True).wait_for()
        edit_setting(page, "rounds", str(a.rounds))
        edit_setting(page, "agents.seeker.count", str(a.seekers))
        edit_setting(page, "agents.interviewer.count", str(a.interviewers))
        page.locator("#check").click()
        page.wait_for_function("document.querySelector('#check-out textarea').value.includes('ok:')")
        page.screenshot(path=str(out / "ui-configure.png"))
        field(page, "run-name").fill("screenshots")
        page.locator("#start").click()
        tab(page, "Monitor")
        page.wait_for_function("""() => { const m = document.querySelector('#status').innerText.match(/round (\\d+) of/);
                                          return m && Number(m[1]) >= 1; }""")
        page.screenshot(path=str(out / "ui-monitor-running.png"))
        wait_state(page, "finished", timeout=1_800_000)
        tab(page, "Agents")  # a plot redrawn while shown loses its colours (issue 20 note): show it afresh
        tab(page, "Monitor")
        page.wait_for_timeout(2500)
        page.screenshot(path=str(out / "ui-monitor.png"), full_page=True)
        print(f"run finished after {time.monotonic() - t0:.0f}s", flush=True)
        tab(page, "Agents")
        page.locator("#agents-table [data-testid='cell-0-0']").click()
        page.locator("#agent-profile").get_by_text("name").first.wait_for()
        field(page, "question").fill("How is your job search going?")
        page.locator("#ask").click()
        page.wait_for_function("document.querySelector('#answer textarea').value.length > 0")
        page.screenshot(path=str(out / "ui-agents.png"), full_page=True)
        tab(page, "Events")
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "ui-events.png"))
        tab(page, "Feedback")
        field(page, "f-action").fill("screen")
        page.locator("#show-calls").click()
        page.locator("#calls-table [data-testid='cell-0-0']").click()
        page.wait_for_function("document.querySelector('#call-prompt textarea').value.length > 0")
        page.locator("#score").get_by_text("4", exact=True).click()
        page.locator("#save-rating").click()
        page.locator("#rate-out").get_by_text("rated by human").wait_for()
        page.screenshot(path=str(out / "ui-feedback.png"), full_page=True)
        tab(page, "Models")
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "ui-models.png"))
        tab(page, "Runs")
        page.wait_for_timeout(1500)
        page.locator("#refresh-runs").click()
        if a.loop:
            field(page, "loop-pick").click()
            page.get_by_role("option", name="correction", exact=True).click()
            page.locator("#loop-table [data-testid='cell-0-0']").wait_for()
        if a.experiment:
            field(page, "exp-metric").fill("cost.wall_s")
            field(page, "exp-pick").click()
            page.get_by_role("option", name="experiment", exact=True).click()
            page.locator("#exp-show").click()
            page.locator("#exp-table [data-testid='cell-0-0']").wait_for()
            page.wait_for_function("document.querySelectorAll('#exp-plot svg .mark-line path[stroke]').length > 0")
        page.screenshot(path=str(out / "ui-runs.png"), full_page=True)
        b.close()
    print("wrote " + ", ".join(sorted(p.name for p in out.glob("ui-*.png"))) + f" in {time.monotonic() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
