"""The local harness stays split and its entry points stay where the Makefile runs them (issue 10).

A module of ``nrtsync_local/`` should be readable in one sitting: no more than about 450 lines, with no exception
(``stack.py``, the last one, is now the ``stack/`` package).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "nrtsync_local"
MAX_LINES = 450


def _line_counts() -> dict[str, int]:
    return {
        path.relative_to(HARNESS).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(HARNESS.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def test_no_module_of_the_local_harness_is_longer_than_450_lines() -> None:
    # Given every module of the harness
    counts = _line_counts()
    assert len(counts) > 10, counts  # the glob found the harness

    # When the long ones are picked out
    too_long = {name: lines for name, lines in counts.items() if lines > MAX_LINES}

    # Then there are none
    assert too_long == {}, f"split these along their seams: {too_long}"


def test_every_python_module_the_makefile_runs_exists() -> None:
    # Given the modules the Makefile's targets run with ``python -m`` (make demo, local, soak, bench)
    modules = re.findall(r"python -m ([A-Za-z_][\w.]*)", (ROOT / "Makefile").read_text(encoding="utf-8"))
    assert {"nrtsync_local.demo.with_dashboard", "nrtsync_local.stack", "nrtsync_local.drill", "bench.run"} <= set(
        modules
    )

    # Then each is a module, or a package with a __main__, that ``python -m`` can run
    for name in modules:
        spec = importlib.util.find_spec(name)
        assert spec is not None, name
        if spec.submodule_search_locations is not None:
            assert importlib.util.find_spec(f"{name}.__main__") is not None, f"{name} is a package without __main__"
