"""The HTTPS Salesforce stand-in as a subprocess, and a small client for its control API.

``REQUESTS_CA_BUNDLE`` is exported on the build machines and wins over ``session.verify`` whenever a
session trusts the environment. Every session made here therefore sets ``trust_env = False`` and
``verify = ca_file`` (``trust_env = False`` also keeps proxy variables away from 127.0.0.1).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 5.0


def trusting_session(ca_file: str) -> requests.Session:
    """A session that trusts the stand-in's CA and ignores ``REQUESTS_CA_BUNDLE`` and proxy variables."""
    session = requests.Session()
    session.trust_env = False
    session.verify = ca_file
    return session


@dataclass
class StandinClient:
    """Where the stand-in listens, its credentials, and its control API (``/__standin/...``)."""

    url: str
    ca_file: str
    client_id: str
    client_secret: str
    pid: int
    _control: requests.Session = field(repr=False)

    @property
    def login_url(self) -> str:
        return self.url

    def session(self) -> requests.Session:
        """A fresh session for the code under test (trusts the CA; see the module docstring)."""
        return trusting_session(self.ca_file)

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """e.g. ``latency_ms=150``, ``fail_next=[{"status": 503}]``, ``row_lock={"external_ids": [...]}``,
        ``validation_rules=[{"field": "Name", "equals": "x"}]``, ``expire_sessions=True``, ``api_limit``, ``api_used``.
        """
        return self._call("POST", "faults", faults)

    def configure(self, **config: Any) -> dict[str, Any]:
        """e.g. ``jwt_public_key_pem``, ``jwt_username``, ``sobjects=[...]``, ``relationships={...}``."""
        return self._call("POST", "config", config)

    def records(self, sobject: str) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = self._call("GET", f"records/{sobject}")["records"]
        return answer

    def seed(
        self, sobject: str, records: list[dict[str, Any]], external_id_field: str = "Zuora__External_Id__c"
    ) -> None:
        """Stores records directly, without an API call counted."""
        self._call("POST", f"records/{sobject}", {"external_id_field": external_id_field, "records": records})

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "stats")

    def reset(self) -> None:
        """Forgets records, faults, counters and API usage (sessions and configuration stay)."""
        self._call("POST", "reset")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self._control.request(method, f"{self.url}/__standin/{path}", json=body, timeout=5)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer


@contextmanager
def running_salesforce_standin(extra_args: Sequence[str] = ()) -> Iterator[StandinClient]:
    """Starts ``python -m nrtsync_local.salesforce_standin`` on a free 127.0.0.1 port; stops it by its pid."""
    with tempfile.TemporaryDirectory(prefix="sf-standin-") as workdir:
        ready_file = Path(workdir) / "ready.json"
        log_path = Path(workdir) / "standin.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "nrtsync_local.salesforce_standin",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--ready-file",
                    str(ready_file),
                    "--ca-file",
                    str(Path(workdir) / "ca.pem"),
                    *extra_args,
                ],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            ready = _wait_ready(process, ready_file, log_path)
            control = trusting_session(ready["ca_file"])
            try:
                yield StandinClient(
                    url=ready["url"],
                    ca_file=ready["ca_file"],
                    client_id=ready["client_id"],
                    client_secret=ready["client_secret"],
                    pid=process.pid,
                    _control=control,
                )
            finally:
                control.close()
        finally:
            _stop(process)


def _wait_ready(process: subprocess.Popen[bytes], ready_file: Path, log_path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if ready_file.exists():
            ready: dict[str, Any] = json.loads(ready_file.read_text())
            return ready
        if process.poll() is not None:
            raise RuntimeError(f"the Salesforce stand-in exited with {process.returncode}: {log_path.read_text()}")
        time.sleep(0.02)
    raise TimeoutError(f"the Salesforce stand-in was not ready in {READY_TIMEOUT_SECONDS}s: {log_path.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the stand-in's own pid, then SIGKILL if it has not exited in time."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
