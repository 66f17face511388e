"""Every doctest example in every ``core`` module runs and passes (the docstrings are part of the teaching).

One test per module, found by walking the package (see :func:`tests.test_imports.core_module_names`), so a new
module's examples are run without an edit here. Examples must be side-effect free; mark one that truly cannot
run here ``# doctest: +SKIP``.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

from tests.test_imports import core_module_names

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def run_doctests(module_name: str) -> tuple[int, int, str]:
    """``(failed, attempted, report)`` for the doctests of one module, found the way ``python -m doctest`` does."""
    module = importlib.import_module(module_name)
    out: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, module_name):
        runner.run(test, out=out.append)
    return runner.failures, runner.tries, "".join(out)


@pytest.mark.parametrize("module_name", core_module_names())
def test_doctests_pass(module_name):
    failed, attempted, report = run_doctests(module_name)
    assert failed == 0, f"{failed} of {attempted} doctest examples in {module_name} failed:\n{report[-6000:]}"


def test_the_runner_counts_a_failing_example(tmp_path, monkeypatch):
    (tmp_path / "doctest_sample.py").write_text('def f():\n    """\n    >>> 1 + 1\n    3\n    >>> 2\n    2\n    """\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    failed, attempted, report = run_doctests("doctest_sample")
    assert (failed, attempted) == (1, 2) and "Expected:\n    3" in report
