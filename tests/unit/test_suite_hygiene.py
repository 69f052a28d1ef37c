"""Rules the test suite keeps about itself (issue 21): checked by reading its own source."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_assert_inside_a_finally_block() -> None:
    """An assert in `finally` raises over the error that sent control there, so the report shows
    the cleanup's complaint instead of the real failure. Clean up in `finally`, assert after it."""
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Try):
                for statement in node.finalbody:
                    found += [
                        f"{path.relative_to(TESTS)}:{sub.lineno}"
                        for sub in ast.walk(statement)
                        if isinstance(sub, ast.Assert)
                    ]
    assert found == []
