"""The control API under ``/__standin/`` (plain JSON, no auth): what tests and the local stack use to set
faults and configuration, seed and read records, read counters and reset. See docs/SALESFORCE.md."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from nrtsync_local.salesforce.state import SalesforceState
from nrtsync_local.standin.server import Answer


def _reset(state: SalesforceState) -> dict[str, Any]:
    state.reset()
    return {"ok": True}


def control(state: SalesforceState, method: str, path: str, body: bytes) -> Answer:
    """The answer to ``{method} /__standin/{path}``."""
    payload = json.loads(body) if body else {}
    route = (method, path.rstrip("/"))
    simple: dict[tuple[str, str], Callable[[], Any]] = {
        ("GET", "health"): lambda: {"ok": True},
        ("GET", "faults"): state.faults,
        ("POST", "faults"): lambda: state.set_faults(payload),
        ("GET", "config"): state.config_json,
        ("POST", "config"): lambda: state.configure(payload),
        ("GET", "stats"): state.stats,
        ("POST", "reset"): lambda: _reset(state),
    }
    if route in simple:
        return Answer(200, simple[route]())
    if path.startswith("records/"):
        sobject = unquote(path.removeprefix("records/")).strip("/")
        if method == "GET":
            return Answer(200, state.records(sobject))
        if method == "POST":
            return Answer(200, state.seed_records(sobject, payload))
    return Answer(404, {"error": f"no control endpoint {method} /__standin/{path}"})
