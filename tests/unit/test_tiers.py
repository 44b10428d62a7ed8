"""The test tiers stay apart: unit tests run on the in-memory fakes only, and no test module imports another.

A unit test that starts moto belongs in tests/integration; a helper two test files share belongs in tests/support
or in nrtsync_fakes, so that moving or deleting one test file cannot break another.
"""

from __future__ import annotations

import ast
import socket
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
# What only an integration test may start: AWS in process or over HTTP, and the stand-ins' processes.
INTEGRATION_ONLY = ("moto", "nrtsync_local.aws", "nrtsync_local.standin.process")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
    return names


def test_unit_tests_import_no_moto_and_start_no_stand_in() -> None:
    offenders = {
        f"{path.name}: {name}"
        for path in sorted((TESTS / "unit").glob("*.py"))
        for name in imported_modules(path)
        if any(name == banned or name.startswith(banned + ".") for banned in INTEGRATION_ONLY)
    }

    assert offenders == set()


def test_no_test_module_imports_another() -> None:
    offenders = {
        f"{path.relative_to(TESTS)}: {name}"
        for path in sorted(TESTS.rglob("*.py"))
        for name in imported_modules(path)
        if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_")
    }

    assert offenders == set()


def test_the_scan_sees_imports_inside_functions(tmp_path: Path) -> None:
    # Given a file whose only moto import is inside a function
    probe = tmp_path / "test_probe.py"
    probe.write_text("def test_x():\n    from moto import mock_aws\n    import tests.unit.test_other\n")

    # When its imports are read / Then both are found
    assert {"moto", "tests.unit.test_other"} <= imported_modules(probe)


def test_a_unit_test_cannot_open_a_connection() -> None:
    # Given the unit tier's guard (tests/unit/conftest.py) / When a test connects anywhere / Then it fails at once
    with pytest.raises(RuntimeError, match="unit tests run without network"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
