"""Which way imports go in the shared layer (docs/ARCHITECTURE.md), checked by walking every import statement.

Function-level and TYPE_CHECKING imports count too: an arrow is an arrow, whenever it is followed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "shared" / "nrtsync"
SERVICES = (
    "nrtsync.sync",
    "nrtsync.api_budget",
    "nrtsync.retry_policy",
    "nrtsync.session_ledger",
    "nrtsync.ingest",
    "nrtsync.authorizer",
    "nrtsync.metrics",
    "nrtsync.reporting",
    "nrtsync.reconcile",
    "nrtsync.backfill",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name == "nrtsync" or name.startswith("nrtsync.")}


GRAPH = {_module_name(path): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def _in(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _arrows(source: tuple[str, ...], target: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} -> {imported}"
        for module, imports in GRAPH.items()
        if _in(module, *source)
        for imported in imports
        if _in(imported, *target)
    )


def test_the_walk_sees_the_layer() -> None:
    assert {"nrtsync.sync", "nrtsync.wiring", "nrtsync.ports.sync", "nrtsync.adapters.state"} <= set(GRAPH)
    assert "nrtsync.adapters.state" in GRAPH["nrtsync.wiring"] or any(
        _in(i, "nrtsync.adapters") for i in GRAPH["nrtsync.wiring"]
    )


def test_adapters_never_import_services_wiring_or_reporting() -> None:
    assert _arrows(("nrtsync.adapters",), (*SERVICES, "nrtsync.wiring", "nrtsync.reporting")) == []


def test_services_import_ports_not_adapters() -> None:
    assert _arrows(SERVICES, ("nrtsync.adapters",)) == []


def test_only_the_wiring_imports_adapters() -> None:
    importers = {arrow.split(" -> ")[0] for arrow in _arrows(("nrtsync",), ("nrtsync.adapters",))}
    assert {m for m in importers if not _in(m, "nrtsync.adapters")} == {"nrtsync.wiring"}


@pytest.mark.parametrize("package", ["nrtsync.ports", "nrtsync.tables", "nrtsync.models"])
def test_contracts_import_neither_adapters_nor_services(package: str) -> None:
    assert _arrows((package,), ("nrtsync.adapters", *SERVICES, "nrtsync.wiring", "nrtsync.reporting")) == []
