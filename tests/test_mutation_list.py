"""bench/mutations.py's list stays true to the code: every mutation's text occurs once in its file, the
mutated file still parses, and every test it names exists. The list is run by hand (it takes hours), so
without this a re-indented or renamed line silently turns a mutation into a syntax error or a no-op, as
happened twice (loop-drops-lr-schedule, loop-fork-not-scoped)."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _mutations():
    spec = importlib.util.spec_from_file_location("bench_mutations", ROOT / "bench" / "mutations.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclass looks its module up there
    spec.loader.exec_module(mod)
    return mod


MUT = _mutations()


@pytest.mark.parametrize("m", MUT.MUTATIONS, ids=lambda m: m.name)
def test_each_mutation_applies_and_names_tests_that_exist(m):
    MUT.mutated(m, (ROOT / m.file).read_text())  # SystemExit with its reason when it does not
    for target in m.tests:
        path, _, name = target.partition("::")
        assert (ROOT / path).is_file(), f"{m.name}: no test file {path}"
        if name:
            defined = {n.name for n in ast.walk(ast.parse((ROOT / path).read_text()))
                       if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
            assert name in defined, f"{m.name}: {path} has no test {name}"


def test_a_mutation_that_breaks_the_syntax_is_refused():
    m = MUT.Mutation("x", "f", "simulation/correction/loop.py", "def judged(", "def judged((", ())
    with pytest.raises(SystemExit, match="no longer parses once mutated"):
        MUT.mutated(m, (ROOT / m.file).read_text())
    with pytest.raises(SystemExit, match="holds its text 0 times"):
        MUT.mutated(MUT.Mutation("y", "f", m.file, "no such text anywhere", "", ()), (ROOT / m.file).read_text())
    assert len({x.name for x in MUT.MUTATIONS}) == len(MUT.MUTATIONS), "names are unique"
