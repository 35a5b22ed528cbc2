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
# each module with the non-integration tests that exercise it: mutmut runs, per mutant, those of
# them that cover the mutated function; small sets keep a run near an hour on 2 cores
GROUPS: dict[str, list[str]] = {
    "simulation/core/checks.py": ["tests/core/test_checks.py", "tests/examples/test_checks.py"],
    "simulation/core/health.py": ["tests/core/test_decision_health.py"],
    "simulation/correction/__init__.py": ["tests/correction/test_bad_inputs.py"],  # fake runs, and one stub
    "simulation/correction/datasets.py": ["tests/correction/test_datasets.py"],
    "simulation/correction/loop.py": ["tests/correction/test_correct_loop_fast.py", "tests/correction/test_bad_inputs.py"],
    "simulation/correction/measure.py": ["tests/correction/test_measure.py"],
    "simulation/correction/exam.py": ["tests/correction/test_exam.py"],
    "simulation/correction/pick.py": ["tests/correction/test_pick.py"],
    "simulation/correction/ratings.py": ["tests/correction/test_ratings.py", "tests/correction/test_bad_inputs.py"],
    "simulation/fork.py": ["tests/test_fork.py"],
    "simulation/llm/routing.py": ["tests/llm/test_routing.py"],
    "simulation/llm/structured.py": ["tests/llm/test_structured.py", "tests/llm/test_llm_clients.py"],
    "simulation/training/data.py": ["tests/training/test_data.py"],
    "simulation/config/models.py": ["tests/config"],
}
MODULES = list(GROUPS)
# tests that train a model or wait on purpose (a minute or more each): run for every mutant they cover
# they would take hours; what only they cover counts as survived
SLOW = ["test_manifest_and_from_chaining", "test_from_an_adapter_of_another_base_is_refused",
        "test_cancelled_training_leaves_nothing", "test_ppo_smoke_gives_a_loadable_adapter",
        "test_correct_two_iterations_on_the_stub", "test_ctrl_c_exits_130_and_says_how_to_resume"]
KILLED = {"killed", "timeout", "segfault"}
# mutant name -> why it cannot change behaviour (reviewed by hand; see the survivors' diffs)
EQUIVALENT: dict[str, str] = {
    **{f"simulation.correction.pick.x_anchor_calls__mutmut_{n}": "an anchored call's agent, round and phase are "
       "never read: scoring asks its messages and options alone" for n in (35, 36, 37, *range(49, 58))},
    **{f"simulation.correction.pick.x_{f}__mutmut_{n}": "the encoding's spelling, or None (UTF-8 on this platform)"
       for f, n in (("anchor_calls", 3), ("anchor_calls", 6), ("read_pick", 4), ("read_pick", 6))},
    **{f"simulation.correction.pick.x_write_pick__mutmut_{n}": "the JSON's indentation" for n in (3, 5, 7)},
    "simulation.llm.averaging.x_averaged_probs__mutmut_1": "the default key seeds the sampled orders of a call "
    "with more than three options only when a caller passes none; every caller passes one",
    "simulation.llm.averaging.x_drawn_option__mutmut_21": "x hits exactly 0 with probability 0 (a float draw)",
    "simulation.llm.averaging.x_drawn_option__mutmut_23": "the fallback after the loop is reached only when float "
    "rounding leaves x at or above 0 after every share is subtracted",
    "simulation.llm.averaging.x_drawn_option__mutmut_24": "as _23: the rounding fallback",
    "simulation.llm.averaging.x_drawn_option__mutmut_25": "as _23: the rounding fallback",
    "simulation.llm.averaging.xǁOrderAveragingClientǁcomplete__mutmut_34": "the recorder writes the request's "
    "model where the result names none (result.model or request.model)",
    "simulation.llm.averaging.xǁOrderAveragingClientǁcomplete__mutmut_38": "as _34",
    "simulation.core.health.xǁSpreadǁshares__mutmut_3": "with no valid answer the counts are empty: {} either way",
    "simulation.core.health.x_decision_health__mutmut_10": "SQL keywords are case-insensitive (and/AND)",
    "simulation.core.health.x_decision_health__mutmut_11": "SQL column names are case-insensitive (round/ROUND)",
    "simulation.correction.datasets.x_dataset_rows__mutmut_91": "loads every call, not only the rated ones: they "
    "are looked up by rated call ids only (slower, the same rows)",
    "simulation.correction.datasets.x_write_dataset__mutmut_28": "the temporary file's name: renamed over the output either way",
    "simulation.correction.datasets.x_write_dataset__mutmut_29": "the temporary file's name: renamed over the output either way",
    "simulation.training.data.x_file_hash__mutmut_13": "the read size: the same bytes are hashed in any chunks",
    "simulation.training.data.x_file_hash__mutmut_15": "the read size: the same bytes are hashed in any chunks",
    "simulation.training.data.x_file_hash__mutmut_16": "the read size: the same bytes are hashed in any chunks",
    "simulation.training.data.x_load_examples__mutmut_22": "UTF-8 and utf-8 name the same codec",
    "simulation.fork.x_forked_config__mutmut_1": "the config validates by field name as by alias (populate_by_name)",
    "simulation.fork.x_forked_config__mutmut_2": "the config validates by field name as by alias (populate_by_name)",
    "simulation.correction.ratings.x_ratings_from_checks__mutmut_3": "SQL keywords and names are case-insensitive",
    "simulation.correction.ratings.x_ratings_from_checks__mutmut_4": "SQL keywords and names are case-insensitive",
    "simulation.correction.ratings.x_ratings_from_checks__mutmut_6": "SQL keywords and names are case-insensitive",
    "simulation.correction.ratings.x_ratings_from_checks__mutmut_7": "SQL keywords and names are case-insensitive",
    "simulation.correction.ratings.x_ratings_from_checks__mutmut_12": "SQL keywords and names are case-insensitive",
    "simulation.correction.ratings.x_ratings_from_checks__mutmut_13": "SQL keywords and names are case-insensitive",
    "simulation.correction.ratings.x_ratings_from_checks__mutmut_19": "SQL keywords and names are case-insensitive",
    "simulation.correction.ratings.x_ratings_from_checks__mutmut_20": "SQL keywords and names are case-insensitive",
    "simulation.correction.ratings.x_ratings_from_checks__mutmut_30": "SQL keywords and names are case-insensitive",
    "simulation.correction.ratings.x_ratings_from_checks__mutmut_31": "SQL keywords and names are case-insensitive",
    "simulation.correction.ratings.x_ratings_from_checks__mutmut_55": "a passing verdict is stored with no rewrite, so (not ok or rewrite) is (not ok)",
    "simulation.correction.ratings.x__read_rows__mutmut_4": "UTF-8-SIG and utf-8-sig name the same codec",
    "simulation.correction.ratings.x__read_rows__mutmut_23": "an empty header counts no delimiter: ',' either way",
    "simulation.correction.ratings.x__read_rows__mutmut_26": "an empty header counts no delimiter: max picks ',' either way",
    "simulation.correction.ratings.x__read_rows__mutmut_31": "X never beats a delimiter the header holds; a header holding none has one column",
    "simulation.correction.ratings.x__read_rows__mutmut_32": "an empty file has no rows, whatever its delimiter",
    "simulation.correction.ratings.x_judge_call__mutmut_39": "an empty rewrite and no rewrite both become None",
    "simulation.correction.ratings.x_judge_call__mutmut_69": "an empty rewrite and no rewrite both become None",
    "simulation.correction.ratings.x_ratings_from_judge__mutmut_2": "how many judge calls run at once: the same ratings",
    "simulation.correction.x__judge__mutmut_11": "SQL keywords and names are case-insensitive",
    "simulation.correction.x__judge__mutmut_12": "SQL keywords and names are case-insensitive",
    "simulation.correction.x__judge__mutmut_15": "SQL keywords and names are case-insensitive",
    "simulation.correction.x__judge__mutmut_20": "SQL keywords and names are case-insensitive",
    "simulation.correction.x__judge__mutmut_31": "SQL keywords and names are case-insensitive",
    "simulation.correction.x__judge__mutmut_34": "SQL keywords and names are case-insensitive",
    "simulation.correction.x__judge__mutmut_56": "SQL keywords and names are case-insensitive",
    "simulation.correction.x__judge__mutmut_57": "SQL keywords and names are case-insensitive",
    "simulation.correction.x_rate_run__mutmut_24": "the lock file's note of what holds it ('rate --by X' or None): the lock is the same",
    "simulation.correction.x_rate_run__mutmut_26": "the lock file's note of what holds it: the lock is the same",
    "simulation.correction.loop.x__base_problem__mutmut_27": "SQL table names are case-insensitive",
    "simulation.correction.loop.x__base_problem__mutmut_30": "SQL table names are case-insensitive",
    "simulation.correction.loop.x__swap_s__mutmut_17": "SQL keywords and names are case-insensitive",
    "simulation.correction.loop.x__targeted__mutmut_4": "UTF-8 and utf-8 name the same codec",
    "simulation.correction.loop.x__anchor_answers__mutmut_14": "other_orders is only tested for being empty: 5 or 6 "
    "orders, never empty for a prompt stating its order",
    "simulation.correction.loop.x__anchor_answers__mutmut_10": "other_orders is only tested for being empty: the seed "
    "picks which orders, not whether there are any",
    "simulation.correction.loop.x__anchor_answers__mutmut_37": "zip of two lists of equal length by construction",
    "simulation.correction.loop.x__anchor_answers__mutmut_40": "zip of two lists of equal length by construction",
    "simulation.correction.loop.x__anchor_answers__mutmut_41": "zip of two lists of equal length by construction",
    "simulation.correction.loop.x_plot_correction__mutmut_4": "closing no figure leaves one open until exit: the PNG is the same",
    "simulation.llm.structured.x_match_choice__mutmut_24": "both options the answer starts with are prefixes of "
    "each other, so the longer also sorts last by name: the same option either way",
    "simulation.llm.structured.x_match_choice__mutmut_27": "as mutmut_24 (sorted by name, descending)",
    "simulation.llm.structured.x_parse_json__mutmut_17": "-1 and -2 both mean 'not found' (start < 0)",
    "simulation.llm.structured.xǁStructuredClientǁ_check__mutmut_8": "the value is not used when the check fails",
    "simulation.llm.structured.xǁStructuredClientǁ_check__mutmut_29": "the reason is not used when the check passes",
    "simulation.llm.structured.xǁStructuredClientǁ_check__mutmut_31": "the value is not used when the check fails",
    "simulation.llm.structured.xǁStructuredClientǁ_check__mutmut_34": "the first line of every error parse_json or "
    "pydantic raises here is under 120 characters ('1 validation error for X', json's 'Expecting ...')",
    "simulation.llm.routing.xǁModelRoutingǁ_covering__mutmut_10": "stopping at -2 adds a second look at the last "
    "assignment (index -1), already looked at first: same answer",
}


def mutmut_python() -> Path:
    """The mutmut venv's python, created on first use; it sees the project's packages through a .pth."""
    env = ROOT / ".venv-mutmut"
    py = env / "bin" / "python"
    if not py.exists():
        venv.create(env, with_pip=True)
    # the installed version, not an import: a half-removed install leaves an importable empty folder
    probe = f"import importlib.metadata as m; assert m.version('mutmut') == '{MUTMUT.split('==')[1]}'"
    if subprocess.run([py, "-c", probe], capture_output=True).returncode != 0:
        subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", MUTMUT], check=True)
    project = ROOT / os.environ.get("GENSIM_VENV", ".venv")
    site = next((project / "lib").glob("python3.*/site-packages"))
    ours = next((env / "lib").glob("python3.*/site-packages"))
    (ours / "gensim_project.pth").write_text(f"{site}\n")
    return py


def setup_work(work: Path, modules: list[str], tests: list[str], fresh: bool, ref: str | None = None) -> None:
    """A scratch copy of the checkout (or of commit ``ref``) with mutmut's settings; ``mutants/``
    (mutmut's cache) is kept between runs unless ``fresh``."""
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for name in ("simulation", "tests"):
        if (work / name).exists():
            shutil.rmtree(work / name)
        if ref is None:
            shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__", "runs"))
    if ref is not None:
        archive = subprocess.run(["git", "archive", ref, "simulation", "tests", "pyproject.toml"], cwd=ROOT,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    # pyproject without a [tool.mutmut] table, so that setup.cfg below is read
    text = (work / "pyproject.toml").read_text() if ref is not None else (ROOT / "pyproject.toml").read_text()
    (work / "pyproject.toml").write_text(re.sub(r"\n\[tool\.mutmut\][^\[]*", "\n", text))
    tests = [t for t in tests if (work / t.split("::")[0]).exists()]
    lines = ["[mutmut]", "source_paths = simulation/", "only_mutate ="] + [f"    {m}" for m in modules]
    lines += ["pytest_add_cli_args_test_selection ="] + [f"    {t}" for t in tests] + ["    -m", "    not integration"]
    lines += ["    -k", "    " + " and ".join(f"not {t}" for t in SLOW)]
    lines += ["pytest_add_cli_args =", "    -p", "    no:cacheprovider", "    -q",
              "process_isolation = forkserver", "timeout_multiplier = 5.0", "timeout_constant = 30.0"]
    (work / "setup.cfg").write_text("\n".join(lines) + "\n")


def stub_pids(work: Path) -> set[int]:
    """Stub servers now running in ``work`` (started there by mutmut's test workers as ``python -m
    simulation.testing.stub_server``): never another checkout's, such as a CI run's beside this one."""
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (b"simulation.testing.stub_server" in (d / "cmdline").read_bytes()
                        and (d / "cwd").resolve().is_relative_to(work.resolve())):
                    out.add(int(d.name))
            except OSError:
                pass
    return out


def recheck(py: Path, work: Path, module: str, names: list[str], tests: list[str]) -> list[str]:
    """Survivors of an earlier run that still survive the tests as they are now.

    Each mutant is applied to the scratch copy's source (``mutmut apply``), the module's tests run on
    it, and the file is restored: the same verdict mutmut gives, for tests added after its run.
    """
    src = work / module
    original = src.read_bytes()
    setup_work_tests(work, tests)
    still = []
    try:
        for name in names:
            subprocess.run([py, "-m", "mutmut", "apply", name], cwd=work, capture_output=True, check=True)
            got = subprocess.run([py, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests, "-m",
                                  "not integration", "-k", " and ".join(f"not {t}" for t in SLOW)],
                                 cwd=work, capture_output=True, text=True)
            src.write_bytes(original)
            if got.returncode == 0:
                still.append(name)
    finally:
        src.write_bytes(original)
    return still


def setup_work_tests(work: Path, tests: list[str]) -> None:
    """The checkout's tests, as they are now, in the scratch copy."""
    if (work / "tests").exists():
        shutil.rmtree(work / "tests")
    shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))


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
    ap.add_argument("--tests", nargs="+", help="test files and folders to run (default: each module's in GROUPS)")
    ap.add_argument("--ref", help="measure the code and tests of this git commit instead of the working tree")
    ap.add_argument("--work", type=Path, default=Path("/tmp/gensim-mutmut"), help="scratch copy (default: %(default)s)")
    ap.add_argument("--fresh", action="store_true", help="forget mutmut's cached results")
    ap.add_argument("--max-children", type=int, default=os.cpu_count() or 2, help="parallel mutants")
    ap.add_argument("--no-run", action="store_true", help="only report the results cached in --work")
    ap.add_argument("--diffs", action="store_true", help="print each survivor's diff")
    ap.add_argument("--verbose", action="store_true", help="show mutmut's own progress")
    ap.add_argument("--recheck", action="store_true", help="with --no-run: run the current tests against each "
                    "survivor of the cached run (tests added since), and count those they kill")
    a = ap.parse_args()
    py = mutmut_python()
    measured: dict[str, dict[str, list[str]]] = {}
    for module in a.modules:
        work = a.work / Path(module).with_suffix("").as_posix().replace("/", "_")
        if not a.no_run:
            tests = a.tests or GROUPS.get(module) or ["tests"]
            setup_work(work, [module], tests, a.fresh, a.ref)
            before = stub_pids(work)
            # a mutant that loses llm.backend=fake would start real servers: minutes per mutant; fail fast instead
            env = {**os.environ, "TQDM_DISABLE": "1", "GENSIM_NO_EMBEDDED": "1"}
            print(f"== {module}: {' '.join(tests)}", flush=True)
            run = subprocess.run([py, "-m", "mutmut", "run", "--max-children", str(a.max_children)], cwd=work, env=env,
                                 stdout=subprocess.DEVNULL if not a.verbose else None)
            for pid in stub_pids(work) - before:  # left by test workers mutmut killed
                try:
                    os.kill(pid, 15)
                except OSError:
                    pass
            if run.returncode not in (0, 1):
                print(f"mutmut run exited {run.returncode} for {module}", file=sys.stderr)
        if work.exists():
            got = {k: v for k, v in results(py, work).items() if k == module}
            if a.recheck and module in got:
                before = got[module].get("survived", []) + got[module].get("no tests", [])
                names = [m for m in before if m not in EQUIVALENT]
                tests = a.tests or GROUPS.get(module) or ["tests"]
                still = set(recheck(py, work, module, names, tests))
                killed = [m for m in names if m not in still]
                print(f"== {module}: {len(killed)} of {len(names)} survivors killed by the current tests", flush=True)
                got[module]["killed"] = got[module].get("killed", []) + killed
                got[module]["survived"] = [m for m in got[module].get("survived", []) if m not in killed]
                got[module]["no tests"] = [m for m in got[module].get("no tests", []) if m not in killed]
            measured.update(got)
    scores: dict[str, dict[str, float | int]] = {}
    for path, by_status in sorted(measured.items()):
        killed = sum(len(v) for s, v in by_status.items() if s in KILLED)
        survivors = by_status.get("survived", []) + by_status.get("no tests", [])
        equivalent = [m for m in survivors if m in EQUIVALENT]
        survived = [m for m in survivors if m not in EQUIVALENT]
        for m in survived:
            print(f"survived  {m}")
            if a.diffs:
                work = a.work / Path(path).with_suffix("").as_posix().replace("/", "_")
                print(subprocess.run([py, "-m", "mutmut", "show", m], cwd=work, capture_output=True,
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
