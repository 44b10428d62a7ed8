"""Zuora for the local stack: the stand-in started as a child process, or a real tenant chosen by ``ZUORA_*``
variables (as ``SALESFORCE_*`` chooses a real org), the ``ZuoraSecret`` created in moto with its credentials,
and the one CA bundle the functions trust."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import certifi
import trustme
from pydantic import ValidationError

from nrtsync_local.stack.spec import LocalDeploymentError
from nrtsync_local.standin.process import ZuoraStandinClient, ZuoraStandinProcess

ZUORA_VARIABLES = ("ZUORA_BASE_URL", "ZUORA_CLIENT_ID", "ZUORA_CLIENT_SECRET")


@dataclass(frozen=True)
class ZuoraTenant:
    """A real Zuora tenant to read instead of the stand-in: the Zuora secret's JSON (docs/ZUORA.md)."""

    secret: Mapping[str, str]

    @property
    def base_url(self) -> str:
        return self.secret["base_url"]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ZuoraTenant | None:
        """From ``ZUORA_BASE_URL``, ``ZUORA_CLIENT_ID`` and ``ZUORA_CLIENT_SECRET``; None when none is set (use the
        stand-in). Some but not all set is an error: half a configuration must not fall back to the stand-in."""
        env = os.environ if environ is None else environ
        values = {name: env.get(name, "").strip() for name in ZUORA_VARIABLES}
        if not any(values.values()):
            return None
        missing = [name for name, value in values.items() if not value]
        if missing:
            given = [name for name, value in values.items() if value]
            raise LocalDeploymentError(
                f"{', '.join(given)} set but not {', '.join(missing)}: set all three to use a real Zuora tenant, "
                "or none to use the stand-in"
            )
        secret = {
            "base_url": values["ZUORA_BASE_URL"],
            "client_id": values["ZUORA_CLIENT_ID"],
            "client_secret": values["ZUORA_CLIENT_SECRET"],
        }
        from nrtsync.domain.models.zuora import ZuoraCredentials  # noqa: PLC0415 - the layer's model, same rules

        try:
            ZuoraCredentials.model_validate(secret)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'secret'}: {e['msg']}" for e in exc.errors())
            raise LocalDeploymentError(f"the ZUORA_* variables do not make a valid secret: {problems}") from exc
        return cls(secret=secret)


class LocalZuora:
    """The Zuora side of a ``LocalDeployment``: ``start()`` starts the stand-in (unless a tenant is given) and
    creates the ``ZuoraSecret``; ``stop()`` stops the stand-in by its pid."""

    def __init__(self, tenant: ZuoraTenant | None, *, callouts: bool = False) -> None:
        """``callouts``: the front serves HTTPS with a certificate of ``front_ca`` and, with the stand-in,
        ``set_up_callouts`` runs ``zuora setup``, so a record changed in the stand-in reaches Salesforce by the
        stand-in's own callout, as a change in Zuora does."""
        self._tenant = tenant
        self._callouts = callouts
        self.front_ca: trustme.CA | None = None
        self.front_ca_file: str | None = None
        self._process: ZuoraStandinProcess | None = None
        self.client: ZuoraStandinClient | None = None
        self.secret_id: str | None = None

    @property
    def external(self) -> bool:
        return self._tenant is not None

    @property
    def url(self) -> str:
        if self._tenant is not None:
            return self._tenant.base_url
        if self.client is None:
            raise RuntimeError("the local stack is not started")
        return self.client.url

    @property
    def ca_file(self) -> str | None:
        return None if self.client is None else self.client.ca_file

    @property
    def pid(self) -> int | None:
        return None if self.client is None else self.client.pid

    @property
    def ca_files(self) -> list[str | None]:
        """The CAs the functions must trust besides the public roots: the stand-in's and the front's."""
        return [self.ca_file, self.front_ca_file]

    def info(self) -> dict[str, Any]:
        """The state file's Zuora entries."""
        return {
            "zuora": "tenant" if self.external else "standin",
            "zuora_url": self.url,
            "zuora_ca_file": self.ca_file,
            "zuora_secret_id": self.secret_id,
            "zuora_standin_pid": self.pid,
            "callout_ca_file": self.front_ca_file,
        }

    def start(self, workdir: Path, secretsmanager: Any, stack_name: str) -> str:
        """Starts the stand-in when no tenant is given, creates the secret; returns the secret's ARN."""
        if self._callouts:
            self.front_ca = trustme.CA()
            self.front_ca_file = str(workdir / "front-ca.pem")
            self.front_ca.cert_pem.write_to_path(self.front_ca_file)
        if self._tenant is not None:
            secret = dict(self._tenant.secret)
        else:
            self._process = ZuoraStandinProcess(workdir)
            self.client = self._process.start()
            secret = {
                "base_url": self.client.url,
                "client_id": self.client.client_id,
                "client_secret": self.client.client_secret,
            }
        # Named like the other local secrets (nrtsync_local.aws.provision): "<stack>-<logical id>".
        created = secretsmanager.create_secret(Name=f"{stack_name}-ZuoraSecret", SecretString=json.dumps(secret))
        self.secret_id = str(created["ARN"])
        return self.secret_id

    def set_up_callouts(self, callout_url: str, auth: tuple[str, str], mapping: str | None) -> None:
        """With ``callouts`` and the stand-in: ``zuora setup`` as ``nrtsync --local zuora setup`` runs it (stack name
        ``local``), the stand-in trusting the front's CA. Retries come 5 s apart instead of Zuora's 30 minutes, so a
        demo sees them. A real tenant is left alone: ``nrtsync --local zuora setup`` sets it up when asked."""
        from nrtsync_cli.zuora_setup import LOCAL_STACK_NAME, StackSide, setup_zuora  # noqa: PLC0415 - imports the layer

        if not self._callouts or self.client is None:
            return
        self.client.callouts(ca_file=self.front_ca_file, retry_interval_seconds=5.0)
        side = StackSide(
            stack=LOCAL_STACK_NAME,
            callout_url=callout_url,
            callout_secret={"username": auth[0], "password": auth[1]},
            zuora_secret={
                "base_url": self.client.url,
                "client_id": self.client.client_id,
                "client_secret": self.client.client_secret,
            },
            ca_file=self.client.ca_file,
        )
        problem = setup_zuora(side, mapping=mapping)
        if problem:
            raise LocalDeploymentError(f"zuora setup failed: {problem}")

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        if self._process is not None:
            self._process.stop()
        self._process = self.client = None
        self.secret_id = None


def ca_bundle(path: Path, ca_files: Sequence[str | None], environ: Mapping[str, str] | None = None) -> str | None:
    """One PEM file trusted by every function: the public roots (a real org or tenant next to a stand-in), the
    bundles the user trusts (``REQUESTS_CA_BUNDLE`` and ``SSL_CERT_FILE`` of ``environ``, the process environment
    by default: a corporate proxy's CA must stay trusted) and each stand-in's CA. ``REQUESTS_CA_BUNDLE`` names one
    file, so all of them must be in it. None when no stand-in runs (the user's settings are then left as they are).
    """
    files = [Path(name) for name in ca_files if name]
    if not files:
        return None
    environ = os.environ if environ is None else environ
    users = [Path(environ[name]) for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE") if environ.get(name)]
    # A bundle this function wrote earlier (the stack sets REQUESTS_CA_BUNDLE to it) is not the user's.
    trusted = list(dict.fromkeys(f for f in users if f.is_file() and f.resolve() != path.resolve()))
    parts = [Path(certifi.where()), *trusted, *files]
    path.write_text("\n".join(part.read_text() for part in parts))
    return str(path)
