"""Background jobs of the web interface: outcome, reported progress, errors kept, cancel honoured."""

from __future__ import annotations

import threading
import time

from simulation.config import ConfigError, ConfigProblem
from simulation.control import Job
from simulation.training import TrainingCancelled


def test_a_job_reports_its_lines_steps_losses_and_result():
    go = threading.Event()

    def work(job: Job) -> int:
        job.emit("first")
        job.on_step(1, 3)
        job.on_loss(1, 0.5)
        go.wait(5)
        return 42

    job = Job("t", work)
    while not job.status().lines:
        time.sleep(0.01)
    st = job.status()
    assert st.running and st.lines == ["first"] and (st.step, st.total) == (1, 3) and st.losses == [(1, 0.5)]
    go.set()
    st = job.wait(5)
    assert st.state == "done" and st.result == 42 and st.finished is not None and st.error is None


def test_failures_and_cancels_are_kept_with_their_reason():
    def bad(job: Job) -> None:
        raise ValueError("no such dataset")

    st = Job("t", bad).wait(5)
    assert st.state == "failed" and st.error == "ValueError: no such dataset" and st.result is None

    def config(job: Job) -> None:
        raise ConfigError([ConfigProblem("d.jsonl", "reward", "every row has the same reward")])

    st = Job("t", config).wait(5)
    assert st.state == "failed" and "d.jsonl" in st.error and "every row has the same reward" in st.error

    def long(job: Job) -> None:
        for step in range(1000):
            job.on_step(step, 1000)
            if job.cancelled():
                raise TrainingCancelled(f"cancelled at step {step}")
            time.sleep(0.01)

    job = Job("t", long)
    time.sleep(0.05)
    job.cancel()
    st = job.wait(5)
    assert st.state == "cancelled" and st.error.startswith("cancelled at step") and st.step < 999
