"""The template's functions as the local deployment reads them: logical ids, the ingest API's routes and
authorizer, and the error raised when the template or the configuration does not fit."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nrtsync_local.gateway.rules import Route
from nrtsync_local.template import api_authorizer, resource

# One logger name for the whole package: the fault drill hides its simulated kills with a filter on this very
# logger (nrtsync_local.drill.run._quiet_kills), and a logger's filters do not see records logged by its children.
LOGGER_NAME = "nrtsync_local.stack"

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
INGEST, SYNC, METRICS = "IngestFunction", "SyncFunction", "MetricsFunction"
RECONCILE = "ReconcileFunction"


class LocalDeploymentError(RuntimeError):
    """The local stack cannot start as configured (the message says what to fix)."""


def api_routes(template: Mapping[str, Any], logical_id: str) -> list[Route]:
    events = resource(template, logical_id, "AWS::Serverless::Function").get("Properties", {}).get("Events", {})
    return [
        Route(path=str(e["Properties"]["Path"]), method=str(e["Properties"]["Method"]).upper())
        for e in events.values()
        if e.get("Type") == "Api"
    ]


def api_of(template: Mapping[str, Any], logical_id: str) -> str:
    """The logical id of the ``AWS::Serverless::Api`` the function's ``Api`` events belong to."""
    events = resource(template, logical_id, "AWS::Serverless::Function").get("Properties", {}).get("Events", {})
    apis = {
        str(e["Properties"]["RestApiId"]["Ref"])
        for e in events.values()
        if e.get("Type") == "Api" and isinstance(e["Properties"].get("RestApiId"), Mapping)
    }
    if len(apis) != 1:
        raise LocalDeploymentError(f"{logical_id}'s Api events name {sorted(apis)}, not exactly one RestApiId")
    return apis.pop()


def authorizer_function(template: Mapping[str, Any]) -> str | None:
    """The logical id of the ingest API's authorizer function, or None when the API has no authorizer."""
    spec = api_authorizer(template, api_of(template, INGEST))
    return None if spec is None else str(spec["Function"])
