"""Mutation score of the correction features' modules, measured with mutmut (3.8.1).

    python bench/mutation_score.py [--modules PATH ...] [--tests PATH ...] [--work DIR] [--fresh]

mutmut changes the code one small edit at a time (a mutant) and runs the tests that cover the
changed function; a mutant the tests still pass on *survived*: the tests do not protect that
behaviour. This script sets mutmut up in its own virtual environment (``.venv-mutmut``, which reads
the project's packages through a ``.pth`` file), runs it in a scratch copy of the checkout (so
``mutants/`` never lands in the repository), lists every survivor with its diff, and ends with one
JSON line::

    {"modules": {"simulation/core/health.py": {"killed": N, "survived": N, "equivalent": N, "score": 0.9}}}

``score`` is killed / (killed + survived), where survivors named in ``EQUIVALENT`` (mutants that
cannot change behaviour, each with the reason) are counted apart. Timeouts and segfaults count as
killed. Not part of CI: about an hour on 2 cores. Stub servers a killed test worker leaves behind
are stopped by pid afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = "mutmut==3.8.1"
MODULES = ["simulation/core/checks.py", "simulation/core/health.py", "simulation/correction/__init__.py",
           "simulation/correction/datasets.py", "simulation/correction/loop.py", "simulation/correction/measure.py",
           "simulation/correction/ratings.py", "simulation/fork.py", "simulation/llm/routing.py",
           "simulation/llm/structured.py", "simulation/training/data.py", "simulation/config/models.py"]
# the non-integration tests that exercise those modules (mutmut runs, per mutant, the ones that cover it)
TESTS = ["tests/core/test_decision_health.py", "tests/core/test_checks.py", "tests/examples/test_checks.py",
         "tests/correction", "tests/test_fork.py", "tests/test_reproducibility.py", "tests/llm", "tests/training",
         "tests/config"]
# tests that train a model (a minute or more each): run for every mutant they cover, they would take
# hours; the modules they cover are scored on the fast tests alone, and say so by their survivors
SLOW = ["test_manifest_and_from_chaining", "test_from_an_adapter_of_another_base_is_refused",
        "test_cancelled_training_leaves_nothing", "test_ppo_smoke_gives_a_loadable_adapter",
        "test_correct_two_iterations_on_the_stub", "test_ctrl_c_exits_130_and_says_how_to_resume"]
KILLED = {"killed", "timeout", "segfault"}
# mutant name -> why it cannot change behaviour (reviewed by hand; see the survivors' diffs)
EQUIVALENT: dict[str, str] = {}


def mutmut_python() -> Path:
    """The mutmut venv's python, created on first use; it sees the project's packages through a .pth."""
    env = ROOT / ".venv-mutmut"
    py = env / "bin" / "python"
    if not py.exists():
        venv.create(env, with_pip=True)
    if subprocess.run([py, "-c", "import mutmut"], capture_output=True).returncode != 0:
        subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", MUTMUT], check=True)
    project = ROOT / os.environ.get("GENSIM_VENV", ".venv")
    site = next((project / "lib").glob("python3.*/site-packages"))
    ours = next((env / "lib").glob("python3.*/site-packages"))
    (ours / "gensim_project.pth").write_text(f"{site}\n")
    return py


def setup_work(work: Path, modules: list[str], tests: list[str], fresh: bool) -> None:
    """A scratch copy of the checkout with mutmut's settings; ``mutants/`` (mutmut's cache) is kept
    between runs unless ``fresh``."""
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for name in ("simulation", "tests"):
        if (work / name).exists():
            shutil.rmtree(work / name)
        shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__", "runs"))
    # pyproject without a [tool.mutmut] table, so that setup.cfg below is read
    text = (ROOT / "pyproject.toml").read_text()
    (work / "pyproject.toml").write_text(re.sub(r"\n\[tool\.mutmut\][^\[]*", "\n", text))
    tests = [t for t in tests if (ROOT / t).exists()]
    lines = ["[mutmut]", "source_paths = simulation/", "only_mutate ="] + [f"    {m}" for m in modules]
    lines += ["pytest_add_cli_args_test_selection ="] + [f"    {t}" for t in tests] + ["    -m", "    not integration"]
    lines += ["    -k", "    " + " and ".join(f"not {t}" for t in SLOW)]
    lines += ["pytest_add_cli_args =", "    -p", "    no:cacheprovider", "    -q",
              "process_isolation = forkserver", "timeout_multiplier = 5.0", "timeout_constant = 30.0"]
    (work / "setup.cfg").write_text("\n".join(lines) + "\n")


def stub_pids() -> set[int]:
    """Stub servers now running (started by tests as ``python -m simulation.testing.stub_server``)."""
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if b"simulation.testing.stub_server" in (d / "cmdline").read_bytes():
                    out.add(int(d.name))
            except OSError:
                pass
    return out


def results(py: Path, work: Path) -> dict[str, dict[str, list[str]]]:
    """Per module: mutant names by status."""
    out: dict[str, dict[str, list[str]]] = {}
    code = ("import json, sys; sys.path.insert(0, '.')\n"
            "from mutmut.mutation.data import SourceFileMutationData\n"
            "from mutmut.stats import status_by_exit_code\n"
            "from mutmut.configuration import config\n"
            "from mutmut.utils.file_utils import walk_mutatable_files\n"
            "r = {}\n"
            "for p in walk_mutatable_files():\n"
            "    m = SourceFileMutationData(path=p); m.load()\n"
            "    r[str(p)] = {k: status_by_exit_code[v] for k, v in m.exit_code_by_key.items()}\n"
            "print(json.dumps(r))\n")
    got = subprocess.run([py, "-c", code], cwd=work, capture_output=True, text=True, check=True)
    for path, by_key in json.loads(got.stdout.strip().splitlines()[-1]).items():
        mod = out.setdefault(path, {})
        for key, status in by_key.items():
            mod.setdefault(status, []).append(key)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modules", nargs="+", default=MODULES, help="source files to mutate (default: the eight areas)")
    ap.add_argument("--tests", nargs="+", default=TESTS, help="test files and folders to run (non-integration)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/gensim-mutmut"), help="scratch copy (default: %(default)s)")
    ap.add_argument("--fresh", action="store_true", help="forget mutmut's cached results")
    ap.add_argument("--max-children", type=int, default=os.cpu_count() or 2, help="parallel mutants")
    ap.add_argument("--no-run", action="store_true", help="only report the results cached in --work")
    ap.add_argument("--diffs", action="store_true", help="print each survivor's diff")
    a = ap.parse_args()
    py = mutmut_python()
    if not a.no_run:
        setup_work(a.work, a.modules, a.tests, a.fresh)
        before = stub_pids()
        env = {**os.environ, "TQDM_DISABLE": "1"}
        run = subprocess.run([py, "-m", "mutmut", "run", "--max-children", str(a.max_children)], cwd=a.work, env=env)
        for pid in stub_pids() - before:  # left by test workers mutmut killed
            try:
                os.kill(pid, 15)
            except OSError:
                pass
        if run.returncode not in (0, 1):
            print(f"mutmut run exited {run.returncode}", file=sys.stderr)
    scores: dict[str, dict[str, float | int]] = {}
    for path, by_status in sorted(results(py, a.work).items()):
        killed = sum(len(v) for s, v in by_status.items() if s in KILLED)
        survivors = by_status.get("survived", []) + by_status.get("no tests", [])
        equivalent = [m for m in survivors if m in EQUIVALENT]
        survived = [m for m in survivors if m not in EQUIVALENT]
        for m in survived:
            print(f"survived  {m}")
            if a.diffs:
                print(subprocess.run([py, "-m", "mutmut", "show", m], cwd=a.work, capture_output=True,
                                     text=True).stdout)
        for m in equivalent:
            print(f"equivalent  {m}: {EQUIVALENT[m]}")
        other = {s: len(v) for s, v in by_status.items() if s not in KILLED | {"survived", "no tests"}}
        if other:
            print(f"{path}: not counted {other}")
        total = killed + len(survived)
        scores[path] = {"killed": killed, "survived": len(survived), "equivalent": len(equivalent),
                        # None when nothing was measured: a module no test ran is not a perfect score
                        "score": round(killed / total, 3) if total else None}
        if other:
            scores[path]["not_counted"] = sum(other.values())
    print(json.dumps({"modules": scores}))
    return 0 if all(v["score"] is not None and not v.get("not_counted") for v in scores.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
