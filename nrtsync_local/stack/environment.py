"""The functions' environment: each function's variables resolved from the template, set in ``os.environ`` for
this one process and restored afterwards; the callout secret's defaults; and ``SalesforceOrg``, a real org
configured by ``SALESFORCE_*`` variables instead of the stand-in."""

from __future__ import annotations

import json
import os
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nrtsync_local.aws import LocalResources
from nrtsync_local.gateway.rules import LOCAL_ACCOUNT_ID
from nrtsync_local.stack.spec import INGEST, METRICS, RECONCILE, SYNC, LocalDeploymentError, authorizer_function
from nrtsync_local.standin.process import StandinClient
from nrtsync_local.template import function_environment, resource

SERVICE_NAME = "nrtsync-local"
# moto and Powertools accept any credentials; these keep a developer's real ones away from the local stack.
_DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local"}
# Variables the stack sets itself; an override of these would point the handlers somewhere else.
_RESERVED = frozenset({"AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION", *_DUMMY_CREDENTIALS})


@dataclass(frozen=True)
class SalesforceOrg:
    """A real org to sync into instead of the stand-in: the Salesforce secret's JSON (docs/SALESFORCE.md)."""

    secret: Mapping[str, str]

    @property
    def login_url(self) -> str:
        return self.secret["login_url"]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> SalesforceOrg | None:
        """From ``SALESFORCE_*`` variables; None when ``SALESFORCE_LOGIN_URL`` is not set (use the stand-in)."""
        env = os.environ if environ is None else environ
        login_url = env.get("SALESFORCE_LOGIN_URL", "").strip()
        if not login_url:
            return None
        flow = env.get("SALESFORCE_AUTH_FLOW", "client_credentials").strip() or "client_credentials"
        required = ["SALESFORCE_CLIENT_ID"]
        required += (
            ["SALESFORCE_USERNAME", "SALESFORCE_PRIVATE_KEY_FILE"]
            if flow == "jwt_bearer"
            else ["SALESFORCE_CLIENT_SECRET"]
        )
        missing = [name for name in required if not env.get(name, "").strip()]
        if missing:
            raise LocalDeploymentError(f"SALESFORCE_LOGIN_URL is set ({flow} flow) but not {', '.join(missing)}")
        secret = {"auth_flow": flow, "login_url": login_url, "client_id": env["SALESFORCE_CLIENT_ID"].strip()}
        if flow == "jwt_bearer":
            key_file = Path(env["SALESFORCE_PRIVATE_KEY_FILE"]).expanduser()
            try:
                secret |= {"username": env["SALESFORCE_USERNAME"].strip(), "private_key": key_file.read_text()}
            except OSError as exc:
                raise LocalDeploymentError(f"cannot read SALESFORCE_PRIVATE_KEY_FILE {key_file}: {exc}") from exc
            # Only an Experience Cloud site needs it: the default follows the login URL (models/salesforce.py).
            if audience := env.get("SALESFORCE_AUDIENCE", "").strip():
                secret["audience"] = audience
        else:
            secret["client_secret"] = env["SALESFORCE_CLIENT_SECRET"].strip()
        cls._validate(secret)
        return cls(secret=secret)

    @staticmethod
    def _validate(secret: Mapping[str, str]) -> None:
        from nrtsync.domain.models.salesforce import SalesforceCredentials  # noqa: PLC0415 - the layer's model, same rules

        try:
            SalesforceCredentials.model_validate(dict(secret))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'secret'}: {e['msg']}" for e in exc.errors())
            raise LocalDeploymentError(f"the SALESFORCE_* variables do not make a valid secret: {problems}") from exc


def standin_secret(standin: StandinClient, *, latency_ms: int = 0) -> dict[str, str]:
    """The Salesforce secret's JSON for the started stand-in (``latency_ms`` added to each of its answers)."""
    if latency_ms:
        standin.set_faults(latency_ms=latency_ms)
    return {
        "auth_flow": "client_credentials",
        "login_url": standin.url,
        "client_id": standin.client_id,
        "client_secret": standin.client_secret,
    }


def generated_password(template: Mapping[str, Any]) -> str:
    """Like the template's GenerateSecretString for the callout secret: letters and digits, its length."""
    spec = resource(template, "CalloutSecret").get("Properties", {}).get("GenerateSecretString", {})
    length = int(spec.get("PasswordLength", 32))
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def template_username(template: Mapping[str, Any]) -> str:
    """The callout secret's username, from its ``SecretStringTemplate``."""
    spec = resource(template, "CalloutSecret").get("Properties", {}).get("GenerateSecretString", {})
    document = json.loads(spec.get("SecretStringTemplate") or "{}")
    return str(document.get("username") or "zuora")


def function_environments(
    template: Mapping[str, Any],
    res: LocalResources,
    *,
    stack_name: str,
    region: str,
    overrides: Mapping[str, str],
    zuora_secret_id: str | None = None,
) -> dict[str, dict[str, str]]:
    """Each function's ``Environment`` with its ``Ref``s and ``GetAtt``s resolved to the local resources, plus
    ``overrides`` (but never one of the variables the stack sets itself)."""
    refs = {
        "AWS::StackName": stack_name,
        "AWS::Region": region,
        "AWS::AccountId": LOCAL_ACCOUNT_ID,
        "CalloutQueue": res.queue_url,
        "CalloutQueue.Arn": res.queue_arn,
        "CalloutQueue.QueueName": res.queue_url.rsplit("/", 1)[-1],
        "CalloutDeadLetterQueue": res.dlq_url,
        "CalloutSecret": res.callout_secret_id,
        "SalesforceSecret": res.salesforce_secret_id,
        "SyncStateTable": res.state_table,
        "SyncHistoryTable": res.history_table,
        **({"ZuoraSecret": zuora_secret_id} if zuora_secret_id else {}),
    }
    environments: dict[str, dict[str, str]] = {}
    authorizer = authorizer_function(template)
    # The reconcile function reads Zuora: installed when the template has it and a Zuora secret exists.
    reconcile = [RECONCILE] if zuora_secret_id and RECONCILE in template.get("Resources", {}) else []
    for logical_id in (INGEST, SYNC, METRICS, *([authorizer] if authorizer else []), *reconcile):
        resolved = function_environment(template, logical_id, refs=refs)
        if logical_id == SYNC and not zuora_secret_id:
            # Optional for the sync (it reads Zuora only for two changes of one second): without a Zuora stand-in
            # such a record is marked for reconcile instead.
            resolved.pop("ZUORA_SECRET_ID", None)
        unresolved = sorted(name for name, value in resolved.items() if value is None)
        if unresolved:
            raise LocalDeploymentError(
                f"{logical_id}'s environment names resources the local stack lacks: {unresolved}"
            )
        environment = {name: str(value) for name, value in resolved.items()}
        environment |= {k: v for k, v in overrides.items() if k not in _RESERVED}
        environments[logical_id] = environment
    return environments


class ProcessEnvironment:
    """``os.environ`` for the functions while the stack runs; ``restore()`` puts back every variable it changed."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def configure(
        self,
        environments: Mapping[str, Mapping[str, str]],
        *,
        aws_endpoint_url: str,
        region: str,
        ca_file: str | None,
    ) -> None:
        """One process, one environment: the union of the functions' variables (they agree on every shared
        name but POWERTOOLS_SERVICE_NAME, which becomes one name for all), plus the local AWS endpoint."""
        merged: dict[str, str] = {}
        for environment in environments.values():
            merged |= environment
        merged |= {
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "AWS_ENDPOINT_URL": aws_endpoint_url,
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            **_DUMMY_CREDENTIALS,
        }
        if ca_file is not None:
            # simple-salesforce's session and the Zuora client's trust the environment, where REQUESTS_CA_BUNDLE
            # beats session.verify: one bundle (stack/zuora.py's ca_bundle) holds every stand-in's CA.
            merged["REQUESTS_CA_BUNDLE"] = ca_file
        for name, value in merged.items():
            self.set(name, value)
        for name in ("AWS_PROFILE", "AWS_SECURITY_TOKEN"):
            self.set(name, None)

    def set(self, name: str, value: str | None) -> None:
        """Sets (or, with None, removes) one variable, remembering its first value for ``restore()``."""
        if name not in self._saved:
            self._saved[name] = os.environ.get(name)
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

    def restore(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved = {}
