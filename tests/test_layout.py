"""The layering rules of the README's layout table, checked on the source: sizes, imports, where tensors live."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("core", "ui", "views")
MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 60
TORCH_ALLOWED: set[str] = set()  # ui/ and views/ do no tensor work: the model cache calls core.model_spec


def sources(*folders: str, root: Path = ROOT) -> list[Path]:
    return sorted(p for f in folders for p in (root / f).rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports count too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def long_functions(path: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    tree = ast.parse(path.read_text())
    return [f"{path.name}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > limit]


def importers(paths: list[Path], prefix: str) -> list[str]:
    return [str(p.relative_to(p.parents[1])) for p in paths
            if any(m == prefix or m.startswith(prefix + ".") for m in imported_modules(p))]


def test_no_file_over_400_lines():
    big = [f"{p.relative_to(ROOT)} ({n})" for p in sources(*LAYERS)
           if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES]
    assert not big, f"split these by concept: {big}"


def test_no_function_over_60_lines():
    long = [f for p in sources(*LAYERS) for f in long_functions(p)]
    assert not long, f"split these functions: {long}"


def test_benchmarks_reach_core_directly():
    assert not importers(sources("bench"), "ui"), "bench/ imports nothing from ui/"


def test_ui_and_views_do_no_tensor_work():
    offenders = [p for p in importers(sources("ui", "views") + [ROOT / "app.py"], "torch") if p not in TORCH_ALLOWED]
    assert not offenders, f"move the tensor work into core/: {offenders}"


def test_the_checks_catch_offenders(tmp_path):
    (tmp_path / "bench").mkdir()
    bad = tmp_path / "bench" / "b.py"
    bad.write_text("def f():\n    from ui.figures_train import loss_figure\n" + "    x = 1\n" * 61)
    assert importers(sources("bench", root=tmp_path), "ui") == ["bench/b.py"]
    assert long_functions(bad) == ["b.py:1 f (63 lines)"]
    good = tmp_path / "bench" / "g.py"
    good.write_text("import uiwidgets\nfrom core import ui\n")
    assert importers([good], "ui") == []
