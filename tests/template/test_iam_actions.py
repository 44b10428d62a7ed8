"""Least privilege, checked: per function, the AWS actions its code calls against the actions its role allows.

The code side is read from the source, not declared: each function's assembly (``nrtsync/app/<function>.py``
and the parts of ``app/shared.py`` it uses) builds adapters, either as the default of a port parameter
(``store or DynamoBackfillStore(settings.state_table)``, so only that port's methods are called) or outright
(every public method). Each adapter method's boto3 calls are found by walking its body, its helper methods and
the module functions it calls. The resource comes from the constructor's first argument: a settings field,
whose environment variable the template sets to a table or queue. Lambda's own calls on the function's
behalf (the SQS poller) are added from the template.

The template side expands the function's policies: SAM policy templates, inline statements, an explicit role,
and the managed policy SAM attaches for an SQS event. The two sides must be equal, for the services the code
calls; logs and X-Ray come from SAM's basic execution policies and are not compared.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from nrtsync.services.backfill.settings import BackfillSettings
from nrtsync.services.ingest.settings import AuthorizerSettings, IngestSettings
from nrtsync.services.metrics.settings import MetricsSettings
from nrtsync.services.reconcile.settings import ReconcileSettings
from nrtsync.services.sync.settings import SyncSettings
from nrtsync_local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "shared" / "nrtsync"
Template = dict[str, Any]

FUNCTIONS: dict[str, tuple[str, type[BaseModel]]] = {
    "IngestFunction": ("ingest", IngestSettings),
    "CalloutAuthorizerFunction": ("authorizer", AuthorizerSettings),
    "SyncFunction": ("sync", SyncSettings),
    "MetricsFunction": ("metrics", MetricsSettings),
    "ReconcileFunction": ("reconcile", ReconcileSettings),
    "BackfillFunction": ("backfill", BackfillSettings),
}
# The services whose actions are compared; the rest (logs, xray) is SAM's execution policy, not ours.
SERVICES = {"dynamodb", "sqs", "secretsmanager", "cloudwatch", "lambda", "states"}
# Where the IAM action is not the API name in CamelCase ("Actions, resources, and condition keys for Amazon SQS":
# a batch call is authorised by its single-message action).
ACTION_OF = {
    "sqs:send_message_batch": "sqs:SendMessage",
    "sqs:change_message_visibility_batch": "sqs:ChangeMessageVisibility",
    "sqs:delete_message_batch": "sqs:DeleteMessage",
}
# What Lambda's SQS poller calls with the function's role (Lambda Developer Guide, "Using Lambda with Amazon
# SQS", execution role permissions).
SQS_POLLER_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
# The policy templates the template uses, as SAM expands them (samtranslator's policy_templates.json).
POLICY_TEMPLATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "DynamoDBCrudPolicy": (
        "TableName",
        (
            "dynamodb:GetItem",
            "dynamodb:DeleteItem",
            "dynamodb:PutItem",
            "dynamodb:Scan",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:BatchGetItem",
            "dynamodb:DescribeTable",
            "dynamodb:ConditionCheckItem",
        ),
    ),
    "DynamoDBReadPolicy": (
        "TableName",
        ("dynamodb:GetItem", "dynamodb:Scan", "dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:DescribeTable"),
    ),
    "SQSSendMessagePolicy": ("QueueName", ("sqs:SendMessage",)),
    "SQSPollerPolicy": ("QueueName", ("sqs:ChangeMessageVisibility", *SQS_POLLER_ACTIONS)),
    "AWSSecretsManagerGetSecretValuePolicy": ("SecretArn", ("secretsmanager:GetSecretValue",)),
    "LambdaInvokePolicy": ("FunctionName", ("lambda:InvokeFunction",)),
}
# Resources compared by name; for the other services the action alone is compared.
PER_RESOURCE = {"dynamodb", "sqs"}


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def iam_action(service: str, method: str) -> str:
    return ACTION_OF.get(f"{service}:{method}", f"{service}:{_camel(method)}")


def grant(action: str, resource: str) -> str:
    return f"{action} on {resource}" if action.split(":", maxsplit=1)[0] in PER_RESOURCE else action


# --- The code side ----------------------------------------------------------------------------------------


@dataclass
class AdapterClass:
    name: str
    service: str
    methods: dict[str, ast.FunctionDef]
    module_functions: dict[str, ast.FunctionDef]

    def calls(self, method: str, seen: set[str] | None = None) -> set[str]:
        """The boto3 operations ``method`` reaches: on the client, through helper methods and module functions."""
        seen = seen if seen is not None else set()
        if method in seen:
            return set()
        seen.add(method)
        body = self.methods.get(method) or self.module_functions.get(method)
        if body is None:
            return set()
        found = set()
        for node in ast.walk(body):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute | ast.Name):
                continue
            func = node.func
            if isinstance(func, ast.Name):
                found |= self.calls(func.id, seen)
                continue
            receiver = ast.unparse(func.value)
            if receiver in {"self._client", "client"}:
                found.add(iam_action(self.service, func.attr))
            elif receiver == "self._provider" and func.attr == "get":
                # Powertools' SecretsProvider.get reads the secret with GetSecretValue.
                found.add("secretsmanager:GetSecretValue")
            elif receiver == "self":
                found |= self.calls(func.attr, seen)
        return found

    def public_methods(self) -> set[str]:
        return {name for name in self.methods if not name.startswith("_")}


def adapter_classes() -> dict[str, AdapterClass]:
    classes = {}
    for path in sorted((PACKAGE / "adapters" / "aws").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        services = {
            str(node.args[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and ast.unparse(node.func) == "boto3.client"
            and isinstance(node.args[0], ast.Constant)
        }
        if "SecretsProvider" in ast.unparse(tree):
            services.add("secretsmanager")
        functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and services:
                [service] = services
                methods = {item.name: item for item in node.body if isinstance(item, ast.FunctionDef)}
                classes[node.name] = AdapterClass(node.name, service, methods, functions)
    return classes


def port_methods() -> dict[str, set[str]]:
    """Each Protocol of ``nrtsync.ports`` with the methods it declares."""
    ports = {}
    for path in sorted((PACKAGE / "ports").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(ast.unparse(base) == "Protocol" for base in node.bases):
                ports[node.name] = {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
    return ports


@dataclass
class Use:
    """An adapter the assembly builds: its class, the resource hint of its first argument, the port it is
    passed as (None: used outright, every public method counts)."""

    adapter: str
    hint: str | None
    ports: set[str | None] = field(default_factory=set)


def _annotation(arg: ast.arg) -> str | None:
    if arg.annotation is None:
        return None
    text = ast.unparse(arg.annotation)
    return text.removesuffix(" | None").strip("'\"")


def _constructed(node: ast.AST, adapters: dict[str, AdapterClass]) -> ast.Call | None:
    """The adapter construction ``node`` is: ``Adapter(...)`` or ``Lazy(lambda: Adapter(...))``."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id in adapters:
            return node
        if node.func.id == "Lazy" and node.args and isinstance(node.args[0], ast.Lambda):
            return _constructed(node.args[0].body, adapters)
    return None


def _hint(call: ast.Call) -> str | None:
    if not call.args:
        return None
    first = call.args[0]
    if isinstance(first, ast.Attribute):
        return first.attr
    return first.id if isinstance(first, ast.Name) else None


def _variable(node: ast.AST) -> str | None:
    """``name`` or ``name.get()``: a local holding an adapter (or its Lazy)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        return _variable(node.func.value)
    return None


def _annotations(definition: ast.AST) -> dict[str, str | None]:
    """Each parameter of the functions in ``definition`` with its annotation (``X | None`` -> ``X``)."""
    annotations: dict[str, str | None] = {}
    for node in ast.walk(definition):
        if isinstance(node, ast.FunctionDef):
            for arg in node.args.args + node.args.kwonlyargs:
                annotations[arg.arg] = _annotation(arg)
    return annotations


def _new_use(call: ast.Call) -> Use:
    return Use(call.func.id if isinstance(call.func, ast.Name) else "", _hint(call))


def _constructions(definition: ast.AST, adapters: dict[str, AdapterClass]) -> tuple[dict[int, Use], dict[str, Use]]:
    """Every adapter construction, and the locals that hold one (``queue = Lazy(lambda: SqsChangeQueue(...))``)."""
    by_call: dict[int, Use] = {}
    by_variable: dict[str, Use] = {}
    for node in ast.walk(definition):
        call = _constructed(node, adapters)
        if call is not None:
            by_call.setdefault(id(call), _new_use(call))
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = node.value.values[-1] if isinstance(node.value, ast.BoolOp) else node.value
            made = _constructed(value, adapters)
            if made is not None:
                by_variable[node.targets[0].id] = by_call.setdefault(id(made), _new_use(made))
    return by_call, by_variable


def uses_in(definition: ast.AST, adapters: dict[str, AdapterClass]) -> list[Use]:
    """The adapters one assembly function (or class) builds, and the ports each is passed as."""
    annotations = _annotations(definition)
    by_call, by_variable = _constructions(definition, adapters)
    for node in ast.walk(definition):
        if not (isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) and len(node.values) == 2):
            continue
        given, default = node.values
        port = annotations.get(given.id) if isinstance(given, ast.Name) else None
        made = _constructed(default, adapters)
        use = by_call.get(id(made)) if made is not None else by_variable.get(_variable(default) or "")
        if use is not None and port is not None:
            use.ports.add(port)
    for use in by_call.values():
        if not use.ports:
            use.ports.add(None)
    return list(by_call.values())


def assembly_definitions(function_module: str) -> Iterator[ast.AST]:
    """The top-level functions and classes of ``app/<module>.py`` and those of ``app/shared.py`` they reach."""
    modules = {
        name: ast.parse((PACKAGE / "app" / f"{name}.py").read_text(encoding="utf-8"))
        for name in (function_module, "shared")
    }
    definitions = {
        (module, node.name): node
        for module, tree in modules.items()
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.ClassDef)
    }
    pending = [key for key in definitions if key[0] == function_module]
    reached: set[tuple[str, str]] = set()
    while pending:
        key = pending.pop()
        if key in reached:
            continue
        reached.add(key)
        for node in ast.walk(definitions[key]):
            if isinstance(node, ast.Name):
                for module in (key[0], "shared"):
                    if (module, node.id) in definitions:
                        pending.append((module, node.id))
    for key in sorted(reached):
        yield definitions[key]


def resource_of(hint: str | None, settings: type[BaseModel], environment: dict[str, Any]) -> str:
    """The template resource behind a settings field (``state_table`` -> SYNC_STATE_TABLE -> SyncStateTable)."""
    info = settings.model_fields.get(hint or "")
    value = environment.get(info.alias or "") if info is not None else None
    if isinstance(value, dict):
        reference = value.get("Ref") or value.get("Fn::GetAtt", [None])[0]
        return str(reference)
    return "*"


def code_actions(template: Template, function: str) -> set[str]:
    module, settings = FUNCTIONS[function]
    adapters = adapter_classes()
    ports = port_methods()
    environment = template["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {})
    found = set()
    for definition in assembly_definitions(module):
        for use in uses_in(definition, adapters):
            adapter = adapters[use.adapter]
            methods: set[str] = set()
            for port in use.ports:
                methods |= adapter.public_methods() if port is None else ports[port] & adapter.public_methods()
            resource = resource_of(use.hint, settings, environment)
            for method in methods:
                found |= {grant(action, resource) for action in adapter.calls(method)}
    return found | platform_actions(template, function)


def platform_actions(template: Template, function: str) -> set[str]:
    """What Lambda calls with the function's role: the SQS event source's poller."""
    found = set()
    for event in template["Resources"][function]["Properties"].get("Events", {}).values():
        if event["Type"] == "SQS":
            queue = event["Properties"]["Queue"]["Fn::GetAtt"][0]
            found |= {grant(action, queue) for action in SQS_POLLER_ACTIONS}
    return found


# --- The template side ------------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _resource_name(resource: Any) -> str:
    if isinstance(resource, dict):
        if "Ref" in resource:
            return str(resource["Ref"])
        if "Fn::GetAtt" in resource:
            return str(resource["Fn::GetAtt"][0])
        if "Fn::Sub" in resource:
            text = resource["Fn::Sub"]
            found = re.search(r"\$\{(\w+)\.Arn\}", text if isinstance(text, str) else text[0])
            return found[1] if found else "*"
    return "*"


def statement_grants(statement: dict[str, Any]) -> set[str]:
    if statement.get("Effect") != "Allow":
        return set()
    resources = {_resource_name(resource) for resource in _as_list(statement["Resource"])}
    return {grant(action, resource) for action in _as_list(statement["Action"]) for resource in resources}


def role_actions(template: Template, function: str) -> set[str]:
    properties = template["Resources"][function]["Properties"]
    found = set()
    role = properties.get("Role")
    if role is not None:
        role_spec = template["Resources"][_resource_name(role)]["Properties"]
        for policy in role_spec.get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                found |= statement_grants(statement)
        for managed in role_spec.get("ManagedPolicyArns", []):
            assert "SQSQueueExecutionRole" not in str(managed), f"{function}: {managed}"
        return {action for action in found if action.split(":")[0] in SERVICES}
    for policy in properties.get("Policies", []):
        if "Statement" in policy:
            for statement in policy["Statement"]:
                found |= statement_grants(statement)
            continue
        [(name, arguments)] = policy.items()
        argument, actions = POLICY_TEMPLATES[name]
        target = arguments[argument]
        resource = _resource_name(target) if not isinstance(target, dict) or "Fn::GetAtt" not in target else ""
        resource = resource or str(target["Fn::GetAtt"][0])
        found |= {grant(action, resource) for action in actions}
    if any(event["Type"] == "SQS" for event in properties.get("Events", {}).values()):
        # SAM attaches AWSLambdaSQSQueueExecutionRole to the role it generates: every queue of the account.
        found |= {grant(action, "*") for action in SQS_POLLER_ACTIONS}
    return {action for action in found if action.split(":")[0] in SERVICES}


# --- The tests --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template()


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_role_allows_exactly_what_its_code_calls(template: Template, function: str) -> None:
    # Given what the function's code calls and what its role allows
    called = code_actions(template, function)
    allowed = role_actions(template, function)
    # Then neither has anything the other lacks
    assert sorted(called - allowed) == [], "called but not allowed"
    assert sorted(allowed - called) == [], "allowed but never called"


def test_the_code_walk_finds_the_calls_it_must(template: Template) -> None:
    # The walk itself: calls through helpers, ports that narrow, a batch call's single-message action
    sync = code_actions(template, "SyncFunction")
    assert "dynamodb:BatchWriteItem on SyncHistoryTable" in sync  # write_session -> _batch_write
    assert "sqs:ChangeMessageVisibility on CalloutQueue" in sync  # change_message_visibility_batch
    assert "lambda:UpdateEventSourceMapping" in sync  # _LazySwitch, built outright
    assert "secretsmanager:GetSecretValue" in sync  # build_salesforce's secret source
    reconcile = code_actions(template, "ReconcileFunction")
    # The state store is passed as SettledVersions there: its writes are not the reconcile function's
    assert "dynamodb:BatchGetItem on SyncStateTable" in reconcile
    assert not {action for action in reconcile if action.startswith("dynamodb:UpdateItem") and "Sweep" in action}
    assert "sqs:SendMessage on CalloutQueue" in reconcile
    assert "cloudwatch:PutMetricData" in code_actions(template, "MetricsFunction")


def test_the_template_side_sees_what_sam_attaches(template: Template) -> None:
    # A SQS event on a role SAM generates brings AWSLambdaSQSQueueExecutionRole: receive and delete anywhere
    spec = template["Resources"]["SyncFunction"]["Properties"]
    generated = {"Policies": [], "Events": spec["Events"]}
    changed = template | {"Resources": template["Resources"] | {"SyncFunction": {"Properties": generated}}}
    assert "sqs:DeleteMessage on *" in role_actions(changed, "SyncFunction")
