"""What the README and docs/*.md state, held to the code and the template.

Each test reads the docs as a new user would and checks one kind of statement against what the code does:
the answers of the callout endpoint, the parameter table, the names of parameters and files.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import functions.ingest.app as ingest_app
import nrtsync
from bench import report
from bench.cold import FUNCTIONS
from nrtsync.observability.names import METRIC_NAMES, RUN_METRIC_NAMES, SYNC_SESSION_METRIC_NAMES
from nrtsync.services.ingest.endpoint import CalloutEndpoint
from nrtsync.services.ingest.settings import IngestSettings
from nrtsync_cli.cli import build_parser, run
from nrtsync_fakes.queue import MemoryQueue
from nrtsync_fakes.secrets import MemorySecrets
from nrtsync_local.template import load_template, parameter_defaults
from tests.support.events import basic_authorization, callout_secret, load_event, with_fields, with_headers
from tests.support.lambda_context import FakeLambdaContext

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CALLOUTS = ROOT / "docs/CALLOUTS.md"
DOCS = [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
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
    # Then CALLOUTS.md's answer table names the error with that status
    assert any(f"`{error}`" in row for row in table_rows(text(CALLOUTS), str(status)))


@pytest.mark.parametrize("error", ["bad_signature", "source_not_allowed"])
def test_the_answer_table_names_each_403_and_no_other_status_for_it(error: str) -> None:
    answers = text(CALLOUTS)
    assert any(f"`{error}`" in row for row in table_rows(answers, "403"))
    # The error's code in no other status's row (the word "signature" may: a 400 names what a signature cannot cover)
    cause = f"`{error}`"
    statuses = ("200", "400", "401", "413", "415", "422", "503")
    others = [row for status in statuses for row in table_rows(answers, status)]
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


# Files a run or the user writes (not in the repository) that the docs name on purpose.
GENERATED = {"results.json", "stack.json", "sf.json", "samconfig.local.toml"}


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


# --- one version ---------------------------------------------------------------------------------------------


def test_the_cli_the_stack_and_the_changelog_show_one_version() -> None:
    outputs = load_template()["Outputs"]
    latest = re.search(r"(?m)^## (\S+)", text(ROOT / "CHANGELOG.md"))
    assert latest is not None
    assert (outputs["Version"]["Value"], latest[1]) == (nrtsync.__version__, nrtsync.__version__)


def test_nrtsync_version_prints_the_layer_packages_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run(["--version"])
    assert (exited.value.code, capsys.readouterr().out.strip()) == (0, f"nrtsync {nrtsync.__version__}")


# --- counts: functions, secrets, alarms ----------------------------------------------------------------------

NUMBER_WORDS = {
    word: n
    for n, word in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
    )
}
# A count that is about a part on purpose, not the stack: (doc, phrase) -> what it counts.
COUNTED_PARTS = {
    ("docs/LOCAL.md", "five functions"): "the handlers the local stack runs in its process (not the backfill)",
    ("docs/BENCHMARKS.md", "four functions"): "the functions whose cold import the bench measures (bench/cold.py)",
}


def resource_count(template: dict[str, Any], *types: str) -> int:
    return sum(1 for resource in template["Resources"].values() if resource["Type"] in types)


def test_every_count_of_functions_secrets_and_alarms_is_the_templates() -> None:
    template = load_template()
    counts = {
        "functions": resource_count(template, "AWS::Serverless::Function"),
        "secrets": resource_count(template, "AWS::SecretsManager::Secret"),
        "alarms": resource_count(template, "AWS::CloudWatch::Alarm"),
    }
    wrong = []
    for doc in DOCS:
        name = doc.relative_to(ROOT).as_posix()
        for found in re.finditer(r"\b(\w+) (?:lambda )?(functions|secrets|alarms)\b", text(doc), re.IGNORECASE):
            number = NUMBER_WORDS.get(found[1].lower(), int(found[1]) if found[1].isdigit() else None)
            phrase = found[0].lower()
            if number is None or (name, phrase) in COUNTED_PARTS:
                continue
            if number != counts[found[2].lower()]:
                wrong.append(f"{name}: {found[0]!r}, the template has {counts[found[2].lower()]}")
    assert wrong == []
    assert len(FUNCTIONS) == NUMBER_WORDS["four"]  # BENCHMARKS.md's "four functions"


def alarm_names(template: dict[str, Any]) -> set[str]:
    names = set()
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            name = resource["Properties"]["AlarmName"]
            name = name.get("Fn::Sub", name) if isinstance(name, dict) else name
            names.add(str(name).removeprefix("${AWS::StackName}-"))
    return names


def test_deploy_md_lists_every_alarm_and_no_other() -> None:
    section = text(ROOT / "docs/DEPLOY.md").split("The alarms (all named", 1)[1].split("\n\n", 2)[1]
    documented = {name for row in section.splitlines() for name in re.findall(r"^\| `([a-z0-9-]+)`", row)}
    documented |= {name for row in section.splitlines() for name in re.findall(r" / `([a-z0-9-]+)`", row)}
    assert documented == alarm_names(load_template())


# --- quoted figures: generated from bench/results.json -------------------------------------------------------


def test_every_quoted_benchmark_figure_is_generated_from_results_json() -> None:
    results = json.loads(report.RESULTS.read_text())
    blocks = [
        (README, report.render_readme(results)),
        (ROOT / "docs/METRICS.md", report.render_metrics_window(results)),
        (ROOT / "docs/BENCHMARKS.md", report.render(results)),
        (ROOT / "docs/BENCHMARKS.md", report.render_cost(results)),
        (ROOT / "docs/BENCHMARKS.md", report.render_backfill(results)),
        (ROOT / "docs/CAPACITY.md", report.render_capacity(results)),
    ]
    stale = [f"{doc.relative_to(ROOT)}: {block.splitlines()[0]}" for doc, block in blocks if block not in text(doc)]
    assert stale == [], "run `.venv/bin/python -m bench.report`"


def test_the_readme_judges_the_backfill_on_its_own_records() -> None:
    results = json.loads(report.RESULTS.read_text())
    own = results["backfill"]["backfill"]["records_per_api_call"]
    verdict = "**PASS**" if own >= report.BACKFILL_RECORDS_PER_CALL_TARGET else "**FAIL**"
    row = next(line for line in text(README).splitlines() if line.startswith("| initial load"))
    assert f"1 per {own:.1f} backfilled records" in row
    assert row.endswith(f"| {verdict} |")


# --- words for users ----------------------------------------------------------------------------------------

# Development history and the machines the project was built on are no business of a reader's.
NOT_FOR_USERS = re.compile(
    r"\bissue[ -]#?\d+|\bbefore issue\b|\bnoticed while measuring\b|\bthese machines\b|\bshared 2-core\b"
    r"|\bno internet\b|\bthe brief\b|\bfrom memory\b",
    re.IGNORECASE,
)


def test_no_doc_speaks_of_issues_project_history_or_the_build_machines() -> None:
    found = [
        f"{doc.relative_to(ROOT)}: {match[0]!r}"
        for doc in DOCS
        if doc.name != "ARCHITECTURE.md"
        for match in NOT_FOR_USERS.finditer(text(doc))
    ]
    assert found == []


def test_the_readme_fits_on_a_page() -> None:
    assert len(text(README).splitlines()) <= 160


# --- command spellings --------------------------------------------------------------------------------------


def makefile_targets() -> set[str]:
    return set(re.findall(r"(?m)^([a-z0-9-]+):", text(ROOT / "Makefile")))


def code_lines(markdown: str) -> Iterator[str]:
    """Every line of a fenced code block and every inline code span."""
    for block in re.findall(r"```[a-z]*\n(.*?)```", markdown, re.DOTALL):
        yield from block.splitlines()
    yield from re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", markdown, flags=re.DOTALL))


def test_every_make_target_the_docs_name_exists() -> None:
    targets = makefile_targets()
    unknown = [
        f"{doc.relative_to(ROOT)}: make {target}"
        for doc in DOCS
        for line in code_lines(text(doc))
        for target in re.findall(r"(?:^|[\s;&(])make ([a-z0-9-]+)", line)
        if target not in targets
    ]
    assert unknown == []


# The options that take a value, so that the value is not read as a command.
_VALUE_OPTIONS = {"--stack", "--region", "--profile", "--state-file"}


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {"": parser, **action.choices}


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def nrtsync_commands(line: str) -> Iterator[list[str]]:
    line = re.sub(r"(^|\s)#.*$", "", line)  # a shell comment
    for found in re.finditer(r"(?:^|[\s;&(/])nrtsync((?: [^#|;&)]*)?)", line):
        yield [token for token in found[1].split() if token]


def test_every_nrtsync_command_the_docs_spell_exists_with_its_options() -> None:
    commands = _subcommands()
    top = _option_strings(commands[""])
    wrong = []
    for doc in DOCS:
        for line in code_lines(text(doc)):
            for tokens in nrtsync_commands(line):
                command, skip = None, False
                for token in tokens:
                    if skip:
                        skip = False
                    elif token.startswith("--"):
                        option = token.split("=", 1)[0].strip("[]")
                        known = top | (_option_strings(commands[command]) if command else set())
                        if option not in known:
                            wrong.append(f"{doc.relative_to(ROOT)}: {option} in {line.strip()!r}")
                        skip = option in _VALUE_OPTIONS and "=" not in token
                    elif command is None and re.fullmatch(r"[a-z][a-z-]+", token):
                        command = token
                        if command not in commands:
                            wrong.append(f"{doc.relative_to(ROOT)}: command {command!r} in {line.strip()!r}")
                            break
    assert wrong == []


# --- the runbook ---------------------------------------------------------------------------------------------

RUNBOOK = ROOT / "docs/RUNBOOK.md"


def runbook_sections() -> dict[str, str]:
    parts = re.split(r"(?m)^## ", text(RUNBOOK))[1:]
    return {part.split("\n", 1)[0].strip(): part for part in parts}


def test_the_runbook_has_a_section_per_alarm_with_meaning_commands_action_and_escalation() -> None:
    sections = runbook_sections()
    assert set(sections) == alarm_names(load_template())
    for name, section in sections.items():
        for part in ("**Means:**", "**Shows why:**", "**Do", "**Escalate**"):
            assert part in section, f"{name}: no {part}"
        assert re.search(r"(?m)^nrtsync |`nrtsync ", section) or "aws logs tail" in section, name


def test_every_alarm_description_links_to_its_runbook_section() -> None:
    for resource in load_template()["Resources"].values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        properties = resource["Properties"]
        name = str(properties["AlarmName"]["Fn::Sub"]).removeprefix("${AWS::StackName}-")
        description = properties["AlarmDescription"]
        description = description.get("Fn::Sub", description) if isinstance(description, dict) else description
        assert f"docs/RUNBOOK.md#{name} " in f"{description} ", name


# --- links between the docs ----------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_between_the_docs_reaches_a_file_and_a_heading() -> None:
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", text(doc)):
            if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
                continue
            path, _, anchor = target.partition("#")
            linked = (doc.parent / path).resolve() if path else doc
            if not linked.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
            elif anchor and linked.suffix == ".md":
                headings = {slug(h) for h in re.findall(r"(?m)^#+ (.+)$", text(linked))}
                if anchor not in headings:
                    broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert broken == []


def test_the_readme_asks_for_the_pythons_the_project_declares() -> None:
    pyproject = tomllib.loads(text(ROOT / "pyproject.toml"))
    oldest = pyproject["project"]["requires-python"].removeprefix(">=")
    runtime = re.search(r"(?m)^PY_VERSION := (\S+)$", text(ROOT / "Makefile"))
    assert runtime is not None
    readme = text(README)
    assert f"Python {oldest} or newer" in readme  # the CLI's
    assert f"Python {runtime[1]}" in readme  # make demo / make test, the functions' runtime
    assert f"python{runtime[1]}" in readme
