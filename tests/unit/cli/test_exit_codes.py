"""``docs/errors.md`` against the code: every exit status the CLI can return has a row, and
every error class is named in the row of its status.

The expectation is read from the sources, not written by hand: each subclass of ``VisdmError``
anywhere in ``src/visdm`` (found by parsing the files, so nothing heavy is imported) with the
``exit_code`` it sets or inherits, and the statuses the entry point assigns itself.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click
import pytest

import visdm.errors
from visdm import cli

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
SOURCES = ROOT / "src" / "visdm"
TABLE = ROOT / "docs" / "errors.md"


def error_classes() -> dict[str, int]:
    """Every public ``VisdmError`` subclass in the package and its exit status."""
    bases: dict[str, list[str]] = {}
    codes: dict[str, int] = {}
    for path in sorted(SOURCES.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            assert node.name not in bases or node.name.startswith("_"), f"two {node.name}"
            bases[node.name] = [b.id for b in node.bases if isinstance(b, ast.Name)]
            for stmt in node.body:
                targets = (
                    stmt.targets
                    if isinstance(stmt, ast.Assign)
                    else [stmt.target]
                    if isinstance(stmt, ast.AnnAssign)
                    else []
                )
                value = getattr(stmt, "value", None)
                if any(isinstance(t, ast.Name) and t.id == "exit_code" for t in targets) and (
                    isinstance(value, ast.Constant) and isinstance(value.value, int)
                ):
                    codes[node.name] = value.value

    def code(name: str) -> int | None:
        if name in codes:
            return codes[name]
        for base in bases.get(name, []):
            found = code(base)
            if found is not None:
                return found
        return None

    def is_error(name: str) -> bool:
        return name == "VisdmError" or any(is_error(b) for b in bases.get(name, []))

    found = {name: code(name) for name in bases if is_error(name) and not name.startswith("_")}
    return {name: c for name, c in found.items() if c is not None}


def table() -> dict[int, str]:
    """The rows of ``docs/errors.md``: exit status → the row's error-classes cell."""
    rows: dict[int, str] = {}
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].isdigit():
            assert int(cells[0]) not in rows, f"status {cells[0]} has two rows"
            rows[int(cells[0])] = cells[1]
    return rows


def test_the_scan_agrees_with_the_classes_it_can_import() -> None:
    classes = error_classes()
    for name in visdm.errors.__all__:
        assert classes[name] == getattr(visdm.errors, name).exit_code, name


def test_every_exit_status_has_a_row() -> None:
    own = {
        0,
        cli.EXIT_USAGE,
        cli.EXIT_OS_ERROR,
        cli.EXIT_INTERNAL,
        cli.EXIT_INTERRUPTED,
    }
    assert click.UsageError("x").exit_code == cli.EXIT_USAGE  # Typer's status for usage errors
    assert set(table()) == own | set(error_classes().values())


def test_every_error_class_is_in_the_row_of_its_status() -> None:
    named: dict[str, set[int]] = {}
    for code, cell in table().items():
        for name in re.findall(r"`(\w+)`", cell):
            named.setdefault(name, set()).add(code)
    classes = error_classes()
    assert {name: named.get(name) for name in classes} == {n: {c} for n, c in classes.items()}


def test_the_readme_links_the_table() -> None:
    assert "docs/errors.md" in (ROOT / "README.md").read_text(encoding="utf-8")
