"""One registry of metric names (nrtsync.observability.names) that every emitter uses; one name per quantity and one
meaning per name (issue 10: ``RecordsFailed`` was a session count and a window total, and the API usage went out
as both ``SalesforceApiUsagePercent`` and ``ApiUsagePercent``)."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from nrtsync.observability.names import INGEST_METRIC_NAMES, METRIC_NAMES, RUN_METRIC_NAMES, SYNC_SESSION_METRIC_NAMES

ROOT = Path(__file__).resolve().parents[2]
EMITTERS = {
    "metrics function (PutMetricData)": METRIC_NAMES,
    "metrics function (run health)": RUN_METRIC_NAMES,
    "sync function (per session)": SYNC_SESSION_METRIC_NAMES,
    "ingest function (per callout)": INGEST_METRIC_NAMES,
}


def test_no_name_has_two_meanings() -> None:
    # Given every name each emitter publishes / When they are counted across emitters
    counts = Counter(name for names in EMITTERS.values() for name in set(names))

    # Then no name is published by two emitters (with two dimension sets and two meanings)
    assert sorted(name for name, n in counts.items() if n > 1) == []


def test_the_api_usage_goes_out_under_one_name() -> None:
    usage_names = {name for names in EMITTERS.values() for name in names if "ApiUsage" in name}
    assert usage_names == {"ApiUsagePercent"}


def _literal_metric_names(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if callee not in {"add_metric", "single_metric", "MetricPoint"}:
            continue
        for keyword in node.keywords:
            if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {keyword.value.value!r}")
    return found


def test_every_emitter_spells_names_through_the_registry() -> None:
    # Given the product code of every function and the layer
    files = [
        *sorted((ROOT / "layers" / "shared" / "nrtsync").rglob("*.py")),
        *sorted((ROOT / "functions").rglob("*.py")),
    ]

    # When / Then no metric is emitted under a name written inline
    assert [hit for path in files for hit in _literal_metric_names(path)] == []
