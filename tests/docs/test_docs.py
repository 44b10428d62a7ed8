"""What the README and docs/*.md state, held to the code and the template (issue 9, item 8).

Each test reads the docs as a new user would and checks one kind of statement against what the code does:
the answers of the callout endpoint, the parameter table, the names of parameters and files.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import functions.ingest.app as ingest_app
from nrtsync.observability.names import METRIC_NAMES, RUN_METRIC_NAMES, SYNC_SESSION_METRIC_NAMES
from nrtsync.services.ingest.endpoint import CalloutEndpoint
from nrtsync.services.ingest.settings import IngestSettings
from nrtsync_fakes.queue import MemoryQueue
from nrtsync_fakes.secrets import MemorySecrets
from nrtsync_local.template import load_template, parameter_defaults
from tests.support.events import basic_authorization, callout_secret, load_event, with_fields, with_headers
from tests.support.lambda_context import FakeLambdaContext

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
BASE_ENV = {"CALLOUT_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/q", "CALLOUT_SECRET_ID": "s"}


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def table_rows(markdown: str, status: str) -> list[str]:
    """Rows of the answer tables whose first cell names ``status`` (`403`, or `400`/`422` for both)."""
    rows = []
    for line in markdown.splitlines():
        first = re.match(r"^\|([^|]*)\|", line)
        if first and f"`{status}`" in re.findall(r"`\d{3}`", first[1]):
            rows.append(line)
    return rows


# --- the endpoint's answers ---------------------------------------------------------------------------------


def from_source(event: dict[str, Any], source_ip: str) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    changed.setdefault("requestContext", {}).setdefault("identity", {})["sourceIp"] = source_ip
    return changed


# scenario: (how the event changes, extra environment, the secret's hmac_key) -> the (status, error) expected
SCENARIOS: dict[str, tuple[Callable[[dict[str, Any]], dict[str, Any]], dict[str, str], str | None, int, str]] = {
    "bad_signature": (lambda e: with_headers(e, X_Zuora_Signature="00" * 32), {}, "k3y", 403, "bad_signature"),
    "source_not_allowed": (
        lambda e: from_source(e, "203.0.113.5"),
        {"ALLOWED_SOURCE_CIDRS": "52.8.224.0/24"},
        None,
        403,
        "source_not_allowed",
    ),
    "unauthenticated": (
        lambda e: with_headers(e, Authorization=basic_authorization(password="guess")),
        {},
        None,
        401,
        "unauthenticated",
    ),
    "ambiguous_date": (
        lambda e: with_fields(e, updatedDate="03/05/2024 10:22"),
        {},
        None,
        422,
        "invalid_callout",
    ),
}


def answer(scenario: str) -> tuple[int, str, int]:
    change, env, hmac_key, _, _ = SCENARIOS[scenario]
    queue = MemoryQueue()
    endpoint = CalloutEndpoint(
        IngestSettings.from_env(BASE_ENV | env),
        queue=queue,
        secrets=MemorySecrets(default=callout_secret(hmac_key=hmac_key)),
    )
    ingest_app.endpoint.use(endpoint)
    try:
        response = ingest_app.lambda_handler(change(load_event("callout_account")), FakeLambdaContext())
    finally:
        ingest_app.endpoint.use(None)
    return response["statusCode"], json.loads(response["body"])["error"], len(queue.sent)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_answer_tables_give_the_status_the_endpoint_answers(scenario: str) -> None:
    # Given what the endpoint really answers
    status, error, queued = answer(scenario)
    assert (status, error, queued) == (*SCENARIOS[scenario][3:], 0)
    # Then the README's table has a row for that status, CALLOUTS.md's names the error with it
    assert table_rows(text(README), str(status)), f"README.md has no answer row for {status}"
    assert any(f"`{error}`" in row for row in table_rows(text(ROOT / "docs/CALLOUTS.md"), str(status)))


@pytest.mark.parametrize("error", ["bad_signature", "source_not_allowed"])
def test_the_readme_names_each_403_and_no_other_status_for_it(error: str) -> None:
    readme = text(README)
    assert any(f"`{error}`" in row for row in table_rows(readme, "403"))
    cause = {"bad_signature": "signature", "source_not_allowed": "AllowedSourceCidrs"}[error]
    others = [row for status in ("200", "400", "401", "413", "415", "422", "503") for row in table_rows(readme, status)]
    assert [row for row in others if cause in row] == []


def test_callouts_md_explains_every_setting_of_the_ingest_function_a_zuora_admin_meets() -> None:
    # The allow-list and the HMAC header decide whether a Zuora callout gets through.
    callouts = text(ROOT / "docs/CALLOUTS.md")
    for parameter in ("AllowedSourceCidrs", "CalloutHmacHeader", "SecretCacheSeconds"):
        assert f"`{parameter}`" in callouts, parameter


# --- DEPLOY.md's parameter table ----------------------------------------------------------------------------


def deploy_parameter_rows() -> dict[str, str]:
    section = text(ROOT / "docs/DEPLOY.md").split("## Parameters", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        found = re.match(r"^\|\s*`(\w+)`\s*\|\s*([^|]*?)\s*\|", line)
        if found:
            rows[found[1]] = found[2]
    return rows


def test_deploy_md_lists_every_parameter_with_its_default() -> None:
    template = load_template()
    rows = deploy_parameter_rows()
    assert set(rows) == set(template["Parameters"])
    for name, default in parameter_defaults(template).items():
        documented = rows[name].strip("`")
        assert documented == (default or "empty"), f"{name}: DEPLOY.md says {rows[name]!r}, the template {default!r}"


# --- names the docs use -------------------------------------------------------------------------------------

# Parameter-like names: a doc that names one that exists nowhere sends the reader looking for it.
_PARAMETER_SUFFIXES = (
    "Seconds",
    "Days",
    "Percent",
    "Count",
    "Bytes",
    "Cidrs",
    "Tries",
    "Limit",
    "Concurrency",
    "Schedule",
    "Samples",
    "Header",
    "Path",
)


def template_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from template_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from template_names(item)


def test_every_parameter_like_name_in_the_docs_exists() -> None:
    known = set(template_names(load_template())) | set(METRIC_NAMES) | set(RUN_METRIC_NAMES)
    known |= set(SYNC_SESSION_METRIC_NAMES)
    unknown = []
    for doc in DOCS:
        for name in re.findall(r"`([A-Z][a-z]+(?:[A-Z][a-z0-9]+)+)`", text(doc)):
            if name.endswith(_PARAMETER_SUFFIXES) and name not in known:
                unknown.append(f"{doc.relative_to(ROOT)}: {name}")
    assert unknown == []


# Files a run writes (not in the repository) that the docs name on purpose.
GENERATED = {"results.json", "stack.json", "sf.json"}


# A file name inside a code span (a command line included): words ending in a file extension.
_FILE_NAME = re.compile(r"(?<![\w./*=-])([\w./*-]+\.(?:py|json|md|toml|txt|yaml|yml))(?:::\w+)?(?![\w/])")


def repository_files() -> set[str]:
    skip = {".git", ".venv", ".venv-tools", ".aws-sam", ".local", "__pycache__", ".mypy_cache", ".ruff_cache"}
    files = set()
    for path in ROOT.rglob("*"):
        relative = path.relative_to(ROOT)
        if path.is_file() and not skip & set(relative.parts) and not relative.parts[0].startswith("."):
            files.add(relative.as_posix())
    return files


def test_every_repository_file_the_docs_name_exists() -> None:
    files = repository_files()
    basenames = {name.rsplit("/", 1)[-1] for name in files}
    missing = []
    for doc in DOCS:
        spans = re.findall(r"`([^`\n]+)`", text(doc))
        for name in (n for span in spans for n in re.findall(_FILE_NAME, span)):
            if name.startswith(("/", ".local/", "DIR/")) or name.rsplit("/", 1)[-1] in GENERATED:
                continue
            pattern = re.compile(re.escape(name).replace(r"\*", "[^/]+") + "$")
            if "/" in name:
                found = any(pattern.match(f) or pattern.match(f.removeprefix("layers/shared/")) for f in files)
            else:
                found = name in basenames
            if not found:
                missing.append(f"{doc.relative_to(ROOT)}: {name}")
    assert missing == []
