"""Which way imports go in the shared layer (docs/ARCHITECTURE.md), checked by walking every import statement.

The rules are stated by package, so a new module is covered the moment it is created in its folder. Function-level
and TYPE_CHECKING imports count too: an arrow is an arrow, whenever it is followed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "shared" / "nrtsync"

# What each package may import (besides itself). Anything not listed is forbidden.
ALLOWED: dict[str, tuple[str, ...]] = {
    "nrtsync.domain": (),
    "nrtsync.observability": (),
    "nrtsync.ports": ("nrtsync.domain",),
    "nrtsync.services": ("nrtsync.domain", "nrtsync.ports", "nrtsync.observability"),
    "nrtsync.adapters": ("nrtsync.domain", "nrtsync.ports", "nrtsync.observability"),
    "nrtsync.app": (
        "nrtsync.domain",
        "nrtsync.ports",
        "nrtsync.observability",
        "nrtsync.services",
        "nrtsync.adapters",
    ),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name == "nrtsync" or name.startswith("nrtsync.")}


GRAPH = {_module_name(path): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def _in(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _role(module: str) -> str | None:
    return next((package for package in ALLOWED if _in(module, package)), None)


def test_every_module_has_a_role() -> None:
    # Only the package's own __init__ stands outside the role folders.
    assert sorted(m for m in GRAPH if _role(m) is None) == ["nrtsync"]


def test_the_walk_sees_the_layer() -> None:
    assert {"nrtsync.services.sync.service", "nrtsync.app.sync", "nrtsync.ports.state"} <= set(GRAPH)
    assert any(_in(i, "nrtsync.adapters") for i in GRAPH["nrtsync.app.sync"])


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_go_only_where_the_role_allows(package: str) -> None:
    allowed = (package, *ALLOWED[package])
    wrong = sorted(
        f"{module} -> {imported}"
        for module, imports in GRAPH.items()
        if _in(module, package)
        for imported in imports
        if not _in(imported, *allowed)
    )
    assert wrong == []


# Services others are built on: reconcile and backfill run sweeps; the sync trips and reads the circuit breaker.
SHARED_SERVICES = ("nrtsync.services.sweep", "nrtsync.services.breaker")


def test_services_import_no_other_service_but_the_shared_ones() -> None:
    def service(module: str) -> str:
        return ".".join(module.split(".")[:3])

    crossing = sorted(
        f"{module} -> {imported}"
        for module, imports in GRAPH.items()
        if _in(module, "nrtsync.services")
        for imported in imports
        if _in(imported, "nrtsync.services") and service(imported) != service(module)
    )
    assert [arrow for arrow in crossing if not _in(arrow.split(" -> ")[1], *SHARED_SERVICES)] == []
