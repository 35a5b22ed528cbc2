"""Reading run folders in tests: rows of ``run.sqlite``, with live-stub tags normalised on request."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from simulation.core.checkpoint import DRIVER, round_dir
from simulation.testing.stub_server import strip_live

ACTIONS = "SELECT round, phase, agent_id, action, valid, data FROM actions ORDER BY id"
METRICS = "SELECT round, name, value FROM metrics ORDER BY round, name"
# one row per call, in an order that does not depend on when the rows were streamed to the driver
CALLS = ("SELECT round, phase, agent_id, action, seq, prompt, completion, valid, error FROM llm_calls "
         "ORDER BY round, phase, agent_id, action, seq")
CALL_IDS = "SELECT round, phase, agent_id, action, seq FROM llm_calls"


def rows(run: Path, q: str = ACTIONS, *args: Any) -> list[tuple]:
    with sqlite3.connect(run / "run.sqlite") as db:
        return list(db.execute(q, args))


def count(run: Path, table: str, where: str = "") -> int:
    """Rows of ``table`` (a missing database or table counts 0: the run may not have written it yet)."""
    try:
        with sqlite3.connect(f"file:{run / 'run.sqlite'}?mode=ro", uri=True) as db:
            return db.execute(f"SELECT COUNT(*) FROM {table} {where}").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def normalised(items: list[tuple]) -> list[tuple]:
    """Rows with every live tag replaced, to compare two live runs that took the same path."""
    return [tuple(strip_live(v) if isinstance(v, str) else v for v in row) for row in items]


def normalised_state(state: Any) -> Any:
    """Checkpoint data with live tags replaced in every string."""
    if isinstance(state, str):
        return strip_live(state)
    if isinstance(state, dict):
        return {normalised_state(k): normalised_state(v) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return [normalised_state(v) for v in state]
    return state


def duplicates(run: Path) -> list[tuple]:
    """LLM call identities recorded more than once (a call is made once per run, whatever crashed)."""
    seen: dict[tuple, int] = {}
    for row in rows(run, CALL_IDS):
        seen[row] = seen.get(row, 0) + 1
    return [k for k, n in seen.items() if n > 1]


def done(run: Path, r: int) -> bool:
    """Round ``r``'s checkpoint is complete."""
    return (round_dir(run, r) / DRIVER).exists()


def gensim(*args: str) -> int:
    """``gensim ARGS``'s exit status, in-process (argparse exits through SystemExit)."""
    from simulation.cli import main

    try:
        return main(list(args))
    except SystemExit as e:
        return int(e.code or 0)


def one_line_error(capsys: Any, *args: str) -> str:
    """Run ``gensim ARGS``; it must fail with exit 2 and one ``error:`` line, no traceback. Returns the line."""
    capsys.readouterr()
    code = gensim(*args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


def fake_run(out: Path, scenario: str = "job_seeking", agents: int = 12, rounds: int = 1, *extra: str) -> Path:
    """A run on the in-process fake model (no servers, about a second) into ``out``."""
    assert gensim("run", scenario, "--llm", "fake", "--agents", str(agents), "--rounds", str(rounds), "--out", str(out),
                  "--no-progress", *extra) == 0
    return out


def stand_in_training(method, data, out, parent=None, epochs=1.0, learning_rate=None, batch_size=8, seed=0,
                      progress=True, max_samples=None, objective="tokens", lr_schedule="constant", save_every=None):
    """An adapter folder with a manifest, in place of the correction loop's training: 8 steps, and with
    ``save_every`` a snapshot folder (config and manifest) every that many steps before the last."""
    from simulation.training.data import file_hash
    from simulation.training.manifest import AdapterManifest, snapshot_folder, write_manifest

    out.mkdir(parents=True)
    (out / "adapter_config.json").write_text("{}")
    m = AdapterManifest(base_model="smol", method=method, data_file=str(data), data_sha256=file_hash(Path(data)),
                        samples=1,
                        epochs=epochs, lora_rank=4, learning_rate=learning_rate or 1e-3, train_s=0.5, device="cpu",
                        lr_schedule=lr_schedule if method == "sft" else None, losses=[1.0] * STAND_IN_STEPS)
    for step in range(save_every or STAND_IN_STEPS, STAND_IN_STEPS, save_every or STAND_IN_STEPS):
        snap = snapshot_folder(out, step)
        snap.mkdir(parents=True)
        (snap / "adapter_config.json").write_text("{}")
        write_manifest(snap, m.model_copy(update={"losses": m.losses[:step], "step": step}))
    write_manifest(out, m)
    return m


STAND_IN_STEPS = 8
