"""The HTTPS Salesforce and Zuora stand-ins as child processes, and small clients for their control APIs.

``REQUESTS_CA_BUNDLE`` wins over ``session.verify`` whenever a requests session trusts the environment, so the
control session made here sets ``trust_env = False`` and ``verify = ca_file`` (which also keeps proxy variables
away from 127.0.0.1).

The child runs in its own session (process group): a Ctrl-C in the terminal reaches only the parent, which then
stops the child by its pid, in order, after the handlers that talk to it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 5.0


def trusting_session(ca_file: str) -> requests.Session:
    """A session that trusts ``ca_file`` and ignores ``REQUESTS_CA_BUNDLE`` and proxy variables."""
    session = requests.Session()
    session.trust_env = False
    session.verify = ca_file
    return session


@dataclass
class ControlClient:
    """Where a stand-in listens, its OAuth client, and its control API (``/__standin/...``)."""

    url: str
    ca_file: str
    client_id: str
    client_secret: str
    pid: int
    _control: requests.Session = field(repr=False)

    def session(self) -> requests.Session:
        """A fresh session that trusts the stand-in's CA (see the module docstring)."""
        return trusting_session(self.ca_file)

    def close(self) -> None:
        self._control.close()

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, timeout: float = 5
    ) -> dict[str, Any]:
        response = self._control.request(method, f"{self.url}/__standin/{path}", json=body, timeout=timeout)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer


@dataclass
class StandinClient(ControlClient):
    """The Salesforce stand-in's client: its login URL and its control API."""

    @property
    def login_url(self) -> str:
        return self.url

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """e.g. ``latency_ms=150``, ``fail_next=[{"status": 503}]``, ``validation_rules=[...]``, ``api_used``."""
        return self._call("POST", "faults", faults)

    def configure(self, **config: Any) -> dict[str, Any]:
        """e.g. ``jwt_certificate_pem``, ``jwt_username``, ``sandbox``, ``experience_site_urls``, ``sobjects=[...]``."""
        return self._call("POST", "config", config)

    def config(self) -> dict[str, Any]:
        """What the stand-in is configured with (no secrets: the JWT certificate only as configured or not)."""
        return self._call("GET", "config")

    def records(self, sobject: str) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = self._call("GET", f"records/{sobject}")["records"]
        return answer

    def record(
        self, sobject: str, external_id: str, field_name: str = "Zuora__External_Id__c"
    ) -> dict[str, Any] | None:
        """One stored record by its external ID, or None."""
        return next((r for r in self.records(sobject) if r.get(field_name) == external_id), None)

    def seed(
        self, sobject: str, records: list[dict[str, Any]], external_id_field: str = "Zuora__External_Id__c"
    ) -> None:
        """Stores records directly, without an API call counted. They obey the org's rules all the same (a billing
        account needs its CRM Account, a payment its billing account): a record refused raises ValueError."""
        answer = self._call("POST", f"records/{sobject}", {"external_id_field": external_id_field, "records": records})
        refused = [
            (record.get(external_id_field), result["errors"])
            for record, result in zip(records, answer.get("results", []), strict=False)
            if not result.get("success")
        ]
        if refused:
            raise ValueError(f"the Salesforce stand-in refused seeded {sobject} records: {refused}")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "stats")

    def reset(self) -> None:
        """Forgets records, faults, counters and API usage (sessions and configuration stay)."""
        self._call("POST", "reset")


class ChildStandin[ClientT: ControlClient]:
    """``python -m <module>`` on a free 127.0.0.1 port, files under ``workdir``; stopped by its pid."""

    module: ClassVar[str]
    name: ClassVar[str]
    title: ClassVar[str]
    client_type: type[ClientT]

    def __init__(self, workdir: Path, *, extra_args: tuple[str, ...] = ()) -> None:
        self._workdir = workdir
        self._extra_args = extra_args
        self._process: subprocess.Popen[bytes] | None = None
        self.client: ClientT | None = None

    @property
    def log_path(self) -> Path:
        return self._workdir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> ClientT:
        """Starts the child and waits until it has written its ready file (URL, CA, client credentials)."""
        ready_file = self._workdir / f"{self.name}.json"
        ready_file.unlink(missing_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    self.module,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--ready-file",
                    str(ready_file),
                    "--ca-file",
                    str(self._workdir / f"{self.name}-ca.pem"),
                    *self._extra_args,
                ],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            ready = self._wait_ready(ready_file)
        except BaseException:
            self.stop()
            raise
        self.client = self.client_type(
            url=ready["url"],
            ca_file=ready["ca_file"],
            client_id=ready["client_id"],
            client_secret=ready["client_secret"],
            pid=self._process.pid,
            _control=trusting_session(ready["ca_file"]),
        )
        return self.client

    def stop(self) -> None:
        """SIGTERM to the child's own pid, SIGKILL if it has not exited in time; always reaps it."""
        if self.client is not None:
            self.client.close()
            self.client = None
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def _wait_ready(self, ready_file: Path) -> dict[str, Any]:
        if self._process is None:
            raise RuntimeError(f"{self.title} is not started")
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if ready_file.exists():
                ready: dict[str, Any] = json.loads(ready_file.read_text())
                return ready
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.title} exited with {self._process.returncode}: {self.log_path.read_text()}")
            time.sleep(0.02)
        raise TimeoutError(f"{self.title} was not ready in {READY_TIMEOUT_SECONDS}s: {self.log_path.read_text()}")


@dataclass
class ZuoraStandinClient(ControlClient):
    """The Zuora stand-in's client: its control API."""

    def seed(self, object_type: str, records: list[dict[str, Any]], *, timeout: float = 60) -> int:
        """Stores Zuora records (each with ``Id`` and ``UpdatedDate``) as the tenant's, replacing same ids, in one
        call (100,000 records take about a second); returns how many records the object now has."""
        return int(self._call("POST", f"records/{object_type}", {"records": records}, timeout=timeout)["count"])

    def update(self, object_type: str, records: list[dict[str, Any]], *, updated_date: str | None = None) -> str:
        """Sets the given fields of stored records (each with ``Id``) and moves their ``UpdatedDate`` to
        ``updated_date`` (a Zuora dateTime) or to now, as an edit in Zuora does; returns the ``UpdatedDate`` set."""
        body: dict[str, Any] = {"records": records}
        if updated_date is not None:
            body["updated_date"] = updated_date
        return str(self._call("POST", f"update/{object_type}", body)["UpdatedDate"])

    def delete(self, object_type: str, ids: list[str]) -> list[str]:
        """Deletes records: queries no longer return them. Returns the ids that existed."""
        deleted: list[str] = self._call("POST", f"delete/{object_type}", {"ids": ids})["deleted"]
        return deleted

    def set_faults(self, fail_next: list[dict[str, Any]]) -> None:
        """The next requests' answers, e.g. ``[{"status": 429, "retry_after": 2}, {"status": 503}]``; a fault with
        ``query_contains`` answers the next query whose ZOQL contains it, and one with ``code`` answers Zuora's
        fault body (``{"status": 400, "code": "INVALID_FIELD", "query_contains": "from Invoice"}``)."""
        self._call("POST", "faults", {"fail_next": fail_next})

    def configure(self, **config: float) -> dict[str, Any]:
        """``page_size`` (default 2,000), ``token_seconds`` (a token's ``expires_in``) and ``locator_seconds``
        (how long a queryLocator stays valid: Zuora's 15 minutes by default, 0 never expires)."""
        return self._call("POST", "config", config)

    def callouts(self, **settings: Any) -> dict[str, Any]:
        """The stand-in's callout settings (``nrtsync_local.zuora.callouts.CalloutSettings``; given ones are set
        first), its delivery history (one row per attempt) and how many deliveries are pending."""
        return self._call("POST" if settings else "GET", "callouts", settings or None)

    def revoke_tokens(self) -> None:
        """Every token issued so far is refused from now on (401), as after a revoked OAuth client."""
        self._call("POST", "revoke-tokens", {})

    def stats(self) -> dict[str, Any]:
        """``counts`` per endpoint (token, query, queryMore) and ``open_locators``."""
        return self._call("GET", "stats")

    def reset(self) -> None:
        """Forgets records, open locators, faults and counters (credentials and tokens stay)."""
        self._call("POST", "reset", {})


class StandinProcess(ChildStandin[StandinClient]):
    """``python -m nrtsync_local.salesforce`` on a free 127.0.0.1 port, files under ``workdir``."""

    module = "nrtsync_local.salesforce"
    name = "salesforce-standin"
    title = "the Salesforce stand-in"
    client_type = StandinClient


class ZuoraStandinProcess(ChildStandin[ZuoraStandinClient]):
    """``python -m nrtsync_local.zuora`` on a free 127.0.0.1 port, files under ``workdir``."""

    module = "nrtsync_local.zuora"
    name = "zuora-standin"
    title = "the Zuora stand-in"
    client_type = ZuoraStandinClient
